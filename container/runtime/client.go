package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/container/idmap"
	"github.com/godwit-dev/godwit/container/mount"
	"github.com/godwit-dev/godwit/container/spec"
	"github.com/godwit-dev/godwit/fault"
)

// InitVerb is the hidden command under which the godwit binary re-executes
// itself as shim, container init or exec stage. cmd/godwit registers it and
// calls Main.
const InitVerb = "init"

// CreateOptions are the inputs of Create and Run.
type CreateOptions struct {
	Root    string // state directory (--root)
	ID      string
	Bundle  string
	PidFile string
	// Stdio of the container's process; nil means the caller's own.
	Stdin, Stdout, Stderr *os.File
}

// Create sets up container opts.ID from its bundle and leaves it "created":
// its init waits for Start. It returns once the shim reports the outcome.
func Create(opts CreateOptions) (*State, error) {
	st, _, err := create(opts, false)
	return st, err
}

func create(opts CreateOptions, wantExit bool) (*State, *os.File, error) {
	if err := checkID(opts.ID); err != nil {
		return nil, nil, err
	}
	bundle, err := filepath.Abs(opts.Bundle)
	if err != nil {
		return nil, nil, fault.Wrap(fault.CodeInvalidArgument, err, "bundle path")
	}
	sp, err := spec.Load(bundle)
	if err != nil {
		return nil, nil, err
	}
	if sp.Process.Terminal {
		return nil, nil, &fault.Error{Code: fault.CodeUnsupported, Op: "create " + opts.ID, Msg: "process.terminal is not supported yet",
			Remedy: "set process.terminal to false"}
	}
	if err := os.MkdirAll(opts.Root, 0o711); err != nil {
		return nil, nil, &fault.Error{Code: fault.CodeIO, Op: "create state root", Path: opts.Root, Err: err}
	}
	// The control socket lives in the state directory: its root must be
	// ours and not a symlink planted by someone else (e.g. in /tmp).
	var rst unix.Stat_t
	if err := unix.Lstat(opts.Root, &rst); err != nil || rst.Mode&unix.S_IFMT != unix.S_IFDIR || rst.Uid != uint32(os.Geteuid()) || rst.Mode&0o022 != 0 {
		return nil, nil, &fault.Error{Code: fault.CodePermission, Op: "state root", Path: opts.Root, Err: err,
			Msg: "state root must be a directory owned by the caller and not writable by others", Remedy: "use --root with a private directory"}
	}
	dir := stateDir(opts.Root, opts.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "container " + opts.ID, Msg: "container already exists", Path: dir}
		}
		return nil, nil, &fault.Error{Code: fault.CodeIO, Op: "create state directory", Path: dir, Err: err}
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	root, _ := filepath.Abs(opts.Root)
	so := shimOptions{Root: root, ID: opts.ID, Bundle: bundle, PidFile: opts.PidFile, Exit: wantExit}
	optR, optW, err := os.Pipe()
	if err != nil {
		return nil, nil, fault.Wrap(fault.CodeIO, err, "pipe")
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		return nil, nil, fault.Wrap(fault.CodeIO, err, "pipe")
	}
	files := []*os.File{optR, repW}
	var exitR, exitW *os.File
	if wantExit {
		if exitR, exitW, err = os.Pipe(); err != nil {
			return nil, nil, fault.Wrap(fault.CodeIO, err, "pipe")
		}
		files = append(files, exitW)
	}
	// Descriptors our caller let us inherit must not reach the container.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	cmd := exec.Command("/proc/self/exe", InitVerb, "shim")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pick(opts.Stdin, os.Stdin), pick(opts.Stdout, os.Stdout), pick(opts.Stderr, os.Stderr)
	cmd.ExtraFiles = files
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), noCgroupFiles}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fault.Wrap(fault.CodeIO, err, "start container shim")
	}
	optR.Close()
	repW.Close()
	if exitW != nil {
		exitW.Close()
	}
	// The shim is not our child for long: it outlives us.
	go cmd.Wait()
	json.NewEncoder(optW).Encode(so)
	optW.Close()
	var rep reply
	b, _ := io.ReadAll(repR)
	repR.Close()
	if err := json.Unmarshal(b, &rep); err != nil {
		if exitR != nil {
			exitR.Close()
		}
		return nil, nil, &fault.Error{Code: fault.CodeInternal, Op: "create " + opts.ID, Msg: "container shim died without a report"}
	}
	if rep.Error != nil {
		if exitR != nil {
			exitR.Close()
		}
		return nil, nil, rep.Error.err()
	}
	st, err := Load(opts.Root, opts.ID)
	if err != nil {
		return nil, nil, err
	}
	ok = true
	return st, exitR, nil
}

