package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// setup gates a test that drives godwit: root, a subreaper test process, and
// a check for processes left behind when it ends.
func setup(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.TrackStrays(t)
}

// godwit runs godwit with args under the e2e deadline.
func godwit(t testing.TB, args ...string) testutil.Result {
	t.Helper()
	return testutil.RunGodwitWith(t, testutil.RunOptions{Timeout: godwitTimeout}, args...)
}

// dump checkpoints v into a new image file with godwit dump (plus extra
// flags) and returns the image's path; it fails the test unless godwit exits
// 0.
func dump(t *testing.T, v *testutil.Victim, extra ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image")
	args := append(append([]string{"dump"}, extra...), "--image", img, strconv.Itoa(v.PID()))
	if r := godwit(t, args...); r.ExitCode != 0 {
		t.Fatalf("dump failed:\n%s", r)
	}
	if fi, err := os.Stat(img); err != nil || fi.Size() == 0 {
		t.Fatalf("dump exited 0 but left no image (%v)", err)
	}
	return img
}

// dumpKill dumps v without --leave-running, reaps the process and checks
// that its PID is free.
func dumpKill(t *testing.T, v *testutil.Victim) string {
	t.Helper()
	pid := v.PID()
	img := dump(t, v)
	v.WaitExit(10 * time.Second)
	if testutil.Alive(pid) {
		t.Fatalf("pid %d still runs after a dump without --leave-running", pid)
	}
	return img
}

// restore runs godwit restore on img, makes v own the restored process, and
// checks that it came back under v's old PID as a child of this test.
func restore(t *testing.T, v *testutil.Victim, img string) {
	t.Helper()
	want := v.PID()
	r := godwit(t, "restore", "--image", img)
	pid, err := strconv.Atoi(strings.TrimSuffix(r.Stdout, "\n"))
	if err == nil && pid > 0 {
		v.Adopt(pid) // whatever came back is cleaned up with the victim
	}
	if r.ExitCode != 0 {
		t.Fatalf("restore failed:\n%s", r)
	}
	if err != nil || strings.Count(r.Stdout, "\n") != 1 {
		t.Fatalf("restore printed %q: want the PID alone on one line", r.Stdout)
	}
	if pid != want {
		t.Fatalf("restore printed pid %d, want the old pid %d", pid, want)
	}
	st, err := testutil.ReadStat(pid, 0)
	if err != nil {
		t.Fatalf("restored pid %d: %v", pid, err)
	}
	if st.PPID != os.Getpid() {
		t.Errorf("restored pid %d has parent %d, want the test process %d (its child-subreaper)", pid, st.PPID, os.Getpid())
	}
}

// pidFree returns a pid that no process uses now.
func pidFree(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for pid := max - 1; pid > 300; pid-- {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}

// wantCode checks that r failed cleanly with the JSON error code: exit
// status 1 (not a Go panic's 2), one JSON line on stderr, no stack trace.
func wantCode(t *testing.T, r testutil.Result, code string) testutil.ErrorJSON {
	t.Helper()
	if r.ExitCode == 0 {
		t.Fatalf("godwit succeeded, want error %q\n%s", code, r)
	}
	if r.ExitCode == 2 || strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine ") {
		t.Errorf("godwit crashed instead of reporting an error\n%s", r)
	}
	e := r.JSONError(t)
	if e.Code != code {
		t.Errorf("error code %q (%s), want %q", e.Code, e.Error, code)
	}
	return e
}

// checkNoStrays fails when, 5 s after a failed godwit run, a process that is
// not a victim is alive among this test's children (godwit must leave
// nothing behind when it fails). Zombies are reaped and noted: their PIDs stay
// taken until their subreaper (here the test, else init) reaps them.
func checkNoStrays(t *testing.T, known []int) {
	t.Helper()
	var alive []int
	ok := testutil.Poll(5*time.Second, func() bool {
		alive = alive[:0]
		for _, pid := range testutil.Strays(known) {
			if testutil.Alive(pid) {
				alive = append(alive, pid)
				continue
			}
			t.Logf("note: godwit left zombie %d for its subreaper to reap", pid)
			testutil.KillAndReap(pid, time.Second)
		}
		return len(alive) == 0
	})
	if !ok {
		for _, pid := range alive {
			t.Errorf("godwit left process %d behind: killing it", pid)
			testutil.KillAndReap(pid, 5*time.Second)
		}
	}
}
