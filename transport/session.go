package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/godwit-dev/godwit/fault"
)

// Timing of a session. A peer that vanishes silently is noticed within
// KeepAliveInterval + KeepAliveTimeout; see the package documentation.
const (
	// KeepAliveInterval is how often a session pings its peer.
	KeepAliveInterval = 1 * time.Second
	// KeepAliveTimeout is how long a session waits for the answer to a ping
	// before it declares the connection lost.
	KeepAliveTimeout = 5 * time.Second
	// HandshakeTimeout bounds the TLS handshake and preamble of Dial and
	// Listener.Accept, in addition to their context.
	HandshakeTimeout = 10 * time.Second
)

// Multiplexer tuning; the figures come from BenchmarkSessionThroughput.
const (
	// streamWindow is the most a stream may have in flight unread, which
	// caps one stream at streamWindow / RTT (4 GB/s at 1 ms, 400 MB/s at
	// 10 ms); bulk transfers over long links use several streams. Larger
	// windows cost more CPU per byte here: yamux's receive buffer is
	// reallocated more often (see BenchmarkSessionThroughput).
	streamWindow = 4 << 20
	// maxFrame is the largest data frame a stream sends at once, so that a
	// bulk stream delays other streams' frames by one frame at most.
	maxFrame = 256 << 10
	// writeTimeout is yamux's safety valve for one queued frame.
	writeTimeout = 10 * time.Second
)

// preamble is what each side sends right after the TLS handshake: a magic and
// the version of this transport.
var preamble = [8]byte{'g', 'd', 'w', 't', 'm', 'u', 'x', 1}

// errLocalClose marks a session ended by its own Close.
var errLocalClose = errors.New("closed by this side")

// Dial connects to addr ("host:port"), runs the TLS 1.3 handshake with cfg
// (see [ClientConfig]) and the transport preamble, and returns the session.
// When cfg.ServerName is empty the host part of addr is used, so the server's
// certificate must name it. The version in cfg is overridden with TLS 1.3.
//
// A refused certificate on either side, a server that does not speak TLS 1.3
// and a peer that is not a godwit transport all fail Dial with an error
// wrapping [ErrHandshake]. ctx bounds connecting and the handshake; the
// handshake is also bounded by HandshakeTimeout. ctx does not affect the
// session once Dial has returned.
func Dial(ctx context.Context, addr string, cfg *tls.Config) (*Session, error) {
	const op = "dial"
	cfg, err := clientTLS(addr, cfg)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: addr, Msg: "connect", Err: err}
	}
	rc := &rawConn{Conn: raw}
	tc := tls.Client(rc, cfg)
	if err := handshake(ctx, tc, op, addr, false); err != nil {
		raw.Close()
		return nil, err
	}
	return newSession(tc, rc, true)
}

func clientTLS(addr string, cfg *tls.Config) (*tls.Config, error) {
	const op = "dial"
	bad := func(msg string) error {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Path: addr, Msg: msg}
	}
	switch {
	case cfg == nil:
		return nil, bad("no TLS configuration")
	case len(cfg.Certificates) == 0 && cfg.GetClientCertificate == nil:
		return nil, bad("TLS configuration has no client certificate; mutual authentication needs one")
	case cfg.InsecureSkipVerify:
		return nil, bad("TLS configuration skips verifying the server (InsecureSkipVerify)")
	}
	cfg = cfg.Clone()
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Path: addr, Msg: "bad address", Err: err,
				Remedy: "give HOST:PORT"}
		}
		cfg.ServerName = host
	}
	return cfg, nil
}

