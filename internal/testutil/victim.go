package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// VictimOptions changes how StartVictim runs a program.
type VictimOptions struct {
	// Dir holds the report and the stdout/stderr files; t.TempDir() if empty.
	Dir string
	// Stdout replaces the stdout file (e.g. the write end of a pipe, to make
	// the victim undumpable). The caller keeps ownership.
	Stdout *os.File
	// Credential runs the victim as another user.
	Credential *syscall.Credential
}

// Victim is a program started for a test to checkpoint. Its stdin is
// /dev/null and its stdout and stderr are files in Dir, so that it holds no
// pipe or tty. It is always given "--report ReportPath" as its last
// arguments. When the test ends, whatever process holds its PID on behalf of
// the test (the original, or one restored under the same PID) is killed with
// SIGKILL and reaped.
type Victim struct {
	t          testing.TB
	Dir        string
	ReportPath string
	cmd        *exec.Cmd
	done       chan struct{} // closed when cmd.Wait returned
	waitErr    error

	mu      sync.Mutex
	pid     int
	adopted bool // pid is a restored process, a child of this subreaper
	gone    bool // the adopted pid was reaped
}

var victims struct {
	sync.Mutex
	pids []int // pids of live adopted victims, for Strays
}

func victimOwns(pid int) bool {
	victims.Lock()
	defer victims.Unlock()
	return slices.Contains(victims.pids, pid)
}

// StartVictim starts argv (argv[0] is the program) with "--report PATH"
// appended and registers its cleanup. It does not wait for it to be ready:
// see WaitReady.
func StartVictim(t testing.TB, opts VictimOptions, argv ...string) *Victim {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	closeInherited(t)
	v := &Victim{t: t, Dir: dir, ReportPath: filepath.Join(dir, "report.json"), done: make(chan struct{})}
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout := opts.Stdout
	if stdout == nil {
		stdout = createFile(t, filepath.Join(dir, "stdout"), opts.Credential)
		defer stdout.Close()
	}
	stderr := createFile(t, filepath.Join(dir, "stderr"), opts.Credential)
	defer stderr.Close()

	v.cmd = exec.Command(argv[0], append(argv[1:], "--report", v.ReportPath)...)
	v.cmd.Dir = dir
	v.cmd.Stdin, v.cmd.Stdout, v.cmd.Stderr = stdin, stdout, stderr
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: opts.Credential}
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start victim %v: %v", argv, err)
	}
	v.pid = v.cmd.Process.Pid
	go func() {
		v.waitErr = v.cmd.Wait()
		close(v.done)
	}()
	t.Cleanup(v.cleanup)
	return v
}

var inherited struct {
	once sync.Once
	err  error
}

// closeInherited marks every descriptor above stderr close-on-exec, once:
// the test process may have inherited some without it (a pipe from whatever
// started go test), and os/exec would pass them on to a victim, which then
// could not be dumped.
func closeInherited(t testing.TB) {
	t.Helper()
	inherited.once.Do(func() {
		inherited.err = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	})
	if inherited.err != nil {
		t.Fatalf("close_range(3, ~0, CLOSE_RANGE_CLOEXEC): %v", inherited.err)
	}
}

// createFile creates path, owned by cred's user when cred is not nil.
func createFile(t testing.TB, path string, cred *syscall.Credential) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := f.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// PID returns the pid the victim has now.
func (v *Victim) PID() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.pid
}

// Stderr returns what the victim wrote to stderr, for failure messages.
func (v *Victim) Stderr() string {
	b, _ := os.ReadFile(filepath.Join(v.Dir, "stderr"))
	return string(b)
}

// Alive reports whether the victim's current process is running (or stopped)
// and not a zombie.
func (v *Victim) Alive() bool {
	v.mu.Lock()
	adopted, gone := v.adopted, v.gone
	v.mu.Unlock()
	if !adopted {
		select {
		case <-v.done:
			return false
		default:
		}
	}
	return !gone && Alive(v.PID())
}

// ExitState describes how the original process ended ("" while it runs or
// when a restored process has replaced it).
func (v *Victim) ExitState() string {
	select {
	case <-v.done:
		return v.cmd.ProcessState.String()
	default:
		return ""
	}
}

