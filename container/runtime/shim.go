package runtime

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/container/idmap"
	"github.com/godwit-dev/godwit/container/mount"
	"github.com/godwit-dev/godwit/container/seccomp"
	"github.com/godwit-dev/godwit/container/spec"
	"github.com/godwit-dev/godwit/fault"
)

// Annotations godwit reads from config.json.
const (
	// AnnotationNetwork selects "loopback" (default with a network
	// namespace) or "none" (lo stays down).
	AnnotationNetwork = "org.godwit.network"
	// AnnotationSupervisor set to "off" disables the seccomp supervisor.
	AnnotationSupervisor = "org.godwit.seccomp.supervisor"
	// AnnotationDevices replaces the supervisor's device list
	// ("1:3,1:5,...").
	AnnotationDevices = "org.godwit.seccomp.devices"
)

// noCgroupFiles stops the Go runtime (1.25+) from keeping the host's cgroup
// CPU limit files open in the shim, the init and the exec stage: an open
// host file in the container's PID 1 is a leaked host descriptor.
const noCgroupFiles = "GODEBUG=containermaxprocs=0,updatemaxprocs=0"

// shim is the host-side process that owns one container.
type shim struct {
	opts   shimOptions
	spec   *specs.Spec
	state  *State
	init   *exec.Cmd
	toInit *conn

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]chan reply
	exited  chan struct{}
	started bool
	policy  seccomp.Policy
}

