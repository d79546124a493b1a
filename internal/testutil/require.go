package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root (euid %d): run the tests as root, e.g. via scripts/test.sh", os.Geteuid())
	}
}

// RequireCommand skips the test unless name is found in PATH, and returns
// its path.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("needs %s, which is not installed (scripts/test.sh installs it): %v", name, err)
	}
	return p
}
