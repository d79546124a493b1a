package mem

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	gunix "github.com/godwit-dev/godwit/internal/unix"
)

// wpUffd makes a userfaultfd of the test process with async write-protect,
// or skips the test.
func wpUffd(t *testing.T) int {
	t.Helper()
	fd, err := gunix.Userfaultfd(unix.O_CLOEXEC | unix.O_NONBLOCK | gunix.UFFD_USER_MODE_ONLY)
	if err != nil {
		t.Skipf("userfaultfd unavailable: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	api := gunix.UffdioAPI{API: gunix.UFFD_API, Features: wpFeatures}
	if err := gunix.UffdAPI(fd, &api); err != nil {
		t.Skipf("userfaultfd without WP_ASYNC|WP_UNPOPULATED (Linux 6.7): UFFDIO_API: %v", err)
	}
	return fd
}

func registerWP(t *testing.T, fd int, addr uint64, n int) {
	t.Helper()
	reg := gunix.UffdioRegister{Range: gunix.UffdioRange{Start: addr, Len: uint64(n) * PageSize}, Mode: gunix.UFFDIO_REGISTER_MODE_WP}
	if err := gunix.UffdRegister(fd, &reg); err != nil {
		t.Fatalf("UFFDIO_REGISTER: %v", err)
	}
}

func pagesOf(regions []Region, addr uint64, n int) []int {
	var out []int
	for _, r := range regions {
		for a := r.Start; a < r.End; a += PageSize {
			if a >= addr && a < addr+uint64(n)*PageSize {
				out = append(out, int((a-addr)/PageSize))
			}
		}
	}
	return out
}

// ScanWritten reports written pages once, and again after they are written
// again; a range holding an unregistered mapping fails with EPERM, after
// handing out (and protecting) what it found before it.
func TestScanWritten(t *testing.T) {
	fd := wpUffd(t)
	const n = 64
	b, addr := mapPages(t, 2*n)
	registerWP(t, fd, addr, n) // the second half stays unregistered
	p := openSelf(t)

	for _, i := range []int{0, 5, 6, 63} {
		b[i*PageSize] = 1
	}
	got, err := p.ScanWritten(addr, addr+n*PageSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first scan reports every page not yet protected: the written
	// ones, and the empty entries of the page table they share (nothing
	// marks those yet). Later scans report only pages written in between.
	if pages := pagesOf(got, addr, n); !containsInts(pages, []int{0, 5, 6, 63}) {
		t.Fatalf("first scan: written pages %v", pages)
	}
	if got, err = p.ScanWritten(addr, addr+n*PageSize, nil); err != nil || len(got) != 0 {
		t.Fatalf("scan without writes: %v, %v", got, err)
	}
	b[6*PageSize+100] = 2
	b[40*PageSize] = 2
	b[(n+1)*PageSize] = 2 // unregistered
	got, err = p.ScanWritten(addr, addr+2*n*PageSize, nil)
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("scan over an unregistered mapping: %v, want EPERM", err)
	}
	if pages := pagesOf(got, addr, n); !equalInts(pages, []int{6, 40}) {
		t.Errorf("pages found before the failure: %v, want [6 40]", pages)
	}
	if got, err = p.ScanWritten(addr, addr+n*PageSize, nil); err != nil || len(got) != 0 {
		t.Errorf("the pages found before the failure were not protected again: %v, %v", got, err)
	}
}

const wpFeatures = gunix.UFFD_FEATURE_WP_ASYNC | gunix.UFFD_FEATURE_WP_UNPOPULATED

// containsInts reports whether every element of want is in have (sorted).
func containsInts(have, want []int) bool {
	i := 0
	for _, w := range want {
		for i < len(have) && have[i] < w {
			i++
		}
		if i == len(have) || have[i] != w {
			return false
		}
	}
	return true
}
