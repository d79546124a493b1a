package checkpoint

import (
	"runtime"
	"sort"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
)

// PageRange is a run of Pages pages starting at Addr.
type PageRange struct {
	Addr  uint64
	Pages int
}

// End is the address just past the range.
func (r PageRange) End() uint64 { return r.Addr + uint64(r.Pages)*mem.PageSize }

// DirtyFunc tells, for a process of the frozen tree, which of its pages
// were written since its memory was last sent (pre-copy). With tracked
// false the process was not tracked and all its pages are dumped.
type DirtyFunc func(pid int) (dirty []PageRange, tracked bool, err error)

// normalize sorts ranges and merges those that touch.
func normalize(rs []PageRange) []PageRange {
	rs = append([]PageRange(nil), rs...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Addr < rs[j].Addr })
	out := rs[:0]
	for _, r := range rs {
		if r.Pages <= 0 {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k].End() >= r.Addr {
			if e := r.End(); e > out[k].End() {
				out[k].Pages = int((e - out[k].Addr) / mem.PageSize)
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// clipExtents keeps of exts only the pages inside dirty (sorted, merged),
// recomputing every extent's offset; it returns the bytes the kept extents
// need. Every kept extent keeps its zero pages as zero runs, so that they
// replace what an earlier round sent.
func clipExtents(exts []extent, dirty []PageRange) ([]extent, int) {
	var out []extent
	total := 0
	j := 0
	for _, e := range exts {
		eEnd := e.addr + uint64(e.pages)*mem.PageSize
		for j < len(dirty) && dirty[j].End() <= e.addr {
			j++
		}
		for k := j; k < len(dirty) && dirty[k].Addr < eEnd; k++ {
			start, end := max(e.addr, dirty[k].Addr), min(eEnd, dirty[k].End())
			if start >= end {
				continue
			}
			c := e
			c.addr = start
			c.pages = int((end - start) / mem.PageSize)
			c.keepZero = true
			c.off = total
			if !c.zero {
				total += c.pages * mem.PageSize
			}
			out = append(out, c)
		}
	}
	return out, total
}

// droppedRuns lists the dirty pages of anonymous mappings that hold nothing
// now (given back with MADV_DONTNEED, or never touched after a remap): zero
// runs, so that the destination forgets what an earlier round sent there.
// vmas, exts (the present pages) and dirty are sorted; one pass over each.
func droppedRuns(vmas []image.VMA, exts []extent, dirty []PageRange) []pageRun {
	var runs []pageRun
	v, e := 0, 0
	for _, d := range dirty {
		for v < len(vmas) && vmas[v].End <= d.Addr {
			v++
		}
		for w := v; w < len(vmas) && vmas[w].Start < d.End(); w++ {
			if vmas[w].Kind != image.VMAAnon {
				continue
			}
			start, end := max(vmas[w].Start, d.Addr), min(vmas[w].End, d.End())
			for e < len(exts) && exts[e].addr+uint64(exts[e].pages)*mem.PageSize <= start {
				e++
			}
			// Between the present extents from e on, what is left is dropped.
			for k := e; start < end; k++ {
				next := end
				if k < len(exts) && exts[k].addr < end {
					next = max(start, exts[k].addr)
				}
				if next > start {
					runs = append(runs, pageRun{addr: start, count: int((next - start) / mem.PageSize)})
				}
				if k >= len(exts) || exts[k].addr >= end {
					break
				}
				start = max(start, exts[k].addr+uint64(exts[k].pages)*mem.PageSize)
			}
		}
	}
	return runs
}

// ReadDirty reads, from the running process pid, the pages inside dirty
// that an image of it would hold (a pre-copy round): present pages of its
// private mappings that differ from their file, zero runs (data nil) for
// pages that became zero or were given back. fn is called for each run in
// address order; data is only valid during the call. The process is not
// stopped: a page written while it is read is reported dirty again by the
// next round.
func ReadDirty(pid int, dirty []PageRange, fn func(addr uint64, count int, data []byte) error) (*Stats, error) {
	d := &dumper{pid: pid, blobIDs: map[[2]uint64]int{}}
	vmas, err := d.collectVMAs(pid)
	if err != nil {
		return nil, err
	}
	m, err := mem.Open(pid, false)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeNoProcess, Op: "read pages", PID: pid, Err: err}
	}
	defer m.Close()
	runs, err := d.readDirtyPagesInto(m, vmas, nil, dirty, true)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if r.data != nil {
			d.stats.Pages += uint64(r.count)
		}
		if err := fn(r.addr, r.count, r.data); err != nil {
			return nil, err
		}
	}
	runtime.KeepAlive(runs)
	return &d.stats, nil
}

// Tree lists pid and its descendants, parents first, as a dump would find
// them now.
func Tree(pid int) ([]int, error) {
	d := &dumper{pid: pid}
	return d.discover(nil)
}

// splitLazy takes out of exts the pages of anonymous mappings, which a
// post-copy leaves behind to be fetched on demand, and returns them as
// ranges, with the remaining extents and the bytes they need.
func splitLazy(exts []extent, vmas []image.VMA, eager map[uint64]bool) ([]extent, int, []PageRange) {
	var keep []extent
	var lazy []PageRange
	total := 0
	// Pages in eager (rseq areas, which the kernel writes as soon as a
	// thread runs) travel in the image: an extent holding one is split.
	var split []extent
	for _, e := range exts {
		if vmas[e.vma].Kind != image.VMAAnon || e.zero {
			split = append(split, e)
			continue
		}
		start := 0
		for i := 0; i < e.pages; i++ {
			if !eager[e.addr+uint64(i)*mem.PageSize] {
				continue
			}
			if i > start {
				split = append(split, sub(e, start, i))
			}
			one := sub(e, i, i+1)
			one.keepZero = true
			one.eager = true
			split = append(split, one)
			start = i + 1
		}
		if start < e.pages {
			split = append(split, sub(e, start, e.pages))
		}
	}
	for _, e := range split {
		// Zero pages kept as zero runs (the last round of a pre-copy)
		// stay in the image: they replace what a round sent.
		if vmas[e.vma].Kind == image.VMAAnon && !e.eager && !(e.zero && e.keepZero) {
			if !e.zero {
				lazy = append(lazy, PageRange{Addr: e.addr, Pages: e.pages})
			}
			continue
		}
		e.off = total
		if !e.zero {
			total += e.pages * mem.PageSize
		}
		keep = append(keep, e)
	}
	return keep, total, normalize(lazy)
}

// sub is the part [from, to) of extent e's pages.
func sub(e extent, from, to int) extent {
	e.addr += uint64(from) * mem.PageSize
	if !e.zero {
		e.off += from * mem.PageSize
	}
	e.pages = to - from
	return e
}
