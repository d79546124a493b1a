package ptrace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Injector runs system calls inside a stopped task by pointing it at an
// existing `syscall` instruction and single-stepping it. No code of the task
// is changed; its registers are put back after every call.
//
// The task must be stopped and attached on the calling thread. While an
// Injector is in use the task's signals should be blocked (see BlockAll), so
// that no signal is dequeued, and lost, by the steps.
type Injector struct {
	TID int
	// IP is the address of a `syscall` instruction (0f 05) in the task.
	IP uint64
	// LastEvent is the last ptrace event (PTRACE_EVENT_FORK, ...) seen
	// during a call.
	LastEvent int
	// EventMsg is the message of that event: for a fork or clone, the new
	// task's id as the tracer sees it.
	EventMsg int
	// Deferred holds the raw siginfo of signals the task dequeued while it
	// was being stepped. They were not delivered: the caller must queue them
	// again (see Requeue) before letting the task go.
	Deferred [][]byte
}

// SyscallError is an injected system call that returned an error.
type SyscallError struct {
	TID   int
	Nr    uintptr
	Errno unix.Errno
}

func (e *SyscallError) Error() string {
	return fmt.Sprintf("tid %d: injected syscall %d: %v", e.TID, e.Nr, e.Errno)
}

func (e *SyscallError) Unwrap() error { return e.Errno }

// Syscall runs syscall nr with args in the task and returns its result. A
// negative result in the errno range becomes a *SyscallError.
func (in *Injector) Syscall(nr uintptr, args ...uint64) (uint64, error) {
	saved, err := GetRegs(in.TID)
	if err != nil {
		return 0, fmt.Errorf("tid %d: get registers: %w", in.TID, err)
	}
	ret, err := in.call(saved, nr, args)
	if rerr := SetRegs(in.TID, &saved); rerr != nil && err == nil {
		err = fmt.Errorf("tid %d: put registers back: %w", in.TID, rerr)
	}
	return ret, err
}

// call runs one syscall starting from base registers and leaves the task
// stopped after it, with its registers as the syscall left them.
func (in *Injector) call(base Regs, nr uintptr, args []uint64) (uint64, error) {
	r := base
	r.Rax = uint64(nr)
	r.Orig_rax = ^uint64(0)
	r.Rip = in.IP
	var a [6]uint64
	copy(a[:], args)
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	for attempt := 0; ; attempt++ {
		if err := SetRegs(in.TID, &r); err != nil {
			return 0, fmt.Errorf("tid %d: set registers: %w", in.TID, err)
		}
		if err := unix.PtraceSingleStep(in.TID); err != nil {
			return 0, fmt.Errorf("tid %d: single-step: %w", in.TID, err)
		}
		ws, err := WaitStopped(in.TID)
		if err != nil {
			return 0, err
		}
		// Event stops (fork, clone) happen inside the call: step on.
		for ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() > 0 && ws.TrapCause() != unix.PTRACE_EVENT_STOP {
			in.LastEvent = ws.TrapCause()
			if msg, err := GetEventMsg(in.TID); err == nil {
				in.EventMsg = int(msg)
			}
			if err := unix.PtraceSingleStep(in.TID); err != nil {
				return 0, fmt.Errorf("tid %d: single-step: %w", in.TID, err)
			}
			if ws, err = WaitStopped(in.TID); err != nil {
				return 0, err
			}
		}
		out, err := GetRegs(in.TID)
		if err != nil {
			return 0, fmt.Errorf("tid %d: get registers: %w", in.TID, err)
		}
		if out.Rip == in.IP+2 && ws.StopSignal() == unix.SIGTRAP {
			ret := out.Rax
			if int64(ret) < 0 && int64(ret) >= -4095 {
				return ret, &SyscallError{TID: in.TID, Nr: nr, Errno: unix.Errno(-int64(ret))}
			}
			return ret, nil
		}
		// Another stop came first: the syscall has not run yet. A signal
		// dequeued on the way is kept for later instead of being lost.
		if sig := ws.StopSignal(); sig != unix.SIGTRAP && ws.TrapCause() <= 0 {
			if si, err := GetSiginfo(in.TID); err == nil {
				in.Deferred = append(in.Deferred, si)
			}
		}
		if attempt > 8 {
			return 0, fmt.Errorf("tid %d: injected syscall %d did not complete (stop %#x at %#x)",
				in.TID, nr, uint32(ws), out.Rip)
		}
	}
}

