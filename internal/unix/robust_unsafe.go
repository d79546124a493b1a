package unix

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// GetRobustList returns the robust futex list head address and its length
// (struct robust_list_head, 24 on x86-64) registered by thread tid.
func GetRobustList(tid int) (head uint64, length uint64, err error) {
	var h, l uintptr
	_, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid), uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return 0, 0, e
	}
	return uint64(h), uint64(l), nil
}
