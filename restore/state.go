package restore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

const (
	prTimerCreateRestoreIDs = 77
	rlimInfinity            = ^uint64(0)
)

func le64(vals ...uint64) []byte {
	b := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}

// restoreProcessState restores what belongs to the whole process.
func (rs *restorer) restoreProcessState() error {
	p := rs.proc
	if err := rs.attachSysV(); err != nil {
		return err
	}
	if p.Cwd != "" {
		a, err := rs.putString(0, p.Cwd)
		if err != nil {
			return rs.fail("cwd", err)
		}
		if _, err := rs.call(unix.SYS_CHDIR, a); err != nil {
			return rs.fail("chdir "+p.Cwd, err)
		}
	}
	if _, err := rs.call(unix.SYS_UMASK, uint64(p.Umask)); err != nil {
		return rs.fail("umask", err)
	}
	if _, err := rs.call(unix.SYS_PERSONALITY, uint64(p.Personality)); err != nil {
		return rs.fail("personality", err)
	}
	for _, l := range p.Rlimits {
		a, _ := rs.put(0, le64(l.Cur, l.Max))
		if _, err := rs.call(unix.SYS_PRLIMIT64, 0, uint64(l.Resource), a, 0); err != nil {
			if !errors.Is(err, unix.EPERM) {
				return rs.fail(fmt.Sprintf("rlimit %d", l.Resource), err)
			}
			// Raising a hard limit needs CAP_SYS_RESOURCE: keep ours, cap the soft one.
			cur, _ := rs.put(64, make([]byte, 16))
			if _, err := rs.call(unix.SYS_PRLIMIT64, 0, uint64(l.Resource), 0, cur); err == nil {
				b := make([]byte, 16)
				rs.mem.Read(cur, b)
				hard := binary.LittleEndian.Uint64(b[8:])
				a, _ = rs.put(0, le64(min(l.Cur, hard), hard))
				rs.call(unix.SYS_PRLIMIT64, 0, uint64(l.Resource), a, 0)
			}
			rs.warn("rlimit %d: hard limit %d is above this caller's; kept the lower one", l.Resource, l.Max)
		}
	}
	for _, act := range p.SigActions {
		a, _ := rs.put(0, le64(act.Handler, act.Flags, act.Restorer, act.Mask))
		if _, err := rs.call(unix.SYS_RT_SIGACTION, uint64(act.Signal), a, 0, 8); err != nil {
			return rs.fail(fmt.Sprintf("sigaction %d", act.Signal), err)
		}
	}
	for which, t := range p.ITimers {
		if t.ValueUsec == 0 && t.IntervalUsec == 0 {
			continue
		}
		if t.ValueUsec == 0 {
			// Expired with its signal still pending: the kernel re-arms an
			// interval timer when that signal is delivered. Arm it now.
			t.ValueUsec = t.IntervalUsec
		}
		a, _ := rs.put(0, le64(uint64(t.IntervalUsec/1e6), uint64(t.IntervalUsec%1e6), uint64(t.ValueUsec/1e6), uint64(t.ValueUsec%1e6)))
		if _, err := rs.call(unix.SYS_SETITIMER, uint64(which), a, 0); err != nil {
			return rs.fail("setitimer", err)
		}
	}
	if err := rs.restoreTimers(); err != nil {
		return err
	}
	if _, err := rs.call(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, uint64(p.Prctl.Dumpable)); err != nil {
		rs.warn("dumpable: %v", err)
	}
	if p.Prctl.ChildSubreaper {
		if _, err := rs.call(unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1); err != nil {
			return rs.fail("child subreaper", err)
		}
	}
	for _, si := range p.Pending {
		a, _ := rs.put(0, si)
		sig := binary.LittleEndian.Uint32(si[0:])
		if _, err := rs.call(unix.SYS_RT_SIGQUEUEINFO, uint64(rs.own()), uint64(sig), a); err != nil {
			return rs.fail(fmt.Sprintf("queue pending signal %d", sig), err)
		}
	}
	return nil
}

