package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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

// TestRestoreRootless dumps a victim as an unprivileged user and restores it
// as that user: godwit puts it into a new user and PID namespace it creates,
// where it has its old pid and tids; it carries on with its memory, files and
// counters, and holds no capabilities.
func TestRestoreRootless(t *testing.T) {
	setup(t)
	useradd := testutil.RequireCommand(t, "useradd")
	userdel := testutil.RequireCommand(t, "userdel")
	name := fmt.Sprintf("godwit-rl-%d", os.Getpid())
	if b, err := exec.Command(useradd, "--system", "--no-create-home", "--user-group",
		"--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a throwaway user with useradd: %v: %s", err, b)
	}
	t.Cleanup(func() { exec.Command(userdel, name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	dir, err := os.MkdirTemp("", "godwit-rootless-")
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
	as := testutil.RunOptions{Credential: cred, Timeout: godwitTimeout}
	if r := testutil.RunGodwitWith(t, as, "dump", "--image", img, strconv.Itoa(v.PID())); r.ExitCode != 0 {
		t.Fatalf("unprivileged dump failed:\n%s", r)
	}
	v.WaitExit(10 * time.Second)

	r := testutil.RunGodwitWith(t, as, "restore", "--image", img)
	if r.ExitCode != 0 {
		t.Fatalf("rootless restore failed:\n%s", r)
	}
	outer, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
	if err != nil {
		t.Fatalf("restore printed %q, want a pid", r.Stdout)
	}
	v.Adopt(outer)
	init := 0
	if st, err := testutil.ReadStat(outer, 0); err == nil {
		init = st.PPID // the namespace's init, godwit's stub
	}
	t.Cleanup(func() {
		// Once the process is gone the namespace's init exits too: reap it.
		testutil.KillAndReap(outer, 5*time.Second)
		if init != 0 {
			testutil.WaitFor(t, 10*time.Second, func() bool {
				var ws syscall.WaitStatus
				syscall.Wait4(init, &ws, syscall.WNOHANG, nil)
				return !testutil.Alive(init)
			}, "the namespace's init to exit after its last process")
		}
	})

	after := poke(t, v)
	if after.PID != before.PID {
		t.Errorf("inside its namespace the process is pid %d, want %d", after.PID, before.PID)
	}
	if fmt.Sprint(after.TIDs) != fmt.Sprint(before.TIDs) {
		t.Errorf("tids %v, want %v", after.TIDs, before.TIDs)
	}
	for i := range before.Counters {
		if i < len(after.Counters) && after.Counters[i] < before.Counters[i] {
			t.Errorf("counter %d went back from %d to %d", i, before.Counters[i], after.Counters[i])
		}
	}
	checkFiles(t, before, after)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(outer) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && (f[0] == "CapEff:" || f[0] == "CapPrm:" || f[0] == "CapAmb:") && strings.Trim(f[1], "0") != "":
			t.Errorf("the restored process holds capabilities: %s", line)
		case len(f) > 0 && f[0] == "Uid:" && f[1] != u.Uid:
			t.Errorf("the restored process runs as %s, want uid %s", line, u.Uid)
		case len(f) > 0 && f[0] == "NSpid:" && (len(f) != 3 || f[2] != strconv.Itoa(before.PID)):
			t.Errorf("%s: want the old pid %d in a new namespace", line, before.PID)
		}
	}
	later := poke(t, v)
	if later.Counters[0] <= after.Counters[0] {
		t.Errorf("the main counter does not move after a rootless restore")
	}
}
