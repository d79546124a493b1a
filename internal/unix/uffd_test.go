package unix

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newUffd makes a user-mode-only userfaultfd (what every user may have) and
// enables features on it.
func newUffd(t *testing.T, features uint64) int {
	t.Helper()
	fd, err := Userfaultfd(unix.O_CLOEXEC | unix.O_NONBLOCK | UFFD_USER_MODE_ONLY)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("userfaultfd unavailable: %v", err)
	}
	if err != nil {
		t.Fatalf("userfaultfd: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	api := UffdioAPI{API: UFFD_API, Features: features}
	if err := UffdAPI(fd, &api); err != nil {
		if errors.Is(err, unix.EINVAL) {
			t.Skipf("userfaultfd features %q unsupported: %v", UffdFeatureNames(features), err)
		}
		t.Fatalf("UFFDIO_API: %v", err)
	}
	t.Logf("userfaultfd features: %q", UffdFeatureNames(api.Features))
	return fd
}

func mapPages(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func TestUffdMissing(t *testing.T) {
	fd := newUffd(t, 0)
	ps := os.Getpagesize()
	mem := mapPages(t, 4)
	base := addrOf(mem)
	reg := UffdioRegister{Range: UffdioRange{Start: base, Len: uint64(len(mem))}, Mode: UFFDIO_REGISTER_MODE_MISSING}
	if err := UffdRegister(fd, &reg); err != nil {
		t.Fatalf("UFFDIO_REGISTER: %v", err)
	}
	if reg.Ioctls&(1<<(UFFDIO_COPY&0xff)) == 0 {
		t.Fatalf("registered range offers ioctls %#x, without UFFDIO_COPY", reg.Ioctls)
	}

	page := bytes.Repeat([]byte("godwit!\n"), ps/8)
	n, err := UffdCopyFrom(fd, base, page, 0)
	if err != nil || n != int64(ps) {
		t.Fatalf("UFFDIO_COPY: %d, %v", n, err)
	}
	if _, err := UffdCopyFrom(fd, base, page, 0); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second UFFDIO_COPY to the same page: %v, want EEXIST", err)
	}
	z := UffdioZeropage{Range: UffdioRange{Start: base + uint64(ps), Len: uint64(ps)}}
	if err := UffdZeropage(fd, &z); err != nil || z.Zeropage != int64(ps) {
		t.Fatalf("UFFDIO_ZEROPAGE: %d, %v", z.Zeropage, err)
	}
	if !bytes.Equal(mem[:ps], page) || mem[ps] != 0 {
		t.Fatal("copied or zeroed page reads back wrong")
	}

	// A fault on the third page is reported and served.
	done := make(chan byte, 1)
	go func() {
		v := mem[2*ps+100] // the fault happens here, in this goroutine
		done <- v
	}()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 5000); err != nil || n != 1 {
		t.Fatalf("poll userfaultfd: %d, %v", n, err)
	}
	msgs := make([]UffdMsg, 4)
	got, err := ReadUffdMsgs(fd, msgs)
	if err != nil || got != 1 {
		t.Fatalf("read userfaultfd: %d messages, %v", got, err)
	}
	flags, addr, _ := msgs[0].Pagefault()
	if msgs[0].Event != UFFD_EVENT_PAGEFAULT || addr != base+2*uint64(ps) || flags&UFFD_PAGEFAULT_FLAG_WRITE != 0 {
		t.Fatalf("message: event %#x flags %#x address %#x; want a read fault at %#x",
			msgs[0].Event, flags, addr, base+2*uint64(ps))
	}
	page[100] = 42
	if _, err := UffdCopyFrom(fd, addr, page, 0); err != nil {
		t.Fatalf("serve fault: %v", err)
	}
	select {
	case v := <-done:
		if v != 42 {
			t.Fatalf("faulting reader got %d, want 42", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("faulting reader was not woken")
	}

	if err := UffdUnregister(fd, &reg.Range); err != nil {
		t.Fatalf("UFFDIO_UNREGISTER: %v", err)
	}
}

func TestPagemapScanDirtyTracking(t *testing.T) {
	fd := newUffd(t, UFFD_FEATURE_WP_ASYNC|UFFD_FEATURE_WP_UNPOPULATED)
	ps := uint64(os.Getpagesize())
	mem := mapPages(t, 16)
	base := addrOf(mem)
	end := base + uint64(len(mem))
	reg := UffdioRegister{Range: UffdioRange{Start: base, Len: uint64(len(mem))}, Mode: UFFDIO_REGISTER_MODE_WP}
	if err := UffdRegister(fd, &reg); err != nil {
		t.Fatalf("UFFDIO_REGISTER WP: %v", err)
	}
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pagemap.Close()

	scan := func(flags uint64) []PageRegion {
		t.Helper()
		var out []PageRegion
		regions := make([]PageRegion, 8)
		for start := base; start < end; {
			arg := PMScanArg{
				Flags: flags, Start: start, End: end,
				CategoryMask: PAGE_IS_WRITTEN, ReturnMask: PAGE_IS_WRITTEN,
			}
			n, err := PagemapScanRegions(int(pagemap.Fd()), &arg, regions)
			if err != nil {
				if errors.Is(err, unix.ENOTTY) {
					t.Skipf("PAGEMAP_SCAN: requires Linux 6.7: %v", err)
				}
				t.Fatalf("PAGEMAP_SCAN: %v", err)
			}
			out = append(out, regions[:n]...)
			start = arg.WalkEnd
		}
		return out
	}

	first := scan(PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)
	t.Logf("first scan: %d regions", len(first))
	if got := scan(PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC); len(got) != 0 {
		t.Fatalf("scan right after re-protecting: %+v, want nothing written", got)
	}
	mem[5*ps] = 1
	mem[9*ps+17] = 1
	mem[10*ps+4095] = 1
	got := scan(PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)
	want := []PageRegion{
		{Start: base + 5*ps, End: base + 6*ps, Categories: PAGE_IS_WRITTEN},
		{Start: base + 9*ps, End: base + 11*ps, Categories: PAGE_IS_WRITTEN},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("written pages: %+v, want %+v", got, want)
	}
	if got := scan(PM_SCAN_WP_MATCHING); len(got) != 0 {
		t.Fatalf("written pages after re-protecting: %+v, want none", got)
	}

	// An unregistered range makes PM_SCAN_CHECK_WPASYNC fail.
	other := mapPages(t, 1)
	arg := PMScanArg{Flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, Start: addrOf(other), End: addrOf(other) + ps,
		CategoryMask: PAGE_IS_WRITTEN, ReturnMask: PAGE_IS_WRITTEN}
	if _, err := PagemapScanRegions(int(pagemap.Fd()), &arg, make([]PageRegion, 1)); !errors.Is(err, unix.EPERM) {
		t.Fatalf("PM_SCAN_CHECK_WPASYNC on an unregistered mapping: %v, want EPERM", err)
	}
}
