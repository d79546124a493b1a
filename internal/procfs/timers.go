package procfs

import (
	"fmt"
	"io"
	"strings"
)

// Values of sigev_notify (asm-generic/siginfo.h); golang.org/x/sys/unix
// does not define them.
const (
	SigevSignal   = 0
	SigevNone     = 1
	SigevThread   = 2
	SigevThreadID = 4
)

// Timer is one POSIX timer of /proc/PID/timers:
//
//	ID: 3
//	signal: 10/0000000000001234
//	notify: signal/tid.5341
//	ClockID: 1
type Timer struct {
	ID         int
	Signal     int
	SigevValue uint64
	Notify     string // "signal", "thread", "none"
	NotifyTID  int    // the pid or tid after "pid." or "tid."
	// ToThread is set when the kernel printed "tid." rather than "pid.":
	// the timer was created with SIGEV_THREAD_ID and signals NotifyTID.
	ToThread bool
	ClockID  int // negative for the CPU clocks of a given process or thread
}

// SigevNotify returns the sigev_notify value the timer was created with:
// one of SigevSignal, SigevNone, SigevThread, plus SigevThreadID when
// ToThread is set. It returns -1 for an unknown Notify.
func (t Timer) SigevNotify() int {
	var n int
	switch t.Notify {
	case "signal":
		n = SigevSignal
	case "none":
		n = SigevNone
	case "thread":
		n = SigevThread
	default:
		return -1
	}
	if t.ToThread {
		n |= SigevThreadID
	}
	return n
}

// ParseTimers parses /proc/PID/timers. Every timer must have the four lines
// ID, signal, notify and ClockID, in this order; unknown lines are ignored.
// Empty input gives no timers.
func ParseTimers(r io.Reader) ([]Timer, error) {
	lr := newLineReader(r, "timers")
	var (
		out   []Timer
		next  int // index of the line expected next: 0 ID, 1 signal, 2 notify, 3 ClockID
		idLn  int
		order = []string{"ID", "signal", "notify", "ClockID"}
	)
	for lr.next() {
		line := lr.text()
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, lr.errorf("no ':' in %q", line)
		}
		val = strings.TrimSpace(val)
		i := indexOf(order, key)
		if i < 0 {
			continue
		}
		if i != next%4 {
			return nil, lr.errorf("%s line where %s was expected", key, order[next%4])
		}
		next++
		var err error
		switch key {
		case "ID":
			idLn = lr.n
			var t Timer
			t.ID, err = atoi("timer id", val)
			out = append(out, t)
		case "signal":
			err = parseTimerSignal(val, &out[len(out)-1])
		case "notify":
			err = parseTimerNotify(val, &out[len(out)-1])
		case "ClockID":
			out[len(out)-1].ClockID, err = atoi("clock id", val)
		}
		if err != nil {
			return nil, lr.errorf("%w", err)
		}
	}
	if err := lr.err(); err != nil {
		return nil, err
	}
	if next%4 != 0 {
		return nil, &ParseError{File: "timers", Line: idLn,
			Err: fmt.Errorf("timer %d has no %s line", out[len(out)-1].ID, order[next%4])}
	}
	return out, nil
}

// ReadTimers reads /proc/PID/timers.
func ReadTimers(pid int) ([]Timer, error) {
	return readProc(pidPath(pid, "timers"), ParseTimers)
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// parseTimerSignal parses "10/0000000000001234".
func parseTimerSignal(val string, t *Timer) error {
	sig, value, ok := strings.Cut(val, "/")
	if !ok {
		return fmt.Errorf("bad signal %q: want signo/value", val)
	}
	var err error
	if t.Signal, err = atoi("signal number", sig); err != nil {
		return err
	}
	t.SigevValue, err = parseUint("sigev_value", value, 16, 64)
	return err
}

// parseTimerNotify parses "signal/tid.5341".
func parseTimerNotify(val string, t *Timer) error {
	how, target, ok := strings.Cut(val, "/")
	if !ok || how == "" {
		return fmt.Errorf("bad notify %q: want how/pid.N or how/tid.N", val)
	}
	kind, id, ok := strings.Cut(target, ".")
	if !ok || (kind != "pid" && kind != "tid") {
		return fmt.Errorf("bad notify target %q: want pid.N or tid.N", target)
	}
	var err error
	if t.NotifyTID, err = atoi("notify target", id); err != nil {
		return err
	}
	t.Notify, t.ToThread = how, kind == "tid"
	return nil
}
