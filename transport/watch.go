package transport

import (
	"encoding/binary"
	"net"
	"sync"
)

// yamux v0 framing, as far as watchConn needs it (hashicorp/yamux spec.md).
const (
	muxHeaderSize = 12
	muxTypeData   = 0
	muxFlagFIN    = 1 << 2
)

// watchConn is the connection yamux runs on. It records the first error of
// the connection underneath, and follows the incoming yamux frame headers to
// remember which streams the peer half-closed (FIN), so that a stream whose
// session died can tell a real end of stream from a cut one: yamux reports
// both as io.EOF.
//
// Read is called by yamux's receive goroutine only; the header parser state
// is owned by it. fins is guarded by mu.
type watchConn struct {
	net.Conn
	onErr func(error) // called with every Read or Write error

	hdr  [muxHeaderSize]byte
	nhdr int    // bytes of hdr filled
	skip uint32 // payload bytes of the current data frame still to pass

	// fins holds the streams the peer sent FIN on until their io.EOF is
	// read; a stream never read to its end keeps its entry until the
	// session goes.
	mu   sync.Mutex
	fins map[uint32]bool
}

func newWatchConn(c net.Conn, onErr func(error)) *watchConn {
	return &watchConn{Conn: c, onErr: onErr, fins: map[uint32]bool{}}
}

func (w *watchConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.observe(p[:n])
	if err != nil {
		w.onErr(err)
	}
	return n, err
}

func (w *watchConn) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	if err != nil {
		w.onErr(err)
	}
	return n, err
}

// observe follows the frame headers in the next bytes of the stream. The
// bytes reach yamux only after observe returns, so a FIN is recorded before
// yamux can report its io.EOF.
func (w *watchConn) observe(p []byte) {
	for len(p) > 0 {
		if w.skip > 0 {
			if uint64(len(p)) < uint64(w.skip) {
				w.skip -= uint32(len(p))
				return
			}
			p, w.skip = p[w.skip:], 0
			continue
		}
		n := copy(w.hdr[w.nhdr:], p)
		p, w.nhdr = p[n:], w.nhdr+n
		if w.nhdr < muxHeaderSize {
			return
		}
		w.nhdr = 0
		typ := w.hdr[1]
		flags := binary.BigEndian.Uint16(w.hdr[2:4])
		id := binary.BigEndian.Uint32(w.hdr[4:8])
		length := binary.BigEndian.Uint32(w.hdr[8:12])
		if flags&muxFlagFIN != 0 && id != 0 {
			w.mu.Lock()
			w.fins[id] = true
			w.mu.Unlock()
		}
		if typ == muxTypeData {
			w.skip = length
		}
	}
}

// takeFIN reports whether the peer half-closed stream id, and forgets it.
func (w *watchConn) takeFIN(id uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	fin := w.fins[id]
	delete(w.fins, id)
	return fin
}
