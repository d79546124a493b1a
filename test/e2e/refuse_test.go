package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// TestDumpUnsupportedFD dumps a victim whose stdout is a unix socket
// connected to this test, outside the tree (restore could not connect it
// again): code unsupported naming fd 1, and the victim keeps running,
// neither stopped nor traced, as if nothing happened.
func TestDumpUnsupportedFD(t *testing.T) {
	setup(t)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(pair[0]), "outside"), os.NewFile(uintptr(pair[1]), "stdout")
	defer r.Close()
	v := startC(t, testutil.VictimOptions{Stdout: w}, "--threads", "2")
	w.Close()
	before := poke(t, v)
	img := filepath.Join(t.TempDir(), "image")
	e := wantCode(t, godwit(t, "dump", "--log-format", "json", "--image", img, strconv.Itoa(v.PID())), "unsupported")
	if fd, ok := e.Detail["fd"].(float64); !(ok && fd == 1) && !strings.Contains(e.Error, "fd 1") {
		t.Errorf("error does not name fd 1: %q, detail %v", e.Error, e.Detail)
	}
	checkRunning(t, v.PID())
	after := poke(t, v)
	checkCommon(t, v, before, after)
	scenarios[0].checkProgress(t, v, after)
}

// TestDumpMemfdSecret dumps a victim with a memfd_secret mapping, which no
// other process can read: code unreadable-memory naming the mapping, and the
// victim keeps running untraced.
func TestDumpMemfdSecret(t *testing.T) {
	setup(t)
	v, addr := startSecret(t)
	img := filepath.Join(t.TempDir(), "image")
	e := wantCode(t, godwit(t, "dump", "--log-format", "json", "--image", img, strconv.Itoa(v.PID())), "unreadable-memory")
	hex := strings.TrimPrefix(strings.ToLower(addr), "0x")
	detailAddr, _ := e.Detail["addr"].(float64)
	if !strings.Contains(strings.ToLower(e.Error), hex) && !strings.Contains(e.Error, "secretmem") &&
		fmt.Sprintf("%x", uint64(detailAddr)) != hex {
		t.Errorf("error does not name the mapping at %s: %q, detail %v", addr, e.Error, e.Detail)
	}
	checkRunning(t, v.PID())
	if !v.Alive() {
		t.Errorf("the victim died: %s", v.Stderr())
	}
}

// TestDumpKilledMidway SIGKILLs godwit while it dumps a 1 GiB victim (godwit
// is blocked writing the image to a pipe nobody reads any more): the victim
// must carry on, untraced and with its memory intact.
func TestDumpKilledMidway(t *testing.T) {
	setup(t)
	v := startC(t, testutil.VictimOptions{}, "--mem", "1024")
	before := poke(t, v)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := testutil.GodwitCommand(t, context.Background(), testutil.RunOptions{}, "dump", "--image", "-", strconv.Itoa(v.PID()))
	cmd.Stdout, cmd.Stderr = w, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})

	// Read the first 256 KiB of the image, then stop reading: godwit blocks
	// on a full pipe with at most a fraction of 1 GiB written.
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(r, make([]byte, 256<<10))
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			b, _ := os.ReadFile(stderr.Name())
			t.Fatalf("godwit wrote less than 256 KiB of image (%v); stderr: %s", err, b)
		}
	case <-time.After(godwitTimeout):
		t.Fatal("godwit wrote nothing for 2 minutes")
	}
	if st, err := testutil.ReadStat(v.PID(), 0); err == nil && st.TracerPID != cmd.Process.Pid {
		t.Logf("note: the victim's tracer is %d while godwit (%d) writes the image", st.TracerPID, cmd.Process.Pid)
	}
	cmd.Process.Kill()
	<-done

	if !v.Alive() {
		t.Fatalf("the victim died (%s) when godwit was killed during its dump; stderr: %s", v.ExitState(), v.Stderr())
	}
	testutil.WaitFor(t, 5*time.Second, func() bool { return !anyStopped(v.PID()) },
		"every thread of the victim to run untraced after godwit was killed")
	after := poke(t, v)
	checkCommon(t, v, before, after)
	checkMem(t, before, after)
}
