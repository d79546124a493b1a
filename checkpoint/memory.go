package checkpoint

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
	"github.com/godwit-dev/godwit/image"
	"github.com/godwit-dev/godwit/internal/mem"
	"github.com/godwit-dev/godwit/internal/procfs"
)

// collectVMAs turns /proc/PID/smaps into image mappings. It changes nothing,
// so it doubles as the up-front check that all memory can be dumped.
func (d *dumper) collectVMAs(pid int) ([]image.VMA, error) {
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeNoProcess, Op: "dump", PID: pid, Msg: "read mappings", Err: err}
	}
	var out []image.VMA
	for _, m := range maps {
		v := image.VMA{Start: m.Start, End: m.End, Offset: m.Offset, Inode: m.Inode,
			Dev: unix.Mkdev(m.Major, m.Minor), VmFlags: m.VmFlags}
		if m.Read {
			v.Prot |= unix.PROT_READ
		}
		if m.Write {
			v.Prot |= unix.PROT_WRITE
		}
		if m.Exec {
			v.Prot |= unix.PROT_EXEC
		}
		if m.Shared {
			v.Flags |= unix.MAP_SHARED
		} else {
			v.Flags |= unix.MAP_PRIVATE
		}
		if m.HasFlag("gd") {
			v.Flags |= unix.MAP_GROWSDOWN
		}
		where := fmt.Sprintf("mapping %#x-%#x %s", m.Start, m.End, m.Path)
		switch {
		case m.Path == "[vsyscall]":
			continue // the kernel provides it everywhere
		case m.Path == "[vdso]" || m.Path == "[vvar]" || m.Path == "[vvar_vclock]":
			v.Kind, v.Name = image.VMAVdso, m.Path
		case m.Path == "/secretmem" || strings.HasPrefix(m.Path, "/secretmem"):
			return nil, &fault.Error{Code: fault.CodeUnreadable, Op: "dump", PID: pid, Addr: m.Start,
				Msg:    where + ": memfd_secret memory cannot be read from outside the process by design",
				Remedy: "the program must release or re-create this memory itself; it cannot be checkpointed"}
		case isSysV(m.Path):
			if err := d.sysvVMA(pid, m, &v); err != nil {
				return nil, err
			}
		case isShmem(m.Path) && !strings.HasPrefix(m.Path, "/SYSV"):
			// Shared anonymous memory or a memfd: its content travels in the
			// image and comes back as one memfd that every mapping shares.
			mf := "/proc/" + strconv.Itoa(pid) + "/map_files/" + strconv.FormatUint(m.Start, 16) + "-" + strconv.FormatUint(m.End, 16)
			id, err := d.blob(mf, m.Path, v.Dev, m.Inode, 0o600)
			if err != nil {
				return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Addr: m.Start,
					Msg: where + ": copy shared memory", Err: err,
					Remedy: "reading /proc/PID/map_files needs CAP_CHECKPOINT_RESTORE or root"}
			}
			d.meta.Files[id-1].Shmem = true
			v.Path, v.Deleted, v.FileID = m.Path, true, id
			v.Kind = image.VMAFile
			if m.Shared {
				v.Kind = image.VMASharedFile
			}
		case m.Shared:
			if m.Path == "" || m.Deleted || !strings.HasPrefix(m.Path, "/") || m.Inode == 0 {
				return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid, Addr: m.Start,
					Msg: where + ": shared anonymous or deleted shared memory is not supported yet"}
			}
			v.Kind, v.Path = image.VMASharedFile, m.Path
		case m.Path == "" || strings.HasPrefix(m.Path, "["):
			v.Kind, v.Name = image.VMAAnon, m.Path
			v.Flags |= unix.MAP_ANONYMOUS
		case strings.HasPrefix(m.Path, "/"):
			if strings.HasPrefix(m.Path, "/memfd:") || strings.HasPrefix(m.Path, "/SYSV") || strings.HasPrefix(m.Path, "/dev/zero") {
				return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid, Addr: m.Start,
					Msg: where + ": memfd, SysV and /dev/zero mappings are not supported yet"}
			}
			v.Kind, v.Path, v.Deleted = image.VMAFile, m.Path, m.Deleted
			if m.Deleted {
				mf := "/proc/" + strconv.Itoa(pid) + "/map_files/" + strconv.FormatUint(m.Start, 16) + "-" + strconv.FormatUint(m.End, 16)
				id, err := d.blob(mf, m.Path, v.Dev, m.Inode, 0o600)
				if err != nil {
					return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: pid, Addr: m.Start,
						Msg: where + ": copy the deleted file", Err: err,
						Remedy: "reading /proc/PID/map_files needs CAP_CHECKPOINT_RESTORE or root"}
				}
				v.FileID = id
			}
		default:
			return nil, &fault.Error{Code: fault.CodeUnsupported, Op: "dump", PID: pid, Addr: m.Start,
				Msg: where + ": unknown kind of mapping"}
		}
		out = append(out, v)
	}
	return out, nil
}

