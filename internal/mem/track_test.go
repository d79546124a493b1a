package mem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/ptrace"
)

// track starts a Tracker on the victim, skipping the test when the kernel
// cannot track.
func track(t testing.TB, v *victim) *Tracker {
	t.Helper()
	tr, err := Track(v.pid)
	if errors.Is(err, ErrNoWPAsync) {
		t.Skipf("cannot track dirty pages: %v", err)
	}
	if err != nil {
		t.Fatalf("Track: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func dirty(t testing.TB, tr *Tracker) []Range {
	t.Helper()
	rs, err := tr.Dirty()
	if err != nil {
		t.Fatalf("Dirty: %v", err)
	}
	for i, r := range rs {
		if r.Addr%PageSize != 0 || r.Size <= 0 || r.Size%PageSize != 0 {
			t.Fatalf("Dirty: range %d is %#x+%#x: not whole pages", i, r.Addr, r.Size)
		}
		if i > 0 && rs[i-1].Addr+uint64(rs[i-1].Size) >= r.Addr {
			t.Fatalf("Dirty: ranges %d and %d are not sorted and merged: %#x+%#x, %#x+%#x",
				i-1, i, rs[i-1].Addr, rs[i-1].Size, r.Addr, r.Size)
		}
	}
	return rs
}

func fdCount(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestTrack tracks a program that maps 64 MiB, while it is blocked in
// read(2): the read restarts, the first round reports every page, later
// rounds exactly the pages written, new mappings are tracked, and the
// program's memory stays intact.
func TestTrack(t *testing.T) {
	v := startVictim(t)
	const n = 16384 // 64 MiB
	const seed = 7
	addr := v.mapPages(n)
	v.do("ok", "fill %x %d %d", addr, n, seed)
	want := fillPattern(n, seed)
	fds := fdCount(t, v.pid)

	v.waitSyscall(unix.SYS_READ)
	tr := track(t, v)
	if got := fdCount(t, v.pid); got != fds {
		t.Errorf("the program has %d descriptors after Track, %d before", got, fds)
	}
	// The read it was blocked in restarted: it reads the next command.
	if got := v.sum(addr, n); got != fnv(want) {
		t.Fatalf("checksum after Track: %#x, want %#x", got, fnv(want))
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(v.pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), "TracerPid:\t0\n") {
		t.Error("the program is still traced after Track")
	}

	// Round 1: everything.
	rs := dirty(t, tr)
	if got := pagesIn(rs, addr, n); len(got) != n {
		t.Fatalf("first round: %d of the %d written pages reported", len(got), n)
	}

	// Round 2: exactly the pages written in between.
	pokes := []int{0, 1, 2, 100, 4095, 4096, 9999, 16383}
	var args []string
	for _, p := range pokes {
		args = append(args, strconv.Itoa(p))
		want[p*PageSize/8+1]++
	}
	v.do("ok", "poke %x %s", addr, strings.Join(args, " "))
	rs = dirty(t, tr)
	if got := pagesIn(rs, addr, n); !slices.Equal(got, pokes) {
		t.Errorf("second round: pages %v reported, want %v", got, pokes)
	}

	// Round 3: nothing written in the region.
	v.do("sum ", "sum %x 1", addr) // the program runs meanwhile
	if got := pagesIn(dirty(t, tr), addr, n); len(got) != 0 {
		t.Errorf("third round: pages %v reported, none written", got)
	}

	// A mapping made after Track is tracked, and reported whole the first
	// round it is seen.
	const m = 256
	addr2 := v.mapPages(m)
	v.do("ok", "fill %x %d %d", addr2, m/2, 3)
	rs = dirty(t, tr)
	if got := pagesIn(rs, addr2, m); len(got) < m/2 || !slices.Equal(got[:m/2], seq(0, m/2)) {
		t.Errorf("new mapping: pages %v reported, want at least the %d written", got, m/2)
	}
	v.do("ok", "poke %x 3 200", addr2)
	v.do("ok", "poke %x 5", addr)
	want[5*PageSize/8+1]++
	rs = dirty(t, tr)
	if got := pagesIn(rs, addr2, m); !slices.Equal(got, []int{3, 200}) {
		t.Errorf("new mapping, second round: pages %v, want [3 200]", got)
	}
	if got := pagesIn(rs, addr, n); !slices.Equal(got, []int{5}) {
		t.Errorf("first mapping: pages %v, want [5]", got)
	}

	// A shared mapping is not tracked, and said so.
	shared := v.addr(v.do("addr ", "mapshared 0 16"))
	dirty(t, tr)
	found := false
	for _, u := range tr.Untracked() {
		if u.Start == shared {
			found = u.Shared && errors.Is(u.Err, ErrShared)
		}
		if !u.Shared {
			t.Logf("untracked: %#x-%#x %s: %v", u.Start, u.End, u.Path, u.Err)
		}
	}
	if !found {
		t.Errorf("the shared mapping at %#x is not in Untracked: %+v", shared, tr.Untracked())
	}

	// The program's memory is intact, and it runs on after Close.
	if got := v.sum(addr, n); got != fnv(want) {
		t.Errorf("checksum: %#x, want %#x", got, fnv(want))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Dirty(); err == nil {
		t.Error("Dirty after Close: no error")
	}
	v.do("ok", "poke %x 1", addr)
}

// Pages given back with MADV_DONTNEED after they were sent read as zero
// now: they must be reported.
func TestTrackDontneed(t *testing.T) {
	v := startVictim(t)
	const n = 64
	addr := v.mapPages(n)
	v.do("ok", "fill %x %d 1", addr, n)
	tr := track(t, v)
	dirty(t, tr)
	v.do("ok", "poke %x 10", addr)               // written, then dropped
	dirty(t, tr)                                 // protects 10 again
	v.do("ok", "dontneed %x 8", addr+8*PageSize) // pages 8-15, protected
	v.do("ok", "dontneed %x 1", addr+40*PageSize)
	rs := dirty(t, tr)
	got := pagesIn(rs, addr, n)
	if want := append(seq(8, 16), 40); !slices.Equal(got, want) {
		t.Errorf("after MADV_DONTNEED: pages %v reported, want %v", got, want)
	}
	if got := pagesIn(dirty(t, tr), addr, n); len(got) != 0 {
		t.Errorf("next round: pages %v reported, none written", got)
	}
}

// A mapping replaced by another of the same bounds (mmap MAP_FIXED) is not
// registered: the round notices (PAGEMAP_SCAN fails with EPERM), registers
// it and reports its pages.
func TestTrackReplacedMapping(t *testing.T) {
	v := startVictim(t)
	const n = 32
	addr := v.mapPages(n)
	v.do("ok", "fill %x %d 1", addr, n)
	tr := track(t, v)
	dirty(t, tr)
	if got := v.addr(v.do("addr ", "mapfixed %x %d", addr, n)); got != addr {
		t.Fatalf("MAP_FIXED mapped at %#x, not %#x", got, addr)
	}
	v.do("ok", "poke %x 4 9", addr)
	if got := pagesIn(dirty(t, tr), addr, n); !containsInts(got, []int{4, 9}) {
		t.Errorf("replaced mapping: pages %v reported, want 4 and 9 among them", got)
	}
	v.do("ok", "poke %x 20", addr)
	if got := pagesIn(dirty(t, tr), addr, n); !slices.Equal(got, []int{20}) {
		t.Errorf("replaced mapping, next round: pages %v, want [20]", got)
	}
}

// A mapping userfaultfd refuses (MAP_DROPPABLE: EINVAL) is listed by
// Untracked and reported whole every round.
func TestTrackUntracked(t *testing.T) {
	v := startVictim(t)
	tr := track(t, v)
	l := v.do("", "mapdroppable 0 16")
	if !strings.HasPrefix(l, "addr ") {
		t.Skipf("no MAP_DROPPABLE (Linux 6.11): %s", l)
	}
	addr := v.addr(l)
	for round := 0; round < 2; round++ {
		if got := pagesIn(dirty(t, tr), addr, 16); len(got) != 16 {
			t.Errorf("round %d: %d pages of the untracked mapping reported, want all 16", round, len(got))
		}
	}
	var found *Untracked
	for _, u := range tr.Untracked() {
		if u.Start == addr {
			found = &u
		}
	}
	if found == nil || found.Shared || !errors.Is(found.Err, unix.EINVAL) || found.End != addr+16*PageSize {
		t.Errorf("untracked mapping at %#x: %+v, want EINVAL", addr, found)
	}
}

// Dirty fails once the process has exited.
func TestTrackExited(t *testing.T) {
	v := startVictim(t)
	tr := track(t, v)
	dirty(t, tr)
	v.send("exit")
	if l, ok := <-v.lines; ok {
		t.Fatalf("victim said %q on exit", l)
	}
	waitState(t, v.pid, 'Z')
	if _, err := tr.Dirty(); !errors.Is(err, unix.ESRCH) {
		t.Errorf("Dirty of an exited process: %v, want ESRCH", err)
	}
}

// A program sleeping in clock_nanosleep when tracked (ERESTART_RESTARTBLOCK)
// sleeps its full time and is not interrupted.
func TestTrackRestartSleep(t *testing.T) {
	v := startVictim(t)
	v.do("sleeping", "sleep 0 300")
	v.waitSyscall(unix.SYS_CLOCK_NANOSLEEP)
	track(t, v)
	l := v.line()
	var ms, ret int
	if _, err := fmt.Sscanf(l, "slept %d %d", &ms, &ret); err != nil || ret != 0 || ms < 300 {
		t.Errorf("after Track during a 300 ms sleep the program said %q, want slept >= 300 0", l)
	}
}

// A process stopped by SIGSTOP stays stopped through Track, and goes on
// after SIGCONT.
func TestTrackStopped(t *testing.T) {
	v := startVictim(t)
	addr := v.mapPages(4)
	if err := unix.Kill(v.pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, v.pid, 'T')
	tr := track(t, v)
	// Detached, the thread re-enters the group stop (briefly running, R);
	// had it been let go it would sleep in read(2) (S) instead.
	waitState(t, v.pid, 'T')
	if err := unix.Kill(v.pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	v.do("ok", "fill %x 4 2", addr)
	if got := pagesIn(dirty(t, tr), addr, 4); len(got) != 4 {
		t.Errorf("pages %v reported, want all 4", got)
	}
}

// Track fails cleanly on a process traced by someone else, and leaves it
// running.
func TestTrackTraced(t *testing.T) {
	v := startVictim(t)
	held, release := make(chan error), make(chan struct{})
	go ptrace.Run(func() error {
		err := ptrace.Seize(v.pid, 0)
		held <- err
		<-release
		return nil // the thread exits: the kernel detaches the victim
	})
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	_, err := Track(v.pid)
	close(release)
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "already traced") {
		t.Errorf("Track of a traced process: %v, want EPERM, already traced", err)
	}
	if _, err := Track(1 << 30); !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
		t.Errorf("Track of no process: %v", err)
	}
	v.do("sum ", "sum 0 0")
}

// When an injected call fails the thread gets its registers back and runs
// on: the read it was blocked in restarts.
func TestInjectFailureLeavesRunning(t *testing.T) {
	v := startVictim(t)
	v.waitSyscall(unix.SYS_READ)
	err := injectInto(v.pid, func(in *ptrace.Injector) error {
		_, err := in.Syscall(unix.SYS_CLOSE, 1<<20)
		return err
	})
	if !errors.Is(err, unix.EBADF) {
		t.Fatalf("injected close of a bad fd: %v, want EBADF", err)
	}
	v.do("sum ", "sum 0 0")
}

// Signals dequeued while calls are injected are queued again with their
// siginfo.
func TestInjectRequeue(t *testing.T) {
	v := startVictim(t)
	v.do("ok", "sigusr1")
	v.waitSyscall(unix.SYS_READ)
	si := make([]byte, siginfoSize)
	binary.LittleEndian.PutUint32(si[0:], uint32(unix.SIGUSR1))
	binary.LittleEndian.PutUint32(si[8:], ^uint32(0)) // SI_QUEUE
	binary.LittleEndian.PutUint32(si[16:], uint32(os.Getpid()))
	binary.LittleEndian.PutUint64(si[24:], 42) // si_value
	err := injectInto(v.pid, func(in *ptrace.Injector) error {
		in.Deferred = append(in.Deferred, si) // as if a step had dequeued it
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v.do("sig 10 code -1 value 42", "sigs")
}

// CreateUFFDIn leaves the descriptors of the process as they were.
func TestCreateUFFDIn(t *testing.T) {
	v := startVictim(t)
	before := fdCount(t, v.pid)
	var fd int
	err := injectInto(v.pid, func(in *ptrace.Injector) error {
		var err error
		fd, err = CreateUFFDIn(in, v.pid, unix.O_CLOEXEC)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if after := fdCount(t, v.pid); after != before {
		t.Errorf("the process has %d descriptors, %d before", after, before)
	}
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || link != "anon_inode:[userfaultfd]" {
		t.Errorf("fd %d is %q (%v), want a userfaultfd", fd, link, err)
	}
	v.do("sum ", "sum 0 0")
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func state(t testing.TB, pid int) byte {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		t.Fatalf("bad stat %q", s)
	}
	return s[i+2]
}

func waitState(t testing.TB, pid int, want byte) {
	t.Helper()
	for range 60000 {
		if state(t, pid) == want {
			return
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 1e6}, nil) // polling a condition
	}
	t.Fatalf("pid %d never reached state %c", pid, want)
}
