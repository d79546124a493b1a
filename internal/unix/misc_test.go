package unix

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestKernelPrctlMMMapSize(t *testing.T) {
	n, err := KernelPrctlMMMapSize()
	if err != nil {
		t.Fatalf("PR_SET_MM_MAP_SIZE: %v", err)
	}
	if n != PrctlMMMapSize {
		t.Fatalf("kernel's struct prctl_mm_map is %d bytes, ours %d", n, PrctlMMMapSize)
	}
}

func TestSeccompUserNotif(t *testing.T) {
	if err := SeccompActionAvail(unix.SECCOMP_RET_USER_NOTIF); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			t.Skipf("no seccomp user notification: %v", err)
		}
		t.Fatalf("SECCOMP_GET_ACTION_AVAIL: %v", err)
	}
	if err := SeccompActionAvail(0x12345678); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("unknown action: %v, want EOPNOTSUPP", err)
	}
	s, err := SeccompGetNotifSizes()
	if err != nil {
		t.Fatalf("SECCOMP_GET_NOTIF_SIZES: %v", err)
	}
	// struct seccomp_data is 64 bytes; seccomp_notif 80, seccomp_notif_resp 24.
	if s.Data != 64 || s.Notif < 80 || s.NotifResp < 24 {
		t.Fatalf("notif sizes %+v", s)
	}
}
