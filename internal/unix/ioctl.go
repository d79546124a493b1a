package unix

// Linux ioctl request encoding (asm-generic/ioctl.h, used by x86):
// direction<<30 | size<<16 | type<<8 | number.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30

	// Leading parts of _IO, _IOR and _IOWR requests.
	ioNone = iocNone << iocDirShift
	ior    = iocRead << iocDirShift
	iowr   = (iocRead | iocWrite) << iocDirShift
	uffdT  = 0xaa << iocTypeShift
)