// restoreTimers recreates POSIX timers with their ids.
func (rs *restorer) restoreTimers() error {
	if len(rs.proc.Timers) == 0 {
		return nil
	}
	if _, err := rs.call(unix.SYS_PRCTL, prTimerCreateRestoreIDs, 1); err != nil {
		return rs.fail("PR_TIMER_CREATE_RESTORE_IDS (needs Linux 6.17)", err)
	}
	for _, t := range rs.proc.Timers {
		ev := make([]byte, 64)
		binary.LittleEndian.PutUint64(ev[0:], t.Value)
		binary.LittleEndian.PutUint32(ev[8:], uint32(t.Signal))
		binary.LittleEndian.PutUint32(ev[12:], uint32(t.Notify))
		binary.LittleEndian.PutUint32(ev[16:], uint32(t.NotifyTID))
		evAddr, _ := rs.put(0, ev)
		idb := make([]byte, 4)
		binary.LittleEndian.PutUint32(idb, uint32(t.ID))
		idAddr, _ := rs.put(64, idb)
		if _, err := rs.call(unix.SYS_TIMER_CREATE, uint64(t.Clock), evAddr, idAddr); err != nil {
			return rs.fail(fmt.Sprintf("timer_create id %d", t.ID), err)
		}
		got := make([]byte, 4)
		rs.mem.Read(idAddr, got)
		if int(binary.LittleEndian.Uint32(got)) != t.ID {
			return rs.fail(fmt.Sprintf("timer_create gave id %d, want %d", binary.LittleEndian.Uint32(got), t.ID), nil)
		}
		if t.RemainingNs == 0 && t.IntervalNs == 0 {
			continue
		}
		rem := t.RemainingNs
		if rem == 0 {
			rem = 1 // armed but due: fire at once
		}
		spec, _ := rs.put(128, le64(uint64(t.IntervalNs/1e9), uint64(t.IntervalNs%1e9), uint64(rem/1e9), uint64(rem%1e9)))
		if _, err := rs.call(unix.SYS_TIMER_SETTIME, uint64(t.ID), 0, spec, 0); err != nil {
			return rs.fail(fmt.Sprintf("timer_settime id %d", t.ID), err)
		}
	}
	rs.call(unix.SYS_PRCTL, prTimerCreateRestoreIDs, 0)
	return nil
}

// createThreads clones every other thread with its TID.
func (rs *restorer) createThreads() error {
	const flags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	for _, t := range rs.proc.Threads[1:] {
		tl := levels(t.TID, t.NSpid)
		tidAddr, _ := rs.put(128, setTIDs(tl))
		args, err := rs.put(0, cloneArgs(flags, 0, tidAddr, len(tl)))
		if err != nil {
			return rs.fail("clone3 arguments", err)
		}
		got, err := rs.call(unix.SYS_CLONE3, args, 88)
		if err != nil {
			if errors.Is(err, unix.EEXIST) {
				return &fault.Error{Code: fault.CodePIDInUse, Op: "restore", PID: rs.proc.PID, TID: t.TID,
					Msg: "tid is in use", Err: err}
			}
			return rs.fail(fmt.Sprintf("clone3 thread %d", t.TID), err)
		}
		if int(got) != tl[len(tl)-1] {
			return rs.fail(fmt.Sprintf("clone3 gave tid %d, want %d", got, tl[len(tl)-1]), nil)
		}
		outer := rs.inj[rs.pid].EventMsg
		if outer == 0 {
			outer = t.TID
		}
		rs.threads = append(rs.threads, outer)
		rs.tids[t.TID] = outer
		if _, err := ptrace.WaitStopped(outer); err != nil {
			return rs.fail("wait for a new thread", err)
		}
	}
	return nil
}