func pick(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

// Start runs the process of a created container.
func Start(root, id string) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	if st.Status != StatusCreated {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: "start " + id, Msg: "container is " + st.Status + ", not created"}
	}
	_, err = call(root, id, request{Op: "start"})
	return err
}

// call sends one request to the shim of container id and waits for its reply.
func call(root, id string, req request, files ...*os.File) (*reply, error) {
	dir, err := os.Open(stateDir(root, id))
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "container " + id, Msg: "container does not exist", Err: err}
	}
	defer dir.Close()
	c, err := dial(fmt.Sprintf("/proc/self/fd/%d/shim.sock", dir.Fd()))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.send(req, files...); err != nil {
		return nil, err
	}
	var rep reply
	got, err := c.recv(&rep)
	closeAll(got)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeProcessExited, Op: req.Op + " " + id, Msg: "container shim went away", Err: err}
	}
	if rep.Error != nil {
		return nil, rep.Error.err()
	}
	return &rep, nil
}

// Run creates and starts container opts.ID, waits for its process to exit,
// deletes it and returns the exit status.
func Run(opts CreateOptions) (int, error) {
	_, exitR, err := create(opts, true)
	if err != nil {
		return -1, err
	}
	defer exitR.Close()
	if err := Start(opts.Root, opts.ID); err != nil {
		Delete(opts.Root, opts.ID, true)
		return -1, err
	}
	b, _ := io.ReadAll(exitR) // the shim writes the status when the init is reaped
	code, err := strconv.Atoi(string(b))
	if err != nil {
		code = 255
	}
	if err := Delete(opts.Root, opts.ID, true); err != nil {
		return code, err
	}
	return code, nil
}

// Kill sends sig to the container's init (which forwards it to the
// container's process), or with all, kills every process of the container.
func Kill(root, id string, sig unix.Signal, all bool) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	if st.Status == StatusStopped {
		return &fault.Error{Code: fault.CodeProcessExited, Op: "kill " + id, Msg: "container is not running"}
	}
	if all && st.Cgroup != "" {
		if err := os.WriteFile(filepath.Join(st.Cgroup, "cgroup.kill"), []byte("1"), 0); err == nil {
			return nil
		}
	}
	if all {
		sig = unix.SIGKILL // the PID namespace dies with its init
	}
	fd, err := pidfd(st.PID, st.InitStart)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return &fault.Error{Code: fault.CodePermission, Op: "kill " + id, PID: st.PID, Err: err}
	}
	return nil
}

// Delete removes a stopped (or, with force, any) container: its processes,
// its cgroup and its state.
func Delete(root, id string, force bool) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	if st.Status == StatusRunning && !force {
		return &fault.Error{Code: fault.CodeInvalidArgument, Op: "delete " + id, Msg: "container is running", Remedy: "stop it with `godwit kill` or use --force"}
	}
	if fd, err := pidfd(st.PID, st.InitStart); err == nil {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		waitPidfd(fd)
		unix.Close(fd)
	}
	// Wait for the shim to record the exit and release everything.
	if st.ShimPID != 0 {
		if fd, err := pidfd(st.ShimPID, st.ShimStart); err == nil {
			waitPidfd(fd)
			unix.Close(fd)
		}
	}
	if st.Cgroup != "" {
		waitUnpopulated(st.Cgroup)
		if err := os.Remove(st.Cgroup); err != nil && !errors.Is(err, os.ErrNotExist) {
			return &fault.Error{Code: fault.CodeIO, Op: "delete " + id, Msg: "remove cgroup", Path: st.Cgroup, Err: err}
		}
	}
	if err := os.RemoveAll(stateDir(root, id)); err != nil {
		return &fault.Error{Code: fault.CodeIO, Op: "delete " + id, Path: stateDir(root, id), Err: err}
	}
	return nil
}

// ExecOptions are the inputs of Exec.
type ExecOptions struct {
	Process               *specs.Process
	Stdin, Stdout, Stderr *os.File
}

