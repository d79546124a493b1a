// Package unix is godwit's gate to the kernel for what golang.org/x/sys/unix
// lacks: kernel ABI structs (clone_args, pm_scan_arg, userfaultfd, ptrace
// extras), their ioctl numbers and flags, and thin wrappers of the raw system
// calls that use them.
//
// Struct layouts follow the Linux uapi headers exactly; the tests check every
// size against the kernel's. Wrappers return the bare unix.Errno, as
// golang.org/x/sys/unix does: callers add the context (pid, fd, address).
// Code that needs package unsafe lives only in the files named *_unsafe.go.
//
// Ptrace requests must come from the thread that attached the tracee: call
// them from a goroutine locked with runtime.LockOSThread.
//
// godwit runs on x86-64 only: register sets, CPUID and the clone3 probe are
// written for it.
package unix
