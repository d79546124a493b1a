package migrate_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/internal/testutil"
)

// The tests of this file make a migration fail before its commit point, on
// purpose, and check what godwit promises then: godwit migrate exits
// non-zero with the error's code in its JSON report and says the source was
// resumed; the source runs on, neither stopped nor traced, and keeps
// counting with its memory intact; the destination keeps nothing (no
// process in its namespace but godwit serve) and goes on serving.

// faultMiB is the counter's memory in tests where its size does not matter.
const faultMiB = 16

// TestMigrateRefusedCertificate migrates with certificates that one side
// refuses: a client certificate signed by another CA (the destination
// refuses it), and a CA that did not sign the destination's certificate (the
// source refuses the destination). Both fail with code "authentication"
// before anything is sent; the destination then still accepts a migration
// with the right certificates.
func TestMigrateRefusedCertificate(t *testing.T) {
	setup(t)
	p := newPKI(t)
	other := newPKI(t)
	d := startServe(t, serveOptions{pki: p})
	c := startCounter(t, faultMiB, counterDirty)
	for _, tc := range []struct {
		name string
		cr   creds
	}{
		{"client-certificate-of-another-ca", creds{other.client().cert, other.client().key, p.client().ca}},
		{"destination-not-trusted", creds{p.client().cert, p.client().key, other.client().ca}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := runMigrate(t, tc.cr, c.PID(), d.addr, "--precopy", "off")
			m.wantFailure(t, "authentication")
			checkSourceRuns(t, c)
			d.alive(t)
			d.checkOnly(t)
		})
	}
	m := runMigrate(t, p.client(), c.PID(), d.addr, "--precopy", "off")
	m.mustCommit(t, d)
	migrated(t, c, d, m)
}

// TestMigrateDestinationOutOfMemory migrates with pre-copy to a godwit serve
// that may hold 1 MiB of pages (--memory-limit 1): the first round of the
// counter's 64 MiB overflows it, the destination refuses with code
// "migration-failed" and says why.
func TestMigrateDestinationOutOfMemory(t *testing.T) {
	setup(t)
	p := newPKI(t)
	d := startServe(t, serveOptions{pki: p, args: []string{"--memory-limit", "1"}})
	c := startCounter(t, counterMiB, counterDirty)
	m := runMigrate(t, p.client(), c.PID(), d.addr, "--precopy", "2")
	if why, ok := m.unsupported(t, d); ok {
		m.wantFailure(t, m.code())
		checkSourceRuns(t, c)
		d.checkOnly(t)
		t.Skipf("engine: %s", why)
	}
	m.wantFailure(t, "migration-failed")
	if msg := strings.ToLower(m.message()); !strings.Contains(msg, "memory") && !strings.Contains(msg, "full") {
		t.Errorf("the error does not say that the destination ran out of memory: %s", m.message())
	}
	checkSourceRuns(t, c)
	d.alive(t)
	d.checkOnly(t)
}

// holdPIDScript runs in the destination's PID namespace and starts a sleep
// there under the pid given as its argument (via ns_last_pid), then exits,
// leaving the sleep to the namespace's init.
const holdPIDScript = `
import os, sys
want = int(sys.argv[1])
for _ in range(100):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(want - 1))
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fd = os.open("/dev/null", os.O_RDWR)
        for i in range(3):
            os.dup2(fd, i)
        os.execvp("sleep", ["sleep", "1000000"])
    if pid == want:
        print(pid)
        sys.exit(0)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
sys.exit("could not get pid %d" % want)
`

// holdPID starts a sleep with pid (as the destination sees it) in the
// destination's PID namespace and returns it as this test sees it.
func (d *destination) holdPID(t *testing.T, pid int) int {
	t.Helper()
	out := d.run(t, "-p -m", python3(t), "-c", holdPIDScript, strconv.Itoa(pid))
	if strings.TrimSpace(out) != strconv.Itoa(pid) {
		t.Fatalf("the helper printed %q, want %d", out, pid)
	}
	holder := d.find(pid)
	if holder == 0 || comm(holder) != "sleep" {
		t.Fatalf("no sleep with pid %d in the destination's namespace (found %d)", pid, holder)
	}
	t.Cleanup(func() { testutil.KillAndReap(holder, 10*time.Second) })
	t.Logf("pid %d of the destination is held by %s", pid, describe(holder))
	return holder
}

// TestMigratePIDInUse migrates the counter to a destination where a process
// already holds its pid: the destination refuses with code "pid-in-use" and
// the process holding the pid is left alone.
func TestMigratePIDInUse(t *testing.T) {
	setup(t, "sleep")
	p := newPKI(t)
	d := startServe(t, serveOptions{pki: p})
	c := startCounter(t, faultMiB, counterDirty)
	holder := d.holdPID(t, c.PID())
	m := runMigrate(t, p.client(), c.PID(), d.addr, "--precopy", "off")
	m.wantFailure(t, "pid-in-use")
	checkSourceRuns(t, c)
	d.alive(t)
	d.checkOnly(t, holder)
	if got := d.find(c.PID()); got != holder {
		t.Errorf("pid %d of the destination is now %s, want the sleep %d that held it", c.PID(), describe(got), holder)
	}
}

// TestMigrateConnectionCut cuts the connection between godwit migrate and
// godwit serve (a proxy of the test closes both sides) in each phase before
// the commit point: in the hello (right after the TLS handshake and the
// transport's preamble), in a pre-copy round and in the image stream (the
// source is frozen then). godwit migrate fails with code "connection-lost",
// the source runs on unfrozen, the destination drops what it had received
// or built, and a direct migration afterwards succeeds.
func TestMigrateConnectionCut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		precopy string
		rule    cutRule
	}{
		// The client's application-data records: its Certificate,
		// CertificateVerify and Finished, then the transport's preamble;
		// the next one is the first of the migration.
		{"hello", "off", cutRule{afterAppRecords: 4}},
		{"precopy-round", "2", cutRule{afterBytes: 16 << 20}},
		{"image-stream", "off", cutRule{afterBytes: 16 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			p := newPKI(t)
			d := startServe(t, serveOptions{pki: p})
			c := startCounter(t, counterMiB, counterDirty)
			px := startCutProxy(t, d.addr, tc.rule)
			m := runMigrate(t, p.client(), c.PID(), px.addr(), "--precopy", tc.precopy)
			t.Log(px.report())
			if why, ok := m.unsupported(t, d); ok && !px.wasCut() {
				m.wantFailure(t, m.code())
				checkSourceRuns(t, c)
				d.checkOnly(t)
				t.Skipf("engine: %s", why)
			}
			if !px.wasCut() {
				t.Fatalf("the proxy did not cut the connection: %s\n%s", px.report(), m.Result)
			}
			m.wantFailure(t, "connection-lost")
			checkSourceRuns(t, c)
			d.alive(t)
			d.checkOnly(t)

			m = runMigrate(t, p.client(), c.PID(), d.addr, "--precopy", "off")
			m.mustCommit(t, d)
			migrated(t, c, d, m)
		})
	}
}

// TestMigrateConnectionCutAfterCommit cuts the connection once the
// destination has the commit (its network-unlock action, which runs then,
// tells the test) and before it resumes the tree: past the commit point the
// destination owns the tree. The tree must run there, the source be gone,
// and godwit migrate say it committed, with a warning that the
// confirmation did not arrive.
func TestMigrateConnectionCutAfterCommit(t *testing.T) {
	setup(t)
	p := newPKI(t)
	dir := t.TempDir()
	flag := filepath.Join(dir, "committed")
	script := filepath.Join(dir, "action.sh")
	body := "#!/bin/sh\nif [ \"$GODWIT_ACTION\" = network-unlock ]; then touch " + flag + "; sleep 1; fi\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, serveOptions{pki: p, args: []string{"--action-script", script}})
	c := startCounter(t, counterMiB, counterDirty)
	signal := make(chan struct{})
	px := startCutProxy(t, d.addr, cutRule{onSignal: signal})
	go func() {
		testutil.Poll(2*time.Minute, func() bool { _, err := os.Stat(flag); return err == nil })
		close(signal)
	}()
	m := runMigrate(t, p.client(), c.PID(), px.addr(), "--precopy", "off")
	t.Log(px.report())
	if !px.wasCut() {
		t.Fatalf("the proxy did not cut the connection: %s\n%s", px.report(), m.Result)
	}
	m.mustCommit(t, d)
	if len(m.rep.Warnings) == 0 {
		t.Errorf("no warning that the destination's confirmation was lost\n%s", m.Result)
	}
	migrated(t, c, d, m)
}
