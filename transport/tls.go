package transport

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"github.com/godwit-dev/godwit/fault"
)

// ServerConfig returns the TLS configuration of the listening side: TLS 1.3
// only, presenting the certificate in certFile (with its key in keyFile) and
// requiring every client to present a certificate that chains to the CA in
// caFile and is made for client authentication.
func ServerConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cfg, pool, err := baseConfig("server config", certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = pool
	// No resumption: every connection proves its certificate afresh.
	cfg.SessionTicketsDisabled = true
	return cfg, nil
}

// ClientConfig returns the TLS configuration of the dialing side: TLS 1.3
// only, presenting the certificate in certFile (with its key in keyFile) and
// accepting only a server whose certificate chains to the CA in caFile and
// names serverName. When serverName is empty, [Dial] fills in the host of the
// address it dials, so the server's certificate must name that host name or
// IP address; the CA alone is never enough.
func ClientConfig(certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	cfg, pool, err := baseConfig("client config", certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = pool
	cfg.ServerName = serverName
	return cfg, nil
}

// baseConfig is what both sides share: TLS 1.3 only, their certificate,
// and the pool of the CA that signs the other side's.
func baseConfig(op, certFile, keyFile, caFile string) (*tls.Config, *x509.CertPool, error) {
	cert, err := loadKeyPair(op, certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	pool, err := loadCA(op, caFile)
	if err != nil {
		return nil, nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}, pool, nil
}

func loadKeyPair(op, certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &fault.Error{Code: fault.CodeIO, Op: op, Path: certFile, Msg: "read certificate", Err: err,
			Remedy: "create certificates with godwit certs --dir DIR"}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &fault.Error{Code: fault.CodeIO, Op: op, Path: keyFile, Msg: "read key", Err: err,
			Remedy: "create certificates with godwit certs --dir DIR"}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Path: certFile,
			Msg: "certificate and key " + keyFile + " are not a usable pair", Err: err}
	}
	return cert, nil
}

func loadCA(op, caFile string) (*x509.CertPool, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeIO, Op: op, Path: caFile, Msg: "read CA certificate", Err: err,
			Remedy: "create certificates with godwit certs --dir DIR"}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Path: caFile, Msg: "no PEM certificate in CA file"}
	}
	return pool, nil
}
