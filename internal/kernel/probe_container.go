package kernel

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	gunix "github.com/godwit-dev/godwit/internal/unix"
)

func openat2Probe() Probe {
	const feature, minKernel = "openat2", "5.6"
	return Probe{
		Name:      Openat2,
		UsedFor:   "resolving container and bundle paths safely (RESOLVE_IN_ROOT)",
		Disables:  "the container runtime",
		MinKernel: minKernel,
		Run: func() error {
			fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{
				Flags:   unix.O_PATH | unix.O_CLOEXEC,
				Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
			})
			if err != nil {
				return classify(feature, minKernel, "", err)
			}
			unix.Close(fd)
			return nil
		},
	}
}

const mountRemedy = "rootless containers make their mounts inside their own user namespace"

func mountAPIProbe() Probe {
	const feature, minKernel = "fsopen", "5.2"
	return Probe{
		Name:      MountAPI,
		UsedFor:   "making container mounts with fsopen/fsconfig/fsmount/move_mount",
		Disables:  "the container runtime",
		MinKernel: minKernel,
		Run: func() error {
			fd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
			if err != nil {
				return classify(feature, minKernel, mountRemedy, err)
			}
			unix.Close(fd)
			return nil
		},
	}
}

func idmappedMountsProbe() Probe {
	const feature, minKernel = "mount_setattr MOUNT_ATTR_IDMAP", "5.12"
	return Probe{
		Name:      IDMappedMounts,
		UsedFor:   "giving a rootless container's rootfs its owners (idmapped mount)",
		Disables:  "rootless containers on an unshifted rootfs",
		MinKernel: minKernel,
		Run: func() error {
			// A detached tmpfs, idmapped with the user namespace of a stub;
			// closing the mount fd destroys it.
			fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
			if err != nil {
				return classify("fsopen", "5.2", mountRemedy, err)
			}
			defer unix.Close(fsfd)
			if err := unix.FsconfigCreate(fsfd); err != nil {
				return failed(feature, fmt.Errorf("create tmpfs: %w", err))
			}
			mnt, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
			if err != nil {
				return failed(feature, fmt.Errorf("fsmount tmpfs: %w", err))
			}
			defer unix.Close(mnt)
			return withUserNamespace(func(userns int) error {
				err := unix.MountSetattr(mnt, "", unix.AT_EMPTY_PATH, &unix.MountAttr{
					Attr_set:  unix.MOUNT_ATTR_IDMAP,
					Userns_fd: uint64(userns),
				})
				return classify(feature, minKernel, mountRemedy, err)
			})
		},
	}
}

// withUserNamespace runs fn with an fd of a new user namespace that maps
// its root to this process's user.
func withUserNamespace(fn func(userns int) error) error {
	uid, gid := os.Getuid(), os.Getgid()
	attr := &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
	}
	return withStub(attr, func(pid int) error {
		ns, err := stubProcFile(pid, "ns/user")
		if err != nil {
			return failed("user namespace", err)
		}
		defer ns.Close()
		return fn(int(ns.Fd()))
	})
}

func seccompUserNotifyProbe() Probe {
	const feature, minKernel = "seccomp SECCOMP_RET_USER_NOTIF", "5.0"
	return Probe{
		Name:      SeccompUserNotify,
		UsedFor:   "a supervisor doing the few privileged calls of a rootless container",
		Disables:  "rootless containers that need mknod or similar",
		MinKernel: minKernel,
		Run: func() error {
			if err := gunix.SeccompActionAvail(unix.SECCOMP_RET_USER_NOTIF); err != nil {
				return classify(feature, minKernel, "", err)
			}
			return nil
		},
	}
}

func timeNamespaceProbe() Probe {
	const feature, minKernel = "time namespace", "5.6"
	return Probe{
		Name:      TimeNamespace,
		UsedFor:   "keeping CLOCK_MONOTONIC and CLOCK_BOOTTIME continuous across migration",
		Disables:  "clock continuity for migrated process trees",
		MinKernel: minKernel,
		Run: func() error {
			if _, err := os.Stat("/proc/self/ns/time"); err != nil {
				return classify(feature, minKernel, "", err)
			}
			return nil
		},
	}
}
