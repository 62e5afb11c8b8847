/*
 * elfload: checks what the ELF loader and the initial thread setup must get
 * right: initialised .data spanning several pages, .bss (including the
 * partial page right after .data, which the loader must zero) and a large
 * .bss, .rodata contents, static TLS (.tdata initialised, .tbss zeroed, the
 * %fs base set via arch_prctl so each is reachable), and a deep stack: 4 MiB
 * of recursion, within the default 8 MiB RLIMIT_STACK, growing the stack
 * mapping downwards.
 *
 * Build: gcc -O2 -static -o elfload elfload.c   (also -static-pie)
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"


#define DATA_WORDS 2053 /* a little over four pages */
#define W(i) (0x0123456789abcdefull * (uint64_t)((i) + 1))
#define W4(i) W(i), W(i + 1), W(i + 2), W(i + 3)
#define W16(i) W4(i), W4(i + 4), W4(i + 8), W4(i + 12)
#define W64(i) W16(i), W16(i + 16), W16(i + 32), W16(i + 48)
#define W256(i) W64(i), W64(i + 64), W64(i + 128), W64(i + 192)
#define W1024(i) W256(i), W256(i + 256), W256(i + 512), W256(i + 768)

/* initialised data spanning several pages */
static volatile uint64_t data[DATA_WORDS] = {W1024(0), W1024(1024), W4(2048), W(2052)};
/* bss objects: whichever the linker puts first shares the last file-backed
 * page of the data segment, whose tail the loader must zero */
static volatile uint64_t small_bss[64];
static volatile unsigned char big_bss[3 << 20];
static const char rodata[] = "read-only data survives loading";

static __thread uint64_t tls_init = 0x1122334455667788ull;
static __thread uint64_t tls_zero[128];
static __thread char tls_str[16] = "tls string";

static int depth_ok;

/* recurse uses ~1 KiB of stack per level and checks its frame on the way out. */
static __attribute__((noinline)) uint64_t recurse(int depth)
{
	volatile unsigned char frame[1000];
	for (int i = 0; i < (int)sizeof frame; i += 64)
		frame[i] = (unsigned char)(depth + i);
	uint64_t r = depth > 0 ? recurse(depth - 1) : 0;
	for (int i = 0; i < (int)sizeof frame; i += 64)
		if (frame[i] != (unsigned char)(depth + i))
			depth_ok = 0;
	return r + frame[depth % 1000 / 64 * 64];
}

int main(void)
{
	int ok = 1;
	for (int i = 0; i < DATA_WORDS; i++)
		ok &= data[i] == W(i);
	check(ok, "initialised .data spanning pages is intact");
	ok = 1;
	for (int i = 0; i < 64; i++)
		ok &= small_bss[i] == 0;
	check(ok, ".bss right after .data is zero");
	ok = 1;
	for (size_t i = 0; i < sizeof big_bss; i++)
		ok &= big_bss[i] == 0;
	check(ok, "large .bss is zero");
	for (int i = 0; i < DATA_WORDS; i++)
		data[i] = ~data[i];
	for (size_t i = 0; i < sizeof big_bss; i += 4096)
		big_bss[i] = 1;
	small_bss[3] = 5;
	ok = small_bss[3] == 5 && big_bss[sizeof big_bss - 4096] == 1;
	for (int i = 0; i < DATA_WORDS; i++)
		ok &= data[i] == ~W(i);
	check(ok, ".data and .bss are writable");
	check(strcmp(rodata, "read-only data survives loading") == 0, ".rodata is intact");

	check(tls_init == 0x1122334455667788ull, ".tdata is initialised");
	ok = 1;
	for (int i = 0; i < 128; i++)
		ok &= tls_zero[i] == 0;
	check(ok, ".tbss is zero");
	check(strcmp(tls_str, "tls string") == 0, "TLS string is initialised");
	tls_init++;
	check(tls_init == 0x1122334455667789ull, "TLS is writable");

	unsigned long fs = 0;
	check(syscall(SYS_arch_prctl, ARCH_GET_FS, &fs) == 0, "arch_prctl(ARCH_GET_FS) succeeds");
	uintptr_t self;
	__asm__("mov %%fs:0, %0" : "=r"(self));
	check(fs != 0 && self == fs, "%fs:0 points at the thread control block at the FS base");
	check((uintptr_t)&tls_init < fs && fs - (uintptr_t)&tls_init < 65536, "static TLS lies just below the FS base");

	struct rlimit rl;
	check(getrlimit(RLIMIT_STACK, &rl) == 0, "getrlimit(RLIMIT_STACK) succeeds");
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (8u << 20)) {
		depth_ok = 1;
		recurse(4096); /* about 4 MiB */
		check(depth_ok, "4 MiB of recursion works and frames stay intact");
	} else {
		/* the harness runs with the default 8 MiB limit; say so if not */
		printf("stack limit below 8 MiB; deep recursion skipped\n");
	}

	printf(failures ? "elfload: %d failures\n" : "elfload: ok\n", failures);
	return failures ? 1 : 0;
}
