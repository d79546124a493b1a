package unix

import "golang.org/x/sys/unix"

// XstateSize returns the size of the XSAVE area for the features enabled in
// XCR0 (CPUID leaf 0xD, subleaf 0, EBX): the size of an NT_X86_XSTATE
// register set on this machine.
func XstateSize() (int, error) {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 0xd {
		return 0, unix.ENOTSUP
	}
	if !osxsave() {
		return 0, unix.ENOTSUP
	}
	_, ebx, _, _ := cpuid(0xd, 0)
	if ebx == 0 {
		return 0, unix.ENOTSUP
	}
	return int(ebx), nil
}

// XCR0 returns the XSAVE feature mask the kernel enabled (xgetbv 0), or 0
// when the CPU or kernel does not use XSAVE.
func XCR0() uint64 {
	if !osxsave() {
		return 0
	}
	eax, edx := xgetbv(0)
	return uint64(edx)<<32 | uint64(eax)
}

// osxsave reports CPUID.1:ECX.OSXSAVE: the kernel enabled XSAVE and xgetbv.
func osxsave() bool {
	_, _, ecx, _ := cpuid(1, 0)
	return ecx&(1<<27) != 0
}
