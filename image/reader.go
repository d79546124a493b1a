package image

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"reflect"
	"strings"
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
	// Version 1 defines no header flags: one set by a later writer would
	// change the meaning of the stream, so it must not be ignored.
	if f := binary.LittleEndian.Uint32(hdr[12:]); f != 0 {
		return nil, &FormatError{Record: -1, Err: fmt.Errorf("%w: unknown header flags %#x", ErrVersion, f)}
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
	if err := checkMetaSize(rec.Data); err != nil {
		return nil, &FormatError{Offset: 16, Record: 0, Type: TypeMeta, Err: err}
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
		if binary.LittleEndian.Uint32(payload[4:]) != 0 {
			return fail(t, fmt.Errorf("%w: reserved bits set", ErrMalformed))
		}
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
		if binary.LittleEndian.Uint32(payload[20:]) != 0 {
			return fail(t, fmt.Errorf("%w: reserved bits set", ErrMalformed))
		}
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

// Decoding a Meta record must not cost much more memory than the record:
// JSON is compact where Go values are not ("{}," is three bytes of JSON but a
// whole Process of several hundred bytes once decoded), so a hostile 16 MiB
// record could otherwise make json.Unmarshal allocate gigabytes. checkMetaSize
// walks the JSON along the type of Meta before it is decoded, without
// allocating, and adds up the size of every slice element and pointer target
// the decoder would allocate.
const (
	metaGrowth   = 4       // decoded bytes allowed per byte of JSON
	metaMemSlack = 1 << 20 // ... plus this much
)

var metaType = reflect.TypeFor[Meta]()

// metaFrame is an open JSON object or array during checkMetaSize.
type metaFrame struct {
	t     reflect.Type // Go type decoded into; nil where the decoder skips the value
	obj   bool
	key   bool         // object: the next string is a key
	field reflect.Type // object: type of the value after the key just read
}

func checkMetaSize(data []byte) error {
	if !json.Valid(data) {
		return nil // json.Unmarshal reports the syntax error before it allocates
	}
	budget := int64(len(data))*metaGrowth + metaMemSlack
	var used int64
	var stack []metaFrame
	fields := map[reflect.Type][]jsonField{}
	// next returns the type of the value that starts now, and charges the
	// element it will be stored in when the parent is a slice.
	next := func() reflect.Type {
		if len(stack) == 0 {
			return metaType
		}
		f := &stack[len(stack)-1]
		if f.obj {
			f.key = true
			return f.field
		}
		if f.t == nil {
			return nil
		}
		if f.t.Kind() == reflect.Slice {
			used += int64(f.t.Elem().Size())
		}
		return f.t.Elem()
	}
	// The input is valid JSON: a simple scan finds its structure.
	for i := 0; i < len(data); {
		switch c := data[i]; c {
		case ' ', '\t', '\n', '\r', ':', ',':
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			i++
		case '"':
			j := i + 1
			for data[j] != '"' {
				if data[j] == '\\' {
					j++
				}
				j++
			}
			j++
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].key {
				f := &stack[n-1]
				f.field, f.key = fieldType(fields, f.t, data[i:j]), false
			} else {
				next() // a string's bytes are bounded by the record itself
			}
			i = j
		case '{', '[':
			t := next()
			if t != nil && t.Kind() == reflect.Pointer && c == '{' {
				t = t.Elem()
				used += int64(t.Size())
			}
			if t != nil && !(c == '{' && t.Kind() == reflect.Struct) &&
				!(c == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array)) {
				t = nil // a type mismatch: the decoder skips the value
			}
			stack = append(stack, metaFrame{t: t, obj: c == '{', key: true})
			i++
		default: // number, true, false, null
			next()
			for i < len(data) && !strings.ContainsRune(" \t\n\r,]}", rune(data[i])) {
				i++
			}
		}
		if used > budget {
			return fmt.Errorf("%w: meta record of %d bytes would take more than %d bytes to decode", ErrTooLarge, len(data), budget)
		}
	}
	return nil
}

// jsonField is a field of a struct as encoding/json names it.
type jsonField struct {
	name string
	t    reflect.Type
}

// fieldType returns the type of the field of struct t that encoding/json
// would decode the (quoted) key into: an exact match of the name, else the
// first case-insensitive one. It returns nil when there is none.
func fieldType(cache map[reflect.Type][]jsonField, t reflect.Type, quoted []byte) reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	fs, ok := cache[t]
	if !ok {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fs = append(fs, jsonField{name, f.Type})
		}
		cache[t] = fs
	}
	key := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		json.Unmarshal(quoted, &s)
		key = []byte(s)
	}
	for _, f := range fs {
		if f.name == string(key) {
			return f.t
		}
	}
	for _, f := range fs {
		if bytes.EqualFold([]byte(f.name), key) {
			return f.t
		}
	}
	return nil
}
