package image_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"io"
	"reflect"
	"testing"

	"github.com/godwit-dev/godwit/image"
)

var update = flag.Bool("update", false, "rewrite the files in testdata/")

// Offsets of registers in the raw NT_PRSTATUS regset (struct user_regs_struct).
const (
	regRAX    = 10 * 8
	regOrigAX = 15 * 8
	regRIP    = 16 * 8
	regRSP    = 19 * 8
)

// sampleRegs returns a raw regset with rip, rsp and orig_rax set.
func sampleRegs(rip, rsp uint64, origAX int64) []byte {
	b := make([]byte, image.RegsSize)
	binary.LittleEndian.PutUint64(b[regRIP:], rip)
	binary.LittleEndian.PutUint64(b[regRSP:], rsp)
	binary.LittleEndian.PutUint64(b[regOrigAX:], uint64(origAX))
	return b
}

// sampleSiginfo returns a raw siginfo_t of signal sig sent by kill(2).
func sampleSiginfo(sig int32) image.Siginfo {
	b := make([]byte, image.SiginfoSize)
	binary.LittleEndian.PutUint32(b[0:], uint32(sig))
	return b
}

// sampleMeta returns metadata of a small process that validates: two
// threads, each kind of mapping, each kind of descriptor, a deleted file.
func sampleMeta() *image.Meta {
	const xsize = 576
	return &image.Meta{
		Kernel:     "6.8.0-test",
		Arch:       "x86_64",
		XstateSize: xsize,
		Created:    1700000000000000000,
		Root:       4242,
		Files:      []image.FileBlob{{ID: 1, Size: 5, Mode: 0o600, Path: "/tmp/scratch"}},
		Processes: []image.Process{{
			PID: 4242, PPID: 1, PGID: 4242, SID: 4242,
			Comm: "victim", Exe: "/usr/bin/victim", Cwd: "/home/user",
			Creds: image.Creds{UID: [4]uint32{1000, 1000, 1000, 1000}, GID: [4]uint32{1000, 1000, 1000, 1000},
				Groups: []uint32{1000, 27}, CapBnd: 0x1ffffffffff},
			Umask: 0o022,
			Prctl: image.Prctl{Dumpable: 1, NoNewPrivs: true, PdeathSig: 15},
			Rlimits: []image.Rlimit{
				{Resource: 3, Cur: 8 << 20, Max: ^uint64(0)},
				{Resource: 7, Cur: 1024, Max: 524288},
			},
			SigActions: []image.SigAction{
				{Signal: 2, Handler: 0x401136, Flags: 0x14000004, Restorer: 0x7f0000001000, Mask: 1 << 14},
				{Signal: 13, Handler: 1},
			},
			Pending: []image.Siginfo{sampleSiginfo(10)},
			ITimers: [3]image.ITimer{{IntervalUsec: 1000000, ValueUsec: 500000}},
			Timers:  []image.PosixTimer{{ID: 0, Clock: 1, Signal: 34, Notify: 0, IntervalNs: 1e9, RemainingNs: 2e8}},
			MM: image.MM{StartCode: 0x400000, EndCode: 0x401000, StartBrk: 0x405000, Brk: 0x426000,
				StartStack: 0x7ffc00010000, Auxv: []uint64{6, 4096, 0, 0}},
			VMAs: []image.VMA{
				{Start: 0x400000, End: 0x402000, Prot: 5, Flags: 2, Kind: image.VMAFile, Path: "/usr/bin/victim", Inode: 12, Pages: 1},
				{Start: 0x405000, End: 0x426000, Prot: 3, Flags: 0x22, Kind: image.VMAAnon, Name: "[heap]", Pages: 3},
				{Start: 0x7f0000000000, End: 0x7f0000004000, Prot: 3, Flags: 1, Kind: image.VMASharedFile, Path: "/dev/shm/ring"},
				{Start: 0x7f0000010000, End: 0x7f0000011000, Prot: 1, Flags: 2, Kind: image.VMAFile, Path: "/tmp/scratch", Deleted: true, FileID: 1},
				{Start: 0x7ffc00000000, End: 0x7ffc00021000, Prot: 3, Flags: 0x122, Kind: image.VMAAnon, Name: "[stack]", Pages: 2},
				{Start: 0x7ffc00100000, End: 0x7ffc00102000, Prot: 5, Flags: 2, Kind: image.VMAVdso, Name: "[vdso]"},
			},
			FDs: []image.FD{
				{FD: 0, Kind: image.FDChr, Path: "/dev/null", Flags: 0o100002, Mode: 0o20666, Rdev: 0x103, SameAs: -1},
				{FD: 1, Kind: image.FDFile, Path: "/tmp/out.log", Flags: 0o2102001, Pos: 1234, Mode: 0o100644, SameAs: -1},
				{FD: 2, Kind: image.FDFile, Path: "/tmp/out.log", Flags: 0o2102001, Pos: 1234, Mode: 0o100644, SameAs: 1},
				{FD: 3, Kind: image.FDDir, Path: "/home/user", Flags: 0o2200000, Mode: 0o40755, SameAs: -1},
				{FD: 4, Kind: image.FDFile, Path: "/tmp/scratch", Flags: 0o2, Pos: 5, Deleted: true, FileID: 1, Mode: 0o100600, SameAs: -1},
				{FD: 5, Kind: image.FDPath, Path: "/etc", Flags: 0o12000000, Mode: 0o40755, SameAs: -1},
			},
			Threads: []image.Thread{
				{TID: 4242, Comm: "victim", Regs: sampleRegs(0x401200, 0x7ffc00020f00, 35), Xstate: make([]byte, xsize),
					Sigmask: 1 << 9, Rseq: &image.Rseq{Addr: 0x7f0000002000, Size: 32, Sig: 0x53053053},
					AltStack: image.AltStack{Flags: 2}},
				{TID: 4243, Comm: "worker", Regs: sampleRegs(0x401300, 0x7f0000003f00, -1), Xstate: make([]byte, xsize),
					Pending: []image.Siginfo{sampleSiginfo(12)}, ClearChildTID: 0x7f0000003fd0,
					AltStack: image.AltStack{SP: 0x7f0000000000, Size: 8192}},
			},
		}},
	}
}

