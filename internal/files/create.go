package files

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setflMask holds the file status flags F_SETFL can change and Create
// restores (O_ASYNC is left out: it needs an owner, F_SETOWN).
const setflMask = unix.O_APPEND | unix.O_NONBLOCK | unix.O_NOATIME | unix.O_DIRECT

// Create recreates the object d describes in the calling process. file is
// the descriptor to plant, with d's access mode and status flags (O_CLOEXEC
// always set: Desc.Flags says what the process had). peer is set for
//   - a pipe: the other end (close it when that end is not in the tree);
//   - a FIFO: an O_RDWR descriptor that keeps the buffered data alive:
//     keep it open until file is planted.
//
// An epoll instance with registrations needs CreateEpoll, and a connected
// unix socket whose peer is in the tree CreatePair.
func Create(d *Desc) (file, peer *os.File, err error) {
	var fd, pfd int = -1, -1
	switch {
	case d.Kind == KindPipe && d.Pipe != nil:
		fd, pfd, err = createPipe(d)
	case d.Kind == KindFIFO && d.Pipe != nil:
		fd, pfd, err = createFIFO(d)
	case d.Kind == KindEventfd && d.Eventfd != nil:
		fd, err = createEventfd(d)
	case d.Kind == KindTimerfd && d.Timerfd != nil:
		fd, err = createTimerfd(d)
	case d.Kind == KindSignalfd && d.Signalfd != nil:
		fd, err = unix.Signalfd(-1, &unix.Sigset_t{Val: [16]uint64{d.Signalfd.Mask}}, unix.SFD_CLOEXEC)
		if err != nil {
			err = d.createErr(err, "signalfd")
		}
	case d.Kind == KindInotify && d.Inotify != nil:
		fd, err = createInotify(d)
	case d.Kind == KindEpoll && d.Epoll != nil:
		f, err := CreateEpoll(d, nil)
		return f, nil, err
	case d.Kind == KindPidfd && d.Pidfd != nil:
		fd, err = createPidfd(d)
	case d.Kind == KindMemfd && d.Memfd != nil:
		fd, err = createMemfd(d)
	case d.Kind == KindUnix && d.Socket != nil:
		fd, err = createUnix(d)
	case (d.Kind == KindTCP || d.Kind == KindUDP) && d.Socket != nil:
		fd, err = createInet(d)
	default:
		return nil, nil, d.unsupported("cannot create kind %q (or its description is missing)", d.Kind)
	}
	if err == nil {
		err = setStatusFlags(d, fd)
	}
	if err != nil {
		closeFDs(fd, pfd)
		return nil, nil, err
	}
	file = os.NewFile(uintptr(fd), d.Kind)
	if pfd >= 0 {
		peer = os.NewFile(uintptr(pfd), d.Kind)
	}
	return file, peer, nil
}

func closeFDs(fds ...int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// setStatusFlags gives fd the F_SETFL flags of d.
func setStatusFlags(d *Desc, fd int) error {
	cur, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return d.createErr(err, "F_GETFL")
	}
	want := cur&^setflMask | int(d.Flags)&setflMask
	if want != cur {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, want); err != nil {
			return d.createErr(err, "F_SETFL %#o", want)
		}
	}
	return nil
}

// fillPipe sizes the pipe whose write end is w and writes the data into it.
func fillPipe(d *Desc, w int) error {
	p := d.Pipe
	if p.Size > 0 {
		cur, err := unix.FcntlInt(uintptr(w), unix.F_GETPIPE_SZ, 0)
		if err != nil {
			return d.createErr(err, "F_GETPIPE_SZ")
		}
		if cur != p.Size {
			if _, err := unix.FcntlInt(uintptr(w), unix.F_SETPIPE_SZ, p.Size); err != nil {
				return d.createErr(err, "set the pipe size to %d", p.Size)
			}
		}
	}
	for off := 0; off < len(p.Data); {
		n, err := unix.Write(w, p.Data[off:])
		if err != nil {
			return d.createErr(err, "refill the pipe: %d of %d bytes", off, len(p.Data))
		}
		off += n
	}
	return nil
}

