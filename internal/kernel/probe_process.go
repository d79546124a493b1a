package kernel

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/stub"
	gunix "github.com/godwit-dev/godwit/internal/unix"
)

func ptraceProbe() Probe {
	return Probe{
		Name:      Ptrace,
		UsedFor:   "freezing and reading tasks, driving restore stubs (PTRACE_SEIZE, PTRACE_INTERRUPT)",
		Disables:  "checkpoint and restore",
		MinKernel: "3.4",
		Required:  true,
		Run:       func() error { return withStoppedStub(func(int) error { return nil }) },
	}
}

func clone3SetTIDProbe() Probe {
	const feature, minKernel = "clone3 set_tid", "5.5"
	return Probe{
		Name:      Clone3SetTID,
		UsedFor:   "restoring processes and threads with their recorded PIDs and TIDs",
		Disables:  "restore",
		MinKernel: minKernel,
		Required:  true,
		// EPERM comes after the kernel has validated set_tid: the feature
		// exists, only not in this PID namespace for this user.
		Workaround: "restore into a new user and PID namespace, which this user owns",
		Run: func() error {
			// PID 1 always exists in this namespace: a kernel that supports
			// set_tid, and lets this user use it, answers EEXIST.
			args := gunix.CloneArgs{ExitSignal: uint64(unix.SIGCHLD)}
			pid, err := gunix.Clone3Probe(&args, gunix.CloneArgsSizeVer1, []int32{1})
			if pid > 0 {
				killReap(pid)
				return failed(feature, fmt.Errorf("clone3 with set_tid [1] created process %d", pid))
			}
			if err == unix.EEXIST {
				return nil
			}
			return classify(feature, minKernel,
				"needs CAP_CHECKPOINT_RESTORE over this PID namespace", err)
		},
	}
}

func pidfdOpenProbe() Probe {
	const feature, minKernel = "pidfd_open", "5.3"
	return Probe{
		Name:      PidfdOpen,
		UsedFor:   "stable handles on the processes being checkpointed",
		Disables:  "checkpoint",
		MinKernel: minKernel,
		Required:  true,
		Run: func() error {
			fd, err := unix.PidfdOpen(os.Getpid(), 0)
			if err != nil {
				return classify(feature, minKernel, "", err)
			}
			unix.Close(fd)
			return nil
		},
	}
}

func pidfdGetfdProbe() Probe {
	const feature, minKernel = "pidfd_getfd", "5.6"
	return Probe{
		Name:      PidfdGetfd,
		UsedFor:   "taking a copy of each file descriptor of a checkpointed process",
		Disables:  "checkpoint of file descriptors",
		MinKernel: minKernel,
		Required:  true,
		Run: func() error {
			pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
			if err != nil {
				return classify(feature, "5.3", "", err)
			}
			defer unix.Close(pidfd)
			fd, err := unix.PidfdGetfd(pidfd, pidfd, 0)
			if err != nil {
				return classify(feature, minKernel, "needs ptrace access to the process", err)
			}
			unix.Close(fd)
			return nil
		},
	}
}

func rseqConfigProbe() Probe {
	const feature, minKernel = "PTRACE_GET_RSEQ_CONFIGURATION", "5.13"
	return Probe{
		Name:      RseqConfig,
		UsedFor:   "checkpointing each thread's rseq registration (glibc registers one)",
		Disables:  "checkpoint of processes that use rseq (every glibc >= 2.35 program)",
		MinKernel: minKernel,
		Required:  true,
		Run: func() error {
			return withStoppedStub(func(pid int) error {
				_, err := gunix.PtraceGetRseqConfig(pid)
				return classify(feature, minKernel, "", err)
			})
		},
	}
}

