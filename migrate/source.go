package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/klauspost/compress/zstd"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-dev/godwit/checkpoint"
	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
)

// Session is one connection to the other side, carrying streams: what
// package transport provides.
type Session interface {
	Open(ctx context.Context) (net.Conn, error)
	Accept(ctx context.Context) (net.Conn, error)
	Close() error
}

// Precopy values for Options.Precopy besides a number of rounds.
const (
	PrecopyOff  = 0
	PrecopyAuto = -1
)

// Options tune a migration.
type Options struct {
	// Precopy is the number of pre-copy rounds before the final freeze:
	// PrecopyOff (stop and copy), a fixed number, or PrecopyAuto (rounds
	// until the dirty set is small enough for the downtime budget or stops
	// shrinking, at most MaxRounds).
	Precopy int
	// Budget is the downtime PrecopyAuto aims at; zero means 50 ms.
	Budget time.Duration
	// TCP is what to do with established TCP connections: "" (refuse the
	// migration, naming them), "established" or "close".
	TCP string
	// ActionScript, when set, is run at pre-dump, network-lock, post-dump
	// and network-unlock (on failure) with GODWIT_ACTION set.
	ActionScript string
	// HookTimeout bounds how long a process that asked to be told about
	// its migration (GODWIT_NOTIFY) may take to acknowledge; zero means 10 s.
	HookTimeout time.Duration
	// ReadyTimeout bounds how long the frozen source waits for the
	// destination to rebuild the tree; zero means 2 minutes.
	ReadyTimeout time.Duration
	// Postcopy resumes the tree on the destination before its anonymous
	// memory has arrived; the pages follow in the background and on
	// demand. With Precopy rounds first it is the hybrid: only the pages
	// written since the last round are left behind.
	Postcopy bool
	// Compress compresses the pre-copy rounds and the image with zstd
	// (fastest level; zero pages never travel anyway). Post-copy pages are
	// not compressed: they are waited for.
	Compress bool
	// Progress, when set, is called four times a second while the
	// migration runs, and once after every round.
	Progress func(Progress)
}

// Progress is a snapshot of a migration under way.
type Progress struct {
	Phase   string        // "round N", "final", "post-copy"
	Sent    int64         // bytes this phase has sent so far
	Expect  int64         // bytes this phase is expected to send; 0: unknown
	Total   int64         // bytes sent since the start
	Rate    float64       // bytes per second in this phase
	ETA     time.Duration // to the end of this phase; 0: unknown
	Elapsed time.Duration // since the start
	Done    *Round        // the round just finished, on the call after it
}

// MaxRounds bounds automatic pre-copy.
const MaxRounds = 10

// Round describes one pre-copy round, or the final one.
type Round struct {
	N        int           `json:"round"`
	Pages    uint64        `json:"pages"`      // pages sent with data
	Zero     uint64        `json:"zero_pages"` // pages sent as zero runs
	Bytes    int64         `json:"bytes"`      // bytes written to the connection
	Duration time.Duration `json:"duration_ns"`
	Final    bool          `json:"final,omitempty"`
}

