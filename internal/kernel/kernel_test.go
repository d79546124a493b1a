package kernel

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/fault"
)

func TestProbesAreDescribed(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Probes() {
		if p.Name == "" || p.UsedFor == "" || p.Disables == "" || p.MinKernel == "" || p.Run == nil {
			t.Errorf("probe %q is not fully described: %+v", p.Name, p)
		}
		if seen[p.Name] {
			t.Errorf("two probes named %q", p.Name)
		}
		seen[p.Name] = true
	}
}

func TestCheck(t *testing.T) {
	for _, r := range Check() {
		t.Logf("%-30s %-8s %s %v", r.Name, r.Status, r.Detail, r.Err)
		switch r.Status {
		case StatusOK:
			if r.Err != nil {
				t.Errorf("%s: ok with error %v", r.Name, r.Err)
			}
		case StatusFailed:
			t.Errorf("%s: probe failed: %v", r.Name, r.Err)
		default:
			if r.Err == nil {
				t.Errorf("%s: %s without error", r.Name, r.Status)
			}
		}
	}
}

// TestMachine checks what KERNEL-NOTES records for the development
// machines (Linux 6.18, root); it skips elsewhere.
func TestMachine(t *testing.T) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(unix.ByteSliceToString(uts.Release[:]), "6.18") || unix.Geteuid() != 0 {
		t.Skip("expectations are for root on Linux 6.18")
	}
	for _, name := range []string{Ptrace, Clone3SetTID, PidfdOpen, PidfdGetfd, RseqConfig, Xstate,
		ProcessVMReadv, SetMMMap, TimerRestoreIDs, CheckpointCap, PagemapScan, Userfaultfd, UffdWPAsync,
		MemfdSecret, Openat2, MountAPI, IDMappedMounts, SeccompUserNotify, TimeNamespace} {
		if r, _ := Run(name); !r.OK() {
			t.Errorf("%s: %s: %v", name, r.Status, r.Err)
		}
	}
	if r, _ := Run(SoftDirty); r.Status != StatusAbsent {
		t.Errorf("soft-dirty: %s, want absent (not built on these kernels)", r.Status)
	}
}

func TestErrorsNameFeatureAndKernel(t *testing.T) {
	err := classify("PAGEMAP_SCAN ioctl", "6.7", "", unix.ENOTTY)
	if got, want := err.Error(), "PAGEMAP_SCAN ioctl: requires Linux 6.7: ENOTTY"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if !errors.Is(err, unix.ENOTTY) || !errors.Is(err, fault.ErrKernel) {
		t.Errorf("%v: errno or kind lost", err)
	}
	err = classify("fsopen", "5.2", "use a user namespace", unix.EPERM)
	if !errors.Is(err, fault.ErrPermission) || !errors.Is(err, unix.EPERM) {
		t.Errorf("%v: want a permission error wrapping EPERM", err)
	}
	if r := run(Probe{Run: func() error { return err }}); r.Status != StatusDenied {
		t.Errorf("EPERM gives status %s, want denied", r.Status)
	}
	if r := run(Probe{Info: true, Run: func() error { return missing("x", "1", unix.ENOSYS) }}); r.Status != StatusAbsent {
		t.Errorf("missing info probe gives status %s, want absent", r.Status)
	}
}
