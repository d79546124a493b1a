package files

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/testutil"
)

// holder is a sleep process that holds descriptors of the test at the same
// numbers as the test (so that epoll registrations keep meaning).
type holder struct {
	pid, pidfd int
}

func hold(t *testing.T, fds ...int) *holder {
	t.Helper()
	testutil.RequireRoot(t)
	sleep := testutil.RequireCommand(t, "sleep")
	maxfd := 2
	for _, fd := range fds {
		maxfd = max(maxfd, fd)
	}
	files := make([]uintptr, maxfd+1)
	for i := range files {
		files[i] = ^uintptr(0)
	}
	for _, fd := range fds {
		files[fd] = uintptr(fd)
	}
	pid, err := syscall.ForkExec(sleep, []string{"sleep", "1000"}, &syscall.ProcAttr{Files: files})
	if err != nil {
		t.Fatalf("start holder: %v", err)
	}
	h := &holder{pid: pid}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		if h.pidfd > 0 {
			unix.Close(h.pidfd)
		}
	})
	// Wait for the exec: before it the child shares nothing we could miss,
	// but its fd table is settled only after.
	testutil.WaitFor(t, 5*time.Second, func() bool {
		b, _ := os.ReadFile("/proc/" + itoa(pid) + "/comm")
		return string(b) == "sleep\n"
	}, "holder to exec sleep")
	if h.pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
		t.Fatalf("pidfd_open: %v", err)
	}
	return h
}

// stop kills the holder, so that only the test's own copies remain.
func (h *holder) stop() {
	syscall.Kill(h.pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	syscall.Wait4(h.pid, &ws, 0, nil)
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n < 0 {
		return appendInt(append(b, '-'), -n)
	}
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func (h *holder) inspect(t *testing.T, fd int) *Desc {
	t.Helper()
	d, err := Inspect(h.pidfd, h.pid, fd)
	if err != nil {
		t.Fatalf("Inspect fd %d: %v", fd, err)
	}
	if d.FD != fd || d.PID != h.pid {
		t.Fatalf("Inspect: fd %d pid %d, want %d %d", d.FD, d.PID, fd, h.pid)
	}
	// Every description survives JSON.
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back Desc
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, d) {
		t.Fatalf("JSON round trip changed the description:\n%s\n%+v", b, back)
	}
	return d
}

func wantUnsupported(t *testing.T, err error) {
	t.Helper()
	if err == nil || !errors.Is(err, fault.ErrUnsupported) {
		t.Fatalf("got %v, want an unsupported error", err)
	}
	var fe *fault.Error
	if !errors.As(err, &fe) || !fe.HasFD {
		t.Fatalf("error %v does not name its fd", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mustFD(t)(fd, err) fails the test on err and closes fd at its end.
func mustFD(t *testing.T) func(int, error) int {
	return func(fd int, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
}

func closeOnCleanup(t *testing.T, fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			t.Cleanup(func() { f.Close() })
		}
	}
}

func fdinfo(t *testing.T, fd int) *procfs.FDInfo {
	t.Helper()
	fi, err := procfs.ReadFDInfo(os.Getpid(), fd)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func getfl(t *testing.T, fd int) int {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	must(t, err)
	return fl
}

// readAll reads what fd has now (it must be non-blocking or hold data).
func readNow(t *testing.T, fd int, max int) []byte {
	t.Helper()
	buf := make([]byte, max)
	var out []byte
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			out = append(out, buf[:n]...)
		}
		if err != nil || n <= 0 || len(out) >= max {
			return out
		}
	}
}

func setNonblock(t *testing.T, fd int) {
	must(t, unix.SetNonblock(fd, true))
}
