package mem

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapPages maps n private anonymous pages in the test process.
func mapPages(t *testing.T, n int) ([]byte, uint64) {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b, uint64(uintptr(unsafe.Pointer(&b[0])))
}

func openSelf(t *testing.T) *Process {
	t.Helper()
	p, err := Open(os.Getpid(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestScanAndPagemap(t *testing.T) {
	b, addr := mapPages(t, 32)
	for _, i := range []int{0, 1, 2, 10, 11, 31} {
		b[i*PageSize] = 1
	}
	p := openSelf(t)

	pm, err := p.Pagemap(addr, addr+32*PageSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	var present []int
	for i, e := range pm {
		if e&PMPresent != 0 {
			present = append(present, i)
		}
	}
	if want := []int{0, 1, 2, 10, 11, 31}; !equalInts(present, want) {
		t.Errorf("page map: present pages %v, want %v", present, want)
	}

	regions, err := p.Scan(addr, addr+32*PageSize, PagePresent|PageSwapped, PagePresent|PageSwapped|PageFile, nil)
	if errors.Is(err, ErrNoScan) {
		t.Skipf("no PAGEMAP_SCAN: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]int{{0, 3}, {10, 12}, {31, 32}}
	if len(regions) != len(want) {
		t.Fatalf("regions %+v, want pages %v", regions, want)
	}
	for i, r := range regions {
		if r.Start != addr+uint64(want[i][0])*PageSize || r.End != addr+uint64(want[i][1])*PageSize || r.Categories != PagePresent {
			t.Errorf("region %d: %#x-%#x categories %#x, want pages %v present", i, r.Start-addr, r.End-addr, r.Categories, want[i])
		}
	}
}

// A scan that fills the kernel's region buffer more than once goes on
// where the walk ended.
func TestScanManyRegions(t *testing.T) {
	const n = 3000
	b, addr := mapPages(t, n)
	for i := 0; i < n; i += 2 {
		b[i*PageSize] = 1
	}
	p := openSelf(t)
	regions, err := p.Scan(addr, addr+n*PageSize, PagePresent, PagePresent, nil)
	if errors.Is(err, ErrNoScan) {
		t.Skipf("no PAGEMAP_SCAN: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(regions) != n/2 {
		t.Fatalf("%d regions, want %d", len(regions), n/2)
	}
	for i, r := range regions {
		if r.Start != addr+uint64(2*i)*PageSize || r.End != r.Start+PageSize {
			t.Fatalf("region %d: %#x-%#x", i, r.Start-addr, r.End-addr)
		}
	}
}

func TestReadRanges(t *testing.T) {
	b, addr := mapPages(t, 16)
	for i := range b {
		b[i] = byte(i*7 + i/PageSize)
	}
	snapshot := bytes.Clone(b)
	// process_vm_readv cannot read a PROT_NONE page: ReadRanges must fall
	// back to /proc/PID/mem for it, and go on with process_vm_readv after.
	if err := unix.Mprotect(b[5*PageSize:6*PageSize], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	page := func(i int) uint64 { return addr + uint64(i)*PageSize }
	ranges := []Range{
		{page(0), 2 * PageSize},
		{page(4), 3 * PageSize}, // holds the PROT_NONE page
		{page(9), 0},
		{page(9), 100},
		{page(12), 4*PageSize - 100},
	}
	var want []byte
	for _, r := range ranges {
		off := int(r.Addr - addr)
		want = append(want, snapshot[off:off+r.Size]...)
	}
	p := openSelf(t)
	got := make([]byte, len(want))
	if err := p.ReadRanges(got, ranges); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("ReadRanges read other bytes than the memory holds")
	}
	if err := p.ReadRanges(got[1:], ranges); err == nil {
		t.Error("ReadRanges into a buffer of the wrong size: no error")
	}
	if err := p.ReadRanges(nil, []Range{{page(0), 0}}); err != nil {
		t.Errorf("ReadRanges of nothing: %v", err)
	}
}

// More ranges than one process_vm_readv takes.
func TestReadRangesMany(t *testing.T) {
	const n = 2500
	b, addr := mapPages(t, n)
	for i := range n {
		b[i*PageSize+1] = byte(i)
	}
	var ranges []Range
	var want []byte
	for i := 0; i < n; i += 2 {
		ranges = append(ranges, Range{addr + uint64(i)*PageSize, PageSize})
		want = append(want, b[i*PageSize:(i+1)*PageSize]...)
	}
	got := make([]byte, len(want))
	if err := openSelf(t).ReadRanges(got, ranges); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("ReadRanges read other bytes than the memory holds")
	}
}

func TestPrefault(t *testing.T) {
	const n = 1024 // 4 MiB: holds an aligned 2 MiB part
	b, addr := mapPages(t, n)
	Prefault(b[100:]) // an unaligned start is rounded up to a page
	pm, err := openSelf(t).Pagemap(addr, addr+n*PageSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pm[0]&PMPresent != 0 {
		t.Error("the page holding the unaligned start was faulted in")
	}
	for i := 1; i < n; i++ {
		if pm[i]&PMPresent == 0 {
			t.Fatalf("page %d is not present after Prefault", i)
		}
	}
	Prefault(nil)
	Prefault(b[:10])
}

func TestIsZero(t *testing.T) {
	b := make([]byte, PageSize)
	if !IsZero(b) {
		t.Error("a zero page is not zero")
	}
	for _, i := range []int{0, 63, 64, 4000, PageSize - 1} {
		b[i] = 1
		if IsZero(b) {
			t.Errorf("a page with byte %d set is zero", i)
		}
		b[i] = 0
	}
	if !IsZero(b[:13]) || IsZero([]byte{0, 0, 1}) {
		t.Error("IsZero of a short slice is wrong")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWrite(t *testing.T) {
	b, addr := mapPages(t, 8)
	// Page 3 is read-only and page 5 PROT_NONE: process_vm_writev fails
	// there and /proc/PID/mem must take over (the test process may write
	// its own memory that way, as a tracer may a tracee's).
	if err := unix.Mprotect(b[3*PageSize:4*PageSize], unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mprotect(b[5*PageSize:6*PageSize], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	p, err := Open(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	data := make([]byte, 6*PageSize)
	for i := range data {
		data[i] = byte(i%251 + 1)
	}
	if err := p.Write(addr+PageSize+10, data); err != nil {
		t.Fatal(err)
	}
	unix.Mprotect(b, unix.PROT_READ)
	if !bytes.Equal(b[PageSize+10:PageSize+10+len(data)], data) || b[PageSize+9] != 0 || b[PageSize+10+len(data)] != 0 {
		t.Error("Write wrote other bytes than it was given, or elsewhere")
	}
}
