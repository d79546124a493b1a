package stub

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

var memfd struct {
	once sync.Once
	file *os.File
	err  error
}

// Start runs the stub from a memfd with stdin, stdout and stderr on
// /dev/null and an empty environment. attr, when not nil, is passed to the
// child as its SysProcAttr (e.g. Setsid, Pdeathsig, Cloneflags). The started
// process is in pause(2) once it has run its first instruction.
//
// The memfd is created once per godwit process and kept open (close-on-exec,
// sealed); the stub is exec'd through /proc/<godwit's pid>/fd/<n>.
func Start(attr *syscall.SysProcAttr) (*os.Process, error) {
	f, err := imageFile()
	if err != nil {
		return nil, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("stub: open %s: %w", os.DevNull, err)
	}
	defer null.Close()
	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
	p, err := os.StartProcess(path, []string{"godwit-stub"}, &os.ProcAttr{
		Env:   []string{},
		Files: []*os.File{null, null, null},
		Sys:   attr,
	})
	if err != nil {
		return nil, fmt.Errorf("stub: start: %w", err)
	}
	return p, nil
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
	return r, nil
}
