package unix

import "encoding/binary"

// UFFD_API is the API version asked for in UffdioAPI.API.
const UFFD_API = 0xaa

// UFFD_USER_MODE_ONLY is the userfaultfd(2) flag for an fd that only handles
// faults taken in user mode (Linux 5.11). It is what an unprivileged user
// gets when vm.unprivileged_userfaultfd is 0.
const UFFD_USER_MODE_ONLY = 1

// Features, asked for and reported in UffdioAPI.Features.
const (
	UFFD_FEATURE_PAGEFAULT_FLAG_WP  = 1 << 0
	UFFD_FEATURE_EVENT_FORK         = 1 << 1
	UFFD_FEATURE_EVENT_REMAP        = 1 << 2
	UFFD_FEATURE_EVENT_REMOVE       = 1 << 3
	UFFD_FEATURE_MISSING_HUGETLBFS  = 1 << 4
	UFFD_FEATURE_MISSING_SHMEM      = 1 << 5
	UFFD_FEATURE_EVENT_UNMAP        = 1 << 6
	UFFD_FEATURE_SIGBUS             = 1 << 7
	UFFD_FEATURE_THREAD_ID          = 1 << 8
	UFFD_FEATURE_MINOR_HUGETLBFS    = 1 << 9
	UFFD_FEATURE_MINOR_SHMEM        = 1 << 10
	UFFD_FEATURE_EXACT_ADDRESS      = 1 << 11
	UFFD_FEATURE_WP_HUGETLBFS_SHMEM = 1 << 12
	UFFD_FEATURE_WP_UNPOPULATED     = 1 << 13 // 6.4
	UFFD_FEATURE_POISON             = 1 << 14 // 6.6
	UFFD_FEATURE_WP_ASYNC           = 1 << 15 // 6.7
	UFFD_FEATURE_MOVE               = 1 << 16 // 6.8
)

// Registration modes (UffdioRegister.Mode).
const (
	UFFDIO_REGISTER_MODE_MISSING = 1 << 0
	UFFDIO_REGISTER_MODE_WP      = 1 << 1
	UFFDIO_REGISTER_MODE_MINOR   = 1 << 2
)

// Modes of the range ioctls.
const (
	UFFDIO_COPY_MODE_DONTWAKE         = 1 << 0
	UFFDIO_COPY_MODE_WP               = 1 << 1
	UFFDIO_ZEROPAGE_MODE_DONTWAKE     = 1 << 0
	UFFDIO_WRITEPROTECT_MODE_WP       = 1 << 0
	UFFDIO_WRITEPROTECT_MODE_DONTWAKE = 1 << 1
	UFFDIO_CONTINUE_MODE_DONTWAKE     = 1 << 0
	UFFDIO_MOVE_MODE_DONTWAKE         = 1 << 0
	UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES  = 1 << 1
)

// Events (UffdMsg.Event) and page fault flags.
const (
	UFFD_EVENT_PAGEFAULT = 0x12
	UFFD_EVENT_FORK      = 0x13
	UFFD_EVENT_REMAP     = 0x14
	UFFD_EVENT_REMOVE    = 0x15
	UFFD_EVENT_UNMAP     = 0x16

	UFFD_PAGEFAULT_FLAG_WRITE = 1 << 0
	UFFD_PAGEFAULT_FLAG_WP    = 1 << 1
	UFFD_PAGEFAULT_FLAG_MINOR = 1 << 2
)

// UffdioAPI is struct uffdio_api.
type UffdioAPI struct {
	API      uint64 // UFFD_API
	Features uint64 // asked for; on return, every feature the kernel offers
	Ioctls   uint64 // on return: bit n set when ioctl number n is available
}

// UffdioRange is struct uffdio_range.
type UffdioRange struct {
	Start uint64
	Len   uint64
}

// UffdioRegister is struct uffdio_register.
type UffdioRegister struct {
	Range  UffdioRange
	Mode   uint64 // UFFDIO_REGISTER_MODE_*
	Ioctls uint64 // on return: range ioctls available
}

// UffdioCopy is struct uffdio_copy. Src is an address in the caller.
type UffdioCopy struct {
	Dst  uint64
	Src  uint64
	Len  uint64
	Mode uint64
	Copy int64 // on return: bytes copied, or a negative errno
}

