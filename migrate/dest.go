package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/restore"
)

// Server receives migrations and restores them on this host.
type Server struct {
	// MemoryLimit bounds the pages one migration may hold here before its
	// image arrives; zero means no limit.
	MemoryLimit int64
	// ActionScript, when set, is run at pre-restore, network-unlock and
	// post-restore with GODWIT_ACTION set.
	ActionScript string
	// CommitTimeout bounds how long a rebuilt tree waits, stopped, for
	// the source's commit; zero means 1 minute.
	CommitTimeout time.Duration
	// LazyFill, after a pre-copy, lets the tree run before the pages of
	// the rounds are written and fills them through userfaultfd: the
	// downtime no longer grows with the memory (godwit serve turns it on;
	// a rootless destination cannot: see Postcopy).
	LazyFill bool
	// UserNS restores rootless, into a new user and PID namespace.
	UserNS bool
	// Log receives one line per event; nil means slog.Default().
	Log *slog.Logger
}

// Received describes a migration received.
type Received struct {
	SourcePID int
	PID       int // the restored root, as this host sees it
	Restore   time.Duration
	Rounds    int
	Pages     int // pages held from pre-copy rounds
}

// receiver is the destination side of one migration.
type receiver struct {
	srv   *Server
	sess  Session
	ctl   net.Conn
	msgs  chan *message
	rerr  chan error
	store *store
	hello *message
	log   *slog.Logger
}

// Handle runs one migration arriving on sess, until the tree runs here or
// the migration failed (the error is also sent to the source).
func (srv *Server) Handle(ctx context.Context, sess Session) (*Received, error) {
	log := srv.Log
	if log == nil {
		log = slog.Default()
	}
	r := &receiver{srv: srv, sess: sess, store: newStore(srv.MemoryLimit), log: log,
		msgs: make(chan *message, 16), rerr: make(chan error, 1)}
	rec, err := r.run(ctx)
	r.store.release()
	if err != nil && r.ctl != nil {
		// The whole text travels (the cause is not serialized), with the code.
		fe := &fault.Error{Code: fault.CodeOf(err), Msg: err.Error()}
		var ours *fault.Error
		if errors.As(err, &ours) {
			fe.PID, fe.Path, fe.Addr, fe.Remedy = ours.PID, ours.Path, ours.Addr, ours.Remedy
		}
		writeMessage(r.ctl, &message{Type: msgError, Error: fe})
	}
	if r.ctl != nil {
		r.linger(3 * time.Second)
	}
	return rec, err
}

// linger waits, up to d, for the source to end the session: closing it
// first could make the source see a broken connection before the last
// message.
func (r *receiver) linger(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case _, ok := <-r.msgs:
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}

func (r *receiver) run(ctx context.Context) (*Received, error) {
	var err error
	if r.ctl, err = r.sess.Accept(ctx); err != nil {
		return nil, connError("accept the control stream", err)
	}
	go func() {
		for {
			m, err := readMessage(r.ctl)
			if err != nil {
				r.rerr <- err
				close(r.msgs)
				return
			}
			r.msgs <- m
		}
	}()
	hello, err := r.next(ctx, 30*time.Second)
	if err != nil {
		return nil, err
	}
	if hello.Type != msgHello || hello.Version != Version {
		return nil, &fault.Error{Code: fault.CodeMigration, Op: "hello",
			Msg:    fmt.Sprintf("protocol %q version %d, this godwit speaks version %d", hello.Type, hello.Version, Version),
			Remedy: "run the same godwit version on both hosts"}
	}
	r.hello = hello
	r.log.Info("migration arriving", "source_pid", hello.PID, "source_host", hello.Host)
	if err := writeMessage(r.ctl, &message{Type: msgWelcome, Version: Version}); err != nil {
		return nil, connError("welcome", err)
	}
	rec := &Received{SourcePID: hello.PID}
	for {
		m, err := r.next(ctx, 0)
		if err != nil {
			return nil, err
		}
		switch m.Type {
		case msgRound:
			if err := r.receiveRound(ctx); err != nil {
				return nil, err
			}
			rec.Rounds++
		case msgImage:
			return r.receiveImage(ctx, rec)
		case msgAbort:
			return nil, &fault.Error{Code: fault.CodeMigration, Op: "migration", Msg: "the source gave up: " + m.Reason}
		default:
			return nil, fmt.Errorf("%w: unexpected %q from the source", errProtocol, m.Type)
		}
	}
}

