package image_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/godwit-dev/godwit/image"
)

// smallImage is a short image with one record of each type, small enough to
// damage at every byte.
func smallImage(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := image.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		w.WriteMeta(&image.Meta{Arch: "x86_64", Root: 7}),
		w.WriteFileData(1, 0, []byte("data")),
		w.WritePages(7, 0x1000, 1, pages(1, 0x11)),
		w.WritePages(7, 0x3000, 2, nil),
		w.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// frame is where a record lies in an image.
type frame struct {
	off, end int // record start and end (after the checksum)
	typ      image.RecordType
}

// frames splits a well-formed image into its records.
func frames(img []byte) []frame {
	var out []frame
	for off := 16; off+8 <= len(img); {
		n := int(binary.LittleEndian.Uint32(img[off+4:]))
		f := frame{off: off, end: off + 8 + n + 4, typ: image.RecordType(binary.LittleEndian.Uint16(img[off:]))}
		out = append(out, f)
		off = f.end
	}
	return out
}

// sampled tells whether tests that damage every byte of img should damage
// the one at off: every byte but those deep inside page data, of which one in
// 64 is enough (each read allocates the reader's 1 MiB buffer).
func sampled(fr []frame, off int) bool {
	for _, f := range fr {
		if off >= f.off && off < f.end && f.typ == image.TypePages {
			data, dataEnd := f.off+8+24, f.end-4
			return off < data+16 || off >= dataEnd-16 || off%64 == 0
		}
	}
	return true
}

// formatError asserts that err is a *FormatError wrapping want and returns it.
func formatError(t *testing.T, err, want error) *image.FormatError {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	var fe *image.FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("%v (%T) is not a *FormatError", err, err)
	}
	return fe
}

func TestReaderHeader(t *testing.T) {
	good := header(image.Version, 0)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, image.ErrTruncated},
		{"short", good[:15], image.ErrTruncated},
		{"bad magic", append([]byte("GODWIT\x00\x01"), good[8:]...), image.ErrBadMagic},
		{"text", []byte("this is not a godwit image\n"), image.ErrBadMagic},
		{"version 0", header(0, 0), image.ErrVersion},
		{"version 2", header(2, 0), image.ErrVersion},
		{"flags", header(image.Version, 1), image.ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := image.NewReader(bytes.NewReader(tt.in))
			fe := formatError(t, err, tt.want)
			if fe.Record != -1 || fe.Offset != 0 {
				t.Errorf("error at record %d offset %d, want the header (-1, 0)", fe.Record, fe.Offset)
			}
			if !strings.HasPrefix(fe.Error(), "image header at offset 0: ") {
				t.Errorf("message %q does not name the header", fe.Error())
			}
		})
	}
	t.Run("ok", func(t *testing.T) {
		r, err := image.NewReader(bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset() != 16 {
			t.Errorf("Offset() = %d after the header, want 16", r.Offset())
		}
		_, err = r.Next()
		formatError(t, err, image.ErrTruncated) // no End record
	})
}

// TestReaderTruncated cuts a small image at every byte: every prefix fails
// with ErrTruncated, at the record that was cut.
func TestReaderTruncated(t *testing.T) {
	img := smallImage(t)
	fr := frames(img)
	for n := 0; n < len(img); n++ {
		if !sampled(fr, n) {
			continue
		}
		_, _, err := readAll(bytes.NewReader(img[:n]))
		if !errors.Is(err, image.ErrTruncated) {
			t.Fatalf("cut at %d: got %v, want ErrTruncated", n, err)
		}
		var fe *image.FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("cut at %d: %T is not a *FormatError", n, err)
		}
		wantRec, wantOff := -1, 0
		for i, f := range fr {
			if n >= f.off {
				wantRec, wantOff = i, f.off
			}
		}
		if fe.Record != wantRec || fe.Offset != int64(wantOff) {
			t.Fatalf("cut at %d: error at record %d offset %d, want record %d offset %d",
				n, fe.Record, fe.Offset, wantRec, wantOff)
		}
	}
	if _, _, err := readAll(bytes.NewReader(img)); err != nil {
		t.Fatalf("the whole image: %v", err)
	}
}