// handshake runs the TLS handshake and the preamble exchange on c, within
// ctx and HandshakeTimeout. The client reads the server's preamble before
// sending its own: in TLS 1.3 that read is where it learns that the server
// refused its certificate.
func handshake(ctx context.Context, c *tls.Conn, op, addr string, server bool) error {
	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	fail := func(err error) error {
		if ctx.Err() != nil {
			return &fault.Error{Code: fault.CodeIO, Op: op, Path: addr, Msg: "tls handshake did not finish",
				Err: tag(ErrHandshake, ctx.Err())}
		}
		return handshakeError(op, addr, server, err)
	}
	if err := c.HandshakeContext(ctx); err != nil {
		return fail(err)
	}

	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	var got [len(preamble)]byte
	var err error
	if server {
		if _, err = c.Write(preamble[:]); err == nil {
			_, err = io.ReadFull(c, got[:])
		}
	} else {
		if _, err = io.ReadFull(c, got[:]); err == nil {
			_, err = c.Write(preamble[:])
		}
	}
	// The deadline (ctx's) may pass before ctx reports it is done.
	if !stop() || errors.Is(err, os.ErrDeadlineExceeded) {
		cause := ctx.Err()
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		return &fault.Error{Code: fault.CodeIO, Op: op, Path: addr, Msg: "no transport preamble from the peer",
			Err: tag(ErrHandshake, cause), Remedy: "check that the peer is a godwit transport of the same version"}
	}
	c.SetDeadline(time.Time{})
	if err != nil {
		return fail(err)
	}
	if !bytes.Equal(got[:len(preamble)-1], preamble[:len(preamble)-1]) {
		return &fault.Error{Code: fault.CodeUnsupported, Op: op, Path: addr, Msg: "peer is not a godwit transport",
			Err: tag(ErrHandshake, fmt.Errorf("preamble %q", got[:]))}
	}
	if v := got[len(preamble)-1]; v != preamble[len(preamble)-1] {
		return &fault.Error{Code: fault.CodeUnsupported, Op: op, Path: addr,
			Msg:    fmt.Sprintf("peer speaks transport version %d, this side %d", v, preamble[len(preamble)-1]),
			Err:    ErrHandshake,
			Remedy: "run the same godwit version on both hosts"}
	}
	return nil
}

// Listener accepts authenticated sessions. Its methods may be called
// concurrently.
type Listener struct {
	ln    net.Listener
	cfg   *tls.Config
	conns chan acceptResult // from the accept loop

	closeOnce sync.Once
	closed    chan struct{}
	loopDone  chan struct{}
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// Listen listens on addr ("host:port"; port 0 picks one, see Addr) for
// sessions authenticated with cfg (see [ServerConfig]). cfg must require and
// verify client certificates; its version is overridden with TLS 1.3 and
// session tickets are turned off, so every client proves its certificate on
// every connection.
func Listen(addr string, cfg *tls.Config) (*Listener, error) {
	const op = "listen"
	bad := func(msg string) error {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Path: addr, Msg: msg}
	}
	switch {
	case cfg == nil:
		return nil, bad("no TLS configuration")
	case len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil:
		return nil, bad("TLS configuration has no server certificate")
	case cfg.ClientAuth != tls.RequireAndVerifyClientCert:
		return nil, bad("TLS configuration does not require and verify client certificates")
	}
	cfg = cfg.Clone()
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	cfg.SessionTicketsDisabled = true
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: addr, Err: err}
	}
	l := &Listener{
		ln:       ln,
		cfg:      cfg,
		conns:    make(chan acceptResult),
		closed:   make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	go l.loop()
	return l, nil
}

// loop accepts TCP connections and hands them to Accept one at a time; the
// rest wait in the kernel's backlog.
func (l *Listener) loop() {
	defer close(l.loopDone)
	for {
		c, err := l.ln.Accept()
		select {
		case <-l.closed:
			if c != nil {
				c.Close()
			}
			return
		default:
		}
		select {
		case l.conns <- acceptResult{conn: c, err: err}:
		case <-l.closed:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			// Out of file descriptors and the like: do not spin.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-l.closed:
				return
			}
		}
	}
}