// next waits for the source's next message (timeout 0: no bound).
func (r *receiver) next(ctx context.Context, timeout time.Duration) (*message, error) {
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case m, ok := <-r.msgs:
		if !ok {
			err := <-r.rerr
			r.rerr <- err
			return nil, connError("read from the source", err)
		}
		return m, nil
	case <-tc:
		return nil, &fault.Error{Code: fault.CodeConnection, Op: "wait for the source", Msg: fmt.Sprintf("nothing within %v", timeout)}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// receiveRound merges one page stream into the store.
func (r *receiver) receiveRound(ctx context.Context) error {
	st, err := r.sess.Accept(ctx)
	if err != nil {
		return connError("accept a page stream", err)
	}
	defer st.Close()
	hdr := make([]byte, frameHeader)
	var buf []byte
	var f pageFrame
	in, err := r.decompressor(st)
	if err != nil {
		return err
	}
	defer in.Close()
	br := bufio.NewReaderSize(in, 4<<20)
	for {
		buf, err = readFrame(br, hdr, &f, buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, errProtocol) {
				return &fault.Error{Code: fault.CodeBadImage, Op: "receive pages", Err: err}
			}
			return connError("receive pages", err)
		}
		if err := r.store.put(&f); err != nil {
			if errors.Is(err, errNoMemory) {
				return &fault.Error{Code: fault.CodeMigration, Op: "receive pages", PID: f.pid, Msg: err.Error(),
					Remedy: fmt.Sprintf("the destination holds at most %d MiB for a migration; raise --memory-limit or free memory", r.srv.MemoryLimit>>20)}
			}
			return err
		}
	}
}

