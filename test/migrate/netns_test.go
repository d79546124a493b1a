package migrate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// The tests of this file migrate redis-server between two network hosts
// while a client on a third one writes to it over one TCP connection.
//
//	        veth 10.78.N.1 <-> .2           (control: godwit migrate -> serve)
//	root ns ─────────────────────────── B: godwit serve (init of PID ns, own net and mount ns)
//	                                      ▲
//	                                      │ moved here by the destination's network-unlock
//	C: client ──── veth 10.77.N.2 <-> .1 ─┴── A: redis-server (init of its PID ns, own mount ns,
//	                                           in a network namespace held by a sleep)
//
// Migrating redis moves the service address 10.77.N.1 with it: the source's
// network-lock action takes A's end of the link down (nothing of A reaches
// the client while redis is frozen and after it is killed), and the
// destination's network-unlock action moves that end, with the address,
// from A to B before the restored redis runs.

// redisPort is where redis listens, in its own network namespace.
const redisPort = 6379

// redisBytes is how much data redis is loaded with: 256 MiB, or 1 GiB with
// GODWIT_BIG=1.
func redisBytes() int64 {
	if os.Getenv("GODWIT_BIG") == "1" {
		return 1 << 30
	}
	return 256 << 20
}

// popValue is the size of the values DEBUG POPULATE writes.
const popValue = 1024

// lab is the network of the redis tests.
type lab struct {
	t      *testing.T
	pki    pki
	id     string // in link names, unique per test
	n      int    // third octet of the subnets
	holder *host  // holds A's network namespace
	a      *host  // redis
	c      *host  // the client's network namespace
	b      *destination
	linkA  string // A's end of the client's link, moved to B
	dir    string
}

func (l *lab) redisAddr() string { return fmt.Sprintf("10.77.%d.1", l.n) }
func (l *lab) ctlAddr() string   { return fmt.Sprintf("10.78.%d.2", l.n) }

// randInt returns a random number in [0, n).
func randInt(t *testing.T, n int64) int {
	t.Helper()
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		t.Fatal(err)
	}
	return int(v.Int64())
}

