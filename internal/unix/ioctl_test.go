package unix

import "testing"

// TestIoctlNumbers compares the encoded requests with the values of the
// kernel headers' macros.
func TestIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint
	}{
		{"PAGEMAP_SCAN", PAGEMAP_SCAN, 0xc0606610},
		{"UFFDIO_API", UFFDIO_API, 0xc018aa3f},
		{"UFFDIO_REGISTER", UFFDIO_REGISTER, 0xc020aa00},
		{"UFFDIO_UNREGISTER", UFFDIO_UNREGISTER, 0x8010aa01},
		{"UFFDIO_WAKE", UFFDIO_WAKE, 0x8010aa02},
		{"UFFDIO_COPY", UFFDIO_COPY, 0xc028aa03},
		{"UFFDIO_ZEROPAGE", UFFDIO_ZEROPAGE, 0xc020aa04},
		{"UFFDIO_MOVE", UFFDIO_MOVE, 0xc028aa05},
		{"UFFDIO_WRITEPROTECT", UFFDIO_WRITEPROTECT, 0xc018aa06},
		{"UFFDIO_CONTINUE", UFFDIO_CONTINUE, 0xc020aa07},
		{"USERFAULTFD_IOC_NEW", USERFAULTFD_IOC_NEW, 0xaa00},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestUffdFeatureNames(t *testing.T) {
	got := UffdFeatureNames(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MISSING_SHMEM | 1<<40)
	want := []string{"MISSING_SHMEM", "WP_ASYNC", "bit40"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}