// runShim is `godwit init shim`. fd 3: options; fd 4: report; fd 5: exit
// status (run only).
func runShim() error {
	// The inherited descriptors must not leak into the container.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	optF, repF := os.NewFile(3, "options"), os.NewFile(4, "report")
	var so shimOptions
	if err := json.NewDecoder(optF).Decode(&so); err != nil {
		return fault.Wrap(fault.CodeInternal, err, "read shim options")
	}
	optF.Close()
	var exitF *os.File
	if so.Exit {
		exitF = os.NewFile(5, "exit")
	}
	s := &shim{opts: so, pending: map[uint64]chan reply{}, exited: make(chan struct{})}
	report := func(rep reply) {
		json.NewEncoder(repF).Encode(rep)
		repF.Close()
	}
	ln, err := s.setup()
	if err != nil {
		if s.init != nil && s.init.Process != nil {
			s.init.Process.Kill()
			s.init.Wait()
		}
		if s.state != nil && s.state.Cgroup != "" {
			waitUnpopulated(s.state.Cgroup)
			os.Remove(s.state.Cgroup)
		}
		report(reply{Error: toWire(err)})
		return nil
	}
	report(reply{PID: s.state.PID})
	// Let go of the caller's stdio: the container has its own copies.
	// Its own stderr (a crash report) goes to shim.log in the state directory.
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		unix.Dup3(int(null.Fd()), 0, 0)
		unix.Dup3(int(null.Fd()), 1, 0)
		unix.Dup3(int(null.Fd()), 2, 0)
		null.Close()
	}
	if lf, err := os.OpenFile(filepath.Join(stateDir(so.Root, so.ID), "shim.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		unix.Dup3(int(lf.Fd()), 2, 0)
		lf.Close()
	}
	go s.serve(ln)
	status := s.wait()
	code := exitCode(status)
	s.mu.Lock()
	s.state.Status = StatusStopped
	s.state.ExitCode = &code
	writeState(so.Root, s.state)
	s.mu.Unlock()
	ln.Close()
	if exitF != nil {
		exitF.WriteString(strconv.Itoa(code))
		exitF.Close()
	}
	return nil
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// setup creates the container up to "created".
func (s *shim) setup() (*os.File, error) {
	sp, err := spec.Load(s.opts.Bundle)
	if err != nil {
		return nil, err
	}
	s.spec = sp
	rootfs := sp.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(s.opts.Bundle, rootfs)
	}
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())
	uids, gids := toMap(sp.Linux.UIDMappings), toMap(sp.Linux.GIDMappings)
	if len(uids) == 0 {
		uids = idmap.Default(euid, "/etc/subuid", idmap.UserName(euid))
	}
	if len(gids) == 0 {
		gids = idmap.Default(egid, "/etc/subgid", idmap.UserName(euid))
	}
	s.policy = policyOf(sp)
	s.state = &State{
		OCIVersion: sp.Version, ID: s.opts.ID, Status: StatusCreating, Bundle: s.opts.Bundle,
		Rootfs: rootfs, Created: time.Now().UTC(), Owner: idmap.UserName(euid),
		Annotations: sp.Annotations, ShimPID: os.Getpid(),
	}
	s.state.ShimStart, _ = startTime(os.Getpid())

	flags, netPath, network, err := cloneFlags(sp)
	if err != nil {
		return nil, err
	}
	exe, err := sealedExe()
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	toInit, initEnd, err := socketPair()
	if err != nil {
		return nil, err
	}
	s.toInit = toInit
	defer initEnd.Close()

	cmd := &exec.Cmd{
		Path:       fmt.Sprintf("/proc/self/fd/%d", exe.Fd()),
		Args:       []string{"godwit", InitVerb, "container"},
		Env:        []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", noCgroupFiles},
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: []*os.File{initEnd},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: uintptr(flags),
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	// When godwit can write the mappings itself (root, or a rootless
	// caller mapping only its own ids), the child waits for them before
	// exec and becomes root of the namespace: it keeps its capabilities.
	// Otherwise (newuidmap) the init re-executes itself once mapped.
	if direct(uids, gids, euid, egid) {
		cmd.SysProcAttr.UidMappings = toSys(uids)
		cmd.SysProcAttr.GidMappings = toSys(gids)
		cmd.SysProcAttr.GidMappingsEnableSetgroups = euid == 0
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: euid != 0}
	} else if h, ok := uids.ToContainer(euid); !ok || h != 0 {
		return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "id mappings", Msg: "with newuidmap the caller's uid must be mapped to the container's root"}
	}
	var pidFD int = -1
	cmd.SysProcAttr.PidFD = &pidFD // selects clone3, needed for CLONE_NEWTIME
	if cg, err := s.makeCgroup(); err == nil && cg != nil {
		defer cg.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cg.Fd())
	}
	if err := startIn(cmd, netPath); err != nil {
		return nil, &fault.Error{Code: fault.CodePermission, Op: "create container namespaces", Err: err,
			Remedy: "unprivileged user namespaces must be enabled"}
	}
	if pidFD >= 0 {
		unix.Close(pidFD)
	}
	s.init = cmd
	pid := cmd.Process.Pid
	s.state.PID = pid
	s.state.InitStart, _ = startTime(pid)
	if cmd.SysProcAttr.UidMappings == nil {
		if err := idmap.Write(pid, uids, gids); err != nil {
			return nil, err
		}
	}
	// The init re-executes itself to gain its capabilities in the now
	// mapped user namespace, then asks for its configuration.
	if err := toInit.send(request{Op: "mapped"}); err != nil {
		return nil, err
	}
	var ready reply
	got, err := toInit.recv(&ready)
	closeAll(got)
	if err != nil || ready.Error != nil {
		if err == nil {
			err = ready.Error.err()
		}
		return nil, &fault.Error{Code: fault.CodeInternal, Op: "container init", PID: pid, Msg: "init failed to start", Err: err}
	}
	// The rootfs, id-mapped so that its owner appears as the container's
	// root. Only possible with CAP_SYS_ADMIN over the rootfs' superblock.
	var tree *mount.Mount
	if euid == 0 {
		tree, s.state.IDMapNote = idmappedTree(rootfs, uids, gids)
		if tree != nil {
			defer tree.Close()
			s.state.IDMapped = true
		}
	} else {
		s.state.IDMapNote = "rootless: id-mapping a host filesystem needs CAP_SYS_ADMIN in the initial user namespace (EPERM); the rootfs is bind-mounted and the caller's own files appear owned by the container's root"
	}
	cfg := initConfig{Spec: sp, Rootfs: rootfs, Bundle: s.opts.Bundle, HasTree: tree != nil, UIDs: uids, GIDs: gids, Network: network, Policy: s.policy}
	var files []*os.File
	if tree != nil {
		files = append(files, tree.File())
	}
	if err := toInit.send(cfg, files...); err != nil {
		return nil, err
	}
	var rep reply
	got, err = toInit.recv(&rep)
	closeAll(got)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeInternal, Op: "container init", PID: pid, Msg: "init died during setup", Err: err}
	}
	if rep.Error != nil {
		return nil, rep.Error.err()
	}
	s.state.Status = StatusCreated
	if err := writeState(s.opts.Root, s.state); err != nil {
		return nil, err
	}
	if s.opts.PidFile != "" {
		if err := os.WriteFile(s.opts.PidFile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return nil, &fault.Error{Code: fault.CodeIO, Op: "write pid file", Path: s.opts.PidFile, Err: err}
		}
	}
	go s.readInit()
	return s.listen()
}

