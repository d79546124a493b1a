package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/testutil"
	"github.com/godwit-dev/godwit/transport"
)

// migrateMiBEnv names the environment variable with the victim's memory in
// MiB for BenchmarkMigrate (default 1024; 256 for a quick run).
const migrateMiBEnv = "GODWIT_BENCH_MIB"

// migrateModes are the ways BenchmarkMigrate migrates, with the flags of
// godwit migrate that select them. The hybrid (pre-copy rounds, then
// post-copy) is tried too: while the CLI refuses it, its row says so.
var migrateModes = []struct {
	name  string
	flags []string
}{
	{"stop-and-copy", []string{"--precopy", "off"}},
	{"pre-copy", []string{"--precopy", "auto"}},
	{"post-copy", []string{"--postcopy"}},
	{"hybrid", []string{"--precopy", "auto", "--postcopy"}},
}

// migrateRates are the victim's dirty rates: percent of its pages
// rewritten per second.
var migrateRates = []float64{1, 5, 20}

// Bounds on waits (never asserted durations).
const (
	migStartTimeout   = 2 * time.Minute  // serve to listen, the victim to fill its memory
	migMigrateTimeout = 10 * time.Minute // one godwit migrate
	migAfter          = time.Second      // the victim runs on the destination at least this long before it is read
	migSettleTimeout  = 2 * time.Minute  // ... and until it has checked all its pages there
	migStallTimeout   = 10 * time.Second // the victim's report may not stand still longer
	migStopTimeout    = 30 * time.Second // serve's namespace to be gone after its init was killed
)

// BenchmarkMigrate migrates a process that holds GODWIT_BENCH_MIB MiB
// (default 1 GiB) and keeps rewriting 1%, 5% or 20% of its pages per second
// (testdata/dirtier.c) to a godwit serve on this machine, stop-and-copy,
// pre-copy and post-copy, and puts what the program itself saw (its
// longest pause, its memory intact) next to godwit's report and the
// machine's limits measured in the same run: TLS over loopback, one stream
// of a transport session, process_vm_readv of the victim's memory, and how
// fast fresh memory becomes present.
//
// Each iteration of a sub-benchmark starts godwit serve as the init of a
// new PID and mount namespace, starts the victim, measures process_vm_readv
// on it and its pauses for a second, runs godwit migrate --json, and reads
// the victim's report once it has run for a second on the destination and
// checked all its pages there; then it kills serve's namespace. Only godwit
// migrate counts in ns/op. Run it with -benchtime 1x: an iteration takes
// seconds of setup. See README.md.
func BenchmarkMigrate(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireCommand(b, "gcc")
	testutil.RequireCommand(b, "unshare")
	mib := migrateMiB(b)
	env := &migEnv{mib: mib, cases: map[string]*migCase{}, refused: map[string]string{}}
	env.dirtier = testutil.BuildC(b, "testdata/dirtier.c")
	testutil.BuildGodwit(b)
	testutil.Subreaper(b)
	closeInherited.Do(func() { unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) })
	var err error
	if env.ownPidNS, err = pidNSInode(os.Getpid()); err != nil {
		b.Fatal(err)
	}
	env.pki = filepath.Join(b.TempDir(), "pki")
	if err := transport.GeneratePKI(env.pki, nil); err != nil {
		b.Fatalf("generate certificates: %v", err)
	}
	env.limits[0] = env.measureLimits(b)
	env.pvrBuf = prefaulted(mib << 20)
	defer func() { env.pvrBuf = nil }()

	for _, mode := range migrateModes {
		for _, rate := range migrateRates {
			name := fmt.Sprintf("%s/%gpct", mode.name, rate)
			c := &migCase{mode: mode.name, rate: rate}
			env.cases[name] = c
			env.order = append(env.order, name)
			b.Run(name, func(b *testing.B) {
				// go test may call this more than once (b.N = 1 first):
				// the figures are those of the last call.
				c.ran, c.s, c.note = true, sample{}, ""
				if r := env.refused[mode.name]; r != "" {
					// Refused at another rate: godwit does not get as far
					// as the victim.
					c.note = r
					b.Skip(r)
				}
				b.ResetTimer()
				b.StopTimer()
				for i := 0; i < b.N; i++ {
					env.migrateOnce(b, c, mode.flags)
					if c.note != "" {
						break
					}
				}
				if strings.HasPrefix(c.note, "refused") {
					env.refused[mode.name] = c.note
				}
				for _, m := range c.s.metrics {
					b.ReportMetric(c.s.mean(m), m)
				}
				if c.note != "" && !b.Failed() {
					b.Skip(c.note)
				}
			})
		}
	}
	env.limits[1] = env.measureLimits(b)
	env.print(os.Stdout)
}

