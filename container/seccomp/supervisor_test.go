package seccomp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the confined process: with
// GODWIT_SECCOMP_VICTIM set it installs the filter, hands the listener to
// the test through fd 3 and calls mknod(argv path, mode, dev).
func TestMain(m *testing.M) {
	if os.Getenv("GODWIT_SECCOMP_VICTIM") != "" {
		victim()
		return
	}
	os.Exit(m.Run())
}

func victim() {
	runtime.LockOSThread()
	var path string
	var mode, major, minor uint32
	fmt.Sscanf(os.Getenv("GODWIT_SECCOMP_VICTIM"), "%s %o %d %d", &path, &mode, &major, &minor)
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("prctl", err)
		os.Exit(2)
	}
	prog, _, err := Compile(nil, DefaultPolicy())
	if err != nil {
		fmt.Println("compile", err)
		os.Exit(2)
	}
	l, err := Install(prog, true)
	if err != nil {
		fmt.Println("install", err)
		os.Exit(2)
	}
	if err := unix.Sendmsg(3, []byte{0}, unix.UnixRights(int(l.Fd())), nil, 0); err != nil {
		fmt.Println("send", err)
		os.Exit(2)
	}
	l.Close()
	err = unix.Mknod(path, mode, int(unix.Mkdev(major, minor)))
	fmt.Printf("errno=%d\n", errnoOf(err, 0))
	os.Exit(0)
}

type fakeBinder struct {
	mu    sync.Mutex
	calls []Device
}

func (b *fakeBinder) BindDevice(d Device, target *os.File) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, d)
	return nil
}

// startVictim runs the victim and returns it with its listener.
func startVictim(t *testing.T, path string, mode, major, minor uint32) (*exec.Cmd, *strings.Builder, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
	defer mine.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("GODWIT_SECCOMP_VICTIM=%s %o %d %d", path, mode, major, minor))
	cmd.ExtraFiles = []*os.File{theirs}
	out := new(strings.Builder)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(mine.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || oobn == 0 {
		cmd.Wait()
		t.Skipf("victim could not install a listener (%v): %s", err, out)
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	lfds, _ := unix.ParseUnixRights(&msgs[0])
	return cmd, out, os.NewFile(uintptr(lfds[0]), "listener")
}

func TestSupervisorMknod(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name         string
		mode         uint32
		major, minor uint32
		errno        int
		bound        bool
	}{
		{"null", unix.S_IFCHR | 0o666, 1, 3, 0, true},
		{"block", unix.S_IFBLK | 0o666, 8, 0, int(unix.EPERM), false},
		{"tty1", unix.S_IFCHR | 0o666, 4, 1, int(unix.EPERM), false},
		{"fifo", unix.S_IFIFO | 0o644, 0, 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			cmd, out, l := startVictim(t, path, c.mode, c.major, c.minor)
			b := &fakeBinder{}
			s := &Supervisor{Policy: DefaultPolicy(), Binder: b}
			if err := s.Serve(l, nil); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if want := fmt.Sprintf("errno=%d\n", c.errno); out.String() != want {
				t.Errorf("victim: %q, want %q", out, want)
			}
			if c.bound != (len(b.calls) == 1) {
				t.Errorf("binder calls: %v", b.calls)
			}
			_, err := os.Lstat(path)
			if (c.errno == 0) != (err == nil) {
				t.Errorf("node exists: %v", err)
			}
		})
	}
}

// A caller killed after the supervisor read its request is not acted on:
// the validity check after reading the arguments catches it, and the
// supervisor goes on.
func TestSupervisorCallerDies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "null")
	cmd, _, l := startVictim(t, path, unix.S_IFCHR|0o666, 1, 3)
	b := &fakeBinder{}
	killed := false
	s := &Supervisor{Policy: DefaultPolicy(), Binder: b}
	s.beforeAct = func(n *Notif) {
		fd, err := unix.PidfdOpen(int(n.PID), 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		unix.Poll(p, -1) // until it has exited
		killed = true
	}
	if err := s.Serve(l, nil); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !killed {
		t.Fatal("the hook did not run")
	}
	if len(b.calls) != 0 {
		t.Errorf("acted for a dead caller: %v", b.calls)
	}
	if _, err := os.Lstat(path); err == nil {
		t.Error("node created for a dead caller")
	}
}

// Serve returns when asked to stop, even with the caller still alive.
func TestSupervisorStop(t *testing.T) {
	dir := t.TempDir()
	cmd, _, l := startVictim(t, filepath.Join(dir, "n"), unix.S_IFCHR|0o666, 1, 3)
	stop := make(chan struct{})
	close(stop)
	s := &Supervisor{Policy: DefaultPolicy(), Binder: &fakeBinder{}}
	if err := s.Serve(l, stop); err != nil {
		t.Fatal(err)
	}
	// With the listener closed the kernel fails the pending call (ENOSYS).
	cmd.Wait()
}
