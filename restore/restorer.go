package restore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/files"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/ptrace"
	"github.com/godwit-dev/godwit/internal/stub"
)

// tree holds the state of one restore. All its methods run on the tracer
// thread (inside ptrace.Run).
type tree struct {
	meta *image.Meta
	ir   *image.Reader
	res  *Result

	stubProc *os.Process
	stubPID  int
	userns   bool        // rootless: restore inside a new user+PID namespace
	procs    []*restorer // in the image's order: parents first
	byPID    map[int]*restorer
	tramp    uint64 // trampoline page, at the same address in every process

	zombies []*restorer // forked zombies, once they have exited

	ghosts   map[int]string // file blob id -> path of its ghost file
	ghostTmp []string       // ghost files to unlink at the end
	memfds   []*os.File     // shared memory objects, until every process maps them
	objs     *objects       // pipes, sockets, ... recreated by godwit

	chanGodwit *os.File      // godwit's end of the descriptor channel
	chanFD     int           // the processes' end, at the same number in each
	pending    *image.Record // a record read ahead
	opts       Options
	tcp        []*files.TCPPending // established connections, live once the tree is released
}

// restorer rebuilds one process of the tree.
type restorer struct {
	*tree
	proc   *image.Process
	zombie *image.Zombie

	pid     int             // the restored process as godwit sees it, once created
	uffd    int             // post-copy: its userfaultfd in godwit, until handed over
	rseq    map[uint64]bool // pages holding its threads' rseq areas
	tids    map[int]int     // thread ids of the image -> as godwit sees them
	forked  bool            // a zombie that was forked (and may have exited)
	threads []int
	mem     *mem.Process

	inj       map[int]*ptrace.Injector
	targetFDs map[string]int // files opened in the target for mappings
}

// Layout of the trampoline page.
const (
	trampSize    = mem.PageSize
	scratchOff   = 64
	scratchLimit = trampSize - scratchOff
)

func (rs *restorer) fail(msg string, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", PID: rs.proc.PID, Msg: msg, Err: err}
}

func (rs *restorer) warn(format string, args ...any) {
	rs.res.Warnings = append(rs.res.Warnings, fmt.Sprintf(format, args...))
}

func (t *tree) run(ctx context.Context) (err error) {
	t.byPID = map[int]*restorer{}
	for i := range t.meta.Processes {
		rs := &restorer{tree: t, proc: &t.meta.Processes[i], inj: map[int]*ptrace.Injector{}}
		rs.rseq = rs.proc.RseqPages()
		t.procs = append(t.procs, rs)
		t.byPID[rs.proc.PID] = rs
	}
	root := t.byPID[t.meta.Root]
	for _, rs := range t.procs {
		rs.tids = map[int]int{}
	}
	defer func() {
		for _, rs := range t.procs {
			rs.closeUFFD()
		}
		if err != nil {
			t.abortTCP()
			t.abort()
		}
	}()
	if err := root.readFileData(); err != nil {
		return err
	}
	if err := root.startStub(); err != nil {
		return err
	}
	if err := root.forkTarget(); err != nil {
		return err
	}

	if err := root.mapTrampoline(); err != nil {
		return err
	}
	t.chanFD = t.channelFD()
	if err := root.moveChannel(); err != nil {
		return err
	}
	if err := t.indexObjects(); err != nil {
		return err
	}
	if err := t.createTree(); err != nil {
		return err
	}
	for _, rs := range t.procs {
		if err := rs.buildAddressSpace(); err != nil {
			return err
		}
	}
	if err := t.writePages(ctx); err != nil {
		return err
	}
	for _, step := range []func(*restorer) error{
		(*restorer).restoreMM, (*restorer).restoreFiles, (*restorer).restoreProcessState,
		(*restorer).createThreads, (*restorer).restoreThreadState, (*restorer).createUFFD, (*restorer).restoreCreds,
	} {
		for _, rs := range t.procs {
			if err := step(rs); err != nil {
				return err
			}
		}
	}
	for _, rs := range t.procs {
		if err := rs.handOverUFFD(); err != nil {
			return err
		}
	}
	if t.opts.BeforeResume != nil {
		t.res.PID = root.pid
		if err := t.opts.BeforeResume(ctx, t.res); err != nil {
			return err
		}
	}
	if err := t.activateTCP(); err != nil {
		return err
	}
	if err := root.releaseStub(); err != nil {
		return err
	}
	for _, rs := range t.procs {
		if err := rs.resume(); err != nil {
			return err
		}
	}
	t.res.PID = root.pid
	// Every process is whole: release them all.
	for _, rs := range t.procs {
		if err := rs.detach(); err != nil {
			return err
		}
	}
	return nil
}