// Report describes a finished (or failed) migration.
type Report struct {
	PID         int           `json:"pid"`      // the source root
	DestPID     int           `json:"dest_pid"` // the root as the destination sees it
	Mode        string        `json:"mode"`
	Rounds      []Round       `json:"rounds"`
	Bytes       int64         `json:"bytes"` // everything sent
	PagesTwice  uint64        `json:"pages_sent_again"`
	Total       time.Duration `json:"total_ns"`
	Downtime    time.Duration `json:"downtime_ns"` // freeze to the destination's resume
	Frozen      time.Duration `json:"frozen_ns"`   // freeze to kill of the source
	RestoreTime time.Duration `json:"restore_ns"`  // the destination's restore
	Committed   bool          `json:"committed"`
	// PostcopyFaults is how many pages the destination asked for.
	PostcopyFaults uint64   `json:"postcopy_faults,omitempty"`
	Warnings       []string `json:"warnings,omitempty"`
	SourceResume   bool     `json:"source_resumed,omitempty"` // the migration failed and the source runs on
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// source is the sending side of one migration.
type source struct {
	pid   int
	opts  Options
	sess  Session
	ctl   net.Conn
	msgs  chan *message
	rerr  chan error // the control stream's read error, once
	sent  atomic.Int64
	rep   *Report
	track map[int]tracker
	seen  map[int]map[uint64]bool // pages sent so far, to count those sent again

	start   time.Time
	pmu     sync.Mutex // guards the phase fields
	phase   string
	pStart  time.Time
	pBase   int64
	pExpect atomic.Int64
}

// setPhase starts a phase of the progress display.
func (s *source) setPhase(name string) {
	s.pmu.Lock()
	s.phase, s.pStart, s.pBase = name, time.Now(), s.sent.Load()
	s.pmu.Unlock()
	s.pExpect.Store(0)
}

// progress is the current snapshot.
func (s *source) progress() Progress {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	total := s.sent.Load()
	p := Progress{Phase: s.phase, Sent: total - s.pBase, Expect: s.pExpect.Load(), Total: total, Elapsed: time.Since(s.start)}
	if d := time.Since(s.pStart).Seconds(); d > 0 {
		p.Rate = float64(p.Sent) / d
	}
	if p.Rate > 0 && p.Expect > p.Sent {
		p.ETA = time.Duration(float64(p.Expect-p.Sent) / p.Rate * float64(time.Second))
	}
	return p
}

// connError wraps an error of the connection.
func connError(op string, err error) error {
	if fe := new(fault.Error); errors.As(err, &fe) {
		return err
	}
	return &fault.Error{Code: fault.CodeConnection, Op: op, Err: err,
		Remedy: "check the network and that godwit serve runs on the destination"}
}

// Migrate moves the tree of pid to the other side of sess. On any failure
// before the destination confirms that it has rebuilt the tree, the tree
// runs on here as before and Migrate returns the error with a report that
// says so.
func Migrate(ctx context.Context, pid int, sess Session, opts Options) (*Report, error) {
	start := time.Now()
	if opts.Budget == 0 {
		opts.Budget = 50 * time.Millisecond
	}
	if opts.HookTimeout == 0 {
		opts.HookTimeout = 10 * time.Second
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	s := &source{pid: pid, opts: opts, sess: sess, rep: &Report{PID: pid, Mode: "stop-and-copy"},
		msgs: make(chan *message, 16), rerr: make(chan error, 1), track: map[int]tracker{}, seen: map[int]map[uint64]bool{}}
	defer s.closeTrackers()
	s.start = start
	s.setPhase("connect")
	if opts.Progress != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					opts.Progress(s.progress())
				}
			}
		}()
	}
	err := s.run(ctx)
	if !s.rep.Committed {
		err = s.explain(err)
	}
	s.rep.Total = time.Since(start)
	s.rep.Bytes = s.sent.Load()
	if err != nil && !s.rep.Committed {
		s.rep.SourceResume = true
	}
	return s.rep, err
}

func (s *source) closeTrackers() {
	for pid, t := range s.track {
		t.Close()
		delete(s.track, pid)
	}
}

func (s *source) run(ctx context.Context) error {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", s.pid)); err != nil {
		return &fault.Error{Code: fault.CodeNoProcess, Op: "migrate", PID: s.pid, Msg: "no such process"}
	}
	var err error
	if s.ctl, err = s.sess.Open(ctx); err != nil {
		return connError("open the control stream", err)
	}
	go s.readControl()
	host, _ := os.Hostname()
	if err := s.send(&message{Type: msgHello, Version: Version, PID: s.pid, Host: host, TCP: s.opts.TCP, Postcopy: s.opts.Postcopy, Compress: s.opts.Compress}); err != nil {
		return err
	}
	m, err := s.expect(ctx, 30*time.Second, msgWelcome)
	if err != nil {
		return err
	}
	_ = m
	if err := notifyApp(ctx, s.pid, "pre-migrate", s.opts.HookTimeout); err != nil {
		return err
	}
	if err := runAction(ctx, s.opts.ActionScript, "pre-dump", s.pid); err != nil {
		return err
	}
	if s.opts.Precopy != PrecopyOff {
		if err := s.precopy(ctx); err != nil {
			return err
		}
	}
	return s.final(ctx)
}

// send writes a control message.
func (s *source) send(m *message) error {
	if err := writeMessage(s.ctl, m); err != nil {
		return connError("send "+m.Type, err)
	}
	return nil
}