// Accept waits for the next client and authenticates it. A client that fails
// the handshake yields an error wrapping [ErrHandshake] that names it; the
// listener stays usable, so a server loops on such errors. After Close,
// Accept returns an error wrapping net.ErrClosed. ctx bounds the wait and the
// handshake (which HandshakeTimeout bounds too); it does not affect the
// returned session. The handshake runs in the calling goroutine: to
// authenticate several clients at once, call Accept from several goroutines.
func (l *Listener) Accept(ctx context.Context) (*Session, error) {
	const op = "accept"
	select {
	case <-ctx.Done():
		return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: l.ln.Addr().String(), Err: ctx.Err()}
	case <-l.closed:
		return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: l.ln.Addr().String(), Msg: "listener closed", Err: net.ErrClosed}
	case r := <-l.conns:
		if r.err != nil {
			return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: l.ln.Addr().String(), Err: r.err}
		}
		rc := &rawConn{Conn: r.conn}
		tc := tls.Server(rc, l.cfg)
		if err := handshake(ctx, tc, op, r.conn.RemoteAddr().String(), true); err != nil {
			r.conn.Close()
			return nil, err
		}
		return newSession(tc, rc, false)
	}
}

// Addr returns the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops listening and makes pending and future Accept calls return.
// Sessions already accepted are not affected.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.ln.Close()
		<-l.loopDone
	})
	if err != nil {
		return &fault.Error{Code: fault.CodeIO, Op: "close listener", Path: l.ln.Addr().String(), Err: err}
	}
	return nil
}

// Session is one authenticated connection to a peer, multiplexed into
// streams. Either side may open streams; the other accepts them. All methods
// may be called concurrently.
type Session struct {
	tc     *tls.Conn
	raw    *rawConn // under tc
	wc     *watchConn
	mux    *yamux.Session
	log    *muxLog
	remote string
	peerCN string

	mu    sync.Mutex
	cause error // why the session ended; the first reported wins
}

func newSession(tc *tls.Conn, raw *rawConn, client bool) (*Session, error) {
	s := &Session{tc: tc, raw: raw, log: &muxLog{}, remote: tc.RemoteAddr().String()}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		s.peerCN = certs[0].Subject.CommonName
	}
	s.wc = newWatchConn(tc, s.setCause)
	cfg := &yamux.Config{
		AcceptBacklog: 256,
		// Session.keepalive pings instead, with its own timeout.
		EnableKeepAlive:        false,
		KeepAliveInterval:      KeepAliveInterval,
		ConnectionWriteTimeout: writeTimeout,
		MaxStreamWindowSize:    streamWindow,
		// A peer busy elsewhere may take its time to accept a stream;
		// the keepalive tells a slow peer from a dead one.
		StreamOpenTimeout:  0,
		StreamCloseTimeout: time.Minute,
		Logger:             s.log,
	}
	var err error
	if client {
		s.mux, err = yamux.Client(s.wc, cfg)
	} else {
		s.mux, err = yamux.Server(s.wc, cfg)
	}
	if err != nil {
		tc.Close()
		return nil, &fault.Error{Code: fault.CodeInternal, Op: "start session", Path: s.remote, Err: err}
	}
	go s.keepalive()
	return s, nil
}

// setCause records why the session ended, unless a reason is known already.
func (s *Session) setCause(err error) {
	s.mu.Lock()
	if s.cause == nil {
		s.cause = err
	}
	s.mu.Unlock()
}

// fail ends the session for cause.
func (s *Session) fail(cause error) {
	s.setCause(cause)
	s.mux.Close()
}

// keepalive pings the peer every KeepAliveInterval and ends the session when
// an answer takes longer than KeepAliveTimeout.
func (s *Session) keepalive() {
	done := s.mux.CloseChan()
	tick := time.NewTicker(KeepAliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		answer := make(chan error, 1)
		go func() {
			_, err := s.mux.Ping()
			answer <- err
		}()
		timer := time.NewTimer(KeepAliveTimeout)
		select {
		case <-done:
			timer.Stop()
			return
		case err := <-answer:
			timer.Stop()
			if err != nil {
				s.fail(fmt.Errorf("keepalive ping: %w", err))
				return
			}
		case <-timer.C:
			s.fail(fmt.Errorf("peer did not answer a keepalive ping within %v", KeepAliveTimeout))
			return
		}
	}
}

