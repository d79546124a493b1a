package e2e

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// This file is the harness of programs_test.go: a real program started as
// the root of a process tree that the test owns, its dump (which skips the
// test, naming what is missing, while the engine refuses part of it), its
// restore, and helpers to talk to it.

// program is a real program started by a test: the root of a process tree,
// leader of its own session and process group, with stdin on /dev/null and
// stdout and stderr appended to one file in dir. When the test ends,
// whatever runs of its tree (the original processes or those restored under
// the same PIDs) is stopped, killed and reaped.
type program struct {
	t    *testing.T
	name string
	dir  string
	log  string
	root int
	seen map[int]bool // every pid seen in the tree, for the cleanup
}

// startProgram starts argv (argv[0] is looked up in PATH) in dir.
func startProgram(t *testing.T, name, dir string, argv ...string) *program {
	t.Helper()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		t.Fatal(err)
	}
	// No descriptor of the test may leak into the program: a pipe would make
	// it undumpable for a reason that is not the program's.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	p := &program{t: t, name: name, dir: dir, log: filepath.Join(dir, name+".log"), seen: map[int]bool{}}
	out, err := os.OpenFile(p.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Dir:   dir,
		Env:   os.Environ(),
		Files: []uintptr{null.Fd(), out.Fd(), out.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	p.root = pid
	p.seen[pid] = true
	t.Cleanup(p.kill)
	return p
}

// output returns what the program wrote to stdout and stderr, for failure
// messages.
func (p *program) output() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// ours reports whether pid is a child of the test (alive or a zombie).
func ours(pid int) bool {
	st, err := testutil.ReadStat(pid, 0)
	return err == nil && st.PPID == os.Getpid()
}

// tree lists the root and every process below it, or nothing when the root
// is not a child of the test (after a dump, before a restore).
func (p *program) tree() []int {
	if !ours(p.root) {
		return nil
	}
	pids := descendants(p.root)
	for _, pid := range pids {
		p.seen[pid] = true
	}
	return pids
}

// alive fails the test, with the program's output, when its root is gone.
func (p *program) alive(t *testing.T) {
	t.Helper()
	if !testutil.Alive(p.root) {
		t.Fatalf("%s (pid %d) is gone; its output:\n%s", p.name, p.root, p.output())
	}
}

// kill stops the whole tree (so that no process of it starts another, as
// nginx's master would restart its workers), kills it and reaps it. Only
// processes of the tree and processes once seen in it that are now children
// of the test are touched.
func (p *program) kill() {
	stopped := map[int]bool{}
	for round := 0; round < 20; round++ {
		var pids []int
		pids = append(pids, p.tree()...)
		for pid := range p.seen {
			if ours(pid) {
				pids = append(pids, pid)
			}
		}
		fresh := false
		for _, pid := range pids {
			if !stopped[pid] {
				stopped[pid] = true
				fresh = true
				unix.Kill(pid, unix.SIGSTOP)
			}
		}
		if !fresh {
			break
		}
	}
	if ours(p.root) {
		unix.Kill(-p.root, unix.SIGKILL)
	}
	for pid := range stopped {
		unix.Kill(pid, unix.SIGKILL)
	}
	var left []int
	for pid := range stopped {
		if !reaped(pid, 10*time.Second) {
			left = append(left, pid)
		}
	}
	if len(left) > 0 {
		p.t.Errorf("%s: processes %v could not be reaped", p.name, left)
	}
}

// reaped waits up to timeout for pid to be gone: reaped here when it is (or
// becomes) a child of the test, or gone from /proc.
func reaped(pid int, timeout time.Duration) bool {
	return testutil.Poll(timeout, func() bool {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if got == pid {
			return true
		}
		_, serr := os.Stat("/proc/" + strconv.Itoa(pid))
		return err == unix.ECHILD && errors.Is(serr, os.ErrNotExist)
	})
}

// procState is what the test sees of one process of a tree from outside.
type procState struct {
	PPID, PGID, SID int
	Comm            string
	TIDs            []int
}

func readProcState(pid int) (procState, error) {
	var s procState
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	line := string(b)
	i, j := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if i < 0 || j < i {
		return s, fmt.Errorf("malformed stat of %d: %q", pid, line)
	}
	s.Comm = line[i+1 : j]
	f := strings.Fields(line[j+1:])
	if len(f) < 4 {
		return s, fmt.Errorf("malformed stat of %d: %q", pid, line)
	}
	if f[0] == "Z" || f[0] == "X" {
		return s, fmt.Errorf("pid %d is a zombie", pid)
	}
	s.PPID, _ = strconv.Atoi(f[1])
	s.PGID, _ = strconv.Atoi(f[2])
	s.SID, _ = strconv.Atoi(f[3])
	s.TIDs, err = testutil.Tasks(pid)
	return s, err
}

// snapshot records every live process of the tree.
func (p *program) snapshot(t *testing.T) map[int]procState {
	t.Helper()
	out := map[int]procState{}
	for _, pid := range p.tree() {
		if s, err := readProcState(pid); err == nil {
			out[pid] = s
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no process in the tree of %d", p.name, p.root)
	}
	return out
}

// checkSameTree compares the tree after a restore with the one before the
// dump: the same PIDs, each with the same parent, process group, session
// and name, and every thread id it had. With exactTIDs, no thread more
// either (a Go program, say, may start threads at any time).
func checkSameTree(t *testing.T, before, after map[int]procState, exactTIDs bool) {
	t.Helper()
	for pid, b := range before {
		a, ok := after[pid]
		if !ok {
			t.Errorf("pid %d (%s) is not in the restored tree", pid, b.Comm)
			continue
		}
		if a.PPID != b.PPID || a.PGID != b.PGID || a.SID != b.SID {
			t.Errorf("pid %d (%s): ppid/pgid/sid %d/%d/%d after the restore, %d/%d/%d before",
				pid, b.Comm, a.PPID, a.PGID, a.SID, b.PPID, b.PGID, b.SID)
		}
		if a.Comm != b.Comm {
			t.Errorf("pid %d: comm %q after the restore, %q before", pid, a.Comm, b.Comm)
		}
		for _, tid := range b.TIDs {
			if !slices.Contains(a.TIDs, tid) {
				t.Errorf("pid %d (%s): thread %d is missing after the restore (threads %v, before %v)",
					pid, b.Comm, tid, a.TIDs, b.TIDs)
				break
			}
		}
		if exactTIDs && !slices.Equal(a.TIDs, b.TIDs) {
			t.Errorf("pid %d (%s): threads %v after the restore, %v before", pid, b.Comm, a.TIDs, b.TIDs)
		}
	}
	for pid, a := range after {
		if _, ok := before[pid]; !ok {
			t.Errorf("pid %d (%s) is in the restored tree but was not in the dumped one", pid, a.Comm)
		}
	}
}

// fdKinds summarises what descriptors the tree holds ("socket", "pipe",
// "anon_inode:[eventpoll]", "file", ...), for the log.
func fdKinds(pids []int) map[string]int {
	kinds := map[string]int{}
	for _, pid := range pids {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, e := range ents {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
			if err != nil {
				continue
			}
			switch {
			case strings.HasPrefix(l, "socket:"):
				kinds["socket"]++
			case strings.HasPrefix(l, "pipe:"):
				kinds["pipe"]++
			case strings.HasPrefix(l, "anon_inode:"), strings.HasPrefix(l, "/dev/"):
				kinds[l]++
			case strings.HasPrefix(l, "/memfd:"):
				kinds["memfd"]++
			default:
				kinds["file"]++
			}
		}
	}
	return kinds
}

// dumpProgram dumps the program's tree with godwit dump (the processes are
// killed) and returns the image, once every dumped process is gone and
// reaped. When godwit refuses the dump with code "unsupported", the test
// checks that the refusal named a process of the tree and left the whole tree
// running untouched, runs works to check that the program still does its
// job, and skips, naming what the engine is missing. Any other failure fails
// the test.
func (p *program) dump(t *testing.T, works func(t *testing.T)) string {
	t.Helper()
	pids := p.tree()
	t.Logf("%s: dumping pids %v holding descriptors %v", p.name, pids, fdKinds(pids))
	img := filepath.Join(t.TempDir(), "image")
	r := godwit(t, "dump", "--log-format", "json", "--image", img, strconv.Itoa(p.root))
	if r.ExitCode != 0 {
		if r.ExitCode == 2 || strings.Contains(r.Stderr, "goroutine ") {
			t.Fatalf("godwit crashed instead of reporting an error\n%s", r)
		}
		e := r.JSONError(t)
		if e.Code != "unsupported" {
			t.Fatalf("dump failed with code %q:\n%s", e.Code, r)
		}
		t.Logf("dump refused: %s (detail %v)", e.Error, e.Detail)
		if pid, ok := e.Detail["pid"].(float64); ok && !slices.Contains(pids, int(pid)) {
			t.Errorf("the refusal names pid %d, which is not in the tree %v", int(pid), pids)
		}
		if _, err := os.Stat(img); err == nil {
			t.Errorf("the refused dump left an image file behind")
		}
		testutil.WaitFor(t, 5*time.Second, func() bool {
			for _, pid := range pids {
				if anyStopped(pid) {
					return false
				}
			}
			return true
		}, "every thread of the tree to run untraced after the refused dump")
		for _, pid := range pids {
			if !testutil.Alive(pid) {
				t.Errorf("pid %d of the tree died in the refused dump; output:\n%s", pid, p.output())
			}
		}
		works(t)
		t.Skipf("engine: %s", e.Error)
	}
	if fi, err := os.Stat(img); err != nil || fi.Size() == 0 {
		t.Fatalf("dump exited 0 but left no image (%v)", err)
	}
	for _, pid := range pids {
		if !reaped(pid, 10*time.Second) {
			t.Fatalf("pid %d of the tree still runs 10 s after a dump without --leave-running", pid)
		}
	}
	return img
}

// restore runs godwit restore on img and checks that the tree's root came
// back under its PID, as a child of the test (its child-subreaper).
func (p *program) restore(t *testing.T, img string) {
	t.Helper()
	r := godwit(t, "restore", "--image", img)
	if r.ExitCode != 0 {
		t.Fatalf("restore failed:\n%s", r)
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(r.Stdout, "\n"))
	if err != nil || strings.Count(r.Stdout, "\n") != 1 {
		t.Fatalf("restore printed %q: want the PID alone on one line", r.Stdout)
	}
	if pid != p.root {
		p.seen[pid] = true
		t.Fatalf("restore printed pid %d, want the old root pid %d", pid, p.root)
	}
	if !ours(pid) {
		t.Fatalf("restored pid %d is not a child of the test (its child-subreaper)", pid)
	}
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tcpConns lists the TCP sockets held by pids that are not listening
// sockets (connections, in whatever state), as "local->remote state".
func tcpConns(pids []int) []string {
	inodes := map[string]bool{}
	for _, pid := range pids {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, e := range ents {
			l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
			if ino, ok := strings.CutPrefix(l, "socket:["); ok {
				inodes[strings.TrimSuffix(ino, "]")] = true
			}
		}
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] || f[3] == "0A" { // 0A: LISTEN
				continue
			}
			out = append(out, f[1]+"->"+f[2]+" state "+f[3])
		}
	}
	return out
}

// waitIdle waits until the program's tree holds no TCP connection, only
// listening sockets: the clients of the test are gone before the dump.
func (p *program) waitIdle(t *testing.T) {
	t.Helper()
	var conns []string
	if !testutil.Poll(20*time.Second, func() bool {
		conns = tcpConns(p.tree())
		return len(conns) == 0
	}) {
		t.Fatalf("%s still holds TCP connections %v", p.name, conns)
	}
}

// buildStaticGo builds the Go package pkg (a path relative to the module
// root) with CGO_ENABLED=0 and checks that the result is statically linked.
func buildStaticGo(t *testing.T, pkg string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("needs the go command to build %s: %v", pkg, err)
	}
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked (it has an interpreter): want a static binary", out)
		}
	}
	return out
}

