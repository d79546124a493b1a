package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/godwit-dev/godwit/container/idmap"
	"github.com/godwit-dev/godwit/container/seccomp"
	"github.com/godwit-dev/godwit/fault"
)

// request is one message of the control protocols (client → shim, shim →
// init). Files travel as SCM_RIGHTS alongside.
type request struct {
	Op  string `json:"op"`
	Seq uint64 `json:"seq,omitempty"`

	// exec
	Process *specs.Process `json:"process,omitempty"`
	// mount
	Dest     string `json:"dest,omitempty"`
	Source   string `json:"source,omitempty"`
	Clone    bool   `json:"clone,omitempty"` // the file is an O_PATH handle to clone, not a mount
	ReadOnly bool   `json:"readonly,omitempty"`
	// device bind (supervisor → init)
	Major uint32 `json:"major,omitempty"`
	Minor uint32 `json:"minor,omitempty"`
}

// reply answers a request.
type reply struct {
	Seq      uint64     `json:"seq,omitempty"`
	Error    *wireError `json:"error,omitempty"`
	PID      int        `json:"pid,omitempty"`
	ExitCode int        `json:"exitCode"`
	Note     string     `json:"note,omitempty"`
}

// wireError carries a fault.Error across processes.
type wireError struct {
	Code   fault.Code `json:"code"`
	Op     string     `json:"op,omitempty"`
	Msg    string     `json:"msg,omitempty"`
	Path   string     `json:"path,omitempty"`
	PID    int        `json:"pid,omitempty"`
	Remedy string     `json:"remedy,omitempty"`
	Cause  string     `json:"cause,omitempty"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Code: fault.CodeOf(err), Msg: err.Error()}
	if fe, ok := err.(*fault.Error); ok {
		w.Op, w.Msg, w.Path, w.PID, w.Remedy = fe.Op, fe.Msg, fe.Path, fe.PID, fe.Remedy
		if fe.Err != nil {
			w.Cause = fe.Err.Error()
		}
	}
	return w
}

func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	e := &fault.Error{Code: w.Code, Op: w.Op, Msg: w.Msg, Path: w.Path, PID: w.PID, Remedy: w.Remedy}
	if w.Cause != "" {
		e.Err = causeError(w.Cause)
	}
	return e
}

type causeError string

func (c causeError) Error() string { return string(c) }

// initConfig is what the shim sends the init once the user namespace is
// mapped.
type initConfig struct {
	Spec    *specs.Spec    `json:"spec"`
	Rootfs  string         `json:"rootfs"`  // absolute host path of the rootfs
	Bundle  string         `json:"bundle"`  // absolute host path of the bundle
	HasTree bool           `json:"hasTree"` // an (id-mapped) rootfs mount fd comes along
	UIDs    idmap.Map      `json:"uids"`
	GIDs    idmap.Map      `json:"gids"`
	Network string         `json:"network"` // "loopback", "none", "host", "path"
	Policy  seccomp.Policy `json:"policy"`
}

// stageConfig is what the init sends an exec stage.
type stageConfig struct {
	Process *specs.Process      `json:"process"`
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
	Policy  seccomp.Policy      `json:"policy"`
}

// shimOptions is what Create sends the shim.
type shimOptions struct {
	Root    string `json:"root"`
	ID      string `json:"id"`
	Bundle  string `json:"bundle"`
	PidFile string `json:"pidFile,omitempty"`
	Exit    bool   `json:"exit"` // an exit-status pipe is attached (run)
}