// startStub starts the stub, seizes it and blocks its signals (the child
// inherits the mask, so nothing reaches the process before it is whole).
func (rs *restorer) startStub() error {
	attr := &syscall.SysProcAttr{Setsid: true}
	if rs.userns {
		// Rootless: the stub is the init of a new user and PID namespace
		// that maps the caller's ids to themselves; its capabilities there
		// (kept through exec as ambient ones) let it set the pids.
		uid, gid := os.Getuid(), os.Getgid()
		attr.Cloneflags = unix.CLONE_NEWUSER | unix.CLONE_NEWPID
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		attr.AmbientCaps = []uintptr{unix.CAP_CHECKPOINT_RESTORE, unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_SYS_ADMIN}
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return rs.fail("descriptor channel", err)
	}
	rs.chanGodwit = os.NewFile(uintptr(pair[0]), "godwit-channel")
	theirs := os.NewFile(uintptr(pair[1]), "godwit-channel")
	defer theirs.Close()
	p, err := stub.StartWith(attr, theirs)
	if err != nil {
		return rs.fail("start the stub", err)
	}
	rs.stubProc, rs.stubPID = p, p.Pid
	if err := ptrace.Seize(p.Pid, ptrace.OptsRestore); err != nil {
		return rs.fail("seize the stub", err)
	}
	if err := ptrace.Interrupt(p.Pid); err != nil {
		return rs.fail("stop the stub", err)
	}
	if _, err := ptrace.WaitStopped(p.Pid); err != nil {
		return rs.fail("stop the stub", err)
	}
	if err := ptrace.SetSigmask(p.Pid, ^uint64(0)); err != nil {
		return rs.fail("block the stub's signals", err)
	}
	return nil
}

// forkTarget makes the stub fork the process with its original PID.
func (rs *restorer) forkTarget() error {
	regs, err := ptrace.GetRegs(rs.stubPID)
	if err != nil {
		return rs.fail("read the stub's registers", err)
	}
	// clone_args and the set_tid array go on the stub's stack, well below rsp.
	args := (regs.Rsp - 4096) &^ 15
	lv := levels(rs.proc.PID, rs.proc.NSpid)
	var flags uint64
	switch {
	case len(lv) == 2 && lv[1] == 1:
		flags = unix.CLONE_NEWPID // the root is the init of its own PID namespace
	case len(lv) > 1:
		return &fault.Error{Code: fault.CodeUnsupported, Op: "restore", PID: rs.proc.PID,
			Msg: fmt.Sprintf("the root is pid %d of a nested PID namespace: only a root that is pid 1 of one namespace is supported", lv[len(lv)-1])}
	}
	buf := cloneArgs(flags, uint64(unix.SIGCHLD), args+128, len(lv))
	tid := setTIDs(lv)
	sm, err := mem.Open(rs.stubPID, true)
	if err != nil {
		return rs.fail("open the stub's memory", err)
	}
	defer sm.Close()
	if err := sm.Write(args, buf); err != nil {
		return rs.fail("write clone3 arguments", err)
	}
	if err := sm.Write(args+128, tid); err != nil {
		return rs.fail("write clone3 arguments", err)
	}
	in := &ptrace.Injector{TID: rs.stubPID, IP: stub.SyscallAddr}
	child, err := in.Syscall(unix.SYS_CLONE3, args, uint64(len(buf)))
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return &fault.Error{Code: fault.CodePIDInUse, Op: "restore", PID: rs.proc.PID,
				Msg: "pid is in use", Err: err, Remedy: "stop the process that holds it, or restore in a new PID namespace"}
		}
		if errors.Is(err, unix.EPERM) {
			return &fault.Error{Code: fault.CodePermission, Op: "restore", PID: rs.proc.PID,
				Msg: "clone3 with set_tid", Err: err, Remedy: "restoring a PID needs CAP_CHECKPOINT_RESTORE (run as root)"}
		}
		return rs.fail("clone3 with set_tid", err)
	}
	if int(child) != rs.proc.PID {
		return rs.fail(fmt.Sprintf("clone3 gave pid %d", child), nil)
	}
	rs.pid = in.EventMsg // as godwit sees it (in a new namespace, not the image's)
	if rs.pid == 0 {
		rs.pid = int(child)
	}
	rs.threads = []int{rs.pid}
	rs.tids = map[int]int{rs.proc.PID: rs.pid}
	if _, err := ptrace.WaitStopped(rs.pid); err != nil {
		rs.pid = 0
		return rs.fail("wait for the new process", err)
	}
	if rs.mem, err = mem.Open(rs.pid, true); err != nil {
		return rs.fail("open the new process's memory", err)
	}
	return nil
}