// migrateMiB returns the victim's size from GODWIT_BENCH_MIB.
func migrateMiB(b *testing.B) int {
	s := os.Getenv(migrateMiBEnv)
	if s == "" {
		return 1024
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 16 || n > 1<<20 {
		b.Fatalf("%s=%q: want a number of MiB, at least 16", migrateMiBEnv, s)
	}
	return n
}

// migEnv is what the sub-benchmarks of one BenchmarkMigrate share.
type migEnv struct {
	mib      int
	dirtier  string
	pki      string
	ownPidNS uint64
	pvrBuf   []byte
	// The machine's limits, before the first sub-benchmark and after the
	// last.
	limits  [2]migLimits
	cases   map[string]*migCase
	order   []string
	refused map[string]string // by mode: godwit's refusal, once seen
}

// migCase collects one (mode, rate).
type migCase struct {
	mode string
	rate float64
	ran  bool
	s    sample // one value per iteration that migrated
	note string // why there are no figures (unsupported), or what failed
}

// fail records what failed for the summary and fails the sub-benchmark.
func (c *migCase) fail(b *testing.B, format string, args ...any) {
	b.Helper()
	msg := fmt.Sprintf(format, args...)
	if c.note == "" {
		c.note = "FAILED: " + firstLine(msg)
	}
	b.Fatal(msg)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (e *migEnv) cert(name string) string { return filepath.Join(e.pki, name) }

func (e *migEnv) serverFlags() []string {
	return []string{"--cert", e.cert(transport.ServerCertFile), "--key", e.cert(transport.ServerKeyFile), "--ca", e.cert(transport.CACertFile)}
}

func (e *migEnv) clientFlags() []string {
	return []string{"--cert", e.cert(transport.ClientCertFile), "--key", e.cert(transport.ClientKeyFile), "--ca", e.cert(transport.CACertFile)}
}

// migrateOnce is one iteration: a fresh serve and a fresh victim.
func (e *migEnv) migrateOnce(b *testing.B, c *migCase, flags []string) {
	b.Helper()
	size := e.mib << 20
	d := startMigServe(b, e)
	defer d.stop(b)

	v := testutil.StartVictim(b, testutil.VictimOptions{}, e.dirtier,
		"--mib", strconv.Itoa(e.mib), "--rate", strconv.FormatFloat(c.rate, 'g', -1, 64))
	defer func() {
		if v.Alive() {
			v.Kill(time.Minute)
		}
	}()
	pid := v.PID()
	rep := e.waitDirtier(b, c, v, "the victim to fill its memory", nil, func(r dirtierReport) bool { return r.State == "ready" })
	if rep.Len != uint64(size) {
		c.fail(b, "the victim reports %d bytes, want %d", rep.Len, size)
	}
	rss := vmRSS(b, pid)

	// The machine's reading speed, on this victim: the second pass.
	pvrRead(b, pid, rep.Addr, e.pvrBuf)
	c.s.add("pvr-MB/s", mbps(size, timeIt(func() { pvrRead(b, pid, rep.Addr, e.pvrBuf) })))

	// Its pauses when nothing happens to it, then a reset for the migration.
	rep = e.resetGaps(b, c, v, rep.Resets)
	time.Sleep(time.Second)
	base := e.waitDirtier(b, c, v, "a report", nil, func(r dirtierReport) bool { return r.Seq > rep.Seq })
	rep = e.resetGaps(b, c, v, base.Resets)

	args := append([]string{"migrate", strconv.Itoa(pid), "--to", d.addr, "--json", "--log-format", "json"}, e.clientFlags()...)
	args = append(args, flags...)
	load1 := loadAverage()
	dstBefore, err := readProcUsage(d.init)
	if err != nil {
		c.fail(b, "godwit serve (pid %d): %v", d.init, err)
	}
	start := monotonic()
	b.StartTimer()
	res, src := runMigrate(b, args)
	b.StopTimer()
	dstAfter, err := readProcUsage(d.init)
	if err != nil {
		c.fail(b, "godwit serve (pid %d) after the migration: %v; its log:\n%s", d.init, err, tail(d.stderr, 8192))
	}
	m, perr := parseMigration(res)
	b.Logf("godwit %s: exit %d, %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.ExitCode, res.Duration.Round(time.Millisecond),
		strings.TrimSpace(res.Stdout), strings.TrimSpace(res.Stderr))
	if res.ExitCode != 0 || perr != nil || m.Error != nil || !m.Committed {
		code, msg := godwitError(res, m)
		if code == "unsupported" && !m.Committed {
			c.note = fmt.Sprintf("refused (%s): %s", code, msg)
			e.checkSourceRuns(b, c, v)
			return
		}
		if perr != nil {
			msg += fmt.Sprintf(" (report: %v)", perr)
		}
		note := fmt.Sprintf("godwit migrate: exit %d, code %q: %s; committed %v, source_resumed %v", res.ExitCode, code, msg, m.Committed, m.SourceResumed)
		c.note = "FAILED: " + note
		b.Errorf("%s\nstdout: %s\nstderr: %s\nserve's log:\n%s", note, res.Stdout, res.Stderr, tail(d.stderr, 8192))
		if !m.Committed {
			e.checkSourceRuns(b, c, v)
		} else {
			e.checkWhereItRuns(b, c, v, d)
		}
		return
	}

	// The source is gone; the victim reports from the destination's PID
	// namespace, at least migAfter after godwit migrate returned, and
	// until it has checked every page there (two sweeps begun after it
	// arrived). It must be intact.
	v.WaitExit(30 * time.Second)
	if st := v.ExitState(); st != "signal: killed" {
		b.Errorf("the source ended with %q, want killed by godwit", st)
	}
	done := time.Now()
	var first *dirtierReport
	final := e.waitDirtier(b, c, v, "the victim to run a second on the destination and check all its pages", d, func(r dirtierReport) bool {
		if r.PidNS == e.ownPidNS {
			return false
		}
		if first == nil {
			first = &r
		}
		return time.Since(done) >= migAfter && r.Sweeps >= first.Sweeps+2
	})
	if final.Resets != rep.Resets {
		c.fail(b, "the victim's resets went from %d to %d: it is not the process that was migrated", rep.Resets, final.Resets)
	}
	if final.State != "ready" || final.Corrupt != 0 {
		c.fail(b, "the victim's memory is CORRUPT on the destination: %d mismatches, the first in page %d: word %#x, want %#x (report %+v)",
			final.Corrupt, final.BadPage, final.BadWord, final.WantWord, final)
	}
	b.Logf("victim: longest pause %v, %v after godwit migrate started; stalled %v in %d gaps over 10 ms; baseline longest pause %v; %d pages checked, %d rewritten",
		time.Duration(final.MaxGapNS), time.Duration(int64(final.MaxGapAtNS)-start), time.Duration(final.StalledNS), final.GapsOver10ms,
		time.Duration(base.MaxGapNS), final.Checked, final.Writes)

	c.s.add("pause-ms", float64(final.MaxGapNS)/1e6)
	c.s.add("base-pause-ms", float64(base.MaxGapNS)/1e6)
	c.s.add("stalled-ms", float64(final.StalledNS)/1e6)
	c.s.add("downtime-ms", float64(m.DowntimeNS)/1e6)
	c.s.add("frozen-ms", float64(m.FrozenNS)/1e6)
	c.s.add("restore-ms", float64(m.RestoreNS)/1e6)
	c.s.add("total-ms", float64(m.TotalNS)/1e6)
	c.s.add("sent-MiB", float64(m.Bytes)/(1<<20))
	c.s.add("sent/rss", float64(m.Bytes)/float64(rss))
	c.s.add("rss-MiB", float64(rss)/(1<<20))
	c.s.add("rounds", float64(len(m.Rounds)))
	c.s.add("pages-again", float64(m.PagesAgain))
	c.s.add("faults", float64(m.PostcopyFaults))
	c.s.add("src-cpu-ms", ms(src.cpu))
	c.s.add("dst-cpu-ms", ms(dstAfter.cpu-dstBefore.cpu))
	c.s.add("load1", load1)
	c.s.add("intact", 1)
}

// procUsage is the CPU time of a process.
type procUsage struct{ cpu time.Duration }

// runMigrate runs godwit with args, its output through files, and returns
// what it did and its own CPU time.
func runMigrate(b *testing.B, args []string) (testutil.Result, procUsage) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), migMigrateTimeout)
	defer cancel()
	cmd := testutil.GodwitCommand(b, ctx, testutil.RunOptions{}, args...)
	out := testutil.CaptureOutput(b, cmd)
	start := time.Now()
	err := cmd.Run()
	r := testutil.Result{Args: args, Duration: time.Since(start)}
	if cmd.ProcessState == nil {
		b.Fatalf("run godwit %v: %v", args, err)
	}
	if ctx.Err() != nil {
		b.Errorf("godwit %v did not finish within %v and was killed", args, migMigrateTimeout)
	}
	r.ExitCode = cmd.ProcessState.ExitCode()
	r.Stdout, r.Stderr = out.Read()
	var u procUsage
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r, u
}

