package unix

import "unsafe"

// addrOf returns the address of b's first byte (b must not be on a Go stack:
// the tests use mmap'd memory).
func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
