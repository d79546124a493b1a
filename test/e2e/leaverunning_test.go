package e2e

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// TestDumpLeaveRunning dumps with --leave-running: the process must carry on
// as if nothing happened (running, untraced, same state), and the image must
// still be complete: once the original is killed, it restores.
func TestDumpLeaveRunning(t *testing.T) {
	setup(t)
	v := startC(t, testutil.VictimOptions{}, "--threads", "2", "--mem", "16", "--file")
	before := poke(t, v)
	img := dump(t, v, "--leave-running")
	if !v.Alive() {
		t.Fatal("the victim is gone after dump --leave-running")
	}
	testutil.WaitFor(t, 2*time.Second, func() bool { return !anyStopped(v.PID()) },
		"every thread to run again after dump --leave-running")
	after := poke(t, v)
	checkMemFile(t, v, before, after)
	checkMemFile(t, v, after, scenarios[0].checkProgress(t, v, after))

	// The image was taken between before and after: restored, it goes on
	// from there.
	v.Kill(10 * time.Second)
	restore(t, v, img)
	restored := poke(t, v)
	// The append file grew after the dump, so only its fd state is checked.
	checkCommon(t, v, before, restored)
	checkMem(t, before, restored)
	checkFiles(t, before, restored)
}

// anyStopped reports whether a thread of pid is stopped or traced.
func anyStopped(pid int) bool {
	tids, err := testutil.Tasks(pid)
	if err != nil {
		return true
	}
	for _, tid := range tids {
		st, err := testutil.ReadStat(pid, tid)
		if err != nil || st.Stopped() || st.TracerPID != 0 {
			return true
		}
	}
	return false
}

// TestDumpStoppedProcess dumps a process stopped by SIGSTOP (a job
// suspended with ^Z): the dump must finish, leave it stopped and untraced,
// and after SIGCONT it carries on.
func TestDumpStoppedProcess(t *testing.T) {
	setup(t)
	v := startC(t, testutil.VictimOptions{}, "--threads", "2", "--mem", "4")
	before := poke(t, v)
	if err := unix.Kill(v.PID(), unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() bool {
		st, err := testutil.ReadStat(v.PID(), v.PID())
		return err == nil && st.Stopped()
	}, "the victim to stop")
	dump(t, v, "--leave-running")
	tids, err := testutil.Tasks(v.PID())
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		st, err := testutil.ReadStat(v.PID(), tid)
		if err != nil || !st.Stopped() || st.TracerPID != 0 {
			t.Fatalf("thread %d after the dump: %+v %v (want stopped by SIGSTOP, untraced)", tid, st, err)
		}
	}
	unix.Kill(v.PID(), unix.SIGCONT)
	after := poke(t, v)
	checkCommon(t, v, before, after)
	checkMem(t, before, after)
}
