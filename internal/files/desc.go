package files

import (
	"fmt"

	"github.com/godwit-dev/godwit/fault"
)

// Kinds of Desc.
const (
	KindPipe     = "pipe"
	KindFIFO     = "fifo"
	KindEventfd  = "eventfd"
	KindTimerfd  = "timerfd"
	KindSignalfd = "signalfd"
	KindInotify  = "inotify"
	KindEpoll    = "epoll"
	KindUnix     = "unix"
	KindTCP      = "tcp"
	KindUDP      = "udp"
	KindPidfd    = "pidfd"
	KindMemfd    = "memfd"
)

// Desc describes the object behind one descriptor. Exactly the field of its
// Kind is set. It is plain data: it encodes to JSON and back unchanged.
type Desc struct {
	Kind  string `json:"kind"`
	PID   int    `json:"pid,omitempty"` // the process it was inspected in (for errors)
	FD    int    `json:"fd"`            // the descriptor number in that process
	Flags uint32 `json:"flags"`         // file status flags from fdinfo, with O_CLOEXEC
	Pos   int64  `json:"pos,omitempty"`
	// Ino is the inode number from fdinfo: it identifies pipes, sockets,
	// pidfds and memfds (two descriptors of one object share it). Every
	// anonymous-inode object (eventfd, timerfd, signalfd, inotify, epoll)
	// shows the same shared inode: compare those with kcmp.
	Ino   uint64 `json:"ino"`
	MntID int    `json:"mnt_id,omitempty"`

	Pipe     *Pipe     `json:"pipe,omitempty"` // pipe and fifo
	Eventfd  *Eventfd  `json:"eventfd,omitempty"`
	Timerfd  *Timerfd  `json:"timerfd,omitempty"`
	Signalfd *Signalfd `json:"signalfd,omitempty"`
	Inotify  *Inotify  `json:"inotify,omitempty"`
	Epoll    *Epoll    `json:"epoll,omitempty"`
	Socket   *Socket   `json:"socket,omitempty"` // unix, tcp and udp
	Pidfd    *Pidfd    `json:"pidfd,omitempty"`
	Memfd    *Memfd    `json:"memfd,omitempty"`
}

// Pipe is an anonymous pipe or a FIFO.
type Pipe struct {
	// End is "read", "write" or, for a FIFO opened O_RDWR, "both".
	End  string `json:"end"`
	Size int    `json:"size"`           // capacity, F_GETPIPE_SZ
	Data []byte `json:"data,omitempty"` // bytes buffered in the pipe, in order
	Path string `json:"path,omitempty"` // a FIFO's path
}

// Eventfd is an eventfd.
type Eventfd struct {
	Count     uint64 `json:"count"`
	Semaphore bool   `json:"semaphore,omitempty"`
	ID        int    `json:"id"` // eventfd-id: distinct per eventfd, not restorable
}

// Timerfd is a timerfd. Value is the time left until the next expiry (zero:
// disarmed), as timerfd_gettime reports it, so it is clock-independent.
type Timerfd struct {
	Clock        int    `json:"clock"`
	Ticks        uint64 `json:"ticks,omitempty"` // expirations not yet read
	SettimeFlags int    `json:"settime_flags,omitempty"`
	ValueNsec    int64  `json:"value_ns"`
	IntervalNsec int64  `json:"interval_ns,omitempty"`
}

// Signalfd is a signalfd.
type Signalfd struct {
	Mask uint64 `json:"mask"` // bit n-1 is signal n
}

// Inotify is an inotify instance.
type Inotify struct {
	Watches []InotifyWatch `json:"watches"`
	// Queued is the number of bytes of events not yet read; they cannot be
	// read without consuming them and are not recreated.
	Queued int `json:"queued,omitempty"`
}

// InotifyWatch is one watch of an inotify instance.
type InotifyWatch struct {
	WD          int    `json:"wd"`
	Mask        uint32 `json:"mask"`
	IgnoredMask uint32 `json:"ignored_mask,omitempty"`
	Ino         uint64 `json:"ino"`
	Dev         uint64 `json:"dev"` // user-space dev_t (unix.Mkdev) of the watched inode
	HandleType  int32  `json:"handle_type"`
	Handle      []byte `json:"handle"`
	// Path is where the inode was found from godwit, empty when not found.
	Path string `json:"path,omitempty"`
}

// Epoll is an epoll instance.
type Epoll struct {
	Targets []EpollTarget `json:"targets"`
}

// EpollTarget is one registration of an epoll instance.
type EpollTarget struct {
	FD     int    `json:"fd"` // the number it was registered under
	Events uint32 `json:"events"`
	Data   uint64 `json:"data"`
	Pos    int64  `json:"pos"`
	Ino    uint64 `json:"ino"`
	Dev    uint64 `json:"dev"` // user-space dev_t
	// Stale tells that FD of the process no longer is the registered file
	// (it was closed, or reused for another file); the registration lives
	// on as long as the file does.
	Stale bool `json:"stale,omitempty"`
}

// Pidfd is a pidfd.
type Pidfd struct {
	Pid int `json:"pid"` // -1: the process is gone
}

// Memfd is a memfd (anonymous shared memory file).
type Memfd struct {
	Name  string `json:"name"` // without the "memfd:" prefix
	Size  int64  `json:"size"`
	Seals int    `json:"seals"` // F_GET_SEALS
	Mode  uint32 `json:"mode"`
	// Hugetlb tells the file lives on hugetlbfs (MFD_HUGETLB).
	Hugetlb bool     `json:"hugetlb,omitempty"`
	Extents []Extent `json:"extents,omitempty"` // data, holes left out
}

// Extent is a run of file data at Offset.
type Extent struct {
	Offset int64  `json:"offset"`
	Data   []byte `json:"data"`
}

// errorf builds the *fault.Error of this package.
func errorf(code fault.Code, op string, pid, fd int, kind string, err error, format string, args ...any) *fault.Error {
	msg := fmt.Sprintf(format, args...)
	if kind != "" {
		msg = kind + ": " + msg
	}
	return (&fault.Error{Code: code, Op: op, PID: pid, Msg: msg, Err: err}).WithFD(fd)
}

// Unsupported is the error of an object godwit cannot dump or recreate.
func unsupported(op string, pid, fd int, kind, format string, args ...any) *fault.Error {
	e := errorf(fault.CodeUnsupported, op, pid, fd, kind, nil, "unsupported: "+format, args...)
	return e
}

func (d *Desc) createErr(err error, format string, args ...any) *fault.Error {
	return errorf(fault.CodeRestoreFailed, "restore", d.PID, d.FD, d.Kind, err, format, args...)
}

func (d *Desc) unsupported(format string, args ...any) *fault.Error {
	return unsupported("restore", d.PID, d.FD, d.Kind, format, args...)
}
