package procfs

import (
	"fmt"
	"io"
	"strings"
)

// FDInfo is /proc/PID/fdinfo/FD.
type FDInfo struct {
	Pos   int64
	Flags uint32 // the kernel prints it in octal
	MntID int
	Ino   uint64 // 0 on kernels before 5.14, which do not print it
	// Lines holds every other line, verbatim without the trailing newline
	// (eventfd-count:, tfd:, sigmask:, inotify wd:, lock:, ...).
	Lines []string
}

// ParseFDInfo parses /proc/PID/fdinfo/FD. The pos, flags and mnt_id lines
// are required.
func ParseFDInfo(r io.Reader) (*FDInfo, error) {
	lr := newLineReader(r, "fdinfo")
	fi := &FDInfo{}
	var seenPos, seenFlags, seenMnt bool
	for lr.next() {
		line := lr.text()
		key, val, _ := strings.Cut(line, ":")
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "pos":
			fi.Pos, err = parseInt(key, val, 64)
			seenPos = true
		case "flags":
			var v uint64
			v, err = parseUint(key, val, 8, 32)
			fi.Flags = uint32(v)
			seenFlags = true
		case "mnt_id":
			fi.MntID, err = atoi(key, val)
			seenMnt = true
		case "ino":
			fi.Ino, err = parseUint(key, val, 10, 64)
		default:
			fi.Lines = append(fi.Lines, line)
		}
		if err != nil {
			return nil, lr.errorf("%w", err)
		}
	}
	if err := lr.err(); err != nil {
		return nil, err
	}
	switch {
	case !seenPos:
		return nil, &ParseError{File: "fdinfo", Err: fmt.Errorf("no pos line")}
	case !seenFlags:
		return nil, &ParseError{File: "fdinfo", Err: fmt.Errorf("no flags line")}
	case !seenMnt:
		return nil, &ParseError{File: "fdinfo", Err: fmt.Errorf("no mnt_id line")}
	}
	return fi, nil
}

// ReadFDInfo reads /proc/PID/fdinfo/FD.
func ReadFDInfo(pid, fd int) (*FDInfo, error) {
	return readProc(pidPath(pid, fmt.Sprintf("fdinfo/%d", fd)), ParseFDInfo)
}
