package kernel

import (
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/stub"
	gunix "github.com/godwit-dev/godwit/internal/unix"
)

// withStub runs fn with the pid of a fresh restore stub (in pause, not
// traced), then kills and reaps the stub. attr may add clone flags.
func withStub(attr *syscall.SysProcAttr, fn func(pid int) error) error {
	errc := make(chan error, 1)
	go func() {
		// Pdeathsig belongs to the thread that forks: keep this goroutine
		// on one thread, and let the thread end with it.
		runtime.LockOSThread()
		errc <- withStubLocked(attr, false, fn)
	}()
	return <-errc
}

// withStoppedStub is withStub with the stub seized and stopped by the
// calling (locked) thread, as the ptrace requests of fn need.
func withStoppedStub(fn func(pid int) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- withStubLocked(nil, true, fn)
	}()
	return <-errc
}

func withStubLocked(attr *syscall.SysProcAttr, stop bool, fn func(pid int) error) error {
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Pdeathsig = syscall.SIGKILL
	p, err := stub.Start(attr)
	if err != nil {
		return err
	}
	defer p.Release()
	defer killReap(p.Pid)
	if stop {
		if err := seizeStop(p.Pid); err != nil {
			return err
		}
	}
	return fn(p.Pid)
}

// seizeStop seizes pid and waits for it to stop.
func seizeStop(pid int) error {
	if err := gunix.PtraceSeize(pid, unix.PTRACE_O_EXITKILL); err != nil {
		return classify("ptrace PTRACE_SEIZE", "3.4",
			"allow ptrace: CAP_SYS_PTRACE, or a kernel.yama.ptrace_scope below 2", err)
	}
	if err := gunix.PtraceInterrupt(pid); err != nil {
		return classify("ptrace PTRACE_INTERRUPT", "3.4", "", err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		return failed("ptrace stop", fmt.Errorf("wait for stub %d: %w", pid, err))
	}
	if !ws.Stopped() {
		return failed("ptrace stop", fmt.Errorf("stub %d: wait status %#x, not a stop", pid, uint32(ws)))
	}
	return nil
}

// killReap kills pid and reaps it, with every ptrace stop it reports first.
func killReap(pid int) {
	unix.Kill(pid, unix.SIGKILL)
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}

// stubProcFile opens /proc/PID/<name> of a stub.
func stubProcFile(pid int, name string) (*os.File, error) {
	return os.Open(fmt.Sprintf("/proc/%d/%s", pid, name))
}
