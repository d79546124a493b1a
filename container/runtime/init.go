package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/container/mount"
	"github.com/godwit-dev/godwit/container/seccomp"
	"github.com/godwit-dev/godwit/container/securepath"
	"github.com/godwit-dev/godwit/fault"
)

// Main is the body of the hidden `godwit init ROLE` command. It does not
// return on success for the "stage" role (it execs the container's program).
func Main(args []string) error {
	if len(args) != 1 {
		return fault.New(fault.CodeInvalidArgument, "usage: godwit %s shim|container|stage", InitVerb)
	}
	switch args[0] {
	case "shim":
		return runShim()
	case "container":
		return runInit()
	case "stage":
		return runStage()
	}
	return fault.New(fault.CodeInvalidArgument, "unknown init role %q", args[0])
}

const envMapped = "_GODWIT_MAPPED"

// initProc is the container's PID 1.
type initProc struct {
	shim *conn
	cfg  initConfig
	kept map[seccomp.Device]*mount.Mount

	mu      sync.Mutex
	mainPID int
	execs   map[int]uint64 // pid → seq of the exec request
	early   map[int]syscall.WaitStatus
}

func runInit() error {
	shim := newConn(os.NewFile(3, "shim"))
	if os.Getenv(envMapped) == "" {
		// Wait for the shim to map the user namespace. Started with the
		// mappings already in place (written before exec) the init is the
		// namespace's root with its capabilities; started before newuidmap
		// ran it has none, and execs itself again to gain them.
		var req request
		files, err := shim.recv(&req)
		closeAll(files)
		if err != nil {
			return err
		}
		if req.Op != "mapped" {
			return fault.New(fault.CodeInternal, "init: expected mapped, got %q", req.Op)
		}
		if !hasCapSysAdmin() {
			env := append(os.Environ(), envMapped+"=1")
			err = syscall.Exec("/proc/self/exe", os.Args, env)
			shim.send(reply{Error: toWire(fault.Wrap(fault.CodeIO, err, "re-exec init"))})
			return err
		}
	}
	os.Unsetenv(envMapped)
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err := shim.send(reply{Note: "ready"}); err != nil {
		return err
	}
	p := &initProc{shim: shim, execs: map[int]uint64{}, early: map[int]syscall.WaitStatus{}}
	files, err := shim.recv(&p.cfg)
	if err != nil {
		return err
	}
	var tree *os.File
	if p.cfg.HasTree && len(files) == 1 {
		tree = files[0]
	} else {
		closeAll(files)
	}
	if err := p.setup(tree); err != nil {
		shim.send(reply{Error: toWire(err)})
		return nil
	}
	shim.send(reply{})
	return p.serve()
}

func (p *initProc) setup(tree *os.File) error {
	sp := p.cfg.Spec
	kept, err := setupRootfs(&p.cfg, tree)
	if err != nil {
		return err
	}
	p.kept = kept
	for _, ns := range sp.Linux.Namespaces {
		if ns.Type == "uts" && sp.Hostname != "" {
			if err := unix.Sethostname([]byte(sp.Hostname)); err != nil {
				return fault.Wrap(fault.CodeIO, err, "sethostname")
			}
		}
	}
	if p.cfg.Network == "loopback" {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	// Nothing of the host stays reachable: no fd but the shim socket and
	// stdio survives into the container's processes.
	return nil
}

// loopbackUp sets IFF_UP on lo.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fault.Wrap(fault.CodeIO, err, "socket for lo")
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fault.Wrap(fault.CodeIO, err, "get lo flags")
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fault.Wrap(fault.CodeIO, err, "bring lo up")
	}
	return nil
}

// serve handles the shim's requests, reaps children and forwards signals
// until the container's process exits; init then exits with its status.
func (p *initProc) serve() error {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT, unix.SIGALRM, unix.SIGTSTP)
	reqs := make(chan struct {
		req   request
		files []*os.File
	})
	go func() {
		for {
			var req request
			files, err := p.shim.recv(&req)
			if err != nil {
				// The shim is gone: nobody manages this container any more.
				os.Exit(137)
			}
			reqs <- struct {
				req   request
				files []*os.File
			}{req, files}
		}
	}()
	for {
		select {
		case r := <-reqs:
			p.request(r.req, r.files)
		case s := <-sigs:
			if s == unix.SIGCHLD {
				p.reap()
				continue
			}
			p.mu.Lock()
			pid := p.mainPID
			p.mu.Unlock()
			if pid != 0 {
				unix.Kill(pid, s.(syscall.Signal))
			} else if s == unix.SIGTERM || s == unix.SIGINT {
				os.Exit(128 + int(s.(syscall.Signal)))
			}
		}
	}
}

func (p *initProc) request(req request, files []*os.File) {
	answer := func(err error) { p.shim.send(reply{Seq: req.Seq, Error: toWire(err)}) }
	switch req.Op {
	case "start":
		p.mu.Lock()
		started := p.mainPID != 0
		p.mu.Unlock()
		if started {
			answer(fault.New(fault.CodeInvalidArgument, "already started"))
			return
		}
		pid, err := p.spawn(p.cfg.Spec.Process, []*os.File{os.Stdin, os.Stdout, os.Stderr}, 0)
		if err == nil {
			p.mu.Lock()
			p.mainPID = pid
			p.mu.Unlock()
		}
		answer(err)
	case "exec":
		defer closeAll(files)
		if len(files) != 3 || req.Process == nil {
			answer(fault.New(fault.CodeInvalidArgument, "exec needs a process and three stdio files"))
			return
		}
		if _, err := p.spawn(req.Process, files, req.Seq); err != nil {
			answer(err)
		}
		// answered when the process exits
	case "mount":
		defer closeAll(files)
		answer(p.mount(req, files))
	case "bind-device":
		defer closeAll(files)
		answer(p.bindDevice(req, files))
	default:
		closeAll(files)
		answer(fault.New(fault.CodeInvalidArgument, "unknown request %q", req.Op))
	}
}