// restoreThreadState restores each thread's own kernel state.
func (rs *restorer) restoreThreadState() error {
	for _, t := range rs.proc.Threads {
		in := rs.injector(rs.tid(t.TID))
		if t.AltStack.SP != 0 || t.AltStack.Flags&ssDisable == 0 {
			flags := uint64(uint32(t.AltStack.Flags &^ 1)) // SS_ONSTACK is state, not a setting
			a, _ := rs.put(0, le64(t.AltStack.SP, flags, t.AltStack.Size))
			if _, err := in.Syscall(unix.SYS_SIGALTSTACK, a, 0); err != nil {
				return rs.fail(fmt.Sprintf("tid %d: sigaltstack", t.TID), err)
			}
		}
		if _, err := in.Syscall(unix.SYS_SET_TID_ADDRESS, t.ClearChildTID); err != nil {
			return rs.fail(fmt.Sprintf("tid %d: set_tid_address", t.TID), err)
		}
		if t.RobustList != 0 {
			if _, err := in.Syscall(unix.SYS_SET_ROBUST_LIST, t.RobustList, t.RobustListLen); err != nil {
				return rs.fail(fmt.Sprintf("tid %d: set_robust_list", t.TID), err)
			}
		}
		if t.Rseq != nil {
			if _, err := in.Syscall(unix.SYS_RSEQ, t.Rseq.Addr, uint64(t.Rseq.Size), 0, uint64(t.Rseq.Sig)); err != nil {
				return rs.fail(fmt.Sprintf("tid %d: rseq", t.TID), err)
			}
		}
		name := t.Comm
		if len(name) > 15 {
			name = name[:15]
		}
		a, _ := rs.putString(0, name)
		if _, err := in.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, a); err != nil {
			return rs.fail(fmt.Sprintf("tid %d: name", t.TID), err)
		}
		for _, si := range t.Pending {
			a, _ := rs.put(0, si)
			sig := binary.LittleEndian.Uint32(si[0:])
			tl := levels(t.TID, t.NSpid)
			if _, err := in.Syscall(unix.SYS_RT_TGSIGQUEUEINFO, uint64(rs.own()), uint64(tl[len(tl)-1]), uint64(sig), a); err != nil {
				return rs.fail(fmt.Sprintf("tid %d: queue pending signal %d", t.TID, sig), err)
			}
		}
	}
	return nil
}

// restoreCreds sets each thread's credentials last: groups, gids, uids.
// The kernel refuses what the caller could not do itself, so an image never
// grants more privilege than its restorer has.
func (rs *restorer) restoreCreds() error {
	c := rs.proc.Creds
	if rs.userns {
		// The capabilities the stub had in the new namespace go: the process
		// gets the ones it had (a user's process: none).
		return rs.dropCaps()
	}
	uid, gid := uint32(unix.Getuid()), uint32(unix.Getgid())
	if c.UID == [4]uint32{uid, uid, uid, uid} && c.GID == [4]uint32{gid, gid, gid, gid} && unix.Getuid() != 0 {
		return nil
	}
	for _, t := range rs.proc.Threads {
		in := rs.injector(rs.tid(t.TID))
		groups := make([]byte, 4*len(c.Groups))
		for i, g := range c.Groups {
			binary.LittleEndian.PutUint32(groups[4*i:], g)
		}
		a, _ := rs.put(0, groups)
		if _, err := in.Syscall(unix.SYS_SETGROUPS, uint64(len(c.Groups)), a); err != nil && !errors.Is(err, unix.EPERM) {
			return rs.fail("setgroups", err)
		}
		if _, err := in.Syscall(unix.SYS_SETRESGID, uint64(c.GID[0]), uint64(c.GID[1]), uint64(c.GID[2])); err != nil {
			return rs.fail("setresgid", err)
		}
		if _, err := in.Syscall(unix.SYS_SETRESUID, uint64(c.UID[0]), uint64(c.UID[1]), uint64(c.UID[2])); err != nil {
			return rs.fail("setresuid", err)
		}
	}
	return nil
}

