package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// pty is a pseudo-terminal made by a test: the master stays with the test
// (reads have deadlines), the slave is for a program.
type pty struct {
	master *os.File
	slave  *os.File
	index  int    // N of /dev/pts/N
	rdev   uint64 // the slave's device number
}

// openPTY opens a new pseudo-terminal (posix_openpt, unlockpt, ptsname).
func openPTY(t *testing.T) *pty {
	t.Helper()
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals (/dev/ptmx): %v", err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(m)
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err != nil {
		unix.Close(m)
		t.Fatalf("ptsname: %v", err)
	}
	s, err := unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(m)
		t.Fatalf("open /dev/pts/%d: %v", n, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(s, &st); err != nil {
		t.Fatal(err)
	}
	// A non-blocking master goes to Go's poller: its reads take deadlines.
	if err := unix.SetNonblock(m, true); err != nil {
		t.Fatal(err)
	}
	p := &pty{master: os.NewFile(uintptr(m), "ptmx"), slave: os.NewFile(uintptr(s), "pts"), index: n, rdev: st.Rdev}
	t.Cleanup(func() {
		p.master.Close()
		p.slave.Close()
	})
	return p
}

// expect reads the terminal until it shows want, and returns what it read.
func (p *pty) expect(t *testing.T, want string) string {
	t.Helper()
	var got bytes.Buffer
	buf := make([]byte, 4096)
	deadline := time.Now().Add(reportTimeout)
	p.master.SetReadDeadline(deadline)
	for !strings.Contains(got.String(), want) {
		n, err := p.master.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("/dev/pts/%d shows %q, not %q: %v", p.index, got.String(), want, err)
		}
	}
	return got.String()
}

// shellJobPy runs on a terminal like an interactive program: it clears
// ECHOCTL in the terminal's settings (so that the test can tell the
// settings travel), says it is ready, and answers each line it reads.
const shellJobPy = `import os, sys, termios
a = termios.tcgetattr(0)
a[3] &= ~termios.ECHOCTL
termios.tcsetattr(0, termios.TCSANOW, a)
sys.stdout.write("ready %d\n" % os.getpid()); sys.stdout.flush()
while True:
    line = sys.stdin.readline()
    if not line:
        break
    sys.stdout.write("got: " + line); sys.stdout.flush()
`

// TestShellJob runs an interactive program on a terminal the test made, as
// a session leader whose controlling terminal it is, and dumps it: without
// --shell-job the dump is refused naming the flag and the program runs on;
// with it, the image is restored with another terminal as godwit's stdin.
// The program comes back on that terminal: it reads a line typed into it
// and answers there, the terminal is its controlling terminal with its
// process group in the foreground, and the settings it made travelled.
func TestShellJob(t *testing.T) {
	setup(t)
	py := python3(t)
	old := openPTY(t)
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	cmd := exec.Command(py, "-c", shellJobPy)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = old.slave, old.slave, old.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
		testutil.KillAndReap(pid, 5*time.Second) // the restored one
	})
	old.slave.Close()
	old.expect(t, fmt.Sprintf("ready %d", pid))
	old.master.Write([]byte("one\n"))
	old.expect(t, "got: one")

	img := filepath.Join(t.TempDir(), "image")
	e := wantCode(t, godwit(t, "dump", "--log-format", "json", "--image", img, strconv.Itoa(pid)), "unsupported")
	remedy, _ := e.Detail["remedy"].(string)
	if !strings.Contains(e.Error, fmt.Sprintf("/dev/pts/%d", old.index)) || !strings.Contains(remedy, "--shell-job") {
		t.Errorf("the refusal does not name the terminal and --shell-job: %q (remedy %q)", e.Error, remedy)
	}
	checkRunning(t, pid)
	old.master.Write([]byte("two\n"))
	old.expect(t, "got: two")

	if r := godwit(t, "dump", "--shell-job", "--image", img, strconv.Itoa(pid)); r.ExitCode != 0 {
		t.Fatalf("dump --shell-job failed:\n%s", r)
	}
	cmd.Wait()

	// Not without --shell-job, and not without a terminal.
	e = wantCode(t, godwit(t, "restore", "--log-format", "json", "--image", img), "invalid-argument")
	if !strings.Contains(e.Error, "shell job") || !strings.Contains(e.Error, "--shell-job") {
		t.Errorf("restore without --shell-job: %q does not say why", e.Error)
	}
	nottyCmd := testutil.GodwitCommand(t, context.Background(), testutil.RunOptions{},
		"restore", "--shell-job", "--log-format", "json", "--image", img)
	nottyCmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling terminal
	var stderr bytes.Buffer
	nottyCmd.Stderr = &stderr
	if err := nottyCmd.Run(); err == nil || !strings.Contains(stderr.String(), "no terminal") {
		t.Errorf("restore --shell-job without a terminal: %v, stderr %s", err, stderr.String())
	}

	tty := openPTY(t)
	var fresh unix.Termios
	if tio, err := unix.IoctlGetTermios(int(tty.slave.Fd()), unix.TCGETS); err != nil || tio.Lflag&unix.ECHOCTL == 0 {
		t.Fatalf("a new terminal has no ECHOCTL (%v): the settings check means nothing", err)
	} else {
		fresh = *tio
	}
	r := testutil.RunGodwitWith(t, testutil.RunOptions{Stdin: tty.slave, Timeout: godwitTimeout},
		"restore", "--shell-job", "--image", img)
	if r.ExitCode != 0 {
		t.Fatalf("restore --shell-job failed:\n%s", r)
	}
	if got := strings.TrimSpace(r.Stdout); got != strconv.Itoa(pid) {
		t.Fatalf("restore printed %q, want %d", got, pid)
	}
	tty.slave.Close()

	tty.master.Write([]byte("three\n"))
	tty.expect(t, "got: three")

	st, err := readStatTTY(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.sid != pid || st.ttyNr != tty.rdev || st.tpgid != pid {
		t.Errorf("restored pid %d: session %d, controlling terminal %#x, foreground group %d; want %d, %#x (/dev/pts/%d), %d",
			pid, st.sid, st.ttyNr, st.tpgid, pid, tty.rdev, tty.index, pid)
	}
	for fd := 0; fd < 3; fd++ {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); l != fmt.Sprintf("/dev/pts/%d", tty.index) {
			t.Errorf("fd %d of the restored program is %q, want /dev/pts/%d", fd, l, tty.index)
		}
	}
	tio, err := unix.IoctlGetTermios(int(tty.master.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ECHOCTL != 0 || tio.Lflag|unix.ECHOCTL != fresh.Lflag {
		t.Errorf("terminal local flags %#o after the restore, want %#o (the program's, without ECHOCTL)", tio.Lflag, fresh.Lflag&^unix.ECHOCTL)
	}
}

// ttyStat is what /proc/PID/stat says of a process's terminal.
type ttyStat struct {
	sid, tpgid int
	ttyNr      uint64
}

func readStatTTY(pid int) (ttyStat, error) {
	var s ttyStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 6 {
		return s, errors.New("malformed stat")
	}
	s.sid, _ = strconv.Atoi(f[3])
	nr, _ := strconv.ParseUint(f[4], 10, 32)
	s.ttyNr = nr
	s.tpgid, _ = strconv.Atoi(f[5])
	return s, nil
}
