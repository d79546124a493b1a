package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"reflect"
	"strings"

	"github.com/godwit-dev/godwit/fault"
)

// Sentinels for errors.Is. Errors of this package are *fault.Error values
// that wrap one of these (and the underlying cause).
var (
	// ErrHandshake: the TLS handshake or the transport preamble failed.
	ErrHandshake = errors.New("handshake failed")
	// ErrConnectionLost: the session ended other than by this side's Close.
	ErrConnectionLost = errors.New("connection lost")
	// ErrMsgTooLarge: a control message is longer than the limit.
	ErrMsgTooLarge = errors.New("message too large")
)

// tagged is an error that reads as its cause but also matches a sentinel.
type tagged struct {
	sentinel error
	cause    error
}

func (t *tagged) Error() string   { return t.cause.Error() }
func (t *tagged) Unwrap() []error { return []error{t.sentinel, t.cause} }

// tag returns cause marked with sentinel; a nil cause reads as the sentinel.
func tag(sentinel, cause error) error {
	if cause == nil {
		return sentinel
	}
	return &tagged{sentinel: sentinel, cause: cause}
}

// TLS alert numbers (RFC 8446 section 6) that mean a certificate was refused.
const (
	alertHandshakeFailure    = 40
	alertBadCertificate      = 42
	alertUnsupportedCert     = 43
	alertCertificateRevoked  = 44
	alertCertificateExpired  = 45
	alertCertificateUnknown  = 46
	alertUnknownCA           = 48
	alertAccessDenied        = 49
	alertProtocolVersion     = 70
	alertCertificateRequired = 116
)

// remoteAlert returns the number of the TLS alert the peer sent, if err is
// one. crypto/tls reports received alerts as a *net.OpError "remote error"
// around an unexported uint8 type.
func remoteAlert(err error) (uint8, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 {
		return 0, false
	}
	return uint8(v.Uint()), true
}

// handshakeError classifies a failed handshake on the client (server false)
// or server side into a *fault.Error wrapping ErrHandshake and err.
func handshakeError(op, addr string, server bool, err error) error {
	fe := &fault.Error{Code: fault.CodeIO, Op: op, Path: addr, Msg: "tls handshake failed", Err: tag(ErrHandshake, err)}
	us, peer := "client", "server"
	if server {
		us, peer = "server", "client"
	}
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		fe.Code = fault.CodeAuth
		var unknown x509.UnknownAuthorityError
		var host x509.HostnameError
		var invalid x509.CertificateInvalidError
		switch {
		case errors.As(err, &unknown):
			fe.Remedy = "the " + peer + "'s certificate is not signed by this side's CA; both sides need certificates from one godwit certs run"
		case errors.As(err, &host):
			fe.Remedy = "the server's certificate does not name the host that was dialed; regenerate it with godwit certs --host NAME, or dial a name it lists"
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			fe.Remedy = "the " + peer + "'s certificate is expired or not yet valid; check both clocks or regenerate the certificates"
		case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
			fe.Remedy = "the " + peer + "'s certificate is not made for the " + peer + " role; use " + peer + ".pem from godwit certs"
		default:
			fe.Remedy = "the " + peer + "'s certificate was refused; both sides need certificates from one godwit certs run"
		}
		return fe
	}
	if a, ok := remoteAlert(err); ok {
		switch a {
		case alertProtocolVersion:
			fe.Code, fe.Remedy = fault.CodeUnsupported, "the "+peer+" does not speak TLS 1.3; both sides must"
		case alertBadCertificate, alertUnsupportedCert, alertCertificateRevoked, alertCertificateExpired,
			alertCertificateUnknown, alertUnknownCA, alertAccessDenied, alertCertificateRequired, alertHandshakeFailure:
			fe.Code = fault.CodeAuth
			fe.Remedy = "the " + peer + " refused this " + us + "'s certificate; both sides need certificates from the same CA"
			if !server {
				fe.Remedy += ", and the client needs client.pem, not server.pem"
			} else {
				fe.Remedy += ", and the server's certificate must name the host the client dialed"
			}
		}
		return fe
	}
	// Errors crypto/tls reports as text only.
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "unsupported protocol version"):
		fe.Code, fe.Remedy = fault.CodeUnsupported, "the "+peer+" does not speak TLS 1.3; both sides must"
	case strings.Contains(msg, "didn't provide a certificate"):
		fe.Code, fe.Remedy = fault.CodeAuth, "the client sent no certificate; give it client.pem and client-key.pem"
	}
	return fe
}