// Open opens a new stream to the peer. It does not wait for the peer to
// accept it: up to 256 KiB written to the stream are buffered until then.
// ctx bounds the wait, which only happens when 256 opened streams are still
// unaccepted.
func (s *Session) Open(ctx context.Context) (net.Conn, error) {
	const op = "open stream"
	if err := ctx.Err(); err != nil {
		return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: s.remote, Err: err}
	}
	type result struct {
		st  *yamux.Stream
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := s.mux.OpenStream()
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, s.opErr(op, r.err)
		}
		return &stream{st: r.st, s: s}, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.st != nil {
				r.st.Close()
			}
		}()
		return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: s.remote, Err: ctx.Err()}
	}
}

// Accept waits for the peer to open a stream.
func (s *Session) Accept(ctx context.Context) (net.Conn, error) {
	const op = "accept stream"
	st, err := s.mux.AcceptStreamWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: s.remote, Err: ctx.Err()}
		}
		return nil, s.opErr(op, err)
	}
	return &stream{st: st, s: s}, nil
}

// Close ends the session at once: the connection is closed, blocked and
// future stream operations of both sides fail, and data written to streams
// but not yet read by the peer may be lost. End a protocol with a message
// and its answer before closing. Close returns nil; calling it again does
// nothing.
func (s *Session) Close() error {
	s.setCause(errLocalClose)
	s.mux.Close()
	return nil
}

// Done returns a channel that is closed when the session has ended, by Close
// or otherwise; Err then tells why.
func (s *Session) Done() <-chan struct{} { return s.mux.CloseChan() }

// Err returns nil while the session is up. After Done is closed it returns an
// error wrapping net.ErrClosed when this side closed the session, or one
// wrapping [ErrConnectionLost] and the cause otherwise.
func (s *Session) Err() error {
	if !s.mux.IsClosed() {
		return nil
	}
	return s.endErr("session")
}

// PeerCommonName returns the common name in the peer's verified certificate
// ([ClientCommonName] or [ServerCommonName] for certificates from
// GeneratePKI).
func (s *Session) PeerCommonName() string { return s.peerCN }

// RemoteAddr returns the peer's network address.
func (s *Session) RemoteAddr() net.Addr { return s.tc.RemoteAddr() }

// LocalAddr returns this side's network address.
func (s *Session) LocalAddr() net.Addr { return s.tc.LocalAddr() }

// endErr is the error of an operation op on the ended session.
func (s *Session) endErr(op string) error {
	s.mu.Lock()
	cause := s.cause
	s.mu.Unlock()
	if cause == nil {
		cause = s.log.lastErr()
	}
	fe := &fault.Error{Code: fault.CodeConnection, Op: op, Path: s.remote, Msg: "connection lost"}
	switch {
	case cause == errLocalClose:
		fe.Code, fe.Msg, fe.Err = fault.CodeIO, "session closed by this side", net.ErrClosed
	case cause == io.EOF && s.raw.eof.Load():
		fe.Err = tag(ErrConnectionLost, errors.New("the connection ended without a TLS close (peer process died or the connection was cut)"))
	case cause == io.EOF:
		fe.Err = tag(ErrConnectionLost, errors.New("peer closed the session"))
	default:
		fe.Err = tag(ErrConnectionLost, cause)
	}
	return fe
}

// opErr turns an error of yamux into ours.
func (s *Session) opErr(op string, err error) error {
	if s.mux.IsClosed() {
		return s.endErr(op)
	}
	return &fault.Error{Code: fault.CodeIO, Op: op, Path: s.remote, Err: err}
}

// stream is a yamux stream whose errors say what happened to the session,
// whose writes are cut into frames of at most maxFrame bytes, and whose
// io.EOF means the peer really closed it.
type stream struct {
	st  *yamux.Stream
	s   *Session
	wmu sync.Mutex  // keeps one Write's frames together
	eof atomic.Bool // io.EOF was returned
}

