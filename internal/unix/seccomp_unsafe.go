package unix

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SeccompActionAvail reports whether the kernel knows the seccomp filter
// return action (e.g. unix.SECCOMP_RET_USER_NOTIF): nil when it does,
// EOPNOTSUPP when it does not. It changes nothing.
func SeccompActionAvail(action uint32) error {
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action)))
	return errnoErr(e)
}

// SeccompGetNotifSizes returns the kernel's sizes of the user-notification
// structs (SECCOMP_GET_NOTIF_SIZES, Linux 5.0).
func SeccompGetNotifSizes() (SeccompNotifSizes, error) {
	var s SeccompNotifSizes
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_NOTIF_SIZES, 0, uintptr(unsafe.Pointer(&s)))
	return s, errnoErr(e)
}
