package checkpoint

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

// maxXstate bounds the NT_X86_XSTATE buffer; the kernel returns the real size.
const maxXstate = 1 << 16

func (d *dumper) fail(tid int, msg string, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	return &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: d.pid, TID: tid, Msg: msg, Err: err}
}

// collectProcess reads the state of the frozen process.
func (d *dumper) collectProcess(f *frozen, m *mem.Process) (*image.Process, error) {
	pid := d.pid
	var uts unix.Utsname
	unix.Uname(&uts)
	d.meta.Kernel = unix.ByteSliceToString(uts.Release[:])
	d.meta.Arch = "x86_64"
	d.meta.Created = time.Now().UnixNano()

	st, err := procfs.ReadStatus(pid)
	if err != nil {
		return nil, d.fail(0, "read status", err)
	}
	stat, err := procfs.ReadStat(pid)
	if err != nil {
		return nil, d.fail(0, "read stat", err)
	}
	if len(d.meta.Processes) == 0 {
		// The first process collected: the whole tree is frozen now. What
		// the precheck saw of the tree as it ran is seen again, for good.
		d.meta.Terminal, d.meta.SysVShm = nil, nil
		pids, err := d.discoverFrom(pid, nil)
		if err != nil {
			return nil, err
		}
		if err := checkShared(pids); err != nil {
			return nil, err
		}
		if err := checkAttachments(pids); err != nil {
			return nil, err
		}
	}
	p := &image.Process{PID: pid, PPID: stat.PPID, PGID: stat.PGRP, SID: stat.Session, Comm: stat.Comm, ExitSignal: stat.ExitSignal}
	if p.CTTY, err = d.noteCTTY(pid, stat); err != nil {
		return nil, err
	}
	p.Creds = image.Creds{UID: st.Uid, GID: st.Gid, Groups: st.Groups,
		CapInh: st.CapInh, CapPrm: st.CapPrm, CapEff: st.CapEff, CapBnd: st.CapBnd, CapAmb: st.CapAmb}
	p.Umask = st.Umask
	p.NSpid = relNS(st.NSpid)
	p.Prctl.NoNewPrivs = st.NoNewPrivs

	if p.FDs, err = d.collectFDs(pid, false); err != nil {
		return nil, err
	}
	if p.VMAs, err = d.collectVMAs(pid); err != nil {
		return nil, err
	}
	if err := d.recordSysV(pid, p.VMAs); err != nil {
		return nil, err
	}
	exe := "/proc/" + strconv.Itoa(pid) + "/exe"
	if link, err := os.Readlink(exe); err == nil {
		var sb unix.Stat_t
		if unix.Stat(exe, &sb) == nil && sb.Nlink == 0 {
			p.Exe = strings.TrimSuffix(link, " (deleted)")
			p.ExeDeleted = true
			if p.ExeFile, err = d.blob(exe, p.Exe, uint64(sb.Dev), sb.Ino, sb.Mode); err != nil {
				return nil, d.fail(0, "copy deleted executable", err)
			}
		} else {
			p.Exe = link
		}
	}
	if cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd"); err == nil {
		p.Cwd = cwd
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/personality"); err == nil {
		v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
		p.Personality = uint32(v)
	}
	limits, err := procfs.ReadLimits(pid)
	if err != nil {
		return nil, d.fail(0, "read limits", err)
	}
	for _, l := range limits {
		p.Rlimits = append(p.Rlimits, image.Rlimit{Resource: l.Resource, Cur: l.Soft, Max: l.Hard})
	}
	p.MM = image.MM{StartCode: stat.StartCode, EndCode: stat.EndCode, StartData: stat.StartData, EndData: stat.EndData,
		StartBrk: stat.StartBrk, StartStack: stat.StartStack, ArgStart: stat.ArgStart, ArgEnd: stat.ArgEnd,
		EnvStart: stat.EnvStart, EnvEnd: stat.EnvEnd}
	if p.MM.Auxv, err = procfs.ReadAuxv(pid); err != nil {
		return nil, d.fail(0, "read auxv", err)
	}

	// Threads: registers and the state readable through ptrace.
	for _, tid := range f.tids {
		t := image.Thread{TID: tid, Comm: readComm(pid, tid), Sigmask: f.masks[tid]}
		if ts, err := procfs.ReadTaskStatus(pid, tid); err == nil {
			t.NSpid = relNS(ts.NSpid)
		}
		regs, err := ptrace.GetRegs(tid)
		if err != nil {
			return nil, d.fail(tid, "read registers", err)
		}
		t.Regs = ptrace.EncodeRegs(&regs)
		if t.Xstate, err = ptrace.GetXstate(tid, maxXstate); err != nil {
			return nil, d.fail(tid, "read FPU state", err)
		}
		d.meta.XstateSize = len(t.Xstate)
		if rs, err := ptrace.GetRseq(tid); err == nil && rs.Addr != 0 {
			t.Rseq = &image.Rseq{Addr: rs.Addr, Size: rs.Size, Sig: rs.Sig}
		}
		if head, n, err := robustList(tid); err == nil {
			t.RobustList, t.RobustListLen = head, n
		}
		p.Threads = append(p.Threads, t)
	}

	// What only the process itself can tell: ask it, by injected calls.
	ip, err := findSyscall(m, p.VMAs)
	if err != nil {
		return nil, d.fail(0, "find a syscall instruction", err)
	}
	a := &asker{pid: pid, mem: m, ip: ip, inj: map[int]*ptrace.Injector{}, own: map[int]int{}}
	for _, t := range p.Threads {
		a.own[t.TID] = t.TID
		if len(t.NSpid) > 0 {
			a.own[t.TID] = t.NSpid[len(t.NSpid)-1]
		}
	}
	// Block every signal while calls are injected, so that none is dequeued
	// by the steps; the masks go back right after (and in thaw).
	for _, tid := range f.tids {
		if err := ptrace.SetSigmask(tid, ^uint64(0)); err != nil {
			return nil, d.fail(tid, "block signals", err)
		}
	}
	defer func() {
		for _, tid := range f.tids {
			ptrace.SetSigmask(tid, f.masks[tid])
		}
	}()
	if err := a.mapScratch(); err != nil {
		return nil, d.fail(pid, "prepare", err)
	}
	defer a.close()
	if err := d.ask(a, p, st.SigCgt|st.SigIgn); err != nil {
		return nil, err
	}
	if err := a.requeue(); err != nil {
		return nil, d.fail(pid, "queue signals again", err)
	}
	if err := a.close(); err != nil {
		return nil, d.fail(pid, "unmap the scratch page", err)
	}
	if err := a.finish(); err != nil {
		return nil, d.fail(pid, "end injected calls", err)
	}
	// Pending signals last: those that arrived while godwit asked are in.
	for i := range p.Threads {
		if p.Threads[i].Pending, err = siginfos(p.Threads[i].TID, false); err != nil {
			return nil, d.fail(p.Threads[i].TID, "read pending signals", err)
		}
	}
	if p.Pending, err = siginfos(pid, true); err != nil {
		return nil, d.fail(pid, "read pending signals", err)
	}
	return p, nil
}

