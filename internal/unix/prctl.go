package unix

// PrctlMMMap is struct prctl_mm_map of linux/prctl.h: the memory map
// descriptors set at once by prctl(PR_SET_MM, PR_SET_MM_MAP, &map,
// sizeof(map)). Auxv is the address of the saved auxiliary vector and
// AuxvSize its length in bytes; ExeFD is -1 (as uint32) to keep the exe link.
type PrctlMMMap struct {
	StartCode  uint64
	EndCode    uint64
	StartData  uint64
	EndData    uint64
	StartBrk   uint64
	Brk        uint64
	StartStack uint64
	ArgStart   uint64
	ArgEnd     uint64
	EnvStart   uint64
	EnvEnd     uint64
	Auxv       uint64
	AuxvSize   uint32
	ExeFD      uint32
}

// PrctlMMMapSize is the size of struct prctl_mm_map.
const PrctlMMMapSize = 104
