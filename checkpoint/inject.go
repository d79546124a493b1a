package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

// asker queries, by injected system calls, the state that cannot be read
// from outside. Every call it makes is side-effect free; the one change it
// makes, a scratch mapping for results, is undone by close.
type asker struct {
	pid     int
	mem     *mem.Process
	ip      uint64 // a syscall instruction in [vdso]
	scratch uint64 // a private page for results, 0 until mapped
	inj     map[int]*ptrace.Injector
	own     map[int]int // each thread's id as the process itself sees it
}

const scratchSize = 4 * mem.PageSize

// findSyscall returns the address of a `syscall` instruction in [vdso].
func findSyscall(m *mem.Process, vmas []image.VMA) (uint64, error) {
	for _, v := range vmas {
		if v.Name != "[vdso]" {
			continue
		}
		buf := make([]byte, v.Len())
		if err := m.Read(v.Start, buf); err != nil {
			return 0, err
		}
		if i := bytes.Index(buf, []byte{0x0f, 0x05}); i >= 0 {
			return v.Start + uint64(i), nil
		}
	}
	return 0, fmt.Errorf("no syscall instruction found in [vdso]")
}

func (a *asker) injector(tid int) *ptrace.Injector {
	in := a.inj[tid]
	if in == nil {
		in = &ptrace.Injector{TID: tid, IP: a.ip}
		a.inj[tid] = in
	}
	return in
}

func (a *asker) call(tid int, nr uintptr, args ...uint64) (uint64, error) {
	return a.injector(tid).Syscall(nr, args...)
}

// mapScratch maps the results page. It must run after the maps were read.
func (a *asker) mapScratch() error {
	addr, err := a.call(a.pid, unix.SYS_MMAP, 0, scratchSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE, ^uint64(0), 0)
	if err != nil {
		return fmt.Errorf("map a scratch page: %w", err)
	}
	a.scratch = addr
	return nil
}

func (a *asker) close() error {
	if a.scratch == 0 {
		return nil
	}
	_, err := a.call(a.pid, unix.SYS_MUNMAP, a.scratch, scratchSize)
	a.scratch = 0
	return err
}

func (a *asker) read(off uint64, n int) ([]byte, error) {
	buf := make([]byte, n)
	err := a.mem.Read(a.scratch+off, buf)
	return buf, err
}

func (a *asker) u64(off uint64) (uint64, error) {
	b, err := a.read(off, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// sigactions returns every installed signal action. Only signals that are
// caught or ignored (SigCgt|SigIgn of /proc/PID/status) can differ from the
// default, and SIGCHLD, whose SA_NOCLDWAIT matters even with SIG_DFL.
func (a *asker) sigactions(set uint64) ([]image.SigAction, error) {
	var out []image.SigAction
	set |= 1 << (unix.SIGCHLD - 1)
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) || set&(1<<(sig-1)) == 0 {
			continue
		}
		if _, err := a.call(a.pid, unix.SYS_RT_SIGACTION, uint64(sig), 0, a.scratch, 8); err != nil {
			return nil, fmt.Errorf("rt_sigaction(%d): %w", sig, err)
		}
		b, err := a.read(0, 32)
		if err != nil {
			return nil, err
		}
		act := image.SigAction{
			Signal:   sig,
			Handler:  binary.LittleEndian.Uint64(b[0:]),
			Flags:    binary.LittleEndian.Uint64(b[8:]),
			Restorer: binary.LittleEndian.Uint64(b[16:]),
			Mask:     binary.LittleEndian.Uint64(b[24:]),
		}
		if act.Handler == 0 && act.Flags == 0 && act.Mask == 0 {
			continue // SIG_DFL with nothing else: the default
		}
		out = append(out, act)
	}
	return out, nil
}

func (a *asker) itimers() ([3]image.ITimer, error) {
	var t [3]image.ITimer
	for which := 0; which < 3; which++ {
		if _, err := a.call(a.pid, unix.SYS_GETITIMER, uint64(which), a.scratch); err != nil {
			return t, fmt.Errorf("getitimer(%d): %w", which, err)
		}
		b, err := a.read(0, 32)
		if err != nil {
			return t, err
		}
		iv := int64(binary.LittleEndian.Uint64(b[0:]))*1e6 + int64(binary.LittleEndian.Uint64(b[8:]))
		v := int64(binary.LittleEndian.Uint64(b[16:]))*1e6 + int64(binary.LittleEndian.Uint64(b[24:]))
		t[which] = image.ITimer{IntervalUsec: iv, ValueUsec: v}
	}
	return t, nil
}

