// Package fault defines godwit's structured errors.
//
// Every error that godwit reports to a user is, or wraps, an *Error. An
// *Error carries a stable machine-readable Code (used by --log-format json),
// the object it is about (pid, tid, fd, address, path) and, where there is one,
// a remedy. Sentinels such as ErrPIDInUse let callers test the kind of an
// error with errors.Is while the wrapped cause (often a unix.Errno) stays
// reachable through errors.Is and errors.As as well:
//
//	if errors.Is(err, fault.ErrPIDInUse) { ... }
//	if errors.Is(err, unix.EEXIST) { ... }
package fault

import (
	"errors"
	"fmt"
	"strings"
)

// Code is a stable identifier of an error kind. Codes never change meaning.
type Code string

// Codes, grouped by what went wrong.
const (
	CodeInternal        Code = "internal"
	CodeNoProcess       Code = "no-such-process"
	CodePermission      Code = "permission-denied"
	CodeAlreadyTraced   Code = "already-traced"
	CodeUnsupported     Code = "unsupported"
	CodeUnreadable      Code = "unreadable-memory"
	CodePIDInUse        Code = "pid-in-use"
	CodeBadImage        Code = "bad-image"
	CodeKernel          Code = "kernel-feature-missing"
	CodeProcessExited   Code = "process-exited"
	CodeRestoreFailed   Code = "restore-failed"
	CodeDumpFailed      Code = "dump-failed"
	CodeInvalidArgument Code = "invalid-argument"
	CodeIO              Code = "io"
	CodeConnection      Code = "connection-lost"  // the migration's connection broke
	CodeAuth            Code = "authentication"   // TLS handshake or certificate refused
	CodeMigration       Code = "migration-failed" // the other side reported a failure
)

// Sentinels for errors.Is. An *Error matches the sentinel of its Code.
var (
	ErrNoProcess     = &Error{Code: CodeNoProcess, Msg: "no such process"}
	ErrPermission    = &Error{Code: CodePermission, Msg: "permission denied"}
	ErrAlreadyTraced = &Error{Code: CodeAlreadyTraced, Msg: "process is already traced"}
	ErrUnsupported   = &Error{Code: CodeUnsupported, Msg: "not supported"}
	ErrUnreadable    = &Error{Code: CodeUnreadable, Msg: "memory cannot be read from outside"}
	ErrPIDInUse      = &Error{Code: CodePIDInUse, Msg: "pid in use"}
	ErrBadImage      = &Error{Code: CodeBadImage, Msg: "bad image"}
	ErrKernel        = &Error{Code: CodeKernel, Msg: "kernel feature missing"}
	ErrExited        = &Error{Code: CodeProcessExited, Msg: "process exited"}
	ErrInvalid       = &Error{Code: CodeInvalidArgument, Msg: "invalid argument"}
	ErrConnection    = &Error{Code: CodeConnection, Msg: "connection lost"}
	ErrAuth          = &Error{Code: CodeAuth, Msg: "authentication failed"}
	ErrMigration     = &Error{Code: CodeMigration, Msg: "migration failed"}
)

// Error is a structured godwit error. Zero fields are omitted from the message.
type Error struct {
	Code Code   `json:"code"`
	Op   string `json:"op,omitempty"`  // what godwit was doing: "dump", "restore", "map vma", ...
	Msg  string `json:"msg,omitempty"` // what failed
	PID  int    `json:"pid,omitempty"`
	TID  int    `json:"tid,omitempty"`
	FD   int    `json:"fd,omitempty"`
	// HasFD tells whether FD is meaningful (fd 0 is a valid descriptor).
	HasFD  bool   `json:"-"`
	Addr   uint64 `json:"addr,omitempty"`
	Path   string `json:"path,omitempty"`
	Offset int64  `json:"offset,omitempty"` // offset in an image stream (the cause's text says it too)
	Remedy string `json:"remedy,omitempty"` // what the user can do about it
	Err    error  `json:"-"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
	}
	ids := []string{}
	if e.PID != 0 {
		ids = append(ids, fmt.Sprintf("pid %d", e.PID))
	}
	if e.TID != 0 && e.TID != e.PID {
		ids = append(ids, fmt.Sprintf("tid %d", e.TID))
	}
	if e.HasFD {
		ids = append(ids, fmt.Sprintf("fd %d", e.FD))
	}
	if e.Addr != 0 {
		ids = append(ids, fmt.Sprintf("address %#x", e.Addr))
	}
	if e.Path != "" {
		ids = append(ids, fmt.Sprintf("%q", e.Path))
	}
	if len(ids) > 0 {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString(strings.Join(ids, ", "))
	}
	msg := e.Msg
	if msg == "" {
		msg = string(e.Code)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Remedy != "" {
		b.WriteString(" (")
		b.WriteString(e.Remedy)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && t.Op == "" && t.PID == 0 && t.Err == nil && isSentinel(t)
}

func isSentinel(t *Error) bool {
	switch t {
	case ErrNoProcess, ErrPermission, ErrAlreadyTraced, ErrUnsupported, ErrUnreadable,
		ErrPIDInUse, ErrBadImage, ErrKernel, ErrExited, ErrInvalid, ErrConnection, ErrAuth, ErrMigration:
		return true
	}
	return false
}

// New returns an *Error of the given code.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of the given code that wraps err.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// WithFD sets the fd the error is about.
func (e *Error) WithFD(fd int) *Error { e.FD, e.HasFD = fd, true; return e }

// CodeOf returns the code of the outermost *Error in err's chain, or
// CodeInternal when there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
