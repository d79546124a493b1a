package migrate_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
	"github.com/godwit-dev/godwit/transport"
)

// This file is the harness: certificates, "hosts" (a set of namespaces,
// the destination running godwit serve as the init of its PID namespace),
// godwit migrate and its JSON report, the counter program, and what the
// tests look at in /proc.

// Timeouts are bounds for waits on conditions, never asserted durations.
const (
	startTimeout    = 2 * time.Minute  // a program filling its memory, serve starting
	migrateTimeout  = 3 * time.Minute  // one godwit migrate run (then it is killed)
	progressTimeout = 2 * time.Minute  // a program to show progress
	undoTimeout     = 30 * time.Second // the destination to drop a failed migration
	stopTimeout     = 30 * time.Second // a host to be gone after its init was killed
)

// setup gates a test that migrates: root, the commands it needs besides
// unshare and nsenter, a subreaper test process, and a check for processes
// left behind when it ends.
func setup(t *testing.T, cmds ...string) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, c := range append([]string{"unshare", "nsenter"}, cmds...) {
		testutil.RequireCommand(t, c)
	}
	testutil.BuildGodwit(t)
	testutil.TrackStrays(t)
}

// noInheritedFDs marks every descriptor above stderr close-on-exec, so that
// no pipe of whatever started go test reaches a program (a pipe would make
// it undumpable) or a host (it could keep go test waiting).
func noInheritedFDs(t testing.TB) {
	t.Helper()
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		t.Fatalf("close_range: %v", err)
	}
}

// python3 returns the interpreter to run the test programs with, preferring
// the system's.
func python3(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return testutil.RequireCommand(t, "python3")
}

// testdata returns the absolute path of a file of testdata/.
func testdata(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tail returns the end of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > n {
		b = append([]byte("..."), b[len(b)-n:]...)
	}
	return string(b)
}

// --- certificates

// pki is a directory of certificates made by transport.GeneratePKI: one CA,
// a server and a client certificate.
type pki struct{ dir string }

// newPKI makes a new CA and certificates; the server's names hosts besides
// localhost and the loopback addresses.
func newPKI(t *testing.T, hosts ...string) pki {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := transport.GeneratePKI(dir, hosts); err != nil {
		t.Fatalf("generate certificates: %v", err)
	}
	return pki{dir: dir}
}

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

// creds are the certificate flags of one side.
type creds struct{ cert, key, ca string }

func (c creds) args() []string { return []string{"--cert", c.cert, "--key", c.key, "--ca", c.ca} }

func (p pki) server() creds {
	return creds{p.path(transport.ServerCertFile), p.path(transport.ServerKeyFile), p.path(transport.CACertFile)}
}

func (p pki) client() creds {
	return creds{p.path(transport.ClientCertFile), p.path(transport.ClientKeyFile), p.path(transport.CACertFile)}
}

// --- /proc

// procStatus returns the fields of /proc/PID/status.
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// nsPIDs returns the NSpid line of pid: its id in each PID namespace from
// the one of /proc inward.
func nsPIDs(pid int) []int {
	st, err := procStatus(pid)
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(st["NSpid"]) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil
		}
		out = append(out, n)
	}
	return out
}

// allPIDs lists the processes /proc shows.
func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// parentOf returns the parent of pid, or 0.
func parentOf(pid int) int {
	st, err := testutil.ReadStat(pid, 0)
	if err != nil {
		return 0
	}
	return st.PPID
}

// comm returns the name of pid, for messages.
func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// describe names pid and its state, for messages.
func describe(pid int) string {
	st, _ := procStatus(pid)
	return fmt.Sprintf("%d (%s, state %q, NSpid %q, ppid %s)", pid, comm(pid), st["State"], st["NSpid"], st["PPid"])
}

// runsFree reports whether every thread of pid runs, not stopped and not
// traced, and says which does not.
func runsFree(pid int) (bool, string) {
	tids, err := testutil.Tasks(pid)
	if err != nil {
		return false, err.Error()
	}
	for _, tid := range tids {
		st, err := testutil.ReadStat(pid, tid)
		if err != nil {
			return false, err.Error()
		}
		if st.Stopped() || st.TracerPID != 0 || st.State == 'Z' {
			return false, fmt.Sprintf("thread %d of %d: state %c, tracer %d", tid, pid, st.State, st.TracerPID)
		}
	}
	return true, ""
}

