package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond, with a back-off from 1 ms up to 50 ms, until it
// returns true, and fails the test with what when timeout passes first. It
// is a wait for a condition, never a fixed sleep: it returns as soon as cond
// holds.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Poll is WaitFor without the test: it reports whether cond became true
// before timeout.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
}
