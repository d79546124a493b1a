package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/fault"
)

// sumServer accepts streams on s until it ends; for each it reads to EOF
// and answers with the SHA-256 of what it read.
func sumServer(ctx context.Context, s *Session) {
	for {
		st, err := s.Accept(ctx)
		if err != nil {
			return
		}
		go func() {
			defer st.Close()
			h := sha256.New()
			if _, err := io.Copy(h, st); err != nil {
				return
			}
			st.Write(h.Sum(nil))
		}()
	}
}

// sendAndSum writes data on a new stream of s, closes it and checks the sum
// the peer answers.
func sendAndSum(ctx context.Context, s *Session, data []byte) error {
	st, err := s.Open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		if err == nil {
			err = st.Close()
		}
		errc <- err
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if want := sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		return errors.New("checksum mismatch")
	}
	return nil
}

func TestParallelStreams(t *testing.T) {
	c, s := pair(t)
	ctx := testCtx(t)
	go sumServer(ctx, s)
	go sumServer(ctx, c) // streams go both ways

	const n = 64
	src := rand.NewChaCha8([32]byte{1})
	rng := rand.New(src)
	bufs := make([][]byte, n)
	for i := range bufs {
		size := rng.IntN(1 << 20)
		if i%8 == 0 {
			size = rng.IntN(100) // some tiny ones, and empty ones
		}
		bufs[i] = make([]byte, size)
		src.Read(bufs[i])
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range bufs {
		from := c
		if i%4 == 3 {
			from = s
		}
		wg.Go(func() { errs[i] = sendAndSum(ctx, from, bufs[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("stream %d (%d bytes): %v", i, len(bufs[i]), err)
		}
	}
}

// TestBigStreamDoesNotStarveControl sends a bulk stream while a control
// stream does round trips: the round trips must go on while the bulk data
// flows, and while the bulk stream stalls because its reader stopped.
func TestBigStreamDoesNotStarveControl(t *testing.T) {
	total := int64(256 << 20)
	if testing.Short() {
		total = 32 << 20
	}
	c, s := pair(t)
	ctx := testCtx(t)

	var received atomic.Int64 // bulk bytes the server has read
	pause := make(chan struct{})
	resume := make(chan struct{})
	bulkSum := make(chan []byte, 1)
	go func() { // server: the first stream is the bulk one, the second the control one
		bulk, err := s.Accept(ctx)
		if err != nil {
			return
		}
		go func() { // reads the bulk stream, pausing once on request
			defer bulk.Close()
			h := sha256.New()
			buf := make([]byte, 64<<10)
			for {
				select {
				case <-pause:
					<-resume
				default:
				}
				n, err := bulk.Read(buf)
				h.Write(buf[:n])
				received.Add(int64(n))
				if err == io.EOF {
					break
				}
				if err != nil {
					return
				}
			}
			bulkSum <- h.Sum(nil)
		}()
		ctl, err := s.Accept(ctx)
		if err != nil {
			return
		}
		defer ctl.Close()
		for { // answers pings with the bulk progress
			typ, _, err := ReadMsg(ctl, 0)
			if err != nil {
				return
			}
			if err := WriteMsg(ctl, typ, received.Load()); err != nil {
				return
			}
		}
	}()

	bulk, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The bulk stream is opened and flowing before the control stream.
	if _, err := bulk.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	for received.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	want := sha256.New()
	want.Write([]byte{0})
	sent := make(chan error, 1)
	go func() {
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i * 7)
		}
		for off := int64(1); off < total; off += int64(len(chunk)) {
			binary.BigEndian.PutUint64(chunk, uint64(off)) // no two chunks alike
			n := min(int64(len(chunk)), total-off)
			want.Write(chunk[:n])
			if _, err := bulk.Write(chunk[:n]); err != nil {
				sent <- err
				return
			}
		}
		sent <- bulk.Close()
	}()

	ctl, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ping := func(i int) int64 {
		t.Helper()
		if err := WriteMsg(ctl, uint8(i), nil); err != nil {
			t.Fatal(err)
		}
		typ, payload, err := ReadMsg(ctl, 0)
		if err != nil || typ != uint8(i) {
			t.Fatalf("ping %d: type %d, %v", i, typ, err)
		}
		var got int64
		if err := json.Unmarshal(payload, &got); err != nil {
			t.Fatalf("ping %d: %q: %v", i, payload, err)
		}
		return got
	}

	// 1. While the bulk data flows: count round trips that complete while
	// the bulk stream has started and not finished, and see its progress
	// move between them.
	var during, moves int
	last := int64(-1)
	for i := 0; ; i++ {
		r := ping(i)
		if r >= total {
			break
		}
		during++
		if r != last {
			moves++
			last = r
		}
		if i == 20 {
			// 2. The server stops reading: the bulk stream's window fills
			// and its writer blocks; control must still get through.
			pause <- struct{}{}
			stalled := ping(1000)
			for j := range 20 {
				if r := ping(1001 + j); r != stalled {
					t.Fatalf("bulk progressed while its reader was paused: %d -> %d", stalled, r)
				}
			}
			if stalled >= total {
				t.Fatalf("bulk finished before the pause")
			}
			close(resume)
		}
	}
	if during < 20 || moves < 3 {
		t.Errorf("control made %d round trips (bulk moved %d times) during the bulk transfer", during, moves)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got := <-bulkSum; !bytes.Equal(got, want.Sum(nil)) {
		t.Fatal("bulk checksum mismatch")
	}
	t.Logf("%d control round trips during a %d MiB transfer, bulk progress seen %d times", during, total>>20, moves)
}

// cut closes the TCP connection under s, as a network failure would.
func cut(s *Session) { s.tc.NetConn().Close() }

func TestCutConnection(t *testing.T) {
	c, s := pair(t)
	ctx := testCtx(t)

	// Server side: a Read blocked on an idle stream, an Accept blocked.
	// Client side: a Write blocked because the server does not read.
	readSt, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readSt.Write([]byte("x"))
	writeSt, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srvRead, err := s.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(srvRead, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	srvIdle, err := s.Accept(ctx) // accepted, never read
	if err != nil {
		t.Fatal(err)
	}
	defer srvIdle.Close()

	readErr := make(chan error, 1)
	go func() {
		_, err := srvRead.Read(make([]byte, 10))
		readErr <- err
	}()
	acceptErr := make(chan error, 1)
	go func() {
		_, err := s.Accept(ctx)
		acceptErr <- err
	}()
	var written atomic.Int64
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			n, err := writeSt.Write(buf)
			written.Add(int64(n))
			if err != nil {
				writeErr <- err
				return
			}
		}
	}()
	// Wait until the writer has filled the window and blocks.
	for written.Load() < streamWindow {
		time.Sleep(time.Millisecond)
	}

	cut(c)

	for what, ch := range map[string]chan error{"server read": readErr, "server accept": acceptErr, "client write": writeErr} {
		select {
		case err := <-ch:
			wantFault(t, what, err, fault.CodeConnection, ErrConnectionLost)
			t.Logf("%s: %v", what, err)
		case <-time.After(time.Minute):
			t.Fatalf("%s still blocked", what)
		}
	}
	waitDone(t, "client", c)
	waitDone(t, "server", s)
	wantFault(t, "client Err", c.Err(), fault.CodeConnection, ErrConnectionLost)
	wantFault(t, "server Err", s.Err(), fault.CodeConnection, ErrConnectionLost)

	// New operations fail the same way.
	_, err = c.Open(ctx)
	wantFault(t, "open after cut", err, fault.CodeConnection, ErrConnectionLost)
	// What arrived before the cut is still read, then the error.
	n, err := io.Copy(io.Discard, srvIdle)
	wantFault(t, "read after cut", err, fault.CodeConnection, ErrConnectionLost)
	if n == 0 || n > written.Load() {
		t.Errorf("read %d bytes after the cut of a stream written %d", n, written.Load())
	}
}

// TestEndOfStream checks that io.EOF means the peer closed the stream, even
// when the session ends right after, and that a stream cut short by the end
// of its session reads an error.
func TestEndOfStream(t *testing.T) {
	for _, tc := range []struct {
		name       string
		closeFirst bool // the writer closes its stream before the session
		wantEOF    bool
	}{
		{"stream closed then session", true, true},
		{"session closed only", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			ctx := testCtx(t)
			st, err := c.Open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write([]byte("all ")); err != nil {
				t.Fatal(err)
			}
			in, err := s.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write([]byte("of it")); err != nil {
				t.Fatal(err)
			}
			if tc.closeFirst {
				st.Close()
			}
			c.Close()
			waitDone(t, "server", s) // the data and the FIN arrived before
			got, err := io.ReadAll(in)
			if string(got) != "all of it" {
				t.Errorf("read %q", got)
			}
			if tc.wantEOF {
				if err != nil {
					t.Errorf("read to the end: %v, want io.EOF", err)
				}
				if _, err := in.Read(make([]byte, 1)); err != io.EOF {
					t.Errorf("read after the end: %v, want io.EOF", err)
				}
			} else {
				wantFault(t, "read of a cut stream", err, fault.CodeConnection, ErrConnectionLost)
			}
			wantFault(t, "server Err", s.Err(), fault.CodeConnection, ErrConnectionLost)
			if err := c.Err(); !errors.Is(err, net.ErrClosed) || errors.Is(err, ErrConnectionLost) {
				t.Errorf("client Err after its Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestStreamDeadline(t *testing.T) {
	c, _ := pair(t)
	st, err := c.Open(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err = st.Read(make([]byte, 1))
	wantFault(t, "read past deadline", err, fault.CodeIO, os.ErrDeadlineExceeded)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("deadline error is not a net.Error timeout: %v", err)
	}
	st.Close()
	_, err = st.Write([]byte("x"))
	wantFault(t, "write after close", err, fault.CodeIO, net.ErrClosed)
}

func TestOpenAcceptContext(t *testing.T) {
	c, _ := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Open(ctx)
	wantFault(t, "open", err, fault.CodeIO, context.Canceled)
	_, err = c.Accept(ctx)
	wantFault(t, "accept", err, fault.CodeIO, context.Canceled)
	if c.Err() != nil {
		t.Fatalf("canceled calls ended the session: %v", c.Err())
	}
}

// TestKeepAliveNoticesSilentPeer runs the session through a relay that
// stops forwarding without closing anything, as a pulled cable would.
func TestKeepAliveNoticesSilentPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the keepalive timeout")
	}
	p := newPKI(t)
	l := listen(t, p.server(t))
	relay, frozen := newRelay(t, l.Addr().String())
	acc := acceptOne(t, l)
	c, err := Dial(testCtx(t), relay, p.client(t, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := <-acc
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.s.Close()

	start := time.Now()
	frozen.Store(true)
	waitDone(t, "client", c)
	waitDone(t, "server", a.s)
	t.Logf("silent peer noticed after %v (bound %v)", time.Since(start).Round(time.Millisecond), KeepAliveInterval+KeepAliveTimeout)
	wantFault(t, "client Err", c.Err(), fault.CodeConnection, ErrConnectionLost)
	wantFault(t, "server Err", a.s.Err(), fault.CodeConnection, ErrConnectionLost)
	t.Logf("client: %v", c.Err())
}

// newRelay forwards TCP connections to target until frozen is set; then it
// stops reading and writing but keeps the connections open.
func newRelay(t *testing.T, target string) (string, *atomic.Bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	frozen := new(atomic.Bool)
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		frozen.Store(false) // let the pipes see their closed connections
	})
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			for frozen.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				return
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	return ln.Addr().String(), frozen
}

// TestNoGoroutineLeak checks that sessions, streams and listeners leave no
// goroutines behind once closed, as a long-running server needs.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		p := newPKI(t)
		l, err := Listen("127.0.0.1:0", p.server(t))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for range 3 {
			acc := acceptOne(t, l)
			c, err := Dial(testCtx(t), l.Addr().String(), p.client(t, ""))
			if err != nil {
				t.Fatal(err)
			}
			a := <-acc
			if a.err != nil {
				t.Fatal(a.err)
			}
			ctx := testCtx(t)
			go sumServer(ctx, a.s)
			for range 4 {
				if err := sendAndSum(ctx, c, []byte("some data")); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
			waitDone(t, "server", a.s)
			a.s.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