// spawn starts a container process through an exec stage. seq != 0 marks
// an exec whose exit status is reported to the shim.
func (p *initProc) spawn(proc interface{}, stdio []*os.File, seq uint64) (int, error) {
	confR, confW, err := os.Pipe()
	if err != nil {
		return 0, fault.Wrap(fault.CodeIO, err, "pipe")
	}
	defer confR.Close()
	lisR, lisW, err := socketPair()
	if err != nil {
		confW.Close()
		return 0, err
	}
	defer lisW.Close()
	files := append(append([]*os.File{}, stdio...), confR, lisW)
	p.mu.Lock()
	pr, err := os.StartProcess("/proc/self/exe", []string{"godwit", InitVerb, "stage"},
		&os.ProcAttr{Files: files, Env: []string{noCgroupFiles}, Dir: "/"})
	if err != nil {
		p.mu.Unlock()
		confW.Close()
		lisR.Close()
		return 0, fault.Wrap(fault.CodeIO, err, "start exec stage")
	}
	pid := pr.Pid
	pr.Release()
	if seq != 0 {
		if ws, ok := p.early[pid]; ok {
			delete(p.early, pid)
			p.mu.Unlock()
			p.shim.send(reply{Seq: seq, ExitCode: exitCode(ws)})
			confW.Close()
			lisR.Close()
			return pid, nil
		}
		p.execs[pid] = seq
	}
	p.mu.Unlock()
	sc := stageConfig{Seccomp: p.cfg.Spec.Linux.Seccomp, Policy: p.cfg.Policy}
	b, _ := json.Marshal(proc)
	json.Unmarshal(b, &sc.Process)
	if sc.Process.Cwd == "" {
		sc.Process.Cwd = "/"
	}
	if len(sc.Process.Env) == 0 {
		sc.Process.Env = p.cfg.Spec.Process.Env
	}
	json.NewEncoder(confW).Encode(sc)
	confW.Close()
	// Relay the stage's seccomp listener (if any) to the shim's supervisor.
	go func() {
		defer lisR.Close()
		var r reply
		files, err := lisR.recv(&r)
		if err != nil {
			return
		}
		if r.Error != nil {
			closeAll(files)
			return
		}
		if len(files) == 1 {
			p.shim.send(reply{Note: "listener"}, files[0])
		}
		closeAll(files)
	}()
	return pid, nil
}

// reap collects every exited child: the container's process ends the
// init, an exec'd process is reported, orphans are just reaped.
func (p *initProc) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		p.mu.Lock()
		if pid == p.mainPID {
			p.mu.Unlock()
			if ws.Signaled() {
				os.Exit(128 + int(ws.Signal()))
			}
			os.Exit(ws.ExitStatus())
		}
		seq, ok := p.execs[pid]
		if ok {
			delete(p.execs, pid)
		} else {
			p.early[pid] = ws
			if len(p.early) > 1024 { // orphans: forget them
				p.early = map[int]syscall.WaitStatus{}
			}
		}
		p.mu.Unlock()
		if ok {
			p.shim.send(reply{Seq: seq, ExitCode: exitCode(ws)})
		}
	}
}

// mount attaches a mount made on the host (or clones an O_PATH handle the
// caller sent) at a destination resolved inside the container's root.
func (p *initProc) mount(req request, files []*os.File) error {
	if len(files) != 1 {
		return fault.New(fault.CodeInvalidArgument, "mount needs one file")
	}
	var m *mount.Mount
	if req.Clone {
		c, err := mount.Clone(int(files[0].Fd()), "", true)
		if err != nil {
			return &fault.Error{Code: fault.CodeOf(err), Op: "mount into container", Path: req.Source, Err: err,
				Remedy: "an unprivileged caller cannot clone a host mount into the container on this kernel; run as root"}
		}
		m = c
	} else {
		m = mount.FromFile(files[0], "inject")
		files[0] = nil
	}
	defer m.Close()
	if req.ReadOnly {
		if err := m.SetAttr(unix.MOUNT_ATTR_RDONLY, 0, true); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	unix.Fstat(m.FD(), &st)
	root, err := securepath.Open("/")
	if err != nil {
		return err
	}
	defer root.Close()
	t, err := root.MountTarget(req.Dest, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer t.Close()
	return m.MoveTo(t)
}

// bindDevice binds a kept host device node onto target (rootless mknod).
func (p *initProc) bindDevice(req request, files []*os.File) error {
	if len(files) != 1 {
		return fault.New(fault.CodeInvalidArgument, "bind-device needs one file")
	}
	src, ok := p.kept[seccomp.Device{Major: req.Major, Minor: req.Minor}]
	if !ok {
		return &fault.Error{Code: fault.CodePermission, Op: "bind device", Msg: fmt.Sprintf("no host node %d:%d", req.Major, req.Minor)}
	}
	c, err := mount.Clone(src.FD(), "", false)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.MoveTo(files[0])
}

// hasCapSysAdmin reports whether CAP_SYS_ADMIN is in the effective set.
func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
}