// threadStates describes every thread of pid: state, tracer and where it
// waits in the kernel.
func threadStates(pid int) string {
	tids, err := testutil.Tasks(pid)
	if err != nil {
		return fmt.Sprintf("pid %d: %v", pid, err)
	}
	var out []string
	for _, tid := range tids {
		st, err := testutil.ReadStat(pid, tid)
		wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/wchan", pid, tid))
		out = append(out, fmt.Sprintf("%d: state %c tracer %d wchan %q (%v)", tid, st.State, st.TracerPID, wchan, err))
	}
	return fmt.Sprintf("pid %d (%s): %s", pid, comm(pid), strings.Join(out, "; "))
}

// checkRunsFree waits a little for every thread of pid to run untraced and
// not stopped (godwit has exited, so it must have let go already).
func checkRunsFree(t *testing.T, pid int, what string) {
	t.Helper()
	var why string
	if !testutil.Poll(5*time.Second, func() bool {
		var ok bool
		ok, why = runsFree(pid)
		return ok
	}) {
		t.Errorf("%s (pid %d) does not run freely: %s", what, pid, why)
	}
}

// --- hosts

// host is a set of namespaces, whose PID namespace has init as its init:
// a process started through `unshare --pid --fork --kill-child` (possibly
// behind nsenter, which then does not fork). When the test ends the init is
// killed, which kills everything in its PID namespace, and the test waits
// until all of it is gone.
type host struct {
	t      *testing.T
	name   string
	dir    string
	stdout string // files holding the init's output
	stderr string
	cmd    *exec.Cmd
	exited chan struct{}
	init   int    // the host's init, as this test sees it
	pidNS  string // its /proc/PID/ns/pid
	netNS  string // its /proc/PID/ns/net
	level  int    // index in NSpid of a pid as the host sees it
}

// startHost runs argv (which must reach `unshare --pid --fork`) and waits
// until the init of the new PID namespace has executed its program.
func startHost(t *testing.T, name string, argv ...string) *host {
	t.Helper()
	noInheritedFDs(t)
	dir := t.TempDir()
	h := &host{t: t, name: name, dir: dir, exited: make(chan struct{}),
		stdout: filepath.Join(dir, name+".out"), stderr: filepath.Join(dir, name+".err")}
	out, err := os.Create(h.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(h.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	h.cmd = exec.Command(argv[0], argv[1:]...)
	h.cmd.Dir = dir
	h.cmd.Stdin, h.cmd.Stdout, h.cmd.Stderr = null, out, errf
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start host %s (%v): %v", name, argv, err)
	}
	go func() {
		h.cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(h.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host %s: stderr of its init:\n%s", name, tail(h.stderr, 8192))
		}
	})
	self := len(nsPIDs(os.Getpid()))
	u := h.cmd.Process.Pid
	testutil.WaitFor(t, startTimeout, func() bool {
		select {
		case <-h.exited:
			t.Fatalf("host %s: %v exited (%v) before its init started; stderr:\n%s", name, argv, h.cmd.ProcessState, tail(h.stderr, 4096))
		default:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", u, u))
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		if len(f) != 1 {
			return false
		}
		pid, _ := strconv.Atoi(f[0])
		ns := nsPIDs(pid)
		if len(ns) != self+1 || ns[self] != 1 || comm(pid) == "unshare" {
			return false // not yet the init of a new namespace, or not exec'd yet
		}
		h.init = pid
		return true
	}, fmt.Sprintf("the init of host %s", name))
	h.level = self
	if h.pidNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", h.init)); err != nil {
		t.Fatal(err)
	}
	if h.netNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", h.init)); err != nil {
		t.Fatal(err)
	}
	t.Logf("host %s: init %d (%s), %s %s", name, h.init, comm(h.init), h.pidNS, h.netNS)
	return h
}