// pokeReport sends SIGUSR1 to pid until path holds a JSON report whose "seq"
// is above after, decodes it into v and returns its seq.
func pokeReport(t *testing.T, p *program, pid int, path string, after int64, v any) int64 {
	t.Helper()
	var last []byte
	var seq int64
	testutil.WaitFor(t, reportTimeout, func() bool {
		if !testutil.Alive(pid) {
			t.Fatalf("pid %d is gone while a report was awaited; output of %s:\n%s", pid, p.name, p.output())
		}
		unix.Kill(pid, unix.SIGUSR1)
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		var s struct {
			Seq int64 `json:"seq"`
		}
		if json.Unmarshal(b, &s) != nil || s.Seq <= after {
			return false
		}
		last, seq = b, s.Seq
		return true
	}, fmt.Sprintf("a report of pid %d in %s newer than seq %d", pid, filepath.Base(path), after))
	if err := json.Unmarshal(last, v); err != nil {
		t.Fatalf("report %s: %v\n%s", path, err, last)
	}
	return seq
}

// readReport decodes the report at path (written at least once) into v.
func readReport(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// resp is a minimal client of the Redis protocol (RESP2).
type resp struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

// respError is an error reply.
type respError string

func (e respError) Error() string { return string(e) }

func dialRedis(addr string) (*resp, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &resp{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}, nil
}

func (c *resp) Close() error { return c.c.Close() }

// send buffers one command.
func (c *resp) send(args ...string) {
	fmt.Fprintf(c.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c.w, "$%d\r\n", len(a))
		c.w.WriteString(a)
		c.w.WriteString("\r\n")
	}
}

// flush sends what send buffered.
func (c *resp) flush() error {
	c.c.SetDeadline(time.Now().Add(time.Minute))
	return c.w.Flush()
}

// read reads one reply: a string (simple string), respError, int64, []byte
// (bulk string, nil when null) or []any (array, nil when null).
func (c *resp) read() (any, error) {
	c.c.SetDeadline(time.Now().Add(time.Minute))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	switch body := line[1:]; line[0] {
	case '+':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return []byte(nil), err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return nil, err
		}
		return b[:n], nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return []any(nil), err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply %q", line)
}

// do sends one command and reads its reply; an error reply is returned as
// the error.
func (c *resp) do(args ...string) (any, error) {
	c.send(args...)
	if err := c.flush(); err != nil {
		return nil, err
	}
	v, err := c.read()
	if e, ok := v.(respError); ok && err == nil {
		return nil, e
	}
	return v, err
}
