package unix

import (
	"testing"
	"unsafe"
)

// TestStructSizes checks every struct against the size of its kernel
// counterpart (x86-64, Linux 6.18 uapi headers).
func TestStructSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"struct clone_args", unsafe.Sizeof(CloneArgs{}), 88},
		{"struct pm_scan_arg", unsafe.Sizeof(PMScanArg{}), 96},
		{"struct page_region", unsafe.Sizeof(PageRegion{}), 24},
		{"struct uffdio_api", unsafe.Sizeof(UffdioAPI{}), 24},
		{"struct uffdio_range", unsafe.Sizeof(UffdioRange{}), 16},
		{"struct uffdio_register", unsafe.Sizeof(UffdioRegister{}), 32},
		{"struct uffdio_copy", unsafe.Sizeof(UffdioCopy{}), 40},
		{"struct uffdio_zeropage", unsafe.Sizeof(UffdioZeropage{}), 32},
		{"struct uffdio_writeprotect", unsafe.Sizeof(UffdioWriteprotect{}), 24},
		{"struct uffdio_continue", unsafe.Sizeof(UffdioContinue{}), 32},
		{"struct uffdio_move", unsafe.Sizeof(UffdioMove{}), 40},
		{"struct uffd_msg", unsafe.Sizeof(UffdMsg{}), 32},
		{"struct ptrace_rseq_configuration", unsafe.Sizeof(RseqConfig{}), 24},
		{"struct ptrace_syscall_info", unsafe.Sizeof(PtraceSyscallInfo{}), 88},
		{"struct ptrace_peeksiginfo_args", unsafe.Sizeof(ptracePeeksiginfoArgs{}), 16},
		{"siginfo_t", unsafe.Sizeof(Siginfo{}), 128},
		{"struct kcmp_epoll_slot", unsafe.Sizeof(KcmpEpollSlot{}), 12},
		{"struct prctl_mm_map", unsafe.Sizeof(PrctlMMMap{}), 104},
		{"struct seccomp_notif_sizes", unsafe.Sizeof(SeccompNotifSizes{}), 6},
	} {
		if c.got != c.want {
			t.Errorf("%s: Go size %d, kernel size %d", c.name, c.got, c.want)
		}
	}
	// The exported size constants must agree too.
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"Clone3Size", Clone3Size, unsafe.Sizeof(CloneArgs{})},
		{"PMScanArgSize", PMScanArgSize, unsafe.Sizeof(PMScanArg{})},
		{"PageRegionSize", PageRegionSize, unsafe.Sizeof(PageRegion{})},
		{"UffdMsgSize", UffdMsgSize, unsafe.Sizeof(UffdMsg{})},
		{"RseqConfigSize", RseqConfigSize, unsafe.Sizeof(RseqConfig{})},
		{"PtraceSyscallInfoSize", PtraceSyscallInfoSize, unsafe.Sizeof(PtraceSyscallInfo{})},
		{"SiginfoSize", SiginfoSize, unsafe.Sizeof(Siginfo{})},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, struct size %d", c.name, c.got, c.want)
		}
	}
}
