package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// Sources of the victim programs, relative to this package.
const (
	victimC   = "../victims/victim.c"
	secretC   = "../victims/secret.c"
	counterPy = "../victims/counter.py"
)

const (
	readyTimeout  = 3 * time.Minute // a 1 GiB victim fills its memory first; CI may be loaded
	reportTimeout = 30 * time.Second
)

// startC builds and starts victim.c with flags, and waits until it is ready.
// "--file" flags get a path in the victim's directory appended.
func startC(t testing.TB, opts testutil.VictimOptions, flags ...string) *testutil.Victim {
	t.Helper()
	bin := testutil.BuildC(t, victimC)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	argv := []string{bin}
	for _, f := range flags {
		argv = append(argv, f)
		if f == "--file" {
			argv = append(argv, filepath.Join(opts.Dir, "data"))
		}
	}
	v := testutil.StartVictim(t, opts, argv...)
	v.WaitReady(readyTimeout)
	return v
}

// python3 returns the interpreter to run counter.py with, preferring the
// system's.
func python3(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return testutil.RequireCommand(t, "python3")
}

// startPython starts counter.py and waits until it is ready.
func startPython(t testing.TB) *testutil.Victim {
	t.Helper()
	src, err := filepath.Abs(counterPy)
	if err != nil {
		t.Fatal(err)
	}
	v := testutil.StartVictim(t, testutil.VictimOptions{}, python3(t), "-u", src, "--mem", "32")
	v.WaitReady(readyTimeout)
	return v
}

// poke asks v for a new report.
func poke(t testing.TB, v *testutil.Victim) report {
	t.Helper()
	return parseReport(t, v.Poke(reportTimeout))
}

// pokeUntil asks v for reports until ok holds for one, which it returns; it
// fails the test with what after timeout.
func pokeUntil(t testing.TB, v *testutil.Victim, timeout time.Duration, ok func(report) bool, what string) report {
	t.Helper()
	var last report
	found := testutil.Poll(timeout, func() bool {
		last = poke(t, v)
		return ok(last)
	})
	if !found {
		t.Fatalf("timed out after %v waiting for %s; last report: %+v", timeout, what, last)
	}
	return last
}
