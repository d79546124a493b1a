package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/checkpoint"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/ptrace"
	"github.com/godwit-dev/godwit/internal/testutil"
)

// The tree of BenchmarkFreezeTree: treeProcs processes of treeThreads
// threads each.
const (
	treeProcs   = 100
	treeThreads = 4
)

// BenchmarkFreezeTree measures how long checkpoint.Dump keeps a tree of 100
// processes × 4 threads (testdata/threadtree.c: a root and 99 children, each
// with one thread that spins briefly, one that sleeps and one that waits on a
// futex, and a main thread in pause) frozen.
//
// Each iteration:
//
//  1. freezes and thaws every thread of the tree with the ptrace requests
//     that checkpoint's freeze makes (seize, interrupt, wait for the stop,
//     read the signal mask; then set the mask and detach), parents first,
//     from one tracer thread, and nothing else: ptrace-freeze-ms and
//     ptrace-thaw-ms. Package checkpoint does not report the time of its
//     freeze step alone, so this is that step's floor, measured outside it;
//  2. dumps the tree with checkpoint.Dump (LeaveRunning) into a file:
//     frozen-ms is Stats.FrozenTime (first thread stopped to last thread
//     released: freeze, collect, injected calls, memory, thaw), total-ms is
//     Stats.TotalTime (also the precheck before and the image written after).
//
// After each step every one of the 400 threads must be running again: not
// stopped, not traced. Only the dump counts in ns/op.
func BenchmarkFreezeTree(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireCommand(b, "gcc")
	bin := testutil.BuildC(b, "testdata/threadtree.c")
	dir := b.TempDir()

	tr := startThreadTree(b, bin)
	var sums map[string]float64
	add := func(metric string, v float64) {
		if sums == nil {
			sums = map[string]float64{}
		}
		sums[metric] += v
	}
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		// 1. The freeze alone, with the same requests as checkpoint's.
		freezeT, thawT, n, err := ptraceFreezeThaw(tr.pids(b))
		if err != nil {
			b.Fatalf("ptrace freeze of the tree: %v", err)
		}
		if n != treeProcs*treeThreads {
			b.Fatalf("froze %d threads, want %d", n, treeProcs*treeThreads)
		}
		tr.checkRunning(b, "after the ptrace freeze and thaw")
		add("ptrace-freeze-ms", durMS(freezeT))
		add("ptrace-thaw-ms", durMS(thawT))

		// 2. The dump, leaving the tree running.
		f, err := os.Create(filepath.Join(dir, "image"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := checkpoint.Dump(context.Background(), tr.root, f, checkpoint.Options{LeaveRunning: true})
		b.StopTimer()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatalf("dump of the tree (root pid %d): %v", tr.root, err)
		}
		tr.checkRunning(b, "after checkpoint.Dump with LeaveRunning")
		add("frozen-ms", durMS(st.FrozenTime))
		add("total-ms", durMS(st.TotalTime))
		add("image-MiB", float64(st.ImageBytes)/(1<<20))
	}
	for _, m := range []string{"frozen-ms", "total-ms", "ptrace-freeze-ms", "ptrace-thaw-ms", "image-MiB"} {
		b.ReportMetric(sums[m]/float64(b.N), m)
	}
	b.ReportMetric(treeProcs, "processes")
	b.ReportMetric(treeProcs*treeThreads, "threads")
}

// threadTree is a running threadtree.c. Like memhog's victim, nothing waits
// for it until it has been killed: a wait by the test process would take the
// ptrace stops that a dump waits for.
type threadTree struct {
	cmd  *exec.Cmd
	root int
}

// startThreadTree starts the tree with stdio on /dev/null and no other
// descriptor, waits until all its processes and threads exist, and kills
// and reaps it when the benchmark ends.
func startThreadTree(b *testing.B, bin string) *threadTree {
	b.Helper()
	// Descriptors that the test process inherited without close-on-exec
	// would be passed on (a pipe from whatever started go test, say).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		b.Fatalf("close_range: %v", err)
	}
	// Nil Stdin, Stdout and Stderr are /dev/null.
	cmd := exec.Command(bin, "--procs", strconv.Itoa(treeProcs), "--threads", strconv.Itoa(treeThreads))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	tr := &threadTree{cmd: cmd, root: cmd.Process.Pid}
	b.Cleanup(tr.kill)
	var procs, threads int
	testutil.WaitFor(b, time.Minute, func() bool {
		if !testutil.Alive(tr.root) {
			b.Fatalf("threadtree (pid %d) exited", tr.root)
		}
		procs, threads = 0, 0
		for _, pid := range tr.pids(b) {
			tids, err := procfs.Tasks(pid)
			if err != nil {
				return false
			}
			procs++
			threads += len(tids)
		}
		return procs == treeProcs && threads == treeProcs*treeThreads
	}, fmt.Sprintf("%d processes × %d threads of threadtree", treeProcs, treeThreads))
	return tr
}

