package main

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// reapGate reaps exited children that no restore waits for: the orphans
// of restored trees, which come to godwit serve as their subreaper (or the
// init of their PID namespace). It only reaps while no migration is being
// restored, since a restore waits for its own tasks.
type reapGate struct {
	mu     sync.Mutex
	active int
}

func (g *reapGate) enter() { g.mu.Lock(); g.active++; g.mu.Unlock() }
func (g *reapGate) leave() { g.mu.Lock(); g.active--; g.mu.Unlock() }

func (g *reapGate) reap(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		if g.active == 0 {
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
		g.mu.Unlock()
	}
}
