package restore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/procfs"
	"github.com/godwit-dev/godwit/internal/ptrace"
	"github.com/godwit-dev/godwit/internal/stub"
)

const mapFixedNoreplace = 0x100000

type span struct{ start, end uint64 }

// freeGap finds size bytes at or above floor that overlap none of the spans.
func freeGap(spans []span, size, floor uint64) (uint64, bool) {
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	addr := floor
	for _, s := range spans {
		if s.end <= addr {
			continue
		}
		if s.start >= addr+size {
			break
		}
		addr = s.end
	}
	return addr, addr+size <= 0x7fff00000000
}

// mapTrampoline maps, in the root process, the page every injected call
// goes through: `syscall; int3`, then scratch data. Its address is free in
// the layout of every process of the image, so the children forked from the
// root inherit it and keep it until their last call.
func (rs *restorer) mapTrampoline() error {
	cur, err := procfs.ReadMaps(rs.pid)
	if err != nil {
		return rs.fail("read the new process's mappings", err)
	}
	var spans []span
	for _, p := range rs.meta.Processes {
		for _, v := range p.VMAs {
			spans = append(spans, span{v.Start, v.End})
		}
	}
	for _, m := range cur {
		spans = append(spans, span{m.Start, m.End})
	}
	tramp, ok := freeGap(spans, trampSize, 1<<32)
	if !ok {
		return rs.fail("no room for the trampoline page", nil)
	}
	in := &ptrace.Injector{TID: rs.pid, IP: stub.SyscallAddr}
	if _, err := in.Syscall(unix.SYS_MMAP, tramp, trampSize, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|mapFixedNoreplace, ^uint64(0), 0); err != nil {
		return rs.fail("map the trampoline", err)
	}
	if err := rs.mem.Write(tramp, []byte{0x0f, 0x05, 0xcc}); err != nil {
		return rs.fail("write the trampoline", err)
	}
	rs.tramp = tramp
	return nil
}

// buildAddressSpace replaces the stub's mappings with the image's.
func (rs *restorer) buildAddressSpace() error {
	cur, err := procfs.ReadMaps(rs.pid)
	if err != nil {
		return rs.fail("read the new process's mappings", err)
	}
	var spans []span
	for _, p := range rs.meta.Processes {
		for _, v := range p.VMAs {
			spans = append(spans, span{v.Start, v.End})
		}
	}
	for _, m := range cur {
		spans = append(spans, span{m.Start, m.End})
	}

	// 2. Unmap the stub's own mappings but the special ones.
	special := map[string]procfs.Mapping{}
	for _, m := range cur {
		switch m.Path {
		case "[vdso]", "[vvar]", "[vvar_vclock]":
			special[m.Path] = m
			continue
		case "[vsyscall]":
			continue
		}
		if m.Start == rs.tramp {
			continue
		}
		if _, err := rs.call(unix.SYS_MUNMAP, m.Start, m.Len()); err != nil {
			return rs.fail(fmt.Sprintf("unmap the stub's %#x-%#x", m.Start, m.End), err)
		}
	}

	// 3. Move [vvar], [vvar_vclock] and [vdso] to where the image had them,
	// through a free area, since old and new places may overlap.
	if err := rs.moveVdso(special, spans); err != nil {
		return err
	}

	// 4. Map every mapping of the image with its final protection.
	for i := range rs.proc.VMAs {
		v := &rs.proc.VMAs[i]
		if v.Kind == image.VMAVdso || v.Kind == image.VMASysVShm {
			continue // moved above; attached by attachSysV
		}
		if err := rs.mapVMA(v); err != nil {
			return err
		}
	}
	for path, fd := range rs.targetFDs {
		if _, err := rs.call(unix.SYS_CLOSE, uint64(fd)); err != nil {
			return rs.fail("close "+path, err)
		}
	}
	rs.targetFDs = nil
	return nil
}

func (rs *restorer) moveVdso(special map[string]procfs.Mapping, spans []span) error {
	var want []image.VMA
	for _, v := range rs.proc.VMAs {
		if v.Kind == image.VMAVdso {
			want = append(want, v)
		}
	}
	if len(want) == 0 {
		return nil
	}
	var total uint64
	for _, v := range want {
		m, ok := special[v.Name]
		if !ok || m.Len() != v.Len() {
			return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", PID: rs.proc.PID, Addr: v.Start,
				Msg:    fmt.Sprintf("%s of the image (%d bytes) does not match this kernel's", v.Name, v.Len()),
				Remedy: "restore on a machine with the same kernel"}
		}
		total += v.Len()
	}
	for _, m := range special {
		spans = append(spans, span{m.Start, m.End})
	}
	spans = append(spans, span{rs.tramp, rs.tramp + trampSize})
	tmp, ok := freeGap(spans, total, 1<<33)
	if !ok {
		return rs.fail("no room to move [vdso]", nil)
	}
	for _, v := range want {
		m := special[v.Name]
		if _, err := rs.call(unix.SYS_MREMAP, m.Start, m.Len(), m.Len(), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, tmp); err != nil {
			return rs.fail("move "+v.Name, err)
		}
		m.Start, m.End = tmp, tmp+m.Len()
		special[v.Name] = m
		tmp += m.Len()
	}
	for _, v := range want {
		m := special[v.Name]
		if _, err := rs.call(unix.SYS_MREMAP, m.Start, m.Len(), m.Len(), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, v.Start); err != nil {
			return rs.fail("move "+v.Name, err)
		}
	}
	return nil
}

