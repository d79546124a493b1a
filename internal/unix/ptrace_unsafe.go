package unix

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func ptrace(req int, tid int, addr, data uintptr) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	return r, errnoErr(e)
}

func ptracePtr(req int, tid int, addr uintptr, data unsafe.Pointer) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, uintptr(data), 0, 0)
	return r, errnoErr(e)
}

// PtraceSeize attaches to tid with PTRACE_SEIZE and the PTRACE_O_* options;
// the thread keeps running until PtraceInterrupt.
func PtraceSeize(tid int, options int) error {
	_, err := ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options))
	return err
}

// PtraceInterrupt stops a seized thread (PTRACE_INTERRUPT); wait for the
// stop with wait4(tid, __WALL).
func PtraceInterrupt(tid int) error {
	_, err := ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0)
	return err
}

// PtraceGetRegSet reads the register set nt (NT_PRSTATUS, NT_X86_XSTATE, ...)
// of a stopped thread into buf and returns the number of bytes the kernel
// wrote.
func PtraceGetRegSet(tid int, nt int, buf []byte) (int, error) {
	var iov unix.Iovec
	if len(buf) > 0 {
		iov.Base = &buf[0]
	}
	iov.SetLen(len(buf))
	_, err := ptracePtr(unix.PTRACE_GETREGSET, tid, uintptr(nt), unsafe.Pointer(&iov))
	if err != nil {
		return 0, err
	}
	return int(iov.Len), nil
}

// PtraceSetRegSet writes the register set nt of a stopped thread from buf.
func PtraceSetRegSet(tid, nt int, buf []byte) error {
	var iov unix.Iovec
	if len(buf) > 0 {
		iov.Base = &buf[0]
	}
	iov.SetLen(len(buf))
	_, err := ptracePtr(unix.PTRACE_SETREGSET, tid, uintptr(nt), unsafe.Pointer(&iov))
	return err
}

// PtraceGetSigmask returns the blocked-signal mask of a stopped thread (bit
// n-1 for signal n).
func PtraceGetSigmask(tid int) (uint64, error) {
	var mask uint64
	_, err := ptracePtr(unix.PTRACE_GETSIGMASK, tid, unsafe.Sizeof(mask), unsafe.Pointer(&mask))
	return mask, err
}

// PtraceSetSigmask sets the blocked-signal mask of a stopped thread.
func PtraceSetSigmask(tid int, mask uint64) error {
	_, err := ptracePtr(unix.PTRACE_SETSIGMASK, tid, unsafe.Sizeof(mask), unsafe.Pointer(&mask))
	return err
}

// PtraceGetRseqConfig returns the rseq registration of a stopped thread
// (PTRACE_GET_RSEQ_CONFIGURATION, Linux 5.13).
func PtraceGetRseqConfig(tid int) (RseqConfig, error) {
	var c RseqConfig
	_, err := ptracePtr(unix.PTRACE_GET_RSEQ_CONFIGURATION, tid, unsafe.Sizeof(c), unsafe.Pointer(&c))
	return c, err
}

// PtracePeekSiginfo copies pending signals of a stopped thread into out,
// starting at the off-th one of its private queue, or of the process-wide
// queue when shared is set. It returns how many it copied (0 past the end).
func PtracePeekSiginfo(tid int, off int, shared bool, out []Siginfo) (int, error) {
	if len(out) == 0 {
		return 0, nil
	}
	args := ptracePeeksiginfoArgs{Off: uint64(off), Nr: int32(len(out))}
	if shared {
		args.Flags = PTRACE_PEEKSIGINFO_SHARED
	}
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKSIGINFO, uintptr(tid),
		uintptr(unsafe.Pointer(&args)), uintptr(unsafe.Pointer(&out[0])), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// PtraceGetSyscallInfo describes the system call a stopped thread is in
// (PTRACE_GET_SYSCALL_INFO, Linux 5.3) and returns the number of bytes of
// information the kernel has, which may exceed PtraceSyscallInfoSize.
func PtraceGetSyscallInfo(tid int) (PtraceSyscallInfo, int, error) {
	var info PtraceSyscallInfo
	r, err := ptracePtr(unix.PTRACE_GET_SYSCALL_INFO, tid, unsafe.Sizeof(info), unsafe.Pointer(&info))
	return info, int(r), err
}
