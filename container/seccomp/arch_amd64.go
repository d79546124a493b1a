package seccomp

import "golang.org/x/sys/unix"

const (
	nativeArch     = unix.AUDIT_ARCH_X86_64
	nativeArchName = "SCMP_ARCH_X86_64"
	// x32 system calls share AUDIT_ARCH_X86_64 and set this bit in nr.
	x32Bit = 0x40000000
)

var syscallTable = syscallsAMD64
