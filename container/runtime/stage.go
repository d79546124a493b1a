package runtime

import (
	"encoding/json"
	"os"
	goruntime "runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/container/seccomp"
	"github.com/godwit-dev/godwit/container/securepath"
	"github.com/godwit-dev/godwit/fault"
)

// runStage is `godwit init stage`: fds 0-2 are the process's stdio, fd 3
// its configuration, fd 4 a socket for the seccomp listener. It applies the
// process's settings and execs its program; the per-thread ones (no_new_privs,
// capabilities, the seccomp filter) on the locked thread that calls execve.
func runStage() error {
	goruntime.LockOSThread() // never unlocked: this thread execs
	lis := newConn(os.NewFile(4, "listener"))
	fail := func(err error) error {
		lis.send(reply{Error: toWire(err)})
		return err
	}
	var sc stageConfig
	cf := os.NewFile(3, "config")
	if err := json.NewDecoder(cf).Decode(&sc); err != nil {
		return fail(fault.Wrap(fault.CodeInternal, err, "read process config"))
	}
	cf.Close()
	proc := sc.Process
	if proc == nil || len(proc.Args) == 0 {
		return fail(fault.New(fault.CodeInvalidArgument, "no process"))
	}
	for _, rl := range proc.Rlimits {
		res, ok := rlimits[rl.Type]
		if !ok {
			return fail(fault.New(fault.CodeInvalidArgument, "unknown rlimit %s", rl.Type))
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fail(fault.Wrap(fault.CodePermission, err, "setrlimit %s", rl.Type))
		}
	}
	// The working directory is resolved inside the container's root.
	root, err := securepath.Open("/")
	if err != nil {
		return fail(err)
	}
	cwd, err := root.OpenPath(proc.Cwd)
	if err != nil {
		return fail(err)
	}
	if err := unix.Fchdir(int(cwd.Fd())); err != nil {
		return fail(&fault.Error{Code: fault.CodeInvalidArgument, Op: "chdir", Path: proc.Cwd, Err: err})
	}
	cwd.Close()
	root.Close()
	if proc.Capabilities != nil {
		bounding, err := capMask(proc.Capabilities.Bounding)
		if err != nil {
			return fail(err)
		}
		for c := uint(0); c <= lastCap(); c++ {
			if bounding&(1<<c) == 0 {
				if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
					return fail(fault.Wrap(fault.CodePermission, err, "drop capability %d", c))
				}
			}
		}
	}
	u := proc.User
	if len(u.AdditionalGids) > 0 || u.GID != 0 || u.UID != 0 {
		gids := make([]int, len(u.AdditionalGids))
		for i, g := range u.AdditionalGids {
			gids[i] = int(g)
		}
		if err := syscall.Setgroups(gids); err != nil && len(gids) > 0 {
			return fail(fault.Wrap(fault.CodePermission, err, "setgroups"))
		}
		if err := syscall.Setgid(int(u.GID)); err != nil {
			return fail(fault.Wrap(fault.CodePermission, err, "setgid %d", u.GID))
		}
		if err := syscall.Setuid(int(u.UID)); err != nil {
			return fail(fault.Wrap(fault.CodePermission, err, "setuid %d", u.UID))
		}
	}
	if proc.Capabilities != nil && u.UID == 0 {
		eff, err1 := capMask(proc.Capabilities.Effective)
		perm, err2 := capMask(proc.Capabilities.Permitted)
		inh, err3 := capMask(proc.Capabilities.Inheritable)
		for _, e := range []error{err1, err2, err3} {
			if e != nil {
				return fail(e)
			}
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		data := [2]unix.CapUserData{
			{Effective: uint32(eff), Permitted: uint32(perm), Inheritable: uint32(inh)},
			{Effective: uint32(eff >> 32), Permitted: uint32(perm >> 32), Inheritable: uint32(inh >> 32)},
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fail(fault.Wrap(fault.CodePermission, err, "capset"))
		}
	}
	if proc.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fail(fault.Wrap(fault.CodePermission, err, "no_new_privs"))
		}
	}
	path, err := lookPath(proc.Args[0], proc.Env)
	if err != nil {
		return fail(err)
	}
	if sc.Seccomp != nil || sc.Policy.Enabled {
		prog, _, err := seccomp.Compile(sc.Seccomp, sc.Policy)
		if err != nil {
			return fail(err)
		}
		l, err := seccomp.Install(prog, sc.Policy.Enabled)
		if err != nil {
			return fail(err)
		}
		if l != nil {
			if err := lis.send(reply{Note: "listener"}, l); err != nil {
				return err
			}
			l.Close()
		}
	}
	lis.send(reply{Note: "done"})
	lis.Close()
	// No descriptor but stdio reaches the program (CVE-2024-21626).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return err
	}
	err = syscall.Exec(path, proc.Args, proc.Env)
	return &fault.Error{Code: fault.CodeInvalidArgument, Op: "exec", Path: path, Err: err}
}

// lookPath finds prog on the PATH of env, inside the container.
func lookPath(prog string, env []string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + prog
		if unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", &fault.Error{Code: fault.CodeInvalidArgument, Op: "exec", Path: prog, Msg: "executable file not found in $PATH"}
}

var rlimits = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}
