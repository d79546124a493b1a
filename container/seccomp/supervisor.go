package seccomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// Install loads prog on the calling thread, which must be locked to its
// goroutine and must be the thread that then calls execve; it returns the
// notification listener. WAIT_KILLABLE_RECV is requested so that once the
// supervisor has received a request, only a fatal signal interrupts the
// caller (a non-fatal one would restart the call and create a node twice).
func Install(prog []unix.SockFilter, notify bool) (*os.File, error) {
	if len(prog) == 0 {
		return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "seccomp", Msg: "empty program"}
	}
	if !notify {
		_, err := install(prog, 0)
		if err != nil {
			return nil, &fault.Error{Code: fault.CodePermission, Op: "install seccomp filter", Err: err}
		}
		return nil, nil
	}
	fd, err := install(prog, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER|unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
	if err == unix.EINVAL {
		fd, err = install(prog, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER) // before Linux 5.19
	}
	if err != nil {
		code := fault.CodePermission
		if err == unix.EINVAL || err == unix.ENOSYS {
			code = fault.CodeKernel
		}
		return nil, &fault.Error{Code: code, Op: "install seccomp filter", Err: err, Remedy: "user notification needs Linux 5.0"}
	}
	return os.NewFile(uintptr(fd), "seccomp-listener"), nil
}

// Binder attaches a host device node onto target (an O_PATH handle of an
// empty file inside the container) from within the container's mount
// namespace. The rootless supervisor uses it where it cannot mknod.
type Binder interface {
	BindDevice(d Device, target *os.File) error
}

// Supervisor serves seccomp user notifications for one container.
//
// Every request is handled in its own goroutine and answered within the
// policy's timeout. Pointer arguments are read through /proc/PID/mem and the
// notification is checked with SECCOMP_IOCTL_NOTIF_ID_VALID after reading
// them and after opening the caller's root and cwd, before acting; a caller
// that died meanwhile is skipped. CONTINUE is only answered for calls the
// caller could make with its own privileges (fifos, sockets, regular files,
// whiteouts rootless, other xattrs): the kernel then checks them itself.
type Supervisor struct {
	Policy Policy
	// Root is true when the supervisor runs as real root and can mknod.
	Root bool
	// Binder is used when !Root.
	Binder Binder

	// beforeAct, if set, runs after the arguments were read and before the
	// validity check (tests kill the caller here).
	beforeAct func(n *Notif)

	wg sync.WaitGroup
}

// Stats counts handled requests.
type Stats struct{ Handled, Refused, Continued, Stale int }

// Serve handles notifications from listener until every task using the
// filter has gone (POLLHUP) or stop is closed. It owns listener.
func (s *Supervisor) Serve(listener *os.File, stop <-chan struct{}) error {
	defer listener.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return fault.Wrap(fault.CodeIO, err, "eventfd")
	}
	defer unix.Close(efd)
	done := make(chan struct{})
	defer close(done)
	if stop != nil {
		go func() {
			select {
			case <-stop:
				unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
			case <-done:
			}
		}()
	}
	lfd := int(listener.Fd())
	for {
		p := []unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}, {Fd: int32(efd), Events: unix.POLLIN}}
		if _, err := unix.Poll(p, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return fault.Wrap(fault.CodeIO, err, "poll seccomp listener")
		}
		if p[1].Revents != 0 {
			break
		}
		if p[0].Revents&unix.POLLIN != 0 {
			n := new(Notif)
			if err := recvNotif(lfd, n); err != nil {
				if err == unix.ENOENT { // the caller died before we read it
					continue
				}
				return fault.Wrap(fault.CodeIO, err, "SECCOMP_IOCTL_NOTIF_RECV")
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(lfd, n)
			}()
			continue
		}
		if p[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			break
		}
	}
	s.wg.Wait()
	return nil
}

