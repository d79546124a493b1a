// Package checkpoint freezes a live process and writes everything needed to
// bring it back into an image stream (see package image).
//
// The pipeline is: check (read-only, may fail before anything changes) →
// freeze (PTRACE_SEIZE + PTRACE_INTERRUPT every thread) → collect (registers,
// signal state, mappings, files; a few side-effect-free injected system
// calls) → read memory → resume or kill → write. Any failure before the end
// detaches every thread with its signal mask as it was, so the process runs
// on exactly as before.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/files"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

// Options tune a dump.
type Options struct {
	// LeaveRunning resumes the process after the dump instead of killing it.
	LeaveRunning bool
	// ShellJob dumps descriptors of the terminal the tree runs on (one
	// pseudo-terminal, /dev/pts/N) and its controlling-terminal relations,
	// for a restore that attaches them to its own terminal. Without it such
	// descriptors are refused.
	ShellJob bool
	// Dirty, when set, makes this dump the last round of a pre-copy: only
	// the pages it reports written since the previous round are dumped
	// (with zero runs where pages became zero or were given back).
	Dirty DirtyFunc
	// Lazy, when set, makes this the dump of a post-copy: the pages of
	// anonymous private mappings are left out of the image and Lazy is
	// told, per process, which of them are present (to be fetched from the
	// frozen tree during Handoff). With Dirty (hybrid), only the pages
	// written since the last round are left out.
	Lazy func(pid int, present []PageRange) error
	// TCP says what to do with established TCP connections; by default
	// the dump refuses them, naming them.
	TCP TCPMode
	// Handoff, when set, is called once the image is written, with the
	// tree still frozen: it is the commit point of a migration. When it
	// returns nil the tree is killed; otherwise the tree is resumed and
	// Dump returns Handoff's error. Not used with LeaveRunning.
	Handoff func(ctx context.Context) error
}

// Stats describe a finished dump.
type Stats struct {
	FrozenTime time.Duration // from the first thread stopped to the last resumed (or killed)
	FrozenAt   time.Time     // when the first thread was stopped
	TotalTime  time.Duration
	Pages      uint64 // pages stored with data
	ZeroPages  uint64 // zero pages found (stored as zero runs or dropped)
	ImageBytes int64
}

// Sentinels for errors.Is.
var (
	ErrNoProcess     = fault.ErrNoProcess
	ErrAlreadyTraced = fault.ErrAlreadyTraced
	ErrUnsupported   = fault.ErrUnsupported
	ErrUnreadable    = fault.ErrUnreadable
)

type dumper struct {
	pid      int
	opts     Options
	meta     image.Meta
	blobIDs  map[[2]uint64]int
	blobData [][]byte
	stats    Stats
	// reserved holds, per pid, the buffer its pages will be read into,
	// populated before the freeze (see reservePages).
	reserved map[int]*pageBuf
	// repairs holds the TCP connections put in repair mode, until the
	// dump either resumes the tree or kills it.
	repairs *files.Repairs
	// eager are the pages a post-copy keeps in the image (rseq areas).
	eager map[uint64]bool
}

// Dump checkpoints process pid into w.
func Dump(ctx context.Context, pid int, w io.Writer, opts Options) (*Stats, error) {
	start := time.Now()
	if pid <= 0 {
		return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "dump", Msg: "pid must be positive"}
	}
	if opts.Lazy != nil && (opts.LeaveRunning || opts.Handoff == nil) {
		return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "dump", PID: pid, Msg: "a post-copy dump needs a handoff, and no leave-running"}
	}
	d := &dumper{pid: pid, opts: opts, blobIDs: map[[2]uint64]int{}, reserved: map[int]*pageBuf{}}
	err := ptrace.Run(func() error { return d.run(ctx, w) })
	if err != nil {
		return nil, err
	}
	d.stats.TotalTime = time.Since(start)
	return &d.stats, nil
}

