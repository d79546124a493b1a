package kernel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/godwit-dev/godwit/internal/stub"
	gunix "github.com/godwit-dev/godwit/internal/unix"
)

func pagemapScanProbe() Probe {
	const feature, minKernel = "PAGEMAP_SCAN ioctl", "6.7"
	return Probe{
		Name:      PagemapScan,
		UsedFor:   "finding pages written since the last pre-copy round (with userfaultfd WP_ASYNC)",
		Disables:  "iterative pre-copy migration",
		MinKernel: minKernel,
		Run: func() error {
			return withStub(nil, func(pid int) error {
				f, err := stubProcFile(pid, "pagemap")
				if err != nil {
					return failed(feature, err)
				}
				defer f.Close()
				arg := gunix.PMScanArg{
					Start: stub.LoadAddr, End: stub.LoadAddr + uint64(os.Getpagesize()),
					CategoryAnyofMask: gunix.PAGE_IS_PRESENT | gunix.PAGE_IS_FILE,
					ReturnMask:        gunix.PAGE_IS_PRESENT | gunix.PAGE_IS_FILE,
				}
				_, err = gunix.PagemapScanRegions(int(f.Fd()), &arg, make([]gunix.PageRegion, 4))
				return classify(feature, minKernel, "", err)
			})
		},
	}
}

// uffdProbe is what userfaultfd offers this user, probed once.
var uffdProbe = sync.OnceValue(func() uffdInfo {
	var info uffdInfo
	fd, err := gunix.Userfaultfd(unix.O_CLOEXEC | unix.O_NONBLOCK)
	info.mode = "kernel and user faults"
	first := err
	if err != nil {
		fd, err = gunix.UserfaultfdDev(unix.O_CLOEXEC | unix.O_NONBLOCK)
		info.mode = "kernel and user faults, through /dev/userfaultfd"
	}
	if err != nil {
		fd, err = gunix.Userfaultfd(unix.O_CLOEXEC | unix.O_NONBLOCK | gunix.UFFD_USER_MODE_ONLY)
		info.mode = "user-mode faults only (vm.unprivileged_userfaultfd is 0)"
	}
	if errors.Is(err, unix.EINVAL) && first != nil {
		err = first // no UFFD_USER_MODE_ONLY before 5.11: the first answer says more
	}
	if err != nil {
		info.err = classify("userfaultfd", "4.3", "set vm.unprivileged_userfaultfd=1, or run as root", err)
		return info
	}
	defer unix.Close(fd)
	api := gunix.UffdioAPI{API: gunix.UFFD_API}
	if err := gunix.UffdAPI(fd, &api); err != nil {
		info.err = classify("userfaultfd UFFDIO_API", "4.3", "", err)
		return info
	}
	info.features = api.Features
	return info
})

type uffdInfo struct {
	mode     string // which faults the fd this user can get handles
	features uint64 // offered by UFFDIO_API
	err      error
}

func userfaultfdProbe() Probe {
	return Probe{
		Name:      Userfaultfd,
		UsedFor:   "write-protect dirty tracking (pre-copy) and serving faults over the network (post-copy)",
		Disables:  "pre-copy and post-copy migration",
		MinKernel: "4.3",
		Run:       func() error { return uffdProbe().err },
		Detail: func() string {
			i := uffdProbe()
			return fmt.Sprintf("%s; features %#x", i.mode, i.features)
		},
	}
}

func uffdWPAsyncProbe() Probe {
	const feature, minKernel = "UFFD_FEATURE_WP_ASYNC", "6.7"
	return Probe{
		Name:      UffdWPAsync,
		UsedFor:   "dirty tracking without a fault handler: writes unprotect pages themselves",
		Disables:  "iterative pre-copy migration",
		MinKernel: minKernel,
		Run: func() error {
			i := uffdProbe()
			if i.err != nil {
				return i.err
			}
			if i.features&gunix.UFFD_FEATURE_WP_ASYNC == 0 {
				return missing(feature, minKernel, fmt.Errorf("UFFDIO_API offers features %#x", i.features))
			}
			return nil
		},
	}
}

func softDirtyProbe() Probe {
	const feature, minKernel = "soft-dirty page bits", "3.11 with CONFIG_MEM_SOFT_DIRTY"
	return Probe{
		Name:      SoftDirty,
		UsedFor:   "nothing: godwit tracks dirty pages with userfaultfd WP_ASYNC instead",
		Disables:  "nothing",
		MinKernel: minKernel,
		Info:      true,
		Run: func() error {
			found, err := softDirtyBitSeen()
			if err != nil {
				return failed(feature, err)
			}
			if !found {
				return missing(feature, minKernel, errors.New("bit 55 of /proc/self/pagemap is never set"))
			}
			return nil
		},
	}
}

// softDirtyBitSeen reports whether any present page of this process's
// writable private mappings has the soft-dirty bit in pagemap. Pages are
// soft-dirty from their first write until clear_refs is written; without
// CONFIG_MEM_SOFT_DIRTY the bit is always 0.
func softDirtyBitSeen() (bool, error) {
	maps, err := os.Open("/proc/self/maps")
	if err != nil {
		return false, err
	}
	defer maps.Close()
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return false, err
	}
	defer pagemap.Close()
	const present, softDirty = 1 << 63, 1 << 55
	ps := uint64(os.Getpagesize())
	entries := make([]byte, 8*64)
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		var start, end uint64
		var perms string
		if _, err := fmt.Sscanf(sc.Text(), "%x-%x %s", &start, &end, &perms); err != nil {
			return false, fmt.Errorf("parse /proc/self/maps line %q: %w", sc.Text(), err)
		}
		if !strings.HasPrefix(perms, "rw") || perms[3] != 'p' {
			continue
		}
		n := min((end-start)/ps, 64)
		buf := entries[:8*n]
		if _, err := pagemap.ReadAt(buf, int64(start/ps*8)); err != nil {
			return false, fmt.Errorf("read pagemap at %#x: %w", start, err)
		}
		for i := range n {
			e := binary.LittleEndian.Uint64(buf[8*i:])
			if e&present != 0 && e&softDirty != 0 {
				return true, nil
			}
		}
	}
	return false, sc.Err()
}

func memfdSecretProbe() Probe {
	const feature, minKernel = "memfd_secret", "5.14 with secretmem enabled"
	return Probe{
		Name:      MemfdSecret,
		UsedFor:   "knowing whether secret memory, which a checkpoint must refuse, can exist here",
		Disables:  "nothing",
		MinKernel: minKernel,
		Info:      true,
		Run: func() error {
			fd, err := unix.MemfdSecret(unix.O_CLOEXEC)
			if err != nil {
				return classify(feature, minKernel, "", err)
			}
			unix.Close(fd)
			return nil
		},
	}
}