func (d *dumper) ask(a *asker, p *image.Process, handled uint64) error {
	var err error
	if p.SigActions, err = a.sigactions(handled); err != nil {
		return d.fail(p.PID, "read signal actions", err)
	}
	if p.ITimers, err = a.itimers(); err != nil {
		return d.fail(p.PID, "read interval timers", err)
	}
	if p.MM.Brk, err = a.brk(); err != nil {
		return d.fail(p.PID, "read brk", err)
	}
	if p.Prctl.Dumpable, err = a.prctl(unix.PR_GET_DUMPABLE); err != nil {
		return d.fail(p.PID, "PR_GET_DUMPABLE", err)
	}
	if p.Prctl.PdeathSig, err = a.prctlInt(p.PID, unix.PR_GET_PDEATHSIG); err != nil {
		return d.fail(p.PID, "PR_GET_PDEATHSIG", err)
	}
	sub, err := a.prctlInt(p.PID, unix.PR_GET_CHILD_SUBREAPER)
	if err != nil {
		return d.fail(p.PID, "PR_GET_CHILD_SUBREAPER", err)
	}
	p.Prctl.ChildSubreaper = sub != 0
	timers, err := procfs.ReadTimers(p.PID)
	if err != nil {
		return d.fail(p.PID, "read POSIX timers", err)
	}
	for _, t := range timers {
		pt := image.PosixTimer{ID: t.ID, Clock: t.ClockID, Signal: t.Signal, Value: t.SigevValue}
		if t.ToThread {
			pt.NotifyTID = t.NotifyTID
		}
		pt.Notify = t.SigevNotify()
		if pt.Notify&^sigevThreadID != sigevSignal && pt.Notify != sigevNone {
			return &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: p.PID, Msg: "POSIX timer with notify " + t.Notify}
		}
		if pt.IntervalNs, pt.RemainingNs, pt.Overrun, err = a.timer(t.ID); err != nil {
			return d.fail(p.PID, "read POSIX timer", err)
		}
		p.Timers = append(p.Timers, pt)
	}
	for i := range p.Threads {
		t := &p.Threads[i]
		if t.AltStack, err = a.altstack(t.TID); err != nil {
			return d.fail(t.TID, "read sigaltstack", err)
		}
		if t.ClearChildTID, err = a.tidAddress(t.TID); err != nil {
			return d.fail(t.TID, "read clear_child_tid", err)
		}
	}
	return nil
}

func siginfos(tid int, shared bool) ([]image.Siginfo, error) {
	raw, err := ptrace.PeekSiginfo(tid, shared)
	if err != nil {
		return nil, err
	}
	out := make([]image.Siginfo, len(raw))
	for i, r := range raw {
		out[i] = r
	}
	return out, nil
}

// sigevent notify values.
const (
	sigevSignal   = 0
	sigevNone     = 1
	sigevThreadID = 4
)

// ownLevel is the depth of godwit's own PID namespace as /proc shows it.
var ownLevel = func() int {
	st, err := procfs.ReadStatus(os.Getpid())
	if err != nil || len(st.NSpid) == 0 {
		return 1
	}
	return len(st.NSpid)
}()

// relNS cuts an NSpid list of /proc to the levels from godwit's namespace in.
func relNS(ns []int) []int {
	if len(ns) < ownLevel || len(ns) <= 1 {
		return nil
	}
	return append([]int(nil), ns[ownLevel-1:]...)
}
