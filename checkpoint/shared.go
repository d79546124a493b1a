package checkpoint

import (
	"fmt"
	"sort"
	"strings"

	"github.com/godwit-dev/godwit/fault"
)

// kcmp types (linux/kcmp.h) of what clone can share between processes.
const (
	kcmpVM      = 1
	kcmpFiles   = 2
	kcmpFS      = 3
	kcmpSighand = 4
)

// shareable is what two processes may share when one was created by clone
// with CLONE_VM, CLONE_FILES, CLONE_FS or CLONE_SIGHAND but without
// CLONE_THREAD. Restore makes every process its own, so such a tree is
// refused.
var shareable = []struct {
	kcmp       int
	what, flag string
}{
	{kcmpVM, "address space", "CLONE_VM"},
	{kcmpFiles, "descriptor table", "CLONE_FILES"},
	{kcmpFS, "root, working directory and umask", "CLONE_FS"},
	{kcmpSighand, "signal handlers", "CLONE_SIGHAND"},
}

// SharedError is the cause of a refused dump of two processes that share
// kernel state without being threads of one process.
type SharedError struct {
	PID, Other int
	// Shares names what they share: "descriptor table", "signal
	// handlers", ...
	Shares []string
	// Flags are the clone flags that made them share it ("CLONE_FILES", ...).
	Flags []string
}

func (e *SharedError) Error() string {
	what := strings.Join(e.Shares, ", ")
	if n := len(e.Shares); n > 1 {
		what = strings.Join(e.Shares[:n-1], ", ") + " and " + e.Shares[n-1]
	}
	return fmt.Sprintf("pid %d and pid %d share their %s (clone with %s but without CLONE_THREAD)",
		e.PID, e.Other, what, strings.Join(e.Flags, "|"))
}

// checkShared refuses processes of pids that share their address space,
// descriptor table, fs information or signal handlers: kcmp orders the
// processes by each of these kernel objects, and equal neighbours share it.
// Processes that are gone or zombies (whose objects are all nil, hence
// equal) are left out.
func checkShared(pids []int) error {
	alive := make([]int, 0, len(pids))
	for _, pid := range pids {
		if z, err := zombieOf(pid); err == nil && z == nil {
			alive = append(alive, pid)
		}
	}
	pids = alive
	found := map[[2]int]*SharedError{}
	var order [][2]int
	for _, k := range shareable {
		live := make([]int, 0, len(pids))
		for _, pid := range pids {
			if r, err := kcmp(pid, pid, k.kcmp, 0, 0); err == nil && r == 0 {
				live = append(live, pid)
			}
		}
		sort.SliceStable(live, func(i, j int) bool {
			r, err := kcmp(live[i], live[j], k.kcmp, 0, 0)
			return err == nil && r == 1
		})
		for i := 1; i < len(live); i++ {
			a, b := live[i-1], live[i]
			if r, err := kcmp(a, b, k.kcmp, 0, 0); err != nil || r != 0 {
				continue
			}
			key := [2]int{min(a, b), max(a, b)}
			e := found[key]
			if e == nil {
				e = &SharedError{PID: key[0], Other: key[1]}
				found[key] = e
				order = append(order, key)
			}
			e.Shares = append(e.Shares, k.what)
			e.Flags = append(e.Flags, k.flag)
		}
	}
	if len(order) == 0 {
		return nil
	}
	e := found[order[0]]
	return &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: e.PID,
		Msg:    "processes that share kernel state without being threads of one process are not supported yet",
		Err:    e,
		Remedy: "dump a tree whose processes were created by fork, or by clone without these flags"}
}
