package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// scenario is one kind of victim and what must hold between two of its
// reports: before and after a dump and restore, and, as a control, between
// two reports of the same process run natively (TestVictimsNative).
type scenario struct {
	name   string
	flags  []string // victim.c flags
	python bool     // run counter.py instead of victim.c
	// skip may skip the test after looking at the first report.
	skip func(t *testing.T, first report)
	// check compares consecutive reports before and after.
	check func(t *testing.T, v *testutil.Victim, before, after report)
	// moved tells whether later shows the process still making progress
	// since after (counters, timers); the test pokes until it does.
	moved func(after, later report) bool
}

var scenarios = []scenario{
	{name: "single-thread", check: checkCommon, moved: countersMoved},
	{
		name: "threads-simd", flags: []string{"--threads", "4", "--simd"},
		skip: skipNoSIMD, check: checkSIMD, moved: countersMoved,
	},
	{name: "mem-file", flags: []string{"--mem", "64", "--file"}, check: checkMemFile, moved: countersMoved},
	{name: "sleeper", flags: []string{"--sleeper"}, check: checkSleeper, moved: countersMoved},
	{name: "timers", flags: []string{"--timers"}, check: checkTimers, moved: timersMoved},
	{name: "signals", flags: []string{"--signals"}, check: checkSignals, moved: countersMoved},
	{name: "python", python: true, check: checkPython, moved: pythonMoved},
}

// start runs the scenario's victim and waits until it is ready.
func (s scenario) start(t *testing.T) *testutil.Victim {
	t.Helper()
	if s.python {
		return startPython(t)
	}
	return startC(t, testutil.VictimOptions{}, s.flags...)
}

func skipNoSIMD(t *testing.T, first report) {
	if first.SIMD == nil || *first.SIMD == "none" {
		t.Skip("this CPU has neither AVX nor AVX-512: the SIMD victim has nothing to check")
	}
}

// checkCommon holds for every run of victim.c: identity, threads, progress,
// signal handler and process attributes are the same, and every thread runs.
func checkCommon(t *testing.T, v *testutil.Victim, before, after report) {
	t.Helper()
	if after.Seq != before.Seq+1 {
		t.Errorf("report seq %d after, %d before: want exactly one more", after.Seq, before.Seq)
	}
	if after.PID != before.PID || after.PID != v.PID() {
		t.Errorf("pid %d after, %d before (victim pid %d)", after.PID, before.PID, v.PID())
	}
	if after.PPID != os.Getpid() {
		t.Errorf("ppid %d, want the test process %d (the child-subreaper)", after.PPID, os.Getpid())
	}
	if !slices.Equal(after.TIDs, before.TIDs) {
		t.Errorf("tids %v after, %v before", after.TIDs, before.TIDs)
	}
	if tasks, err := testutil.Tasks(v.PID()); err != nil {
		t.Errorf("tasks of %d: %v", v.PID(), err)
	} else if want := slices.Sorted(slices.Values(after.TIDs)); !slices.Equal(tasks, want) {
		t.Errorf("/proc/%d/task has %v, the victim knows %v", v.PID(), tasks, want)
	}
	if after.Comm != before.Comm || after.Umask != before.Umask || after.Cwd != before.Cwd {
		t.Errorf("comm/umask/cwd %q/%#o/%q after, %q/%#o/%q before",
			after.Comm, after.Umask, after.Cwd, before.Comm, before.Umask, before.Cwd)
	}
	if len(after.Counters) != len(before.Counters) {
		t.Errorf("%d counters after, %d before", len(after.Counters), len(before.Counters))
	}
	for i := range min(len(after.Counters), len(before.Counters)) {
		if after.Counters[i] < before.Counters[i] {
			t.Errorf("thread %d's counter went back from %d to %d", i, before.Counters[i], after.Counters[i])
		}
	}
	if after.SigUSR1 != before.SigUSR1+1 {
		t.Errorf("SIGUSR1 handler ran %d times after, %d before: want one more", after.SigUSR1, before.SigUSR1)
	}
	if before.Rseq == "ok" && after.Rseq != "ok" {
		t.Errorf("rseq %q after, %q before: the kernel no longer updates the rseq area", after.Rseq, before.Rseq)
	}
	checkRunning(t, v.PID())
}