// cloneArgs encodes struct clone_args with n set_tid entries at setTID.
func cloneArgs(flags, exitSignal, setTID uint64, n int) []byte {
	b := make([]byte, 88)
	binary.LittleEndian.PutUint64(b[0:], flags)
	binary.LittleEndian.PutUint64(b[32:], exitSignal)
	binary.LittleEndian.PutUint64(b[64:], setTID)
	binary.LittleEndian.PutUint64(b[72:], uint64(n))
	return b
}

// setTIDs encodes the set_tid array of ids given outermost first: the
// kernel wants the innermost namespace's id first.
func setTIDs(levels []int) []byte {
	b := make([]byte, 4*len(levels))
	for i, id := range levels {
		binary.LittleEndian.PutUint32(b[4*(len(levels)-1-i):], uint32(id))
	}
	return b
}

// levels are ids of a process or thread in each PID namespace from godwit's
// inward.
func levels(pid int, nspid []int) []int {
	if len(nspid) > 0 {
		return nspid
	}
	return []int{pid}
}

// own is the process's pid as it sees itself.
func (rs *restorer) own() int {
	l := levels(rs.proc.PID, rs.proc.NSpid)
	return l[len(l)-1]
}

// viewOf is q's pid as rs sees it (0 when q is outside rs's namespace).
func (rs *restorer) viewOf(q *restorer) int {
	depth := len(levels(rs.proc.PID, rs.proc.NSpid))
	l := levels(q.proc.PID, q.proc.NSpid)
	if len(l) < depth {
		return 0
	}
	return l[depth-1]
}

func (rs *restorer) injector(tid int) *ptrace.Injector {
	in := rs.inj[tid]
	if in == nil {
		in = &ptrace.Injector{TID: tid, IP: rs.tramp}
		rs.inj[tid] = in
	}
	return in
}

// call injects a system call into the leader through the trampoline.
func (rs *restorer) call(nr uintptr, args ...uint64) (uint64, error) {
	return rs.injector(rs.pid).Syscall(nr, args...)
}

// put writes data into the scratch area at off and returns its address.
func (rs *restorer) put(off int, data []byte) (uint64, error) {
	if off+len(data) > scratchLimit {
		return 0, fmt.Errorf("scratch overflow (%d bytes)", off+len(data))
	}
	addr := rs.tramp + scratchOff + uint64(off)
	return addr, rs.mem.Write(addr, data)
}

