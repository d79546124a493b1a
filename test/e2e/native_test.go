package e2e

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// TestVictimsNative is the control for the end-to-end tests: every scenario's
// victim, run without godwit, must pass the same checks between two
// consecutive reports that a restored victim must pass between its last
// report before the dump and its first after the restore. It needs no root.
func TestVictimsNative(t *testing.T) {
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			testutil.TrackStrays(t)
			v := s.start(t)
			before := poke(t, v)
			if s.skip != nil {
				s.skip(t, before)
			}
			after := poke(t, v)
			s.check(t, v, before, after)
			s.checkProgress(t, v, after)
		})
	}
}

// TestVictimSIMDSelftest proves that the SIMD check can fail: a worker that
// clobbers one of its registers on purpose must be reported.
func TestVictimSIMDSelftest(t *testing.T) {
	for _, flag := range []string{"--simd-selftest", "--simd-avx"} {
		t.Run(flag, func(t *testing.T) {
			v := startC(t, testutil.VictimOptions{}, "--threads", "2", flag)
			first := poke(t, v)
			skipNoSIMD(t, first)
			if flag == "--simd-avx" {
				// The AVX register set, checked on its own, must hold.
				later := pokeUntil(t, v, progressTimeout, func(r report) bool { return countersMoved(first, r) }, "progress")
				isTrue(t, "simd_ok with the AVX register set", later.SIMDOK)
				return
			}
			pokeUntil(t, v, progressTimeout, func(r report) bool { return r.SIMDOK != nil && !*r.SIMDOK },
				"simd_ok to turn false after the deliberate clobber")
		})
	}
}

// TestVictimSecretNative checks the memfd_secret victim starts and reports
// its mapping (or explains why the kernel has none).
func TestVictimSecretNative(t *testing.T) {
	v, addr := startSecret(t)
	if addr == "" {
		t.Fatalf("secret victim %d reported no mapping address", v.PID())
	}
}

// startSecret starts test/victims/secret.c and returns it and the address of
// its memfd_secret mapping; it skips the test when the kernel lacks
// memfd_secret.
func startSecret(t *testing.T) (*testutil.Victim, string) {
	t.Helper()
	v := testutil.StartVictim(t, testutil.VictimOptions{}, testutil.BuildC(t, secretC))
	var b []byte
	testutil.WaitFor(t, readyTimeout, func() bool {
		var err error
		b, err = os.ReadFile(v.ReportPath)
		return err == nil || !v.Alive()
	}, "the secret victim's report")
	if b == nil {
		t.Skipf("memfd_secret is not available here: %s", v.Stderr())
	}
	var r struct {
		PID  int    `json:"pid"`
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.PID != v.PID() {
		t.Fatalf("secret victim report %q: %v (pid %d)", b, err, v.PID())
	}
	return v, r.Addr
}

// deadline for a whole dump or restore of a small victim.
const godwitTimeout = 2 * time.Minute
