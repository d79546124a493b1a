package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

const xsize = 512

func showTestMeta() *image.Meta {
	regs := func(rip, rsp, orig uint64) []byte {
		return ptrace.EncodeRegs(&ptrace.Regs{Rip: rip, Rsp: rsp, Orig_rax: orig})
	}
	si := make([]byte, image.SiginfoSize)
	si[0] = 10 // SIGUSR1, SI_USER
	si[16] = 77
	return &image.Meta{
		Kernel: "6.8.0-test", Arch: "x86_64", XstateSize: xsize, Created: 1700000000000000000, Root: 300,
		Files: []image.FileBlob{{ID: 1, Size: 3, Mode: 0o600, Path: "/tmp/gone"}},
		Processes: []image.Process{{
			PID: 300, PPID: 1, PGID: 300, SID: 300, Comm: "sleeper", Exe: "/usr/bin/sleeper", Cwd: "/srv",
			Creds:   image.Creds{UID: [4]uint32{1000, 1000, 1000, 1000}, GID: [4]uint32{100, 100, 100, 100}},
			Umask:   0o027,
			Prctl:   image.Prctl{Dumpable: 1, ChildSubreaper: true},
			Rlimits: []image.Rlimit{{Resource: 7, Cur: 1024, Max: 4096}},
			SigActions: []image.SigAction{
				{Signal: 15, Handler: 0x401abc, Flags: 0x04000000 | 0x10000000 | 4, Restorer: 0x7f00000a0000},
				{Signal: 13, Handler: 1},
			},
			Pending: []image.Siginfo{si},
			Timers:  []image.PosixTimer{{ID: 0, Clock: 1, Signal: 14, IntervalNs: 5e8, RemainingNs: 1e8}},
			VMAs: []image.VMA{
				{Start: 0x400000, End: 0x404000, Prot: 5, Flags: 2, Kind: image.VMAFile, Path: "/usr/bin/sleeper", Pages: 1},
				{Start: 0x600000, End: 0x610000, Prot: 3, Flags: 0x22, Kind: image.VMAAnon, Name: "[heap]", Pages: 4},
				{Start: 0x7f0000000000, End: 0x7f0000001000, Prot: 1, Flags: 2, Kind: image.VMAFile, Path: "/tmp/gone", Deleted: true, FileID: 1},
				{Start: 0x7ffd00000000, End: 0x7ffd00002000, Prot: 5, Flags: 2, Kind: image.VMAVdso, Name: "[vdso]"},
			},
			FDs: []image.FD{
				{FD: 0, Kind: image.FDChr, Path: "/dev/null", Flags: 0o100000, Mode: 0o20666, SameAs: -1},
				{FD: 1, Kind: image.FDFile, Path: "/srv/log", Flags: 0o2002002, Pos: 4096, Mode: 0o100644, SameAs: -1},
				{FD: 7, Kind: image.FDFile, Path: "/tmp/gone", Flags: 0, Pos: 2, Deleted: true, FileID: 1, Mode: 0o100600, SameAs: -1},
			},
			Threads: []image.Thread{
				{TID: 300, Comm: "sleeper", Regs: regs(0x401111, 0x7ffd0000fff0, 230), Xstate: make([]byte, xsize), Sigmask: 1 << 13,
					AltStack: image.AltStack{Flags: 2}},
				{TID: 301, Comm: "helper", Regs: regs(0x402222, 0x7f0000100000, ^uint64(0)), Xstate: make([]byte, xsize),
					Rseq: &image.Rseq{Addr: 0x7f0000200000, Size: 32, Sig: 0x53053053}},
			},
		}},
	}
}

