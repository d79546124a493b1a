package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// TestDumpNoSuchProcess dumps a pid nobody has: code no-such-process, in
// JSON and as one line of text naming the pid.
func TestDumpNoSuchProcess(t *testing.T) {
	setup(t)
	pid := strconv.Itoa(pidFree(t))
	img := filepath.Join(t.TempDir(), "image")
	wantCode(t, godwit(t, "dump", "--log-format", "json", "--image", img, pid), "no-such-process")
	r := godwit(t, "dump", "--image", img, pid)
	if r.ExitCode == 0 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, pid) {
		t.Errorf("want a failure with one line on stderr naming pid %s\n%s", pid, r)
	}
}

// TestDumpAlreadyTraced dumps a process that strace is tracing: code
// already-traced, and strace keeps its tracee undisturbed.
func TestDumpAlreadyTraced(t *testing.T) {
	setup(t)
	straceBin := testutil.RequireCommand(t, "strace")
	v := startC(t, testutil.VictimOptions{}, "--threads", "1")
	before := poke(t, v)

	out, err := os.Create(filepath.Join(t.TempDir(), "strace.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	strace := exec.Command(straceBin, "-p", strconv.Itoa(v.PID()), "-o", os.DevNull)
	strace.Stdout, strace.Stderr = out, out
	if err := strace.Start(); err != nil {
		t.Fatal(err)
	}
	straceDone := make(chan struct{})
	go func() { strace.Wait(); close(straceDone) }()
	t.Cleanup(func() { strace.Process.Kill(); <-straceDone })
	testutil.WaitFor(t, 10*time.Second, func() bool {
		st, err := testutil.ReadStat(v.PID(), 0)
		return err == nil && st.TracerPID == strace.Process.Pid
	}, "strace to attach")

	img := filepath.Join(t.TempDir(), "image")
	e := wantCode(t, godwit(t, "dump", "--log-format", "json", "--image", img, strconv.Itoa(v.PID())), "already-traced")
	if !strings.Contains(e.Error, strconv.Itoa(v.PID())) {
		t.Errorf("error %q does not name pid %d", e.Error, v.PID())
	}
	if st, err := testutil.ReadStat(v.PID(), 0); err != nil || st.TracerPID != strace.Process.Pid {
		t.Errorf("after the failed dump the victim's tracer is %d (%v), want strace %d", st.TracerPID, err, strace.Process.Pid)
	}

	// strace detaches on SIGTERM; the victim must be as it was.
	strace.Process.Signal(syscall.SIGTERM)
	<-straceDone
	testutil.WaitFor(t, 5*time.Second, func() bool { return !anyStopped(v.PID()) }, "the victim to run untraced")
	after := poke(t, v)
	checkCommon(t, v, before, after)
}

// TestRestorePIDInUse restores an image while its PID still runs: code
// pid-in-use, the running process is untouched and nothing is left behind.
// Once the PID is free the same image restores.
func TestRestorePIDInUse(t *testing.T) {
	setup(t)
	known := testutil.Children()
	v := startC(t, testutil.VictimOptions{}, "--threads", "2")
	before := poke(t, v)
	img := dump(t, v, "--leave-running")
	e := wantCode(t, godwit(t, "restore", "--log-format", "json", "--image", img), "pid-in-use")
	if !strings.Contains(e.Error, strconv.Itoa(v.PID())) {
		t.Errorf("error %q does not name pid %d", e.Error, v.PID())
	}
	checkNoStrays(t, append(known, v.PID()))
	after := poke(t, v)
	checkCommon(t, v, before, after)

	v.Kill(10 * time.Second)
	restore(t, v, img)
	restored := poke(t, v)
	checkCommon(t, v, before, restored)
}

// TestRestoreBadImage restores truncated and corrupted copies of a good
// image: each fails with bad-image, without a crash and without leaving a
// process behind; the intact image then restores.
func TestRestoreBadImage(t *testing.T) {
	setup(t)
	known := testutil.Children()
	v := startC(t, testutil.VictimOptions{}, "--mem", "4")
	before := poke(t, v)
	pid := v.PID()
	img := dumpKill(t, v)
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	n := len(good)
	flip := func(off int) []byte {
		b := append([]byte(nil), good...)
		b[off] ^= 0x5a
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated-8", good[:min(8, n)]},
		{"truncated-half", good[:n/2]},
		{"truncated-last-byte", good[:n-1]},
		{"bad-magic", flip(0)},
		{"flipped-header", flip(min(12, n-1))},
		{"flipped-middle", flip(n / 2)},
		{"flipped-three-quarters", flip(n * 3 / 4)},
		{"flipped-last-byte", flip(n - 1)},
		{"zeros", make([]byte, 64<<10)},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			r := godwit(t, "restore", "--log-format", "json", "--image", path)
			if p, err := strconv.Atoi(strings.TrimSpace(r.Stdout)); err == nil && p > 0 {
				t.Errorf("restore of a bad image started pid %d: killing it", p)
				testutil.KillAndReap(p, 10*time.Second)
			}
			wantCode(t, r, "bad-image")
			checkNoStrays(t, known)
			if testutil.Alive(pid) {
				t.Errorf("pid %d runs after a failed restore", pid)
			}
		})
	}
	if t.Failed() {
		return
	}
	restore(t, v, img)
	checkCommon(t, v, before, poke(t, v))
}