// page returns n pages filled with b.
func pages(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n*image.PageSize) }

// writeSample writes sampleMeta with its file data and exactly the pages its
// mappings claim: one zero page of the executable, data in heap and stack.
func writeSample(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := image.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	steps := []error{
		w.WriteMeta(sampleMeta()),
		w.WriteFileData(1, 0, []byte("hello")),
		w.WritePages(4242, 0x401000, 1, nil),
		w.WritePages(4242, 0x405000, 3, pages(3, 0xaa)),
		w.WritePages(4242, 0x7ffc0001f000, 2, pages(2, 0x55)),
		w.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if int64(buf.Len()) != w.Written() {
		t.Fatalf("Written() = %d, wrote %d bytes", w.Written(), buf.Len())
	}
	return buf.Bytes()
}

// readAll decodes an image, checking every record. It returns the metadata,
// the records after it (with copies of their data) and the first error.
func readAll(r io.Reader) (*image.Meta, []image.Record, error) {
	ir, err := image.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	m, err := ir.ReadMeta()
	if err != nil {
		return nil, nil, err
	}
	var recs []image.Record
	for {
		rec, err := ir.Next()
		if errors.Is(err, io.EOF) {
			return m, recs, nil
		}
		if err != nil {
			return m, recs, err
		}
		c := *rec
		c.Data = bytes.Clone(rec.Data)
		recs = append(recs, c)
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header returns an image header.
func header(version, flags uint32) []byte {
	b := []byte(image.Magic)
	b = binary.LittleEndian.AppendUint32(b, version)
	return binary.LittleEndian.AppendUint32(b, flags)
}

// record frames one record by hand, with a correct checksum.
func record(t image.RecordType, reserved uint16, payload []byte) []byte {
	var h [8]byte
	binary.LittleEndian.PutUint16(h[0:], uint16(t))
	binary.LittleEndian.PutUint16(h[2:], reserved)
	binary.LittleEndian.PutUint32(h[4:], uint32(len(payload)))
	crc := crc32.Update(crc32.Update(0, castagnoli, h[:]), castagnoli, payload)
	b := append(h[:], payload...)
	return binary.LittleEndian.AppendUint32(b, crc)
}

func pagesPayload(pid, flags uint32, addr uint64, count, reserved uint32, data []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, pid)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, addr)
	b = binary.LittleEndian.AppendUint32(b, count)
	b = binary.LittleEndian.AppendUint32(b, reserved)
	return append(b, data...)
}

func fileDataPayload(id, reserved uint32, off uint64, data []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, id)
	b = binary.LittleEndian.AppendUint32(b, reserved)
	b = binary.LittleEndian.AppendUint64(b, off)
	return append(b, data...)
}

func endPayload(records, pages uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, records)
	return binary.LittleEndian.AppendUint64(b, pages)
}

// minimalMeta is the smallest Meta payload the reader accepts.
var minimalMeta = []byte(`{}`)