func xstateProbe() Probe {
	const feature = "NT_X86_XSTATE"
	return Probe{
		Name:      Xstate,
		UsedFor:   "saving and restoring FPU/SSE/AVX state (CPUID leaf 0xD and the NT_X86_XSTATE regset agree)",
		Disables:  "checkpoint and restore",
		MinKernel: "2.6.35",
		Required:  true,
		Run: func() error {
			size, err := gunix.XstateSize()
			if err != nil {
				return missing("XSAVE", "2.6.35", err)
			}
			return withStoppedStub(func(pid int) error {
				buf := make([]byte, size+4096)
				n, err := gunix.PtraceGetRegSet(pid, gunix.NT_X86_XSTATE, buf)
				if err != nil {
					return classify(feature, "2.6.35", "", err)
				}
				if n != size {
					return failed(feature, fmt.Errorf("regset is %d bytes, CPUID leaf 0xD says %d", n, size))
				}
				return nil
			})
		},
		Detail: func() string {
			size, _ := gunix.XstateSize()
			return fmt.Sprintf("%d bytes, XCR0 %#x", size, gunix.XCR0())
		},
	}
}

func processVMReadvProbe() Probe {
	const feature, minKernel = "process_vm_readv", "3.2"
	return Probe{
		Name:      ProcessVMReadv,
		UsedFor:   "reading and writing the memory of other processes",
		Disables:  "checkpoint and restore",
		MinKernel: minKernel,
		Required:  true,
		Run: func() error {
			return withStub(nil, func(pid int) error {
				b := make([]byte, 2)
				local := []unix.Iovec{{Base: &b[0], Len: 2}}
				remote := []unix.RemoteIovec{{Base: uintptr(stub.SyscallAddr), Len: 2}}
				if _, err := unix.ProcessVMReadv(pid, local, remote, 0); err != nil {
					return classify(feature, minKernel, "needs ptrace access to the process", err)
				}
				if b[0] != 0x0f || b[1] != 0x05 {
					return failed(feature, fmt.Errorf("read % x from the stub, want 0f 05", b))
				}
				return nil
			})
		},
	}
}

func setMMMapProbe() Probe {
	const feature, minKernel = "prctl PR_SET_MM_MAP", "3.18"
	return Probe{
		Name:      SetMMMap,
		UsedFor:   "restoring brk, arg/env ranges, auxv and /proc/PID/exe",
		Disables:  "restore",
		MinKernel: minKernel,
		Required:  true,
		Run: func() error {
			n, err := gunix.KernelPrctlMMMapSize()
			if err != nil {
				return classify(feature, minKernel, "", err)
			}
			if n != gunix.PrctlMMMapSize {
				return failed(feature, fmt.Errorf("kernel's struct prctl_mm_map is %d bytes, godwit's %d", n, gunix.PrctlMMMapSize))
			}
			return nil
		},
	}
}

func timerRestoreIDsProbe() Probe {
	const feature, minKernel = "prctl PR_TIMER_CREATE_RESTORE_IDS", "6.17"
	return Probe{
		Name:      TimerRestoreIDs,
		UsedFor:   "restoring POSIX timers with their recorded IDs",
		Disables:  "restore of POSIX timers whose IDs are not 0, 1, 2, ... in creation order",
		MinKernel: minKernel,
		Run: func() error {
			_, err := unix.PrctlRetInt(unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0)
			return classify(feature, minKernel, "", err)
		},
	}
}

func checkpointCapProbe() Probe {
	const feature, minKernel = "CAP_CHECKPOINT_RESTORE", "5.9"
	return Probe{
		Name:      CheckpointCap,
		UsedFor:   "set_tid, map_files and exe links without full root",
		Disables:  "exact PIDs in the current PID namespace for this user",
		MinKernel: minKernel,
		Run: func() error {
			last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
			if err != nil {
				return failed(feature, err)
			}
			var n int
			if _, err := fmt.Sscanf(string(last), "%d", &n); err != nil {
				return failed(feature, fmt.Errorf("parse cap_last_cap %q: %w", last, err))
			}
			if n < unix.CAP_CHECKPOINT_RESTORE {
				return missing(feature, minKernel, fmt.Errorf("cap_last_cap is %d", n))
			}
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				return failed(feature, err)
			}
			const c = unix.CAP_CHECKPOINT_RESTORE
			if data[c/32].Effective&(1<<(c%32)) == 0 {
				return denied(feature, "grant CAP_CHECKPOINT_RESTORE, or run as root", unix.EPERM)
			}
			return nil
		},
	}
}