// Exec runs a process inside a running container and returns its exit status.
func Exec(root, id string, o ExecOptions) (int, error) {
	st, err := Load(root, id)
	if err != nil {
		return -1, err
	}
	if st.Status != StatusRunning && st.Status != StatusCreated {
		return -1, &fault.Error{Code: fault.CodeProcessExited, Op: "exec " + id, Msg: "container is " + st.Status}
	}
	if o.Process == nil || len(o.Process.Args) == 0 {
		return -1, &fault.Error{Code: fault.CodeInvalidArgument, Op: "exec " + id, Msg: "no command"}
	}
	rep, err := call(root, id, request{Op: "exec", Process: o.Process},
		pick(o.Stdin, os.Stdin), pick(o.Stdout, os.Stdout), pick(o.Stderr, os.Stderr))
	if err != nil {
		return -1, err
	}
	return rep.ExitCode, nil
}

// MountOptions are the inputs of Mount.
type MountOptions struct {
	Source, Dest string
	IDMap        bool
	ReadOnly     bool
}

// Mount makes host directory (or file) o.Source appear at o.Dest inside
// running container id. The mount is made detached on the host (root: with
// open_tree, id-mapped so that Source's owner appears as the container's
// root when o.IDMap), and the container's init, which is in the
// container's user and mount namespaces, moves it into place at a
// destination resolved inside the container's root.
func Mount(root, id string, o MountOptions) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	if st.Status == StatusStopped {
		return &fault.Error{Code: fault.CodeProcessExited, Op: "mount into " + id, Msg: "container is not running"}
	}
	src, err := filepath.Abs(o.Source)
	if err != nil {
		return fault.Wrap(fault.CodeInvalidArgument, err, "mount source")
	}
	req := request{Op: "mount", Dest: o.Dest, Source: src, ReadOnly: o.ReadOnly}
	if os.Geteuid() != 0 {
		if o.IDMap {
			return &fault.Error{Code: fault.CodePermission, Op: "mount into " + id, Path: src,
				Msg:    "an id-mapped mount of a host filesystem needs CAP_SYS_ADMIN in the initial user namespace (mount_setattr: EPERM)",
				Remedy: "run as root, or mount without --idmap"}
		}
		// Unprivileged: hand the init an O_PATH handle to clone itself.
		fd, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fault.Error{Code: fault.CodeInvalidArgument, Op: "mount source", Path: src, Err: err}
		}
		f := os.NewFile(uintptr(fd), src)
		defer f.Close()
		req.Clone = true
		_, err = call(root, id, req, f)
		return err
	}
	m, err := mount.Clone(unix.AT_FDCWD, src, true)
	if err != nil {
		return err
	}
	defer m.Close()
	if o.IDMap {
		var sst unix.Stat_t
		if err := unix.Stat(src, &sst); err != nil {
			return &fault.Error{Code: fault.CodeIO, Op: "stat mount source", Path: src, Err: err}
		}
		uids, gids, err := containerMaps(st.PID)
		if err != nil {
			return err
		}
		ns, err := idmap.UserNS(uids.Shift(sst.Uid), gids.Shift(sst.Gid))
		if err != nil {
			return err
		}
		defer ns.Close()
		if err := m.IDMap(int(ns.Fd()), true); err != nil {
			return err
		}
	}
	_, err = call(root, id, req, m.File())
	return err
}

// containerMaps reads the id mappings of a container from its init.
func containerMaps(pid int) (idmap.Map, idmap.Map, error) {
	read := func(name string) (idmap.Map, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
		if err != nil {
			return nil, &fault.Error{Code: fault.CodeNoProcess, PID: pid, Op: "read " + name, Err: err}
		}
		var m idmap.Map
		var r idmap.Range
		for _, line := range splitLines(string(b)) {
			if _, err := fmt.Sscan(line, &r.ContainerID, &r.HostID, &r.Size); err == nil {
				m = append(m, r)
			}
		}
		return m, nil
	}
	u, err := read("uid_map")
	if err != nil {
		return nil, nil, err
	}
	g, err := read("gid_map")
	return u, g, err
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// waitUnpopulated waits until the cgroup at dir has no process left (the
// kernel finishes tearing down a PID namespace after its init is reaped).
// cgroup.events signals changes with POLLPRI; each wait is bounded.
func waitUnpopulated(dir string) {
	f, err := os.Open(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 256)
	for i := 0; i < 50; i++ {
		n, _ := f.ReadAt(buf, 0)
		if bytes.Contains(buf[:n], []byte("populated 0")) {
			return
		}
		p := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLPRI}}
		unix.Poll(p, 100)
	}
}