func toMap(m []specs.LinuxIDMapping) idmap.Map {
	out := make(idmap.Map, 0, len(m))
	for _, r := range m {
		out = append(out, idmap.Range{ContainerID: r.ContainerID, HostID: r.HostID, Size: r.Size})
	}
	return out
}

func policyOf(sp *specs.Spec) seccomp.Policy {
	p := seccomp.DefaultPolicy()
	if sp.Annotations[AnnotationSupervisor] == "off" {
		p.Enabled = false
	}
	if v, ok := sp.Annotations[AnnotationDevices]; ok {
		p.Devices = nil
		for _, d := range strings.Split(v, ",") {
			var dev seccomp.Device
			if _, err := fmt.Sscanf(strings.TrimSpace(d), "%d:%d", &dev.Major, &dev.Minor); err == nil {
				p.Devices = append(p.Devices, dev)
			}
		}
	}
	return p
}

// cloneFlags turns the namespaces of the config into clone flags. A network
// namespace with a path is joined; without, a new one is made.
func cloneFlags(sp *specs.Spec) (flags int, netPath, network string, err error) {
	flags = unix.CLONE_NEWUSER
	network = "host"
	for _, ns := range sp.Linux.Namespaces {
		var f int
		switch ns.Type {
		case specs.UserNamespace:
			continue
		case specs.PIDNamespace:
			f = unix.CLONE_NEWPID
		case specs.MountNamespace:
			f = unix.CLONE_NEWNS
		case specs.UTSNamespace:
			f = unix.CLONE_NEWUTS
		case specs.IPCNamespace:
			f = unix.CLONE_NEWIPC
		case specs.CgroupNamespace:
			f = unix.CLONE_NEWCGROUP
		case specs.TimeNamespace:
			f = unix.CLONE_NEWTIME
		case specs.NetworkNamespace:
			if ns.Path != "" {
				netPath, network = ns.Path, "path"
				continue
			}
			f = unix.CLONE_NEWNET
			network = "loopback"
			if sp.Annotations[AnnotationNetwork] == "none" {
				network = "none"
			}
		default:
			return 0, "", "", &fault.Error{Code: fault.CodeUnsupported, Op: "namespaces", Msg: fmt.Sprintf("namespace %q is not supported", ns.Type)}
		}
		if ns.Path != "" {
			return 0, "", "", &fault.Error{Code: fault.CodeUnsupported, Op: "namespaces", Msg: fmt.Sprintf("joining an existing %s namespace is not supported yet (only network)", ns.Type)}
		}
		flags |= f
	}
	// godwit always makes PID and mount namespaces: its init is PID 1 and
	// pivots into the rootfs.
	flags |= unix.CLONE_NEWPID | unix.CLONE_NEWNS
	return flags, netPath, network, nil
}