// putString writes a NUL-terminated string into the scratch area.
func (rs *restorer) putString(off int, s string) (uint64, error) {
	if len(s)+1 > scratchLimit-off {
		return 0, fmt.Errorf("path too long (%d bytes)", len(s))
	}
	return rs.put(off, append([]byte(s), 0))
}

// abort kills everything created so far and reaps it, so that no PID of the
// image stays taken, not even by a zombie.
func (t *tree) abort() {
	// Children come after their parents in procs: walk it backwards, kill
	// each process and have its parent (still alive and stopped) reap it.
	all := append(append([]*restorer(nil), t.procs...), t.zombies...)
	for i := len(all) - 1; i >= 0; i-- {
		rs := all[i]
		if rs.mem != nil {
			rs.mem.Close()
			rs.mem = nil
		}
		if rs.pid != 0 {
			unix.Kill(rs.pid, unix.SIGKILL)
			// Threads first: a traced leader is only reported once they are gone.
			for i := len(rs.threads) - 1; i >= 0; i-- {
				for {
					ws, err := ptrace.Wait(rs.threads[i])
					if err != nil || ws.Exited() || ws.Signaled() {
						break
					}
				}
			}
		} else if rs.zombie == nil || !rs.forked {
			continue
		}
		parent := t.stubPID
		if p := t.byPID[rs.proc.PPID]; p != nil && p != rs && rs.proc.PID != t.meta.Root {
			parent = p.pid
		}
		if parent != 0 {
			rs.reapBy(parent)
		}
		rs.pid = 0
	}
	if t.stubProc != nil {
		t.stubProc.Kill()
		for {
			ws, err := ptrace.Wait(t.stubPID)
			if err != nil || ws.Exited() || ws.Signaled() {
				break
			}
		}
		t.stubProc.Release()
		t.stubProc = nil
	}
}

// reapBy makes parent (a stopped tracee: the stub or a process of the tree)
// reap rs's zombie with an injected wait4.
func (rs *restorer) reapBy(parent int) {
	ip := uint64(stub.SyscallAddr)
	if parent != rs.stubPID {
		ip = rs.tramp
	}
	if ip == 0 {
		return
	}
	in := &ptrace.Injector{TID: parent, IP: ip}
	pid := rs.proc.PID
	if p := rs.byPID[rs.proc.PPID]; p != nil && p.pid == parent {
		pid = p.viewOf(rs)
	}
	in.Syscall(unix.SYS_WAIT4, uint64(pid), 0, unix.WALL, 0)
}

// tid returns an image thread id as godwit sees it.
func (rs *restorer) tid(id int) int {
	if t, ok := rs.tids[id]; ok {
		return t
	}
	return id
}

// releaseStub kills the stub: the process is reparented to the nearest
// subreaper (or init), as a daemon would be. A stub that is the init of the
// namespace made for a rootless restore stays instead, reaping children
// until it has none.
func (rs *restorer) releaseStub() error {
	if rs.userns {
		regs, err := ptrace.GetRegs(rs.stubPID)
		if err != nil {
			return rs.fail("stub registers", err)
		}
		regs.Rip, regs.Orig_rax = stub.ReaperAddr, ^uint64(0)
		if err := ptrace.SetRegs(rs.stubPID, &regs); err != nil {
			return rs.fail("stub registers", err)
		}
		if err := ptrace.SetSigmask(rs.stubPID, 0); err != nil {
			return rs.fail("stub signal mask", err)
		}
		if err := ptrace.Detach(rs.stubPID, 0); err != nil {
			return rs.fail("release the stub", err)
		}
		rs.stubProc.Release()
		rs.stubProc = nil
		return nil
	}
	if err := rs.stubProc.Kill(); err != nil {
		return rs.fail("kill the stub", err)
	}
	for {
		ws, err := ptrace.Wait(rs.stubPID)
		if err != nil {
			return rs.fail("reap the stub", err)
		}
		if ws.Exited() || ws.Signaled() {
			break
		}
	}
	rs.stubProc.Release()
	rs.stubProc = nil
	return nil
}
