package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-dev/godwit/fault"
)

// Names of the files GeneratePKI writes.
const (
	CACertFile     = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server-key.pem"
	ClientCertFile = "client.pem"
	ClientKeyFile  = "client-key.pem"
)

// Common names of the certificates GeneratePKI issues, as
// [Session.PeerCommonName] reports them.
const (
	CACommonName     = "godwit CA"
	ServerCommonName = "godwit server"
	ClientCommonName = "godwit client"
)

// certValidity is how long GeneratePKI's certificates are valid.
const certValidity = 365 * 24 * time.Hour

// GeneratePKI creates dir (mode 0700) if needed and writes a new CA and a
// server and a client certificate signed by it: CACertFile, CAKeyFile,
// ServerCertFile, ServerKeyFile, ClientCertFile and ClientKeyFile. Keys are
// ECDSA P-256 in PKCS #8, written with mode 0600; certificates are valid for
// one year (from an hour ago, to forgive clock skew). The server certificate
// names every entry of hosts (host names or IP addresses) plus localhost,
// 127.0.0.1 and ::1.
//
// GeneratePKI never overwrites: when any of the six files exists it writes
// nothing and returns an error. On failure it removes what it wrote.
func GeneratePKI(dir string, hosts []string) error {
	const op = "generate certificates"
	if dir == "" {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Msg: "no directory given"}
	}
	dnsNames, ips, err := sans(hosts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &fault.Error{Code: fault.CodeIO, Op: op, Path: dir, Msg: "create directory", Err: err}
	}
	names := []string{CACertFile, CAKeyFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Lstat(p); err == nil {
			return &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Path: p, Msg: "already exists",
				Err: fs.ErrExist, Remedy: "remove the old files or choose another directory"}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return &fault.Error{Code: fault.CodeIO, Op: op, Path: p, Err: err}
		}
	}

	now := time.Now()
	caKey, caDER, err := issue(op, &x509.Certificate{
		Subject:               pkix.Name{CommonName: CACommonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, nil, nil)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return &fault.Error{Code: fault.CodeInternal, Op: op, Msg: "parse new CA certificate", Err: err}
	}
	serverKey, serverDER, err := issue(op, &x509.Certificate{
		Subject:     pkix.Name{CommonName: ServerCommonName},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(certValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, caCert, caKey)
	if err != nil {
		return err
	}
	clientKey, clientDER, err := issue(op, &x509.Certificate{
		Subject:     pkix.Name{CommonName: ClientCommonName},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(certValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	if err != nil {
		return err
	}

	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CACertFile, certPEM(caDER), 0o644},
		{CAKeyFile, nil, 0o600},
		{ServerCertFile, certPEM(serverDER), 0o644},
		{ServerKeyFile, nil, 0o600},
		{ClientCertFile, certPEM(clientDER), 0o644},
		{ClientKeyFile, nil, 0o600},
	}
	for i, k := range []*ecdsa.PrivateKey{caKey, serverKey, clientKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return &fault.Error{Code: fault.CodeInternal, Op: op, Msg: "encode key", Err: err}
		}
		files[2*i+1].data = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := writeNew(p, f.data, f.mode); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			return &fault.Error{Code: fault.CodeIO, Op: op, Path: p, Msg: "write", Err: err}
		}
		written = append(written, p)
	}
	return nil
}

// sans splits hosts into DNS names and IP addresses and adds the loopback
// names; duplicates are dropped.
func sans(hosts []string) ([]string, []net.IP, error) {
	var dnsNames []string
	var ips []net.IP
	seen := map[string]bool{}
	for _, h := range append(append([]string{}, hosts...), "localhost", "127.0.0.1", "::1") {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" || strings.ContainsAny(h, " /:") && net.ParseIP(h) == nil {
			return nil, nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "generate certificates",
				Msg: "bad host " + strconv.Quote(h), Remedy: "give a host name or an IP address, without a port"}
		}
		if ip := net.ParseIP(h); ip != nil {
			if seen[ip.String()] {
				continue
			}
			seen[ip.String()] = true
			ips = append(ips, ip)
			continue
		}
		h = strings.ToLower(h)
		if seen[h] {
			continue
		}
		seen[h] = true
		dnsNames = append(dnsNames, h)
	}
	return dnsNames, ips, nil
}

// issue creates a P-256 key and a certificate for it from tmpl, signed by
// parent's key (self-signed when parent is nil).
func issue(op string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, &fault.Error{Code: fault.CodeInternal, Op: op, Msg: "generate key", Err: err}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, &fault.Error{Code: fault.CodeInternal, Op: op, Msg: "generate serial number", Err: err}
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, &fault.Error{Code: fault.CodeInternal, Op: op, Msg: "sign " + tmpl.Subject.CommonName, Err: err}
	}
	return key, der, nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeNew writes data to a file that must not exist yet, with mode perm.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