// readControl passes the destination's messages to s.msgs until the
// control stream ends.
func (s *source) readControl() {
	for {
		m, err := readMessage(s.ctl)
		if err != nil {
			s.rerr <- err
			close(s.msgs)
			return
		}
		s.msgs <- m
	}
}

// expect waits for a message of type typ; an error message from the
// destination becomes an error.
func (s *source) expect(ctx context.Context, timeout time.Duration, typ string) (*message, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			err := <-s.rerr
			s.rerr <- err
			return nil, connError("wait for "+typ, err)
		}
		return s.check(m, typ)
	case <-t.C:
		return nil, &fault.Error{Code: fault.CodeConnection, Op: "wait for " + typ, Msg: fmt.Sprintf("no answer from the destination within %v", timeout)}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pending returns an error the destination has reported meanwhile, if any.
func (s *source) pending() error {
	select {
	case m, ok := <-s.msgs:
		if !ok {
			err := <-s.rerr
			s.rerr <- err
			return connError("migrate", err)
		}
		_, err := s.check(m, "")
		if err == nil {
			err = fmt.Errorf("%w: unexpected %q from the destination", errProtocol, m.Type)
		}
		return err
	default:
		return nil
	}
}

func (s *source) check(m *message, typ string) (*message, error) {
	if m.Type == msgError {
		return nil, destError(m.Error)
	}
	if m.Type != typ {
		return nil, fmt.Errorf("%w: %q from the destination, want %q", errProtocol, m.Type, typ)
	}
	return m, nil
}

// destError is the error the destination reported, with its code (a pid
// in use stays pid-in-use).
func destError(e *fault.Error) error {
	if e == nil {
		e = &fault.Error{Code: fault.CodeMigration, Msg: "the destination failed"}
	}
	remedy := "the process runs on here"
	if e.Remedy != "" {
		remedy += "; " + e.Remedy
	}
	return &fault.Error{Code: e.Code, Op: "destination", Msg: e.Msg, PID: e.PID, Path: e.Path, Addr: e.Addr, Remedy: remedy}
}

// explain returns, for an error met while talking to the destination,
// the destination's own error when it sent one: it ends the session right
// after, which the source may notice first, as a failed write. A failed
// write on a session that ended is a lost connection.
func (s *source) explain(err error) error {
	if err == nil {
		return nil
	}
	switch fault.CodeOf(err) {
	case fault.CodeIO, fault.CodeConnection:
	default:
		return err
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				if fault.CodeOf(err) == fault.CodeIO {
					return &fault.Error{Code: fault.CodeConnection, Op: "migrate", Msg: "connection lost", Err: err,
						Remedy: "check the network and that godwit serve runs on the destination"}
				}
				return err
			}
			if m.Type == msgError {
				return destError(m.Error)
			}
		case <-t.C:
			return err
		}
	}
}

// sendPages sends the dirty pages of every tracked process on a new stream.
func (s *source) round(ctx context.Context, n int, dirty func(pid int) ([]checkpoint.PageRange, bool, error)) (Round, error) {
	start := time.Now()
	before := s.sent.Load()
	r := Round{N: n}
	if err := s.send(&message{Type: msgRound, Round: n}); err != nil {
		return r, err
	}
	st, err := s.sess.Open(ctx)
	if err != nil {
		return r, connError("open a page stream", err)
	}
	defer st.Close()
	enc := s.compressor(countWriter{w: st, n: &s.sent})
	w := bufio.NewWriterSize(enc, 4<<20)
	hdr := make([]byte, frameHeader)
	s.setPhase(fmt.Sprintf("round %d", n))
	for pid := range s.track {
		ranges, ok, err := dirty(pid)
		if err != nil {
			return r, err
		}
		for _, rg := range ranges {
			s.pExpect.Add(int64(rg.Pages) * (image.PageSize + frameHeader/image.MaxPagesPerRecord))
		}
		if !ok {
			continue
		}
		seen := s.seen[pid]
		if seen == nil {
			seen = map[uint64]bool{}
			s.seen[pid] = seen
		}
		_, err = checkpoint.ReadDirty(pid, ranges, func(addr uint64, count int, data []byte) error {
			for i := 0; i < count; i += image.MaxPagesPerRecord {
				c := min(count-i, image.MaxPagesPerRecord)
				f := pageFrame{pid: pid, addr: addr + uint64(i)*image.PageSize, count: c, zero: data == nil}
				if data != nil {
					f.data = data[i*image.PageSize : (i+c)*image.PageSize]
					r.Pages += uint64(c)
				} else {
					r.Zero += uint64(c)
				}
				for p := 0; p < c; p++ {
					a := f.addr + uint64(p)*image.PageSize
					if seen[a] {
						s.rep.PagesTwice++
					}
					seen[a] = true
				}
				if err := writeFrame(w, hdr, &f); err != nil {
					return connError("send pages", err)
				}
			}
			return nil
		})
		if err != nil {
			return r, err
		}
	}
	if err := w.Flush(); err != nil {
		return r, connError("send pages", err)
	}
	if err := enc.Close(); err != nil {
		return r, connError("send pages", err)
	}
	if err := st.Close(); err != nil {
		return r, connError("send pages", err)
	}
	r.Bytes = s.sent.Load() - before
	r.Duration = time.Since(start)
	return r, s.pending()
}

