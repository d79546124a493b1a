// Package image is godwit's image stream: the one format that carries a
// checkpoint through a file, a pipe or a network connection.
//
// An image is a header followed by typed records. Every record is framed
// and checksummed, so a reader can stop at the first damaged byte and say
// where it is. The stream is written front to back with no seeking, so it can
// be piped straight into a restore:
//
//	+----------------------------------------------+
//	| magic "GODWIT\x00\x00" (8) | version u32 | flags u32 |   header, 16 bytes
//	+----------------------------------------------+
//	| type u16 | reserved u16 | length u32 | payload | crc32c u32 |   record
//	+----------------------------------------------+
//	| ... more records ...                          |
//	+----------------------------------------------+
//	| End record                                    |
//	+----------------------------------------------+
//
// All integers are little-endian. The CRC32C (Castagnoli) covers type,
// reserved, length and payload. A payload is at most MaxPayload bytes.
//
// Record types, in the order they appear:
//
//   - Meta: the tree's metadata (processes, threads, mappings, files, signal
//     state) as JSON; exactly one, first.
//   - FileData: content of a file that only exists while open (a deleted
//     file): id u32 | reserved u32 | offset u64 | bytes.
//   - Pages: a run of pages of one process: pid u32 | flags u32 | address u64
//     | count u32 | reserved u32 | count*4096 bytes, unless flags has
//     PagesZero, in which case no bytes follow and the pages are zero.
//   - End: counts of the records before it: records u64 | pages u64.
//
// Everything in an image is untrusted input: Reader checks every length,
// address and count, and Meta.Validate checks the metadata for consistency
// before restore acts on any of it.
package image

import (
	"errors"
	"fmt"
)

// Magic opens every image.
const Magic = "GODWIT\x00\x00"

// Version is the format version this package writes and reads.
const Version = 1

// PageSize is the page size images are written in.
const PageSize = 4096

// MaxPayload bounds a record's payload (16 MiB).
const MaxPayload = 16 << 20

// MaxPagesPerRecord bounds the pages one Pages record carries (1 MiB of data).
const MaxPagesPerRecord = 256

// RecordType identifies a record.
type RecordType uint16

// Record types.
const (
	TypeMeta     RecordType = 1
	TypeFileData RecordType = 2
	TypePages    RecordType = 3
	TypeEnd      RecordType = 0xffff
)

func (t RecordType) String() string {
	switch t {
	case TypeMeta:
		return "meta"
	case TypeFileData:
		return "file-data"
	case TypePages:
		return "pages"
	case TypeEnd:
		return "end"
	}
	return fmt.Sprintf("type-%d", uint16(t))
}

// Flags of a Pages record.
const (
	PagesZero uint32 = 1 << 0 // the run is zero-filled; no data follows
)

// Sentinel errors; a *FormatError wraps one of them.
var (
	ErrBadMagic     = errors.New("not a godwit image (bad magic)")
	ErrVersion      = errors.New("unsupported image version")
	ErrChecksum     = errors.New("record checksum mismatch")
	ErrTruncated    = errors.New("image truncated")
	ErrTooLarge     = errors.New("record larger than allowed")
	ErrMalformed    = errors.New("malformed record")
	ErrOrder        = errors.New("record out of order")
	ErrInconsistent = errors.New("inconsistent metadata")
)

// FormatError says where in a stream decoding failed.
type FormatError struct {
	Offset int64      // byte offset of the record (or header) in the stream
	Record int        // index of the record, -1 for the header
	Type   RecordType // type of the record, when known
	Err    error
}

func (e *FormatError) Error() string {
	if e.Record < 0 {
		return fmt.Sprintf("image header at offset %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("image record %d (%s) at offset %d: %v", e.Record, e.Type, e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }
