// Package kerneltest lets tests skip, with the reason, when the kernel (or
// the user running them) lacks a feature godwit uses.
package kerneltest

import (
	"testing"

	"github.com/godwit-dev/godwit/internal/kernel"
)

// Require skips the test unless the probe of the given name (one of the
// kernel package's names, e.g. kernel.PagemapScan) is ok. An unknown name
// fails the test.
func Require(t testing.TB, name string) {
	t.Helper()
	r, ok := kernel.Run(name)
	if !ok {
		t.Fatalf("kerneltest.Require: no kernel probe named %q", name)
	}
	if !r.OK() {
		t.Skipf("kernel feature %s is %s: %v", name, r.Status, r.Err)
	}
}
