package image_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"testing"

	"github.com/godwit-dev/godwit/image"
)

// sentinels are the errors a damaged stream may produce.
var sentinels = []error{image.ErrBadMagic, image.ErrVersion, image.ErrChecksum, image.ErrTruncated,
	image.ErrTooLarge, image.ErrMalformed, image.ErrOrder}

// allocated returns the bytes allocated so far by the whole program.
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// readerSlack is what a record may cost beyond its payload buffer: the
// Record, the error, and the fuzzing machinery running alongside.
const readerSlack = 64 << 10

// FuzzReader reads arbitrary bytes as an image, as far as they go. It must
// never panic, must fail only with a *FormatError wrapping a sentinel, must
// return records that keep the format's promises, and must not allocate more
// than a payload buffer and a little for any one record.
func FuzzReader(f *testing.F) {
	small := smallImage(f)
	f.Add(small)
	f.Add(writeSample(f))
	f.Add(small[:16])
	f.Add(small[:len(small)-1])
	f.Add(join(header(image.Version, 0), record(image.TypeMeta, 0, minimalMeta), record(image.TypeEnd, 0, endPayload(1, 0))))
	f.Add(join(header(image.Version, 0), record(image.TypeMeta, 0, minimalMeta),
		record(image.TypePages, 0, pagesPayload(1, image.PagesZero, 0x1000, 3, 0, nil)), record(image.TypeEnd, 0, endPayload(2, 3))))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkErr := func(err error) {
			t.Helper()
			var fe *image.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%v (%T) is not a *FormatError", err, err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("%v wraps no sentinel", err)
		}
		r, err := image.NewReader(bytes.NewReader(in))
		if err != nil {
			checkErr(err)
			return
		}
		before := allocated()
		m, err := r.ReadMeta()
		if grew := allocated() - before; grew > image.MaxPayload+4+readerSlack+32*uint64(len(in)) {
			t.Fatalf("reading the metadata of a %d-byte stream allocated %d bytes", len(in), grew)
		}
		if err != nil {
			checkErr(err)
			return
		}
		m.Validate() // must not panic
		off := r.Offset()
		for i := 1; ; i++ {
			before := allocated()
			rec, err := r.Next()
			if grew := allocated() - before; grew > image.MaxPayload+4+readerSlack {
				t.Fatalf("record %d allocated %d bytes", i, grew)
			}
			if err == io.EOF {
				if r.Offset() > int64(len(in)) {
					t.Fatalf("offset %d beyond the %d-byte stream", r.Offset(), len(in))
				}
				return
			}
			if err != nil {
				checkErr(err)
				var fe *image.FormatError
				errors.As(err, &fe)
				if fe.Offset != off || fe.Record != i {
					t.Fatalf("error at record %d offset %d, want record %d offset %d", fe.Record, fe.Offset, i, off)
				}
				return
			}
			if r.Offset() <= off {
				t.Fatalf("offset went from %d to %d", off, r.Offset())
			}
			off = r.Offset()
			switch rec.Type {
			case image.TypePages:
				if rec.Count < 1 || rec.Count > image.MaxPagesPerRecord || rec.Addr%image.PageSize != 0 ||
					rec.Addr+uint64(rec.Count)*image.PageSize < rec.Addr {
					t.Fatalf("bad pages record accepted: %d pages at %#x", rec.Count, rec.Addr)
				}
				if want := rec.Count * image.PageSize; (rec.Zero && rec.Data != nil) || (!rec.Zero && len(rec.Data) != want) {
					t.Fatalf("pages record with %d bytes for %d pages (zero %v)", len(rec.Data), rec.Count, rec.Zero)
				}
			case image.TypeFileData:
				if rec.Offset < 0 {
					t.Fatalf("file data at offset %d", rec.Offset)
				}
			case image.TypeEnd:
				if rec.Records != uint64(i) {
					t.Fatalf("end record counts %d records, %d came before it", rec.Records, i)
				}
			default:
				t.Fatalf("record of type %s accepted", rec.Type)
			}
		}
	})
}

