package migrate

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/godwit-dev/godwit/image"
)

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	hdr := make([]byte, frameHeader)
	data := bytes.Repeat([]byte{7}, 2*image.PageSize)
	frames := []pageFrame{
		{pid: 42, addr: 0x10000, count: 2, data: data},
		{pid: 43, addr: 0x7f0000000000, count: 5, zero: true},
	}
	for i := range frames {
		if err := writeFrame(&b, hdr, &frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	var buf []byte
	for i, want := range frames {
		var f pageFrame
		var err error
		buf, err = readFrame(&b, hdr, &f, buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.pid != want.pid || f.addr != want.addr || f.count != want.count || f.zero != want.zero || !bytes.Equal(f.data, want.data) {
			t.Fatalf("frame %d: got %+v", i, f)
		}
	}
	if _, err := readFrame(&b, hdr, new(pageFrame), buf); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

func TestFrameRefused(t *testing.T) {
	hdr := make([]byte, frameHeader)
	for name, f := range map[string]pageFrame{
		"pid 0":      {pid: 0, addr: 0x1000, count: 1, zero: true},
		"unaligned":  {pid: 1, addr: 0x1001, count: 1, zero: true},
		"too many":   {pid: 1, addr: 0x1000, count: image.MaxPagesPerRecord + 1, zero: true},
		"wraps":      {pid: 1, addr: 1<<64 - image.PageSize, count: 2, zero: true},
		"no pages":   {pid: 1, addr: 0x1000, count: 0, zero: true},
		"high pid":   {pid: image.MaxPID, addr: 0x1000, count: 1, zero: true},
		"past user":  {pid: 1, addr: 1 << 57, count: 1, zero: true},
		"truncated!": {pid: 1, addr: 0x1000, count: 1, data: make([]byte, 10)},
	} {
		var b bytes.Buffer
		writeFrame(&b, hdr, &f)
		_, err := readFrame(&b, hdr, new(pageFrame), nil)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStoreNewestWins(t *testing.T) {
	s := newStore(0)
	page := func(v byte, n int) []byte { return bytes.Repeat([]byte{v}, n*image.PageSize) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.put(&pageFrame{pid: 5, addr: 0x1000, count: 3, data: page(1, 3)}))
	must(s.put(&pageFrame{pid: 5, addr: 0x2000, count: 1, data: page(2, 1)}))
	must(s.put(&pageFrame{pid: 5, addr: 0x3000, count: 1, zero: true}))
	if s.held() != 2 || s.again != 2 {
		t.Fatalf("held %d again %d", s.held(), s.again)
	}
	var got []byte
	must(s.Pages(5, nil, func(addr uint64, data []byte) error {
		if addr != 0x1000 {
			t.Fatalf("run at %#x", addr)
		}
		got = append(got, data...)
		return nil
	}))
	want := append(append(page(1, 1), page(2, 1)...), page(0, 1)...)
	if !bytes.Equal(got, want) {
		t.Fatal("store content differs")
	}
}

func TestStoreLimit(t *testing.T) {
	s := newStore(slabPages * image.PageSize)
	data := make([]byte, image.MaxPagesPerRecord*image.PageSize)
	var err error
	for i := 0; err == nil && i < 2*slabPages/image.MaxPagesPerRecord; i++ {
		err = s.put(&pageFrame{pid: 1, addr: uint64(i) * uint64(len(data)), count: image.MaxPagesPerRecord, data: data})
	}
	if !errors.Is(err, errNoMemory) {
		t.Fatalf("limit not enforced: %v", err)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := writeMessage(&b, &message{Type: msgReady, PID: 7}); err != nil {
		t.Fatal(err)
	}
	m, err := readMessage(&b)
	if err != nil || m.Type != msgReady || m.PID != 7 {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := readMessage(bytes.NewReader([]byte{0, 0, 0, 2, '{', '}'})); !errors.Is(err, errProtocol) {
		t.Fatalf("untyped message: %v", err)
	}
	if _, err := readMessage(bytes.NewReader([]byte{0xff, 0, 0, 0})); !errors.Is(err, errProtocol) {
		t.Fatalf("huge message: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	hdr := make([]byte, frameHeader)
	writeFrame(&b, hdr, &pageFrame{pid: 3, addr: 0x4000, count: 1, data: make([]byte, image.PageSize)})
	f.Add(b.Bytes())
	b.Reset()
	writeFrame(&b, hdr, &pageFrame{pid: 3, addr: 0x4000, count: 4, zero: true})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		s := newStore(1 << 20)
		var buf []byte
		for {
			var fr pageFrame
			var err error
			buf, err = readFrame(r, hdr, &fr, buf)
			if err != nil {
				return
			}
			if fr.count < 1 || fr.count > image.MaxPagesPerRecord || (!fr.zero && len(fr.data) != fr.count*image.PageSize) {
				t.Fatalf("bad frame accepted: %+v", fr)
			}
			if s.put(&fr) != nil {
				return
			}
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	var b bytes.Buffer
	writeMessage(&b, &message{Type: msgHello, Version: 1, PID: 9})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := readMessage(bytes.NewReader(in))
		if err == nil && m.Type == "" {
			t.Fatal("message without type accepted")
		}
	})
}
