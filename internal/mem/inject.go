package mem

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

// CreateUFFDIn makes a userfaultfd inside the process pid by an injected
// userfaultfd(flags) call, takes it into this process with pidfd_getfd and
// closes the process's own copy by another injected call, so that the
// process ends with the same descriptors as before. The fd returned belongs
// to the caller; it acts on the memory of pid (a userfaultfd is bound to the
// address space of the process that created it) until it is closed.
//
// in must drive a thread of pid that is stopped and attached on the calling
// thread (inside ptrace.Run), with its signals blocked; pid is its thread
// group id as this process sees it. flags are those of userfaultfd(2):
// O_CLOEXEC, O_NONBLOCK, and UFFD_USER_MODE_ONLY, without which the target
// needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1 (the injected call
// fails with EPERM otherwise). A user-mode-only fd cannot serve faults the
// kernel takes on the process's behalf (read(2) into a missing page gets
// EFAULT), which is enough for write-protect tracking but not for post-copy.
//
// Both Track and restore use it. Another thread of pid that closes or
// replaces descriptors it does not own between the two injected calls could
// race with it; programs do not do that.
func CreateUFFDIn(in *ptrace.Injector, pid int, flags int) (int, error) {
	ret, err := in.Syscall(unix.SYS_USERFAULTFD, uint64(flags))
	if err != nil {
		return -1, fmt.Errorf("pid %d: injected userfaultfd(%#x): %w", pid, flags, err)
	}
	theirs := int(ret)
	ours := -1
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		ours, err = unix.PidfdGetfd(pidfd, theirs, 0)
		unix.Close(pidfd)
	}
	if err != nil {
		err = fmt.Errorf("pid %d: take its userfaultfd %d with pidfd_getfd: %w", pid, theirs, err)
	}
	if _, cerr := in.Syscall(unix.SYS_CLOSE, uint64(theirs)); cerr != nil {
		err = errors.Join(err, fmt.Errorf("pid %d: injected close(%d) of its userfaultfd: %w", pid, theirs, cerr))
	}
	if err != nil {
		if ours >= 0 {
			unix.Close(ours)
		}
		return -1, err
	}
	return ours, nil
}

// injectInto runs fn with an Injector on one thread of pid, seized with
// PTRACE_SEIZE and stopped with PTRACE_INTERRUPT (no SIGSTOP, nothing the
// process can observe but the time). Everything happens on one locked OS
// thread (ptrace.Run). Afterwards, whether fn failed or not, signals a step
// dequeued are queued again, single-stepping is switched off
// (as Injector.Finish does), the thread's signal mask is put back and it is
// detached: it runs on exactly as before. A system call it was blocked in
// is restarted as a signal that it ignores would restart it (Injector
// puts the registers back after every call, and the kernel's restart
// logic runs when the thread resumes from its stop).
func injectInto(pid int, fn func(in *ptrace.Injector) error) error {
	return ptrace.Run(func() error {
		tid, err := seizeOne(pid)
		if err != nil {
			return err
		}
		mask, err := ptrace.GetSigmask(tid)
		if err != nil {
			return errors.Join(fmt.Errorf("tid %d: PTRACE_GETSIGMASK: %w", tid, err), detach(tid))
		}
		// Block every signal while calls are injected, so that the steps
		// dequeue none (SIGSTOP and SIGKILL still can come).
		if err := ptrace.SetSigmask(tid, ^uint64(0)); err != nil {
			return errors.Join(fmt.Errorf("tid %d: block signals: %w", tid, err), release(tid, mask))
		}
		ip, err := vdsoSyscall(pid)
		if err != nil {
			return errors.Join(err, release(tid, mask))
		}
		in := &ptrace.Injector{TID: tid, IP: ip}
		err = fn(in)
		return errors.Join(err, finish(in, pid), release(tid, mask))
	})
}

// seizeOne seizes a live thread of pid, the leader when it can, and waits
// for its interrupt stop. On error nothing stays attached.
func seizeOne(pid int) (int, error) {
	tids, err := procfs.Tasks(pid)
	if err != nil {
		return 0, fmt.Errorf("pid %d: list threads: %w", pid, err)
	}
	// The leader first: it is the thread most likely to stay.
	for i, tid := range tids {
		if tid == pid {
			tids[0], tids[i] = tids[i], tids[0]
		}
	}
	var last error
	for _, tid := range tids {
		if st, err := procfs.ReadTaskStatus(pid, tid); err != nil || st.State == 'Z' || st.State == 'X' {
			continue // gone, or an exited leader whose threads live on
		}
		if err := ptrace.Seize(tid, ptrace.OptsDump); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			if errors.Is(err, unix.EPERM) {
				if st, serr := procfs.ReadTaskStatus(pid, tid); serr == nil && st.TracerPid != 0 {
					return 0, fmt.Errorf("tid %d: PTRACE_SEIZE: already traced by pid %d: %w", tid, st.TracerPid, err)
				}
			}
			return 0, fmt.Errorf("tid %d: PTRACE_SEIZE: %w", tid, err)
		}
		if err := ptrace.Interrupt(tid); err != nil {
			last = errors.Join(fmt.Errorf("tid %d: PTRACE_INTERRUPT: %w", tid, err), detach(tid))
			continue
		}
		if err := waitInterrupt(tid); err != nil {
			last = err
			continue
		}
		return tid, nil
	}
	if last == nil {
		last = unix.ESRCH
	}
	return 0, fmt.Errorf("pid %d: no thread could be stopped: %w", pid, last)
}

