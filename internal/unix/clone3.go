package unix

// CloneArgs is struct clone_args of linux/sched.h (up to the cgroup field,
// Linux 5.7). Pointers are user addresses in the process that calls clone3:
// for a clone3 injected into a stub they are addresses in the stub.
type CloneArgs struct {
	Flags      uint64 // CLONE_* flags
	Pidfd      uint64 // address of an int that receives a pidfd (CLONE_PIDFD)
	ChildTID   uint64 // address for CLONE_CHILD_SETTID / CLONE_CHILD_CLEARTID
	ParentTID  uint64 // address for CLONE_PARENT_SETTID
	ExitSignal uint64 // signal sent to the parent when the child exits
	Stack      uint64 // lowest address of the child's stack
	StackSize  uint64
	TLS        uint64 // CLONE_SETTLS
	SetTID     uint64 // address of an array of pid_t, innermost namespace first (5.5)
	SetTIDSize uint64 // number of entries at SetTID
	Cgroup     uint64 // cgroup2 directory fd for CLONE_INTO_CGROUP (5.7)
}

// Sizes of struct clone_args by version, as passed in clone3's size argument.
const (
	CloneArgsSizeVer0 = 64 // Linux 5.3
	CloneArgsSizeVer1 = 80 // Linux 5.5: set_tid, set_tid_size
	CloneArgsSizeVer2 = 88 // Linux 5.7: cgroup

	// Clone3Size is the size of CloneArgs.
	Clone3Size = CloneArgsSizeVer2
)

// MaxPIDNSLevel is the kernel's MAX_PID_NS_LEVEL: the longest set_tid array.
const MaxPIDNSLevel = 32
