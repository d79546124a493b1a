package unix

import "golang.org/x/sys/unix"

// Kinds of kcmp(2) comparisons.
const (
	KCMP_FILE      = 0 // same open file description (idx1, idx2: fds)
	KCMP_VM        = 1 // same address space
	KCMP_FILES     = 2 // same fd table
	KCMP_FS        = 3 // same root, cwd and umask
	KCMP_SIGHAND   = 4 // same signal handler table
	KCMP_IO        = 5 // same I/O context
	KCMP_SYSVSEM   = 6 // same System V semaphore undo list
	KCMP_EPOLL_TFD = 7 // idx2: address of a KcmpEpollSlot
)

// KcmpEpollSlot is struct kcmp_epoll_slot, for KCMP_EPOLL_TFD.
type KcmpEpollSlot struct {
	Efd  uint32
	Tfd  uint32
	Toff uint32
}

// Kcmp compares kernel objects of two processes: 0 when they are the same,
// 1 or 2 to order them (pid1's is less, or greater, after the kernel's
// pointer obfuscation), 3 when they are not ordered.
func Kcmp(pid1, pid2, typ int, idx1, idx2 uintptr) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), idx1, idx2, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
