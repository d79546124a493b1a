package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// TestDumpUnprivileged creates a throwaway user and, as that user, runs a
// victim and dumps it with --leave-running: the dump succeeds without root,
// the victim carries on untraced, and the image decodes.
func TestDumpUnprivileged(t *testing.T) {
	setup(t)
	useradd := testutil.RequireCommand(t, "useradd")
	userdel := testutil.RequireCommand(t, "userdel")
	name := fmt.Sprintf("godwit-e2e-%d", os.Getpid())
	if b, err := exec.Command(useradd, "--system", "--no-create-home", "--user-group",
		"--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a throwaway user with useradd: %v: %s", err, b)
	}
	t.Cleanup(func() {
		if b, err := exec.Command(userdel, name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, b)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}

	// A directory the user can write, outside t.TempDir (which is 0700 root).
	dir, err := os.MkdirTemp("", "godwit-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}

	v := startC(t, testutil.VictimOptions{Dir: dir, Credential: cred}, "--threads", "2", "--file")
	before := poke(t, v)
	img := filepath.Join(dir, "image")
	r := testutil.RunGodwitWith(t, testutil.RunOptions{Credential: cred, Timeout: godwitTimeout},
		"dump", "--leave-running", "--image", img, strconv.Itoa(v.PID()))
	if r.ExitCode != 0 {
		t.Fatalf("unprivileged dump --leave-running failed:\n%s", r)
	}
	testutil.WaitFor(t, 2*time.Second, func() bool { return !anyStopped(v.PID()) },
		"every thread to run again after dump --leave-running")
	after := poke(t, v)
	checkCommon(t, v, before, after)
	checkFiles(t, before, after)

	show := godwit(t, "show", "--image", img)
	if show.ExitCode != 0 {
		t.Errorf("show of the unprivileged image failed:\n%s", show)
	}
}