// resume gives every thread its registers, FPU state and signal mask back
// and releases them all. The leader's last call unmaps the trampoline.
func (rs *restorer) resume() error {
	p := rs.proc
	if p.Prctl.PdeathSig != 0 {
		if _, err := rs.call(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uint64(p.Prctl.PdeathSig)); err != nil {
			return rs.fail("pdeathsig", err)
		}
	}
	if p.Prctl.NoNewPrivs {
		if _, err := rs.call(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return rs.fail("no_new_privs", err)
		}
	}
	final := map[int]ptrace.Regs{}
	for _, t := range p.Threads {
		regs, err := ptrace.DecodeRegs(t.Regs)
		if err != nil {
			return rs.fail("registers", err)
		}
		fixRestart(&regs)
		final[t.TID] = regs
		if err := ptrace.SetXstate(rs.tid(t.TID), t.Xstate); err != nil {
			return rs.fail("FPU state", err)
		}
	}
	for _, t := range p.Threads[1:] {
		r := final[t.TID]
		if err := ptrace.SetRegs(rs.tid(t.TID), &r); err != nil {
			return rs.fail(fmt.Sprintf("tid %d: registers", t.TID), err)
		}
	}
	lead, err := ptrace.GetRegs(rs.pid)
	if err != nil {
		return rs.fail("registers", err)
	}
	if _, err := rs.injector(rs.pid).SyscallNoRestore(lead, unix.SYS_MUNMAP, rs.tramp, trampSize); err != nil {
		return rs.fail("unmap the trampoline", err)
	}
	r := final[rs.proc.PID]
	if err := ptrace.SetRegs(rs.pid, &r); err != nil {
		return rs.fail("registers", err)
	}
	rs.mem.Close()
	rs.mem = nil
	for _, t := range p.Threads {
		if err := ptrace.SetSigmask(rs.tid(t.TID), t.Sigmask); err != nil {
			return rs.fail(fmt.Sprintf("tid %d: signal mask", t.TID), err)
		}
	}
	return nil
}

// detach releases every thread of the process. The root is released first:
// before it, what the processes share is committed.
func (rs *restorer) detach() error {
	if rs.proc.PID == rs.meta.Root {
		rs.commitShared(rs)
	}
	for _, t := range rs.proc.Threads {
		if err := ptrace.Detach(rs.tid(t.TID), 0); err != nil {
			return rs.fail(fmt.Sprintf("tid %d: detach", t.TID), err)
		}
	}
	rs.pid = 0 // nothing to kill any more
	return nil
}

// Kernel-internal restart codes a thread stopped in a syscall may show.
const (
	erestartsys          = 512
	erestartnointr       = 513
	erestartnohand       = 514
	erestartRestartblock = 516
)

// fixRestart makes a thread that was stopped inside an interrupted system
// call run it again: the kernel will not do it for a task resumed this way.
func fixRestart(r *ptrace.Regs) {
	if int64(r.Orig_rax) < 0 {
		return
	}
	switch -int64(r.Rax) {
	case erestartsys, erestartnointr, erestartnohand, erestartRestartblock:
		r.Rax = r.Orig_rax
		r.Rip -= 2
	}
	r.Orig_rax = ^uint64(0)
}

const ssDisable = 2

// dropCaps sets every thread's capabilities to the image's (never more than
// it has now) and clears its ambient set.
func (rs *restorer) dropCaps() error {
	c := rs.proc.Creds
	for _, t := range rs.proc.Threads {
		in := rs.injector(rs.tid(t.TID))
		if _, err := in.Syscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
			return rs.fail("clear ambient capabilities", err)
		}
		hdr := make([]byte, 8)
		binary.LittleEndian.PutUint32(hdr[0:], unix.LINUX_CAPABILITY_VERSION_3)
		data := make([]byte, 24)
		for i, v := range []uint64{c.CapEff, c.CapPrm, c.CapInh} {
			binary.LittleEndian.PutUint32(data[4*i:], uint32(v))
			binary.LittleEndian.PutUint32(data[12+4*i:], uint32(v>>32))
		}
		h, _ := rs.put(0, hdr)
		d, _ := rs.put(64, data)
		if _, err := in.Syscall(unix.SYS_CAPSET, h, d); err != nil {
			return rs.fail("set capabilities", err)
		}
	}
	return nil
}
