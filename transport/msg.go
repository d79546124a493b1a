package transport

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/godwit-dev/godwit/fault"
)

// MaxMsgSize is the largest payload WriteMsg sends, and the limit ReadMsg
// applies when it is given none.
const MaxMsgSize = 1 << 20

// msgHeaderSize is the length of a frame's header: u32 length, u8 type.
const msgHeaderSize = 5

// WriteMsg sends one control message of type typ whose payload is v encoded
// as JSON, in a single Write, so concurrent WriteMsg calls on one stream do
// not interleave. A payload longer than MaxMsgSize is refused.
func WriteMsg(w io.Writer, typ uint8, v any) error {
	const op = "write message"
	payload, err := json.Marshal(v)
	if err != nil {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: op, Msg: fmt.Sprintf("encode type %d", typ), Err: err}
	}
	if len(payload) > MaxMsgSize {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: op,
			Msg: fmt.Sprintf("type %d: payload of %d bytes exceeds the limit of %d", typ, len(payload), MaxMsgSize),
			Err: ErrMsgTooLarge}
	}
	frame := make([]byte, msgHeaderSize+len(payload))
	binary.BigEndian.PutUint32(frame, uint32(len(payload)))
	frame[4] = typ
	copy(frame[msgHeaderSize:], payload)
	if _, err := w.Write(frame); err != nil {
		return msgIOErr(op, err)
	}
	return nil
}

// ReadMsg reads one control message and returns its type and payload
// (JSON, for WriteMsg's messages). A payload longer than max bytes (or
// MaxMsgSize when max <= 0) is refused before it is read, with an error
// wrapping [ErrMsgTooLarge]; the stream is then out of step and should be
// closed. At a clean end of r, between messages, ReadMsg returns io.EOF
// itself; an end inside a message is an error wrapping io.ErrUnexpectedEOF.
func ReadMsg(r io.Reader, max int) (typ uint8, payload []byte, err error) {
	const op = "read message"
	if max <= 0 {
		max = MaxMsgSize
	}
	var hdr [msgHeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, nil, &fault.Error{Code: fault.CodeIO, Op: op,
				Msg: fmt.Sprintf("truncated header: %d of %d bytes", n, msgHeaderSize), Err: err}
		}
		return 0, nil, msgIOErr(op, err)
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	typ = hdr[4]
	if uint64(size) > uint64(max) {
		return typ, nil, &fault.Error{Code: fault.CodeIO, Op: op,
			Msg: fmt.Sprintf("type %d: payload of %d bytes exceeds the limit of %d", typ, size, max),
			Err: ErrMsgTooLarge}
	}
	payload = make([]byte, size)
	if n, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return typ, nil, &fault.Error{Code: fault.CodeIO, Op: op,
				Msg: fmt.Sprintf("type %d: truncated payload: %d of %d bytes", typ, n, size), Err: io.ErrUnexpectedEOF}
		}
		return typ, nil, msgIOErr(op, err)
	}
	return typ, payload, nil
}

// msgIOErr wraps an error of the underlying reader or writer, unless it
// already says what it is about.
func msgIOErr(op string, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	return &fault.Error{Code: fault.CodeIO, Op: op, Err: err}
}
