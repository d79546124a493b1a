// Package migrate moves a running process tree to another host over one
// encrypted, multiplexed connection (see package transport), without an
// image written anywhere.
//
// The source and the destination speak over a control stream of JSON
// messages; pages and the image travel on streams of their own:
//
//	source                               destination
//	hello ─────────────────────────────▶ checks version, options
//	      ◀───────────────────────────── welcome (or error)
//	round n + page stream ─────────────▶ merged into the page store     (pre-copy, repeated)
//	image + image stream ──────────────▶ restore, up to "all built, stopped"
//	      ◀───────────────────────────── ready (or error: the source resumes)
//	commit ────────────────────────────▶ resume the tree                (commit point)
//	(source tree killed)  ◀───────────── running
//
// Until the source sends commit, a failure anywhere resumes the source
// and undoes the restore; once it has, the destination runs the tree.
package migrate

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
)

// Version of the protocol; both sides must speak the same.
const Version = 1

// Control message types.
const (
	msgHello   = "hello"
	msgWelcome = "welcome"
	msgRound   = "round"
	msgImage   = "image"
	msgReady   = "ready"
	msgCommit  = "commit"
	msgAbort   = "abort"
	msgRunning = "running"
	msgError   = "error"
	// post-copy
	msgLazy         = "lazy"          // source: the pages left behind, per pid
	msgPostcopyDone = "postcopy-done" // destination: every page is in
)

// message is one control message. Only the fields of its Type are set.
type message struct {
	Type string `json:"type"`

	Version int    `json:"version,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Host    string `json:"host,omitempty"`
	Round   int    `json:"round,omitempty"`
	Mode    string `json:"mode,omitempty"` // stop-and-copy, pre-copy, ...
	// TCP says what the source does with established TCP connections.
	TCP      string `json:"tcp,omitempty"`
	Postcopy bool   `json:"postcopy,omitempty"`
	Compress bool   `json:"compress,omitempty"` // rounds and image in zstd

	Lazy         lazyRanges   `json:"lazy,omitempty"`
	NamespacePID int          `json:"ns_pid,omitempty"`
	RestoreMS    float64      `json:"restore_ms,omitempty"`
	Error        *fault.Error `json:"error,omitempty"`
	Reason       string       `json:"reason,omitempty"`
}

// maxMessage bounds a control message.
const maxMessage = 1 << 20

// writeMessage writes m as a length-prefixed JSON frame.
func writeMessage(w io.Writer, m *message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// readMessage reads one control message.
func readMessage(r io.Reader) (*message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxMessage {
		return nil, fmt.Errorf("%w: control message of %d bytes", errProtocol, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	m := new(message)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: control message: %v", errProtocol, err)
	}
	if m.Type == "" {
		return nil, fmt.Errorf("%w: control message without a type", errProtocol)
	}
	return m, nil
}

var errProtocol = errors.New("protocol error")

// A page stream is a sequence of page frames, ended by the end of the
// stream: a 24-byte header (pid u32, flags u32, addr u64, count u32,
// reserved u32, little endian) followed, unless the zero flag is set, by
// count pages of data.
const (
	frameHeader = 24
	frameZero   = 1
)

// pageFrame is a run of pages of one process.
type pageFrame struct {
	pid   int
	addr  uint64
	count int
	zero  bool
	data  []byte
}

// writeFrame writes one page frame.
func writeFrame(w io.Writer, hdr []byte, f *pageFrame) error {
	var flags uint32
	if f.zero {
		flags = frameZero
	}
	binary.LittleEndian.PutUint32(hdr[0:], uint32(f.pid))
	binary.LittleEndian.PutUint32(hdr[4:], flags)
	binary.LittleEndian.PutUint64(hdr[8:], f.addr)
	binary.LittleEndian.PutUint32(hdr[16:], uint32(f.count))
	binary.LittleEndian.PutUint32(hdr[20:], 0)
	if _, err := w.Write(hdr[:frameHeader]); err != nil {
		return err
	}
	if !f.zero {
		_, err := w.Write(f.data)
		return err
	}
	return nil
}

// readFrame reads the next page frame into f, reusing buf for its data. It
// returns io.EOF at the end of the stream and an error wrapping
// errProtocol for a frame that cannot be right.
func readFrame(r io.Reader, hdr []byte, f *pageFrame, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:frameHeader]); err != nil {
		return buf, err
	}
	pid := binary.LittleEndian.Uint32(hdr[0:])
	flags := binary.LittleEndian.Uint32(hdr[4:])
	addr := binary.LittleEndian.Uint64(hdr[8:])
	count := binary.LittleEndian.Uint32(hdr[16:])
	switch {
	case pid == 0 || pid >= image.MaxPID:
		return buf, fmt.Errorf("%w: page frame for pid %d", errProtocol, pid)
	case flags&^frameZero != 0 || binary.LittleEndian.Uint32(hdr[20:]) != 0:
		return buf, fmt.Errorf("%w: page frame flags %#x", errProtocol, flags)
	case count == 0 || count > image.MaxPagesPerRecord:
		return buf, fmt.Errorf("%w: page frame of %d pages", errProtocol, count)
	case addr%image.PageSize != 0 || addr > math.MaxUint64-uint64(count)*image.PageSize || addr+uint64(count)*image.PageSize > 1<<57:
		return buf, fmt.Errorf("%w: page frame at %#x", errProtocol, addr)
	}
	*f = pageFrame{pid: int(pid), addr: addr, count: int(count), zero: flags&frameZero != 0}
	if f.zero {
		return buf, nil
	}
	n := int(count) * image.PageSize
	if cap(buf) < n {
		buf = make([]byte, image.MaxPagesPerRecord*image.PageSize)
	}
	f.data = buf[:n]
	if _, err := io.ReadFull(r, f.data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	return buf, nil
}