// precopy sends the memory of the running tree in rounds, each carrying
// what was written since the previous one.
func (s *source) precopy(ctx context.Context) error {
	pids, err := checkpoint.Tree(s.pid)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		t, err := newTracker(pid)
		if err != nil {
			if s.opts.Precopy > 0 {
				return err
			}
			s.rep.Warnings = append(s.rep.Warnings, fmt.Sprintf("pre-copy off: %v", err))
			s.closeTrackers()
			return nil
		}
		s.track[pid] = t
	}
	s.rep.Mode = "pre-copy"
	maxRounds := s.opts.Precopy
	if maxRounds == PrecopyAuto {
		maxRounds = MaxRounds
	}
	var prev uint64
	for n := 1; n <= maxRounds; n++ {
		r, err := s.round(ctx, n, func(pid int) ([]checkpoint.PageRange, bool, error) {
			d, err := s.track[pid].Dirty()
			return d, true, err
		})
		if err != nil {
			return err
		}
		s.rep.Rounds = append(s.rep.Rounds, r)
		if s.opts.Progress != nil {
			p := s.progress()
			p.Done = &r
			s.opts.Progress(p)
		}
		if s.opts.Precopy != PrecopyAuto || n == 1 {
			prev = r.Pages + r.Zero
			continue
		}
		// Stop when what is left fits the downtime budget at the rate of
		// this round, or when the dirty set stops shrinking.
		rate := float64(r.Bytes) / max(r.Duration.Seconds(), 1e-6)
		left := float64(r.Pages+r.Zero) * image.PageSize
		if left <= rate*s.opts.Budget.Seconds() || r.Pages+r.Zero >= prev*9/10 {
			break
		}
		prev = r.Pages + r.Zero
	}
	return nil
}

