package mem

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Page categories of Scan (PAGE_IS_* of PAGEMAP_SCAN, linux/fs.h).
const (
	PageWritten = 1 << 1 // written since write-protected (uffd-wp async)
	PageFile    = 1 << 2 // a page of a file (or shared anonymous), not a private copy
	PagePresent = 1 << 3
	PageSwapped = 1 << 4 // swapped out, or another non-present entry (migration, marker)
	PagePFNZero = 1 << 5 // the shared zero page
	PageHuge    = 1 << 6
)

// ErrNoScan means the kernel has no PAGEMAP_SCAN (it came in Linux 6.7):
// use Pagemap instead.
var ErrNoScan = errors.New("the kernel has no PAGEMAP_SCAN")

// Region is a run of pages of the same categories, [Start, End).
type Region struct {
	Start, End uint64
	Categories uint64
}

// pmScanArg is struct pm_scan_arg.
type pmScanArg struct {
	size, flags, start, end, walkEnd, vec, vecLen, maxPages uint64
	categoryInverted, categoryMask, categoryAnyofMask       uint64
	returnMask                                              uint64
}

// pagemapScan is PAGEMAP_SCAN, _IOWR('f', 16, struct pm_scan_arg).
const pagemapScan = 3<<30 | uint64(unsafe.Sizeof(pmScanArg{}))<<16 | 'f'<<8 | 16

// Scan appends to out the regions of [start, end) whose pages are in any of
// the categories anyOf, split wherever their categories among report change.
// The kernel walks only the page tables that exist, so a sparse mapping costs
// little however large it is. It returns ErrNoScan on kernels without
// PAGEMAP_SCAN.
func (p *Process) Scan(start, end, anyOf, report uint64, out []Region) ([]Region, error) {
	return p.scan(start, end, 0, anyOf, report, out)
}

// ScanWritten appends to out the regions of [start, end) written since they
// were last write-protected, and write-protects them again, atomically with
// the report (PAGEMAP_SCAN with PM_SCAN_WP_MATCHING): a page written after
// its region was reported is reported again by the next call. Every mapping
// in the range must be registered with a userfaultfd in async write-protect
// mode (UFFD_FEATURE_WP_ASYNC, see Tracker): otherwise it fails with an
// error wrapping EPERM (PM_SCAN_CHECK_WPASYNC) instead of skipping the
// mapping. The regions found before a failure are still appended to out:
// they were write-protected, so they would not be reported again.
//
// A page written to is reported whether or not it is present: a page given
// back with MADV_DONTNEED after it was written is reported, and reads as
// zero.
func (p *Process) ScanWritten(start, end uint64, out []Region) ([]Region, error) {
	return p.scan(start, end, pmScanWPMatching|pmScanCheckWPAsync, PageWritten, PageWritten, out)
}

// PAGEMAP_SCAN flags (linux/fs.h).
const (
	pmScanWPMatching   = 1 << 0
	pmScanCheckWPAsync = 1 << 1
)

func (p *Process) scan(start, end, flags, anyOf, report uint64, out []Region) ([]Region, error) {
	var vec [512]Region
	for start < end {
		// The kernel copies out what it found even when it fails half-way
		// (PM_SCAN_CHECK_WPASYNC meeting an unregistered mapping), but then
		// returns no count: the entries it wrote are the non-empty ones.
		clear(vec[:])
		arg := pmScanArg{
			flags: flags, start: start, end: end,
			vec: uint64(uintptr(unsafe.Pointer(&vec[0]))), vecLen: uint64(len(vec)),
			categoryAnyofMask: anyOf, returnMask: report,
		}
		arg.size = uint64(unsafe.Sizeof(arg))
		n, _, errno := unix.Syscall(unix.SYS_IOCTL, p.pagemap.Fd(), uintptr(pagemapScan), uintptr(unsafe.Pointer(&arg)))
		runtime.KeepAlive(&vec)
		if errno != 0 {
			for _, r := range vec {
				if r.End == 0 {
					break
				}
				out = append(out, r)
			}
			if errno == unix.ENOTTY || (errno == unix.EINVAL && flags == 0) {
				return out, fmt.Errorf("pid %d: %w (%v)", p.PID, ErrNoScan, errno)
			}
			return out, fmt.Errorf("pid %d: scan the page map at %#x-%#x: %w", p.PID, start, end, errno)
		}
		out = append(out, vec[:n]...)
		if arg.walkEnd <= start || arg.walkEnd > end {
			return out, fmt.Errorf("pid %d: scan the page map at %#x: walk ended at %#x", p.PID, start, arg.walkEnd)
		}
		start = arg.walkEnd
	}
	return out, nil
}

