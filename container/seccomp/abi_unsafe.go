package seccomp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Data is struct seccomp_data.
type Data struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

// Notif is struct seccomp_notif (80 bytes).
type Notif struct {
	ID    uint64
	PID   uint32
	Flags uint32
	Data  Data
}

// NotifResp is struct seccomp_notif_resp (24 bytes).
type NotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

const (
	sizeofNotif     = 80
	sizeofNotifResp = 24
	sizeofData      = 64
)

var (
	_ [sizeofNotif]byte     = [unsafe.Sizeof(Notif{})]byte{}
	_ [sizeofNotifResp]byte = [unsafe.Sizeof(NotifResp{})]byte{}
	_ [sizeofData]byte      = [unsafe.Sizeof(Data{})]byte{}
)

func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// recvNotif blocks in SECCOMP_IOCTL_NOTIF_RECV.
func recvNotif(fd int, n *Notif) error {
	*n = Notif{}
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

// sendResp answers a notification.
func sendResp(fd int, r *NotifResp) error {
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(r))
}

// idValid reports whether notification id is still pending (its task has
// not died or been interrupted): ENOENT otherwise.
func idValid(fd int, id uint64) error {
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id))
}

// install loads prog on the calling thread with SECCOMP_SET_MODE_FILTER and
// returns the listener fd when flags include NEW_LISTENER.
func install(prog []unix.SockFilter, flags uintptr) (int, error) {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
