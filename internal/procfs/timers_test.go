package procfs

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestParseTimersCFixture(t *testing.T) {
	timers, err := ParseTimers(bytes.NewReader(fixture(t, "timers/c-fixture.txt")))
	if err != nil {
		t.Fatal(err)
	}
	const pid, worker = 5977, 5979
	want := []Timer{
		{ID: 6, Signal: 26, Notify: "signal", NotifyTID: pid, ClockID: -47782}, // CPU clock of the parent
		{ID: 5, Signal: 27, Notify: "signal", NotifyTID: pid, ClockID: -47834}, // CPU clock of a thread
		{ID: 4, Signal: 12, SigevValue: ^uint64(0), Notify: "thread", NotifyTID: pid, ClockID: -6},
		{ID: 3, Signal: 10, SigevValue: 0x1234, Notify: "signal", NotifyTID: worker, ToThread: true, ClockID: unix.CLOCK_MONOTONIC},
		{ID: 2, Notify: "none", NotifyTID: pid, ClockID: unix.CLOCK_BOOTTIME},
		{ID: 1, Signal: 37, SigevValue: 0xdeadbeefcafe, Notify: "signal", NotifyTID: pid, ClockID: unix.CLOCK_MONOTONIC},
		{ID: 0, Signal: 14, Notify: "signal", NotifyTID: pid, ClockID: unix.CLOCK_REALTIME},
	}
	if !reflect.DeepEqual(timers, want) {
		t.Errorf("got  %+v\nwant %+v", timers, want)
	}
	notify := []int{SigevSignal, SigevSignal, SigevThread, SigevSignal | SigevThreadID, SigevNone, SigevSignal, SigevSignal}
	for i, tm := range timers {
		if got := tm.SigevNotify(); got != notify[i] {
			t.Errorf("timer %d: SigevNotify %d, want %d", tm.ID, got, notify[i])
		}
	}
	if got := (Timer{Notify: "bogus"}).SigevNotify(); got != -1 {
		t.Errorf("SigevNotify of unknown = %d", got)
	}
	if got := formatTimers(timers); got != string(fixture(t, "timers/c-fixture.txt")) {
		t.Errorf("formatTimers does not reproduce the fixture:\n%s", got)
	}
}

func TestParseTimersEmpty(t *testing.T) {
	timers, err := ParseTimers(bytes.NewReader(fixture(t, "timers/none.txt")))
	if err != nil || timers != nil {
		t.Fatalf("got %v, %v", timers, err)
	}
}

func TestParseTimersEdgeCases(t *testing.T) {
	in := "ID: 2147483647\nsignal: 64/ffffffff\nnotify: signal/pid.1\nfuture: 1\nClockID: -2\n"
	timers, err := ParseTimers(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Timer{{ID: 2147483647, Signal: 64, SigevValue: 0xffffffff, Notify: "signal", NotifyTID: 1, ClockID: -2}}
	if !reflect.DeepEqual(timers, want) {
		t.Errorf("got %+v, want %+v", timers, want)
	}
}

func TestParseTimersMalformed(t *testing.T) {
	one := "ID: 1\nsignal: 14/0000000000000000\nnotify: signal/pid.5\nClockID: 0\n"
	cases := []badCase{
		{"no colon", one + "garbage\n", `timers line 5: no ':' in "garbage"`, 5},
		{"signal first", "signal: 14/0\n", "timers line 1: signal line where ID was expected", 1},
		{"missing notify", "ID: 1\nsignal: 14/0\nClockID: 0\n", "timers line 3: ClockID line where notify was expected", 3},
		{"truncated", one + "ID: 2\nsignal: 14/0\n", "timers line 5: timer 2 has no notify line", 5},
		{"only id", "ID: 7", "timers line 1: timer 7 has no signal line", 1},
		{"bad id", "ID: x\n", `timers line 1: bad timer id "x"`, 1},
		{"no slash", "ID: 1\nsignal: 14\n", `timers line 2: bad signal "14"`, 2},
		{"bad signo", "ID: 1\nsignal: x/0\n", `bad signal number "x"`, 2},
		{"bad value", "ID: 1\nsignal: 1/xyz\n", `bad sigev_value "xyz"`, 2},
		{"big value", "ID: 1\nsignal: 1/10000000000000000\n", "value out of range", 2},
		{"bad notify", "ID: 1\nsignal: 1/0\nnotify: signal\n", `timers line 3: bad notify "signal"`, 3},
		{"empty how", "ID: 1\nsignal: 1/0\nnotify: /pid.1\n", `bad notify "/pid.1"`, 3},
		{"bad target", "ID: 1\nsignal: 1/0\nnotify: signal/proc.1\n", `bad notify target "proc.1"`, 3},
		{"bad target id", "ID: 1\nsignal: 1/0\nnotify: signal/tid.\n", `bad notify target ""`, 3},
		{"bad clock", "ID: 1\nsignal: 1/0\nnotify: none/pid.1\nClockID: c\n", `timers line 4: bad clock id "c"`, 4},
	}
	checkBad(t, cases, func(r *bytes.Reader) error {
		_, err := ParseTimers(r)
		return err
	})
}

// formatTimers writes timers the way the kernel does.
func formatTimers(timers []Timer) string {
	var b strings.Builder
	for _, t := range timers {
		kind := "pid"
		if t.ToThread {
			kind = "tid"
		}
		fmt.Fprintf(&b, "ID: %d\nsignal: %d/%016x\nnotify: %s/%s.%d\nClockID: %d\n",
			t.ID, t.Signal, t.SigevValue, t.Notify, kind, t.NotifyTID, t.ClockID)
	}
	return b.String()
}

// sigevent is struct sigevent of linux/amd64.
type sigevent struct {
	value  uint64
	signo  int32
	notify int32
	tid    int32
	_      [44]byte
}

func TestReadTimersSelf(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("sigevent layout is only written for 64-bit")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ev := sigevent{value: 0xfeedface, signo: int32(unix.SIGURG), notify: SigevSignal | SigevThreadID, tid: int32(unix.Gettid())}
	var id int32
	if _, _, e := unix.Syscall(unix.SYS_TIMER_CREATE, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&ev)), uintptr(unsafe.Pointer(&id))); e != 0 {
		t.Fatalf("timer_create: %v", e)
	}
	defer unix.Syscall(unix.SYS_TIMER_DELETE, uintptr(id), 0, 0)
	timers, err := ReadTimers(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := Timer{ID: int(id), Signal: int(unix.SIGURG), SigevValue: 0xfeedface, Notify: "signal",
		NotifyTID: unix.Gettid(), ToThread: true, ClockID: unix.CLOCK_MONOTONIC}
	for _, tm := range timers {
		if tm.ID == int(id) {
			if tm != want {
				t.Errorf("got %+v, want %+v", tm, want)
			}
			return
		}
	}
	t.Errorf("timer %d not in %+v", id, timers)
}