// readProcUsage reads the CPU time of pid (all its threads) from
// /proc/PID/stat.
func readProcUsage(pid int) (procUsage, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procUsage{}, err
	}
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data)[i+1:])
	// After the comm: state(0) ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime(11) stime(12).
	if i < 0 || len(f) < 13 {
		return procUsage{}, fmt.Errorf("malformed /proc/%d/stat: %q", pid, data)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procUsage{}, fmt.Errorf("malformed /proc/%d/stat: %q", pid, data)
	}
	// Clock ticks: USER_HZ is 100 on every Linux architecture godwit runs on.
	return procUsage{cpu: time.Duration(ut+st) * 10 * time.Millisecond}, nil
}

// loadAverage returns the 1-minute load average: other work on the machine
// makes every figure worse.
func loadAverage() float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// checkSourceRuns checks, after a migration that did not commit, that the
// victim runs on here with its memory intact, and notes it.
func (e *migEnv) checkSourceRuns(b *testing.B, c *migCase, v *testutil.Victim) {
	b.Helper()
	if !v.Alive() {
		c.note += "; the source is GONE"
		b.Errorf("the source (pid %d) is gone after a migration that did not commit (%s); stderr: %s", v.PID(), v.ExitState(), v.Stderr())
		return
	}
	r, _ := readDirtier(v.ReportPath)
	after := e.waitDirtier(b, c, v, "the source to go on", nil, func(n dirtierReport) bool { return n.Seq > r.Seq+2 })
	if after.Corrupt != 0 {
		c.note += "; the source's memory is CORRUPT"
		b.Errorf("the source's memory is corrupt after a migration that did not commit: %+v", after)
	}
}