// handle answers one notification within the policy timeout.
func (s *Supervisor) handle(lfd int, n *Notif) {
	type outcome struct {
		val   int64
		errno unix.Errno
		cont  bool
	}
	ch := make(chan outcome, 1)
	go func() {
		val, errno, cont := s.decide(lfd, n)
		ch <- outcome{val, errno, cont}
	}()
	var o outcome
	select {
	case o = <-ch:
	case <-time.After(s.Policy.timeout()):
		o = outcome{errno: unix.EAGAIN}
	}
	r := NotifResp{ID: n.ID, Val: o.val}
	if o.cont {
		r.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
	} else if o.errno != 0 {
		r.Error = -int32(o.errno)
	}
	sendResp(lfd, &r) // ENOENT: the caller is gone; nothing to do
}

const (
	nrMknod     = 133
	nrMknodat   = 259
	nrSetxattr  = 188
	nrLsetxattr = 189
)

// decide performs or refuses one call. It returns the result value, an
// errno to fail with, or cont to let the kernel run the call itself.
func (s *Supervisor) decide(lfd int, n *Notif) (int64, unix.Errno, bool) {
	a := n.Data.Args
	switch n.Data.Nr {
	case nrMknod:
		return s.mknod(lfd, n, unix.AT_FDCWD, a[0], uint32(a[1]), a[2])
	case nrMknodat:
		return s.mknod(lfd, n, int(int32(a[0])), a[1], uint32(a[2]), a[3])
	case nrSetxattr, nrLsetxattr:
		return s.setxattr(lfd, n)
	}
	return 0, unix.ENOSYS, false
}

