package restore

import (
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/image"
)

// LazyFunc receives, for a post-copy restore, the userfaultfd of one
// process (created inside it, UFFDIO_API not done yet; the callee owns it)
// and its anonymous private mappings, none of whose pages were written:
// the callee registers them and serves their faults once the tree runs.
type LazyFunc func(pid int, uffd int, anon []image.VMA) error

// createUFFD creates, for a lazy restore, a userfaultfd inside the process
// and takes it into godwit. It runs before the credentials are dropped: a
// process without CAP_SYS_PTRACE may only create a user-mode-only one,
// which cannot serve faults taken inside the kernel.
func (rs *restorer) createUFFD() error {
	if rs.opts.Lazy == nil {
		return nil
	}
	fd, err := rs.call(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err != nil {
		return rs.fail("userfaultfd for post-copy", err)
	}
	pidfd, err := unix.PidfdOpen(rs.pid, 0)
	if err == nil {
		rs.uffd, err = unix.PidfdGetfd(pidfd, int(fd), 0)
		unix.Close(pidfd)
	}
	if _, cerr := rs.call(unix.SYS_CLOSE, fd); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if rs.uffd > 0 {
			unix.Close(rs.uffd)
		}
		rs.uffd = 0
		return rs.fail("take the userfaultfd", err)
	}
	return nil
}

// handOverUFFD gives the process's userfaultfd and lazy mappings to the
// caller's LazyFunc.
func (rs *restorer) handOverUFFD() error {
	if rs.uffd <= 0 {
		return nil
	}
	var anon []image.VMA
	for _, v := range rs.proc.VMAs {
		if v.Kind == image.VMAAnon {
			anon = append(anon, v)
		}
	}
	fd := rs.uffd
	rs.uffd = 0
	return rs.opts.Lazy(rs.proc.PID, fd, anon)
}

// closeUFFD drops a userfaultfd not handed over (on failure).
func (rs *restorer) closeUFFD() {
	if rs.uffd > 0 {
		unix.Close(rs.uffd)
		rs.uffd = 0
	}
}