// checkWhereItRuns notes, after a migration that committed but reported an
// error, whether the victim runs on anyway: here, on the destination (and
// whether its memory is intact there), or nowhere.
func (e *migEnv) checkWhereItRuns(b *testing.B, c *migCase, v *testutil.Victim, d *migServe) {
	b.Helper()
	if v.Alive() {
		c.note += "; the source process still runs"
		b.Errorf("the source process (pid %d) still runs after a migration that committed", v.PID())
		return
	}
	var first, last dirtierReport
	testutil.Poll(15*time.Second, func() bool {
		r, err := readDirtier(v.ReportPath)
		if err != nil || r.PidNS == e.ownPidNS {
			return false
		}
		if first.Seq == 0 {
			first = r
		}
		last = r
		return r.Corrupt != 0 || r.Sweeps >= first.Sweeps+2
	})
	switch {
	case last.Seq == 0 || last.Seq == first.Seq:
		c.note += "; the victim does not run on the destination either"
	case last.Corrupt != 0:
		c.note += fmt.Sprintf("; the victim runs on the destination nonetheless, its memory CORRUPT (page %d)", last.BadPage)
	case last.Sweeps >= first.Sweeps+2:
		c.note += fmt.Sprintf("; the victim runs on the destination nonetheless, its memory intact after a full check (longest pause %v)",
			time.Duration(last.MaxGapNS).Round(time.Millisecond))
	default:
		c.note += fmt.Sprintf("; the victim runs on the destination nonetheless, no mismatch in %d pages checked there",
			last.Checked-first.Checked)
	}
	b.Log(c.note)
}

// resetGaps asks the victim to reset its gap figures and waits until it
// has.
func (e *migEnv) resetGaps(b *testing.B, c *migCase, v *testutil.Victim, resets uint64) dirtierReport {
	b.Helper()
	if err := v.Signal(unix.SIGUSR1); err != nil {
		c.fail(b, "signal the victim: %v", err)
	}
	return e.waitDirtier(b, c, v, "the victim to reset its gap figures", nil, func(r dirtierReport) bool { return r.Resets > resets })
}

