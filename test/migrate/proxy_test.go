package migrate_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutProxy is a TCP proxy between godwit migrate and godwit serve that
// forwards bytes both ways and, on the first connection, cuts the
// connection (closes both sides) at a point of the client's byte stream:
// after a number of bytes, or where a TLS record of the client begins.
// Later connections are refused.
type cutProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	rule   cutRule

	mu       sync.Mutex
	conns    int
	cut      bool  // the connection was cut
	cutAt    int64 // bytes of the client forwarded when it was cut
	fromSrv  int64 // bytes of the server forwarded
	records  []string
	finished chan struct{}
}

// cutRule says where to cut the client's stream.
type cutRule struct {
	// afterBytes: forward this many bytes of the client, then cut.
	afterBytes int64
	// afterAppRecords: forward this many TLS application-data records
	// (type 23) of the client, and cut where the next one begins.
	afterAppRecords int
	// onSignal: cut both ways when this channel is closed.
	onSignal <-chan struct{}
}

func (r cutRule) String() string {
	if r.afterBytes > 0 {
		return fmt.Sprintf("after %d bytes from the client", r.afterBytes)
	}
	if r.onSignal != nil {
		return "on a signal of the test"
	}
	return fmt.Sprintf("after %d TLS application-data records from the client", r.afterAppRecords)
}

// startCutProxy listens on 127.0.0.1 and forwards to target.
func startCutProxy(t *testing.T, target string, rule cutRule) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, target: target, rule: rule, finished: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-p.finished:
		case <-time.After(30 * time.Second):
			t.Errorf("the proxy's connection did not end")
		}
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	first := true
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if first {
				close(p.finished)
			}
			return
		}
		p.mu.Lock()
		p.conns++
		p.mu.Unlock()
		if !first {
			c.Close()
			continue
		}
		first = false
		go func() {
			defer close(p.finished)
			p.relay(c)
		}()
	}
}

// relay forwards between the client c and a new connection to the target
// until either side ends or the rule cuts.
func (p *cutProxy) relay(c net.Conn) {
	defer c.Close()
	s, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		p.t.Errorf("proxy: dial %s: %v", p.target, err)
		return
	}
	defer s.Close()
	var once sync.Once
	cut := func(at int64) {
		once.Do(func() {
			p.mu.Lock()
			p.cut, p.cutAt = true, at
			p.mu.Unlock()
			c.Close()
			s.Close()
		})
	}
	done := make(chan struct{})
	if p.rule.onSignal != nil {
		go func() {
			select {
			case <-p.rule.onSignal:
				cut(-1)
			case <-done:
			}
		}()
	}
	go func() {
		defer close(done)
		n, _ := io.Copy(c, s)
		p.mu.Lock()
		p.fromSrv = n
		p.mu.Unlock()
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	var rec recordScanner
	var sent int64
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			fwd, stop := len(chunk), false
			if p.rule.afterBytes > 0 && sent+int64(n) >= p.rule.afterBytes {
				fwd, stop = int(p.rule.afterBytes-sent), true
			}
			if p.rule.afterAppRecords > 0 {
				if at, ok := rec.scan(chunk, p.rule.afterAppRecords); ok {
					fwd, stop = at, true
				}
			}
			if fwd > 0 {
				if _, err := s.Write(chunk[:fwd]); err != nil {
					break
				}
			}
			sent += int64(fwd)
			if stop {
				p.mu.Lock()
				p.records = rec.seen
				p.mu.Unlock()
				cut(sent)
				break
			}
		}
		if err != nil {
			if tc, ok := s.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			break
		}
	}
	// The client is done (or cut): let the server's last bytes through,
	// then end both sides.
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	c.Close()
	s.Close()
	<-done
}

// report says what the proxy did, for the log.
func (p *cutProxy) report() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("proxy (%s): %d connections, cut %v after %d client bytes, %d server bytes forwarded; client records %s",
		p.rule, p.conns, p.cut, p.cutAt, p.fromSrv, strings.Join(p.records, " "))
}

// wasCut reports whether the proxy cut the connection.
func (p *cutProxy) wasCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// recordScanner follows the TLS record headers (type, version, length) of
// one direction of a connection.
type recordScanner struct {
	hdr  [5]byte
	nhdr int
	left int // body bytes of the current record still to pass
	app  int // application-data records begun
	seen []string
}

// scan passes b; when the application-data record number limit+1 begins in
// b it returns its offset and true.
func (r *recordScanner) scan(b []byte, limit int) (int, bool) {
	for i := 0; i < len(b); {
		if r.left > 0 {
			k := min(r.left, len(b)-i)
			r.left -= k
			i += k
			continue
		}
		if r.nhdr == 0 && b[i] == 23 {
			if r.app == limit {
				return i, true
			}
			r.app++
		}
		r.hdr[r.nhdr] = b[i]
		r.nhdr++
		i++
		if r.nhdr == len(r.hdr) {
			r.left = int(binary.BigEndian.Uint16(r.hdr[3:5]))
			r.seen = append(r.seen, fmt.Sprintf("%d/%d", r.hdr[0], r.left))
			r.nhdr = 0
		}
	}
	return 0, false
}
