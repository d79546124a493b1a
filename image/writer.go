package image

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Writer writes an image stream. Its methods must be called from one
// goroutine, in the order of the format: Meta, then FileData, then Pages,
// then Close.
type Writer struct {
	w       *bufio.Writer
	n       int64 // bytes written
	records uint64
	pages   uint64
	state   int
	err     error
}

// NewWriter writes the header to w and returns a Writer.
func NewWriter(w io.Writer) (*Writer, error) {
	iw := &Writer{w: bufio.NewWriterSize(w, 1<<20)}
	var hdr [16]byte
	copy(hdr[:8], Magic)
	binary.LittleEndian.PutUint32(hdr[8:], Version)
	if _, err := iw.w.Write(hdr[:]); err != nil {
		return nil, err
	}
	iw.n = 16
	return iw, nil
}

// Written returns the number of bytes written so far.
func (w *Writer) Written() int64 { return w.n }

func (w *Writer) record(t RecordType, parts ...[]byte) error {
	if w.err != nil {
		return w.err
	}
	var n int
	for _, p := range parts {
		n += len(p)
	}
	if n > MaxPayload {
		return fmt.Errorf("image: %s record of %d bytes: %w", t, n, ErrTooLarge)
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint16(hdr[0:], uint16(t))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(n))
	crc := crc32.Update(0, castagnoli, hdr[:])
	if _, err := w.w.Write(hdr[:]); err != nil {
		w.err = err
		return err
	}
	for _, p := range parts {
		crc = crc32.Update(crc, castagnoli, p)
		if _, err := w.w.Write(p); err != nil {
			w.err = err
			return err
		}
	}
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], crc)
	if _, err := w.w.Write(tail[:]); err != nil {
		w.err = err
		return err
	}
	w.n += int64(8 + n + 4)
	w.records++
	return nil
}

// WriteMeta writes the metadata record. It must be the first record.
func (w *Writer) WriteMeta(m *Meta) error {
	if w.state != 0 {
		return fmt.Errorf("image: meta: %w", ErrOrder)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("image: encode meta: %w", err)
	}
	w.state = 1
	return w.record(TypeMeta, b)
}

// WriteFileData writes a chunk of the content of file blob id at offset.
// Chunks larger than MaxPayload are split.
func (w *Writer) WriteFileData(id int, offset int64, data []byte) error {
	if w.state < 1 || w.state > 2 {
		return fmt.Errorf("image: file data: %w", ErrOrder)
	}
	w.state = 2
	for len(data) > 0 || offset == 0 {
		chunk := data
		if len(chunk) > MaxPayload-16 {
			chunk = chunk[:MaxPayload-16]
		}
		var hdr [16]byte
		binary.LittleEndian.PutUint32(hdr[0:], uint32(id))
		binary.LittleEndian.PutUint64(hdr[8:], uint64(offset))
		if err := w.record(TypeFileData, hdr[:], chunk); err != nil {
			return err
		}
		data = data[len(chunk):]
		offset += int64(len(chunk))
		if len(data) == 0 {
			break
		}
	}
	return nil
}

// WritePages writes count pages of process pid starting at addr. data holds
// count*PageSize bytes, or is nil for a run of zero pages. Runs longer than
// MaxPagesPerRecord are split.
func (w *Writer) WritePages(pid int, addr uint64, count int, data []byte) error {
	if w.state < 1 || w.state > 3 {
		return fmt.Errorf("image: pages: %w", ErrOrder)
	}
	if data != nil && len(data) != count*PageSize {
		return fmt.Errorf("image: pages at %#x: %d bytes for %d pages", addr, len(data), count)
	}
	w.state = 3
	for count > 0 {
		n := min(count, MaxPagesPerRecord)
		var hdr [24]byte
		binary.LittleEndian.PutUint32(hdr[0:], uint32(pid))
		binary.LittleEndian.PutUint64(hdr[8:], addr)
		binary.LittleEndian.PutUint32(hdr[16:], uint32(n))
		var err error
		if data == nil {
			binary.LittleEndian.PutUint32(hdr[4:], PagesZero)
			err = w.record(TypePages, hdr[:])
		} else {
			err = w.record(TypePages, hdr[:], data[:n*PageSize])
			data = data[n*PageSize:]
		}
		if err != nil {
			return err
		}
		w.pages += uint64(n)
		addr += uint64(n) * PageSize
		count -= n
	}
	return nil
}

// Close writes the End record and flushes. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.state < 1 {
		return fmt.Errorf("image: end before meta: %w", ErrOrder)
	}
	var b [16]byte
	binary.LittleEndian.PutUint64(b[0:], w.records)
	binary.LittleEndian.PutUint64(b[8:], w.pages)
	if err := w.record(TypeEnd, b[:]); err != nil {
		return err
	}
	w.state = 4
	if err := w.w.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}
