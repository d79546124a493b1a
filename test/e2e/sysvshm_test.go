package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/testutil"
)

const sysvshmC = "../victims/sysvshm.c"

// sysvReport is what each process of sysvshm.c reports.
type sysvReport struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	N     int64  `json:"n"`
	IDA   int    `json:"ida"`
	IDB   int    `json:"idb"`
	A     uint64 `json:"a"`
	B     uint64 `json:"b"`
	Bad   int64  `json:"bad"`
	BText string `json:"btext"`
	Slot  string `json:"slot"`
}

// pokeSysV signals pid until it reports newer than after, and returns it.
func pokeSysV(t *testing.T, dir string, pid int, name string, after int64) sysvReport {
	t.Helper()
	var r sysvReport
	testutil.WaitFor(t, reportTimeout, func() bool {
		unix.Kill(pid, unix.SIGUSR1)
		b, err := os.ReadFile(filepath.Join(dir, name+".json"))
		return err == nil && json.Unmarshal(b, &r) == nil && r.N > after
	}, "a report of "+name)
	return r
}

// segmentOf returns segment id of /proc/sysvipc/shm.
func segmentOf(t *testing.T, id int) (procfs.SysVShm, bool) {
	t.Helper()
	segs, err := procfs.ReadSysVShm()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if s.ID == id {
			return s, true
		}
	}
	return procfs.SysVShm{}, false
}

// TestDumpRestoreSysVShm checkpoints a parent and a child that share two
// SysV segments: A, with a key, filled with a pattern, which the child's
// mprotect split in two mappings; B, removed (IPC_RMID) while attached.
// Restore refuses while A's id is still taken, and as an unprivileged user
// (it cannot set the id); then, once A is gone, it brings back both
// segments with their ids, key, mode, size and contents, attached at the same
// addresses, B still marked for destruction; a write by either process is
// seen by the other.
func TestDumpRestoreSysVShm(t *testing.T) {
	setup(t)
	bin := testutil.BuildC(t, sysvshmC)
	dir := t.TempDir()
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	cmd := exec.Command(bin, dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	parent := cmd.Process.Pid
	var child int
	var ids []int
	t.Cleanup(func() {
		for _, pid := range []int{parent, child} {
			if pid != 0 {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		cmd.Wait()
		for _, pid := range []int{parent, child} {
			if pid != 0 {
				testutil.KillAndReap(pid, 5*time.Second)
			}
		}
		for _, id := range ids {
			unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		}
	})
	testutil.WaitFor(t, reportTimeout, func() bool {
		_, err := os.Stat(filepath.Join(dir, "ready"))
		return err == nil
	}, "the child to start")
	if d := descendants(parent); len(d) == 2 {
		child = d[1]
	} else {
		t.Fatalf("the tree is %v, want the parent and its child", d)
	}
	bp := pokeSysV(t, dir, parent, "parent", 0)
	bc := pokeSysV(t, dir, child, "child", 0)
	ids = []int{bp.IDA, bp.IDB}
	if bp.Bad != 0 || bc.Bad != 0 || bc.IDA != bp.IDA || bc.A != bp.A || !strings.HasPrefix(bc.BText, "segment B") {
		t.Fatalf("the victim is not as built: parent %+v, child %+v", bp, bc)
	}
	segA, _ := segmentOf(t, bp.IDA)
	segB, _ := segmentOf(t, bp.IDB)
	if segA.Nattch != 3 || segB.Perms&procfs.ShmDest == 0 {
		t.Fatalf("segments before the dump: A %+v (want 3 attachments), B %+v (want removed)", segA, segB)
	}

	img := filepath.Join(t.TempDir(), "image")
	if r := godwit(t, "dump", "--image", img, strconv.Itoa(parent)); r.ExitCode != 0 {
		t.Fatalf("dump failed:\n%s", r)
	}
	cmd.Wait()
	testutil.WaitFor(t, 10*time.Second, func() bool {
		unix.Wait4(child, nil, unix.WNOHANG, nil)
		return !testutil.Alive(child)
	}, "the dumped child to be gone")
	if _, ok := segmentOf(t, bp.IDB); ok {
		t.Errorf("segment B (removed) outlived its last attachment")
	}

	// A outlives the processes (it was never removed): its id is taken.
	e := wantCode(t, godwit(t, "restore", "--log-format", "json", "--image", img), "pid-in-use")
	if !strings.Contains(e.Error, fmt.Sprintf("SysV segment id %d in use", bp.IDA)) {
		t.Errorf("the refusal does not name segment %d: %q", bp.IDA, e.Error)
	}
	if _, err := unix.SysvShmCtl(bp.IDA, unix.IPC_RMID, nil); err != nil {
		t.Fatal(err)
	}

	// An unprivileged user cannot choose the id of a segment.
	pub, err := os.MkdirTemp("", "godwit-sysv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	os.Chmod(pub, 0o755)
	pubImg := filepath.Join(pub, "image")
	if b, err := os.ReadFile(img); err != nil || os.WriteFile(pubImg, b, 0o644) != nil {
		t.Fatalf("copy the image: %v", err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	r := testutil.RunGodwitWith(t, testutil.RunOptions{Credential: nobody, Timeout: godwitTimeout},
		"restore", "--userns", "--log-format", "json", "--image", pubImg)
	e = wantCode(t, r, "permission-denied")
	if !strings.Contains(e.Error, "shm_next_id") {
		t.Errorf("the rootless refusal does not name shm_next_id: %q", e.Error)
	}
	if _, ok := segmentOf(t, bp.IDA); ok {
		t.Errorf("the refused restore left segment %d behind", bp.IDA)
	}

	r = godwit(t, "restore", "--image", img)
	if r.ExitCode != 0 {
		t.Fatalf("restore failed:\n%s", r)
	}
	ap := pokeSysV(t, dir, parent, "parent", bp.N)
	ac := pokeSysV(t, dir, child, "child", bc.N)
	for _, a := range []sysvReport{ap, ac} {
		if a.IDA != bp.IDA || a.IDB != bp.IDB || a.A != bp.A || a.B != bp.B || a.Bad != 0 || a.BText != bp.BText {
			t.Errorf("%s after the restore: %+v; before %+v", a.Name, a, bp)
		}
	}
	gotA, okA := segmentOf(t, bp.IDA)
	gotB, okB := segmentOf(t, bp.IDB)
	if !okA || gotA.Key != segA.Key || gotA.Perms != segA.Perms || gotA.Size != segA.Size || gotA.Nattch != 3 ||
		gotA.UID != segA.UID || gotA.GID != segA.GID {
		t.Errorf("segment A after the restore: %+v (present %v); before %+v", gotA, okA, segA)
	}
	if !okB || gotB.Key != 0 || gotB.Perms != segB.Perms || gotB.Nattch != 2 {
		t.Errorf("segment B after the restore: %+v (present %v); before %+v", gotB, okB, segB)
	}
	maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", child))
	if !strings.Contains(string(maps), "r--s 00003000") {
		t.Errorf("the child's read-only last page of A is not restored:\n%s", maps)
	}

	// One memory: a write by one process is read by the other.
	unix.Kill(child, unix.SIGUSR2)
	testutil.WaitFor(t, reportTimeout, func() bool {
		return strings.HasPrefix(pokeSysV(t, dir, parent, "parent", 0).Slot, "child:")
	}, "the parent to read what the child wrote")
	unix.Kill(parent, unix.SIGUSR2)
	testutil.WaitFor(t, reportTimeout, func() bool {
		return strings.HasPrefix(pokeSysV(t, dir, child, "child", 0).Slot, "parent:")
	}, "the child to read what the parent wrote")
}
