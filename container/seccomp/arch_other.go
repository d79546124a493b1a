//go:build !amd64

package seccomp

const (
	nativeArch     = 0
	nativeArchName = ""
	x32Bit         = 0
)

// syscallTable is empty off x86_64: Compile reports ErrUnsupported.
var syscallTable = map[string]uint32{}
