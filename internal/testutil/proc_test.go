package testutil

import (
	"os"
	"slices"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, c := range []struct {
		line  string
		state byte
		ppid  int
	}{
		{"42 (victim) S 7 42 42 0 -1", 'S', 7},
		{"42 (a) b) (c) t 1 42 42 0 -1", 't', 1},
		{"42 (with space) Z 99 0", 'Z', 99},
	} {
		st, ppid, err := parseStat(c.line)
		if err != nil || st != c.state || ppid != c.ppid {
			t.Errorf("parseStat(%q) = %c, %d, %v; want %c, %d", c.line, st, ppid, err, c.state, c.ppid)
		}
	}
	for _, bad := range []string{"", "42 victim S 7", "42 (x)", "42 (x) SS 7"} {
		if _, _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestReadStatSelf(t *testing.T) {
	s, err := ReadStat(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.PPID != os.Getppid() || s.Stopped() {
		t.Errorf("own stat %+v, ppid %d", s, os.Getppid())
	}
	tids, err := Tasks(os.Getpid())
	if err != nil || !slices.Contains(tids, os.Getpid()) {
		t.Errorf("Tasks(self) = %v, %v", tids, err)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Second, func() bool { n++; return n == 3 }) {
		t.Error("Poll gave up on a condition that became true")
	}
	if Poll(10*time.Millisecond, func() bool { return false }) {
		t.Error("Poll reported a condition that never held")
	}
}