// waitDirtier waits until the victim's report satisfies cond. It fails when
// the memory is corrupt, when the report stands still for migStallTimeout,
// or, before a migration (d nil), when the victim has exited.
func (e *migEnv) waitDirtier(b *testing.B, c *migCase, v *testutil.Victim, what string, d *migServe, cond func(dirtierReport) bool) dirtierReport {
	b.Helper()
	var r dirtierReport
	var lastSeq uint64
	moved := time.Now()
	timeout := migStartTimeout
	if d != nil {
		timeout = migSettleTimeout
	}
	var why string
	ok := testutil.Poll(timeout, func() bool {
		n, err := readDirtier(v.ReportPath)
		if err != nil {
			why = err.Error()
		} else {
			r = n
			if r.Seq != lastSeq {
				lastSeq, moved = r.Seq, time.Now()
			}
			if r.Corrupt != 0 || r.State == "CORRUPT" {
				return true
			}
			if cond(r) {
				return true
			}
		}
		if d == nil && !v.Alive() {
			c.fail(b, "the victim exited (%s) while waiting for %s; stderr: %s", v.ExitState(), what, v.Stderr())
		}
		if d != nil && !d.alive() {
			c.fail(b, "godwit serve is gone while waiting for %s; its log:\n%s", what, tail(d.stderr, 8192))
		}
		if r.State == "ready" && time.Since(moved) > migStallTimeout {
			why = fmt.Sprintf("its report has not changed for %v (last %+v)", migStallTimeout, r)
			return true
		}
		return false
	})
	if r.Corrupt != 0 || r.State == "CORRUPT" {
		c.fail(b, "the victim's memory is CORRUPT while waiting for %s: %d mismatches, the first in page %d: word %#x, want %#x",
			what, r.Corrupt, r.BadPage, r.BadWord, r.WantWord)
	}
	if !ok || strings.HasPrefix(why, "its report") {
		msg := fmt.Sprintf("timed out waiting for %s: %s", what, why)
		if d != nil {
			msg += "\nserve's log:\n" + tail(d.stderr, 8192)
		}
		c.fail(b, "%s", msg)
	}
	return r
}

// dirtierReport is the victim's report (see testdata/dirtier.c).
type dirtierReport struct {
	Seq          uint64 `json:"seq"`
	State        string `json:"state"`
	PID          int    `json:"pid"`
	PidNS        uint64 `json:"pid_ns"`
	NowNS        uint64 `json:"now_ns"`
	Addr         uint64 `json:"addr"`
	Len          uint64 `json:"len"`
	Iters        uint64 `json:"iters"`
	MaxGapNS     uint64 `json:"max_gap_ns"`
	MaxGapAtNS   uint64 `json:"max_gap_at_ns"`
	StalledNS    uint64 `json:"stalled_ns"`
	GapsOver10ms uint64 `json:"gaps_over_10ms"`
	Resets       uint64 `json:"resets"`
	Sweeps       uint64 `json:"sweeps"`
	Checked      uint64 `json:"checked"`
	Writes       uint64 `json:"writes"`
	Corrupt      uint64 `json:"corrupt"`
	BadPage      int64  `json:"bad_page"`
	BadWord      uint64 `json:"bad_word"`
	WantWord     uint64 `json:"want_word"`
	VSum         uint64 `json:"vsum"`
	SeqEnd       uint64 `json:"seq_end"`
}

// readDirtier reads the victim's report; it fails for a report caught while
// it was written, which the caller reads again.
func readDirtier(path string) (dirtierReport, error) {
	var r dirtierReport
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(string(data))), &r); err != nil {
		return r, fmt.Errorf("report %q: %v", data, err)
	}
	if r.Seq == 0 || r.Seq != r.SeqEnd {
		return r, fmt.Errorf("report torn: seq %d, seq_end %d", r.Seq, r.SeqEnd)
	}
	return r, nil
}

// migReport is what godwit migrate --json prints.
type migReport struct {
	PID    int    `json:"pid"`
	Mode   string `json:"mode"`
	Rounds []struct {
		Final bool `json:"final"`
	} `json:"rounds"`
	Bytes          int64          `json:"bytes"`
	PagesAgain     uint64         `json:"pages_sent_again"`
	TotalNS        int64          `json:"total_ns"`
	DowntimeNS     int64          `json:"downtime_ns"`
	FrozenNS       int64          `json:"frozen_ns"`
	RestoreNS      int64          `json:"restore_ns"`
	PostcopyFaults uint64         `json:"postcopy_faults"`
	Committed      bool           `json:"committed"`
	SourceResumed  bool           `json:"source_resumed"`
	Warnings       []string       `json:"warnings"`
	Error          map[string]any `json:"error"`
}

// parseMigration parses the one JSON line godwit migrate --json prints (none
// when it failed before migrating).
func parseMigration(r testutil.Result) (migReport, error) {
	var m migReport
	out := strings.TrimSpace(r.Stdout)
	if out == "" {
		return m, fmt.Errorf("no report on stdout")
	}
	if strings.Contains(out, "\n") {
		return m, fmt.Errorf("more than one line on stdout")
	}
	return m, json.Unmarshal([]byte(out), &m)
}