// TestReaderFlipped damages every byte of a small image in turn. Damage to a
// payload, a type or a checksum is ErrChecksum; damage to a length or the
// reserved field is caught by the framing checks; nothing passes.
func TestReaderFlipped(t *testing.T) {
	img := smallImage(t)
	fr := frames(img)
	for off := 0; off < len(img); off++ {
		if !sampled(fr, off) {
			continue
		}
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(img)
			bad[off] ^= bit
			_, _, err := readAll(bytes.NewReader(bad))
			if err == nil {
				t.Fatalf("byte %d ^ %#x: damaged image read without error", off, bit)
			}
			var fe *image.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("byte %d ^ %#x: %v (%T) is not a *FormatError", off, bit, err, err)
			}
			if off < 16 {
				if !errors.Is(err, image.ErrBadMagic) && !errors.Is(err, image.ErrVersion) {
					t.Fatalf("byte %d ^ %#x of the header: %v", off, bit, err)
				}
				continue
			}
			var f frame
			for _, f = range fr {
				if off < f.end {
					break
				}
			}
			switch rel := off - f.off; {
			case rel < 2, rel >= 8: // type, payload, checksum
				if !errors.Is(err, image.ErrChecksum) {
					t.Fatalf("byte %d ^ %#x (%s record at %d): got %v, want ErrChecksum", off, bit, f.typ, f.off, err)
				}
			case rel < 4: // reserved
				if !errors.Is(err, image.ErrMalformed) {
					t.Fatalf("byte %d ^ %#x (reserved): got %v, want ErrMalformed", off, bit, err)
				}
			default: // length: a longer or shorter record never checks out
				if !errors.Is(err, image.ErrChecksum) && !errors.Is(err, image.ErrTruncated) && !errors.Is(err, image.ErrTooLarge) {
					t.Fatalf("byte %d ^ %#x (length): got %v", off, bit, err)
				}
			}
			if fe.Offset != int64(f.off) {
				t.Fatalf("byte %d ^ %#x: error at offset %d, want the record's offset %d", off, bit, fe.Offset, f.off)
			}
		}
	}
}

