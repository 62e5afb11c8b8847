/*
 * ymm: loads distinct values into all sixteen YMM registers, makes 20,000
 * raw system calls, and checks every register still holds its value: the
 * platform must preserve the full AVX state across syscalls. Without AVX
 * it says so (both runs on one machine agree).
 *
 * Build: gcc -O2 -static -o ymm ymm.c
 */
#include <stdio.h>
#include <string.h>

static unsigned char in[16 * 32] __attribute__((aligned(32)));
static unsigned char out[16 * 32] __attribute__((aligned(32)));

static void run(long n)
{
	asm volatile(
		"vmovdqu 0(%[in]), %%ymm0\n"
		"vmovdqu 32(%[in]), %%ymm1\n"
		"vmovdqu 64(%[in]), %%ymm2\n"
		"vmovdqu 96(%[in]), %%ymm3\n"
		"vmovdqu 128(%[in]), %%ymm4\n"
		"vmovdqu 160(%[in]), %%ymm5\n"
		"vmovdqu 192(%[in]), %%ymm6\n"
		"vmovdqu 224(%[in]), %%ymm7\n"
		"vmovdqu 256(%[in]), %%ymm8\n"
		"vmovdqu 288(%[in]), %%ymm9\n"
		"vmovdqu 320(%[in]), %%ymm10\n"
		"vmovdqu 352(%[in]), %%ymm11\n"
		"vmovdqu 384(%[in]), %%ymm12\n"
		"vmovdqu 416(%[in]), %%ymm13\n"
		"vmovdqu 448(%[in]), %%ymm14\n"
		"vmovdqu 480(%[in]), %%ymm15\n"
		"1:\n"
		"\tmov $39, %%eax\n"
		"\tsyscall\n"
		"\tdec %[n]\n"
		"\tjnz 1b\n"
		"vmovdqu %%ymm0, 0(%[out])\n"
		"vmovdqu %%ymm1, 32(%[out])\n"
		"vmovdqu %%ymm2, 64(%[out])\n"
		"vmovdqu %%ymm3, 96(%[out])\n"
		"vmovdqu %%ymm4, 128(%[out])\n"
		"vmovdqu %%ymm5, 160(%[out])\n"
		"vmovdqu %%ymm6, 192(%[out])\n"
		"vmovdqu %%ymm7, 224(%[out])\n"
		"vmovdqu %%ymm8, 256(%[out])\n"
		"vmovdqu %%ymm9, 288(%[out])\n"
		"vmovdqu %%ymm10, 320(%[out])\n"
		"vmovdqu %%ymm11, 352(%[out])\n"
		"vmovdqu %%ymm12, 384(%[out])\n"
		"vmovdqu %%ymm13, 416(%[out])\n"
		"vmovdqu %%ymm14, 448(%[out])\n"
		"vmovdqu %%ymm15, 480(%[out])\n"
		"\tvzeroupper\n"
		: [n] "+r"(n)
		: [in] "r"(in), [out] "r"(out)
		: "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

int main(void)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx")) {
		printf("no AVX on this CPU\n");
		return 0;
	}
	for (int i = 0; i < (int)sizeof in; i++)
		in[i] = (unsigned char)(i * 7 + 3);
	run(20000);
	int bad = 0;
	for (int r = 0; r < 16; r++)
		if (memcmp(in + 32 * r, out + 32 * r, 32) != 0) {
			printf("FAIL: ymm%d changed\n", r);
			bad++;
		}
	printf(bad ? "ymm: %d registers changed\n" : "ymm: all 16 registers survive 20000 syscalls\n", bad);
	return bad != 0;
}
