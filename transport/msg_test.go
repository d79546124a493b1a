package transport

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/godwit-dev/godwit/fault"
)

func frame(typ uint8, payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	return append(append(b, typ), payload...)
}

func TestMsgRoundTrip(t *testing.T) {
	type hello struct {
		Version int      `json:"version"`
		Hosts   []string `json:"hosts"`
	}
	var buf bytes.Buffer
	msgs := []struct {
		typ uint8
		v   any
	}{
		{1, hello{Version: 3, Hosts: []string{"a", "b"}}},
		{0, nil},
		{255, "x"},
		{9, json.RawMessage(`{"raw":true}`)},
	}
	for _, m := range msgs {
		if err := WriteMsg(&buf, m.typ, m.v); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs {
		typ, payload, err := ReadMsg(&buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(m.v)
		if typ != m.typ || !bytes.Equal(payload, want) {
			t.Errorf("got %d %q, want %d %q", typ, payload, m.typ, want)
		}
	}
	var h hello
	WriteMsg(&buf, 1, hello{Version: 3})
	_, payload, _ := ReadMsg(iotest.OneByteReader(&buf), 0)
	if err := json.Unmarshal(payload, &h); err != nil || h.Version != 3 {
		t.Errorf("decode: %+v %v", h, err)
	}
	if _, _, err := ReadMsg(&buf, 0); err != io.EOF {
		t.Errorf("at the end: %v, want bare io.EOF", err)
	}
}

var errBroken = errors.New("broken")

func TestReadMsgErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []byte
		max   int
		want  error
		inMsg string
	}{
		{"truncated header", []byte{0, 0, 0}, 0, io.ErrUnexpectedEOF, "3 of 5"},
		{"truncated payload", frame(4, "hello")[:8], 0, io.ErrUnexpectedEOF, "3 of 5"},
		{"oversized", frame(4, strings.Repeat("x", 65)), 64, ErrMsgTooLarge, "65 bytes exceeds the limit of 64"},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 1}, 0, ErrMsgTooLarge, "4294967295"},
		{"reader error", nil, 0, errBroken, "broken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tc.in)
			if tc.in == nil {
				r = iotest.ErrReader(errBroken)
			}
			_, _, err := ReadMsg(r, tc.max)
			wantFault(t, tc.name, err, fault.CodeIO, tc.want)
			if !strings.Contains(err.Error(), tc.inMsg) {
				t.Errorf("error %q does not say %q", err, tc.inMsg)
			}
		})
	}
}

func TestWriteMsgErrors(t *testing.T) {
	err := WriteMsg(io.Discard, 1, make(chan int))
	wantFault(t, "unencodable", err, fault.CodeInvalidArgument)
	err = WriteMsg(io.Discard, 1, strings.Repeat("x", MaxMsgSize))
	wantFault(t, "too large", err, fault.CodeInvalidArgument, ErrMsgTooLarge)
	var buf bytes.Buffer
	err = WriteMsg(&limitedWriter{w: &buf, n: 3}, 1, "hello")
	wantFault(t, "short write", err, fault.CodeIO, io.ErrShortWrite)
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		n, _ := l.w.Write(p[:l.n])
		return n, io.ErrShortWrite
	}
	return l.w.Write(p)
}

// FuzzReadMsg checks that ReadMsg never panics, never returns more than
// max bytes, and returns exactly the frame it was given.
func FuzzReadMsg(f *testing.F) {
	f.Add(frame(1, `{"a":1}`))
	f.Add(frame(0, ""))
	f.Add(append(frame(2, `"x"`), frame(3, `null`)...))
	f.Add([]byte{0, 0, 1, 0, 7})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 256
		r := bytes.NewReader(data)
		for {
			before := len(data) - r.Len()
			typ, payload, err := ReadMsg(r, max)
			if err == io.EOF {
				if before != len(data) {
					t.Fatalf("io.EOF with %d bytes left", len(data)-before)
				}
				return
			}
			if err != nil {
				var fe *fault.Error
				if !errors.As(err, &fe) {
					t.Fatalf("untyped error %v", err)
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrMsgTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(payload) > max {
				t.Fatalf("payload of %d bytes, max %d", len(payload), max)
			}
			if got := frame(typ, string(payload)); !bytes.Equal(got, data[before:len(data)-r.Len()]) {
				t.Fatalf("frame %x read as %x", data[before:len(data)-r.Len()], got)
			}
		}
	})
}