func (s *Supervisor) mknod(lfd int, n *Notif, dirfd int, pathPtr uint64, mode uint32, dev uint64) (int64, unix.Errno, bool) {
	switch mode & unix.S_IFMT {
	case 0, unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK:
		return 0, 0, true // no privilege involved: the kernel checks the caller
	case unix.S_IFCHR:
	default:
		return 0, unix.EPERM, false
	}
	d := Device{Major: unix.Major(dev), Minor: unix.Minor(dev)}
	if !s.Policy.allows(d) {
		return 0, unix.EPERM, false
	}
	if d == (Device{}) && !s.Root {
		return 0, 0, true // unprivileged whiteouts are allowed by the kernel (5.8+)
	}
	if d == (Device{5, 1}) && !s.Root {
		return 0, unix.EPERM, false // the host console is not a node to hand out
	}
	p, err := readString(int(n.PID), pathPtr, unix.PathMax)
	if err != nil {
		return 0, errnoOf(err, unix.EFAULT), false
	}
	parent, name, creds, errno := s.resolve(int(n.PID), dirfd, p)
	if errno != 0 {
		return 0, errno, false
	}
	defer parent.Close()
	if s.beforeAct != nil {
		s.beforeAct(n)
	}
	if idValid(lfd, n.ID) != nil {
		return 0, unix.ENOENT, false // stale: the caller died or was interrupted
	}
	perm := (mode &^ unix.S_IFMT) &^ creds.umask
	if s.Root {
		errno := asCaller(creds, func() error {
			return unix.Mknodat(int(parent.Fd()), name, unix.S_IFCHR|perm, int(dev))
		})
		if errno != 0 || d == (Device{}) || !nodev(int(parent.Fd()), name) {
			return 0, errno, false
		}
		// The node exists but sits on a filesystem mounted inside the
		// container's user namespace, which the kernel treats as nodev:
		// bind the host's node over it so that it works.
	} else {
		// Rootless: an empty file, then the host's node bind-mounted onto it.
		if !creds.mayWrite(parent) {
			return 0, unix.EACCES, false
		}
		fd, err := unix.Openat(int(parent.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, perm)
		if err != nil {
			return 0, errnoOf(err, unix.EIO), false
		}
		unix.Close(fd)
	}
	tfd, err := unix.Openat(int(parent.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, errnoOf(err, unix.EIO), false
	}
	target := os.NewFile(uintptr(tfd), name)
	defer target.Close()
	if s.Binder == nil {
		unix.Unlinkat(int(parent.Fd()), name, 0)
		return 0, unix.EPERM, false
	}
	if err := s.Binder.BindDevice(d, target); err != nil {
		unix.Unlinkat(int(parent.Fd()), name, 0)
		return 0, errnoOf(err, unix.EPERM), false
	}
	return 0, 0, false
}

func (s *Supervisor) setxattr(lfd int, n *Notif) (int64, unix.Errno, bool) {
	a := n.Data.Args
	name, err := readString(int(n.PID), a[1], 256)
	if err != nil {
		return 0, errnoOf(err, unix.EFAULT), false
	}
	if name != "trusted.overlay.opaque" {
		return 0, 0, true // the caller's own privileges decide
	}
	if !s.Policy.OverlayOpaque || !s.Root {
		return 0, unix.EPERM, false
	}
	size := a[3]
	if size == 0 || size > 8 {
		return 0, unix.EINVAL, false
	}
	val, err := readMem(int(n.PID), a[2], int(size))
	if err != nil {
		return 0, errnoOf(err, unix.EFAULT), false
	}
	if string(val) != "y" && string(val) != "x" {
		return 0, unix.EINVAL, false
	}
	p, err := readString(int(n.PID), a[0], unix.PathMax)
	if err != nil {
		return 0, errnoOf(err, unix.EFAULT), false
	}
	parent, base, creds, errno := s.resolve(int(n.PID), unix.AT_FDCWD, p)
	if errno != 0 {
		return 0, errno, false
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, errnoOf(err, unix.ENOTDIR), false
	}
	defer unix.Close(fd)
	if idValid(lfd, n.ID) != nil {
		return 0, unix.ENOENT, false
	}
	if !creds.owns(fd) {
		return 0, unix.EPERM, false
	}
	if err := unix.Fsetxattr(fd, name, val, int(a[4])); err != nil {
		return 0, errnoOf(err, unix.EIO), false
	}
	return 0, 0, false
}

// nodev reports whether opening the node dir/name is refused because its
// filesystem does not allow devices (EACCES on open of a 0666 node).
func nodev(dir int, name string) bool {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return false
	}
	return err == unix.EACCES
}

// callerCreds are the credentials of the calling task as the host sees them.
type callerCreds struct {
	fsuid, fsgid uint32
	umask        uint32
	groups       []uint32
}

func (c callerCreds) owns(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Uid == c.fsuid
}

// mayWrite approximates the kernel's check that the caller may create an
// entry in dir (write and search permission), for the rootless supervisor
// whose own uid is the container's root.
func (c callerCreds) mayWrite(dir *os.File) bool {
	var st unix.Stat_t
	if unix.Fstat(int(dir.Fd()), &st) != nil {
		return false
	}
	if c.fsuid == uint32(os.Geteuid()) {
		return true // the container's root
	}
	const wx = 3
	switch {
	case st.Uid == c.fsuid:
		return (st.Mode>>6)&wx == wx
	case st.Gid == c.fsgid || contains(c.groups, st.Gid):
		return (st.Mode>>3)&wx == wx
	}
	return st.Mode&wx == wx
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// resolve finds the parent directory of p as the caller would: relative to
// dirfd (or its cwd) and its root, and never outside its root
// (openat2 RESOLVE_IN_ROOT from /proc/PID/root).
func (s *Supervisor) resolve(pid, dirfd int, p string) (*os.File, string, callerCreds, unix.Errno) {
	var creds callerCreds
	if p == "" {
		return nil, "", creds, unix.ENOENT
	}
	c, err := readCreds(pid)
	if err != nil {
		return nil, "", creds, unix.ESRCH
	}
	creds = c
	full := p
	if !path.IsAbs(p) {
		// Relative to cwd or dirfd, as the caller's root sees it.
		root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
		if err != nil || root != "/" {
			return nil, "", creds, unix.EPERM // chrooted callers: relative paths are refused
		}
		link := fmt.Sprintf("/proc/%d/cwd", pid)
		if dirfd != unix.AT_FDCWD {
			link = fmt.Sprintf("/proc/%d/fd/%d", pid, dirfd)
		}
		base, err := os.Readlink(link)
		if err != nil || !path.IsAbs(base) || strings.HasSuffix(base, " (deleted)") {
			return nil, "", creds, unix.ENOENT
		}
		full = base + "/" + p
	}
	full = path.Clean("/" + full)
	if full == "/" {
		return nil, "", creds, unix.EEXIST
	}
	dir, name := path.Split(full)
	rfd, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", creds, unix.ESRCH
	}
	defer unix.Close(rfd)
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	pfd, err := unix.Openat2(rfd, dir, &how)
	if err != nil {
		return nil, "", creds, errnoOf(err, unix.ENOENT)
	}
	return os.NewFile(uintptr(pfd), dir), name, creds, 0
}

// asCaller runs f on a locked thread whose filesystem ids are the caller's,
// so permission checks and the new node's owner are the caller's (through
// an id-mapped rootfs as well). Changing fsuid drops CAP_MKNOD from the
// effective set; it is raised again from the permitted set. The thread is
// discarded afterwards.
func asCaller(c callerCreds, f func() error) unix.Errno {
	ch := make(chan unix.Errno, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		unix.Setfsgid(int(c.fsgid))
		unix.Setfsuid(int(c.fsuid))
		if err := raiseMknod(); err != nil {
			ch <- unix.EPERM
			return
		}
		ch <- errnoOf(f(), 0)
	}()
	return <-ch
}

func raiseMknod() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Effective |= 1 << unix.CAP_MKNOD
	return unix.Capset(&hdr, &data[0])
}