// waitInterrupt waits for the interrupt stop (or group stop) of a thread
// just seized and interrupted. A signal that the thread was about to take
// meanwhile stops it first (signal-delivery stop): it is delivered as it
// would have been, and the interrupt stop comes after. On error the thread
// is detached (or gone).
func waitInterrupt(tid int) error {
	for i := 0; ; i++ {
		ws, err := ptrace.Wait(tid)
		if err != nil {
			return errors.Join(fmt.Errorf("wait for tid %d: %w", tid, err), detach(tid))
		}
		if !ws.Stopped() {
			return fmt.Errorf("tid %d: %w (status %#x)", tid, ptrace.ErrNotStopped, uint32(ws))
		}
		if uint32(ws)>>16 == unix.PTRACE_EVENT_STOP {
			return nil // interrupt stop, or group stop of a stopped process
		}
		sig := int(ws.StopSignal())
		if i >= 16 {
			// Signals keep coming: give up, letting the one pending go.
			if err := ptrace.Detach(tid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("tid %d: detach: %w", tid, err)
			}
			return fmt.Errorf("tid %d: no interrupt stop: signals keep arriving", tid)
		}
		if err := ptrace.Cont(tid, sig); err != nil {
			return errors.Join(fmt.Errorf("tid %d: PTRACE_CONT: %w", tid, err), detach(tid))
		}
	}
}

// finish queues again the signals the steps dequeued (see requeue) and ends
// the injected calls (Injector.Finish), which may itself meet a signal:
// then again.
func finish(in *ptrace.Injector, pid int) error {
	for round := 0; ; round++ {
		if len(in.Deferred) > 0 {
			if err := requeue(in, pid); err != nil {
				return err
			}
		}
		if err := in.Finish(); err != nil {
			return err
		}
		if len(in.Deferred) == 0 {
			return nil
		}
		if round >= 4 {
			return fmt.Errorf("tid %d: signals keep arriving while injected calls end", in.TID)
		}
	}
}

// siginfoSize is the size of siginfo_t.
const siginfoSize = 128

// requeue queues every signal of in.Deferred again in the thread that
// dequeued it, with its original siginfo, by an injected
// rt_tgsigqueueinfo (allowed for any si_code when a process signals
// itself). The siginfo is written on the thread's stack below the red zone,
// where a signal frame could be written at any time: nothing lives there.
func requeue(in *ptrace.Injector, pid int) error {
	tgid, err := in.Syscall(unix.SYS_GETPID)
	if err != nil {
		return err
	}
	tid, err := in.Syscall(unix.SYS_GETTID)
	if err != nil {
		return err
	}
	regs, err := ptrace.GetRegs(in.TID)
	if err != nil {
		return fmt.Errorf("tid %d: get registers: %w", in.TID, err)
	}
	buf := (regs.Rsp - 128 - siginfoSize) &^ 15
	m, err := Open(pid, true)
	if err != nil {
		return err
	}
	defer m.Close()
	for len(in.Deferred) > 0 {
		si := in.Deferred[0]
		if len(si) < siginfoSize {
			si = append(si, make([]byte, siginfoSize-len(si))...)
		}
		if err := m.Write(buf, si[:siginfoSize]); err != nil {
			return err
		}
		sig := binary.LittleEndian.Uint32(si)
		if _, err := in.Syscall(unix.SYS_RT_TGSIGQUEUEINFO, tgid, tid, uint64(sig), buf); err != nil {
			return fmt.Errorf("tid %d: queue signal %d again: %w", in.TID, sig, err)
		}
		in.Deferred = in.Deferred[1:]
	}
	return nil
}

// release puts the signal mask back and detaches.
func release(tid int, mask uint64) error {
	var err error
	if e := ptrace.SetSigmask(tid, mask); e != nil && !errors.Is(e, unix.ESRCH) {
		err = fmt.Errorf("tid %d: restore signal mask: %w", tid, e)
	}
	return errors.Join(err, detach(tid))
}

func detach(tid int) error {
	if err := ptrace.Detach(tid, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("tid %d: detach: %w", tid, err)
	}
	return nil
}

// vdsoSyscall returns the address of a `syscall` instruction (0f 05) in the
// [vdso] of pid, where injected calls are pointed: no code is patched.
func vdsoSyscall(pid int) (uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	maps, err := procfs.ParseMaps(f)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	for _, v := range maps {
		if v.Path != "[vdso]" {
			continue
		}
		m, err := Open(pid, false)
		if err != nil {
			return 0, err
		}
		defer m.Close()
		buf := make([]byte, v.Len())
		if err := m.Read(v.Start, buf); err != nil {
			return 0, err
		}
		if i := bytes.Index(buf, []byte{0x0f, 0x05}); i >= 0 {
			return v.Start + uint64(i), nil
		}
	}
	return 0, fmt.Errorf("pid %d: no syscall instruction found in [vdso]", pid)
}