func (a *asker) timer(id int) (interval, value int64, overrun int, err error) {
	if _, err = a.call(a.pid, unix.SYS_TIMER_GETTIME, uint64(id), a.scratch); err != nil {
		return 0, 0, 0, fmt.Errorf("timer_gettime(%d): %w", id, err)
	}
	b, err := a.read(0, 32)
	if err != nil {
		return 0, 0, 0, err
	}
	interval = int64(binary.LittleEndian.Uint64(b[0:]))*1e9 + int64(binary.LittleEndian.Uint64(b[8:]))
	value = int64(binary.LittleEndian.Uint64(b[16:]))*1e9 + int64(binary.LittleEndian.Uint64(b[24:]))
	ov, err := a.call(a.pid, unix.SYS_TIMER_GETOVERRUN, uint64(id))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("timer_getoverrun(%d): %w", id, err)
	}
	return interval, value, int(ov), nil
}

func (a *asker) prctlInt(tid int, option int) (int, error) {
	if _, err := a.call(tid, unix.SYS_PRCTL, uint64(option), a.scratch); err != nil {
		return 0, err
	}
	v, err := a.u64(0)
	return int(int32(v)), err
}

func (a *asker) prctl(option int) (int, error) {
	v, err := a.call(a.pid, unix.SYS_PRCTL, uint64(option))
	return int(v), err
}

func (a *asker) brk() (uint64, error) { return a.call(a.pid, unix.SYS_BRK, 0) }

func (a *asker) altstack(tid int) (image.AltStack, error) {
	if _, err := a.call(tid, unix.SYS_SIGALTSTACK, 0, a.scratch); err != nil {
		return image.AltStack{}, fmt.Errorf("sigaltstack: %w", err)
	}
	b, err := a.read(0, 24)
	if err != nil {
		return image.AltStack{}, err
	}
	return image.AltStack{
		SP:    binary.LittleEndian.Uint64(b[0:]),
		Flags: int32(binary.LittleEndian.Uint32(b[8:])),
		Size:  binary.LittleEndian.Uint64(b[16:]),
	}, nil
}

func (a *asker) tidAddress(tid int) (uint64, error) {
	if _, err := a.call(tid, unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, a.scratch); err != nil {
		return 0, fmt.Errorf("PR_GET_TID_ADDRESS: %w", err)
	}
	return a.u64(0)
}

// requeue queues again, in the thread that took it, every signal that a
// thread dequeued while being stepped (rt_tgsigqueueinfo to oneself keeps
// the original siginfo).
func (a *asker) requeue() error {
	for tid, in := range a.inj {
		for len(in.Deferred) > 0 {
			si := in.Deferred[0]
			in.Deferred = in.Deferred[1:]
			if err := a.mem.Write(a.scratch, si); err != nil {
				return err
			}
			sig := binary.LittleEndian.Uint32(si)
			if _, err := a.call(tid, unix.SYS_RT_TGSIGQUEUEINFO, uint64(a.own[a.pid]), uint64(a.own[tid]), uint64(sig), a.scratch); err != nil {
				return fmt.Errorf("tid %d: queue signal %d again: %w", tid, sig, err)
			}
		}
	}
	return nil
}

// finish switches single-stepping off in every thread that was stepped (see
// ptrace.Injector.Finish), so that godwit dying from now on leaves no trap
// behind. Signals dequeued meanwhile are queued again.
func (a *asker) finish() error {
	for tid, in := range a.inj {
		if err := in.Finish(); err != nil {
			return err
		}
		for _, si := range in.Deferred {
			sig := binary.LittleEndian.Uint32(si)
			switch unix.Signal(sig) {
			case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
				// A stopped process (^Z) meets its stop again on the way
				// out: send it again; it is delivered once detached, and the
				// process stays stopped as it was.
				if err := unix.Tgkill(a.pid, tid, unix.Signal(sig)); err != nil {
					return fmt.Errorf("tid %d: stop signal %d again: %w", tid, sig, err)
				}
			default:
				return fmt.Errorf("tid %d: signal %d arrived while injected calls ended", tid, sig)
			}
		}
		in.Deferred = nil
	}
	return nil
}
