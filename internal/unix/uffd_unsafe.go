package unix

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Userfaultfd calls userfaultfd(2). flags are O_CLOEXEC, O_NONBLOCK and
// UFFD_USER_MODE_ONLY.
func Userfaultfd(flags int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(flags), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// UserfaultfdDev makes a userfaultfd through /dev/userfaultfd (Linux 6.1),
// which the device's file permissions may allow where the system call does
// not. flags are as for Userfaultfd.
func UserfaultfdDev(flags int) (int, error) {
	dev, err := unix.Open("/dev/userfaultfd", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dev)
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(dev), uintptr(USERFAULTFD_IOC_NEW), uintptr(flags))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	return errnoErr(e)
}

// UffdAPI runs UFFDIO_API: the handshake that enables features. It must be
// the first ioctl on a new userfaultfd, and succeeds only once.
func UffdAPI(fd int, api *UffdioAPI) error {
	return ioctlPtr(fd, UFFDIO_API, unsafe.Pointer(api))
}

// UffdRegister runs UFFDIO_REGISTER.
func UffdRegister(fd int, reg *UffdioRegister) error {
	return ioctlPtr(fd, UFFDIO_REGISTER, unsafe.Pointer(reg))
}

// UffdUnregister runs UFFDIO_UNREGISTER.
func UffdUnregister(fd int, r *UffdioRange) error {
	return ioctlPtr(fd, UFFDIO_UNREGISTER, unsafe.Pointer(r))
}

// UffdWake runs UFFDIO_WAKE.
func UffdWake(fd int, r *UffdioRange) error {
	return ioctlPtr(fd, UFFDIO_WAKE, unsafe.Pointer(r))
}

// UffdCopy runs UFFDIO_COPY. c.Src must be memory that cannot move (not a Go
// stack): prefer UffdCopyFrom. EEXIST means the page is already there.
func UffdCopy(fd int, c *UffdioCopy) error {
	return ioctlPtr(fd, UFFDIO_COPY, unsafe.Pointer(c))
}

// UffdCopyFrom copies src to dst in the registered range with UFFDIO_COPY and
// returns the number of bytes copied (which may be short, with EAGAIN).
func UffdCopyFrom(fd int, dst uint64, src []byte, mode uint64) (int64, error) {
	if len(src) == 0 {
		return 0, nil
	}
	return uffdCopy(fd, dst, uintptr(unsafe.Pointer(&src[0])), len(src), mode)
}

// uffdCopy keeps src on the heap and alive for the call.
//
//go:uintptrescapes
//go:noinline
func uffdCopy(fd int, dst uint64, src uintptr, n int, mode uint64) (int64, error) {
	c := UffdioCopy{Dst: dst, Src: uint64(src), Len: uint64(n), Mode: mode}
	err := UffdCopy(fd, &c)
	if c.Copy > 0 {
		return c.Copy, err
	}
	return 0, err
}

// UffdZeropage runs UFFDIO_ZEROPAGE.
func UffdZeropage(fd int, z *UffdioZeropage) error {
	return ioctlPtr(fd, UFFDIO_ZEROPAGE, unsafe.Pointer(z))
}

// UffdWriteprotect runs UFFDIO_WRITEPROTECT.
func UffdWriteprotect(fd int, w *UffdioWriteprotect) error {
	return ioctlPtr(fd, UFFDIO_WRITEPROTECT, unsafe.Pointer(w))
}

// UffdContinue runs UFFDIO_CONTINUE.
func UffdContinue(fd int, c *UffdioContinue) error {
	return ioctlPtr(fd, UFFDIO_CONTINUE, unsafe.Pointer(c))
}

// ReadUffdMsgs reads as many messages as fit in msgs from a userfaultfd and
// returns how many it read.
func ReadUffdMsgs(fd int, msgs []UffdMsg) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&msgs[0])), len(msgs)*int(unsafe.Sizeof(msgs[0])))
	n, err := unix.Read(fd, b)
	if err != nil {
		return 0, err
	}
	return n / UffdMsgSize, nil // the kernel returns whole messages only
}