func readCreds(pid int) (callerCreds, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return callerCreds{}, err
	}
	defer f.Close()
	return parseStatus(f)
}

// parseStatus reads Umask, Uid, Gid (the fs ids are the fourth column) and
// Groups from /proc/PID/status.
func parseStatus(r interface{ Read([]byte) (int, error) }) (callerCreds, error) {
	var c callerCreds
	seen := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		switch k {
		case "Umask":
			if len(f) == 1 {
				u, err := strconv.ParseUint(f[0], 8, 32)
				if err != nil {
					return c, err
				}
				c.umask = uint32(u) & 0o777
				seen |= 1
			}
		case "Uid", "Gid":
			if len(f) != 4 {
				return c, fmt.Errorf("bad %s line", k)
			}
			id, err := strconv.ParseUint(f[3], 10, 32)
			if err != nil {
				return c, err
			}
			if k == "Uid" {
				c.fsuid, seen = uint32(id), seen|2
			} else {
				c.fsgid, seen = uint32(id), seen|4
			}
		case "Groups":
			for _, g := range f {
				id, err := strconv.ParseUint(g, 10, 32)
				if err != nil {
					return c, err
				}
				c.groups = append(c.groups, uint32(id))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	if seen != 7 {
		return c, errors.New("incomplete /proc/PID/status")
	}
	return c, nil
}

// readMem reads n bytes at addr of pid through /proc/PID/mem.
func readMem(pid int, addr uint64, n int) ([]byte, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, int64(addr))
	if m < n {
		if err == nil {
			err = unix.EFAULT
		}
		return nil, err
	}
	return buf, nil
}

// readString reads a NUL-terminated string of at most max bytes at addr,
// page by page (the string may end right before an unmapped page).
func readString(pid int, addr uint64, max int) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	var out []byte
	for len(out) < max {
		chunk := 4096 - int(addr%4096)
		buf := make([]byte, chunk)
		m, err := f.ReadAt(buf, int64(addr))
		if i := bytes.IndexByte(buf[:m], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		if m < chunk {
			if err == nil {
				err = unix.EFAULT
			}
			return "", err
		}
		out = append(out, buf...)
		addr += uint64(chunk)
	}
	return "", unix.ENAMETOOLONG
}

func errnoOf(err error, def unix.Errno) unix.Errno {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	if def == 0 {
		return unix.EIO
	}
	return def
}
