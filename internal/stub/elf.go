package stub

import "encoding/binary"

// Layout of the image: an ELF header, one program header, then the code. The
// whole file is mapped by a single PT_LOAD segment at LoadAddr.
const (
	// LoadAddr is the virtual address of the stub's only segment (the file
	// offset 0 is mapped here).
	LoadAddr uint64 = 0x10000

	ehdrSize = 64
	phdrSize = 56
	codeOff  = ehdrSize + phdrSize

	// EntryAddr is the stub's entry point: the mov before the syscall.
	EntryAddr = LoadAddr + codeOff

	// SyscallAddr is the address of the stub's `syscall` instruction
	// (bytes 0f 05); after it executes, RIP is SyscallAddr+2.
	SyscallAddr uint64 = EntryAddr + 5
)

// ReaperAddr is the entry of the stub's second loop, for a stub that stays as
// the init of a PID namespace: it reaps children until it has none, then
// exits (which ends the namespace).
const ReaperAddr = EntryAddr + 9

// code is `loop: mov eax, 34; syscall; jmp loop`, then the reaper:
// `reap: wait4(-1, 0, 0, 0); if it did not fail with ECHILD, jmp reap;
// exit_group(0)`.
var code = []byte{
	0xb8, 34, 0, 0, 0, // mov eax, 34 (SYS_pause)
	0x0f, 0x05, // syscall
	0xeb, 0xf7, // jmp -9 (back to the mov)
	// reap:
	0xbf, 0xff, 0xff, 0xff, 0xff, // mov edi, -1
	0x31, 0xf6, // xor esi, esi
	0x31, 0xd2, // xor edx, edx
	0x45, 0x31, 0xd2, // xor r10d, r10d
	0xb8, 61, 0, 0, 0, // mov eax, 61 (SYS_wait4)
	0x0f, 0x05, // syscall
	0x48, 0x83, 0xf8, 0xf6, // cmp rax, -10 (ECHILD)
	0x75, 0xe7, // jne reap (-25)
	0x31, 0xff, // xor edi, edi
	0xb8, 231, 0, 0, 0, // mov eax, 231 (SYS_exit_group)
	0x0f, 0x05, // syscall
}

// ELF constants used by the image.
const (
	etExec   = 2
	emX86_64 = 62
	ptLoad   = 1
	pfX      = 1
	pfR      = 4
	pageSize = 0x1000
)

var image = build()

// Image returns the stub's ELF bytes. The caller may modify the returned
// slice; each call returns a fresh copy.
func Image() []byte { return append([]byte(nil), image...) }

func build() []byte {
	size := codeOff + len(code)
	b := make([]byte, size)
	le := binary.LittleEndian

	// ELF header.
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1 /* version */, 0 /* SysV ABI */})
	le.PutUint16(b[16:], etExec)
	le.PutUint16(b[18:], emX86_64)
	le.PutUint32(b[20:], 1) // e_version
	le.PutUint64(b[24:], EntryAddr)
	le.PutUint64(b[32:], ehdrSize) // e_phoff
	le.PutUint64(b[40:], 0)        // e_shoff: no sections
	le.PutUint32(b[48:], 0)        // e_flags
	le.PutUint16(b[52:], ehdrSize)
	le.PutUint16(b[54:], phdrSize)
	le.PutUint16(b[56:], 1) // e_phnum
	le.PutUint16(b[58:], 0) // e_shentsize
	le.PutUint16(b[60:], 0) // e_shnum
	le.PutUint16(b[62:], 0) // e_shstrndx

	// The one program header: the whole file, read + execute.
	p := b[ehdrSize:]
	le.PutUint32(p[0:], ptLoad)
	le.PutUint32(p[4:], pfR|pfX)
	le.PutUint64(p[8:], 0)         // p_offset
	le.PutUint64(p[16:], LoadAddr) // p_vaddr
	le.PutUint64(p[24:], LoadAddr) // p_paddr
	le.PutUint64(p[32:], uint64(size))
	le.PutUint64(p[40:], uint64(size))
	le.PutUint64(p[48:], pageSize) // p_align

	copy(b[codeOff:], code)
	return b
}
