// Package runtime is godwit's rootless OCI container runtime: it creates,
// starts, inspects, signals, enters and deletes containers described by an
// OCI bundle, with runc-compatible state.
//
// # Processes
//
// For each container three kinds of process cooperate:
//
//   - the shim, a detached godwit process on the host (spawned by Create),
//     which creates the container, owns its control socket, runs the
//     seccomp supervisor and records the exit status;
//   - the init, PID 1 of the container, a sealed in-memory copy of the
//     godwit binary re-executed inside the new namespaces: it builds the
//     root filesystem, then starts the container's process, reaps orphans,
//     forwards signals and serves exec and mount requests from the shim;
//   - an exec stage per container process, which applies the process's
//     credentials, no_new_privs and seccomp filter and execs the program.
//
// The shim treats the init as untrusted once the container's code runs:
// the container's root can ptrace its own PID 1.
package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

// Status values, as runc reports them.
const (
	StatusCreating = "creating"
	StatusCreated  = "created"
	StatusRunning  = "running"
	StatusStopped  = "stopped"
)

// State is what `godwit state` prints: the OCI state plus runc's extra
// fields, and godwit's own bookkeeping (omitted from the OCI view).
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	PID         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`

	// Private bookkeeping.
	InitStart uint64 `json:"godwitInitStart,omitempty"` // starttime of PID (reuse check)
	ShimPID   int    `json:"godwitShimPid,omitempty"`
	ShimStart uint64 `json:"godwitShimStart,omitempty"`
	ExitCode  *int   `json:"godwitExitCode,omitempty"`
	Cgroup    string `json:"godwitCgroup,omitempty"`
	IDMapped  bool   `json:"godwitIdmapped"`
	IDMapNote string `json:"godwitIdmapNote,omitempty"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$`)

// Sentinels.
var (
	ErrNotExist = &fault.Error{Code: fault.CodeInvalidArgument, Msg: "container does not exist"}
	ErrExist    = &fault.Error{Code: fault.CodeInvalidArgument, Msg: "container already exists"}
)

func checkID(id string) error {
	if !idPattern.MatchString(id) {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: "container id", Msg: fmt.Sprintf("invalid id %q", id),
			Remedy: "use letters, digits and _.+- (at most 128)"}
	}
	return nil
}

func stateDir(root, id string) string { return filepath.Join(root, id) }

func statePath(root, id string) string { return filepath.Join(root, id, "state.json") }

// writeState replaces the state file atomically.
func writeState(root string, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	p := statePath(root, st.ID)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fault.Wrap(fault.CodeIO, err, "write state")
	}
	if err := os.Rename(tmp, p); err != nil {
		return fault.Wrap(fault.CodeIO, err, "write state")
	}
	return nil
}

func readState(root, id string) (*State, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(statePath(root, id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "container " + id, Msg: "container does not exist", Path: stateDir(root, id), Err: err}
		}
		return nil, fault.Wrap(fault.CodeIO, err, "read state of %s", id)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, &fault.Error{Code: fault.CodeBadImage, Op: "container " + id, Msg: "corrupt state file", Err: err}
	}
	return &st, nil
}

// Load returns the state of container id with its status refreshed from the
// live processes.
func Load(root, id string) (*State, error) {
	st, err := readState(root, id)
	if err != nil {
		return nil, err
	}
	refresh(st)
	return st, nil
}

// refresh marks a container stopped when its init is gone (or its PID was
// reused by another process).
func refresh(st *State) {
	if st.Status == StatusStopped || st.PID == 0 {
		return
	}
	if !alive(st.PID, st.InitStart) {
		st.Status = StatusStopped
	}
}

// alive reports whether pid is still the process that started at start.
func alive(pid int, start uint64) bool {
	s, err := startTime(pid)
	if err != nil {
		return false
	}
	if start != 0 && s != start {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := statFields(string(b))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// startTime reads field 22 of /proc/PID/stat.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, &fault.Error{Code: fault.CodeNoProcess, PID: pid, Err: err}
	}
	f := statFields(string(b))
	if len(f) < 20 {
		return 0, &fault.Error{Code: fault.CodeBadImage, PID: pid, Msg: "short /proc/PID/stat"}
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// statFields returns the fields of /proc/PID/stat after the command name,
// starting with the state (field 3).
func statFields(s string) []string {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// pidfd opens a pidfd for pid after checking it is the recorded process.
func pidfd(pid int, start uint64) (int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, &fault.Error{Code: fault.CodeNoProcess, PID: pid, Op: "pidfd_open", Err: err}
	}
	if s, err := startTime(pid); err != nil || (start != 0 && s != start) {
		unix.Close(fd)
		return -1, &fault.Error{Code: fault.CodeNoProcess, PID: pid, Msg: "process exited (pid reused)"}
	}
	return fd, nil
}

// waitPidfd blocks until the process behind fd has exited.
func waitPidfd(fd int) {
	for {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(p, -1); err == unix.EINTR {
			continue
		}
		return
	}
}

// List returns the states of all containers under root.
func List(root string) ([]*State, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fault.Wrap(fault.CodeIO, err, "list %s", root)
	}
	var out []*State
	for _, e := range ents {
		if !e.IsDir() || checkID(e.Name()) != nil {
			continue
		}
		st, err := Load(root, e.Name())
		if err != nil {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// OCI returns the OCI view of st (without godwit's bookkeeping).
func (st *State) OCI() specs.State {
	return specs.State{Version: st.OCIVersion, ID: st.ID, Status: specs.ContainerState(st.Status), Pid: st.PID, Bundle: st.Bundle, Annotations: st.Annotations}
}

// Public is the runc-compatible JSON object printed by `state` and `list`.
type Public struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	PID         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Public returns the runc-compatible view.
func (st *State) Public() Public {
	pid := st.PID
	if st.Status == StatusStopped {
		pid = 0
	}
	return Public{OCIVersion: st.OCIVersion, ID: st.ID, PID: pid, Status: st.Status, Bundle: st.Bundle, Rootfs: st.Rootfs, Created: st.Created, Owner: st.Owner, Annotations: st.Annotations}
}
