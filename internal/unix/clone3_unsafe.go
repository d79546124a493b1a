//go:build amd64

package unix

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Clone3Probe calls clone3 with the first size bytes of args and with
// setTID (innermost PID namespace first) as its set_tid array, to learn how
// the kernel judges them. It is meant to fail: if it does create a child,
// that child calls exit(0) on its first instruction after the system call,
// before any Go code runs, and Clone3Probe returns its pid (> 0) for the
// caller to reap. It is not a way to start processes.
func Clone3Probe(args *CloneArgs, size int, setTID []int32) (int, error) {
	args.SetTID, args.SetTIDSize = 0, 0
	if len(setTID) == 0 {
		return clone3Probe(args, size, 0)
	}
	args.SetTIDSize = uint64(len(setTID))
	return clone3Probe(args, size, uintptr(unsafe.Pointer(&setTID[0])))
}

// clone3Probe keeps the set_tid array on the heap and alive for the call.
//
//go:uintptrescapes
//go:noinline
func clone3Probe(args *CloneArgs, size int, setTID uintptr) (int, error) {
	args.SetTID = uint64(setTID)
	r, e := rawClone3(args, uintptr(size))
	if e != 0 {
		return -1, unix.Errno(e)
	}
	return int(r), nil
}

// rawClone3 is implemented in clone3_amd64.s.
//
//go:noescape
func rawClone3(args *CloneArgs, size uintptr) (r1, errno uintptr)
