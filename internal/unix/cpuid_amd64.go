package unix

// cpuid executes CPUID with EAX=leaf, ECX=sub. Implemented in cpuid_amd64.s.
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// xgetbv executes XGETBV with ECX=index. Only call it when osxsave is true.
func xgetbv(index uint32) (eax, edx uint32)
