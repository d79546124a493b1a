package kerneltest

import (
	"testing"

	"github.com/godwit-dev/godwit/internal/kernel"
)

func TestRequirePresent(t *testing.T) {
	Require(t, kernel.PidfdOpen)
}

type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = format
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
}

func TestRequireUnknownFails(t *testing.T) {
	r := &recorder{TB: t}
	Require(r, "no such feature")
	if r.failed == "" {
		t.Fatal("Require of an unknown name did not fail the test")
	}
}