// receiveImage restores the tree from the image stream, asks the source to
// commit once it is whole, and lets it run.
func (r *receiver) receiveImage(ctx context.Context, rec *Received) (*Received, error) {
	st, err := r.sess.Accept(ctx)
	if err != nil {
		return nil, connError("accept the image stream", err)
	}
	defer st.Close()
	if err := runAction(ctx, r.srv.ActionScript, ActionPreRestore, r.hello.PID); err != nil {
		return nil, err
	}
	commitTimeout := r.srv.CommitTimeout
	if commitTimeout == 0 {
		commitTimeout = time.Minute
	}
	rec.Pages = r.store.held()
	var pc *postcopy
	var lazy lazyRanges
	// After a pre-copy, the pages of its rounds are filled in once the tree
	// runs (when this side can serve faults taken inside the kernel).
	local := r.srv.LazyFill && rec.Rounds > 0 && !r.srv.UserNS
	if r.hello.Postcopy && rec.Rounds > 0 && !local {
		return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "hybrid migration",
			Msg: "pre-copy rounds followed by post-copy need the lazy fill of this destination", Remedy: "run godwit serve as root with --lazy-fill"}
	}
	opts := restore.Options{UserNS: r.srv.UserNS, BeforeResume: func(ctx context.Context, res *restore.Result) error {
		if err := writeMessage(r.ctl, &message{Type: msgReady, PID: res.PID, NamespacePID: res.NamespacePID}); err != nil {
			return connError("tell the source the tree is ready", err)
		}
		m, err := r.next(ctx, commitTimeout)
		if err != nil {
			return err
		}
		if m.Type == msgLazy && pc != nil {
			lazy = m.Lazy
			if m, err = r.next(ctx, commitTimeout); err != nil {
				return err
			}
		}
		if m.Type != msgCommit {
			return &fault.Error{Code: fault.CodeMigration, Op: "commit", Msg: "the source did not commit: " + m.Type + " " + m.Reason}
		}
		if err := runAction(ctx, r.srv.ActionScript, ActionNetworkUnlock, res.PID); err != nil {
			return err
		}
		switch {
		case pc != nil && r.hello.Postcopy:
			if local {
				pc.local = r.store // hybrid
			}
			return pc.start(ctx, r.sess, lazy)
		case pc != nil && local:
			pc.startLocal(r.store)
		}
		return nil
	}}
	if local {
		pc = &postcopy{procs: map[int]*lazyProc{}}
		opts.Lazy = pc.adopt
		opts.AnonPages = func(pid int, addr uint64, count int, data []byte) error {
			return r.store.put(&pageFrame{pid: pid, addr: addr, count: count, zero: data == nil, data: data})
		}
	}
	if r.hello.Postcopy {
		if r.srv.UserNS {
			return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "post-copy",
				Msg:    "a rootless destination has only a user-mode userfaultfd, which cannot serve faults taken inside the kernel",
				Remedy: "run godwit serve as root, or migrate with pre-copy"}
		}
		if pc == nil {
			pc = &postcopy{procs: map[int]*lazyProc{}}
			opts.Lazy = pc.adopt
		}
	}
	defer func() {
		if pc != nil && pc.done == nil {
			pc.closeAll()
		}
	}()
	if rec.Rounds > 0 {
		opts.Pages = r.store
	}
	in, err := r.decompressor(st)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	res, err := restore.Restore(ctx, bufio.NewReaderSize(in, 4<<20), opts)
	if err != nil {
		return nil, err
	}
	rec.PID = res.PID
	rec.Restore = res.Duration
	if err := writeMessage(r.ctl, &message{Type: msgRunning, PID: res.PID, NamespacePID: res.NamespacePID,
		RestoreMS: float64(res.Duration) / float64(time.Millisecond)}); err != nil {
		r.log.Warn("the source was not told the tree runs", "err", err)
	}
	runAction(ctx, r.srv.ActionScript, ActionPostRestore, res.PID)
	if pc != nil {
		if err := r.finishPostcopy(ctx, pc, res.PID, r.hello.Postcopy); err != nil {
			return nil, err
		}
	}
	r.log.Info("migration done", "source_pid", r.hello.PID, "pid", res.PID, "restore", res.Duration)
	notifyApp(ctx, res.PID, "post-migrate", 5*time.Second)
	return rec, nil
}

// finishPostcopy waits until every page of a post-copy is in, then closes
// the userfaultfds and tells the source. If the pages cannot all arrive,
// the restored tree cannot go on: it is killed.
func (r *receiver) finishPostcopy(ctx context.Context, pc *postcopy, root int, tell bool) error {
	var err error
	select {
	case <-pc.done:
		select {
		case err = <-pc.fail:
		default:
		}
	case err = <-pc.fail:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		killTree(root)
		pc.closeAll()
		return &fault.Error{Code: fault.CodeMigration, Op: "post-copy", PID: root, Err: err,
			Msg: "pages could not be fetched from the source; the restored tree was killed"}
	}
	pc.closeAll()
	if !tell {
		return nil
	}
	if err := writeMessage(r.ctl, &message{Type: msgPostcopyDone}); err != nil {
		r.log.Warn("the source was not told the post-copy is done", "err", err)
	}
	return nil
}

// killTree kills pid and its descendants.
func killTree(pid int) {
	kids, _ := procfs.Children(pid)
	unix.Kill(pid, unix.SIGKILL)
	for _, k := range kids {
		killTree(k)
	}
}

// decompressor undoes the source's compression of a stream, if any.
func (r *receiver) decompressor(st io.Reader) (io.ReadCloser, error) {
	if !r.hello.Compress {
		return io.NopCloser(st), nil
	}
	dec, err := zstd.NewReader(st, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, err
	}
	return dec.IOReadCloser(), nil
}
