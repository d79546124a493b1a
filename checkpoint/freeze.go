package checkpoint

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

// frozen is a process whose every thread is seized and stopped by the
// calling tracer thread.
type frozen struct {
	pid   int
	tids  []int          // leader first
	masks map[int]uint64 // sigmask of each thread when frozen
	ready map[int]bool   // seized and stopped
}

// freeze seizes and stops every thread of pid, repeating until no new thread
// appears. On error every thread seized so far is released.
func freeze(pid int) (*frozen, error) {
	f := &frozen{pid: pid, masks: map[int]uint64{}, ready: map[int]bool{}}
	for round := 0; ; round++ {
		tids, err := procfs.Tasks(pid)
		if err != nil {
			f.thaw()
			return nil, &fault.Error{Code: fault.CodeNoProcess, Op: "freeze", PID: pid, Msg: "list threads", Err: err}
		}
		added := false
		for _, tid := range tids {
			if f.ready[tid] {
				continue
			}
			added = true
			if err := ptrace.Seize(tid, ptrace.OptsDump); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread exited meanwhile
				}
				f.thaw()
				return nil, seizeError(pid, tid, err)
			}
			if err := ptrace.Interrupt(tid); err != nil {
				ptrace.Detach(tid, 0)
				f.thaw()
				return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "freeze", PID: pid, TID: tid, Msg: "PTRACE_INTERRUPT", Err: err}
			}
			if err := f.waitInterrupt(tid); err != nil {
				f.thaw()
				return nil, err
			}
		}
		if !added {
			break
		}
		if round > 100 {
			f.thaw()
			return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "freeze", PID: pid, Msg: "threads keep appearing"}
		}
	}
	// Leader first, the rest in order.
	f.tids = nil
	for tid := range f.ready {
		if tid != pid {
			f.tids = append(f.tids, tid)
		}
	}
	slices.Sort(f.tids)
	if !f.ready[pid] {
		f.thaw()
		return nil, &fault.Error{Code: fault.CodeProcessExited, Op: "freeze", PID: pid, Msg: "the main thread has exited"}
	}
	f.tids = append([]int{pid}, f.tids...)
	return f, nil
}

// waitInterrupt waits for the interrupt stop of tid and records its signal
// mask. Nothing about the thread is changed, so if godwit dies from here on
// the kernel detaches it and it runs on exactly as before.
func (f *frozen) waitInterrupt(tid int) error {
	ws, err := ptrace.Wait(tid)
	if err != nil || !ws.Stopped() {
		// Exited between listing and seizing: not an error, the thread is gone.
		if err == nil && (ws.Exited() || ws.Signaled()) {
			return nil
		}
		return &fault.Error{Code: fault.CodeDumpFailed, Op: "freeze", PID: f.pid, TID: tid, Msg: "wait for stop", Err: err}
	}
	mask, err := ptrace.GetSigmask(tid)
	if err != nil {
		ptrace.Detach(tid, 0)
		return &fault.Error{Code: fault.CodeDumpFailed, Op: "freeze", PID: f.pid, TID: tid, Msg: "PTRACE_GETSIGMASK", Err: err}
	}
	f.masks[tid] = mask
	f.ready[tid] = true
	return nil
}

// thaw puts every thread's signal mask back (it is only changed while
// godwit injects calls) and detaches it: the process runs on exactly as
// before.
func (f *frozen) thaw() error {
	var first error
	for tid := range f.ready {
		if err := ptrace.SetSigmask(tid, f.masks[tid]); err != nil && first == nil && !errors.Is(err, unix.ESRCH) {
			first = fmt.Errorf("tid %d: restore signal mask: %w", tid, err)
		}
		if err := ptrace.Detach(tid, 0); err != nil && first == nil && !errors.Is(err, unix.ESRCH) {
			first = fmt.Errorf("tid %d: detach: %w", tid, err)
		}
		delete(f.ready, tid)
	}
	return first
}

func seizeError(pid, tid int, err error) error {
	if errors.Is(err, unix.EPERM) {
		if st, serr := procfs.ReadTaskStatus(pid, tid); serr == nil && st.TracerPid != 0 {
			return &fault.Error{Code: fault.CodeAlreadyTraced, Op: "freeze", PID: pid, TID: tid,
				Msg: fmt.Sprintf("already traced by pid %d", st.TracerPid), Remedy: "detach the debugger or strace first"}
		}
		return &fault.Error{Code: fault.CodePermission, Op: "freeze", PID: pid, TID: tid, Msg: "PTRACE_SEIZE", Err: err,
			Remedy: "run godwit as the process's owner or as root; check kernel.yama.ptrace_scope"}
	}
	if errors.Is(err, unix.ESRCH) {
		return &fault.Error{Code: fault.CodeNoProcess, Op: "freeze", PID: pid, TID: tid, Err: err}
	}
	return &fault.Error{Code: fault.CodeDumpFailed, Op: "freeze", PID: pid, TID: tid, Msg: "PTRACE_SEIZE", Err: err}
}
