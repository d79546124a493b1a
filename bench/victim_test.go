package bench

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// victim is a memhog process. It is deliberately not a testutil.Victim: that
// one waits for its process in a goroutine from the start, and a waitid by
// any thread of the test process would consume the ptrace stops that the
// in-process checkpoint.Dump waits for (wait reports ptrace stops to every
// thread of the tracer's thread group), and the dump would hang. Here nothing
// waits for the process until it has been killed.
type victim struct {
	dir    string
	report string
	cmd    *exec.Cmd // the original process, until reaped
	pid    int       // the process that holds the victim's identity now
	alive  bool
}

var closeInherited sync.Once

// startVictim starts memhog holding mib MiB, stdin on /dev/null and stdout
// and stderr on files, so that it holds no pipe or tty. Whatever process
// holds its identity when the benchmark ends is killed and reaped.
func startVictim(b *testing.B, memhog string, mib int) *victim {
	b.Helper()
	// Descriptors inherited without close-on-exec (say, a pipe from whatever
	// started go test) would be passed on and make the victim undumpable.
	closeInherited.Do(func() { unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) })
	v := &victim{dir: b.TempDir()}
	v.report = filepath.Join(v.dir, "report")
	null, err := os.Open(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	out, err := os.Create(filepath.Join(v.dir, "stderr"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	v.cmd = exec.Command(memhog, "--mib", strconv.Itoa(mib), "--report", v.report)
	v.cmd.Stdin, v.cmd.Stdout, v.cmd.Stderr = null, out, out
	if err := v.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	v.pid, v.alive = v.cmd.Process.Pid, true
	b.Cleanup(func() {
		if v.alive {
			v.kill(b)
		}
	})
	return v
}

func (v *victim) stderr() string {
	e, _ := os.ReadFile(filepath.Join(v.dir, "stderr"))
	return string(e)
}

// waitReport waits for the victim's report and returns it.
func (v *victim) waitReport(b *testing.B) report {
	b.Helper()
	var data []byte
	testutil.WaitFor(b, 5*time.Minute, func() bool {
		var err error
		if data, err = os.ReadFile(v.report); err == nil {
			return true
		}
		if !running(v.pid) {
			b.Fatalf("victim pid %d exited; stderr: %s", v.pid, v.stderr())
		}
		return false
	}, "a report from victim pid "+strconv.Itoa(v.pid))
	return parseReport(b, data)
}

// poke asks the victim for a new report (SIGUSR1) and returns it.
func (v *victim) poke(b *testing.B) report {
	b.Helper()
	if err := os.Remove(v.report); err != nil && !errors.Is(err, os.ErrNotExist) {
		b.Fatal(err)
	}
	if err := unix.Kill(v.pid, unix.SIGUSR1); err != nil {
		b.Fatalf("signal pid %d: %v", v.pid, err)
	}
	return v.waitReport(b)
}

// kill kills the victim's current process and reaps it, so that its PID is
// free for a restore.
func (v *victim) kill(b *testing.B) {
	b.Helper()
	v.alive = false
	if v.cmd != nil {
		v.cmd.Process.Kill()
		v.cmd.Wait()
		v.cmd = nil
		return
	}
	if !testutil.KillAndReap(v.pid, time.Minute) {
		b.Fatalf("restored pid %d could not be reaped", v.pid)
	}
}

// adopt records that a restored process, a child of this subreaper, now holds
// the victim's identity.
func (v *victim) adopt(pid int) {
	v.pid, v.alive = pid, true
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	st, err := testutil.ReadStat(pid, 0)
	return err == nil && st.State != 'Z' && st.State != 'X'
}