// pids lists the tree, parents before children.
func (tr *threadTree) pids(b *testing.B) []int {
	b.Helper()
	out := []int{}
	queue := []int{tr.root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, pid)
		kids, err := procfs.Children(pid)
		if err != nil {
			if !testutil.Alive(pid) {
				continue
			}
			b.Fatalf("children of pid %d: %v", pid, err)
		}
		queue = append(queue, kids...)
	}
	return out
}

// checkRunning checks that the whole tree is there and that none of its
// threads is stopped or traced.
func (tr *threadTree) checkRunning(b *testing.B, when string) {
	b.Helper()
	var bad string
	ok := testutil.Poll(5*time.Second, func() bool {
		pids := tr.pids(b)
		if len(pids) != treeProcs {
			bad = fmt.Sprintf("%d processes, want %d", len(pids), treeProcs)
			return false
		}
		threads := 0
		for _, pid := range pids {
			tids, err := procfs.Tasks(pid)
			if err != nil {
				bad = fmt.Sprintf("pid %d: %v", pid, err)
				return false
			}
			threads += len(tids)
			for _, tid := range tids {
				st, err := testutil.ReadStat(pid, tid)
				switch {
				case err != nil:
					bad = fmt.Sprintf("pid %d tid %d: %v", pid, tid, err)
				case st.Stopped() || st.State == 'Z' || st.State == 'X':
					bad = fmt.Sprintf("pid %d tid %d is in state %c", pid, tid, st.State)
				case st.TracerPID != 0:
					bad = fmt.Sprintf("pid %d tid %d is traced by %d", pid, tid, st.TracerPID)
				default:
					continue
				}
				return false
			}
		}
		if threads != treeProcs*treeThreads {
			bad = fmt.Sprintf("%d threads, want %d", threads, treeProcs*treeThreads)
			return false
		}
		return true
	})
	if !ok {
		b.Fatalf("%s: the tree does not run as before: %s", when, bad)
	}
}

// kill kills every process of the tree and reaps what is a child of the
// test process: the root, and the children it had if the test process is a
// child-subreaper (another benchmark may have made it one).
func (tr *threadTree) kill() {
	var pids []int
	queue := []int{tr.root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		pids = append(pids, pid)
		kids, _ := procfs.Children(pid)
		queue = append(queue, kids...)
	}
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	tr.cmd.Wait()
	for _, pid := range pids[1:] {
		testutil.KillAndReap(pid, 10*time.Second)
	}
}

// ptraceFreezeThaw stops every thread of pids the way checkpoint's freeze
// does (PTRACE_SEIZE, PTRACE_INTERRUPT, wait for the stop, PTRACE_GETSIGMASK,
// one thread after the other, parents first, all from one tracer thread),
// then releases them the way its thaw does (PTRACE_SETSIGMASK with the mask
// read, PTRACE_DETACH). It returns the time of each half and the number of
// threads stopped. On failure every thread seized so far is detached.
func ptraceFreezeThaw(pids []int) (freeze, thaw time.Duration, n int, err error) {
	err = ptrace.Run(func() error {
		type seized struct {
			tid  int
			mask uint64
		}
		var all []seized
		defer func() {
			for _, s := range all {
				ptrace.Detach(s.tid, 0)
			}
		}()
		start := time.Now()
		for _, pid := range pids {
			tids, err := procfs.Tasks(pid)
			if err != nil {
				return err
			}
			for _, tid := range tids {
				if err := ptrace.Seize(tid, ptrace.OptsDump); err != nil {
					return fmt.Errorf("seize tid %d: %w", tid, err)
				}
				all = append(all, seized{tid: tid})
				if err := ptrace.Interrupt(tid); err != nil {
					return fmt.Errorf("interrupt tid %d: %w", tid, err)
				}
				if _, err := ptrace.WaitStopped(tid); err != nil {
					return err
				}
				if all[len(all)-1].mask, err = ptrace.GetSigmask(tid); err != nil {
					return fmt.Errorf("sigmask of tid %d: %w", tid, err)
				}
			}
		}
		freeze = time.Since(start)
		n = len(all)
		start = time.Now()
		for len(all) > 0 {
			s := all[0]
			all = all[1:]
			if err := ptrace.SetSigmask(s.tid, s.mask); err != nil {
				ptrace.Detach(s.tid, 0)
				return fmt.Errorf("set sigmask of tid %d: %w", s.tid, err)
			}
			if err := ptrace.Detach(s.tid, 0); err != nil {
				return fmt.Errorf("detach tid %d: %w", s.tid, err)
			}
		}
		thaw = time.Since(start)
		return nil
	})
	return freeze, thaw, n, err
}

// durMS is d in milliseconds.
func durMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