// startIn starts cmd from a goroutine locked to its thread for the rest of
// the shim's life: Pdeathsig fires when the thread that forked the child
// exits, and Go ends locked threads (the supervisor's, for one) when their
// goroutine returns. With netPath the thread first joins that network
// namespace, which the child inherits; that thread is never unlocked.
func startIn(cmd *exec.Cmd, netPath string) error {
	ch := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		ch <- startLocked(cmd, netPath)
		select {} // keep the parent thread of the init alive
	}()
	return <-ch
}

func startLocked(cmd *exec.Cmd, netPath string) error {
	if netPath != "" {
		fd, err := unix.Open(netPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return err
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("join network namespace %s: %w", netPath, err)
		}
	}
	return cmd.Start()
}

// sealedExe copies the running binary into a sealed memfd, from which the
// init runs: a container that opens /proc/1/exe (its init's binary) cannot
// write to it (CVE-2019-5736).
func sealedExe() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fault.Wrap(fault.CodeIO, err, "open own binary")
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("godwit", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fault.Wrap(fault.CodeKernel, err, "memfd_create")
	}
	// Move it high so that the dup2 dance of fork/exec cannot clobber it.
	hi, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 100)
	unix.Close(fd)
	if err != nil {
		return nil, fault.Wrap(fault.CodeIO, err, "dup memfd")
	}
	f := os.NewFile(uintptr(hi), "godwit-memfd")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fault.Wrap(fault.CodeIO, err, "copy own binary")
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fault.Wrap(fault.CodeIO, err, "seal memfd")
	}
	return f, nil
}

// idmappedTree clones rootfs and id-maps it so that its owner's ids appear
// as the container's root. It returns nil and the reason when it cannot.
func idmappedTree(rootfs string, uids, gids idmap.Map) (*mount.Mount, string) {
	var st unix.Stat_t
	if err := unix.Stat(rootfs, &st); err != nil {
		return nil, err.Error()
	}
	ns, err := idmap.UserNS(uids.Shift(st.Uid), gids.Shift(st.Gid))
	if err != nil {
		return nil, err.Error()
	}
	defer ns.Close()
	m, err := mount.Clone(unix.AT_FDCWD, rootfs, true)
	if err != nil {
		return nil, err.Error()
	}
	if err := m.IDMap(int(ns.Fd()), true); err != nil {
		m.Close()
		return nil, err.Error()
	}
	return m, ""
}

// makeCgroup creates the container's cgroup v2 directory (root only) and
// returns it open for CLONE_INTO_CGROUP.
func (s *shim) makeCgroup() (*os.File, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	base := cgroup2Mount()
	if base == "" {
		return nil, nil
	}
	rel := "godwit/" + s.opts.ID
	if p := s.spec.Linux.CgroupsPath; p != "" && !strings.Contains(p, ":") {
		rel = strings.TrimPrefix(filepath.Clean("/"+p), "/")
	}
	dir := filepath.Join(base, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	s.state.Cgroup = dir
	return f, nil
}

// cgroup2Mount finds the cgroup2 mount point.
func cgroup2Mount() string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	return ""
}

// listen opens the control socket in the state directory.
func (s *shim) listen() (*os.File, error) {
	dir, err := os.Open(stateDir(s.opts.Root, s.opts.ID))
	if err != nil {
		return nil, fault.Wrap(fault.CodeIO, err, "open state directory")
	}
	defer dir.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fault.Wrap(fault.CodeIO, err, "socket")
	}
	p := fmt.Sprintf("/proc/self/fd/%d/shim.sock", dir.Fd())
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		unix.Close(fd)
		return nil, fault.Wrap(fault.CodeIO, err, "bind control socket")
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return nil, fault.Wrap(fault.CodeIO, err, "listen")
	}
	return os.NewFile(uintptr(fd), "shim.sock"), nil
}