func (d *dumper) precheck() (*procfs.Status, error) {
	st, err := procfs.ReadStatus(d.pid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &fault.Error{Code: fault.CodeNoProcess, Op: "dump", PID: d.pid, Msg: "no such process"}
		}
		return nil, &fault.Error{Code: fault.CodePermission, Op: "dump", PID: d.pid, Msg: "read status", Err: err}
	}
	if st.Tgid != d.pid {
		return nil, &fault.Error{Code: fault.CodeInvalidArgument, Op: "dump", PID: d.pid,
			Msg: "is a thread of process " + strconv.Itoa(st.Tgid), Remedy: "dump the process " + strconv.Itoa(st.Tgid)}
	}
	if st.State == 'Z' || st.State == 'X' {
		return nil, &fault.Error{Code: fault.CodeProcessExited, Op: "dump", PID: d.pid, Msg: "process is a zombie"}
	}
	if st.TracerPid != 0 {
		return nil, &fault.Error{Code: fault.CodeAlreadyTraced, Op: "dump", PID: d.pid,
			Msg: "already traced by pid " + strconv.Itoa(st.TracerPid), Remedy: "detach the debugger or strace first"}
	}
	return st, nil
}

func (d *dumper) run(ctx context.Context, w io.Writer) (err error) {
	if _, err := d.precheck(); err != nil {
		return err
	}
	pids, err := d.discover(nil)
	if err != nil {
		return err
	}
	// Everything that can be refused is refused before anything stops.
	var pre []image.Process
	for _, pid := range pids {
		if z, _ := zombieOf(pid); z != nil {
			continue
		}
		if pid != d.pid {
			if st, err := procfs.ReadStatus(pid); err == nil && st.TracerPid != 0 {
				return &fault.Error{Code: fault.CodeAlreadyTraced, Op: "dump", PID: pid,
					Msg: "already traced by pid " + strconv.Itoa(st.TracerPid), Remedy: "detach the debugger or strace first"}
			}
		}
		fds, err := d.collectFDs(pid, true)
		if err != nil {
			return err
		}
		pre = append(pre, image.Process{PID: pid, FDs: fds})
		vmas, err := d.collectVMAs(pid)
		if err != nil {
			return err
		}
		if d.opts.Dirty == nil && d.opts.Lazy == nil {
			d.reserved[pid] = reservePages(pid, vmas)
		}
	}
	if err := checkPeers(pre); err != nil {
		return err
	}
	d.meta.Files, d.blobData, d.blobIDs = nil, nil, map[[2]uint64]int{}
	if err := ctx.Err(); err != nil {
		return err
	}

	// Freeze parents before children, then look again for children forked
	// before their parent stopped, until the tree holds still.
	var members []*member
	known := map[int]bool{}
	frozenAt := time.Now()
	d.stats.FrozenAt = frozenAt
	resumed := false
	defer func() {
		if !resumed {
			for _, m := range members {
				if m.frozen != nil {
					if terr := m.frozen.thaw(); terr != nil && err == nil {
						err = terr
					}
				}
			}
		}
	}()
	d.repairs = &files.Repairs{}
	defer func() {
		// This runs before the thaw above (defers run last first), so
		// that no process runs with a socket in repair mode. Killed: the
		// connections stay in repair mode, so that their end sends
		// nothing to the peer. Otherwise they carry on.
		if rerr := d.repairs.Finish(!resumed || d.opts.LeaveRunning); rerr != nil && err == nil {
			err = &fault.Error{Code: fault.CodeDumpFailed, Op: "resume TCP connections", Err: rerr}
		}
	}()
	for round := 0; len(pids) > 0; round++ {
		if round > 100 {
			return &fault.Error{Code: fault.CodeDumpFailed, Op: "freeze", PID: d.pid, Msg: "the tree keeps changing"}
		}
		for _, pid := range pids {
			known[pid] = true
			z, zerr := zombieOf(pid)
			if zerr != nil && pid != d.pid {
				continue // gone meanwhile
			}
			if z != nil {
				if pid == d.pid {
					return &fault.Error{Code: fault.CodeProcessExited, Op: "dump", PID: pid, Msg: "process is a zombie"}
				}
				members = append(members, &member{pid: pid, zombie: z})
				continue
			}
			f, err := freeze(pid)
			if err != nil {
				if pid != d.pid && fault.CodeOf(err) == fault.CodeNoProcess {
					continue
				}
				return err
			}
			members = append(members, &member{pid: pid, frozen: f})
		}
		if pids, err = d.discover(known); err != nil {
			return err
		}
	}

	d.meta.Root = d.pid
	var runs []procRuns
	for _, mb := range members {
		if mb.zombie != nil {
			d.meta.Zombies = append(d.meta.Zombies, *mb.zombie)
			continue
		}
		m, err := mem.Open(mb.pid, true)
		if err != nil {
			return &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: mb.pid, Err: err}
		}
		d.pid = mb.pid
		proc, err := d.collectProcess(mb.frozen, m)
		if err == nil {
			d.meta.Processes = append(d.meta.Processes, *proc)
			p := &d.meta.Processes[len(d.meta.Processes)-1]
			var r []pageRun
			var dirty []PageRange
			tracked := false
			if d.opts.Dirty != nil {
				dirty, tracked, err = d.opts.Dirty(mb.pid)
				if err != nil {
					err = &fault.Error{Code: fault.CodeDumpFailed, Op: "dirty pages", PID: mb.pid, Err: err}
				}
			}
			if err == nil {
				if d.opts.Lazy != nil {
					d.eager = p.RseqPages()
				}
				r, err = d.readDirtyPagesInto(m, p.VMAs, d.reserved[mb.pid], dirty, tracked)
			}
			delete(d.reserved, mb.pid)
			runs = append(runs, procRuns{pid: mb.pid, runs: r})
		}
		m.Close()
		d.pid = d.meta.Root
		if err != nil {
			return err
		}
	}
	shareFDs(d.meta.Processes)
	for _, pr := range runs {
		for _, r := range pr.runs {
			if r.data != nil {
				d.stats.Pages += uint64(r.count)
			}
		}
	}

	if d.opts.LeaveRunning {
		// The image is in memory: let the tree go before writing it.
		if err := d.repairs.Finish(true); err != nil {
			return &fault.Error{Code: fault.CodeDumpFailed, Op: "resume TCP connections", Err: err}
		}
		resumed = true
		for _, mb := range members {
			if mb.frozen != nil {
				if err := mb.frozen.thaw(); err != nil {
					return &fault.Error{Code: fault.CodeDumpFailed, Op: "resume", PID: mb.pid, Err: err}
				}
			}
		}
		d.stats.FrozenTime = time.Since(frozenAt)
		return d.write(w, runs)
	}
	if err := d.write(w, runs); err != nil {
		return err
	}
	if d.opts.Handoff != nil {
		if err := d.opts.Handoff(ctx); err != nil {
			return err // the deferred thaw resumes the tree
		}
	}
	resumed = true
	if err := d.kill(members); err != nil {
		return err
	}
	d.stats.FrozenTime = time.Since(frozenAt)
	return nil
}