// godwitError returns the code and the text of godwit's error: the JSON
// object on stderr (--log-format json), else the report's error.
func godwitError(r testutil.Result, m migReport) (code, msg string) {
	var e testutil.ErrorJSON
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.Stderr)), &e); err == nil && e.Code != "" {
		return e.Code, e.Error
	}
	code, _ = m.Error["code"].(string)
	msg, _ = m.Error["msg"].(string)
	if msg == "" {
		msg = strings.TrimSpace(r.Stderr)
	}
	return code, msg
}

// migServe is godwit serve running as the init of a new PID and mount
// namespace (with its own /proc), through unshare --kill-child.
type migServe struct {
	cmd            *exec.Cmd
	exited         chan struct{}
	init           int // serve, as this process sees it
	addr           string
	stdout, stderr string
	stopped        bool
}

// startMigServe starts serve and waits until it listens.
func startMigServe(b *testing.B, e *migEnv) *migServe {
	b.Helper()
	dir := b.TempDir()
	d := &migServe{exited: make(chan struct{}), stdout: filepath.Join(dir, "serve.out"), stderr: filepath.Join(dir, "serve.err")}
	out, err := os.Create(d.stdout)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(d.stderr)
	if err != nil {
		b.Fatal(err)
	}
	defer errf.Close()
	argv := append([]string{"--pid", "--fork", "--mount", "--mount-proc", "--kill-child",
		testutil.BuildGodwit(b), "serve", "--listen", "127.0.0.1:0"}, e.serverFlags()...)
	d.cmd = exec.Command("unshare", argv...)
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = out, errf // stdin: /dev/null
	if err := d.cmd.Start(); err != nil {
		b.Fatalf("start unshare %v: %v", argv, err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	b.Cleanup(func() { d.stop(b) })
	u := d.cmd.Process.Pid
	testutil.WaitFor(b, migStartTimeout, func() bool {
		if !d.alive() {
			b.Fatalf("unshare ... godwit serve exited (%v); stderr:\n%s", d.cmd.ProcessState, tail(d.stderr, 4096))
		}
		if d.init == 0 {
			kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", u, u))
			if f := strings.Fields(string(kids)); err == nil && len(f) == 1 {
				d.init, _ = strconv.Atoi(f[0])
			}
		}
		o, _ := os.ReadFile(d.stdout)
		for _, l := range strings.Split(string(o), "\n") {
			if a, ok := strings.CutPrefix(l, "listening on "); ok {
				d.addr = strings.TrimSpace(a)
			}
		}
		return d.init != 0 && d.addr != ""
	}, "godwit serve to print \"listening on ADDR\"")
	return d
}

func (d *migServe) alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop kills serve, the init of its PID namespace, which ends every process
// in it, and waits for unshare to exit.
func (d *migServe) stop(b *testing.B) {
	if d.stopped {
		return
	}
	d.stopped = true
	if d.init > 0 {
		unix.Kill(d.init, unix.SIGKILL)
	}
	select {
	case <-d.exited:
	case <-time.After(migStopTimeout):
		d.cmd.Process.Kill()
		select {
		case <-d.exited:
		case <-time.After(migStopTimeout):
			b.Errorf("unshare (pid %d) did not exit after its child, godwit serve, was killed", d.cmd.Process.Pid)
		}
	}
}

// tail returns the end of a file, for failure messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(data) > n {
		data = append([]byte("..."), data[len(data)-n:]...)
	}
	return string(data)
}

