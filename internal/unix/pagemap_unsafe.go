package unix

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// PagemapScan runs the PAGEMAP_SCAN ioctl on an open /proc/PID/pagemap and
// returns the number of PageRegion entries the kernel filled. It sets
// arg.Size. The kernel records in arg.WalkEnd where it stopped: loop until
// WalkEnd reaches arg.End.
//
// arg.Vec must be the address of memory that cannot move (not a Go stack):
// prefer PagemapScanRegions, which sets Vec and VecLen safely.
func PagemapScan(pagemapFD int, arg *PMScanArg) (int, error) {
	arg.Size = uint64(unsafe.Sizeof(*arg))
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(pagemapFD), uintptr(PAGEMAP_SCAN), uintptr(unsafe.Pointer(arg)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// PagemapScanRegions is PagemapScan with the result written into regions
// (arg.Vec and arg.VecLen are set from it).
func PagemapScanRegions(pagemapFD int, arg *PMScanArg, regions []PageRegion) (int, error) {
	if len(regions) == 0 {
		arg.Vec, arg.VecLen = 0, 0
		return PagemapScan(pagemapFD, arg)
	}
	return pagemapScanVec(pagemapFD, arg, uintptr(unsafe.Pointer(&regions[0])), len(regions))
}

// pagemapScanVec keeps vec on the heap and alive for the call.
//
//go:uintptrescapes
//go:noinline
func pagemapScanVec(fd int, arg *PMScanArg, vec uintptr, n int) (int, error) {
	arg.Vec, arg.VecLen = uint64(vec), uint64(n)
	return PagemapScan(fd, arg)
}