// pageRun is a run of pages read from the process.
type pageRun struct {
	addr  uint64
	count int
	data  []byte // nil: zero pages of a file mapping
	// buf owns the memory data points into, which is not Go memory: it is
	// unmapped once buf is unreachable. Keep the pageRun (or the slice of
	// them) reachable while data is in use, not data alone.
	buf *pageBuf
}

// extent is a stretch of pages of one mapping that travel in the image:
// pages to read, or shared zero pages, known to be zero without reading.
type extent struct {
	addr  uint64
	pages int
	vma   int  // index in the mappings
	file  bool // of a private file mapping
	// keepZero keeps zero pages as zero runs (file mappings, pre-copy)
	keepZero bool
	// eager is a page a post-copy sends in the image (see splitLazy)
	eager bool
	zero  bool // the shared zero page: not read
	off   int  // where its data goes in the buffer (pages read)
}

// Reading is split into chunks of this many pages, handed out to workers.
const chunkPages = 2048 // 8 MiB

// noScan is set once PAGEMAP_SCAN turned out to be missing.
var noScan atomic.Bool

// readDirtyPagesInto reads the pages of every private mapping that must
// travel: present or swapped pages of anonymous memory that are not zero,
// and the pages of private file mappings that differ from the file
// (anonymous copies). It reads into pb, a buffer from reservePages, when
// that is large enough, and into a new one otherwise (pb may be nil).
//
// It is what the process is frozen for, so it is built for speed: the pages
// are found with PAGEMAP_SCAN (or the page map) and read into one buffer,
// which the kernel populates with huge pages (before the freeze when it
// comes from reservePages), with process_vm_readv calls of up to 1024
// ranges, by one worker per CPU (at most 4), which also find the zero
// pages. The runs returned point into that buffer: nothing is copied.
//
// With clip set it reads only the pages inside dirty: the last round of a
// pre-copy. Zero pages and pages of anonymous mappings given back then
// travel as zero runs, so that they replace what an earlier round sent.
// With Options.Lazy (post-copy) the pages of anonymous mappings are left
// out and reported to Lazy.
func (d *dumper) readDirtyPagesInto(m *mem.Process, vmas []image.VMA, pb *pageBuf, dirty []PageRange, clip bool) ([]pageRun, error) {
	exts, total, err := planPages(m, vmas)
	if err != nil {
		return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: m.PID, Msg: "read the page map", Err: err}
	}
	var dropped []pageRun
	if clip {
		dirty = normalize(dirty)
		dropped = droppedRuns(vmas, exts, dirty)
		exts, total = clipExtents(exts, dirty)
	}
	if d.opts.Lazy != nil {
		var lazy []PageRange
		exts, total, lazy = splitLazy(exts, vmas, d.eager)
		if err := d.opts.Lazy(m.PID, lazy); err != nil {
			return nil, err
		}
	}
	var buf []byte
	if pb != nil && len(pb.data) >= total {
		buf = pb.data[:total:total]
	} else if pb, buf, err = newPageBuf(total); err != nil {
		return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: m.PID, Err: err}
	}
	zero := make([]bool, total/mem.PageSize)
	if err := readExtents(m, exts, buf, zero); err != nil {
		return nil, &fault.Error{Code: fault.CodeDumpFailed, Op: "dump", PID: m.PID, Msg: "read memory", Err: err}
	}
	var runs []pageRun
	for _, e := range exts {
		v := &vmas[e.vma]
		n := uint64(e.pages)
		switch {
		case e.zero && e.keepZero:
			runs = append(runs, pageRun{addr: e.addr, count: e.pages})
			v.Pages += n
			d.stats.ZeroPages += n
		case e.zero:
			d.stats.ZeroPages += n
		default:
			first := e.off / mem.PageSize
			runs = appendZeroRuns(runs, e.addr, buf[e.off:e.off+e.pages*mem.PageSize], zero[first:first+e.pages],
				e.keepZero, &v.Pages, &d.stats.ZeroPages)
		}
	}
	for _, r := range dropped {
		for i := range vmas {
			if vmas[i].Start <= r.addr && r.addr < vmas[i].End {
				vmas[i].Pages += uint64(r.count)
			}
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].addr < runs[j].addr })
	for i := range runs {
		runs[i].buf = pb
	}
	runtime.KeepAlive(pb)
	return runs, nil
}