func (rs *restorer) mapVMA(v *image.VMA) error {
	flags := uint64(v.Flags&(unix.MAP_PRIVATE|unix.MAP_SHARED|unix.MAP_GROWSDOWN)) | mapFixedNoreplace
	fd := ^uint64(0)
	var off uint64
	switch v.Kind {
	case image.VMAAnon:
		flags |= unix.MAP_ANONYMOUS
	case image.VMAFile, image.VMASharedFile:
		path := v.Path
		if v.Deleted {
			path = rs.ghosts[v.FileID]
		}
		oflags := unix.O_RDONLY
		if v.Kind == image.VMASharedFile && v.Prot&unix.PROT_WRITE != 0 {
			oflags = unix.O_RDWR
		}
		fdn, err := rs.openFile(path, oflags)
		if err != nil {
			return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", PID: rs.proc.PID, Addr: v.Start, Path: v.Path,
				Msg: "open the mapped file", Err: err, Remedy: "the file must exist at the same path on this machine"}
		}
		fd, off = uint64(fdn), v.Offset
	}
	if _, err := rs.call(unix.SYS_MMAP, v.Start, v.Len(), uint64(v.Prot), flags, fd, off); err != nil {
		return &fault.Error{Code: fault.CodeRestoreFailed, Op: "restore", PID: rs.proc.PID, Addr: v.Start, Path: v.Path,
			Msg: fmt.Sprintf("map %#x-%#x", v.Start, v.End), Err: err}
	}
	return nil
}

// openFile opens path for a mapping, reusing an earlier open of the same file.
func (rs *restorer) openFile(path string, flags int) (int, error) {
	key := fmt.Sprintf("%d:%s", flags, path)
	if fd, ok := rs.targetFDs[key]; ok {
		return fd, nil
	}
	p, err := rs.putString(0, path)
	if err != nil {
		return -1, err
	}
	fd, err := rs.call(unix.SYS_OPENAT, atFDCWD, p, uint64(flags|unix.O_CLOEXEC), 0)
	if err != nil {
		return -1, err
	}
	if rs.targetFDs == nil {
		rs.targetFDs = map[string]int{}
	}
	rs.targetFDs[key] = int(fd)
	return int(fd), nil
}

// atFDCWD is AT_FDCWD as a syscall argument register.
const atFDCWD = uint64(0xffffffffffffff9c)

// writePages streams the image's page records into the processes.
func (rs *tree) writePages(ctx context.Context) error {
	if rs.opts.Pages != nil {
		if err := rs.writeSentPages(ctx); err != nil {
			return err
		}
	}
	zero := make([]byte, image.MaxPagesPerRecord*image.PageSize)
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := rs.pending, error(nil)
		rs.pending = nil
		if rec == nil {
			rec, err = rs.ir.Next()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return badImage(err)
		}
		switch rec.Type {
		case image.TypeEnd:
			continue
		case image.TypePages:
		default:
			return badImage(&image.FormatError{Offset: rs.ir.Offset(), Type: rec.Type, Err: image.ErrOrder})
		}
		end := rec.Addr + uint64(rec.Count)*image.PageSize
		p := rs.byPID[rec.PID]
		var v *image.VMA
		if p != nil {
			v = p.proc.FindVMA(rec.Addr)
		}
		if v == nil || end > v.End || (v.Kind != image.VMAAnon && v.Kind != image.VMAFile) {
			return badImage(&image.FormatError{Offset: rs.ir.Offset(), Type: rec.Type,
				Err: fmt.Errorf("%w: pages %#x-%#x of pid %d are outside every private mapping", image.ErrInconsistent, rec.Addr, end, rec.PID)})
		}
		if v.Kind == image.VMAAnon && rs.opts.Lazy != nil && rs.opts.AnonPages != nil && !p.touchesRseq(rec.Addr, rec.Count) {
			// Filled by the Lazy handler with the rest: written here, a
			// page could bring in a zeroed huge page around it, whose
			// other pages the handler could then no longer fill.
			d := rec.Data
			if rec.Zero {
				d = nil
			}
			if err := rs.opts.AnonPages(rec.PID, rec.Addr, rec.Count, d); err != nil {
				return p.fail("keep pages", err)
			}
			continue
		}
		data := rec.Data
		if rec.Zero {
			data = zero[:rec.Count*image.PageSize]
		}
		if err := p.mem.Write(rec.Addr, data); err != nil {
			return p.fail("write pages", err)
		}
	}
}