// final freezes the tree, sends the image (with only the pages written
// since the last round when pre-copy ran) and hands the tree over.
func (s *source) final(ctx context.Context) error {
	if err := runAction(ctx, s.opts.ActionScript, "network-lock", s.pid); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			runAction(context.Background(), s.opts.ActionScript, "network-unlock", s.pid)
		}
	}()
	s.setPhase("final")
	if err := s.send(&message{Type: msgImage}); err != nil {
		return err
	}
	st, err := s.sess.Open(ctx)
	if err != nil {
		return connError("open the image stream", err)
	}
	defer st.Close()
	before := s.sent.Load()
	var dirty checkpoint.DirtyFunc
	if len(s.track) > 0 {
		dirty = func(pid int) ([]checkpoint.PageRange, bool, error) {
			t := s.track[pid]
			if t == nil {
				return nil, false, nil // forked after the pre-copy began: all of it
			}
			d, err := t.Dirty()
			return d, true, err
		}
	}
	var ready *message
	var lazy lazyRanges
	var runningAt time.Time
	var postErr error
	var running *message
	if s.opts.Postcopy {
		s.rep.Mode = "post-copy"
		if len(s.track) > 0 {
			s.rep.Mode = "hybrid"
		}
		lazy = lazyRanges{}
	}
	benc := s.compressor(countWriter{w: st, n: &s.sent})
	bw := bufio.NewWriterSize(benc, 4<<20)
	opts := checkpoint.Options{Dirty: dirty, TCP: checkpoint.TCPMode(s.opts.TCP), Handoff: func(ctx context.Context) error {
		if err := bw.Flush(); err != nil {
			return connError("send the image", err)
		}
		if err := benc.Close(); err != nil {
			return connError("send the image", err)
		}
		if err := st.Close(); err != nil {
			return connError("send the image", err)
		}
		if lazy != nil {
			if err := s.send(&message{Type: msgLazy, Lazy: lazy}); err != nil {
				return err
			}
		}
		m, err := s.expect(ctx, s.opts.ReadyTimeout, msgReady)
		if err != nil {
			return err
		}
		ready = m
		// The commit point: from here the destination owns the tree.
		if err := s.send(&message{Type: msgCommit}); err != nil {
			return err
		}
		committed = true
		s.rep.Committed = true
		if lazy == nil {
			return nil
		}
		// Post-copy: the destination runs the tree now; serve its pages
		// from the frozen tree until it has them all. Nothing can be
		// undone from here: on failure the tree is lost.
		if err := s.servePostcopy(ctx, lazy, func(m *message) { running, runningAt = m, time.Now() }); err != nil {
			postErr = &fault.Error{Code: fault.CodeMigration, Op: "post-copy", PID: s.pid, Err: err,
				Msg: "the connection failed after the commit: the tree is lost (the destination kills its copy)"}
		}
		return nil
	}}
	if lazy != nil {
		opts.Lazy = func(pid int, present []checkpoint.PageRange) error {
			lazy[pid] = present
			return nil
		}
	}
	stats, err := checkpoint.Dump(ctx, s.pid, bw, opts)
	if err != nil {
		if !committed {
			// Tell the destination, if it still listens, to undo.
			writeMessage(s.ctl, &message{Type: msgAbort, Reason: err.Error()})
		}
		return err
	}
	s.rep.Frozen = stats.FrozenTime
	s.rep.Rounds = append(s.rep.Rounds, Round{N: len(s.rep.Rounds) + 1, Pages: stats.Pages, Zero: stats.ZeroPages,
		Bytes: s.sent.Load() - before, Duration: stats.FrozenTime, Final: true})
	s.rep.DestPID = ready.PID
	m, err := running, error(nil)
	if m == nil {
		m, err = s.expect(ctx, s.opts.ReadyTimeout, msgRunning)
		runningAt = time.Now()
	}
	runAction(ctx, s.opts.ActionScript, "post-dump", s.pid)
	if postErr != nil {
		return postErr
	}
	if err != nil {
		s.rep.Warnings = append(s.rep.Warnings, fmt.Sprintf("the destination's confirmation that the tree runs was not received: %v", err))
		return nil
	}
	s.rep.Downtime = runningAt.Sub(stats.FrozenAt)
	s.rep.RestoreTime = time.Duration(m.RestoreMS * float64(time.Millisecond))
	if m.PID != 0 {
		s.rep.DestPID = m.PID
	}
	return nil
}

// tracker tells which pages of a process were written since its last call.
type tracker interface {
	Dirty() ([]checkpoint.PageRange, error)
	Close() error
}

// newTracker starts dirty-page tracking of pid.
var newTracker = func(pid int) (tracker, error) {
	t, err := mem.Track(pid)
	if err != nil {
		code := fault.CodeDumpFailed
		if errors.Is(err, mem.ErrNoWPAsync) {
			code = fault.CodeKernel
		}
		return nil, &fault.Error{Code: code, Op: "pre-copy: track dirty pages", PID: pid, Err: err,
			Remedy: "migrate with --precopy off"}
	}
	return memTracker{t}, nil
}

// memTracker adapts mem.Tracker.
type memTracker struct{ t *mem.Tracker }

func (m memTracker) Dirty() ([]checkpoint.PageRange, error) {
	rs, err := m.t.Dirty()
	if err != nil {
		return nil, err
	}
	out := make([]checkpoint.PageRange, len(rs))
	for i, r := range rs {
		out[i] = checkpoint.PageRange{Addr: r.Addr, Pages: r.Size / image.PageSize}
	}
	return out, nil
}

func (m memTracker) Close() error { return m.t.Close() }

// nopCloser is a writer with a Close that does nothing.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressor wraps w in a zstd encoder when the migration compresses.
func (s *source) compressor(w io.Writer) io.WriteCloser {
	if !s.opts.Compress {
		return nopCloser{w}
	}
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(2))
	if err != nil {
		panic(err) // only for invalid options
	}
	return enc
}
