package testutil

import (
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var subreaper struct {
	once sync.Once
	err  error
}

// Subreaper makes the test process a child-subreaper (once per process), so
// that processes restored by a godwit it runs become its children.
func Subreaper(t testing.TB) {
	t.Helper()
	subreaper.once.Do(func() {
		subreaper.err = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	})
	if subreaper.err != nil {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", subreaper.err)
	}
}

// TrackStrays records the children the test process has now and, when the
// test ends, kills and reaps every child that appeared since and is not
// owned by a Victim (whose own cleanup runs first). Such strays are processes
// that godwit left behind and that were reparented to this subreaper; the
// test fails when a live one is found. Call it first in a test, before
// starting victims.
func TrackStrays(t testing.TB) {
	t.Helper()
	Subreaper(t)
	before := Children()
	t.Cleanup(func() {
		for _, pid := range Strays(before) {
			if Alive(pid) {
				t.Errorf("process %d (child of the test, not a victim) was left running: killing it", pid)
			}
			KillAndReap(pid, 5*time.Second)
		}
	})
}

// Strays returns the children that are not in known and not owned by a live
// Victim.
func Strays(known []int) []int {
	var out []int
	for _, pid := range Children() {
		if !slices.Contains(known, pid) && !victimOwns(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// KillAndReap kills pid with SIGKILL and waits up to timeout for it to be gone:
// reaped here when it is a child of the test, or gone from /proc when it is
// not. It must only be called for a pid that no exec.Cmd of this process
// waits for. It reports whether pid is gone.
func KillAndReap(pid int, timeout time.Duration) bool {
	unix.Kill(pid, unix.SIGKILL)
	return waitGone(pid, timeout)
}

// waitGone waits, reaping pid if it is a child, until pid has exited.
func waitGone(pid int, timeout time.Duration) bool {
	return Poll(timeout, func() bool {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		return got == pid || (err == unix.ECHILD && !Alive(pid))
	})
}
