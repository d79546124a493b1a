package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/fault"
)

// pki is a directory written by GeneratePKI.
type pki string

func newPKI(t testing.TB, hosts ...string) pki {
	t.Helper()
	dir := t.TempDir()
	if err := GeneratePKI(dir, hosts); err != nil {
		t.Fatal(err)
	}
	return pki(dir)
}

func (p pki) file(name string) string { return filepath.Join(string(p), name) }

func (p pki) server(t testing.TB) *tls.Config {
	t.Helper()
	cfg, err := ServerConfig(p.file(ServerCertFile), p.file(ServerKeyFile), p.file(CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (p pki) client(t testing.TB, serverName string) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(p.file(ClientCertFile), p.file(ClientKeyFile), p.file(CACertFile), serverName)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func listen(t testing.TB, cfg *tls.Config) *Listener {
	t.Helper()
	l, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// testCtx is a context that ends with the test, or after a minute: no test
// here should take that long.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type acceptOut struct {
	s   *Session
	err error
}

// acceptOne runs l.Accept in the background.
func acceptOne(t testing.TB, l *Listener) <-chan acceptOut {
	ch := make(chan acceptOut, 1)
	ctx := testCtx(t)
	go func() {
		s, err := l.Accept(ctx)
		ch <- acceptOut{s, err}
	}()
	return ch
}

// pair returns the client and server ends of a session over loopback.
func pair(t testing.TB) (client, server *Session) {
	t.Helper()
	p := newPKI(t)
	l := listen(t, p.server(t))
	acc := acceptOne(t, l)
	c, err := Dial(testCtx(t), l.Addr().String(), p.client(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	a := <-acc
	if a.err != nil {
		c.Close()
		t.Fatal(a.err)
	}
	t.Cleanup(func() { c.Close(); a.s.Close() })
	return c, a.s
}

// wantFault fails t unless err is a *fault.Error of code that wraps each of
// targets.
func wantFault(t testing.TB, what string, err error, code fault.Code, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %s", what, code)
	}
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("%s: error %T %q is not a *fault.Error", what, err, err)
	}
	if fe.Code != code {
		t.Errorf("%s: code %s, want %s (error: %v)", what, fe.Code, code, err)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s: error %q does not wrap %q", what, err, target)
		}
	}
}

// waitDone waits for s to end, failing the test if that takes a minute.
func waitDone(t testing.TB, what string, s *Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(time.Minute):
		t.Fatalf("%s: session did not end", what)
	}
}