// TestReaderRecords feeds hand-framed records (with correct checksums) that
// break one rule each.
func TestReaderRecords(t *testing.T) {
	meta := record(image.TypeMeta, 0, minimalMeta)
	page := pages(1, 1)
	pagesRec := func(pid, flags uint32, addr uint64, count, reserved uint32, data []byte) []byte {
		return record(image.TypePages, 0, pagesPayload(pid, flags, addr, count, reserved, data))
	}
	fileRec := func(id, reserved uint32, off uint64, data []byte) []byte {
		return record(image.TypeFileData, 0, fileDataPayload(id, reserved, off, data))
	}
	end := func(records, pages uint64) []byte { return record(image.TypeEnd, 0, endPayload(records, pages)) }
	tests := []struct {
		name    string
		records [][]byte
		bad     int // index of the record that must fail
		want    error
	}{
		{"meta twice", [][]byte{meta, meta}, 1, image.ErrOrder},
		{"file data first", [][]byte{fileRec(1, 0, 0, nil)}, 0, image.ErrOrder},
		{"pages first", [][]byte{pagesRec(1, 0, 0x1000, 1, 0, page)}, 0, image.ErrOrder},
		{"end first", [][]byte{end(0, 0)}, 0, image.ErrOrder},
		{"file data after pages", [][]byte{meta, pagesRec(1, 0, 0x1000, 1, 0, page), fileRec(1, 0, 0, nil)}, 2, image.ErrOrder},
		{"meta after pages", [][]byte{meta, pagesRec(1, 0, 0x1000, 1, 0, page), meta}, 2, image.ErrOrder},
		{"unknown type", [][]byte{meta, record(4, 0, nil)}, 1, image.ErrMalformed},
		{"reserved bits", [][]byte{meta, record(image.TypePages, 1, pagesPayload(1, 0, 0x1000, 1, 0, page))}, 1, image.ErrMalformed},

		{"file data short header", [][]byte{meta, record(image.TypeFileData, 0, make([]byte, 15))}, 1, image.ErrMalformed},
		{"file data reserved", [][]byte{meta, fileRec(1, 1, 0, nil)}, 1, image.ErrMalformed},
		{"file data offset", [][]byte{meta, fileRec(1, 0, 1<<62+1, nil)}, 1, image.ErrMalformed},

		{"pages short header", [][]byte{meta, record(image.TypePages, 0, make([]byte, 23))}, 1, image.ErrMalformed},
		{"zero pages", [][]byte{meta, pagesRec(1, 0, 0x1000, 0, 0, nil)}, 1, image.ErrMalformed},
		{"zero pages zero run", [][]byte{meta, pagesRec(1, image.PagesZero, 0x1000, 0, 0, nil)}, 1, image.ErrMalformed},
		{"too many pages", [][]byte{meta, pagesRec(1, image.PagesZero, 0x1000, image.MaxPagesPerRecord+1, 0, nil)}, 1, image.ErrMalformed},
		{"huge page count", [][]byte{meta, pagesRec(1, image.PagesZero, 0x1000, 1<<32-1, 0, nil)}, 1, image.ErrMalformed},
		{"misaligned address", [][]byte{meta, pagesRec(1, 0, 0x1008, 1, 0, page)}, 1, image.ErrMalformed},
		{"address wraps", [][]byte{meta, pagesRec(1, image.PagesZero, 1<<64-image.PageSize, 1, 0, nil)}, 1, image.ErrMalformed},
		{"unknown page flags", [][]byte{meta, pagesRec(1, 2, 0x1000, 1, 0, page)}, 1, image.ErrMalformed},
		{"pages reserved", [][]byte{meta, pagesRec(1, 0, 0x1000, 1, 1, page)}, 1, image.ErrMalformed},
		{"page data short", [][]byte{meta, pagesRec(1, 0, 0x1000, 1, 0, page[1:])}, 1, image.ErrMalformed},
		{"page data long", [][]byte{meta, pagesRec(1, 0, 0x1000, 1, 0, append(page, 0))}, 1, image.ErrMalformed},
		{"data in a zero run", [][]byte{meta, pagesRec(1, image.PagesZero, 0x1000, 1, 0, page)}, 1, image.ErrMalformed},

		{"end short", [][]byte{meta, record(image.TypeEnd, 0, make([]byte, 15))}, 1, image.ErrMalformed},
		{"end long", [][]byte{meta, record(image.TypeEnd, 0, make([]byte, 17))}, 1, image.ErrMalformed},
		{"end counts records", [][]byte{meta, end(2, 0)}, 1, image.ErrTruncated},
		{"end counts fewer records", [][]byte{meta, fileRec(1, 0, 0, nil), end(1, 0)}, 2, image.ErrTruncated},
		{"end counts pages", [][]byte{meta, pagesRec(1, 0, 0x1000, 1, 0, page), end(2, 2)}, 2, image.ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := join(header(image.Version, 0), join(tt.records...))
			r, err := image.NewReader(bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tt.bad; i++ {
				if _, err := r.Next(); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			off := r.Offset()
			rec, err := r.Next()
			if rec != nil {
				t.Errorf("a record came back with the error")
			}
			fe := formatError(t, err, tt.want)
			if fe.Record != tt.bad || fe.Offset != off {
				t.Errorf("error at record %d offset %d, want record %d offset %d", fe.Record, fe.Offset, tt.bad, off)
			}
		})
	}
}

// TestReaderTooLarge checks that an oversize length is refused from the
// record header alone, before any payload is read.
func TestReaderTooLarge(t *testing.T) {
	var h [8]byte
	binary.LittleEndian.PutUint16(h[0:], uint16(image.TypeMeta))
	binary.LittleEndian.PutUint32(h[4:], image.MaxPayload+1)
	r, err := image.NewReader(bytes.NewReader(join(header(image.Version, 0), h[:])))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	fe := formatError(t, err, image.ErrTooLarge)
	if fe.Offset != 16 || fe.Record != 0 || fe.Type != image.TypeMeta {
		t.Errorf("got %+v, want record 0 (meta) at offset 16", fe)
	}
	if want := "image record 0 (meta) at offset 16: record larger than allowed"; !strings.HasPrefix(fe.Error(), want) {
		t.Errorf("message %q, want prefix %q", fe.Error(), want)
	}
}

// TestReaderEnd checks that nothing is read after the End record: Next keeps
// returning io.EOF, and whatever follows in the stream stays unread.
func TestReaderEnd(t *testing.T) {
	img := smallImage(t)
	r, err := image.NewReader(bytes.NewReader(append(bytes.Clone(img), "trailing"...)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadMeta(); err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type == image.TypeEnd {
			break
		}
	}
	if r.Offset() != int64(len(img)) {
		t.Errorf("Offset() = %d after End, want %d", r.Offset(), len(img))
	}
	for i := 0; i < 2; i++ {
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("Next after End: %v, want io.EOF", err)
		}
	}
}

// TestReaderIOError checks that an error of the underlying reader is passed
// on, not disguised as truncation.
func TestReaderIOError(t *testing.T) {
	img := smallImage(t)
	boom := errors.New("boom")
	r, err := image.NewReader(io.MultiReader(bytes.NewReader(img[:40]), iotest.ErrReader(boom)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	fe := formatError(t, err, boom)
	if errors.Is(err, image.ErrTruncated) {
		t.Errorf("%v is reported as truncation", fe)
	}
	// One byte at a time works like one read.
	if _, _, err := readAll(iotest.OneByteReader(bytes.NewReader(img))); err != nil {
		t.Errorf("one byte at a time: %v", err)
	}
}

func TestReadMeta(t *testing.T) {
	read := func(payload string) (*image.Meta, error) {
		in := join(header(image.Version, 0), record(image.TypeMeta, 0, []byte(payload)))
		r, err := image.NewReader(bytes.NewReader(in))
		if err != nil {
			return nil, err
		}
		return r.ReadMeta()
	}
	for _, bad := range []string{``, `{`, `[]`, `{"root":"x"}`, `{"processes":{}}`, `{} {}`,
		strings.Repeat("[", 65) + strings.Repeat("]", 65)} {
		_, err := read(bad)
		fe := formatError(t, err, image.ErrMalformed)
		if fe.Offset != 16 || fe.Record != 0 || fe.Type != image.TypeMeta {
			t.Errorf("%q: error %+v, want the meta record at offset 16", bad, fe)
		}
	}
	m, err := read(`{"arch":"x86_64","ROOT":3,"unknown":[1,2,{"x":[]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch != "x86_64" || m.Root != 3 {
		t.Errorf("got %+v", m)
	}
}

// TestReadMetaMemory checks that a small Meta record cannot make the decoder
// allocate much more than its own size: "{}," is three bytes of JSON but
// hundreds of bytes as a decoded Process.
func TestReadMetaMemory(t *testing.T) {
	const n = 1 << 18 // 768 KiB of JSON
	for _, tc := range []struct {
		name, pre, elem, post string
		ok                    bool // within the bound: 4 decoded bytes a byte
	}{
		{"processes", `{"processes":[`, `{},`, `{}]}`, false},
		{"processes, any case", `{"PROCESSES":[`, `{},`, `{}]}`, false},
		{"processes, escaped key", `{"pro\u0063esses":[`, `{},`, `{}]}`, false},
		{"mappings", `{"processes":[{"vmas":[`, `{},`, `{}]}]}`, false},
		{"threads", `{"processes":[{},{"threads":[`, `{"rseq":{}},`, `{}]}]}`, false},
		{"vmflags", `{"processes":[{"vmas":[{"vmflags":[`, `"",`, `""]}]}]}`, false},
		{"auxv", `{"processes":[{"mm":{"auxv":[`, `0,`, `0]}}]}`, true},
		{"unknown field", `{"unknown":[`, `{},`, `{}]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := tc.pre + strings.Repeat(tc.elem, n) + tc.post
			in := join(header(image.Version, 0), record(image.TypeMeta, 0, []byte(payload)))
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r, err := image.NewReader(bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			m, err := r.ReadMeta()
			runtime.GC()
			runtime.ReadMemStats(&after)
			if tc.ok && err != nil {
				t.Errorf("%d bytes of %q: %v", len(payload), tc.elem, err)
			}
			if !tc.ok && !errors.Is(err, image.ErrTooLarge) {
				t.Errorf("%d bytes of %q: got %v, want ErrTooLarge", len(payload), tc.elem, err)
			}
			// What stays: the reader's buffers (1 MiB and the record) and
			// the decoded metadata, at most 4 bytes a byte of JSON.
			if got, limit := after.HeapAlloc-before.HeapAlloc, uint64(1<<20+len(payload)+4*len(payload)+1<<20); int64(got) > int64(limit) {
				t.Errorf("reading %d bytes of metadata keeps %d bytes, more than %d", len(payload), got, limit)
			}
			// What passes through, garbage included.
			if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4<<20+32*len(payload)); got > limit {
				t.Errorf("reading %d bytes of metadata allocated %d bytes, more than %d", len(payload), got, limit)
			}
			runtime.KeepAlive(r)
			runtime.KeepAlive(m)
		})
	}
}

// TestReadMetaLarge checks that a large but ordinary Meta record is read:
// many threads with their FPU state, many mappings with their flags.
func TestReadMetaLarge(t *testing.T) {
	m := sampleMeta()
	p := &m.Processes[0]
	p.VMAs = nil
	for i := uint64(0); i < 20000; i++ {
		p.VMAs = append(p.VMAs, image.VMA{Start: 0x10000000 + i*0x2000, End: 0x10001000 + i*0x2000, Prot: 3, Flags: 0x22,
			Kind: image.VMAAnon, VmFlags: []string{"rd", "wr", "mr", "mw", "me", "ac", "sd"}})
	}
	leader := p.Threads[0]
	p.Threads = nil
	for i := 0; i < 2000; i++ {
		th := leader
		th.TID = p.PID + i
		p.Threads = append(p.Threads, th)
	}
	var buf bytes.Buffer
	w, _ := image.NewWriter(&buf)
	if err := w.WriteMeta(m); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, _, err := readAll(&buf)
	if err != nil {
		t.Fatalf("%d bytes: %v", buf.Len(), err)
	}
	if err := got.Validate(); err != nil {
		t.Error(err)
	}
}

func TestFormatError(t *testing.T) {
	fe := &image.FormatError{Offset: 1234, Record: 3, Type: image.TypePages, Err: image.ErrChecksum}
	if got, want := fe.Error(), "image record 3 (pages) at offset 1234: record checksum mismatch"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(fe, image.ErrChecksum) || errors.Is(fe, image.ErrTruncated) {
		t.Error("errors.Is does not see the sentinel")
	}
}