// serve accepts control connections until ln is closed.
func (s *shim) serve(ln *os.File) {
	for {
		nfd, _, err := unix.Accept4(int(ln.Fd()), unix.SOCK_CLOEXEC)
		if err != nil {
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			return
		}
		go s.handle(newConn(os.NewFile(uintptr(nfd), "client")))
	}
}

func (s *shim) handle(c *conn) {
	defer c.Close()
	var req request
	files, err := c.recv(&req)
	if err != nil {
		return
	}
	defer closeAll(files)
	var rep *reply
	switch req.Op {
	case "start":
		rep, err = s.start()
	case "exec", "mount":
		if req.Op == "exec" && req.Process == nil {
			err = fault.New(fault.CodeInvalidArgument, "exec without a process")
			break
		}
		rep, err = s.ask(req, files...)
	default:
		err = fault.New(fault.CodeInvalidArgument, "unknown request %q", req.Op)
	}
	if err != nil {
		c.send(reply{Error: toWire(err)})
		return
	}
	c.send(rep)
}

func (s *shim) start() (*reply, error) {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return nil, fault.New(fault.CodeInvalidArgument, "container already started")
	}
	s.started = true
	s.mu.Unlock()
	rep, err := s.ask(request{Op: "start"})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Status == StatusCreated {
		s.state.Status = StatusRunning
		if err := writeState(s.opts.Root, s.state); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// ask sends a request to the init and waits for the matching reply.
func (s *shim) ask(req request, files ...*os.File) (*reply, error) {
	ch := make(chan reply, 1)
	s.mu.Lock()
	s.seq++
	req.Seq = s.seq
	s.pending[req.Seq] = ch
	s.mu.Unlock()
	if err := s.toInit.send(req, files...); err != nil {
		return nil, err
	}
	select {
	case rep := <-ch:
		if rep.Error != nil {
			return nil, rep.Error.err()
		}
		return &rep, nil
	case <-s.exited:
		return nil, fault.New(fault.CodeProcessExited, "container exited")
	}
}

// readInit dispatches the init's messages: replies, and listener fds of
// new container processes for the supervisor.
func (s *shim) readInit() {
	for {
		var rep reply
		files, err := s.toInit.recv(&rep)
		if err != nil {
			return
		}
		if rep.Note == "listener" && len(files) == 1 {
			sup := &seccomp.Supervisor{Policy: s.policy, Root: os.Geteuid() == 0, Binder: binder{s}}
			go sup.Serve(files[0], s.exited)
			continue
		}
		closeAll(files)
		s.mu.Lock()
		ch := s.pending[rep.Seq]
		delete(s.pending, rep.Seq)
		s.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
}

// wait reaps the init.
func (s *shim) wait() syscall.WaitStatus {
	s.init.Wait()
	close(s.exited)
	ws, _ := s.init.ProcessState.Sys().(syscall.WaitStatus)
	return ws
}

// binder asks the init to bind a device node (rootless supervisor).
type binder struct{ s *shim }

func (b binder) BindDevice(d seccomp.Device, target *os.File) error {
	_, err := b.s.ask(request{Op: "bind-device", Major: d.Major, Minor: d.Minor}, target)
	return err
}

// direct reports whether the shim can write the mappings without
// newuidmap/newgidmap.
func direct(uids, gids idmap.Map, euid, egid uint32) bool {
	if euid == 0 {
		return true
	}
	self := func(m idmap.Map, id uint32) bool { return len(m) == 1 && m[0].HostID == id && m[0].Size == 1 }
	return self(uids, euid) && self(gids, egid)
}

func toSys(m idmap.Map) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, r := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(r.ContainerID), HostID: int(r.HostID), Size: int(r.Size)}
	}
	return out
}
