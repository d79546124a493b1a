// Package restore recreates a checkpointed process from an image stream.
//
// Restore is driven entirely from outside by ptrace. godwit starts a stub (a
// tiny static program that only waits), and injects into it a clone3 with
// set_tid, so that the new process gets its original PID from its real
// parent. Into that child it then injects the system calls that rebuild the
// process: a one-page trampoline, the removal of the stub's own mappings,
// the move of [vdso], every mapping of the image, the pages, mm fields,
// files, signal state, timers, threads (clone3 with set_tid again) and
// credentials. Last, the stub is killed so that the process is reparented
// like a daemon, every thread gets its registers back, and all are released.
//
// On any failure every task created is killed and every PID freed: nothing
// half-restored keeps running.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/ptrace"
)

// Options tune a restore.
type Options struct {
	// PIDWait bounds how long a restore waits for a zombie that still holds
	// a PID of the image to be reaped. Zero means 5 seconds.
	PIDWait time.Duration
	// UserNS restores into a new user and PID namespace that godwit creates,
	// mapping the caller's ids, with the image's pids inside it. It is how
	// a user without CAP_CHECKPOINT_RESTORE restores, and the default for
	// a caller that is not root.
	UserNS bool
	// ShellJob attaches the terminal descriptors of an image dumped as a
	// shell job to the terminal restore runs on (its stdin when that is a
	// terminal, else /dev/tty). Without it such an image is refused.
	ShellJob bool
	// Pages, when set, holds pages sent ahead of the image (the rounds of a
	// pre-copy). They are written first; the image's own pages, newer,
	// replace them. Pages outside the image's private mappings are ignored.
	Pages PageSource
	// BeforeResume, when set, is called once every process is whole and
	// still stopped, just before they are let go: the destination's side
	// of a migration's commit point. When it returns an error the restore
	// is undone and Restore returns that error.
	BeforeResume func(ctx context.Context, res *Result) error
	// Lazy, when set, makes this the restore of a post-copy: every
	// process gets a userfaultfd, handed to Lazy with its anonymous
	// mappings just before BeforeResume. Their pages from Pages are then
	// not written either: the Lazy handler fills them (the image's own are). Not with UserNS (a user-mode-only
	// userfaultfd cannot serve faults taken inside the kernel).
	Lazy LazyFunc
	// AnonPages, with Lazy, receives the image's pages of anonymous
	// mappings instead of their being written (data nil: zero pages), for
	// the Lazy handler to fill with the rest.
	AnonPages func(pid int, addr uint64, count int, data []byte) error
}

// PageSource holds pages of processes, by pid.
type PageSource interface {
	// Pages calls fn for every run of pages held for pid for which want
	// is true, in any order; data is a whole number of pages and is only
	// valid during the call.
	Pages(pid int, want func(addr uint64) bool, fn func(addr uint64, data []byte) error) error
}

// Result describes a restored process.
type Result struct {
	// PID is the root's pid as the caller sees it: the image's pid, or,
	// after a UserNS restore, the pid of the root in the caller's namespace
	// (inside the new namespace it has the image's pid).
	PID int
	// NamespacePID is the root's pid inside its namespace (the image's).
	NamespacePID int
	Duration     time.Duration
	// Warnings are things that could not be restored exactly (for example a
	// resource limit higher than the caller's own).
	Warnings []string
}

// Sentinels for errors.Is.
var (
	ErrPIDInUse = fault.ErrPIDInUse
	ErrBadImage = fault.ErrBadImage
)

// Restore reads an image from r and recreates its process tree.
func Restore(ctx context.Context, r io.Reader, opts Options) (*Result, error) {
	start := time.Now()
	if opts.PIDWait == 0 {
		opts.PIDWait = 5 * time.Second
	}
	ir, err := image.NewReader(r)
	if err != nil {
		return nil, badImage(err)
	}
	meta, err := ir.ReadMeta()
	if err != nil {
		return nil, badImage(err)
	}
	if err := meta.Validate(); err != nil {
		return nil, badImage(&image.FormatError{Offset: 16, Record: 0, Type: image.TypeMeta, Err: err})
	}
	if err := checkTree(meta); err != nil {
		return nil, err
	}
	res := &Result{PID: meta.Root, NamespacePID: meta.Root}
	if !opts.UserNS {
		if err := waitPIDsFree(ctx, meta, opts.PIDWait); err != nil {
			return nil, err
		}
	}
	t := &tree{meta: meta, ir: ir, res: res, userns: opts.UserNS, opts: opts}
	err = ptrace.Run(func() error { return t.run(ctx) })
	t.removeGhosts()
	t.closeObjects()
	if err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

func badImage(err error) error {
	var fe *image.FormatError
	off := int64(0)
	if errors.As(err, &fe) {
		off = fe.Offset
	}
	return &fault.Error{Code: fault.CodeBadImage, Op: "restore", Msg: "damaged image", Offset: off, Err: err,
		Remedy: "the image is damaged or was not written by godwit; take a new checkpoint"}
}

// waitPIDsFree checks that no PID or TID of the image is in use. A zombie
// holding one is waited for (an init may reap late), up to the bound.
func waitPIDsFree(ctx context.Context, meta *image.Meta, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	delay := time.Millisecond
	procs := append([]image.Process(nil), meta.Processes...)
	for _, z := range meta.Zombies {
		procs = append(procs, image.Process{PID: z.PID, Threads: []image.Thread{{TID: z.PID}}})
	}
	for _, p := range procs {
		ids := []int{}
		for _, t := range p.Threads {
			ids = append(ids, t.TID)
		}
		for _, tid := range ids {
			for {
				st, err := procfs.ReadStatus(tid)
				if errors.Is(err, os.ErrNotExist) {
					break
				}
				zombie := err == nil && (st.State == 'Z' || st.State == 'X')
				if !zombie || time.Now().After(deadline) {
					who := ""
					if err == nil {
						who = fmt.Sprintf(" by %q (pid %d)", st.Name, st.Tgid)
					}
					return &fault.Error{Code: fault.CodePIDInUse, Op: "restore", PID: p.PID, TID: tid,
						Msg:    "pid " + strconv.Itoa(tid) + " is in use" + who,
						Remedy: "stop the process that holds it, or restore in a new PID namespace"}
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(delay):
				}
				delay = min(delay*2, 50*time.Millisecond)
			}
		}
	}
	return nil
}

// checkTree checks that every process's parent is in the image (the root's
// excepted): each process is recreated by its own parent.
func checkTree(meta *image.Meta) error {
	in := map[int]bool{}
	for _, p := range meta.Processes {
		if p.PID != meta.Root && !in[p.PPID] {
			return &fault.Error{Code: fault.CodeBadImage, Op: "restore", PID: p.PID,
				Msg: fmt.Sprintf("parent %d is not in the image before it", p.PPID)}
		}
		in[p.PID] = true
	}
	for _, z := range meta.Zombies {
		if !in[z.PPID] || in[z.PID] {
			return &fault.Error{Code: fault.CodeBadImage, Op: "restore", PID: z.PID,
				Msg: fmt.Sprintf("zombie's parent %d is not in the image", z.PPID)}
		}
		in[z.PID] = true
	}
	return nil
}
