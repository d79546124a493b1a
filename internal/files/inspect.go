package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/internal/procfs"
)

// Inspect describes descriptor fd of process pid, for which pidfd is a
// pidfd (unix.PidfdOpen). It takes a duplicate with pidfd_getfd and reads
// /proc/PID/fdinfo/FD; it never changes the object as the process sees it.
// Objects of other kinds (regular files, directories, devices, ...) and
// objects godwit cannot recreate give an error of code
// fault.CodeUnsupported.
func Inspect(pidfd, pid, fd int) (*Desc, error) {
	return InspectWith(pidfd, pid, fd, InspectOptions{})
}

// InspectWith is Inspect with choices: what to do with a connected TCP
// socket (InspectOptions.TCP). In TCPEstablished mode it changes the
// socket: see Repairs.
func InspectWith(pidfd, pid, fd int, opts InspectOptions) (*Desc, error) {
	in := &inspector{pid: pid, fd: fd, opts: opts}
	link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd))
	if err != nil {
		return nil, in.fail(procErr(err), "", err, "read the descriptor's link")
	}
	info, err := procfs.ReadFDInfo(pid, fd)
	if err != nil {
		return nil, in.fail(procErr(err), "", err, "read fdinfo")
	}
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, in.fail(procErr(err), "", err, "pidfd_getfd")
	}
	defer unix.Close(dup)
	var st unix.Stat_t
	if err := unix.Fstat(dup, &st); err != nil {
		return nil, in.fail(fault.CodeDumpFailed, "", err, "fstat")
	}
	if info.Ino != 0 && st.Ino != info.Ino {
		return nil, in.fail(fault.CodeDumpFailed, "", nil, "the descriptor changed during inspection (is the process frozen?)")
	}
	in.dup, in.st, in.info = dup, st, info
	d := &Desc{PID: pid, FD: fd, Flags: info.Flags, Pos: info.Pos, Ino: st.Ino, MntID: info.MntID}
	d.Kind = kindOf(link, &st)
	switch d.Kind {
	case KindPipe, KindFIFO:
		err = in.pipe(d, link)
	case KindEventfd:
		d.Eventfd, err = parseEventfd(info.Lines)
	case KindTimerfd:
		err = in.timerfd(d)
	case KindSignalfd:
		d.Signalfd, err = parseSignalfd(info.Lines)
	case KindPidfd:
		d.Pidfd, err = parsePidfd(info.Lines)
	case KindInotify:
		err = in.inotify(d)
	case KindEpoll:
		err = in.epoll(d)
	case KindMemfd:
		err = in.memfd(d, link)
	case "socket":
		err = in.socket(d)
	default:
		return nil, unsupported("dump", pid, fd, d.Kind, "package files does not handle %s", link)
	}
	if err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, in.fail(fault.CodeDumpFailed, d.Kind, err, "inspect")
	}
	return d, nil
}

type inspector struct {
	pid, fd int
	opts    InspectOptions
	dup     int
	st      unix.Stat_t
	info    *procfs.FDInfo
}

func (in *inspector) fail(code fault.Code, kind string, err error, format string, args ...any) *fault.Error {
	return errorf(code, "dump", in.pid, in.fd, kind, err, format, args...)
}

func (in *inspector) unsupported(kind, format string, args ...any) *fault.Error {
	return unsupported("dump", in.pid, in.fd, kind, format, args...)
}

// procErr classifies an error of reading /proc or of pidfd_getfd.
func procErr(err error) fault.Code {
	switch {
	case errors.Is(err, unix.ESRCH):
		return fault.CodeNoProcess
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fault.CodePermission
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EBADF):
		return fault.CodeInvalidArgument
	}
	return fault.CodeDumpFailed
}

// kindOf tells the kind from the descriptor's link and stat; for an
// unknown object it returns a description for the error.
func kindOf(link string, st *unix.Stat_t) string {
	switch {
	case strings.HasPrefix(link, "pipe:"):
		return KindPipe
	case strings.HasPrefix(link, "socket:"):
		return "socket"
	case strings.HasPrefix(link, "pidfd:"):
		return KindPidfd
	case strings.HasPrefix(link, "anon_inode:"):
		switch strings.Trim(strings.TrimPrefix(link, "anon_inode:"), "[]") {
		case "eventfd":
			return KindEventfd
		case "timerfd":
			return KindTimerfd
		case "signalfd":
			return KindSignalfd
		case "inotify":
			return KindInotify
		case "eventpoll":
			return KindEpoll
		case "pidfd":
			return KindPidfd
		}
	case st.Mode&unix.S_IFMT == unix.S_IFIFO:
		return KindFIFO
	case strings.HasPrefix(link, "/memfd:") && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 0:
		return KindMemfd
	}
	return link
}

// accEnd names the pipe end the access mode gives.
func accEnd(flags uint32) string {
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		return "read"
	case unix.O_WRONLY:
		return "write"
	}
	return "both"
}

func (in *inspector) pipe(d *Desc, link string) error {
	p := &Pipe{End: accEnd(d.Flags)}
	d.Pipe = p
	if d.Kind == KindFIFO {
		p.Path = link
	}
	var err error
	if p.Size, err = unix.FcntlInt(uintptr(in.dup), unix.F_GETPIPE_SZ, 0); err != nil {
		return fmt.Errorf("F_GETPIPE_SZ: %w", err)
	}
	n, err := unix.IoctlGetInt(in.dup, unix.SIOCINQ)
	if err != nil {
		return fmt.Errorf("FIONREAD: %w", err)
	}
	if n == 0 {
		return nil
	}
	src := in.dup
	if p.End == "write" {
		// tee needs a read end: open one on the same pipe. It is a new
		// open file description, so the process's flags stay as they are.
		if src, err = unix.Open("/proc/self/fd/"+strconv.Itoa(in.dup), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open a read end: %w", err)
		}
		defer unix.Close(src)
	}
	p.Data, err = peekPipe(src, n, p.Size)
	return err
}