// Read reads data the peer wrote. It returns io.EOF after the peer closed
// the stream, and an error wrapping ErrConnectionLost when the session ended
// before that.
func (c *stream) Read(p []byte) (int, error) {
	n, err := c.st.Read(p)
	if err != nil {
		err = c.err("read", err)
	}
	return n, err
}

// Write writes all of p, in frames of at most maxFrame bytes, so that other
// streams' frames can go in between. Concurrent Writes do not interleave.
func (c *stream) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	total := 0
	for len(p) > 0 {
		n, err := c.st.Write(p[:min(len(p), maxFrame)])
		total += n
		if err != nil {
			return total, c.err("write", err)
		}
		p = p[n:]
	}
	return total, nil
}

// Close ends this side's writing: the peer reads io.EOF after the data
// written before. Reading may go on until the peer closes its side too, which
// frees the stream (so does a minute passing).
func (c *stream) Close() error {
	if err := c.st.Close(); err != nil {
		return c.err("close", err)
	}
	return nil
}

func (c *stream) LocalAddr() net.Addr                { return c.s.LocalAddr() }
func (c *stream) RemoteAddr() net.Addr               { return c.s.RemoteAddr() }
func (c *stream) SetDeadline(t time.Time) error      { return c.st.SetDeadline(t) }
func (c *stream) SetReadDeadline(t time.Time) error  { return c.st.SetReadDeadline(t) }
func (c *stream) SetWriteDeadline(t time.Time) error { return c.st.SetWriteDeadline(t) }

// err turns an error of a stream operation into ours.
func (c *stream) err(op string, err error) error {
	id := c.st.StreamID()
	op = fmt.Sprintf("%s stream %d", op, id)
	switch {
	case err == io.EOF:
		// yamux says io.EOF both for a FIN and for a stream whose session
		// ended; the FIN is what makes it an end of stream.
		if c.eof.Load() {
			return io.EOF
		}
		if fin := c.s.wc.takeFIN(id); fin || !c.s.mux.IsClosed() {
			c.eof.Store(true)
			return io.EOF
		}
		return c.s.endErr(op)
	case err == yamux.ErrTimeout:
		return &fault.Error{Code: fault.CodeIO, Op: op, Path: c.s.remote, Err: os.ErrDeadlineExceeded}
	case c.s.mux.IsClosed():
		return c.s.endErr(op)
	case err == yamux.ErrStreamClosed:
		return &fault.Error{Code: fault.CodeIO, Op: op, Path: c.s.remote, Msg: "stream closed by this side", Err: net.ErrClosed}
	case err == yamux.ErrConnectionReset:
		return &fault.Error{Code: fault.CodeIO, Op: op, Path: c.s.remote, Msg: "stream reset by peer", Err: err}
	}
	return &fault.Error{Code: fault.CodeIO, Op: op, Path: c.s.remote, Err: err}
}

// rawConn is the TCP connection under TLS. It remembers whether the peer
// ended it: crypto/tls reports io.EOF both after the peer's close_notify and
// when the TCP connection just ends.
type rawConn struct {
	net.Conn
	eof atomic.Bool
}

func (c *rawConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == io.EOF {
		c.eof.Store(true)
	}
	return n, err
}

// muxLog keeps the last error yamux logged, as the cause of last resort of a
// session's end; nothing is printed.
type muxLog struct {
	mu   sync.Mutex
	last string
}

func (l *muxLog) Print(v ...any)                 { l.record(fmt.Sprint(v...)) }
func (l *muxLog) Printf(format string, v ...any) { l.record(fmt.Sprintf(format, v...)) }
func (l *muxLog) Println(v ...any)               { l.record(fmt.Sprintln(v...)) }

func (l *muxLog) record(msg string) {
	msg, ok := strings.CutPrefix(strings.TrimSpace(msg), "[ERR] ")
	if !ok {
		return
	}
	l.mu.Lock()
	l.last = msg
	l.mu.Unlock()
}

func (l *muxLog) lastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == "" {
		return nil
	}
	return errors.New(l.last)
}