// alive fails the test when the host's init is gone.
func (h *host) alive(t *testing.T) {
	t.Helper()
	select {
	case <-h.exited:
		t.Fatalf("host %s is gone (%v); stderr of its init:\n%s", h.name, h.cmd.ProcessState, tail(h.stderr, 8192))
	default:
	}
	if !testutil.Alive(h.init) {
		t.Fatalf("the init %d of host %s is gone; its stderr:\n%s", h.init, h.name, tail(h.stderr, 8192))
	}
}

// members lists the processes in the host's PID namespace or below it: in
// its namespace, or descendants of its init.
func (h *host) members() []int {
	parents := map[int]int{}
	var out []int
	pids := allPIDs()
	for _, pid := range pids {
		parents[pid] = parentOf(pid)
	}
	for _, pid := range pids {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && ns == h.pidNS {
			out = append(out, pid)
			continue
		}
		for p, n := parents[pid], 0; p > 1 && n < 64; p, n = parents[p], n+1 {
			if p == h.init {
				out = append(out, pid)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// find returns the process whose pid, as the host sees it, is pid (0 when
// there is none).
func (h *host) find(pid int) int {
	for _, p := range h.members() {
		if ns := nsPIDs(p); len(ns) > h.level && ns[h.level] == pid {
			return p
		}
	}
	return 0
}

// checkOnly waits until the host holds no process but its init and keep,
// and fails the test naming the others when it does not within undoTimeout.
func (h *host) checkOnly(t *testing.T, keep ...int) {
	t.Helper()
	keep = append(keep, h.init)
	var extra []int
	if testutil.Poll(undoTimeout, func() bool {
		extra = extra[:0]
		for _, p := range h.members() {
			if !slices.Contains(keep, p) && testutil.Alive(p) {
				extra = append(extra, p)
			}
		}
		return len(extra) == 0
	}) {
		return
	}
	var names []string
	for _, p := range extra {
		names = append(names, describe(p))
	}
	t.Errorf("host %s still holds %d processes besides %v after %v: %s", h.name, len(extra), keep, undoTimeout, strings.Join(names, "; "))
}

// stop kills the host's init (and with it everything in its PID namespace),
// waits for the command to end and for every process of the host to be
// gone.
func (h *host) stop() {
	u := h.cmd.Process.Pid
	if h.init > 0 && parentOf(h.init) == u {
		unix.Kill(h.init, unix.SIGKILL)
	}
	select {
	case <-h.exited:
	case <-time.After(stopTimeout):
		h.cmd.Process.Kill()
		select {
		case <-h.exited:
		case <-time.After(stopTimeout):
			h.t.Errorf("host %s: %d did not exit", h.name, u)
		}
	}
	if h.pidNS == "" {
		return
	}
	var left []int
	if !testutil.Poll(stopTimeout, func() bool {
		left = h.members()
		return len(left) == 0
	}) {
		var why []string
		for _, pid := range left {
			wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
			stack, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", pid))
			why = append(why, fmt.Sprintf("%s wchan %q stack:\n%s", describe(pid), wchan, stack))
		}
		h.t.Errorf("host %s: processes outlived its init %d, killed %v ago:\n%s", h.name, h.init, stopTimeout, strings.Join(why, "\n"))
	}
}

// nsenter returns argv run by nsenter in the namespaces (flags such as "-n",
// "-p", "-m") of the host.
func (h *host) nsenter(flags string, argv ...string) []string {
	args := []string{"nsenter", "-t", strconv.Itoa(h.init)}
	args = append(args, strings.Fields(flags)...)
	return append(append(args, "--"), argv...)
}

// run runs argv in the host's namespaces (nsenter flags) and returns its
// combined output; it fails the test when argv fails.
func (h *host) run(t *testing.T, flags string, argv ...string) string {
	t.Helper()
	return mustRun(t, h.nsenter(flags, argv...)...)
}

// mustRun runs argv and returns its combined output; it fails the test when
// argv fails.
func mustRun(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := runCmd(argv...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

// runCmd runs argv with stdin on /dev/null and output through a file (a
// process that outlives it cannot hold a pipe of the test), and returns its
// combined output.
func runCmd(argv ...string) (string, error) {
	f, err := os.CreateTemp("", "godwit-migrate-out-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	b, _ := os.ReadFile(f.Name())
	return string(b), err
}

// --- godwit serve

// serveOptions says how to start a destination.
type serveOptions struct {
	pki    pki
	listen string   // default 127.0.0.1:0
	netns  bool     // a network namespace of its own
	args   []string // more flags of godwit serve
}

// destination is a host whose init is godwit serve.
type destination struct {
	*host
	addr string // where serve listens, as it printed it
}

// startServe starts godwit serve as the init of a new PID and mount
// namespace with its own /proc, and waits until it listens.
func startServe(t *testing.T, opts serveOptions) *destination {
	t.Helper()
	godwit := testutil.BuildGodwit(t)
	if opts.listen == "" {
		opts.listen = "127.0.0.1:0"
	}
	argv := []string{"unshare", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child"}
	if opts.netns {
		argv = append(argv, "--net")
	}
	argv = append(argv, godwit, "serve", "--listen", opts.listen)
	argv = append(argv, opts.pki.server().args()...)
	argv = append(argv, opts.args...)
	d := &destination{host: startHost(t, "serve", argv...)}
	testutil.WaitFor(t, startTimeout, func() bool {
		d.alive(t)
		b, _ := os.ReadFile(d.stdout)
		for _, l := range strings.Split(string(b), "\n") {
			if a, ok := strings.CutPrefix(l, "listening on "); ok {
				d.addr = strings.TrimSpace(a)
				return true
			}
		}
		return false
	}, "godwit serve to print \"listening on ADDR\"")
	t.Logf("godwit serve (pid %d) listens on %s", d.init, d.addr)
	return d
}

// lastError returns the last "migration failed" line of serve's log.
func (d *destination) lastError() string {
	b, _ := os.ReadFile(d.stderr)
	var last string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `msg="migration failed"`) {
			last = l
		}
	}
	if i := strings.Index(last, "err="); i >= 0 {
		last = last[i+len("err="):]
	}
	return last
}

// --- godwit migrate

// round is one round of a migration report.
type round struct {
	N          int    `json:"round"`
	Pages      uint64 `json:"pages"`
	Zero       uint64 `json:"zero_pages"`
	Bytes      int64  `json:"bytes"`
	DurationNS int64  `json:"duration_ns"`
	Final      bool   `json:"final"`
}

// report is what godwit migrate --json prints.
type report struct {
	PID           int            `json:"pid"`
	DestPID       int            `json:"dest_pid"`
	Mode          string         `json:"mode"`
	Rounds        []round        `json:"rounds"`
	Bytes         int64          `json:"bytes"`
	PagesAgain    uint64         `json:"pages_sent_again"`
	TotalNS       int64          `json:"total_ns"`
	DowntimeNS    int64          `json:"downtime_ns"`
	FrozenNS      int64          `json:"frozen_ns"`
	RestoreNS     int64          `json:"restore_ns"`
	Committed     bool           `json:"committed"`
	Warnings      []string       `json:"warnings"`
	SourceResumed bool           `json:"source_resumed"`
	Error         map[string]any `json:"error"`
}

// migration is one run of godwit migrate.
type migration struct {
	testutil.Result
	rep    report
	parsed bool // stdout held a report
}

// code is the code of the report's error ("" without one).
func (m migration) code() string {
	s, _ := m.rep.Error["code"].(string)
	return s
}

// message is the report's error as text.
func (m migration) message() string {
	var parts []string
	for _, k := range []string{"op", "msg", "remedy"} {
		if s, _ := m.rep.Error[k].(string); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ": ")
}

// hasCode reports whether the report's error, or an error nested in it (a
// cause from the other side), has code.
func (m migration) hasCode(code string) bool {
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			if c, _ := v["code"].(string); c == code {
				return true
			}
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(m.rep.Error)
}

// unsupported reports whether the migration failed, before its commit
// point, because the engine does not support something yet, and says what:
// code "unsupported" from this side, or from the destination (which godwit
// migrate reports as "migration-failed"; when its report lost the
// destination's reason, godwit serve's log of d tells it).
func (m migration) unsupported(t *testing.T, d *destination) (string, bool) {
	t.Helper()
	if m.ExitCode == 0 || m.rep.Committed {
		return "", false
	}
	if m.hasCode("unsupported") || m.code() == "migration-failed" && strings.Contains(m.message(), "unsupported") {
		return m.message(), true
	}
	if e := d.lastError(); m.code() == "migration-failed" && strings.Contains(e, "unsupported") {
		t.Logf("note: godwit migrate reported %q (%s): the destination's reason, in its log, is lost", m.code(), m.message())
		return "destination: " + e, true
	}
	return "", false
}

// migrateOptions change how runMigrateWith runs godwit migrate.
type migrateOptions struct {
	// committed, when set, tells whether the destination already runs the
	// tree: godwit migrate must then be done within afterCommit, or it is
	// killed.
	committed func() bool
}

// afterCommit bounds how long godwit migrate may take once the destination
// runs the tree: all it has left to do is end the source.
const afterCommit = time.Minute

// runMigrate runs godwit migrate PID --to to with the certificates of c,
// --json and flags, and parses its report.
func runMigrate(t *testing.T, c creds, pid int, to string, flags ...string) migration {
	t.Helper()
	return runMigrateWith(t, migrateOptions{}, c, pid, to, flags...)
}

// runMigrateWith is runMigrate with options. godwit migrate is killed when
// it takes longer than migrateTimeout, or than afterCommit after the
// destination runs the tree; the test then fails with what the source's
// threads were doing.
func runMigrateWith(t *testing.T, o migrateOptions, c creds, pid int, to string, flags ...string) migration {
	t.Helper()
	args := append([]string{"migrate", strconv.Itoa(pid), "--to", to, "--json", "--log-format", "json"}, c.args()...)
	args = append(args, flags...)
	ctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
	defer cancel()
	cmd := testutil.GodwitCommand(t, ctx, testutil.RunOptions{}, args...)
	out := testutil.CaptureOutput(t, cmd)

	// The watchdog notes what the source's threads do before godwit is
	// killed, for the failure message.
	done := make(chan struct{})
	stuck := make(chan string, 1)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		deadline, _ := ctx.Deadline()
		var since time.Time
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if time.Until(deadline) < 5*time.Second {
				stuck <- fmt.Sprintf("godwit migrate was killed after %v; the source's threads were: %s", migrateTimeout, threadStates(pid))
				return
			}
			if since.IsZero() && o.committed != nil && o.committed() {
				since = time.Now()
			}
			if !since.IsZero() && time.Since(since) > afterCommit {
				stuck <- fmt.Sprintf("godwit migrate did not exit within %v of the destination running the tree and was killed; the source's threads were: %s",
					afterCommit, threadStates(pid))
				cancel()
				return
			}
		}
	}()
	start := time.Now()
	err := cmd.Run()
	close(done)
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run godwit %v: %v", args, err)
	}
	m := migration{Result: testutil.Result{Args: args, ExitCode: cmd.ProcessState.ExitCode(), Duration: time.Since(start)}}
	m.Stdout, m.Stderr = out.Read()
	select {
	case why := <-stuck:
		if m.ExitCode == -1 {
			t.Error(why)
		}
	default:
	}
	if m.ExitCode == 2 || strings.Contains(m.Stderr, "panic") || strings.Contains(m.Stderr, "goroutine ") {
		t.Errorf("godwit migrate crashed\n%s", m.Result)
	}
	if out := strings.TrimSpace(m.Stdout); out != "" {
		if strings.Count(out, "\n") != 0 {
			t.Errorf("godwit migrate --json printed %d lines, want one JSON object\n%s", strings.Count(out, "\n")+1, m.Result)
		}
		if err := json.Unmarshal([]byte(out), &m.rep); err != nil {
			t.Errorf("godwit migrate --json printed no JSON report (%v)\n%s", err, m.Result)
		} else {
			m.parsed = true
		}
	}
	r := m.rep
	var rounds []string
	for _, rd := range r.Rounds {
		f := ""
		if rd.Final {
			f = " final"
		}
		rounds = append(rounds, fmt.Sprintf("%d%s: %d pages %d zero %d bytes %v", rd.N, f, rd.Pages, rd.Zero, rd.Bytes, time.Duration(rd.DurationNS)))
	}
	t.Logf("godwit migrate %d (%s): exit %d, mode %q, committed %v, source_resumed %v, dest_pid %d, total %v, downtime %v (frozen %v, restore %v), %d bytes, %d pages again, rounds [%s], warnings %q, error %v",
		pid, strings.Join(flags, " "), m.ExitCode, r.Mode, r.Committed, r.SourceResumed, r.DestPID,
		time.Duration(r.TotalNS), time.Duration(r.DowntimeNS), time.Duration(r.FrozenNS), time.Duration(r.RestoreNS),
		r.Bytes, r.PagesAgain, strings.Join(rounds, "; "), r.Warnings, r.Error)
	return m
}

// mustCommit fails the test unless the migration succeeded: exit 0, a
// report that says committed, no error.
func (m migration) mustCommit(t *testing.T, d *destination) {
	t.Helper()
	if m.ExitCode != 0 || !m.parsed || !m.rep.Committed || m.rep.Error != nil || m.rep.SourceResumed {
		t.Fatalf("migration failed (code %q: %s)\n%s\nserve's log:\n%s", m.code(), m.message(), m.Result, tail(d.stderr, 8192))
	}
}

// wantFailure checks that the migration failed before the commit point
// with code (in the report, directly or as the destination's cause) and
// said that the source runs on.
func (m migration) wantFailure(t *testing.T, code string) {
	t.Helper()
	if m.ExitCode == 0 {
		t.Fatalf("godwit migrate succeeded, want error %q\n%s", code, m.Result)
	}
	if !m.parsed {
		t.Fatalf("godwit migrate failed without a JSON report\n%s", m.Result)
	}
	if m.rep.Error == nil {
		t.Errorf("the report of the failed migration has no error\n%s", m.Result)
	}
	if m.code() != code {
		if m.hasCode(code) {
			t.Logf("error %q carries the destination's code %q", m.code(), code)
		} else {
			t.Errorf("error code %q (%s), want %q", m.code(), m.message(), code)
		}
	}
	if m.rep.Committed || !m.rep.SourceResumed {
		t.Errorf("report says committed %v, source_resumed %v; want false, true", m.rep.Committed, m.rep.SourceResumed)
	}
	var e testutil.ErrorJSON
	if err := json.Unmarshal([]byte(strings.TrimSpace(m.Stderr)), &e); err != nil || e.Code == "" {
		t.Errorf("stderr is not one JSON error object (%v)\n%s", err, m.Result)
	} else if e.Code != m.code() {
		t.Errorf("stderr says code %q, the report %q", e.Code, m.code())
	}
}

// --- the counter program

// counter is testdata/counter.py: it appends "PID COUNTER STATUS" lines to
// its report file.
type counter struct {
	*testutil.Victim
}

// tick is one line of the counter.
type tick struct {
	pid, n int
	status string
}

// startCounter starts counter.py holding memMiB MiB and rewriting dirty
// pages per tick, and waits for its first lines.
func startCounter(t *testing.T, memMiB, dirty int) *counter {
	t.Helper()
	v := testutil.StartVictim(t, testutil.VictimOptions{}, python3(t), "-u", testdata(t, "counter.py"),
		"--mem", strconv.Itoa(memMiB), "--dirty", strconv.Itoa(dirty))
	c := &counter{Victim: v}
	c.waitTicks(t, 3, v.Alive, "the counter's first lines")
	return c
}

// ticks returns the complete lines written so far.
func (c *counter) ticks(t *testing.T) []tick {
	t.Helper()
	b, err := os.ReadFile(c.ReportPath)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []tick
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var tk tick
		var err1, err2 error
		if len(f) == 3 {
			tk.pid, err1 = strconv.Atoi(f[0])
			tk.n, err2 = strconv.Atoi(f[1])
			tk.status = f[2]
		}
		if len(f) != 3 || err1 != nil || err2 != nil {
			t.Fatalf("line %d of the counter's output is malformed: %q", len(out)+1, sc.Text())
		}
		out = append(out, tk)
	}
	return out
}

// waitTicks waits until the counter has written n lines; alive tells
// whether the process that should write them still runs.
func (c *counter) waitTicks(t *testing.T, n int, alive func() bool, what string) []tick {
	t.Helper()
	var ts []tick
	testutil.WaitFor(t, progressTimeout, func() bool {
		ts = c.ticks(t)
		if len(ts) >= n {
			return true
		}
		if !alive() {
			t.Fatalf("the counter is gone while waiting for %s (%d of %d lines); its stderr: %s", what, len(ts), n, c.Stderr())
		}
		return false
	}, what)
	return ts
}

// checkTicks checks the lines: all from pid, counting 0, 1, 2, ... with no
// line missing or repeated, and the memory intact at each.
func checkTicks(t *testing.T, ts []tick, pid int) {
	t.Helper()
	bad := 0
	for i, tk := range ts {
		var why string
		switch {
		case tk.pid != pid:
			why = fmt.Sprintf("pid %d, want %d", tk.pid, pid)
		case tk.n != i:
			why = fmt.Sprintf("counter %d, want %d (a line is missing or repeated)", tk.n, i)
		case tk.status != "checksum-ok":
			why = "memory: " + tk.status
		default:
			continue
		}
		t.Errorf("line %d of the counter: %s", i+1, why)
		if bad++; bad == 5 {
			t.Errorf("(more lines not shown)")
			return
		}
	}
}

// checkSourceRuns checks that the counter, after a failed migration, runs
// freely, untraced, and goes on counting with its memory intact.
func checkSourceRuns(t *testing.T, c *counter) {
	t.Helper()
	pid := c.PID()
	if !c.Alive() {
		t.Fatalf("the source (pid %d) is gone after a failed migration (%s); stderr: %s", pid, c.ExitState(), c.Stderr())
	}
	checkRunsFree(t, pid, "the source")
	n := len(c.ticks(t))
	checkTicks(t, c.waitTicks(t, n+5, c.Alive, "the source to go on counting"), pid)
}

// migrated checks that the counter runs on d after a committed migration:
// the source process is gone, the destination runs it under the same pid
// (as the destination sees it), running freely, and its lines go on from
// where they were with the same pid and intact memory. It returns the
// restored process's pid as this test sees it.
func migrated(t *testing.T, c *counter, d *destination, m migration) int {
	t.Helper()
	pid := c.PID()
	if m.rep.PID != pid {
		t.Errorf("report pid %d, want %d", m.rep.PID, pid)
	}
	if m.rep.DestPID != pid {
		t.Errorf("report dest_pid %d, want %d (the same pid, in the destination's namespace)", m.rep.DestPID, pid)
	}
	c.WaitExit(30 * time.Second)
	if st := c.ExitState(); st != "signal: killed" {
		t.Errorf("the source ended with %q, want killed by godwit", st)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(b, []byte("counter.py")) {
		t.Errorf("the source pid %d still runs the counter on this host: %s", pid, describe(pid))
	}
	var restored int
	testutil.WaitFor(t, 30*time.Second, func() bool {
		restored = d.find(pid)
		return restored != 0
	}, fmt.Sprintf("a process with pid %d in the destination's namespace", pid))
	t.Logf("restored as %s", describe(restored))
	t.Cleanup(func() { testutil.KillAndReap(restored, 10*time.Second) })
	checkRunsFree(t, restored, "the restored counter")
	n := len(c.ticks(t))
	alive := func() bool { return testutil.Alive(restored) }
	ts := c.waitTicks(t, n+20, alive, "the restored counter to go on counting")
	checkTicks(t, ts, pid)
	return restored
}