// SyscallNoRestore runs syscall nr and stops the task at the syscall's exit
// with PTRACE_SYSCALL, without putting the registers back. It is used for the
// last call of a restore (unmapping the page that holds IP): the caller sets
// the final registers at the exit stop. The task must be seized with
// PTRACE_O_TRACESYSGOOD.
func (in *Injector) SyscallNoRestore(base Regs, nr uintptr, args ...uint64) (uint64, error) {
	r := base
	r.Rax = uint64(nr)
	r.Orig_rax = ^uint64(0)
	r.Rip = in.IP
	var a [6]uint64
	copy(a[:], args)
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	if err := SetRegs(in.TID, &r); err != nil {
		return 0, fmt.Errorf("tid %d: set registers: %w", in.TID, err)
	}
	// Entry stop, then exit stop.
	for stops := 0; stops < 2; {
		if err := unix.PtraceSyscall(in.TID, 0); err != nil {
			return 0, fmt.Errorf("tid %d: PTRACE_SYSCALL: %w", in.TID, err)
		}
		ws, err := WaitStopped(in.TID)
		if err != nil {
			return 0, err
		}
		if ws.StopSignal() == unix.SIGTRAP|0x80 {
			stops++
			continue
		}
		if stops == 0 {
			if err := SetRegs(in.TID, &r); err != nil {
				return 0, fmt.Errorf("tid %d: set registers: %w", in.TID, err)
			}
		}
	}
	out, err := GetRegs(in.TID)
	if err != nil {
		return 0, err
	}
	if int64(out.Rax) < 0 && int64(out.Rax) >= -4095 {
		return out.Rax, &SyscallError{TID: in.TID, Nr: nr, Errno: unix.Errno(-int64(out.Rax))}
	}
	return out.Rax, nil
}

// Finish ends a series of injected calls: it leaves the task in an ordinary
// interrupt stop with single-stepping switched off. Without it, a tracer that
// dies after a step (the kernel does not clear the step when it detaches a
// dead tracer's tasks) would leave the trap flag set, and the task would be
// killed by a SIGTRAP on its next instruction. The task runs no instruction
// of its own here: resuming from the step's stop, it meets the pending
// interrupt before it returns to user space.
func (in *Injector) Finish() error {
	if err := Interrupt(in.TID); err != nil {
		return fmt.Errorf("tid %d: PTRACE_INTERRUPT: %w", in.TID, err)
	}
	if err := Cont(in.TID, 0); err != nil {
		return fmt.Errorf("tid %d: PTRACE_CONT: %w", in.TID, err)
	}
	for i := 0; ; i++ {
		ws, err := WaitStopped(in.TID)
		if err != nil {
			return err
		}
		// The interrupt stop is an event stop whose signal is SIGTRAP, or
		// the stop signal of a process stopped by SIGSTOP (group stop).
		if uint32(ws)>>16 == unix.PTRACE_EVENT_STOP {
			return nil
		}
		if i > 8 {
			return fmt.Errorf("tid %d: no interrupt stop after injected calls (status %#x)", in.TID, uint32(ws))
		}
		// A signal-delivery stop came first: keep the signal for later.
		if ws.StopSignal() != unix.SIGTRAP || ws.TrapCause() <= 0 {
			if si, err := GetSiginfo(in.TID); err == nil {
				in.Deferred = append(in.Deferred, si)
			}
		}
		if err := Cont(in.TID, 0); err != nil {
			return fmt.Errorf("tid %d: PTRACE_CONT: %w", in.TID, err)
		}
	}
}
