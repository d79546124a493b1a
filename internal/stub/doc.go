// Package stub builds and starts godwit's restore stub.
//
// The stub is a minimal static x86-64 ELF executable, generated here byte by
// byte (no assembler or linker at build time). Its code is one loop:
//
//	loop: mov eax, 34   // pause
//	      syscall
//	      jmp loop
//
// so a started stub sits in pause(2) until godwit seizes it and drives it by
// injected system calls. SyscallAddr is the address of its syscall
// instruction, which restore uses as the injection point until it has mapped
// a trampoline of its own.
package stub