// join concatenates byte slices.
func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRoundTrip(t *testing.T) {
	img := writeSample(t)
	m, recs, err := readAll(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if want := sampleMeta(); !reflect.DeepEqual(m, want) {
		t.Errorf("metadata changed in a round trip:\n got %+v\nwant %+v", m, want)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("sample metadata does not validate: %v", err)
	}
	want := []image.Record{
		{Type: image.TypeFileData, FileID: 1, Offset: 0, Data: []byte("hello")},
		{Type: image.TypePages, PID: 4242, Addr: 0x401000, Count: 1, Zero: true, Data: nil},
		{Type: image.TypePages, PID: 4242, Addr: 0x405000, Count: 3, Data: pages(3, 0xaa)},
		{Type: image.TypePages, PID: 4242, Addr: 0x7ffc0001f000, Count: 2, Data: pages(2, 0x55)},
		{Type: image.TypeEnd, Records: 5, Pages: 6},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(recs[i], want[i]) {
			g, w := recs[i], want[i]
			g.Data, w.Data = nil, nil
			t.Errorf("record %d: got %+v (%d bytes), want %+v (%d bytes)", i, g, len(recs[i].Data), w, len(want[i].Data))
		}
	}
}

// TestRoundTripSplits writes runs larger than one record can hold and checks
// that they come back whole, in order.
func TestRoundTripSplits(t *testing.T) {
	var buf bytes.Buffer
	w, err := image.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n := image.MaxPagesPerRecord*2 + 3
	data := make([]byte, n*image.PageSize)
	for i := range data {
		data[i] = byte(i / image.PageSize)
	}
	blob := make([]byte, image.MaxPayload+100) // two file-data records
	blob[len(blob)-1] = 7
	for _, err := range []error{
		w.WriteMeta(&image.Meta{}),
		w.WriteFileData(1, 0, blob),
		w.WriteFileData(2, 0, nil), // an empty file still gets a record
		w.WritePages(1, 0x10000, n, data),
		w.WritePages(1, 0x10000000, n, nil),
		w.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, recs, err := readAll(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	var zero, blobBytes, empty int
	addr := uint64(0x10000)
	for _, r := range recs {
		switch {
		case r.Type == image.TypeFileData && r.FileID == 1:
			if r.Offset != int64(blobBytes) {
				t.Errorf("file chunk at %d, want %d", r.Offset, blobBytes)
			}
			blobBytes += len(r.Data)
		case r.Type == image.TypeFileData:
			empty++
		case r.Type == image.TypePages && !r.Zero:
			if r.Addr != addr || r.Count > image.MaxPagesPerRecord {
				t.Errorf("pages at %#x count %d, want at %#x at most %d", r.Addr, r.Count, addr, image.MaxPagesPerRecord)
			}
			addr += uint64(r.Count) * image.PageSize
			got = append(got, r.Data...)
		case r.Type == image.TypePages:
			zero += r.Count
		case r.Type == image.TypeEnd:
			if r.Pages != uint64(2*n) {
				t.Errorf("end counts %d pages, want %d", r.Pages, 2*n)
			}
		}
	}
	if !bytes.Equal(got, data) {
		t.Error("page data changed in a round trip")
	}
	if zero != n || blobBytes != len(blob) || empty != 1 {
		t.Errorf("zero pages %d (want %d), blob bytes %d (want %d), empty file records %d (want 1)",
			zero, n, blobBytes, len(blob), empty)
	}
}

// TestWriterOrder checks that the writer refuses records out of the order of
// the format, and bad page data.
func TestWriterOrder(t *testing.T) {
	fresh := func() *image.Writer {
		w, err := image.NewWriter(io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	tests := []struct {
		name string
		do   func(w *image.Writer) error
	}{
		{"file data before meta", func(w *image.Writer) error { return w.WriteFileData(1, 0, nil) }},
		{"pages before meta", func(w *image.Writer) error { return w.WritePages(1, 0, 1, nil) }},
		{"end before meta", func(w *image.Writer) error { return w.Close() }},
		{"meta twice", func(w *image.Writer) error {
			w.WriteMeta(&image.Meta{})
			return w.WriteMeta(&image.Meta{})
		}},
		{"file data after pages", func(w *image.Writer) error {
			w.WriteMeta(&image.Meta{})
			w.WritePages(1, 0x1000, 1, nil)
			return w.WriteFileData(1, 0, nil)
		}},
		{"pages after end", func(w *image.Writer) error {
			w.WriteMeta(&image.Meta{})
			w.Close()
			return w.WritePages(1, 0x1000, 1, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(fresh()); !errors.Is(err, image.ErrOrder) {
				t.Errorf("got %v, want ErrOrder", err)
			}
		})
	}
	t.Run("short page data", func(t *testing.T) {
		w := fresh()
		w.WriteMeta(&image.Meta{})
		if err := w.WritePages(1, 0x1000, 2, make([]byte, image.PageSize)); err == nil {
			t.Error("2 pages with 1 page of data were accepted")
		}
	})
}

// failWriter fails every write after n bytes.
type failWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errDiskFull
	}
	f.n -= len(p)
	return len(p), nil
}

// TestWriterError checks that a write error is reported and sticks.
func TestWriterError(t *testing.T) {
	w, err := image.NewWriter(&failWriter{n: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMeta(sampleMeta()); err != nil {
		t.Fatal(err) // still buffered
	}
	err = w.WritePages(1, 0x1000, image.MaxPagesPerRecord*2, pages(image.MaxPagesPerRecord*2, 1))
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("got %v, want the writer's error", err)
	}
	if err := w.Close(); !errors.Is(err, errDiskFull) {
		t.Errorf("Close after a failed write: %v, want the writer's error", err)
	}
}

func TestRecordTypeString(t *testing.T) {
	for typ, want := range map[image.RecordType]string{
		image.TypeMeta: "meta", image.TypeFileData: "file-data", image.TypePages: "pages", image.TypeEnd: "end", 7: "type-7",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint16(typ), got, want)
		}
	}
}