// writeSentPages writes the pages sent ahead of the image, clipped to the
// private mappings of each process.
func (rs *tree) writeSentPages(ctx context.Context) error {
	for _, p := range rs.procs {
		if p.proc == nil {
			continue
		}
		rseq := p.rseq
		want := func(addr uint64) bool {
			v := p.proc.FindVMA(addr)
			switch {
			case v == nil:
				return false
			case v.Kind == image.VMAFile:
				return true
			case v.Kind == image.VMAAnon:
				return rs.opts.Lazy == nil || rseq[addr]
			}
			return false
		}
		err := rs.opts.Pages.Pages(p.proc.PID, want, func(addr uint64, data []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			end := addr + uint64(len(data))
			for i := range p.proc.VMAs {
				v := &p.proc.VMAs[i]
				if v.End <= addr || v.Start >= end || (v.Kind != image.VMAAnon && v.Kind != image.VMAFile) {
					continue
				}
				s, e := max(v.Start, addr), min(v.End, end)
				if v.Kind == image.VMAAnon && rs.opts.Lazy != nil {
					// With Lazy, anonymous pages are the Lazy handler's to
					// fill, except those the kernel writes (rseq areas)
					// before the handler runs.
					for a := s; a < e; a += image.PageSize {
						if rseq[a] {
							if err := p.mem.Write(a, data[a-addr:a-addr+image.PageSize]); err != nil {
								return p.fail("write pages sent ahead", err)
							}
						}
					}
					continue
				}
				if err := p.mem.Write(s, data[s-addr:e-addr]); err != nil {
					return p.fail("write pages sent ahead", err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// restoreMM sets the mm fields: code/data/brk/stack/arg/env ranges, auxv
// and the executable link, in one PR_SET_MM_MAP.
func (rs *restorer) restoreMM() error {
	mm := rs.proc.MM
	exe := rs.proc.Exe
	if rs.proc.ExeDeleted {
		exe = rs.ghosts[rs.proc.ExeFile]
	}
	exeFD := uint64(0xffffffff)
	if exe != "" {
		fd, err := rs.openFile(exe, unix.O_RDONLY)
		if err != nil {
			rs.warn("executable %s: %v (the exe link is left as is)", exe, err)
		} else {
			exeFD = uint64(fd)
		}
	}
	auxv := make([]byte, 8*len(mm.Auxv))
	for i, w := range mm.Auxv {
		binary.LittleEndian.PutUint64(auxv[8*i:], w)
	}
	auxvAddr, err := rs.put(512, auxv)
	if err != nil {
		return rs.fail("auxv", err)
	}
	b := make([]byte, 104)
	for i, w := range []uint64{mm.StartCode, mm.EndCode, mm.StartData, mm.EndData, mm.StartBrk, mm.Brk,
		mm.StartStack, mm.ArgStart, mm.ArgEnd, mm.EnvStart, mm.EnvEnd, auxvAddr} {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	binary.LittleEndian.PutUint32(b[96:], uint32(len(auxv)))
	binary.LittleEndian.PutUint32(b[100:], uint32(exeFD))
	addr, err := rs.put(256, b)
	if err != nil {
		return rs.fail("mm map", err)
	}
	_, err = rs.call(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, addr, uint64(len(b)), 0)
	if err != nil && exeFD != 0xffffffff && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EBUSY)) {
		// Without CAP_CHECKPOINT_RESTORE the exe link cannot be set: keep the rest.
		rs.warn("executable link not restored: %v", err)
		binary.LittleEndian.PutUint32(b[100:], 0xffffffff)
		if _, err = rs.put(256, b); err == nil {
			_, err = rs.call(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, addr, uint64(len(b)), 0)
		}
	}
	if err != nil {
		return rs.fail("PR_SET_MM_MAP", err)
	}
	for key, fd := range rs.targetFDs {
		rs.call(unix.SYS_CLOSE, uint64(fd))
		delete(rs.targetFDs, key)
	}
	return nil
}

// touchesRseq tells whether count pages at addr hold an rseq area of the
// process.
func (rs *restorer) touchesRseq(addr uint64, count int) bool {
	for a := range rs.rseq {
		if a >= addr && a < addr+uint64(count)*image.PageSize {
			return true
		}
	}
	return false
}
