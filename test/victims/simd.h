/*
 * simd.h: a worker loop, written as one inline-asm block, that keeps a known
 * pattern in vector registers for its whole life and checks it on every
 * iteration without ever reloading it.
 *
 * Registers checked:
 *   AVX:     ymm8..ymm15 (256 bits each)
 *   AVX-512: zmm8..zmm31 (512 bits each, so the SSE, YMM_Hi128, ZMM_Hi256
 *            and Hi16_ZMM parts of the xstate are all covered) and k2..k7
 *   both:    MXCSR, set to round-toward-zero with flush-to-zero
 *
 * The loop never returns: it increments the thread's counter, publishes it,
 * and sleeps 1 ms with a raw nanosleep syscall, so no C code (which may use
 * any caller-saved vector register) ever runs between two checks. The
 * thread must block every signal before entering it.
 */
#ifndef GODWIT_VICTIM_SIMD_H
#define GODWIT_VICTIM_SIMD_H

#include <time.h>

#include "simd_asm.h"

/* simd_ctx is read by the asm at fixed offsets: keep the layout. */
struct simd_ctx {
	long *counter;                /*  0: the thread's __thread counter */
	volatile long *publish;       /*  8: where the counter is published */
	const unsigned char *pattern; /* 16: see SIMD_PATTERN_BYTES */
	volatile int *corrupt;        /* 24: set to 1 when a check fails */
	const struct timespec *nap;   /* 32: nanosleep argument */
	long selftest;                /* 40: >0: clobber ymm9 after this many iterations */
};

/* 32 registers x 64 bytes, then k2..k7 x 2 bytes. */
#define SIMD_PATTERN_BYTES (32 * 64 + 6 * 2)

/* MXCSR kept by the loop: default masks, round toward zero, flush to zero. */
#define SIMD_MXCSR "0xff80"

enum simd_kind { SIMD_NONE, SIMD_AVX, SIMD_AVX512 };

static const char *simd_name(enum simd_kind k)
{
	return k == SIMD_AVX512 ? "avx512" : k == SIMD_AVX ? "avx" : "none";
}

static enum simd_kind simd_detect(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return SIMD_AVX512;
	if (__builtin_cpu_supports("avx"))
		return SIMD_AVX;
	return SIMD_NONE;
}

/* simd_fill writes thread idx's pattern: distinct per thread and register. */
static void simd_fill(unsigned char *p, int idx)
{
	unsigned long long x = 0x9e3779b97f4a7c15ULL * (unsigned long long)(idx + 1);
	for (int i = 0; i < SIMD_PATTERN_BYTES; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
}

#define SIMD_PROLOGUE \
	"mov 0(%%rdi), %%r12\n\t" \
	"mov 8(%%rdi), %%r13\n\t" \
	"mov 16(%%rdi), %%r14\n\t" \
	"mov 24(%%rdi), %%r15\n\t" \
	"mov 32(%%rdi), %%rbx\n\t" \
	"mov 40(%%rdi), %%r8\n\t" \
	"test %%r8, %%r8\n\t" \
	"jg 1f\n\t" \
	"mov $-1, %%r8\n\t" \
	"1:\n\t" \
	"sub $64, %%rsp\n\t" \
	"movl $" SIMD_MXCSR ", (%%rsp)\n\t" \
	"ldmxcsr (%%rsp)\n\t"

#define SIMD_EPILOGUE \
	"stmxcsr 4(%%rsp)\n\t" \
	"movl 4(%%rsp), %%eax\n\t" \
	"and $0xffc0, %%eax\n\t" \
	"cmp $" SIMD_MXCSR ", %%eax\n\t" \
	"je 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"dec %%r8\n\t" \
	"jnz 1f\n\t" \
	"vpxor %%xmm9, %%xmm9, %%xmm9\n\t" \
	"1:\n\t" \
	"incq (%%r12)\n\t" \
	"mov (%%r12), %%rax\n\t" \
	"mov %%rax, (%%r13)\n\t" \
	"mov $35, %%eax\n\t" /* nanosleep */ \
	"mov %%rbx, %%rdi\n\t" \
	"xor %%esi, %%esi\n\t" \
	"syscall\n\t" \
	"jmp 9b\n\t"

/* simd_loop never returns; see the file comment. */
__attribute__((noreturn)) static void simd_loop(enum simd_kind kind, struct simd_ctx *ctx)
{
	if (kind == SIMD_AVX512) {
		__asm__ volatile(SIMD_PROLOGUE SIMD_LOAD_AVX512
				 "9:\n\t" SIMD_CHECK_AVX512 SIMD_EPILOGUE
				 : : "D"(ctx)
				 : "rax", "rbx", "rcx", "rsi", "r8", "r11", "r12", "r13", "r14", "r15", "memory");
	} else {
		__asm__ volatile(SIMD_PROLOGUE SIMD_LOAD_AVX
				 "9:\n\t" SIMD_CHECK_AVX SIMD_EPILOGUE
				 : : "D"(ctx)
				 : "rax", "rbx", "rcx", "rsi", "r8", "r11", "r12", "r13", "r14", "r15", "memory");
	}
	__builtin_unreachable();
}

#endif
