package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/godwit-dev/godwit/fault"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no certificate", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGeneratePKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "certs")
	if err := GeneratePKI(dir, []string{"Dest.Example", "10.1.2.3", "[fd00::1]", "dest.example"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir: %v %v, want mode 0700", fi.Mode(), err)
	}
	for _, name := range []string{CAKeyFile, ServerKeyFile, ClientKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name[:len(name)-len("-key.pem")]+".pem"), filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		k, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok || k.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", name, pair.PrivateKey)
		}
	}

	ca := readCert(t, filepath.Join(dir, CACertFile))
	srv := readCert(t, filepath.Join(dir, ServerCertFile))
	cli := readCert(t, filepath.Join(dir, ClientCertFile))
	if !ca.IsCA || ca.Subject.CommonName != CACommonName {
		t.Errorf("CA: IsCA %v, CN %q", ca.IsCA, ca.Subject.CommonName)
	}
	for _, c := range []*x509.Certificate{ca, srv, cli} {
		if d := time.Until(c.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
			t.Errorf("%s valid for another %v, want a year", c.Subject.CommonName, d)
		}
		if c.NotBefore.After(time.Now()) {
			t.Errorf("%s not valid yet", c.Subject.CommonName)
		}
	}
	if want := []string{"dest.example", "localhost"}; !slices.Equal(srv.DNSNames, want) {
		t.Errorf("server DNS names %q, want %q", srv.DNSNames, want)
	}
	var ips []string
	for _, ip := range srv.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"10.1.2.3", "fd00::1", "127.0.0.1", "::1"}; !slices.Equal(ips, want) {
		t.Errorf("server IPs %q, want %q", ips, want)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, host := range []string{"dest.example", "10.1.2.3", "fd00::1", "localhost", "127.0.0.1"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if err := srv.VerifyHostname("other.example"); err == nil {
		t.Error("server certificate valid for other.example")
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: roots}); err == nil {
		t.Error("client certificate usable for server authentication")
	}
	if net.ParseIP("fd00::1") == nil {
		t.Fatal("bad test")
	}
}

func TestGeneratePKIRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, ServerKeyFile)
	if err := os.WriteFile(keep, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := GeneratePKI(dir, nil)
	wantFault(t, "existing file", err, fault.CodeInvalidArgument, fs.ErrExist)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("wrote files next to an existing one: %v", entries)
	}
	if data, _ := os.ReadFile(keep); string(data) != "old" {
		t.Error("existing file overwritten")
	}
}

func TestGeneratePKIBadHosts(t *testing.T) {
	for _, h := range []string{"", "host:7070", "10.0.0.1:7070", "a b", "a/b"} {
		err := GeneratePKI(t.TempDir(), []string{h})
		wantFault(t, "host "+h, err, fault.CodeInvalidArgument)
	}
	err := GeneratePKI("", nil)
	wantFault(t, "empty dir", err, fault.CodeInvalidArgument)
	if errors.Is(err, fs.ErrExist) {
		t.Error("confused error")
	}
}