// peekPipe copies the n bytes buffered in the pipe read end src without
// consuming them: tee(2) into a scratch pipe of the same size, then read that.
func peekPipe(src, n, size int) ([]byte, error) {
	var sp [2]int
	if err := unix.Pipe2(sp[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("scratch pipe: %w", err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	if got, err := unix.FcntlInt(uintptr(sp[1]), unix.F_SETPIPE_SZ, size); err != nil || got < size {
		return nil, fmt.Errorf("size a scratch pipe to %d bytes: %w", size, err)
	}
	got, err := unix.Tee(src, sp[1], n, unix.SPLICE_F_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("tee: %w", err)
	}
	if int(got) != n {
		return nil, fmt.Errorf("tee copied %d of %d buffered bytes", got, n)
	}
	data := make([]byte, n)
	for off := 0; off < n; {
		r, err := unix.Read(sp[0], data[off:])
		if err != nil || r == 0 {
			return nil, fmt.Errorf("read the scratch pipe: %d of %d bytes: %v", off, n, err)
		}
		off += r
	}
	return data, nil
}

func (in *inspector) timerfd(d *Desc) error {
	t, err := parseTimerfd(in.info.Lines)
	if err != nil {
		return err
	}
	var its unix.ItimerSpec
	if err := unix.TimerfdGettime(in.dup, &its); err != nil {
		return fmt.Errorf("timerfd_gettime: %w", err)
	}
	t.ValueNsec = its.Value.Nano()
	t.IntervalNsec = its.Interval.Nano()
	d.Timerfd = t
	return nil
}

func (in *inspector) epoll(d *Desc) error {
	e, err := parseEpoll(in.info.Lines)
	if err != nil {
		return err
	}
	seen := map[int]int{}
	for i := range e.Targets {
		t := &e.Targets[i]
		toff := seen[t.FD]
		seen[t.FD]++
		r, err := kcmpEpollTfd(in.pid, t.FD, in.fd, t.FD, toff)
		t.Stale = err != nil || r != 0
	}
	d.Epoll = e
	return nil
}

func (in *inspector) inotify(d *Desc) error {
	i, err := parseInotify(in.info.Lines)
	if err != nil {
		return err
	}
	if i.Queued, err = unix.IoctlGetInt(in.dup, unix.SIOCINQ); err != nil {
		return fmt.Errorf("FIONREAD: %w", err)
	}
	mounts := mountsByDev(in.pid)
	for k := range i.Watches {
		w := &i.Watches[k]
		w.Path = resolveHandle(in.pid, mounts[w.Dev], w.HandleType, w.Handle)
	}
	d.Inotify = i
	return nil
}

// mountsByDev reads /proc/PID/mountinfo: device → mount points.
func mountsByDev(pid int) map[uint64][]string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	m := map[uint64][]string{}
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		maj, min, ok := strings.Cut(f[2], ":")
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		dev := unix.Mkdev(uint32(a), uint32(b))
		m[dev] = append(m[dev], unescapeMount(f[4]))
	}
	return m
}

// unescapeMount undoes the octal escapes (\040 ...) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// resolveHandle finds the path of a file handle through the process's mounts
// of its filesystem: "" when it cannot (no handle, deleted, no mount).
func resolveHandle(pid int, mounts []string, typ int32, handle []byte) string {
	if len(handle) == 0 {
		return ""
	}
	root := "/proc/" + strconv.Itoa(pid) + "/root"
	for _, mp := range mounts {
		// Not O_PATH: open_by_handle_at refuses an O_PATH mount fd (EBADF).
		mfd, err := unix.Open(root+mp, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(typ, handle), unix.O_PATH|unix.O_CLOEXEC)
		unix.Close(mfd)
		if err != nil {
			continue
		}
		p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		unix.Close(fd)
		if err == nil && strings.HasPrefix(p, "/") && !strings.HasSuffix(p, " (deleted)") {
			return p
		}
	}
	return ""
}

func (in *inspector) memfd(d *Desc, link string) error {
	m := &Memfd{Name: strings.TrimSuffix(strings.TrimPrefix(link, "/memfd:"), " (deleted)"),
		Size: in.st.Size, Mode: in.st.Mode & 0o7777}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(in.dup, &sfs); err == nil && sfs.Type == unix.HUGETLBFS_MAGIC {
		m.Hugetlb = true
	}
	var err error
	if m.Seals, err = unix.FcntlInt(uintptr(in.dup), unix.F_GET_SEALS, 0); err != nil {
		return fmt.Errorf("F_GET_SEALS: %w", err)
	}
	d.Memfd = m
	if m.Size == 0 {
		return nil
	}
	// A private open file description: SEEK_DATA on the duplicate would move
	// the process's file offset.
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(in.dup), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("reopen to read: %w", err)
	}
	defer unix.Close(fd)
	m.Extents, err = readExtents(fd, m.Size)
	return err
}

// readExtents reads the data of a file of size bytes, skipping holes.
func readExtents(fd int, size int64) ([]Extent, error) {
	var out []Extent
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("SEEK_DATA: %w", err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE: %w", err)
		}
		end = min(end, size)
		data := make([]byte, end-start)
		for got := 0; got < len(data); {
			n, err := unix.Pread(fd, data[got:], start+int64(got))
			if err != nil || n == 0 {
				return nil, fmt.Errorf("read at %d: %v", start+int64(got), err)
			}
			got += n
		}
		out = append(out, Extent{Offset: start, Data: data})
		off = end
	}
	return out, nil
}
