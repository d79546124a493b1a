package e2e

import (
	"testing"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// TestDumpRestore checkpoints each scenario's victim with godwit dump (which
// kills it), restores it with godwit restore, and checks from the victim's
// own reports that it is the same process carrying on: same PID and TIDs,
// counters continued and still increasing, and the scenario's state intact
// (vector registers, memory, fds and offsets, sleeping threads, timers,
// signal state).
func TestDumpRestore(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			setup(t)
			v := s.start(t)
			before := poke(t, v)
			if s.skip != nil {
				s.skip(t, before)
			}
			img := dumpKill(t, v)
			restore(t, v, img)
			after := poke(t, v)
			s.check(t, v, before, after)
			s.checkProgress(t, v, after)
		})
	}
}

// TestDumpTwice dumps a restored process again and restores it again: the
// second generation must carry on from the first.
func TestDumpTwice(t *testing.T) {
	setup(t)
	v := startC(t, testutil.VictimOptions{}, "--threads", "2", "--mem", "8", "--file")
	prev := poke(t, v)
	for round := 1; round <= 2; round++ {
		img := dumpKill(t, v)
		restore(t, v, img)
		next := poke(t, v)
		checkMemFile(t, v, prev, next)
		if t.Failed() {
			t.Fatalf("round %d failed", round)
		}
		prev = scenarios[0].checkProgress(t, v, next)
	}
}
