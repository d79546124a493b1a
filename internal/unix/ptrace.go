package unix

import "encoding/binary"

// Regset note types for PtraceGetRegSet and PtraceSetRegSet (elf.h).
const (
	NT_PRSTATUS   = 1     // struct user_regs_struct
	NT_PRFPREG    = 2     // struct user_fpregs_struct (fxsave)
	NT_X86_XSTATE = 0x202 // the XSAVE area; its size is XstateSize
)

// UserRegsSize is the size of x86-64 struct user_regs_struct (NT_PRSTATUS).
const UserRegsSize = 27 * 8

// RseqConfig is struct ptrace_rseq_configuration (Linux 5.13).
type RseqConfig struct {
	RseqABIPointer uint64 // address of the thread's struct rseq, 0 if none
	RseqABISize    uint32
	Signature      uint32
	Flags          uint32
	_              uint32
}

// RseqConfigSize is the size of struct ptrace_rseq_configuration.
const RseqConfigSize = 24

// SiginfoSize is the size of siginfo_t.
const SiginfoSize = 128

// Siginfo is a raw siginfo_t. The accessors read the fields every signal
// has; the rest of Raw depends on the signal and its code.
type Siginfo struct {
	Raw [SiginfoSize]byte
}

// Signo is si_signo.
func (s *Siginfo) Signo() int32 { return int32(binary.LittleEndian.Uint32(s.Raw[0:])) }

// Errno is si_errno.
func (s *Siginfo) Errno() int32 { return int32(binary.LittleEndian.Uint32(s.Raw[4:])) }

// Code is si_code.
func (s *Siginfo) Code() int32 { return int32(binary.LittleEndian.Uint32(s.Raw[8:])) }

// ptracePeeksiginfoArgs is struct ptrace_peeksiginfo_args.
type ptracePeeksiginfoArgs struct {
	Off   uint64
	Flags uint32
	Nr    int32
}

// PTRACE_PEEKSIGINFO_SHARED selects the process-wide queue.
const PTRACE_PEEKSIGINFO_SHARED = 1

// Operations reported in PtraceSyscallInfo.Op.
const (
	PTRACE_SYSCALL_INFO_NONE    = 0
	PTRACE_SYSCALL_INFO_ENTRY   = 1
	PTRACE_SYSCALL_INFO_EXIT    = 2
	PTRACE_SYSCALL_INFO_SECCOMP = 3
)

// PtraceSyscallInfo is struct ptrace_syscall_info (Linux 5.3).
type PtraceSyscallInfo struct {
	Op                 uint8 // PTRACE_SYSCALL_INFO_*
	_                  uint8
	Flags              uint16
	Arch               uint32 // AUDIT_ARCH_*
	InstructionPointer uint64
	StackPointer       uint64
	Data               [64]byte // union, read with the accessor of Op
}

// PtraceSyscallInfoSize is the size of struct ptrace_syscall_info.
const PtraceSyscallInfoSize = 88

// Entry returns the system call number and arguments at a syscall-entry stop
// (also valid at a seccomp stop).
func (i *PtraceSyscallInfo) Entry() (nr uint64, args [6]uint64) {
	le := binary.LittleEndian
	nr = le.Uint64(i.Data[0:])
	for k := range args {
		args[k] = le.Uint64(i.Data[8+8*k:])
	}
	return nr, args
}

// Exit returns the return value at a syscall-exit stop.
func (i *PtraceSyscallInfo) Exit() (rval int64, isError bool) {
	return int64(binary.LittleEndian.Uint64(i.Data[0:])), i.Data[8] != 0
}

// SeccompData returns the SECCOMP_RET_DATA of a seccomp stop.
func (i *PtraceSyscallInfo) SeccompData() uint32 {
	return binary.LittleEndian.Uint32(i.Data[56:])
}
