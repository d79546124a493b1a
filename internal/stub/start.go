package stub

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var memfd struct {
	once sync.Once
	file *os.File
	err  error
}

// Start runs the stub from a memfd with stdin, stdout and stderr on
// /dev/null and an empty environment. attr, when not nil, is passed to the
// child as its SysProcAttr (e.g. Setsid, Pdeathsig, Cloneflags). Start
// returns once the stub sits in pause(2): its memory is then complete (when
// os.StartProcess returns, the kernel may still be mapping the new image).
//
// The memfd is created once per godwit process and kept open (close-on-exec,
// sealed). The child execs it through /proc/self/fd/<n>, its own inherited
// copy: a child in a new user namespace may not follow /proc/<godwit's
// pid>/fd/<n> (EACCES), and /proc/self resolves in the proc mount's PID
// namespace, so it also works with CLONE_NEWPID.
func Start(attr *syscall.SysProcAttr) (*os.Process, error) {
	return StartWith(attr)
}

// StartWith is Start with extra descriptors for the stub: extra[i] becomes
// its fd 3+i.
func StartWith(attr *syscall.SysProcAttr, extra ...*os.File) (*os.Process, error) {
	f, err := imageFile()
	if err != nil {
		return nil, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("stub: open %s: %w", os.DevNull, err)
	}
	defer null.Close()
	path := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	p, err := os.StartProcess(path, []string{"godwit-stub"}, &os.ProcAttr{
		Env:   []string{},
		Files: append([]*os.File{null, null, null}, extra...),
		Sys:   attr,
	})
	if err != nil {
		return nil, fmt.Errorf("stub: start: %w", err)
	}
	if err := waitPaused(p.Pid); err != nil {
		p.Kill()
		p.Wait()
		return nil, err
	}
	return p, nil
}

// readyTimeout bounds the wait for a new stub to reach pause(2).
const readyTimeout = 5 * time.Second

// waitPaused waits until /proc/PID/syscall shows the stub blocked in
// pause(2) (system call 34).
func waitPaused(pid int) error {
	path := fmt.Sprintf("/proc/%d/syscall", pid)
	deadline := time.Now().Add(readyTimeout)
	for delay := 10 * time.Microsecond; ; delay = min(2*delay, time.Millisecond) {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("stub %d: %w", pid, err)
		}
		if strings.HasPrefix(string(b), "34 ") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stub %d: not in pause after %v: %s is %q", pid, readyTimeout, path, strings.TrimSpace(string(b)))
		}
		time.Sleep(delay)
	}
}

func imageFile() (*os.File, error) {
	memfd.once.Do(func() { memfd.file, memfd.err = createImageFile() })
	return memfd.file, memfd.err
}

// createImageFile writes the image into a sealed memfd. The writable
// descriptor is replaced by a read-only one so that exec never meets a
// file open for writing (ETXTBSY).
func createImageFile() (*os.File, error) {
	const name = "godwit-stub"
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL {
		// Kernels before 6.3 know no MFD_EXEC; their memfds are executable.
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("stub: memfd_create: %w", err)
	}
	w := os.NewFile(uintptr(fd), name)
	defer w.Close()
	if _, err := w.Write(image); err != nil {
		return nil, fmt.Errorf("stub: write memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(w.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return nil, fmt.Errorf("stub: seal memfd: %w", err)
	}
	r, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("stub: reopen memfd read-only: %w", err)
	}
	// Keep it above the descriptors a stub is given (StartWith), which the
	// exec path /proc/self/fd/N must not name.
	high, err := unix.FcntlInt(r.Fd(), unix.F_DUPFD_CLOEXEC, 100)
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("stub: move memfd: %w", err)
	}
	return os.NewFile(uintptr(high), "godwit-stub"), nil
}
