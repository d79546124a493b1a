// Package procfs parses files of /proc.
//
// Every file format has a Parse function that takes an io.Reader, so it can be
// tested from captured fixtures, and a Read function that reads the file of a
// live process. Parsers never panic: malformed input yields a *ParseError
// naming the file kind and, for line-oriented files, the 1-based line number,
// for example
//
//	maps line 3: bad permissions "rw"
//
// Read functions return the error of os.ReadFile unchanged when the file
// cannot be read (so errors.Is(err, fs.ErrNotExist) and errors.Is(err,
// unix.ESRCH) work), and prefix parse errors with the path that was read.
//
// The package only reads the formats of Linux on 64-bit architectures.
package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// ParseError reports malformed content of a /proc file.
type ParseError struct {
	File string // kind of file: "maps", "smaps", "status", "stat", "fdinfo", "limits", "timers", "auxv", "children"
	Line int    // 1-based line number; 0 when the error is not about one line
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s line %d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// maxLine bounds the length of one line. The longest real lines are maps
// lines with a PATH_MAX path whose newlines are escaped as \012.
const maxLine = 1 << 20

// lineReader reads '\n'-terminated lines and counts them. Unlike
// bufio.ScanLines it keeps a trailing '\r'.
type lineReader struct {
	s    *bufio.Scanner
	file string
	n    int
}

func newLineReader(r io.Reader, file string) *lineReader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), maxLine)
	s.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	return &lineReader{s: s, file: file}
}

// next advances to the next line.
func (l *lineReader) next() bool {
	if l.s.Scan() {
		l.n++
		return true
	}
	return false
}

func (l *lineReader) text() string { return l.s.Text() }

// errorf returns a *ParseError about the current line.
func (l *lineReader) errorf(format string, args ...any) error {
	return &ParseError{File: l.file, Line: l.n, Err: fmt.Errorf(format, args...)}
}

// err reports a read error (including a too long line) with the number of
// the line that could not be read.
func (l *lineReader) err() error {
	if err := l.s.Err(); err != nil {
		return &ParseError{File: l.file, Line: l.n + 1, Err: err}
	}
	return nil
}

// readProc reads path and parses it.
func readProc[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := parse(bytes.NewReader(data))
	if err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func pidPath(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

func taskPath(pid, tid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/" + name
}

// numErr strips the strconv wrapping ("strconv.ParseUint: parsing "x": ")
// from a number error, keeping the reason.
func numErr(what, s string, err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		err = ne.Err
	}
	return fmt.Errorf("bad %s %q: %w", what, s, err)
}

func parseUint(what, s string, base, bits int) (uint64, error) {
	v, err := strconv.ParseUint(s, base, bits)
	if err != nil {
		return 0, numErr(what, s, err)
	}
	return v, nil
}

func parseInt(what, s string, bits int) (int64, error) {
	v, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		return 0, numErr(what, s, err)
	}
	return v, nil
}

func atoi(what, s string) (int, error) {
	v, err := parseInt(what, s, strconv.IntSize)
	return int(v), err
}
