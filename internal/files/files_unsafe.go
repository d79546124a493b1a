package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kcmpEpollTfd compares fd of pid with the toff-th registration of target
// number tfd in epoll instance efd of the same process: 0 when they are the
// same file.
func kcmpEpollTfd(pid, fd, efd, tfd, toff int) (int, error) {
	slot := struct{ efd, tfd, toff uint32 }{uint32(efd), uint32(tfd), uint32(toff)}
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), 7 /* KCMP_EPOLL_TFD */, uintptr(fd),
		uintptr(unsafe.Pointer(&slot)), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// tfdIocSetTicks is TFD_IOC_SET_TICKS, _IOW('T', 0, __u64).
const tfdIocSetTicks = 0x40085400

// setTimerTicks sets the expirations a timerfd reports as not yet read.
func setTimerTicks(fd int, ticks uint64) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), tfdIocSetTicks, uintptr(unsafe.Pointer(&ticks)))
	if e != 0 {
		return e
	}
	return nil
}