// Range is size bytes of the process's memory at Addr.
type Range struct {
	Addr uint64
	Size int
}

// maxIovecs is IOV_MAX: the most iovecs one process_vm_readv takes.
const maxIovecs = 1024

// ReadRanges fills buf with the bytes of ranges, one after the other; buf
// must be exactly as long as their total. Each process_vm_readv reads up to
// 1024 ranges into one local iovec; what it cannot read is read through
// /proc/PID/mem (see Read). It may be called from several goroutines at once.
func (p *Process) ReadRanges(buf []byte, ranges []Range) error {
	total := 0
	for _, r := range ranges {
		total += r.Size
	}
	if total != len(buf) {
		return fmt.Errorf("pid %d: read %d bytes of memory into %d", p.PID, total, len(buf))
	}
	remote := make([]unix.RemoteIovec, 0, min(len(ranges), maxIovecs))
	local := make([]unix.Iovec, 1)
	i, off, pos := 0, 0, 0 // next range, offset in it, offset in buf
	for i < len(ranges) {
		if ranges[i].Size == off {
			i, off = i+1, 0
			continue
		}
		remote = remote[:0]
		want := 0
		for j := i; j < len(ranges) && len(remote) < maxIovecs; j++ {
			r := unix.RemoteIovec{Base: uintptr(ranges[j].Addr), Len: ranges[j].Size}
			if j == i {
				r.Base += uintptr(off)
				r.Len -= off
			}
			remote = append(remote, r)
			want += r.Len
		}
		if want == 0 {
			break // only empty ranges are left
		}
		local[0].Base = &buf[pos]
		local[0].SetLen(want)
		n, err := unix.ProcessVMReadv(p.PID, local, remote, 0)
		if err != nil || n < 0 {
			n = 0
		}
		done := n == want
		pos += n
		for n > 0 {
			step := min(n, ranges[i].Size-off)
			n -= step
			if off += step; off == ranges[i].Size {
				i, off = i+1, 0
			}
		}
		if done {
			continue
		}
		// The call stopped inside range i, or failed at its start (PROT_NONE
		// pages, for one): read the rest of it the slow way, then go on.
		rest := ranges[i].Size - off
		if err := p.Read(ranges[i].Addr+uint64(off), buf[pos:pos+rest]); err != nil {
			return err
		}
		pos += rest
		i, off = i+1, 0
	}
	return nil
}

// hugePage is the size of a transparent huge page on x86-64.
const hugePage = 2 << 20

// Prefault makes the pages of buf present before something is copied into
// it, with transparent huge pages where the kernel allows (for the 2 MiB-aligned
// part of buf). A copy into memory that
// is not present yet takes a page fault for each 4 KiB page, which costs
// 2-20 µs on a virtual machine; the kernel populates a range for a fraction
// of that. It is only a hint: on failure (an old kernel) nothing changes.
func Prefault(buf []byte) {
	start := (uintptr(unsafe.Pointer(unsafe.SliceData(buf))) + PageSize - 1) &^ (PageSize - 1)
	end := (uintptr(unsafe.Pointer(unsafe.SliceData(buf))) + uintptr(len(buf))) &^ (PageSize - 1)
	if len(buf) == 0 || end <= start {
		return
	}
	if hs, he := (start+hugePage-1)&^(hugePage-1), end&^(hugePage-1); he > hs {
		madvise(hs, he-hs, unix.MADV_HUGEPAGE)
	}
	madvise(start, end-start, unix.MADV_POPULATE_WRITE)
	runtime.KeepAlive(buf)
}

func madvise(addr, size uintptr, advice int) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, size, uintptr(advice))
	if errno != 0 {
		return errno
	}
	return nil
}

// uint64Bytes returns the memory of s as bytes.
func uint64Bytes(s []uint64) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 8*len(s))
}
