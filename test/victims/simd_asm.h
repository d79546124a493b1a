/* simd_asm.h: the load and check sequences used by simd.h, written out one
 * block per register (inline asm cannot loop over register names).
 * Pattern layout: register N at offset N*64, mask register kN at 2048+(N-2)*2. */
#ifndef GODWIT_VICTIM_SIMD_ASM_H
#define GODWIT_VICTIM_SIMD_ASM_H
#define SIMD_LOAD_AVX \
	"vmovdqu 512(%%r14), %%ymm8\n\t" \
	"vmovdqu 576(%%r14), %%ymm9\n\t" \
	"vmovdqu 640(%%r14), %%ymm10\n\t" \
	"vmovdqu 704(%%r14), %%ymm11\n\t" \
	"vmovdqu 768(%%r14), %%ymm12\n\t" \
	"vmovdqu 832(%%r14), %%ymm13\n\t" \
	"vmovdqu 896(%%r14), %%ymm14\n\t" \
	"vmovdqu 960(%%r14), %%ymm15\n\t"

#define SIMD_CHECK_AVX \
	"vxorps 512(%%r14), %%ymm8, %%ymm0\n\t" \
	"vptest %%ymm0, %%ymm0\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vxorps 576(%%r14), %%ymm9, %%ymm0\n\t" \
	"vptest %%ymm0, %%ymm0\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vxorps 640(%%r14), %%ymm10, %%ymm0\n\t" \
	"vptest %%ymm0, %%ymm0\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vxorps 704(%%r14), %%ymm11, %%ymm0\n\t" \
	"vptest %%ymm0, %%ymm0\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vxorps 768(%%r14), %%ymm12, %%ymm0\n\t" \
	"vptest %%ymm0, %%ymm0\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vxorps 832(%%r14), %%ymm13, %%ymm0\n\t" \
	"vptest %%ymm0, %%ymm0\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vxorps 896(%%r14), %%ymm14, %%ymm0\n\t" \
	"vptest %%ymm0, %%ymm0\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vxorps 960(%%r14), %%ymm15, %%ymm0\n\t" \
	"vptest %%ymm0, %%ymm0\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t"

#define SIMD_LOAD_AVX512 \
	"vmovdqu64 512(%%r14), %%zmm8\n\t" \
	"vmovdqu64 576(%%r14), %%zmm9\n\t" \
	"vmovdqu64 640(%%r14), %%zmm10\n\t" \
	"vmovdqu64 704(%%r14), %%zmm11\n\t" \
	"vmovdqu64 768(%%r14), %%zmm12\n\t" \
	"vmovdqu64 832(%%r14), %%zmm13\n\t" \
	"vmovdqu64 896(%%r14), %%zmm14\n\t" \
	"vmovdqu64 960(%%r14), %%zmm15\n\t" \
	"vmovdqu64 1024(%%r14), %%zmm16\n\t" \
	"vmovdqu64 1088(%%r14), %%zmm17\n\t" \
	"vmovdqu64 1152(%%r14), %%zmm18\n\t" \
	"vmovdqu64 1216(%%r14), %%zmm19\n\t" \
	"vmovdqu64 1280(%%r14), %%zmm20\n\t" \
	"vmovdqu64 1344(%%r14), %%zmm21\n\t" \
	"vmovdqu64 1408(%%r14), %%zmm22\n\t" \
	"vmovdqu64 1472(%%r14), %%zmm23\n\t" \
	"vmovdqu64 1536(%%r14), %%zmm24\n\t" \
	"vmovdqu64 1600(%%r14), %%zmm25\n\t" \
	"vmovdqu64 1664(%%r14), %%zmm26\n\t" \
	"vmovdqu64 1728(%%r14), %%zmm27\n\t" \
	"vmovdqu64 1792(%%r14), %%zmm28\n\t" \
	"vmovdqu64 1856(%%r14), %%zmm29\n\t" \
	"vmovdqu64 1920(%%r14), %%zmm30\n\t" \
	"vmovdqu64 1984(%%r14), %%zmm31\n\t" \
	"kmovw 2048(%%r14), %%k2\n\t" \
	"kmovw 2050(%%r14), %%k3\n\t" \
	"kmovw 2052(%%r14), %%k4\n\t" \
	"kmovw 2054(%%r14), %%k5\n\t" \
	"kmovw 2056(%%r14), %%k6\n\t" \
	"kmovw 2058(%%r14), %%k7\n\t"

#define SIMD_CHECK_AVX512 \
	"vpxorq 512(%%r14), %%zmm8, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 576(%%r14), %%zmm9, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 640(%%r14), %%zmm10, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 704(%%r14), %%zmm11, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 768(%%r14), %%zmm12, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 832(%%r14), %%zmm13, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 896(%%r14), %%zmm14, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 960(%%r14), %%zmm15, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1024(%%r14), %%zmm16, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1088(%%r14), %%zmm17, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1152(%%r14), %%zmm18, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1216(%%r14), %%zmm19, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1280(%%r14), %%zmm20, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1344(%%r14), %%zmm21, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1408(%%r14), %%zmm22, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1472(%%r14), %%zmm23, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1536(%%r14), %%zmm24, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1600(%%r14), %%zmm25, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1664(%%r14), %%zmm26, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1728(%%r14), %%zmm27, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1792(%%r14), %%zmm28, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1856(%%r14), %%zmm29, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1920(%%r14), %%zmm30, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"vpxorq 1984(%%r14), %%zmm31, %%zmm0\n\t" \
	"vptestmq %%zmm0, %%zmm0, %%k1\n\t" \
	"kortestw %%k1, %%k1\n\t" \
	"jz 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"kmovw %%k2, %%eax\n\t" \
	"cmpw 2048(%%r14), %%ax\n\t" \
	"je 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"kmovw %%k3, %%eax\n\t" \
	"cmpw 2050(%%r14), %%ax\n\t" \
	"je 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"kmovw %%k4, %%eax\n\t" \
	"cmpw 2052(%%r14), %%ax\n\t" \
	"je 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"kmovw %%k5, %%eax\n\t" \
	"cmpw 2054(%%r14), %%ax\n\t" \
	"je 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"kmovw %%k6, %%eax\n\t" \
	"cmpw 2056(%%r14), %%ax\n\t" \
	"je 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t" \
	"kmovw %%k7, %%eax\n\t" \
	"cmpw 2058(%%r14), %%ax\n\t" \
	"je 1f\n\t" \
	"movl $1, (%%r15)\n\t" \
	"1:\n\t"
#endif