// checkRunning fails unless every thread of pid is neither stopped nor
// traced.
func checkRunning(t testing.TB, pid int) {
	t.Helper()
	tids, err := testutil.Tasks(pid)
	if err != nil {
		t.Errorf("tasks of %d: %v", pid, err)
		return
	}
	for _, tid := range tids {
		st, err := testutil.ReadStat(pid, tid)
		if err != nil {
			t.Errorf("thread %d of %d: %v", tid, pid, err)
			continue
		}
		if st.Stopped() || st.TracerPID != 0 {
			t.Errorf("thread %d of %d is in state %c with TracerPid %d: want running and untraced",
				tid, pid, st.State, st.TracerPID)
		}
	}
}

func countersMoved(after, later report) bool {
	if len(later.Counters) != len(after.Counters) {
		return false
	}
	for i := range later.Counters {
		if later.Counters[i] <= after.Counters[i] {
			return false
		}
	}
	return true
}

func checkSIMD(t *testing.T, v *testutil.Victim, before, after report) {
	t.Helper()
	checkCommon(t, v, before, after)
	isTrue(t, "simd_ok before", before.SIMDOK)
	isTrue(t, "simd_ok after (vector registers kept their pattern)", after.SIMDOK)
}

func checkMemFile(t *testing.T, v *testutil.Victim, before, after report) {
	t.Helper()
	checkCommon(t, v, before, after)
	checkMem(t, before, after)
	checkFiles(t, before, after)
	checkAppendFile(t, filepath.Join(v.Dir, "data"), after.Seq)
}

// checkMem compares the --mem state of two reports.
func checkMem(t *testing.T, before, after report) {
	t.Helper()
	isTrue(t, "mem_ok", after.MemOK)
	isTrue(t, "zero_ok", after.ZeroOK)
	if before.MemChecksum == nil || after.MemChecksum == nil || *before.MemChecksum != *after.MemChecksum {
		t.Errorf("memory checksum %v after, %v before", deref(after.MemChecksum), deref(before.MemChecksum))
	}
}

// checkFiles compares the --file state of two reports: offsets, flags, the
// O_APPEND fd at the end of a grown file, the deleted and O_PATH fds.
func checkFiles(t *testing.T, before, after report) {
	t.Helper()
	if after.Offsets["rdonly"] != 123 || before.Offsets["rdonly"] != 123 {
		t.Errorf("O_RDONLY fd offset %d after, %d before: want 123", after.Offsets["rdonly"], before.Offsets["rdonly"])
	}
	if len(before.Flags) == 0 {
		t.Error("no fd flags in the report")
	}
	for k, f := range before.Flags {
		if after.Flags[k] != f {
			t.Errorf("%s fd flags %#x after, %#x before", k, after.Flags[k], f)
		}
	}
	size := num(t, "append_size", after.AppendSize)
	if size <= num(t, "append_size before", before.AppendSize) {
		t.Errorf("append file did not grow: %d after, %v before", size, deref(before.AppendSize))
	}
	if after.Offsets["append"] != size {
		t.Errorf("O_APPEND fd at offset %d, file size %d", after.Offsets["append"], size)
	}
	isTrue(t, "deleted_content_ok", after.DeletedContentOK)
	isTrue(t, "opath_ok", after.OPathOK)
}

// checkAppendFile checks that the file written through the victim's O_APPEND
// fd holds exactly one line per report, in order, nothing lost or overwritten.
func checkAppendFile(t *testing.T, path string, seq int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	var want strings.Builder
	want.WriteString("start\n")
	for i := 1; i <= seq; i++ {
		fmt.Fprintf(&want, "report %d\n", i)
	}
	if string(b) != want.String() {
		t.Errorf("%s holds %q, want %q", path, b, want.String())
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "<missing>"
	}
	return *p
}