// TCPMode says what a dump does with established TCP connections.
type TCPMode string

// TCP modes.
const (
	// TCPRefuse refuses to dump a tree with an established connection.
	TCPRefuse TCPMode = ""
	// TCPEstablished dumps connections with TCP_REPAIR, to be restored
	// where the same addresses are (migration); the source's copies end
	// silently.
	TCPEstablished TCPMode = "established"
	// TCPClose restores connections closed, for the application to
	// reconnect.
	TCPClose TCPMode = "close"
)

// inspectOptions are the options of files.InspectWith: in the precheck,
// while the tree runs, nothing is put into repair mode.
func (d *dumper) inspectOptions(precheck bool) files.InspectOptions {
	o := files.InspectOptions{}
	switch d.opts.TCP {
	case TCPEstablished:
		o.TCP = files.TCPEstablished
	case TCPClose:
		o.TCP = files.TCPClose
	}
	if !precheck && d.repairs != nil {
		o.Repairs = d.repairs
	}
	return o
}

// procRuns are the pages read from one process.
type procRuns struct {
	pid  int
	runs []pageRun
}

func (d *dumper) write(w io.Writer, runs []procRuns) error {
	iw, err := image.NewWriter(w)
	if err != nil {
		return &fault.Error{Code: fault.CodeIO, Op: "write image", Err: err}
	}
	if err := iw.WriteMeta(&d.meta); err != nil {
		return &fault.Error{Code: fault.CodeIO, Op: "write image", Err: err}
	}
	for i, data := range d.blobData {
		if err := iw.WriteFileData(d.meta.Files[i].ID, 0, data); err != nil {
			return &fault.Error{Code: fault.CodeIO, Op: "write image", Err: err}
		}
	}
	for _, pr := range runs {
		for _, r := range pr.runs {
			if err := iw.WritePages(pr.pid, r.addr, r.count, r.data); err != nil {
				return &fault.Error{Code: fault.CodeIO, Op: "write image", Err: err}
			}
		}
	}
	if err := iw.Close(); err != nil {
		return &fault.Error{Code: fault.CodeIO, Op: "write image", Err: err}
	}
	d.stats.ImageBytes = iw.Written()
	return nil
}

