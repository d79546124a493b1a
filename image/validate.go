package image

import (
	"fmt"
	"path/filepath"
	"sort"
)

// Limits on what an image may describe. They bound the work and memory a
// hostile image can make a restore spend.
const (
	MaxProcesses = 1 << 14
	MaxThreads   = 1 << 14
	MaxVMAs      = 1 << 16
	MaxFDs       = 1 << 20
	MaxPID       = 1 << 22 // PID_MAX_LIMIT
	MaxAddr      = 0x00fffffffffff000
	RegsSize     = 27 * 8 // struct user_regs_struct on x86_64
	SiginfoSize  = 128
)

func inconsistent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInconsistent, fmt.Sprintf(format, args...))
}

// Validate checks that the metadata is self-consistent and within limits.
// It does not check that it fits this machine; restore does that.
func (m *Meta) Validate() error {
	if m.Arch != "x86_64" {
		return inconsistent("architecture %q (this godwit restores x86_64)", m.Arch)
	}
	if m.XstateSize < 512 || m.XstateSize > 1<<16 {
		return inconsistent("xstate size %d", m.XstateSize)
	}
	if len(m.Processes) == 0 || len(m.Processes) > MaxProcesses {
		return inconsistent("%d processes", len(m.Processes))
	}
	blobs := map[int]bool{}
	for _, f := range m.Files {
		if f.ID <= 0 || blobs[f.ID] {
			return inconsistent("file blob id %d", f.ID)
		}
		if f.Size < 0 || f.Size > 1<<40 {
			return inconsistent("file blob %d size %d", f.ID, f.Size)
		}
		// Restore recreates the file at this path: a relative one would land
		// in whatever directory restore runs in.
		if !filepath.IsAbs(f.Path) {
			return inconsistent("file blob %d: path %q is not absolute", f.ID, f.Path)
		}
		blobs[f.ID] = true
	}
	ids := map[int]bool{}
	threads := 0
	root := false
	for i := range m.Processes {
		p := &m.Processes[i]
		if p.PID == m.Root {
			root = true
		}
		threads += len(p.Threads)
		if threads > MaxThreads {
			return inconsistent("more than %d threads", MaxThreads)
		}
		if err := p.validate(ids, blobs, m.XstateSize); err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
	}
	if !root {
		return inconsistent("root pid %d is not among the processes", m.Root)
	}
	if err := m.validateShared(); err != nil {
		return err
	}
	if len(m.Zombies) > MaxProcesses {
		return inconsistent("%d zombies", len(m.Zombies))
	}
	for _, z := range m.Zombies {
		if !validID(z.PID) || ids[z.PID] {
			return inconsistent("zombie pid %d invalid or repeated", z.PID)
		}
		ids[z.PID] = true
		if z.ExitSignal < 0 || z.ExitSignal > 64 {
			return inconsistent("zombie %d: exit signal %d", z.PID, z.ExitSignal)
		}
	}
	// A descriptor shared with another process names one listed earlier.
	fdsOf := map[int]map[int]bool{}
	for i := range m.Processes {
		p := &m.Processes[i]
		if p.ExitSignal < 0 || p.ExitSignal > 64 {
			return inconsistent("process %d: exit signal %d", p.PID, p.ExitSignal)
		}
		for _, f := range p.FDs {
			if f.Inherit != nil && (f.Inherit.PID == p.PID || !fdsOf[f.Inherit.PID][f.Inherit.FD]) {
				return inconsistent("process %d fd %d: shares with fd %d of pid %d, which is not before it",
					p.PID, f.FD, f.Inherit.FD, f.Inherit.PID)
			}
		}
		fdsOf[p.PID] = map[int]bool{}
		for _, f := range p.FDs {
			fdsOf[p.PID][f.FD] = true
		}
	}
	return nil
}

func validID(id int) bool { return id > 0 && id < MaxPID }

