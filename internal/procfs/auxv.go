package procfs

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ParseAuxv parses /proc/PID/auxv: pairs of native-endian uint64 (type,
// value), ending with the AT_NULL pair. The result is the flat list of
// words up to and including the AT_NULL pair; bytes after it are ignored.
// Empty input (a process without memory) gives nil and no error.
func ParseAuxv(r io.Reader) ([]uint64, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxLine+1))
	if err != nil {
		return nil, &ParseError{File: "auxv", Err: err}
	}
	if len(data) > maxLine {
		return nil, &ParseError{File: "auxv", Err: fmt.Errorf("longer than %d bytes", maxLine)}
	}
	if len(data) == 0 {
		return nil, nil
	}
	var out []uint64
	for off := 0; ; off += 16 {
		if len(data)-off < 16 {
			if off == len(data) {
				return nil, &ParseError{File: "auxv", Err: fmt.Errorf("no AT_NULL entry in %d entries", off/16)}
			}
			return nil, &ParseError{File: "auxv", Err: fmt.Errorf("entry %d truncated: %d of 16 bytes", off/16, len(data)-off)}
		}
		typ := binary.NativeEndian.Uint64(data[off:])
		val := binary.NativeEndian.Uint64(data[off+8:])
		out = append(out, typ, val)
		if typ == 0 { // AT_NULL
			return out, nil
		}
	}
}

// ReadAuxv reads /proc/PID/auxv.
func ReadAuxv(pid int) ([]uint64, error) {
	return readProc(pidPath(pid, "auxv"), ParseAuxv)
}