func pidNSInode(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", pid), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// monotonic is CLOCK_MONOTONIC in nanoseconds, the victim's clock.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// migLimits are the machine's limits, in MB/s: one TLS 1.3 connection and
// one stream of a transport session over loopback, best of two passes;
// fresh anonymous memory made present by touching each 4 KiB page (a page
// fault each) and by MADV_POPULATE_WRITE.
type migLimits struct {
	tlsMBps, sessMBps       float64
	touchMBps, populateMBps float64
	// sessCPU is the CPU time of both ends of the session, per MiB.
	sessCPU time.Duration
	load1   float64
}

// measureLimits measures the machine's limits.
func (e *migEnv) measureLimits(b *testing.B) migLimits {
	b.Helper()
	l := migLimits{load1: loadAverage()}
	e.measureLinks(b, &l)
	e.measureFaults(b, &l)
	return l
}

// measureLinks measures what a migration's bytes can go through on this
// machine: one TLS 1.3 connection over loopback (crypto/tls, the
// certificates of the benchmark) and one stream of a transport session,
// moving as many bytes as the victim holds (at least 256 MiB), best of two
// passes each.
func (e *migEnv) measureLinks(b *testing.B, l *migLimits) {
	b.Helper()
	n := int64(max(e.mib, 256)) << 20
	srv, err := transport.ServerConfig(e.cert(transport.ServerCertFile), e.cert(transport.ServerKeyFile), e.cert(transport.CACertFile))
	if err != nil {
		b.Fatal(err)
	}
	cli, err := transport.ClientConfig(e.cert(transport.ClientCertFile), e.cert(transport.ClientKeyFile), e.cert(transport.CACertFile), "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	for range 2 {
		d, err := tlsPass(srv, cli, n)
		if err != nil {
			b.Fatalf("TLS over loopback: %v", err)
		}
		l.tlsMBps = max(l.tlsMBps, mbps(int(n), d))
		cpu := selfCPU()
		d, err = sessionPass(srv, cli, n)
		if err != nil {
			b.Fatalf("transport session over loopback: %v", err)
		}
		perMiB := (selfCPU() - cpu) / time.Duration(n>>20)
		if l.sessCPU == 0 || perMiB < l.sessCPU {
			l.sessCPU = perMiB
		}
		l.sessMBps = max(l.sessMBps, mbps(int(n), d))
	}
}

// measureFaults measures how fast fresh anonymous memory (4 KiB pages, no
// transparent huge pages) becomes present in this process: written one
// byte per page, a page fault each, as a program touches memory; and with
// MADV_POPULATE_WRITE, the kernel's own loop. On virtual machines the
// first can be far slower (see README.md).
func (e *migEnv) measureFaults(b *testing.B, l *migLimits) {
	b.Helper()
	n := min(e.mib, 256) << 20
	pass := func(populate bool) time.Duration {
		m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			b.Fatalf("mmap %d bytes: %v", n, err)
		}
		defer unix.Munmap(m)
		if err := unix.Madvise(m, unix.MADV_NOHUGEPAGE); err != nil {
			b.Fatalf("madvise(MADV_NOHUGEPAGE): %v", err)
		}
		return timeIt(func() {
			if populate {
				if err := unix.Madvise(m, unix.MADV_POPULATE_WRITE); err != nil {
					b.Fatalf("madvise(MADV_POPULATE_WRITE): %v", err)
				}
				return
			}
			for i := 0; i < n; i += 4096 {
				m[i] = 1
			}
		})
	}
	l.touchMBps = mbps(n, pass(false))
	l.populateMBps = mbps(n, pass(true))
}

// selfCPU is the CPU time of this process, all threads.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tlsPass sends n bytes over one TLS connection on 127.0.0.1 and returns
// the time until the other side has read them all.
func tlsPass(srv, cli *tls.Config, n int64) (time.Duration, error) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan drained, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- drained{err: err}
			return
		}
		defer c.Close()
		got <- drainAll(c)
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := pumpBytes(c, n); err != nil {
		return 0, err
	}
	if err := c.CloseWrite(); err != nil {
		return 0, err
	}
	return waitDrained(got, n, start)
}

// sessionPass sends n bytes on one stream of a transport session on
// 127.0.0.1, as a migration's page streams go.
func sessionPass(srv, cli *tls.Config, n int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ln, err := transport.Listen("127.0.0.1:0", srv)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan drained, 1)
	go func() {
		s, err := ln.Accept(ctx)
		if err != nil {
			got <- drained{err: err}
			return
		}
		defer s.Close()
		st, err := s.Accept(ctx)
		if err != nil {
			got <- drained{err: err}
			return
		}
		defer st.Close()
		got <- drainAll(st)
	}()
	s, err := transport.Dial(ctx, ln.Addr().String(), cli)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	st, err := s.Open(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := pumpBytes(st, n); err != nil {
		return 0, err
	}
	if err := st.Close(); err != nil {
		return 0, err
	}
	return waitDrained(got, n, start)
}

type drained struct {
	n   int64
	err error
}

func drainAll(r io.Reader) drained {
	n, err := io.CopyBuffer(io.Discard, r, make([]byte, 256<<10))
	return drained{n, err}
}

func waitDrained(got <-chan drained, n int64, start time.Time) (time.Duration, error) {
	r := <-got
	d := time.Since(start)
	if r.err != nil {
		return 0, r.err
	}
	if r.n != n {
		return 0, fmt.Errorf("received %d bytes, sent %d", r.n, n)
	}
	return d, nil
}