func (p *Process) validate(ids, blobs map[int]bool, xsize int) error {
	if !validID(p.PID) {
		return inconsistent("pid %d out of range", p.PID)
	}
	if len(p.Threads) == 0 || p.Threads[0].TID != p.PID {
		return inconsistent("the first thread must be the leader")
	}
	for _, t := range p.Threads {
		if !validID(t.TID) || ids[t.TID] {
			return inconsistent("tid %d invalid or repeated", t.TID)
		}
		ids[t.TID] = true
		if len(t.Regs) != RegsSize {
			return inconsistent("tid %d: %d bytes of registers, want %d", t.TID, len(t.Regs), RegsSize)
		}
		if len(t.Xstate) != xsize {
			return inconsistent("tid %d: %d bytes of xstate, want %d", t.TID, len(t.Xstate), xsize)
		}
		for _, s := range t.Pending {
			if len(s) != SiginfoSize {
				return inconsistent("tid %d: siginfo of %d bytes", t.TID, len(s))
			}
		}
		if t.Rseq != nil && (t.Rseq.Size < 32 || t.Rseq.Size > 4096) {
			return inconsistent("tid %d: rseq size %d", t.TID, t.Rseq.Size)
		}
	}
	for _, s := range p.Pending {
		if len(s) != SiginfoSize {
			return inconsistent("siginfo of %d bytes", len(s))
		}
	}
	for _, a := range p.SigActions {
		if a.Signal < 1 || a.Signal > 64 {
			return inconsistent("sigaction for signal %d", a.Signal)
		}
	}
	for _, r := range p.Rlimits {
		if r.Resource < 0 || r.Resource > 15 {
			return inconsistent("rlimit resource %d", r.Resource)
		}
	}
	if len(p.MM.Auxv) > 1024 || len(p.MM.Auxv)%2 != 0 {
		return inconsistent("auxv of %d words", len(p.MM.Auxv))
	}
	if p.ExeDeleted && !blobs[p.ExeFile] {
		return inconsistent("deleted executable without content")
	}
	if len(p.VMAs) > MaxVMAs {
		return inconsistent("%d mappings", len(p.VMAs))
	}
	if !sort.SliceIsSorted(p.VMAs, func(i, j int) bool { return p.VMAs[i].Start < p.VMAs[j].Start }) {
		return inconsistent("mappings not sorted")
	}
	var prevEnd uint64
	for _, v := range p.VMAs {
		if v.Start%PageSize != 0 || v.End%PageSize != 0 || v.Start >= v.End || v.End > MaxAddr {
			return inconsistent("mapping %#x-%#x", v.Start, v.End)
		}
		if v.Start < prevEnd {
			return inconsistent("mapping %#x-%#x overlaps the one before", v.Start, v.End)
		}
		prevEnd = v.End
		if v.Pages > v.Len()/PageSize {
			return inconsistent("mapping %#x-%#x claims %d pages", v.Start, v.End, v.Pages)
		}
		switch v.Kind {
		case VMAAnon, VMAVdso, VMASysVShm: // a SysV attachment: see validateShared
		case VMAFile, VMASharedFile:
			if !filepath.IsAbs(v.Path) {
				return inconsistent("mapping %#x-%#x: file path %q is not absolute", v.Start, v.End, v.Path)
			}
			if v.Deleted && !blobs[v.FileID] {
				return inconsistent("mapping %#x-%#x: deleted file without content", v.Start, v.End)
			}
		default:
			return inconsistent("mapping %#x-%#x: unknown kind %q", v.Start, v.End, v.Kind)
		}
	}
	fds := map[int]bool{}
	for _, f := range p.FDs {
		if f.FD < 0 || f.FD >= MaxFDs || fds[f.FD] {
			return inconsistent("fd %d invalid or repeated", f.FD)
		}
		fds[f.FD] = true
		switch f.Kind {
		case FDFile, FDDir, FDPath, FDChr, FDTTY: // a terminal: see validateShared
		case FDObject:
			if len(f.Object) == 0 {
				return inconsistent("fd %d: object without a description", f.FD)
			}
		default:
			return inconsistent("fd %d: unknown kind %q", f.FD, f.Kind)
		}
		if f.Kind != FDObject && !filepath.IsAbs(f.Path) {
			return inconsistent("fd %d: path %q is not absolute", f.FD, f.Path)
		}
		if f.Deleted && !blobs[f.FileID] {
			return inconsistent("fd %d: deleted file without content", f.FD)
		}
		if f.Pos < 0 {
			return inconsistent("fd %d: offset %d", f.FD, f.Pos)
		}
	}
	for _, f := range p.FDs {
		if f.SameAs >= 0 && (!fds[f.SameAs] || f.SameAs >= f.FD) {
			return inconsistent("fd %d: shares with fd %d", f.FD, f.SameAs)
		}
	}
	return nil
}

// FindVMA returns the mapping of p that contains addr, or nil.
func (p *Process) FindVMA(addr uint64) *VMA {
	i := sort.Search(len(p.VMAs), func(i int) bool { return p.VMAs[i].End > addr })
	if i < len(p.VMAs) && p.VMAs[i].Start <= addr {
		return &p.VMAs[i]
	}
	return nil
}

// Process returns the process with the given pid, or nil.
func (m *Meta) Process(pid int) *Process {
	for i := range m.Processes {
		if m.Processes[i].PID == pid {
			return &m.Processes[i]
		}
	}
	return nil
}

// RseqPages returns the pages holding the rseq areas of p's threads. The
// kernel writes there when a thread returns to user space, so a restore that
// fills memory lazily must fill these pages first.
func (p *Process) RseqPages() map[uint64]bool {
	out := map[uint64]bool{}
	for _, t := range p.Threads {
		if t.Rseq != nil && t.Rseq.Addr != 0 {
			out[t.Rseq.Addr&^(PageSize-1)] = true
			out[(t.Rseq.Addr+uint64(max(t.Rseq.Size, 1))-1)&^(PageSize-1)] = true
		}
	}
	return out
}