func checkSleeper(t *testing.T, v *testutil.Victim, before, after report) {
	t.Helper()
	checkCommon(t, v, before, after)
	if w := num(t, "sleeper_wakeups", after.SleeperWakeups); w != 0 {
		t.Errorf("nanosleep(60 s) returned %d times (%d early): the sleep was not resumed", w, deref(after.SleeperEarly))
	}
	isTrue(t, "cond_ok (pthread_cond_wait thread woke up when signalled)", after.CondOK)
	if !slices.Equal(after.SleeperTIDs, before.SleeperTIDs) || len(after.SleeperTIDs) != 2 {
		t.Errorf("sleeper tids %v after, %v before", after.SleeperTIDs, before.SleeperTIDs)
		return
	}
	// The nanosleep thread must be asleep, not spinning or stopped.
	st, err := testutil.ReadStat(v.PID(), after.SleeperTIDs[0])
	if err != nil || st.State != 'S' {
		t.Errorf("nanosleep thread %d: state %c (%v), want S", after.SleeperTIDs[0], st.State, err)
	}
}

func checkTimers(t *testing.T, v *testutil.Victim, before, after report) {
	t.Helper()
	checkCommon(t, v, before, after)
	if a, b := num(t, "sigalrm", after.SigALRM), num(t, "sigalrm before", before.SigALRM); a < b {
		t.Errorf("SIGALRM count went back from %d to %d", b, a)
	}
	if a, b := num(t, "sigrt", after.SigRT), num(t, "sigrt before", before.SigRT); a < b {
		t.Errorf("SIGRTMIN count went back from %d to %d", b, a)
	}
	if iv := num(t, "itimer_interval_us", after.ItimerIntervalUS); iv != 50000 {
		t.Errorf("ITIMER_REAL interval %d µs, want 50000", iv)
	}
	isTrue(t, "posix_timer_ok (timer_gettime on the same timer id, same interval)", after.PosixTimerOK)
}

func timersMoved(after, later report) bool {
	return countersMoved(after, later) && later.SigALRM != nil && after.SigALRM != nil &&
		*later.SigALRM > *after.SigALRM && later.SigRT != nil && after.SigRT != nil && *later.SigRT > *after.SigRT
}

func checkSignals(t *testing.T, v *testutil.Victim, before, after report) {
	t.Helper()
	checkCommon(t, v, before, after)
	isTrue(t, "sigaltstack_ok (same alternate stack, SIGUSR1 ran on it)", after.SigaltstackOK)
	isTrue(t, "sigaction_ok (SIGUSR1 handler, flags and mask; SIGPIPE ignored)", after.SigactionOK)
	isTrue(t, "blocked_ok (SIGUSR2 still blocked)", after.BlockedOK)
	isTrue(t, "pending_usr2 (SIGUSR2 still pending)", after.PendingUSR2)
	if after.USR2Value == nil || *after.USR2Value != 42 {
		t.Errorf("pending SIGUSR2 carries value %v, want 42 from sigqueue", deref(after.USR2Value))
	}
}

func checkPython(t *testing.T, v *testutil.Victim, before, after report) {
	t.Helper()
	if after.PID != before.PID || after.PID != v.PID() {
		t.Errorf("pid %d after, %d before (victim pid %d)", after.PID, before.PID, v.PID())
	}
	if after.Seq != before.Seq+1 || after.SigUSR1 != before.SigUSR1+1 {
		t.Errorf("seq %d/%d and SIGUSR1 count %d/%d after/before: want one more each",
			after.Seq, before.Seq, after.SigUSR1, before.SigUSR1)
	}
	if num(t, "counter", after.Counter) < num(t, "counter before", before.Counter) {
		t.Errorf("counter went back from %d to %d", *before.Counter, *after.Counter)
	}
	isTrue(t, "mem_ok", after.MemOK)
	if before.MemChecksum == nil || after.MemChecksum == nil || *before.MemChecksum != *after.MemChecksum {
		t.Errorf("bytearray checksum %v after, %v before", deref(after.MemChecksum), deref(before.MemChecksum))
	}
	checkRunning(t, v.PID())
}

func pythonMoved(after, later report) bool {
	return later.Counter != nil && after.Counter != nil && *later.Counter > *after.Counter
}

// progressTimeout bounds the wait for a victim to show progress.
const progressTimeout = 10 * time.Second

// checkProgress pokes v until s.moved holds against after.
func (s scenario) checkProgress(t *testing.T, v *testutil.Victim, after report) report {
	t.Helper()
	return pokeUntil(t, v, progressTimeout, func(later report) bool { return s.moved(after, later) },
		"the victim to keep making progress (counters, timers)")
}
