package unix

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// KernelPrctlMMMapSize asks the kernel for its size of struct prctl_mm_map
// (prctl PR_SET_MM, PR_SET_MM_MAP_SIZE; Linux 3.18). It changes nothing.
func KernelPrctlMMMapSize() (int, error) {
	var size uint32
	_, _, e := unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP_SIZE, uintptr(unsafe.Pointer(&size)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(size), nil
}