// startLab builds the hosts and links and starts redis in A.
func startLab(t *testing.T) *lab {
	t.Helper()
	redis := testutil.RequireCommand(t, "redis-server")
	testutil.RequireCommand(t, "redis-cli")
	testutil.RequireCommand(t, "ip")
	testutil.RequireCommand(t, "sleep")
	b := make([]byte, 3)
	rand.Read(b)
	l := &lab{t: t, id: hex.EncodeToString(b)[:5], n: 1 + randInt(t, 254), dir: t.TempDir()}
	l.pki = newPKI(t, l.ctlAddr())
	l.linkA = "gw" + l.id + "a"
	linkC, linkR, linkB := "gw"+l.id+"c", "gw"+l.id+"r", "gw"+l.id+"b"

	holder := []string{"unshare", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child", "--net", "sleep", "1000000"}
	l.holder = startHost(t, "netA", holder...)
	l.c = startHost(t, "netC", holder...)
	l.a = startHost(t, "redis",
		"nsenter", "--net=/proc/"+strconv.Itoa(l.holder.init)+"/ns/net", "--",
		"unshare", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child",
		redis, "--port", strconv.Itoa(redisPort), "--bind", "0.0.0.0", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", l.dir,
		"--enable-debug-command", "yes")
	l.b = startServe(t, serveOptions{pki: l.pki, netns: true, listen: "0.0.0.0:7777",
		args: []string{"--action-script", l.destScript()}})

	// root <-> B: the control connection.
	t.Cleanup(func() { runCmd("ip", "link", "del", linkR) })
	mustRun(t, "ip", "link", "add", linkR, "type", "veth", "peer", "name", linkB, "netns", strconv.Itoa(l.b.init))
	mustRun(t, "ip", "addr", "add", fmt.Sprintf("10.78.%d.1/24", l.n), "dev", linkR)
	mustRun(t, "ip", "link", "set", linkR, "up")
	l.b.run(t, "-n", "ip", "addr", "add", l.ctlAddr()+"/24", "dev", linkB)
	l.b.run(t, "-n", "ip", "link", "set", linkB, "up")
	l.b.run(t, "-n", "ip", "link", "set", "lo", "up")

	// C <-> A: the service.
	mustRun(t, "ip", "link", "add", linkC, "netns", strconv.Itoa(l.c.init), "type", "veth",
		"peer", "name", l.linkA, "netns", strconv.Itoa(l.holder.init))
	l.c.run(t, "-n", "ip", "addr", "add", fmt.Sprintf("10.77.%d.2/24", l.n), "dev", linkC)
	l.c.run(t, "-n", "ip", "link", "set", linkC, "up")
	l.c.run(t, "-n", "ip", "link", "set", "lo", "up")
	l.holder.run(t, "-n", "ip", "addr", "add", l.redisAddr()+"/24", "dev", l.linkA)
	l.holder.run(t, "-n", "ip", "link", "set", l.linkA, "up")
	l.holder.run(t, "-n", "ip", "link", "set", "lo", "up")

	testutil.WaitFor(t, startTimeout, func() bool {
		l.a.alive(t)
		out, err := runCmd(l.c.nsenter("-n", "redis-cli", "-h", l.redisAddr(), "-p", strconv.Itoa(redisPort), "ping")...)
		return err == nil && strings.TrimSpace(out) == "PONG"
	}, "redis in A to answer PING from C")
	return l
}

// cli runs redis-cli from C against redis and returns its output.
func (l *lab) cli(t *testing.T, args ...string) string {
	t.Helper()
	argv := append([]string{"redis-cli", "-h", l.redisAddr(), "-p", strconv.Itoa(redisPort)}, args...)
	return strings.TrimSpace(l.c.run(t, "-n", argv...))
}

// info returns the fields of INFO section.
func (l *lab) info(t *testing.T, section string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(l.cli(t, "INFO", section), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// srcScript writes the source's action script: network-lock takes A's
// end of the client's link down, network-unlock (after a failure) brings it
// up again. Every call is logged.
func (l *lab) srcScript() string {
	p := filepath.Join(l.dir, "source-action.sh")
	ns := "/proc/" + strconv.Itoa(l.holder.init) + "/ns/net"
	script := fmt.Sprintf(`#!/bin/sh
echo "$GODWIT_ACTION $GODWIT_PID" >> %[1]s
case "$GODWIT_ACTION" in
network-lock) exec nsenter --net=%[2]s -- ip link set %[3]s down ;;
network-unlock) exec nsenter --net=%[2]s -- ip link set %[3]s up ;;
esac
`, shellQuote(filepath.Join(l.dir, "source-actions.log")), ns, l.linkA)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// placeholder is the link that holds the service address in B from
// pre-restore to network-unlock.
func (l *lab) placeholder() string { return "gw" + l.id + "p" }

// destScript writes the destination's action script, which runs inside B.
// pre-restore puts the service address on a placeholder link (a veth pair
// inside B): B is then on the client's network, as a destination host on
// the same LAN would be, and the restore finds the address and a route to
// the client for the connections it rebuilds, while nothing reaches them
// yet. network-unlock asks the test to replace the placeholder with A's
// end of the client's link (the script cannot reach A from B) and waits for
// its answer. Every call is logged.
func (l *lab) destScript() string {
	p := filepath.Join(l.dir, "dest-action.sh")
	req, done := filepath.Join(l.dir, "unlock.request"), filepath.Join(l.dir, "unlock.done")
	script := fmt.Sprintf(`#!/bin/sh
echo "$GODWIT_ACTION $GODWIT_PID" >> %[1]s
case "$GODWIT_ACTION" in
pre-restore)
	ip link del %[4]s 2>/dev/null
	ip link add %[4]s type veth peer name %[4]sx &&
		ip addr add %[5]s/24 dev %[4]s &&
		ip link set %[4]sx up && ip link set %[4]s up
	;;
network-unlock)
	echo "$GODWIT_PID" > %[2]s
	while [ ! -s %[3]s ]; do sleep 0.02; done
	exit "$(cat %[3]s)"
	;;
esac
`, shellQuote(filepath.Join(l.dir, "dest-actions.log")), shellQuote(req), shellQuote(done), l.placeholder(), l.redisAddr())
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// serveUnlock answers the destination's network-unlock until ctx ends: it
// removes the placeholder and moves A's end of the client's link into B
// with the service address, then lets the script finish.
func (l *lab) serveUnlock(ctx context.Context) <-chan error {
	res := make(chan error, 1)
	req, done := filepath.Join(l.dir, "unlock.request"), filepath.Join(l.dir, "unlock.done")
	go func() {
		for {
			select {
			case <-ctx.Done():
				res <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := os.Stat(req); err != nil {
				continue
			}
			b := strconv.Itoa(l.b.init)
			var err error
			runCmd(l.b.nsenter("-n", "ip", "link", "del", l.placeholder())...)
			for _, argv := range [][]string{
				{"nsenter", "--net=/proc/" + strconv.Itoa(l.holder.init) + "/ns/net", "--", "ip", "link", "set", "dev", l.linkA, "netns", b},
				l.b.nsenter("-n", "ip", "addr", "add", l.redisAddr()+"/24", "dev", l.linkA),
				l.b.nsenter("-n", "ip", "link", "set", l.linkA, "up"),
			} {
				var out string
				if out, err = runCmd(argv...); err != nil {
					err = fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
					break
				}
			}
			code := "0\n"
			if err != nil {
				code = "1\n"
			}
			os.WriteFile(done, []byte(code), 0o644)
			res <- err
			return
		}
	}()
	return res
}

// writerStatus is what redis_client.py write reports.
type writerStatus struct {
	Acked      int    `json:"acked"`
	Errors     int    `json:"errors"`
	Reconnects int    `json:"reconnects"`
	LastError  string `json:"last_error"`
	Done       bool   `json:"done"`
}

// writer is redis_client.py write, running in C.
type writer struct {
	cmd    *exec.Cmd
	status string
	stop   string
	stderr string
	exited chan struct{}
}

// startWriter starts the client in C, writing keys from start on.
func (l *lab) startWriter(t *testing.T, start int, reconnect bool) *writer {
	t.Helper()
	noInheritedFDs(t)
	name := "writer-" + strconv.Itoa(start)
	w := &writer{status: filepath.Join(l.dir, name+".json"), stop: filepath.Join(l.dir, name+".stop"),
		stderr: filepath.Join(l.dir, name+".err"), exited: make(chan struct{})}
	argv := l.c.nsenter("-n", python3(t), testdata(t, "redis_client.py"), "write", "--host", l.redisAddr(),
		"--port", strconv.Itoa(redisPort), "--status", w.status, "--stop", w.stop, "--start", strconv.Itoa(start))
	if reconnect {
		argv = append(argv, "--reconnect")
	}
	errf, err := os.Create(w.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	w.cmd = exec.Command(argv[0], argv[1:]...)
	w.cmd.Stdout, w.cmd.Stderr = errf, errf
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.exited
	})
	return w
}

func (w *writer) read() writerStatus {
	var s writerStatus
	if b, err := os.ReadFile(w.status); err == nil {
		json.Unmarshal(b, &s)
	}
	return s
}

// waitAcked waits until the writer has n keys confirmed.
func (w *writer) waitAcked(t *testing.T, n int, what string) writerStatus {
	t.Helper()
	var s writerStatus
	testutil.WaitFor(t, progressTimeout, func() bool {
		s = w.read()
		if s.Acked >= n {
			return true
		}
		select {
		case <-w.exited:
			t.Fatalf("the writer exited (%v) while waiting for %s; status %+v; stderr: %s", w.cmd.ProcessState, what, s, tail(w.stderr, 4096))
		default:
		}
		return false
	}, what)
	return s
}

// finish stops the writer and returns its last status.
func (w *writer) finish(t *testing.T) writerStatus {
	t.Helper()
	if err := os.WriteFile(w.stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(progressTimeout):
		t.Fatalf("the writer did not stop; stderr: %s", tail(w.stderr, 4096))
	}
	s := w.read()
	if !s.Done {
		t.Errorf("the writer ended (%v) without finishing: %+v; stderr: %s", w.cmd.ProcessState, s, tail(w.stderr, 4096))
	}
	return s
}

// verifyKeys checks from C that keys 0 .. n-1 of the writer hold their
// values.
func (l *lab) verifyKeys(t *testing.T, n int) {
	t.Helper()
	out := l.c.run(t, "-n", python3(t), testdata(t, "redis_client.py"), "verify", "--host", l.redisAddr(),
		"--port", strconv.Itoa(redisPort), "--count", strconv.Itoa(n))
	var v struct {
		Checked  int      `json:"checked"`
		Missing  int      `json:"missing"`
		Wrong    int      `json:"wrong"`
		FirstBad []string `json:"first_bad"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &v); err != nil {
		t.Fatalf("verify printed %q: %v", out, err)
	}
	if v.Checked != n || v.Missing != 0 || v.Wrong != 0 {
		t.Errorf("of the writer's %d confirmed keys, %d are missing and %d wrong (first: %v)", n, v.Missing, v.Wrong, v.FirstBad)
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// waitNoClients waits until redis serves no client but the redis-cli that
// asks.
func (l *lab) waitNoClients(t *testing.T) {
	t.Helper()
	var n string
	if !testutil.Poll(progressTimeout, func() bool {
		n = l.info(t, "clients")["connected_clients"]
		return n == "1"
	}) {
		t.Fatalf("redis still has %s clients", n)
	}
}

// TestMigrateRedisIdle migrates redis-server, loaded with 256 MiB (1 GiB
// with GODWIT_BIG=1) and with keys written by a client that has then
// disconnected, from host A to host B (no established connection: only the
// listening socket moves). The service address moves with it (the action
// scripts); afterwards a new client on C reaches redis at the same address,
// finds every key, the loaded data intact and the same process (pid 1 of
// its namespace, the same run_id), and writes more.
func TestMigrateRedisIdle(t *testing.T) {
	testRedis(t, "", false)
}

// TestMigrateRedisTCPEstablished is TestMigrateRedisIdle with the client
// writing over one TCP connection the whole time, and --tcp-established:
// the connection is carried over, the client never sees an error, every
// key it had confirmed before, during and after the migration is there.
func TestMigrateRedisTCPEstablished(t *testing.T) {
	testRedis(t, "--tcp-established", false)
}

// TestMigrateRedisTCPClose is TestMigrateRedisTCPEstablished with
// --tcp-close: the destination closes the client's connection, the client
// reconnects (to the same address, now on B) and goes on; every key it had
// confirmed is there.
func TestMigrateRedisTCPClose(t *testing.T) {
	testRedis(t, "--tcp-close", true)
}

// testRedis runs the redis tests: tcpFlag is the flag of godwit migrate
// ("" for none: the client disconnects before the migration); reconnect
// makes the client reconnect after errors.
func testRedis(t *testing.T, tcpFlag string, reconnect bool) {
	setup(t, "ip", "redis-server", "redis-cli")
	l := startLab(t)
	idle := tcpFlag == ""

	total := redisBytes()
	keys := total / popValue
	start := time.Now()
	if out := l.cli(t, "DEBUG", "POPULATE", strconv.FormatInt(keys, 10), "pop", strconv.Itoa(popValue)); out != "OK" {
		t.Fatalf("DEBUG POPULATE gives %q", out)
	}
	mem := l.info(t, "memory")
	t.Logf("redis loaded with %d keys of %d bytes in %v: used_memory %s", keys, popValue, time.Since(start).Round(time.Millisecond), mem["used_memory_human"])
	sample := []string{"pop:0", "pop:" + strconv.FormatInt(keys/2, 10), "pop:" + strconv.FormatInt(keys-1, 10)}
	digests := l.cli(t, append([]string{"DEBUG", "DIGEST-VALUE"}, sample...)...)
	server := l.info(t, "server")
	if server["process_id"] != "1" {
		t.Errorf("redis says process_id %q, want 1 (the init of its namespace)", server["process_id"])
	}
	srcPID := l.a.init

	w := l.startWriter(t, 0, reconnect)
	before := w.waitAcked(t, 1000, "the writer's first 1000 keys")
	written := 0 // keys confirmed by writers that have finished
	if idle {
		fin := w.finish(t)
		if fin.Errors != 0 {
			t.Fatalf("the writer saw %d errors before the migration (last: %s)", fin.Errors, fin.LastError)
		}
		written = fin.Acked
		l.waitNoClients(t)
	}
	t.Logf("writer before the migration: %+v", before)

	flags := []string{"--precopy", "auto", "--action-script", l.srcScript()}
	if tcpFlag != "" {
		flags = append(flags, tcpFlag)
	}
	ctx, cancel := context.WithCancel(context.Background())
	unlocked := l.serveUnlock(ctx)
	running := func() bool {
		b, _ := os.ReadFile(filepath.Join(l.dir, "dest-actions.log"))
		return strings.Contains(string(b), "post-restore")
	}
	m := runMigrateWith(t, migrateOptions{committed: running}, l.pki.client(), srcPID, l.ctlAddr()+":7777", flags...)
	cancel()
	if err := <-unlocked; err != nil {
		t.Errorf("moving the link to B: %v", err)
	}
	srcLog, _ := os.ReadFile(filepath.Join(l.dir, "source-actions.log"))
	dstLog, _ := os.ReadFile(filepath.Join(l.dir, "dest-actions.log"))
	t.Logf("source actions: %q; destination actions: %q", srcLog, dstLog)

	if why, ok := m.unsupported(t, l.b); ok {
		m.wantFailure(t, m.code())
		if !testutil.Alive(srcPID) {
			t.Fatalf("redis (pid %d) is gone after the refused migration", srcPID)
		}
		checkRunsFree(t, srcPID, "redis")
		if !idle {
			s := w.read()
			after := w.waitAcked(t, s.Acked+1000, "the writer to go on after the refused migration")
			if after.Errors != 0 {
				t.Errorf("the writer saw %d errors (last: %s)", after.Errors, after.LastError)
			}
			written = w.finish(t).Acked
		}
		l.b.checkOnly(t)
		l.verifyKeys(t, written)
		t.Skipf("engine: %s", why)
	}
	if m.ExitCode != 0 && strings.Contains(string(dstLog), "post-restore") {
		// The destination runs redis: go on and check it, so that the
		// failure says what works.
		t.Errorf("godwit migrate failed (exit %d, code %q: %s) although the destination reports the tree running", m.ExitCode, m.code(), m.message())
	} else {
		m.mustCommit(t, l.b)
		if m.rep.DestPID != srcPID {
			t.Errorf("report dest_pid %d, want %d", m.rep.DestPID, srcPID)
		}
	}
	wantActions := map[string]string{
		"source":      fmt.Sprintf("pre-dump %[1]d\nnetwork-lock %[1]d\npost-dump %[1]d\n", srcPID),
		"destination": fmt.Sprintf("pre-restore %[1]d\nnetwork-unlock %[1]d\npost-restore %[1]d\n", srcPID),
	}
	for side, got := range map[string]string{"source": string(srcLog), "destination": string(dstLog)} {
		if got != wantActions[side] {
			t.Errorf("the %s's action script ran %q, want %q", side, got, wantActions[side])
		}
	}
	testutil.WaitFor(t, stopTimeout, func() bool { return !testutil.Alive(srcPID) }, "the source redis to be gone")
	var restored int
	testutil.WaitFor(t, 30*time.Second, func() bool {
		restored = l.b.find(srcPID)
		return restored != 0
	}, fmt.Sprintf("redis with pid %d in B", srcPID))
	t.Logf("restored as %s", describe(restored))
	if ns := nsPIDs(restored); len(ns) == 0 || ns[len(ns)-1] != 1 {
		t.Errorf("the restored redis has NSpid %v: want pid 1 of its own namespace, as before", ns)
	}
	checkRunsFree(t, restored, "the restored redis")

	if idle {
		w = l.startWriter(t, written, false)
		w.waitAcked(t, 1000, "a new writer to write 1000 keys after the migration")
	} else {
		mid := w.read()
		after := w.waitAcked(t, mid.Acked+1000, "the writer to go on after the migration")
		t.Logf("writer after the migration: %+v", after)
	}
	fin := w.finish(t)
	t.Logf("writer at the end: %+v; its stderr: %s", fin, tail(w.stderr, 2048))
	if !reconnect && (fin.Errors != 0 || fin.Reconnects != 0) {
		t.Errorf("the writer saw %d errors (last: %s): want none", fin.Errors, fin.LastError)
	}
	written += fin.Acked
	l.verifyKeys(t, written)
	if got := l.cli(t, "DBSIZE"); got != strconv.FormatInt(keys+int64(written), 10) {
		t.Errorf("DBSIZE gives %s, want %d loaded + %d written", got, keys, written)
	}
	if got := l.cli(t, append([]string{"DEBUG", "DIGEST-VALUE"}, sample...)...); got != digests {
		t.Errorf("digests of %v are %q after the migration, %q before", sample, got, digests)
	}
	now := l.info(t, "server")
	if now["process_id"] != "1" || now["run_id"] != server["run_id"] {
		t.Errorf("INFO server after the migration: process_id %q run_id %q; want 1 and %q (the same process)",
			now["process_id"], now["run_id"], server["run_id"])
	}
	l.b.alive(t)
}