// kill ends every dumped process and waits until all have exited. All are
// signalled first: the init of a PID namespace only finishes exiting once
// every other process in it is gone, and those are traced by godwit, which
// must collect them. Then the deepest are waited for first.
func (d *dumper) kill(members []*member) error {
	var pidfds []int
	defer func() {
		for _, fd := range pidfds {
			unix.Close(fd)
		}
	}()
	for _, mb := range members {
		if mb.frozen == nil {
			continue
		}
		pidfd, err := unix.PidfdOpen(mb.pid, 0)
		if err != nil {
			return &fault.Error{Code: fault.CodeDumpFailed, Op: "kill", PID: mb.pid, Err: err}
		}
		pidfds = append(pidfds, pidfd)
		if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil {
			return &fault.Error{Code: fault.CodeDumpFailed, Op: "kill", PID: mb.pid, Err: err}
		}
	}
	// Collect the traced threads' exits (this passes each leader's exit on
	// to its real parent), in whatever order they come: a traced leader is
	// only reported once its other threads are gone, and the last thread of
	// a PID namespace's init waits in the kernel for its siblings to be
	// reaped. Each pass collects what is ready without blocking.
	left := map[int]*frozen{}
	for _, mb := range members {
		if mb.frozen != nil {
			for _, tid := range mb.frozen.tids {
				left[tid] = mb.frozen
			}
		}
	}
	for pass := 0; len(left) > 0; pass++ {
		progress := false
		for tid, f := range left {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
			if err == unix.EINTR || (err == nil && pid == 0) {
				continue
			}
			if err == nil && !ws.Exited() && !ws.Signaled() {
				progress = true // a stop on the way out (PTRACE_EVENT_EXIT, ...)
				continue
			}
			// Exited, or ECHILD: gone (or no longer ours to wait for).
			delete(left, tid)
			delete(f.ready, tid)
			progress = true
		}
		if !progress {
			if pass > 30000 {
				return &fault.Error{Code: fault.CodeDumpFailed, Op: "kill", Msg: fmt.Sprintf("%d threads did not exit", len(left))}
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, pidfd := range pidfds {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, 10000)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return &fault.Error{Code: fault.CodeDumpFailed, Op: "kill", Err: err}
			}
			break
		}
	}
	return nil
}

func readComm(pid, tid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/comm")
	return strings.TrimSuffix(string(b), "\n")
}
