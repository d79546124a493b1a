package image

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Record is one decoded record. Its byte slices are only valid until the
// next call of Reader.Next.
type Record struct {
	Type RecordType

	// Pages
	PID   int
	Addr  uint64
	Count int
	Zero  bool
	Data  []byte // Count*PageSize bytes for pages; the chunk for file data

	// FileData
	FileID int
	Offset int64

	// End
	Records uint64
	Pages   uint64
}

// Reader decodes an image stream. It checks framing, checksums, order and
// sizes; Meta.Validate checks the metadata's meaning.
type Reader struct {
	r       *bufio.Reader
	off     int64
	index   int
	state   int
	buf     []byte
	records uint64
	pages   uint64
	done    bool
}

// NewReader reads and checks the header.
func NewReader(r io.Reader) (*Reader, error) {
	ir := &Reader{r: bufio.NewReaderSize(r, 1<<20)}
	var hdr [16]byte
	if _, err := io.ReadFull(ir.r, hdr[:]); err != nil {
		return nil, &FormatError{Record: -1, Err: truncated(err)}
	}
	if string(hdr[:8]) != Magic {
		return nil, &FormatError{Record: -1, Err: ErrBadMagic}
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != Version {
		return nil, &FormatError{Record: -1, Err: fmt.Errorf("%w %d (this godwit reads %d)", ErrVersion, v, Version)}
	}
	ir.off = 16
	return ir, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// Offset is the stream offset of the next record.
func (r *Reader) Offset() int64 { return r.off }

// ReadMeta reads the first record, which must be Meta.
func (r *Reader) ReadMeta() (*Meta, error) {
	rec, err := r.Next()
	if err != nil {
		return nil, err
	}
	if rec.Type != TypeMeta {
		return nil, &FormatError{Offset: r.off, Record: r.index - 1, Type: rec.Type, Err: ErrOrder}
	}
	var m Meta
	if err := json.Unmarshal(rec.Data, &m); err != nil {
		return nil, &FormatError{Offset: 16, Record: 0, Type: TypeMeta, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	return &m, nil
}

// Next decodes the next record. After the End record it returns io.EOF.
func (r *Reader) Next() (*Record, error) {
	if r.done {
		return nil, io.EOF
	}
	start := r.off
	fail := func(t RecordType, err error) (*Record, error) {
		return nil, &FormatError{Offset: start, Record: r.index, Type: t, Err: err}
	}
	var hdr [8]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return fail(0, truncated(err))
	}
	t := RecordType(binary.LittleEndian.Uint16(hdr[0:]))
	n := binary.LittleEndian.Uint32(hdr[4:])
	if binary.LittleEndian.Uint16(hdr[2:]) != 0 {
		return fail(t, fmt.Errorf("%w: reserved bits set", ErrMalformed))
	}
	if n > MaxPayload {
		return fail(t, fmt.Errorf("%w: %d bytes", ErrTooLarge, n))
	}
	if cap(r.buf) < int(n)+4 {
		r.buf = make([]byte, int(n)+4)
	}
	buf := r.buf[:int(n)+4]
	if _, err := io.ReadFull(r.r, buf); err != nil {
		return fail(t, truncated(err))
	}
	payload := buf[:n]
	crc := crc32.Update(crc32.Update(0, castagnoli, hdr[:]), castagnoli, payload)
	if crc != binary.LittleEndian.Uint32(buf[n:]) {
		return fail(t, ErrChecksum)
	}
	rec := &Record{Type: t}
	switch t {
	case TypeMeta:
		if r.state != 0 {
			return fail(t, ErrOrder)
		}
		r.state = 1
		rec.Data = payload
	case TypeFileData:
		if r.state < 1 || r.state > 2 {
			return fail(t, ErrOrder)
		}
		r.state = 2
		if len(payload) < 16 {
			return fail(t, fmt.Errorf("%w: short file-data header", ErrMalformed))
		}
		rec.FileID = int(binary.LittleEndian.Uint32(payload[0:]))
		off := binary.LittleEndian.Uint64(payload[8:])
		if off > 1<<62 {
			return fail(t, fmt.Errorf("%w: file offset %d", ErrMalformed, off))
		}
		rec.Offset = int64(off)
		rec.Data = payload[16:]
	case TypePages:
		if r.state < 1 || r.state > 3 {
			return fail(t, ErrOrder)
		}
		r.state = 3
		if len(payload) < 24 {
			return fail(t, fmt.Errorf("%w: short pages header", ErrMalformed))
		}
		rec.PID = int(binary.LittleEndian.Uint32(payload[0:]))
		flags := binary.LittleEndian.Uint32(payload[4:])
		rec.Addr = binary.LittleEndian.Uint64(payload[8:])
		count := binary.LittleEndian.Uint32(payload[16:])
		if flags&^PagesZero != 0 {
			return fail(t, fmt.Errorf("%w: unknown page flags %#x", ErrMalformed, flags))
		}
		if count == 0 || count > MaxPagesPerRecord {
			return fail(t, fmt.Errorf("%w: %d pages in one record", ErrMalformed, count))
		}
		if rec.Addr%PageSize != 0 || rec.Addr+uint64(count)*PageSize < rec.Addr {
			return fail(t, fmt.Errorf("%w: page address %#x", ErrMalformed, rec.Addr))
		}
		rec.Count = int(count)
		rec.Zero = flags&PagesZero != 0
		want := 24
		if !rec.Zero {
			want += int(count) * PageSize
			rec.Data = payload[24:]
		}
		if len(payload) != want {
			return fail(t, fmt.Errorf("%w: %d bytes for %d pages", ErrMalformed, len(payload)-24, count))
		}
		r.pages += uint64(count)
	case TypeEnd:
		if r.state < 1 {
			return fail(t, ErrOrder)
		}
		if len(payload) != 16 {
			return fail(t, fmt.Errorf("%w: end record of %d bytes", ErrMalformed, len(payload)))
		}
		rec.Records = binary.LittleEndian.Uint64(payload[0:])
		rec.Pages = binary.LittleEndian.Uint64(payload[8:])
		if rec.Records != r.records || rec.Pages != r.pages {
			return fail(t, fmt.Errorf("%w: end record counts %d records/%d pages, stream had %d/%d",
				ErrTruncated, rec.Records, rec.Pages, r.records, r.pages))
		}
		r.done = true
	default:
		return fail(t, fmt.Errorf("%w: unknown record type %d", ErrMalformed, uint16(t)))
	}
	r.off += int64(8 + n + 4)
	r.index++
	r.records++
	return rec, nil
}