func createPipe(d *Desc) (fd, peer int, err error) {
	var p [2]int
	// Non-blocking while filling: a description larger than the pipe must
	// fail, not hang.
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, -1, d.createErr(err, "pipe2")
	}
	if err := fillPipe(d, p[1]); err != nil {
		closeFDs(p[0], p[1])
		return -1, -1, err
	}
	for _, x := range p {
		unix.FcntlInt(uintptr(x), unix.F_SETFL, 0)
	}
	if d.Pipe.End == "write" {
		return p[1], p[0], nil
	}
	return p[0], p[1], nil
}

func createFIFO(d *Desc) (fd, holder int, err error) {
	if d.Pipe.Path == "" {
		return -1, -1, d.unsupported("FIFO without a path")
	}
	holder, err = unix.Open(d.Pipe.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, d.createErr(err, "open FIFO %q", d.Pipe.Path)
	}
	var st unix.Stat_t
	if err := unix.Fstat(holder, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(holder)
		return -1, -1, d.unsupported("%q is not a FIFO any more", d.Pipe.Path)
	}
	if err := fillPipe(d, holder); err != nil {
		unix.Close(holder)
		return -1, -1, err
	}
	acc := map[string]int{"read": unix.O_RDONLY, "write": unix.O_WRONLY, "both": unix.O_RDWR}[d.Pipe.End]
	fd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(holder), acc|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(holder)
		return -1, -1, d.createErr(err, "open the FIFO's %s end", d.Pipe.End)
	}
	return fd, holder, nil
}

func createEventfd(d *Desc) (int, error) {
	flags := unix.EFD_CLOEXEC
	if d.Eventfd.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	fd, err := unix.Eventfd(0, flags)
	if err != nil {
		return -1, d.createErr(err, "eventfd")
	}
	if c := d.Eventfd.Count; c != 0 {
		var b [8]byte
		for i := range b {
			b[i] = byte(c >> (8 * i))
		}
		if _, err := unix.Write(fd, b[:]); err != nil {
			unix.Close(fd)
			return -1, d.createErr(err, "set the counter to %d", c)
		}
	}
	return fd, nil
}

func createTimerfd(d *Desc) (int, error) {
	t := d.Timerfd
	fd, err := unix.TimerfdCreate(t.Clock, unix.TFD_CLOEXEC)
	if err != nil {
		return -1, d.createErr(err, "timerfd_create clock %d", t.Clock)
	}
	if t.ValueNsec > 0 {
		its := unix.ItimerSpec{Value: unix.NsecToTimespec(t.ValueNsec), Interval: unix.NsecToTimespec(t.IntervalNsec)}
		flags := t.SettimeFlags
		if flags&unix.TFD_TIMER_ABSTIME != 0 {
			// The time left is what was dumped: it becomes absolute again
			// on this host's clock, keeping TFD_TIMER_CANCEL_ON_SET.
			var now unix.Timespec
			if err := unix.ClockGettime(int32(t.Clock), &now); err != nil {
				unix.Close(fd)
				return -1, d.createErr(err, "clock_gettime %d", t.Clock)
			}
			its.Value = unix.NsecToTimespec(now.Nano() + t.ValueNsec)
		}
		if err := unix.TimerfdSettime(fd, flags, &its, nil); err != nil {
			unix.Close(fd)
			return -1, d.createErr(err, "timerfd_settime")
		}
	}
	if t.Ticks > 0 {
		if err := setTimerTicks(fd, t.Ticks); err != nil {
			unix.Close(fd)
			return -1, d.createErr(err, "TFD_IOC_SET_TICKS %d (needs CONFIG_CHECKPOINT_RESTORE)", t.Ticks)
		}
	}
	return fd, nil
}

// maxWDSteps bounds the add/remove loop that reaches a watch descriptor
// number.
const maxWDSteps = 1 << 20

func createInotify(d *Desc) (int, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return -1, d.createErr(err, "inotify_init1")
	}
	ws := append([]InotifyWatch(nil), d.Inotify.Watches...)
	sortWatches(ws)
	for _, w := range ws {
		if w.Path == "" {
			unix.Close(fd)
			return -1, d.unsupported("watch %d on inode %d of device %#x: its path is unknown", w.WD, w.Ino, w.Dev)
		}
		// Watch descriptors are allocated cyclically: add and remove until
		// the number comes up, as CRIU does.
		for step := 0; ; step++ {
			got, err := unix.InotifyAddWatch(fd, w.Path, w.Mask)
			if err != nil {
				unix.Close(fd)
				return -1, d.createErr(err, "watch %q", w.Path)
			}
			if got == w.WD {
				break
			}
			if got > w.WD || step > maxWDSteps {
				unix.Close(fd)
				return -1, d.createErr(nil, "watch %q got descriptor %d, want %d", w.Path, got, w.WD)
			}
			unix.InotifyRmWatch(fd, uint32(got))
		}
	}
	// Drop the IN_IGNORED events the removals queued.
	buf := make([]byte, 1<<16)
	for {
		if n, err := unix.Read(fd, buf); err != nil || n <= 0 {
			break
		}
	}
	return fd, nil
}

