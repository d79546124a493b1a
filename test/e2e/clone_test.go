package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
)

const clonetreeC = "../victims/clonetree.c"

// TestDumpRefusesSharedKernelState dumps a parent and a child made by clone
// without CLONE_THREAD that share a descriptor table, fs information, or an
// address space and signal handlers: the dump is refused with code
// unsupported, naming both pids and what they share, before anything
// stopped: both run on untraced. The same tree made with a plain clone is
// dumped.
func TestDumpRefusesSharedKernelState(t *testing.T) {
	setup(t)
	bin := testutil.BuildC(t, clonetreeC)
	for _, tt := range []struct{ mode, shares string }{
		{"files", "descriptor table (clone with CLONE_FILES"},
		{"fs", "root, working directory and umask (clone with CLONE_FS"},
		{"sighand", "address space and signal handlers (clone with CLONE_VM|CLONE_SIGHAND"},
		{"none", ""},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			dir := t.TempDir()
			unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
			cmd := exec.Command(bin, dir, tt.mode)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			parent := cmd.Process.Pid
			var child int
			t.Cleanup(func() {
				unix.Kill(parent, unix.SIGKILL)
				if child != 0 {
					unix.Kill(child, unix.SIGKILL)
				}
				cmd.Wait()
				if child != 0 {
					testutil.KillAndReap(child, 5*time.Second)
				}
			})
			testutil.WaitFor(t, reportTimeout, func() bool {
				b, err := os.ReadFile(filepath.Join(dir, "ready"))
				if err != nil {
					return false
				}
				child, err = strconv.Atoi(strings.TrimSpace(string(b)))
				return err == nil
			}, "the child to start")

			img := filepath.Join(t.TempDir(), "image")
			r := godwit(t, "dump", "--log-format", "json", "--image", img, strconv.Itoa(parent))
			if tt.shares == "" {
				if r.ExitCode != 0 {
					t.Fatalf("dump of a tree that shares nothing failed:\n%s", r)
				}
				return
			}
			e := wantCode(t, r, "unsupported")
			pids := []int{min(parent, child), max(parent, child)}
			want := "pid " + strconv.Itoa(pids[0]) + " and pid " + strconv.Itoa(pids[1]) + " share their " + tt.shares
			if !strings.Contains(e.Error, want) {
				t.Errorf("the refusal %q does not say %q", e.Error, want)
			}
			if _, err := os.Stat(img); err == nil {
				t.Errorf("a refused dump left an image behind")
			}
			for _, pid := range []int{parent, child} {
				if !testutil.Alive(pid) || anyStopped(pid) {
					t.Errorf("pid %d is not running untraced after the refused dump", pid)
				}
			}
		})
	}
}