// reservePages prepares, before the process is frozen, the buffer that
// readPagesInto will read pid's pages into: sized from a scan of its page
// tables now (with room for some growth) and populated by the kernel, so that
// the frozen time is not spent on page faults. On virtual machines that is
// most of the cost: memory the guest has not used lately, or has given back
// to the host, is slow to fault in. It returns nil when there is little to
// gain or on any error; readPagesInto then does without.
func reservePages(pid int, vmas []image.VMA) *pageBuf {
	m, err := mem.Open(pid, false)
	if err != nil {
		return nil
	}
	defer m.Close()
	_, total, err := planPages(m, vmas)
	if err != nil || total < 4<<20 {
		return nil
	}
	pb, buf, err := newPageBuf(total + total/8 + 8<<20)
	if err != nil {
		return nil
	}
	prefault(buf[:total])
	return pb
}

// planPages lists the extents of pages to dump, in address order, and the
// bytes needed to read them; each extent's off is set.
func planPages(m *mem.Process, vmas []image.VMA) ([]extent, int, error) {
	var exts []extent
	var regions []mem.Region
	var pm []uint64
	total := 0
	add := func(vma int, file, zero bool, addr uint64, pages int) {
		if k := len(exts) - 1; k >= 0 && exts[k].vma == vma && exts[k].zero == zero &&
			exts[k].addr+uint64(exts[k].pages)*mem.PageSize == addr {
			exts[k].pages += pages
		} else {
			exts = append(exts, extent{addr: addr, pages: pages, vma: vma, file: file, keepZero: file, zero: zero, off: total})
		}
		if !zero {
			total += pages * mem.PageSize
		}
	}
	for i := range vmas {
		v := &vmas[i]
		if v.Kind != image.VMAAnon && v.Kind != image.VMAFile {
			continue
		}
		file := v.Kind == image.VMAFile
		if !noScan.Load() {
			var err error
			regions, err = m.Scan(v.Start, v.End, mem.PagePresent|mem.PageSwapped,
				mem.PagePresent|mem.PageSwapped|mem.PageFile|mem.PagePFNZero, regions[:0])
			if err == nil {
				for _, r := range regions {
					c := r.Categories
					if c&mem.PageSwapped == 0 && file && c&mem.PageFile != 0 {
						continue // the file's own page
					}
					zero := c&mem.PageSwapped == 0 && c&mem.PagePFNZero != 0
					add(i, file, zero, r.Start, int((r.End-r.Start)/mem.PageSize))
				}
				continue
			}
			if !errors.Is(err, mem.ErrNoScan) {
				return nil, 0, err
			}
			noScan.Store(true)
		}
		// No PAGEMAP_SCAN: the page map, 256 MiB of addresses at a time.
		for start := v.Start; start < v.End; {
			end := min(v.End, start+1<<28)
			var err error
			if pm, err = m.Pagemap(start, end, pm); err != nil {
				return nil, 0, err
			}
			for j := 0; j < len(pm); {
				if !wantPage(pm[j], file) {
					j++
					continue
				}
				k := j + 1
				for k < len(pm) && wantPage(pm[k], file) {
					k++
				}
				add(i, file, false, start+uint64(j)*mem.PageSize, k-j)
				j = k
			}
			start = end
		}
	}
	return exts, total, nil
}

// wantPage tells from its page map entry whether a page of a private mapping
// travels: swapped, or present and not the file's own page.
func wantPage(e uint64, file bool) bool {
	if e&mem.PMSwapped != 0 {
		return true
	}
	return e&mem.PMPresent != 0 && (!file || e&mem.PMFileShare == 0)
}

// pageBuf is memory that pages are read into. It is mapped outside the Go
// heap: the Go allocator zeroes recycled memory itself, taking a page fault
// per 4 KiB page where the memory had been given back to the kernel, and page
// faults are what the frozen time must not be spent on. It is unmapped once
// unreachable.
type pageBuf struct {
	mem  []byte // the whole mapping
	data []byte // the part to use, 2 MiB-aligned when large
}

// newPageBuf maps a buffer of n bytes for pages and returns it and its data.
// Nothing is faulted in yet (see mem.Prefault). A large buffer is 2 MiB
// aligned, so that huge pages can back all of it.
func newPageBuf(n int) (*pageBuf, []byte, error) {
	if n == 0 {
		return nil, nil, nil
	}
	const huge = 2 << 20
	size := n
	if n >= huge {
		size += huge
	}
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, nil, fmt.Errorf("map %d bytes for the pages: %w", size, err)
	}
	off := 0
	if n >= huge {
		off = int((huge - uintptr(unsafe.Pointer(&m[0]))%huge) % huge)
	}
	pb := &pageBuf{mem: m, data: m[off : off+n : off+n]}
	runtime.AddCleanup(pb, func(m []byte) { unix.Munmap(m) }, m)
	return pb, pb.data, nil
}

