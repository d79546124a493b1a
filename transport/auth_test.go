package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/fault"
)

func TestMutualAuth(t *testing.T) {
	c, s := pair(t)
	if got := c.PeerCommonName(); got != ServerCommonName {
		t.Errorf("client sees peer %q, want %q", got, ServerCommonName)
	}
	if got := s.PeerCommonName(); got != ClientCommonName {
		t.Errorf("server sees peer %q, want %q", got, ClientCommonName)
	}
	if st := c.tc.ConnectionState(); st.Version != tls.VersionTLS13 {
		t.Errorf("version %#x, want TLS 1.3", st.Version)
	}

	ctx := testCtx(t)
	go func() {
		st, err := s.Accept(ctx)
		if err != nil {
			return
		}
		defer st.Close()
		io.Copy(st, st)
	}()
	st, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteMsg(st, 7, "hello"); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := ReadMsg(st, 0)
	if err != nil || typ != 7 || string(payload) != `"hello"` {
		t.Fatalf("echo: %d %q %v", typ, payload, err)
	}
	st.Close()
	if _, _, err := ReadMsg(st, 0); err != io.EOF {
		t.Fatalf("after close: %v, want io.EOF", err)
	}
	if c.Err() != nil || s.Err() != nil {
		t.Fatalf("live session has an error: %v / %v", c.Err(), s.Err())
	}
}

// TestDialByName checks that an empty server name means the dialed host.
func TestDialByName(t *testing.T) {
	p := newPKI(t, "godwit.test")
	l := listen(t, p.server(t))
	for _, addr := range []string{l.Addr().String(), strings.Replace(l.Addr().String(), "127.0.0.1", "localhost", 1)} {
		acc := acceptOne(t, l)
		c, err := Dial(testCtx(t), addr, p.client(t, ""))
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		a := <-acc
		if a.err != nil {
			t.Fatalf("accept from %s: %v", addr, a.err)
		}
		c.Close()
		a.s.Close()
	}
	// The name given to ClientConfig wins over the address.
	acc := acceptOne(t, l)
	c, err := Dial(testCtx(t), l.Addr().String(), p.client(t, "godwit.test"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if a := <-acc; a.err != nil {
		t.Fatal(a.err)
	} else {
		a.s.Close()
	}
}

// refusal dials l with cfg and checks the typed errors of both sides.
func refusal(t *testing.T, l *Listener, cfg *tls.Config, code fault.Code) (dialErr, acceptErr error) {
	t.Helper()
	acc := acceptOne(t, l)
	c, err := Dial(testCtx(t), l.Addr().String(), cfg)
	if err == nil {
		c.Close()
	}
	wantFault(t, "client", err, code, ErrHandshake)
	a := <-acc
	if a.err == nil {
		a.s.Close()
	}
	wantFault(t, "server", a.err, code, ErrHandshake)
	t.Logf("client: %v", err)
	t.Logf("server: %v", a.err)
	return err, a.err
}

func TestClientFromOtherCARefused(t *testing.T) {
	ours, theirs := newPKI(t), newPKI(t)
	l := listen(t, ours.server(t))
	// The client trusts our CA but presents a certificate of another CA.
	cfg := ours.client(t, "")
	cfg.Certificates = theirs.client(t, "").Certificates
	_, acceptErr := refusal(t, l, cfg, fault.CodeAuth)
	var unknown x509.UnknownAuthorityError
	if !errors.As(acceptErr, &unknown) {
		t.Errorf("server error does not wrap x509.UnknownAuthorityError: %v", acceptErr)
	}
	if !errors.Is(acceptErr, fault.ErrAuth) {
		t.Errorf("server error is not fault.ErrAuth")
	}

	// The listener goes on serving.
	acc := acceptOne(t, l)
	c, err := Dial(testCtx(t), l.Addr().String(), ours.client(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if a := <-acc; a.err != nil {
		t.Fatal(a.err)
	} else {
		a.s.Close()
	}
}

func TestServerFromOtherCARefused(t *testing.T) {
	ours, theirs := newPKI(t), newPKI(t)
	// The server trusts our client (it has our CA) but presents another
	// CA's certificate, which the client does not trust.
	srv := theirs.server(t)
	srv.ClientCAs = ours.server(t).ClientCAs
	l := listen(t, srv)
	dialErr, _ := refusal(t, l, ours.client(t, ""), fault.CodeAuth)
	if !strings.Contains(dialErr.Error(), "unknown authority") {
		t.Errorf("client error does not say unknown authority: %v", dialErr)
	}
}

func TestWrongServerNameRefused(t *testing.T) {
	p := newPKI(t, "right.test")
	l := listen(t, p.server(t))
	dialErr, _ := refusal(t, l, p.client(t, "wrong.test"), fault.CodeAuth)
	if !strings.Contains(dialErr.Error(), "wrong.test") {
		t.Errorf("client error does not name the host: %v", dialErr)
	}
}

func TestServerCertAsClientRefused(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p.server(t))
	cfg := p.client(t, "")
	cfg.Certificates = p.server(t).Certificates // made for server auth only
	refusal(t, l, cfg, fault.CodeAuth)
}

func TestOldTLSRefused(t *testing.T) {
	p := newPKI(t)

	t.Run("client", func(t *testing.T) {
		l := listen(t, p.server(t))
		acc := acceptOne(t, l)
		cfg := p.client(t, "127.0.0.1")
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		c, err := tls.Dial("tcp", l.Addr().String(), cfg)
		if err == nil {
			c.Close()
			t.Fatal("TLS 1.2 client connected")
		}
		a := <-acc
		wantFault(t, "server", a.err, fault.CodeUnsupported, ErrHandshake)
		t.Logf("server: %v", a.err)
	})

	t.Run("server", func(t *testing.T) {
		cfg := p.server(t)
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}()
		s, err := Dial(testCtx(t), ln.Addr().String(), p.client(t, ""))
		if err == nil {
			s.Close()
		}
		wantFault(t, "client", err, fault.CodeUnsupported, ErrHandshake)
		t.Logf("client: %v", err)
	})
}

func TestNoClientCertRefused(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p.server(t))
	acc := acceptOne(t, l)
	cfg := p.client(t, "127.0.0.1")
	cfg.Certificates = nil
	if c, err := tls.Dial("tcp", l.Addr().String(), cfg); err == nil {
		// TLS 1.3: the client only learns of the refusal when it reads.
		c.Read(make([]byte, 1))
		c.Close()
	}
	a := <-acc
	wantFault(t, "server", a.err, fault.CodeAuth, ErrHandshake)
	t.Logf("server: %v", a.err)

	_, err := Dial(testCtx(t), l.Addr().String(), cfg)
	wantFault(t, "dial without certificate", err, fault.CodeInvalidArgument)
}

func TestNotGodwitPeer(t *testing.T) {
	p := newPKI(t)
	// A TLS server with the right certificates that speaks something else.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.server(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		c.Close()
	}()
	_, err = Dial(testCtx(t), ln.Addr().String(), p.client(t, ""))
	wantFault(t, "client", err, fault.CodeUnsupported, ErrHandshake)
	t.Logf("client: %v", err)
}

