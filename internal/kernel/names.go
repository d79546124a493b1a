package kernel

// Probe names, for Run and kerneltest.Require.
const (
	Ptrace            = "ptrace"
	Clone3SetTID      = "clone3 set_tid"
	PidfdOpen         = "pidfd_open"
	PidfdGetfd        = "pidfd_getfd"
	RseqConfig        = "PTRACE_GET_RSEQ_CONFIGURATION"
	Xstate            = "xstate size"
	ProcessVMReadv    = "process_vm_readv"
	SetMMMap          = "PR_SET_MM_MAP"
	TimerRestoreIDs   = "PR_TIMER_CREATE_RESTORE_IDS"
	CheckpointCap     = "CAP_CHECKPOINT_RESTORE"
	PagemapScan       = "PAGEMAP_SCAN"
	Userfaultfd       = "userfaultfd"
	UffdWPAsync       = "UFFD_FEATURE_WP_ASYNC"
	SoftDirty         = "soft-dirty"
	MemfdSecret       = "memfd_secret"
	Openat2           = "openat2"
	MountAPI          = "mount API"
	IDMappedMounts    = "idmapped mounts"
	SeccompUserNotify = "seccomp user notification"
	TimeNamespace     = "time namespace"
)

// Probes returns every probe, in the order godwit check prints them.
func Probes() []Probe {
	return []Probe{
		// Checkpoint and restore.
		ptraceProbe(),
		clone3SetTIDProbe(),
		pidfdOpenProbe(),
		pidfdGetfdProbe(),
		rseqConfigProbe(),
		xstateProbe(),
		processVMReadvProbe(),
		setMMMapProbe(),
		timerRestoreIDsProbe(),
		checkpointCapProbe(),
		// Memory tracking and migration.
		pagemapScanProbe(),
		userfaultfdProbe(),
		uffdWPAsyncProbe(),
		softDirtyProbe(),
		memfdSecretProbe(),
		// Containers.
		openat2Probe(),
		mountAPIProbe(),
		idmappedMountsProbe(),
		seccompUserNotifyProbe(),
		timeNamespaceProbe(),
	}
}