// FuzzMetaValidate decodes arbitrary JSON into Meta and validates it. It
// must never panic; reading the same JSON as the Meta record of an image must
// give the same result (or refuse it as too large to decode); and metadata
// that validates must survive a round trip through an image unchanged.
func FuzzMetaValidate(f *testing.F) {
	sample, err := json.Marshal(sampleMeta())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"arch":"x86_64","xstate_size":512,"root":1,"processes":[{"pid":1,"threads":[{"tid":1}]}]}`))
	f.Add([]byte(`{"processes":[{"vmas":[{"start":4096,"end":0,"kind":"anon"}],"fds":[{"fd":3,"same_as":3}]}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var m image.Meta
		jerr := json.Unmarshal(in, &m)
		var verr error
		if jerr == nil {
			verr = m.Validate()
			if verr != nil && !errors.Is(verr, image.ErrInconsistent) {
				t.Fatalf("Validate: %v does not wrap ErrInconsistent", verr)
			}
		}

		// The same bytes as a Meta record.
		img := join(header(image.Version, 0), record(image.TypeMeta, 0, in))
		r, err := image.NewReader(bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		rm, rerr := r.ReadMeta()
		switch {
		case jerr != nil && rerr == nil:
			t.Fatalf("json.Unmarshal failed (%v) but ReadMeta did not", jerr)
		case jerr == nil && errors.Is(rerr, image.ErrTooLarge):
			return
		case jerr == nil && rerr != nil:
			t.Fatalf("json.Unmarshal succeeded but ReadMeta failed: %v", rerr)
		case jerr == nil && !reflect.DeepEqual(rm, &m):
			t.Fatalf("ReadMeta decoded %+v, json.Unmarshal %+v", rm, &m)
		}
		if jerr != nil || verr != nil {
			return
		}

		// Valid metadata goes through an image unchanged and stays valid.
		var buf bytes.Buffer
		w, err := image.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteMeta(&m); err != nil {
			if errors.Is(err, image.ErrTooLarge) {
				return
			}
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		back, _, err := readAll(&buf)
		if errors.Is(err, image.ErrTooLarge) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("valid metadata is not valid after a round trip: %v", err)
		}
		a, _ := json.Marshal(&m)
		b, _ := json.Marshal(back)
		if !bytes.Equal(a, b) {
			t.Fatalf("round trip changed the metadata:\n%s\n%s", a, b)
		}
		for _, p := range back.Processes {
			for i := range p.VMAs {
				if v := p.FindVMA(p.VMAs[i].Start); v == nil || v.Start != p.VMAs[i].Start {
					t.Fatalf("FindVMA(%#x) of a valid process did not find its mapping", p.VMAs[i].Start)
				}
			}
		}
	})
}

// TestWriteSeeds rewrites the committed fuzz seeds and the golden image
// (go test ./image -run TestWriteSeeds -update).
func TestWriteSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/")
	}
	sample, err := json.Marshal(sampleMeta())
	if err != nil {
		t.Fatal(err)
	}
	seed := func(fuzzer, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	small := smallImage(t)
	seed("FuzzReader", "small-image", small)
	seed("FuzzReader", "cut-in-pages", small[:len(small)-100])
	seed("FuzzMetaValidate", "sample", sample)
	seed("FuzzMetaValidate", "overlapping-mappings",
		[]byte(`{"arch":"x86_64","xstate_size":512,"root":1,"processes":[{"pid":1,"vmas":[{"start":8192,"end":16384,"kind":"anon"},{"start":4096,"end":12288,"kind":"file","path":"/x"}]}]}`))
	if err := os.WriteFile(filepath.Join("testdata", goldenV1), writeSample(t), 0o644); err != nil {
		t.Fatal(err)
	}
}

// goldenV1 is an image of sampleMeta written by the first version of the
// format. Every later godwit that reads version 1 must still read it.
const goldenV1 = "sample-v1.img"

func TestGoldenV1(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", goldenV1))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, recs, err := readAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, sampleMeta()) {
		t.Errorf("the golden image decodes to\n%+v\nwant\n%+v", m, sampleMeta())
	}
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
	if len(recs) != 5 || recs[4].Type != image.TypeEnd || recs[4].Pages != 6 {
		t.Errorf("the golden image has %d records after the metadata, want 4 and End with 6 pages", len(recs))
	}
}