// readChunk is a piece of the reading: ranges to read into buf[off:].
type readChunk struct {
	off    int
	size   int
	ranges []mem.Range
}

// readExtents reads the extents that are not zero into buf, and marks in
// zero the pages that turn out to be zero, with one worker per CPU (at most
// 4), each populating the part of buf it is about to fill.
func readExtents(m *mem.Process, exts []extent, buf []byte, zero []bool) error {
	var chunks []readChunk
	for _, e := range exts {
		if e.zero {
			continue
		}
		for done := 0; done < e.pages; {
			c := len(chunks) - 1
			if c < 0 || chunks[c].size >= chunkPages*mem.PageSize {
				chunks = append(chunks, readChunk{off: e.off + done*mem.PageSize})
				c++
			}
			n := min(e.pages-done, chunkPages-chunks[c].size/mem.PageSize)
			size := n * mem.PageSize
			chunks[c].ranges = append(chunks[c].ranges, mem.Range{Addr: e.addr + uint64(done)*mem.PageSize, Size: size})
			chunks[c].size += size
			done += n
		}
	}
	var next atomic.Int64
	return parallel(min(runtime.GOMAXPROCS(0), 4, len(chunks)), func() error {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(chunks) {
				return nil
			}
			c := &chunks[i]
			dst := buf[c.off : c.off+c.size]
			mem.Prefault(dst)
			if err := m.ReadRanges(dst, c.ranges); err != nil {
				next.Store(int64(len(chunks))) // stop the others
				return err
			}
			first := c.off / mem.PageSize
			for p := range c.size / mem.PageSize {
				zero[first+p] = mem.IsZero(dst[p*mem.PageSize : (p+1)*mem.PageSize])
			}
		}
	})
}

// prefault runs mem.Prefault on buf in chunks, one worker per CPU (at most 4).
func prefault(buf []byte) {
	const chunk = chunkPages * mem.PageSize
	var next atomic.Int64
	parallel(min(runtime.GOMAXPROCS(0), 4, (len(buf)+chunk-1)/chunk), func() error {
		for {
			off := int(next.Add(1)-1) * chunk
			if off >= len(buf) {
				return nil
			}
			mem.Prefault(buf[off:min(len(buf), off+chunk)])
		}
	})
}

// parallel runs work in n goroutines (in this one when n <= 1) and returns
// the first error.
func parallel(n int, work func() error) error {
	if n <= 1 {
		return work()
	}
	errs := make(chan error, n)
	for range n {
		go func() { errs <- work() }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// appendRuns splits buf into runs of data pages and zero pages. Zero pages
// of anonymous memory are dropped (restore gets them for free); those of file
// mappings are kept as zero runs, since the file may hold something else.
func appendRuns(runs []pageRun, addr uint64, buf []byte, keepZero bool, pages, zero *uint64) []pageRun {
	flags := make([]bool, len(buf)/mem.PageSize)
	for i := range flags {
		flags[i] = mem.IsZero(buf[i*mem.PageSize : (i+1)*mem.PageSize])
	}
	return appendZeroRuns(runs, addr, buf, flags, keepZero, pages, zero)
}

// appendZeroRuns is appendRuns with the zero pages of buf already known:
// isZero[i] tells whether page i is zero. Data runs point into buf.
func appendZeroRuns(runs []pageRun, addr uint64, buf []byte, isZero []bool, keepZero bool, pages, zero *uint64) []pageRun {
	n := len(isZero)
	for i := 0; i < n; {
		z := isZero[i]
		j := i + 1
		for j < n && isZero[j] == z {
			j++
		}
		a := addr + uint64(i)*mem.PageSize
		switch {
		case !z:
			runs = append(runs, pageRun{addr: a, count: j - i, data: buf[i*mem.PageSize : j*mem.PageSize : j*mem.PageSize]})
			*pages += uint64(j - i)
		case keepZero:
			runs = append(runs, pageRun{addr: a, count: j - i})
			*pages += uint64(j - i)
			*zero += uint64(j - i)
		default:
			*zero += uint64(j - i)
		}
		i = j
	}
	return runs
}

// isShmem tells the mappings of memory no path names: shared anonymous
// memory (a deleted /dev/zero), memfds and SysV segments.
func isShmem(path string) bool {
	return path == "/dev/zero" || strings.HasPrefix(path, "/memfd:") || strings.HasPrefix(path, "/SYSV")
}