// writeShowImage writes meta with file data and the pages its mappings
// claim (one zero page of the executable, four heap pages), then edit may
// add more records before End.
func writeShowImage(t *testing.T, m *image.Meta, edit func(w *image.Writer)) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := image.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		w.WriteMeta(m),
		w.WriteFileData(1, 0, []byte("abc")),
		w.WritePages(300, 0x403000, 1, nil),
		w.WritePages(300, 0x600000, 4, bytes.Repeat([]byte{0xcc}, 4*image.PageSize)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(w)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// runShow runs godwit show with args, the image on stdin.
func runShow(t *testing.T, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	cmd := newShowCommand()
	var out bytes.Buffer
	cmd.SetIn(stdin)
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func TestShowText(t *testing.T) {
	img := writeShowImage(t, showTestMeta(), nil)
	out, err := runShow(t, bytes.NewReader(img), "--image", "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`process 300 "sleeper"`,
		"ppid 1, pgid 300, sid 300",
		"exe         /usr/bin/sleeper",
		"cwd         /srv",
		"uid         1000 1000 1000 1000",
		"umask       0027",
		"rlimits     1",
		"prctl       dumpable 1, child_subreaper",
		// threads: registers decoded, syscall, mask, rseq, altstack
		"300  sleeper  0x401111  0x7ffd0000fff0  230      0x2000 (SIGALRM)  -",
		"SS_DISABLE",
		"301  helper   0x402222  0x7f0000100000  -        0 ",
		"0x7f0000200000/32 sig 0x53053053",
		// mappings with the pages counted from the stream
		"mappings (4, 5 of 23 pages stored)",
		"0x400000-0x404000              r-xp  file  1       1     4     /usr/bin/sleeper @0x0",
		"0x600000-0x610000              rw-p  anon  4       0     16    [heap]",
		"(deleted, content in file 1)",
		"[vdso]",
		// descriptors
		"0   chr   O_RDONLY|O_LARGEFILE",
		"1   file  O_RDWR|O_APPEND|O_CLOEXEC  4096    /srv/log",
		"7   file  O_RDONLY                   2       /tmp/gone (deleted, content in file 1)",
		// signals and timers
		"SIGTERM  0x401abc  SA_SIGINFO|SA_RESTORER|SA_RESTART",
		"SIGPIPE  SIG_IGN",
		"process: SIGUSR1 (SI_USER from pid 77 uid 0)",
		"timer 0: CLOCK_MONOTONIC, signal SIGALRM, remaining 100ms, interval 500ms",
		// file contents and totals
		"1   3     3       /tmp/gone",
		"totals      5 records, 5 pages (4 with data, 1 zero), 16384 bytes of page data, 3 bytes of file data",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	if strings.Contains(out, "problems") {
		t.Errorf("a sound image shows problems:\n%s", out)
	}

	// The same from a file.
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := runShow(t, strings.NewReader(""), "--image", path)
	if err != nil || again != out {
		t.Errorf("show of the file differs from show of stdin (%v)", err)
	}
}

func TestShowJSON(t *testing.T) {
	img := writeShowImage(t, showTestMeta(), nil)
	out, err := runShow(t, bytes.NewReader(img), "--json", "--image", "-")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version  int
		Meta     image.Meta
		Threads  []showThread
		Mappings []showMapping
		Files    []showFile
		Totals   showTotals
		Problems []showProblem
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if dec.More() {
		t.Error("more than one JSON document")
	}
	if doc.Version != image.Version || doc.Meta.Root != 300 || len(doc.Meta.Processes) != 1 || len(doc.Meta.Processes[0].Threads) != 2 {
		t.Errorf("metadata does not come through: %+v", doc.Meta)
	}
	if len(doc.Threads) != 2 || doc.Threads[0] != (showThread{PID: 300, TID: 300, RIP: 0x401111, RSP: 0x7ffd0000fff0, Syscall: 230}) ||
		doc.Threads[1].Syscall != -1 {
		t.Errorf("threads %+v", doc.Threads)
	}
	wantMaps := []showMapping{
		{PID: 300, Start: 0x400000, End: 0x404000, Kind: "file", Pages: 1, ZeroPages: 1, MetaPages: 1},
		{PID: 300, Start: 0x600000, End: 0x610000, Kind: "anon", Pages: 4, MetaPages: 4},
		{PID: 300, Start: 0x7f0000000000, End: 0x7f0000001000, Kind: "file"},
		{PID: 300, Start: 0x7ffd00000000, End: 0x7ffd00002000, Kind: "vdso"},
	}
	if len(doc.Mappings) != len(wantMaps) {
		t.Fatalf("mappings %+v", doc.Mappings)
	}
	for i := range wantMaps {
		if doc.Mappings[i] != wantMaps[i] {
			t.Errorf("mapping %d: %+v, want %+v", i, doc.Mappings[i], wantMaps[i])
		}
	}
	if len(doc.Files) != 1 || doc.Files[0] != (showFile{ID: 1, Path: "/tmp/gone", Size: 3, Stored: 3}) {
		t.Errorf("files %+v", doc.Files)
	}
	want := showTotals{Records: 5, Pages: 5, ZeroPages: 1, PageBytes: 4 * image.PageSize, FileBytes: 3, Bytes: int64(len(img))}
	if doc.Totals != want {
		t.Errorf("totals %+v, want %+v", doc.Totals, want)
	}
	if len(doc.Problems) != 0 {
		t.Errorf("problems %+v", doc.Problems)
	}
}

// badImageError asserts that err is a bad-image fault that wraps a
// *FormatError, and returns the latter.
func badImageError(t *testing.T, err error) *image.FormatError {
	t.Helper()
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != fault.CodeBadImage {
		t.Fatalf("got %v (%T), want a bad-image fault", err, err)
	}
	var ie *image.FormatError
	if !errors.As(err, &ie) {
		t.Fatalf("%v does not carry an *image.FormatError", err)
	}
	if fe.Offset != ie.Offset {
		t.Errorf("fault offset %d, format error offset %d", fe.Offset, ie.Offset)
	}
	return ie
}

// TestShowDamaged cuts and corrupts an image: show always fails with a
// bad-image error that says where, prints nothing, and never panics.
func TestShowDamaged(t *testing.T) {
	img := writeShowImage(t, showTestMeta(), nil)
	for n := 0; n < len(img); n += 1 + n/64 {
		out, err := runShow(t, bytes.NewReader(img[:n]), "--image", "-")
		ie := badImageError(t, err)
		if !errors.Is(err, image.ErrTruncated) {
			t.Fatalf("cut at %d: %v, want truncation", n, err)
		}
		if ie.Offset > int64(n) {
			t.Fatalf("cut at %d: error at offset %d", n, ie.Offset)
		}
		if out != "" {
			t.Fatalf("cut at %d: printed %q", n, out)
		}
	}
	bad := bytes.Clone(img)
	bad[len(bad)-20] ^= 1 // in the End record (28 bytes)
	_, err := runShow(t, bytes.NewReader(bad), "--json", "--image", "-")
	ie := badImageError(t, err)
	if !errors.Is(err, image.ErrChecksum) || ie.Type != image.TypeEnd || ie.Record != 4 || ie.Offset != int64(len(img)-28) {
		t.Errorf("got %v (record %d %s at %d), want a checksum error in the End record at %d", err, ie.Record, ie.Type, ie.Offset, len(img)-28)
	}
	if msg := err.Error(); !strings.Contains(msg, "image record 4 (end) at offset") {
		t.Errorf("message %q does not say where", msg)
	}

	_, err = runShow(t, strings.NewReader("this is not a godwit image\n"), "--image", "-")
	if ie := badImageError(t, err); !errors.Is(err, image.ErrBadMagic) || ie.Record != -1 {
		t.Errorf("got %v, want bad magic in the header", err)
	}
}

// TestShowInvalidMeta checks that metadata that does not validate is a
// bad-image error at the Meta record.
func TestShowInvalidMeta(t *testing.T) {
	m := showTestMeta()
	m.Processes[0].VMAs[1].Start = 0x401000 // overlaps the one before
	_, err := runShow(t, bytes.NewReader(writeShowImage(t, m, nil)), "--image", "-")
	ie := badImageError(t, err)
	if !errors.Is(err, image.ErrInconsistent) || ie.Offset != 16 || ie.Type != image.TypeMeta {
		t.Errorf("got %v, want an inconsistency in the meta record", err)
	}
}

// TestShowProblems checks what framing cannot catch: pages outside every
// mapping, counts that disagree with the metadata, file data for no file.
// show prints the image with its problems, then fails.
func TestShowProblems(t *testing.T) {
	img := writeShowImage(t, showTestMeta(), func(w *image.Writer) {
		w.WritePages(300, 0x600000, 1, nil)                            // one page more than the heap claims
		w.WritePages(300, 0x500000, 1, nil)                            // in a hole
		w.WritePages(300, 0x7ffd00000000, 1, nil)                      // in [vdso]
		w.WritePages(999, 0x600000, 1, nil)                            // no such process
		w.WritePages(300, 0x60f000, 2, make([]byte, 2*image.PageSize)) // runs past the heap
	})
	out, err := runShow(t, bytes.NewReader(img), "--image", "-")
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != fault.CodeBadImage {
		t.Fatalf("got %v, want a bad-image fault", err)
	}
	for _, want := range []string{
		"process 300", "totals",
		"problems",
		"pages 0x500000-0x501000 of pid 300 are outside every private mapping",
		"pages 0x7ffd00000000-0x7ffd00001000 of pid 300 are outside every private mapping",
		"pages 0x600000-0x601000 of pid 999, which is not in the image",
		"pages 0x60f000-0x611000 of pid 300 are outside every private mapping",
		"pid 300 mapping 0x600000-0x610000: 5 pages stored, the metadata says 4",
		"5 (metadata: 4!)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(err.Error(), "outside every private mapping (and 4 more problems)") || fe.Offset == 0 {
		t.Errorf("error %q (offset %d) does not name the first problem and its offset", err, fe.Offset)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func TestShowArguments(t *testing.T) {
	_, err := runShow(t, nil)
	if fault.CodeOf(err) != fault.CodeInvalidArgument {
		t.Errorf("no --image: %v, want invalid-argument", err)
	}
	_, err = runShow(t, nil, "--image", filepath.Join(t.TempDir(), "none"))
	if fault.CodeOf(err) != fault.CodeIO || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want an io error", err)
	}
}

// TestShowStreams checks that show does not hold page data: reading an image
// of 64 MiB of pages allocates a small fraction of that.
func TestShowStreams(t *testing.T) {
	const runs = 64
	m := showTestMeta()
	heap := &m.Processes[0].VMAs[1]
	heap.End = heap.Start + runs*image.MaxPagesPerRecord*image.PageSize
	heap.Pages = runs * image.MaxPagesPerRecord
	pr, pw := io.Pipe()
	go func() {
		w, err := image.NewWriter(pw)
		if err == nil {
			err = w.WriteMeta(m)
		}
		if err == nil {
			err = w.WriteFileData(1, 0, []byte("abc"))
		}
		if err == nil {
			err = w.WritePages(300, 0x403000, 1, nil)
		}
		data := bytes.Repeat([]byte{1}, image.MaxPagesPerRecord*image.PageSize)
		for i := 0; i < runs && err == nil; i++ {
			err = w.WritePages(300, heap.Start+uint64(i)*uint64(len(data)), image.MaxPagesPerRecord, data)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := runShow(t, pr, "--json", "--image", "-")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	// The writer goroutine allocates its 1 MiB of data and buffer; the
	// reader its buffers. 64 MiB went through.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("showing a 64 MiB image allocated %d bytes", got)
	}
	if !strings.Contains(out, `"pages": 16384`) {
		t.Errorf("the heap's pages are not counted:\n%s", out[:min(len(out), 2000)])
	}
}