// Signal sends sig to the victim's current process.
func (v *Victim) Signal(sig syscall.Signal) error {
	return unix.Kill(v.PID(), sig)
}

// Adopt records that a restored process now holds the victim's identity
// under pid (a child of this subreaper): the victim's cleanup kills and reaps
// it. It must be called only after the previous process was reaped
// (WaitExit).
func (v *Victim) Adopt(pid int) {
	v.mu.Lock()
	v.pid, v.adopted, v.gone = pid, true, false
	v.mu.Unlock()
	victims.Lock()
	victims.pids = append(victims.pids, pid)
	victims.Unlock()
}

// WaitExit waits up to timeout for the victim's current process to exit and
// reaps it. It fails the test on timeout.
func (v *Victim) WaitExit(timeout time.Duration) {
	v.t.Helper()
	if err := v.waitExit(timeout); err != nil {
		v.t.Fatalf("victim pid %d: %v", v.PID(), err)
	}
}

func (v *Victim) waitExit(timeout time.Duration) error {
	v.mu.Lock()
	pid, adopted := v.pid, v.adopted
	v.mu.Unlock()
	if !adopted {
		select {
		case <-v.done:
			return nil
		case <-time.After(timeout):
			return fmt.Errorf("did not exit within %v", timeout)
		}
	}
	if !waitGone(pid, timeout) {
		return fmt.Errorf("did not exit within %v", timeout)
	}
	v.mu.Lock()
	v.gone = true
	v.mu.Unlock()
	forget(pid)
	return nil
}

func forget(pid int) {
	victims.Lock()
	victims.pids = slices.DeleteFunc(victims.pids, func(p int) bool { return p == pid })
	victims.Unlock()
}

// Kill kills the victim's current process with SIGKILL and waits up to
// timeout for it to be reaped.
func (v *Victim) Kill(timeout time.Duration) {
	v.t.Helper()
	if err := v.Signal(unix.SIGKILL); err != nil {
		v.t.Fatalf("kill victim pid %d: %v", v.PID(), err)
	}
	v.WaitExit(timeout)
}

// WaitReady waits until the victim has written its first report.
func (v *Victim) WaitReady(timeout time.Duration) {
	v.t.Helper()
	WaitFor(v.t, timeout, func() bool {
		if _, err := os.Stat(v.ReportPath); err == nil {
			return true
		}
		if !v.Alive() {
			v.t.Fatalf("victim exited (%s) before it was ready; stderr: %s", v.ExitState(), v.Stderr())
		}
		return false
	}, "the victim's first report")
}

// Poke removes the last report, sends SIGUSR1 and waits up to timeout for
// the new report, which it returns.
func (v *Victim) Poke(timeout time.Duration) []byte {
	v.t.Helper()
	if err := os.Remove(v.ReportPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		v.t.Fatal(err)
	}
	if err := v.Signal(unix.SIGUSR1); err != nil {
		v.t.Fatalf("signal victim pid %d: %v", v.PID(), err)
	}
	var b []byte
	WaitFor(v.t, timeout, func() bool {
		var err error
		if b, err = os.ReadFile(v.ReportPath); err == nil {
			return true
		}
		if !v.Alive() {
			v.t.Fatalf("victim pid %d exited (%s) while a report was awaited; stderr: %s", v.PID(), v.ExitState(), v.Stderr())
		}
		return false
	}, fmt.Sprintf("a report from victim pid %d after SIGUSR1", v.PID()))
	return b
}

// cleanup kills whatever process holds the victim's identity and reaps it.
func (v *Victim) cleanup() {
	v.mu.Lock()
	pid, adopted, gone := v.pid, v.adopted, v.gone
	v.mu.Unlock()
	if !adopted {
		v.cmd.Process.Kill()
		select {
		case <-v.done:
		case <-time.After(10 * time.Second):
			v.t.Errorf("victim pid %d could not be reaped", pid)
		}
		return
	}
	if !gone && !KillAndReap(pid, 10*time.Second) {
		v.t.Errorf("restored victim pid %d could not be reaped", pid)
	}
	forget(pid)
}
