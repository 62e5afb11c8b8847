/*
 * brk: drives the program break with raw brk(2) calls before libc's malloc
 * has a say: query, grow, write, shrink, regrow (the regrown memory must be
 * zero), unaligned requests (Linux returns the exact value asked for),
 * requests below the start or absurdly high (fail by returning the current
 * break). Results are collected first and printed only after the break is
 * restored, so printf's own allocations cannot interfere.
 *
 * Build: gcc -O2 -static -o brk brk.c
 */
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char end[];                    /* end of bss, from the linker */
extern const ElfW(Ehdr) __ehdr_start; /* start of the loaded image */

#define MAXR 32
static const char *what[MAXR];
static int ok[MAXR];
static int nr;

static void record(int good, const char *w)
{
	if (nr < MAXR) {
		what[nr] = w;
		ok[nr] = good;
		nr++;
	}
}

static uintptr_t sbrk_raw(uintptr_t to)
{
	return (uintptr_t)syscall(SYS_brk, to);
}

static int all(unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

int main(void)
{
	const size_t MB = 1 << 20;
	uintptr_t start = sbrk_raw(0);
	record(start != 0, "brk(0) returns the current break");
	record(start >= (uintptr_t)end || start < (uintptr_t)&__ehdr_start, "break lies outside the loaded image");
	record(sbrk_raw(0) == start, "brk(0) is stable");

	uintptr_t b = sbrk_raw(start + MB);
	record(b == start + MB, "brk grows by 1 MiB");
	if (b == start + MB) {
		unsigned char *p = (unsigned char *)start;
		record(all(p, MB, 0), "new break memory is zero-filled");
		for (size_t i = 0; i < MB; i++)
			p[i] = (unsigned char)(i * 7 + 1);
		int kept = 1;
		for (size_t i = 0; i < MB; i++)
			kept &= p[i] == (unsigned char)(i * 7 + 1);
		record(kept, "break memory holds a pattern");

		b = sbrk_raw(start + MB / 4);
		record(b == start + MB / 4, "brk shrinks");
		kept = 1;
		for (size_t i = 0; i < MB / 4; i++)
			kept &= p[i] == (unsigned char)(i * 7 + 1);
		record(kept, "memory below a shrunk break keeps its contents");

		b = sbrk_raw(start + 2 * MB);
		record(b == start + 2 * MB, "brk regrows by 2 MiB");
		uintptr_t firstfree = (start + MB / 4 + 4095) & ~(uintptr_t)4095;
		record(all((unsigned char *)firstfree, start + 2 * MB - firstfree, 0),
		       "memory regrown past a shrink is zero-filled");
	} else {
		record(0, "new break memory is zero-filled");
	}

	b = sbrk_raw(start + 100);
	record(b == start + 100, "brk returns the exact unaligned value requested");
	b = sbrk_raw(start + 4096 + 1);
	record(b == start + 4096 + 1, "brk grows to another unaligned value");
	((volatile unsigned char *)start)[4096] = 1; /* below the break: mapped */
	record(1, "byte just below an unaligned break is writable");

	b = sbrk_raw(4096);
	record(b == start + 4097, "brk below the start of the heap fails (returns the current break)");
	b = sbrk_raw(start + (1ull << 46));
	record(b == start + 4097, "absurdly large brk fails (returns the current break)");
	b = sbrk_raw((uintptr_t)-4096);
	record(b == start + 4097, "brk into kernel space fails (returns the current break)");

	b = sbrk_raw(start);
	record(b == start, "brk restores the original break");

	for (int i = 0; i < nr; i++)
		printf("%s%s\n", ok[i] ? "" : "FAIL: ", what[i]);
	int failures = 0;
	for (int i = 0; i < nr; i++)
		failures += !ok[i];
	printf(failures ? "brk: %d failures\n" : "brk: ok\n", failures);
	return failures ? 1 : 0;
}