// pumpBytes writes n bytes in 1 MiB writes.
func pumpBytes(w net.Conn, n int64) error {
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + 1)
	}
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// print writes the summary: one row per (mode, rate) and the limits.
func (e *migEnv) print(w io.Writer) {
	ran := false
	for _, c := range e.cases {
		ran = ran || c.ran
	}
	if !ran {
		return
	}
	fmt.Fprintf(w, "\ngodwit migrate summary: %d MiB victim rewriting a share of its pages per second (n: iterations that migrated; means over them; MB = 10^6 bytes)\n\n", e.mib)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tdirty/s\tn\tpause-ms\tbase-ms\tstalled-ms\tdowntime-ms\tfrozen-ms\trestore-ms\ttotal-ms\tsent-MiB\tsent/rss\trounds\tagain\tfaults\tintact\tpvr-MB/s\t")
	var notes []string
	var pvrLo, pvrHi float64
	for _, name := range e.order {
		c := e.cases[name]
		if !c.ran {
			continue
		}
		row := []string{c.mode, fmt.Sprintf("%g%%", c.rate), strconv.Itoa(len(c.s.values["intact"]))}
		if len(c.s.values["intact"]) == 0 {
			note := c.note
			if note == "" {
				note = "no result"
			}
			notes = append(notes, fmt.Sprintf("%s at %g%%/s: %s", c.mode, c.rate, note))
			row = append(row, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "no: see below")
		} else {
			for _, m := range []string{"pause-ms", "base-pause-ms", "stalled-ms", "downtime-ms", "frozen-ms", "restore-ms", "total-ms", "sent-MiB", "sent/rss", "rounds", "pages-again", "faults"} {
				row = append(row, num(c.s.mean(m)))
			}
			intact := "yes"
			if c.note != "" {
				intact = "see below"
				notes = append(notes, fmt.Sprintf("%s at %g%%/s: %s", c.mode, c.rate, c.note))
			}
			row = append(row, intact)
		}
		if vs := c.s.values["pvr-MB/s"]; len(vs) > 0 {
			row = append(row, num(c.s.mean("pvr-MB/s")))
			lo, hi := c.s.minMax("pvr-MB/s")
			if pvrLo == 0 || lo < pvrLo {
				pvrLo = lo
			}
			pvrHi = max(pvrHi, hi)
		} else {
			row = append(row, "-")
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, "  "+n)
	}

	fmt.Fprintf(w, "\nCPU time of godwit migrate (src) and godwit serve (dst) during the migration, per MiB sent; 1-minute load average before it\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tdirty/s\tsrc-cpu-ms\tdst-cpu-ms\tsrc-ms/MiB\tdst-ms/MiB\tload1\t")
	for _, name := range e.order {
		c := e.cases[name]
		if !c.ran || len(c.s.values["intact"]) == 0 {
			continue
		}
		sent := c.s.mean("sent-MiB")
		fmt.Fprintf(tw, "%s\t%g%%\t%s\t%s\t%s\t%s\t%s\t\n", c.mode, c.rate, num(c.s.mean("src-cpu-ms")), num(c.s.mean("dst-cpu-ms")),
			num(c.s.mean("src-cpu-ms")/sent), num(c.s.mean("dst-cpu-ms")/sent), num(c.s.mean("load1")))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nlimits of this machine, before the first and after the last sub-benchmark\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "limit\tbefore\tafter\t")
	for _, r := range []struct {
		name string
		f    func(l migLimits) float64
	}{
		{"TLS 1.3 over loopback, MB/s", func(l migLimits) float64 { return l.tlsMBps }},
		{"one transport session stream, MB/s", func(l migLimits) float64 { return l.sessMBps }},
		{"  its CPU time (both ends), ms per MiB", func(l migLimits) float64 { return ms(l.sessCPU) }},
		{"fresh memory, touching each 4 KiB page, MB/s", func(l migLimits) float64 { return l.touchMBps }},
		{"fresh memory, MADV_POPULATE_WRITE, MB/s", func(l migLimits) float64 { return l.populateMBps }},
		{"1-minute load average", func(l migLimits) float64 { return l.load1 }},
	} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", r.name, num(r.f(e.limits[0])), num(r.f(e.limits[1])))
	}
	tw.Flush()
	fmt.Fprintf(w, "process_vm_readv of the victim (second pass): %s-%s MB/s over the sub-benchmarks\n", num(pvrLo), num(pvrHi))
	if slow := min(max(e.limits[0].sessMBps, e.limits[1].sessMBps), pvrHi); slow > 0 {
		fmt.Fprintf(w, "moving %d MiB once at the slower of the best session and process_vm_readv figures: %s ms\n",
			e.mib, num(float64(e.mib<<20)/1e6/slow*1e3))
	}
	fmt.Fprintln(w, strings.Repeat("-", 60))
}
