package restore

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

// createTree forks every process of the image from its own parent, with its
// PID, parents first, and restores sessions and process groups. Zombies are
// forked last and made to exit with their recorded status. All processes
// start as copies of the root: the stub's leftovers plus the trampoline.
func (t *tree) createTree() error {
	root := t.byPID[t.meta.Root]
	if root.proc.SID == root.proc.PID {
		if err := root.setsid(); err != nil {
			return err
		}
	}
	for _, rs := range t.procs {
		if rs == root {
			continue
		}
		parent := t.byPID[rs.proc.PPID]
		if err := parent.forkChild(rs, rs.proc.ExitSignal); err != nil {
			return err
		}
		if rs.proc.SID == rs.proc.PID {
			if err := rs.setsid(); err != nil {
				return err
			}
		}
	}
	var zombies []*restorer
	for i := range t.meta.Zombies {
		z := &t.meta.Zombies[i]
		rs := &restorer{tree: t, zombie: z, inj: map[int]*ptrace.Injector{},
			proc: &image.Process{PID: z.PID, NSpid: z.NSpid, PPID: z.PPID, PGID: z.PGID, SID: z.SID}}
		if err := t.byPID[z.PPID].forkChild(rs, z.ExitSignal); err != nil {
			return err
		}
		rs.forked = true
		t.procs = append(t.procs, rs)
		zombies = append(zombies, rs)
	}
	// Process groups: join the group when its leader is in the tree (the
	// others keep the group they inherited).
	for _, rs := range t.procs {
		if rs.proc.PGID == rs.proc.PID && rs.proc.SID != rs.proc.PID {
			if _, err := rs.call(unix.SYS_SETPGID, 0, 0); err != nil {
				return rs.fail("setpgid", err)
			}
		}
	}
	for _, rs := range t.procs {
		if rs.proc.PGID != rs.proc.PID && t.byPID[rs.proc.PGID] != nil {
			if _, err := rs.call(unix.SYS_SETPGID, 0, uint64(rs.viewOf(t.byPID[rs.proc.PGID]))); err != nil {
				return rs.fail(fmt.Sprintf("join process group %d", rs.proc.PGID), err)
			}
		}
	}
	if err := t.restoreForeground(); err != nil {
		return err
	}
	// The zombies are not restorers of live processes: take them out.
	t.procs = t.procs[:len(t.procs)-len(zombies)]
	t.zombies = zombies
	for _, rs := range zombies {
		if err := rs.die(); err != nil {
			return err
		}
	}
	return nil
}

// setsid makes the process the leader of a new session and, when the
// shell job's terminal was its controlling terminal, gives it that terminal
// before any child is forked, so that they inherit it.
func (rs *restorer) setsid() error {
	if _, err := rs.call(unix.SYS_SETSID); err != nil {
		return rs.fail("setsid", err)
	}
	if rs.proc.CTTY {
		return rs.acquireTerminal()
	}
	return nil
}

// forkChild makes the process fork child with child's PID.
func (rs *restorer) forkChild(child *restorer, exitSignal int) error {
	if exitSignal == 0 && child.zombie == nil {
		exitSignal = int(unix.SIGCHLD)
	}
	plv, clv := levels(rs.proc.PID, rs.proc.NSpid), levels(child.proc.PID, child.proc.NSpid)
	var flags uint64
	switch {
	case len(clv) == len(plv):
	case len(clv) == len(plv)+1 && clv[len(clv)-1] == 1:
		flags = unix.CLONE_NEWPID
	default:
		return &fault.Error{Code: fault.CodeUnsupported, Op: "restore", PID: child.proc.PID,
			Msg: "a child in a PID namespace that its parent did not create is not supported"}
	}
	tidAddr, err := rs.put(128, setTIDs(clv))
	if err != nil {
		return rs.fail("clone3 arguments", err)
	}
	args, err := rs.put(0, cloneArgs(flags, uint64(exitSignal), tidAddr, len(clv)))
	if err != nil {
		return rs.fail("clone3 arguments", err)
	}
	got, err := rs.call(unix.SYS_CLONE3, args, 88)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return &fault.Error{Code: fault.CodePIDInUse, Op: "restore", PID: child.proc.PID,
				Msg: "pid is in use", Err: err, Remedy: "stop the process that holds it, or restore in a new PID namespace"}
		}
		return rs.fail(fmt.Sprintf("fork child %d", child.proc.PID), err)
	}
	if want := clv[len(plv)-1]; int(got) != want {
		return rs.fail(fmt.Sprintf("clone3 gave pid %d, want %d", got, want), nil)
	}
	child.pid = rs.inj[rs.pid].EventMsg // as godwit sees it
	if child.pid == 0 {
		child.pid = child.proc.PID
	}
	child.tids = map[int]int{child.proc.PID: child.pid}
	child.threads = []int{child.pid}
	if _, err := ptrace.WaitStopped(child.pid); err != nil {
		child.pid = 0
		return rs.fail("wait for a new child", err)
	}
	if child.mem, err = mem.Open(child.pid, true); err != nil {
		return child.fail("open the new process's memory", err)
	}
	return nil
}

// die makes a forked zombie-to-be exit with its recorded wait status. Its
// parent is stopped, so it stays a zombie until the parent reaps it.
func (rs *restorer) die() error {
	status := rs.zombie.Status
	if name, err := rs.putString(0, truncName(rs.zombie.Comm)); err == nil {
		rs.call(unix.SYS_PRCTL, unix.PR_SET_NAME, name)
	}
	if rs.mem != nil {
		rs.mem.Close()
		rs.mem = nil
	}
	regs, err := ptrace.GetRegs(rs.pid)
	if err != nil {
		return rs.fail("registers", err)
	}
	sig := status & 0x7f
	if sig == 0 {
		regs.Rax, regs.Rdi = unix.SYS_EXIT_GROUP, uint64((status>>8)&0xff)
	} else {
		if err := ptrace.SetSigmask(rs.pid, 0); err != nil {
			return rs.fail("unblock signals", err)
		}
		regs.Rax, regs.Rdi, regs.Rsi = unix.SYS_KILL, uint64(rs.own()), uint64(sig)
	}
	regs.Orig_rax = ^uint64(0)
	regs.Rip = rs.tramp
	if err := ptrace.SetRegs(rs.pid, &regs); err != nil {
		return rs.fail("registers", err)
	}
	deliver := 0
	for {
		if err := ptrace.Cont(rs.pid, deliver); err != nil {
			return rs.fail("let the zombie exit", err)
		}
		ws, err := ptrace.Wait(rs.pid)
		if err != nil {
			return rs.fail("wait for the zombie", err)
		}
		if ws.Exited() || ws.Signaled() {
			break
		}
		deliver = 0
		if ws.Stopped() && ws.TrapCause() <= 0 && ws.StopSignal() != unix.SIGTRAP {
			deliver = int(ws.StopSignal())
		}
	}
	rs.pid = 0
	return nil
}

// truncName cuts a task name to the kernel's 15 bytes.
func truncName(s string) string {
	if len(s) > 15 {
		return s[:15]
	}
	return s
}