func sortWatches(ws []InotifyWatch) {
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && ws[j].WD < ws[j-1].WD; j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
}

// CreateEpoll recreates an epoll instance with its registrations. fds maps
// each registration's target number (EpollTarget.FD) to a descriptor of
// godwit for that target; with two registrations under one number (the
// number was reused), the engine must plant the epoll itself.
func CreateEpoll(d *Desc, fds map[int]int) (*os.File, error) {
	if d.Kind != KindEpoll || d.Epoll == nil {
		return nil, d.unsupported("not an epoll description")
	}
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, d.createErr(err, "epoll_create1")
	}
	for _, t := range d.Epoll.Targets {
		tfd, ok := fds[t.FD]
		if !ok {
			unix.Close(fd)
			return nil, d.createErr(nil, "no descriptor given for target %d (inode %d)", t.FD, t.Ino)
		}
		ev := unix.EpollEvent{Events: t.Events, Fd: int32(uint32(t.Data)), Pad: int32(uint32(t.Data >> 32))}
		if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, tfd, &ev); err != nil {
			unix.Close(fd)
			return nil, d.createErr(err, "register target %d", t.FD)
		}
	}
	if err := setStatusFlags(d, fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "epoll"), nil
}

func createPidfd(d *Desc) (int, error) {
	if d.Pidfd.Pid <= 0 {
		return -1, d.unsupported("pidfd of a process that is gone")
	}
	flags := int(d.Flags) & (unix.PIDFD_NONBLOCK | unix.O_EXCL /* PIDFD_THREAD */)
	fd, err := unix.PidfdOpen(d.Pidfd.Pid, flags)
	if err != nil {
		return -1, d.createErr(err, "pidfd_open %d", d.Pidfd.Pid)
	}
	unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	return fd, nil
}

func createMemfd(d *Desc) (int, error) {
	m := d.Memfd
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	if m.Hugetlb {
		if len(m.Extents) > 0 {
			return -1, d.unsupported("hugetlb memfd with data")
		}
		flags |= unix.MFD_HUGETLB
	}
	fd, err := unix.MemfdCreate(m.Name, flags)
	if err != nil {
		return -1, d.createErr(err, "memfd_create")
	}
	fail := func(err error, what string, args ...any) (int, error) {
		unix.Close(fd)
		return -1, d.createErr(err, what, args...)
	}
	if err := unix.Ftruncate(fd, m.Size); err != nil {
		return fail(err, "ftruncate %d", m.Size)
	}
	for _, e := range m.Extents {
		for off := 0; off < len(e.Data); {
			n, err := unix.Pwrite(fd, e.Data[off:], e.Offset+int64(off))
			if err != nil {
				return fail(err, "write at %d", e.Offset+int64(off))
			}
			off += n
		}
	}
	if err := unix.Fchmod(fd, m.Mode&0o7777); err != nil {
		return fail(err, "fchmod %#o", m.Mode)
	}
	if m.Seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, m.Seals); err != nil {
			return fail(err, "F_ADD_SEALS %#x", m.Seals)
		}
	}
	if d.Pos != 0 {
		if _, err := unix.Seek(fd, d.Pos, 0); err != nil {
			return fail(err, "seek to %d", d.Pos)
		}
	}
	if acc := int(d.Flags) & unix.O_ACCMODE; acc != unix.O_RDWR {
		nfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), acc|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail(err, "reopen with access mode %d", acc)
		}
		unix.Close(fd)
		fd = nfd
		if d.Pos != 0 {
			if _, err := unix.Seek(fd, d.Pos, 0); err != nil {
				return fail(err, "seek to %d", d.Pos)
			}
		}
	}
	return fd, nil
}
