package checkpoint

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// robustList returns tid's robust futex list head and length.
func robustList(tid int) (head, n uint64, err error) {
	_, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid), uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&n)))
	if e != 0 {
		return 0, 0, e
	}
	return head, n, nil
}
