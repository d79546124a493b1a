// Package ptrace drives stopped tasks: seizing, waiting, registers and
// syscall injection.
//
// Linux binds a tracee to the tracer *thread*, so every request about a task
// must come from the OS thread that attached it. Run executes a function on
// a fresh goroutine locked to its own OS thread; all calls of this package
// for the tasks attached inside that function must happen within it (and on
// that goroutine). The thread is never unlocked: when the function returns,
// the goroutine exits and the runtime discards the thread, which detaches
// anything still attached to it.
package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Run calls f on a goroutine locked to a dedicated OS thread and returns its
// result. Tasks attached inside f can only be driven from inside f.
func Run(f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread is thrown away with the goroutine.
		defer func() {
			if r := recover(); r != nil {
				ch <- fmt.Errorf("ptrace: panic on tracer thread: %v\n%s", r, debug.Stack())
			}
		}()
		ch <- f()
	}()
	return <-ch
}

// Options used for every seized task.
const (
	OptsDump    = unix.PTRACE_O_TRACESYSGOOD
	OptsRestore = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_EXITKILL
)

// Seize attaches to tid without stopping it.
func Seize(tid int, opts int) error {
	return ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(opts))
}

// Interrupt asks a seized task to stop.
func Interrupt(tid int) error { return ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0) }

// Detach detaches tid, delivering sig (0 for none).
func Detach(tid int, sig int) error { return ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig)) }

// Cont resumes tid.
func Cont(tid int, sig int) error { return ptrace(unix.PTRACE_CONT, tid, 0, uintptr(sig)) }

// Wait waits for tid to change state (any stop or exit) and returns its status.
func Wait(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		return ws, err
	}
}

// WaitStopped waits for tid to stop. It fails if the task exits instead.
func WaitStopped(tid int) (unix.WaitStatus, error) {
	ws, err := Wait(tid)
	if err != nil {
		return ws, fmt.Errorf("wait for tid %d: %w", tid, err)
	}
	if !ws.Stopped() {
		return ws, fmt.Errorf("tid %d: %w (status %#x)", tid, ErrNotStopped, uint32(ws))
	}
	return ws, nil
}

// ErrNotStopped is returned when a task exits or is killed while godwit
// expected it to stop.
var ErrNotStopped = errors.New("task did not stop (it exited or was killed)")

// Regs are the general registers (struct user_regs_struct).
type Regs = unix.PtraceRegs

// GetRegs reads tid's general registers.
func GetRegs(tid int) (Regs, error) {
	var r Regs
	err := unix.PtraceGetRegs(tid, &r)
	return r, err
}

// SetRegs writes tid's general registers.
func SetRegs(tid int, r *Regs) error { return unix.PtraceSetRegs(tid, r) }

// EncodeRegs returns the raw bytes of r as the kernel lays them out.
func EncodeRegs(r *Regs) []byte {
	b := make([]byte, 0, unsafe.Sizeof(*r))
	b, _ = binary.Append(b, binary.LittleEndian, r)
	return b
}

// DecodeRegs parses raw register bytes written by EncodeRegs.
func DecodeRegs(b []byte) (Regs, error) {
	var r Regs
	if len(b) != int(unsafe.Sizeof(r)) {
		return r, fmt.Errorf("registers: %d bytes, want %d", len(b), unsafe.Sizeof(r))
	}
	_, err := binary.Decode(b, binary.LittleEndian, &r)
	return r, err
}

// Regset note types.
const (
	NTPrstatus  = 1
	NTX86Xstate = 0x202
)

// GetXstate reads tid's extended FPU state (NT_X86_XSTATE).
func GetXstate(tid int, size int) ([]byte, error) {
	buf := make([]byte, size)
	n, err := getRegset(tid, NTX86Xstate, buf)
	if err != nil {
		return nil, fmt.Errorf("tid %d: PTRACE_GETREGSET NT_X86_XSTATE: %w", tid, err)
	}
	return buf[:n], nil
}

// SetXstate writes tid's extended FPU state.
func SetXstate(tid int, buf []byte) error {
	if err := setRegset(tid, NTX86Xstate, buf); err != nil {
		return fmt.Errorf("tid %d: PTRACE_SETREGSET NT_X86_XSTATE: %w", tid, err)
	}
	return nil
}

// GetSigmask reads tid's blocked signal mask.
func GetSigmask(tid int) (uint64, error) {
	var m uint64
	err := ptrace(unix.PTRACE_GETSIGMASK, tid, 8, uintptr(unsafe.Pointer(&m)))
	return m, err
}

// SetSigmask sets tid's blocked signal mask.
func SetSigmask(tid int, m uint64) error {
	return ptrace(unix.PTRACE_SETSIGMASK, tid, 8, uintptr(unsafe.Pointer(&m)))
}

// RseqConfig is struct ptrace_rseq_configuration.
type RseqConfig struct {
	Addr  uint64
	Size  uint32
	Sig   uint32
	Flags uint32
	_     uint32
}

const ptraceGetRseqConfiguration = 0x420f

// GetRseq reads tid's rseq registration (Addr 0 when none).
func GetRseq(tid int) (RseqConfig, error) {
	var c RseqConfig
	err := ptrace(ptraceGetRseqConfiguration, tid, unsafe.Sizeof(c), uintptr(unsafe.Pointer(&c)))
	return c, err
}

// PeekSiginfo returns the queued siginfos of tid: its private queue, or the
// process-wide one when shared is set.
func PeekSiginfo(tid int, shared bool) ([][]byte, error) {
	type args struct {
		Off   uint64
		Flags uint32
		Nr    int32
	}
	var out [][]byte
	buf := make([]byte, 128*32)
	for off := uint64(0); ; {
		a := args{Off: off, Nr: 32}
		if shared {
			a.Flags = 1 // PTRACE_PEEKSIGINFO_SHARED
		}
		r, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKSIGINFO, uintptr(tid),
			uintptr(unsafe.Pointer(&a)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
		if e != 0 {
			return nil, e
		}
		if r == 0 {
			return out, nil
		}
		for i := 0; i < int(r); i++ {
			out = append(out, append([]byte(nil), buf[i*128:(i+1)*128]...))
		}
		off += uint64(r)
	}
}

// GetEventMsg returns the message of the last ptrace event (e.g. a new child's pid).
func GetEventMsg(tid int) (uint, error) { return unix.PtraceGetEventMsg(tid) }

func getRegset(tid, nt int, buf []byte) (int, error) {
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	err := ptrace(unix.PTRACE_GETREGSET, tid, uintptr(nt), uintptr(unsafe.Pointer(&iov)))
	return int(iov.Len), err
}

func setRegset(tid, nt int, buf []byte) error {
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	return ptrace(unix.PTRACE_SETREGSET, tid, uintptr(nt), uintptr(unsafe.Pointer(&iov)))
}

func ptrace(req int, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// GetSiginfo returns the raw siginfo of the signal tid is stopped for.
func GetSiginfo(tid int) ([]byte, error) {
	buf := make([]byte, 128)
	err := ptrace(unix.PTRACE_GETSIGINFO, tid, 0, uintptr(unsafe.Pointer(&buf[0])))
	return buf, err
}
