package e2e

import (
	"encoding/json"
	"net"
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

const treeC = "../victims/tree.c"

// treeReport is what each process of tree.c reports.
type treeReport struct {
	Name         string `json:"name"`
	PID          int    `json:"pid"`
	PPID         int    `json:"ppid"`
	PGID         int    `json:"pgid"`
	SID          int    `json:"sid"`
	N            int64  `json:"n"`
	Off          int64  `json:"off"`
	Zexit        int    `json:"zexit"`
	ZexitStatus  int    `json:"zexit_status"`
	Zsig         int    `json:"zsig"`
	ZsigStatus   int    `json:"zsig_status"`
	Middle       int    `json:"middle"`
	MiddleStatus int    `json:"middle_status"`
}

var treeNames = []string{"root", "child1", "grandchild", "child2", "orphan"}

// treeVictim is a running tree.c.
type treeVictim struct {
	dir  string
	root int
	pids map[string]int
}

// pokeTree signals every live process of the tree and waits until each has
// written a report newer than after (by its counter n).
func (tv *treeVictim) poke(t *testing.T, after map[string]treeReport) map[string]treeReport {
	t.Helper()
	out := map[string]treeReport{}
	testutil.WaitFor(t, reportTimeout, func() bool {
		for _, pid := range descendants(tv.root) {
			unix.Kill(pid, unix.SIGUSR1)
		}
		for _, name := range treeNames {
			if _, ok := out[name]; ok {
				continue
			}
			b, err := os.ReadFile(filepath.Join(tv.dir, name+".json"))
			if err != nil {
				continue
			}
			var r treeReport
			if json.Unmarshal(b, &r) != nil || r.N <= after[name].N {
				continue
			}
			out[name] = r
			if pid := outerOf(tv.root, r.PID); pid != 0 {
				tv.pids[name] = pid
			}
		}
		return len(out) == len(treeNames)
	}, "a report from every process of the tree")
	return out
}

func (tv *treeVictim) killAll() {
	pids := append(descendants(tv.root), tv.root)
	for _, pid := range tv.pids {
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	// Wait until they are gone (SIGKILL is asynchronous), reaping whatever
	// of the tree was reparented to this subreaper.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for {
			pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
		}
		alive := false
		for _, pid := range pids {
			if testutil.Alive(pid) {
				alive = true
			}
		}
		if !alive {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDumpRestoreTree checkpoints a process tree (children, a grandchild, a
// second session, zombies with exit and signal statuses, an orphan under a
// subreaper, a file description shared by all) and restores it: every
// process comes back with its PID, parent, process group and session, the
// zombies keep their statuses, and the file offset is still shared.
func TestDumpRestoreTree(t *testing.T) {
	testTree(t, nil)
}

// TestDumpRestorePIDNamespace does the same with a tree whose root is pid 1
// of its own PID namespace: it comes back in a new namespace with the same
// pids inside and outside.
func TestDumpRestorePIDNamespace(t *testing.T) {
	testTree(t, []string{testutil.RequireCommand(t, "unshare"), "--pid", "--fork"})
}

func testTree(t *testing.T, wrap []string) {
	setup(t)
	bin := testutil.BuildC(t, treeC)
	tv := &treeVictim{dir: t.TempDir(), pids: map[string]int{}}
	// No descriptor of this test may leak into the tree (a pipe would make
	// the dump refuse it).
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	argv := append(append([]string(nil), wrap...), bin, tv.dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tv.root = cmd.Process.Pid
	t.Cleanup(tv.killAll)
	if wrap != nil {
		// The tree's root is the wrapper's only child.
		testutil.WaitFor(t, reportTimeout, func() bool {
			d := descendants(cmd.Process.Pid)
			if len(d) > 1 {
				tv.root = d[1]
			}
			return len(d) > 1
		}, "the wrapper to start the tree")
	}
	testutil.WaitFor(t, reportTimeout, func() bool {
		_, err := os.Stat(filepath.Join(tv.dir, "ready"))
		return err == nil
	}, "the tree to be built")

	before := tv.poke(t, nil)
	root := before["root"]
	if wrap != nil && root.PID != 1 {
		t.Fatalf("the root is pid %d in its namespace, want 1", root.PID)
	}
	if root.ZexitStatus != 7 || root.ZsigStatus != 1000+int(unix.SIGTERM) {
		t.Fatalf("the victim's zombies are not as built: %+v", root)
	}

	img := filepath.Join(t.TempDir(), "image")
	if r := godwit(t, "dump", "--image", img, strconv.Itoa(tv.root)); r.ExitCode != 0 {
		t.Fatalf("dump failed:\n%s", r)
	}
	cmd.Wait()
	outerRoot := tv.root
	// The rest of the tree was killed and reparented here: reap it, so that
	// every PID is free again.
	all := []int{outerRoot}
	for _, name := range treeNames[1:] {
		all = append(all, tv.pids[name])
	}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		for {
			pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
		}
		for _, pid := range all {
			if testutil.Alive(pid) {
				return false
			}
		}
		return true
	}, "every process of the dumped tree to be gone")

	r := godwit(t, "restore", "--image", img)
	if r.ExitCode != 0 {
		t.Fatalf("restore failed:\n%s", r)
	}
	if got := strings.TrimSpace(r.Stdout); got != strconv.Itoa(outerRoot) {
		t.Fatalf("restore printed %q, want the root's pid %d", got, tv.root)
	}

	after := tv.poke(t, before)
	for _, name := range treeNames {
		b, a := before[name], after[name]
		if a.PID != b.PID || a.PGID != b.PGID || a.SID != b.SID {
			t.Errorf("%s: pid/pgid/sid %d/%d/%d, want %d/%d/%d", name, a.PID, a.PGID, a.SID, b.PID, b.PGID, b.SID)
		}
		if name != "root" && a.PPID != b.PPID {
			t.Errorf("%s: parent %d, want %d", name, a.PPID, b.PPID)
		}
		if a.Off != b.Off {
			t.Errorf("%s: shared file offset %d, want %d", name, a.Off, b.Off)
		}
	}
	ar := after["root"]
	if ar.ZexitStatus != 7 || ar.ZsigStatus != 1000+int(unix.SIGTERM) || ar.MiddleStatus != 0 {
		t.Errorf("zombies after restore: exit %d, signal %d, middle %d; want 7, %d, 0",
			ar.ZexitStatus, ar.ZsigStatus, ar.MiddleStatus, 1000+int(unix.SIGTERM))
	}

	// One process moves the offset; all see it: one open file description.
	unix.Kill(tv.pids["child1"], unix.SIGUSR2)
	var later map[string]treeReport
	testutil.WaitFor(t, reportTimeout, func() bool {
		later = tv.poke(t, after)
		return later["child1"].Off == after["child1"].Off+1
	}, "child1 to move the shared offset")
	// A report asked for before child1 moved the offset may be written after
	// it and still be newer than later: poll until every process shows the
	// move (one that does not share the description never does), then judge.
	testutil.Poll(reportTimeout, func() bool {
		later = tv.poke(t, later)
		for _, name := range treeNames {
			if later[name].Off != after[name].Off+1 {
				return false
			}
		}
		return true
	})
	for _, name := range treeNames {
		if later[name].Off != after[name].Off+1 {
			t.Errorf("%s: offset %d after child1 moved it, want %d (the description is no longer shared)",
				name, later[name].Off, after[name].Off+1)
		}
	}
	for _, name := range treeNames {
		if later[name].N <= after[name].N {
			t.Errorf("%s does not run after restore", name)
		}
	}
}

// descendants lists pid and every process below it.
func descendants(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(out[i]) + "/task/*/children")
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, w := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(w); err == nil {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// outerOf finds, below root, the process whose pid in its own namespace is
// inner, and returns its pid as this test sees it (0 when there is none).
func outerOf(root, inner int) int {
	for _, pid := range descendants(root) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" && f[len(f)-1] == strconv.Itoa(inner) {
				return pid
			}
		}
	}
	return 0
}

// TestDumpTreeRefusedLeavesItRunning dumps a tree (a shell and its child)
// whose child holds a unix socket connected to this test, outside the tree:
// the dump is refused with "unsupported", naming the child and its fd, and
// every process of the tree keeps running untraced — the connection still
// answers.
func TestDumpTreeRefusedLeavesItRunning(t *testing.T) {
	setup(t)
	sh := testutil.RequireCommand(t, "sh")
	py := python3(t)
	sock := filepath.Join(t.TempDir(), "outside.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	echo := `import socket,sys
s=socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
while True:
    d=s.recv(1)
    if not d: break
    s.sendall(d)`
	cmd := exec.Command(sh, "-c", `"$0" -c "$1" "$2" & wait`, py, echo, sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tv := &treeVictim{root: cmd.Process.Pid, pids: map[string]int{}}
	t.Cleanup(tv.killAll)
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	roundTrip := func(b byte) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(reportTimeout))
		if _, err := conn.Write([]byte{b}); err != nil {
			t.Fatalf("write to the child: %v", err)
		}
		got := make([]byte, 1)
		if _, err := conn.Read(got); err != nil || got[0] != b {
			t.Fatalf("the child did not echo %q: %v", b, err)
		}
	}
	roundTrip('a')
	pids := descendants(tv.root)
	if len(pids) < 2 {
		t.Fatalf("tree %v: want the shell and its child", pids)
	}

	img := filepath.Join(t.TempDir(), "image")
	e := wantCode(t, godwit(t, "dump", "--log-format", "json", "--image", img, strconv.Itoa(tv.root)), "unsupported")
	if !strings.Contains(e.Error, "outside the tree") || !strings.Contains(e.Error, "pid "+strconv.Itoa(pids[1])) {
		t.Errorf("the error does not name the child and its outside connection: %q", e.Error)
	}
	if _, err := os.Stat(img); err == nil {
		t.Errorf("a refused dump left an image behind")
	}
	for _, pid := range pids {
		if !testutil.Alive(pid) || anyStopped(pid) {
			t.Errorf("pid %d is not running untraced after the refused dump", pid)
		}
	}
	roundTrip('b')
}
