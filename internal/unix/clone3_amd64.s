#include "textflag.h"

#define SYS_clone3 435
#define SYS_exit 60

// func rawClone3(args *CloneArgs, size uintptr) (r1, errno uintptr)
TEXT ·rawClone3(SB), NOSPLIT, $0-32
	MOVQ	args+0(FP), DI
	MOVQ	size+8(FP), SI
	MOVQ	$SYS_clone3, AX
	SYSCALL
	CMPQ	AX, $0
	JNE	parent
	// In a child: leave at once, without touching the Go runtime.
	MOVQ	$0, DI
	MOVQ	$SYS_exit, AX
	SYSCALL
	HLT
parent:
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$-1, r1+16(FP)
	NEGQ	AX
	MOVQ	AX, errno+24(FP)
	RET
ok:
	MOVQ	AX, r1+16(FP)
	MOVQ	$0, errno+24(FP)
	RET