func TestConfigChecks(t *testing.T) {
	p := newPKI(t)

	srv := p.server(t)
	srv.ClientAuth = tls.VerifyClientCertIfGiven
	_, err := Listen("127.0.0.1:0", srv)
	wantFault(t, "listen without client auth", err, fault.CodeInvalidArgument)
	_, err = Listen("127.0.0.1:0", nil)
	wantFault(t, "listen without config", err, fault.CodeInvalidArgument)

	cli := p.client(t, "")
	cli.InsecureSkipVerify = true
	_, err = Dial(testCtx(t), "127.0.0.1:1", cli)
	wantFault(t, "dial skipping verification", err, fault.CodeInvalidArgument)
	_, err = Dial(testCtx(t), "no-port", p.client(t, ""))
	wantFault(t, "dial without port", err, fault.CodeInvalidArgument)

	// Nothing listens on a port we just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Dial(testCtx(t), addr, p.client(t, ""))
	wantFault(t, "dial closed port", err, fault.CodeIO)
	if errors.Is(err, ErrHandshake) {
		t.Errorf("connect failure reads as a handshake failure: %v", err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	p := newPKI(t)
	missing := p.file("missing.pem")
	_, err := ServerConfig(missing, p.file(ServerKeyFile), p.file(CACertFile))
	wantFault(t, "missing cert", err, fault.CodeIO, os.ErrNotExist)
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Path != missing {
		t.Errorf("error path %q, want %q", fe.Path, missing)
	}
	_, err = ClientConfig(p.file(ClientCertFile), p.file(ServerKeyFile), p.file(CACertFile), "")
	wantFault(t, "mismatched key", err, fault.CodeInvalidArgument)
	_, err = ClientConfig(p.file(ClientCertFile), p.file(ClientKeyFile), p.file(ClientKeyFile), "")
	wantFault(t, "key as CA", err, fault.CodeInvalidArgument)
	_, err = ClientConfig(p.file(ClientCertFile), p.file(ClientKeyFile), missing, "")
	wantFault(t, "missing CA", err, fault.CodeIO, os.ErrNotExist)

	for _, cfg := range []*tls.Config{p.server(t), p.client(t, "")} {
		if cfg.MinVersion != tls.VersionTLS13 || cfg.MaxVersion != tls.VersionTLS13 {
			t.Errorf("versions %#x..%#x, want TLS 1.3 only", cfg.MinVersion, cfg.MaxVersion)
		}
	}
	if cfg := p.server(t); cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Errorf("server config does not require client certificates")
	}
}

func TestListenerClose(t *testing.T) {
	p := newPKI(t)
	l := listen(t, p.server(t))
	acc := acceptOne(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	a := <-acc
	wantFault(t, "accept after close", a.err, fault.CodeIO, net.ErrClosed)
	if err := l.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}

	l = listen(t, p.server(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Accept(ctx)
	wantFault(t, "accept with canceled context", err, fault.CodeIO)
}

func TestSilentTLSPeer(t *testing.T) {
	p := newPKI(t)
	// A TLS server with the right certificates that waits for the client to
	// speak first, as an HTTPS server would.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.server(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Read(make([]byte, 1))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, ln.Addr().String(), p.client(t, ""))
	wantFault(t, "client", err, fault.CodeIO, ErrHandshake, context.DeadlineExceeded)
	t.Logf("client: %v", err)
}