// UffdioZeropage is struct uffdio_zeropage.
type UffdioZeropage struct {
	Range    UffdioRange
	Mode     uint64
	Zeropage int64 // on return: bytes zeroed, or a negative errno
}

// UffdioWriteprotect is struct uffdio_writeprotect.
type UffdioWriteprotect struct {
	Range UffdioRange
	Mode  uint64 // UFFDIO_WRITEPROTECT_MODE_*
}

// UffdioContinue is struct uffdio_continue.
type UffdioContinue struct {
	Range  UffdioRange
	Mode   uint64
	Mapped int64
}

// UffdioMove is struct uffdio_move.
type UffdioMove struct {
	Dst  uint64
	Src  uint64
	Len  uint64
	Mode uint64
	Move int64
}

// Struct sizes of the userfaultfd ABI.
const (
	UffdioAPISize          = 24
	UffdioRangeSize        = 16
	UffdioRegisterSize     = 32
	UffdioCopySize         = 40
	UffdioZeropageSize     = 32
	UffdioWriteprotectSize = 24
	UffdioContinueSize     = 32
	UffdioMoveSize         = 40
	UffdMsgSize            = 32
)

// Ioctl numbers on a userfaultfd (the _UFFDIO_* bit numbers of
// UffdioAPI.Ioctls are the low byte of each).
const (
	UFFDIO_REGISTER     = iowr | UffdioRegisterSize<<iocSizeShift | uffdT
	UFFDIO_UNREGISTER   = ior | UffdioRangeSize<<iocSizeShift | uffdT | 0x01
	UFFDIO_WAKE         = ior | UffdioRangeSize<<iocSizeShift | uffdT | 0x02
	UFFDIO_COPY         = iowr | UffdioCopySize<<iocSizeShift | uffdT | 0x03
	UFFDIO_ZEROPAGE     = iowr | UffdioZeropageSize<<iocSizeShift | uffdT | 0x04
	UFFDIO_MOVE         = iowr | UffdioMoveSize<<iocSizeShift | uffdT | 0x05
	UFFDIO_WRITEPROTECT = iowr | UffdioWriteprotectSize<<iocSizeShift | uffdT | 0x06
	UFFDIO_CONTINUE     = iowr | UffdioContinueSize<<iocSizeShift | uffdT | 0x07
	UFFDIO_API          = iowr | UffdioAPISize<<iocSizeShift | uffdT | 0x3f

	// USERFAULTFD_IOC_NEW on /dev/userfaultfd makes a new userfaultfd
	// (Linux 6.1); its argument is the flags of userfaultfd(2).
	USERFAULTFD_IOC_NEW = ioNone | uffdT
)

// UffdMsg is struct uffd_msg, what read(2) returns on a userfaultfd.
type UffdMsg struct {
	Event uint8 // UFFD_EVENT_*
	_     uint8
	_     uint16
	_     uint32
	Arg   [24]byte // union, read with the accessor of the event
}

// Pagefault returns the arguments of a UFFD_EVENT_PAGEFAULT message; tid is
// set only with UFFD_FEATURE_THREAD_ID.
func (m *UffdMsg) Pagefault() (flags, address uint64, tid uint32) {
	le := binary.LittleEndian
	return le.Uint64(m.Arg[0:]), le.Uint64(m.Arg[8:]), le.Uint32(m.Arg[16:])
}

// Fork returns the new userfaultfd of a UFFD_EVENT_FORK message.
func (m *UffdMsg) Fork() (ufd uint32) { return binary.LittleEndian.Uint32(m.Arg[0:]) }

// Remap returns the arguments of a UFFD_EVENT_REMAP message.
func (m *UffdMsg) Remap() (from, to, length uint64) {
	le := binary.LittleEndian
	return le.Uint64(m.Arg[0:]), le.Uint64(m.Arg[8:]), le.Uint64(m.Arg[16:])
}

// Remove returns the range of a UFFD_EVENT_REMOVE or UFFD_EVENT_UNMAP message.
func (m *UffdMsg) Remove() (start, end uint64) {
	le := binary.LittleEndian
	return le.Uint64(m.Arg[0:]), le.Uint64(m.Arg[8:])
}
