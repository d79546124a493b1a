// Package transport is the one encrypted connection that carries a whole
// migration: a single TCP connection secured with TLS 1.3 and mutual
// certificate authentication, multiplexed into any number of independent
// streams.
//
// # Layers
//
//	TCP ─ TLS 1.3 (both sides present certificates signed by one CA)
//	    ─ preamble: each side writes "gdwtmux" + version byte (1), then reads the peer's
//	    ─ yamux v0 frames: 12-byte header (version, type, flags, stream id, length),
//	      data frames of at most 256 KiB, per-stream windows of up to 4 MiB
//	    ─ streams (net.Conn); on a stream, control messages use WriteMsg/ReadMsg
//
// The preamble does two jobs: it tells a godwit transport from anything else
// that speaks TLS, and it makes [Dial] fail when the server refuses the
// client's certificate. In TLS 1.3 the client finishes its handshake before
// the server has checked the client certificate; the server's verdict (its
// preamble, or a bad_certificate alert) is what Dial waits for.
//
// # Authentication
//
// [ServerConfig] and [ClientConfig] build tls.Configs that allow TLS 1.3
// only. The server requires a client certificate and verifies it against the
// CA; the client verifies the server's chain against the same CA and checks
// that the certificate names the host it dialed (or the server name given to
// ClientConfig). [Listen] and [Dial] refuse configurations that would weaken
// this (no client certificate, InsecureSkipVerify, no ClientAuth) and pin the
// protocol version to TLS 1.3 whatever the config says. [GeneratePKI] writes
// a CA and a server and a client certificate for tests and for
// "godwit certs".
//
// # Errors
//
// Every error is a *fault.Error. errors.Is tells the kind:
//
//   - [ErrHandshake]: TLS or preamble failed. fault.CodeAuth when a
//     certificate was refused (unknown CA, wrong name, expired, missing),
//     fault.CodeUnsupported when the peer does not speak TLS 1.3 or this
//     transport's version, fault.CodeIO otherwise. Both sides see it: Dial on
//     the client, Listener.Accept on the server.
//   - [ErrConnectionLost]: the session ended other than by this side's Close
//     (peer closed it, connection cut, keepalive unanswered).
//   - net.ErrClosed: this side closed the session or listener.
//   - os.ErrDeadlineExceeded: a stream deadline passed.
//   - [ErrMsgTooLarge], io.ErrUnexpectedEOF: a bad control message frame.
//
// # Liveness
//
// Each session pings its peer every [KeepAliveInterval] and gives up when an
// answer takes longer than [KeepAliveTimeout]: a peer that vanishes without
// closing the connection (host down, network cut, cable pulled) is noticed
// within KeepAliveInterval + KeepAliveTimeout (6 s). A connection that is
// closed or reset is noticed at once. Either way [Session.Done] is closed,
// every blocked stream Read and Write returns an error wrapping
// ErrConnectionLost, and [Session.Err] says why.
//
// The ping waits behind data already queued in both directions: at most one
// 256 KiB frame per busy stream plus the kernel's socket buffers. A link that
// cannot move that much within KeepAliveTimeout (slower than roughly
// 30 Mbit/s with a few busy streams) may be taken for a dead one.
//
// A stream reads io.EOF only when the peer closed that stream; a stream cut
// short by the end of its session reads an error instead, so a truncated
// transfer never looks complete.
//
// # Control messages
//
// [WriteMsg] and [ReadMsg] frame small control messages on a stream:
//
//	+----------------+---------+------------------------+
//	| length: u32 BE | type u8 | payload: length bytes  |
//	+----------------+---------+------------------------+
//
// The payload is JSON. ReadMsg refuses frames longer than the caller's limit
// before reading their payload.
package transport
