/*
 * mmap_pattern: exercises anonymous memory management: mmap of several
 * sizes, zero-fill, patterns, mprotect round trips, partial munmap and
 * MAP_FIXED refill, mremap (grow in place, grow with move, shrink, failing
 * grow), MAP_FIXED_NOREPLACE, madvise(MADV_DONTNEED) on private and shared
 * anonymous memory, executable memory (a tiny JIT that is patched and rerun),
 * and EFAULT/EINVAL/ENOMEM error paths. It never touches a page it may not
 * access, so it never takes a fault. Each line is a property; "FAIL: ..."
 * marks a broken one and makes the exit status 1. No addresses are printed.
 *
 * Build: gcc -O2 -static -o mmap_pattern mmap_pattern.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "check.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PAGE 4096ul


static unsigned char pat(size_t i, unsigned seed)
{
	return (unsigned char)((i * 131 + seed * 7 + (i >> 12)) ^ (i >> 7));
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(i, seed);
}

static int has(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(i, seed))
			return 0;
	return 1;
}

/* has_at checks bytes [off, off+n) of a buffer filled from offset 0. */
static int has_at(const unsigned char *p, size_t off, size_t n, unsigned seed)
{
	for (size_t i = off; i < off + n; i++)
		if (p[i] != pat(i, seed))
			return 0;
	return 1;
}

static int zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void *map(size_t n, int prot, int flags)
{
	return mmap(NULL, n, prot, flags | MAP_ANONYMOUS, -1, 0);
}

/* efault reports whether the kernel refuses to write n bytes at p. */
static int efault_write(void *p, size_t n)
{
	long r = syscall(SYS_getrandom, p, n, 0);
	return r == -1 && errno == EFAULT;
}

static void sizes(void)
{
	static const size_t sz[] = {PAGE, 3 * PAGE, 64 << 10, 1 << 20, 16 << 20};
	static const char *name[] = {"4 KiB", "12 KiB", "64 KiB", "1 MiB", "16 MiB"};
	char line[128];
	unsigned char *p;
	for (unsigned i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		p = map(sz[i], PROT_READ | PROT_WRITE, MAP_PRIVATE);
		snprintf(line, sizeof line, "mmap %s succeeds", name[i]);
		check(p != MAP_FAILED, line);
		if (p == MAP_FAILED)
			continue;
		snprintf(line, sizeof line, "mmap %s is page aligned", name[i]);
		check(((uintptr_t)p & (PAGE - 1)) == 0, line);
		snprintf(line, sizeof line, "mmap %s is zero-filled", name[i]);
		check(zero(p, sz[i]), line);
		fill(p, sz[i], i);
		snprintf(line, sizeof line, "mmap %s holds a pattern", name[i]);
		check(has(p, sz[i], i), line);
		snprintf(line, sizeof line, "munmap %s succeeds", name[i]);
		check(munmap(p, sz[i]) == 0, line);
	}
	/* Big sparse mapping: only the touched pages need memory. */
	size_t big = 1ul << 30;
	p = map(big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE);
	check(p != MAP_FAILED, "mmap 1 GiB succeeds");
	if (p != MAP_FAILED) {
		p[0] = 1;
		p[big / 2 + 123] = 2;
		p[big - 1] = 3;
		check(p[0] == 1 && p[big / 2 + 123] == 2 && p[big - 1] == 3 && p[PAGE] == 0 && p[big - PAGE] == 0,
		      "sparse 1 GiB mapping keeps touched bytes and reads zero elsewhere");
		check(munmap(p, big) == 0, "munmap 1 GiB succeeds");
	}
	errno = 0;
	check(map(1ul << 47, PROT_READ, MAP_PRIVATE) == MAP_FAILED && errno == ENOMEM,
	      "mmap larger than the address space fails with ENOMEM");
	errno = 0;
	check(map(~0ul - PAGE, PROT_READ, MAP_PRIVATE) == MAP_FAILED && errno == ENOMEM,
	      "mmap of a length that overflows when rounded fails with ENOMEM");

	/* A length that is not a page multiple is rounded up. */
	p = map(PAGE + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	check(p != MAP_FAILED, "mmap of 4097 bytes succeeds");
	if (p != MAP_FAILED) {
		fill(p, 2 * PAGE, 9);
		check(has(p, 2 * PAGE, 9), "mmap of 4097 bytes maps two whole pages");
		check(munmap(p, PAGE + 1) == 0, "munmap of 4097 bytes succeeds");
	}
}

static void protect(void)
{
	size_t n = 8 * PAGE;
	unsigned char *p = map(n, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (p == MAP_FAILED) {
		check(0, "mmap for mprotect");
		return;
	}
	fill(p, n, 1);
	check(mprotect(p, n, PROT_READ) == 0, "mprotect PROT_READ succeeds");
	check(has(p, n, 1), "contents readable after mprotect PROT_READ");
	check(efault_write(p + PAGE, 16), "syscall writing into a PROT_READ page fails with EFAULT");
	check(has(p, n, 1), "failed syscall left PROT_READ page unchanged");
	check(mprotect(p + 2 * PAGE, 2 * PAGE, PROT_NONE) == 0, "mprotect PROT_NONE on a sub-range succeeds");
	check(efault_write(p + 2 * PAGE, 16), "syscall writing into a PROT_NONE page fails with EFAULT");
	check(mprotect(p, n, PROT_READ | PROT_WRITE) == 0, "mprotect back to PROT_READ|PROT_WRITE succeeds");
	check(has(p, n, 1), "contents kept across mprotect round trips");
	fill(p, n, 2);
	check(has(p, n, 2), "pages writable again after mprotect");
	check(syscall(SYS_getrandom, p + PAGE, 16, 0) == 16, "syscall writing into a writable page succeeds");
	check(has_at(p, 2 * PAGE, n - 2 * PAGE, 2), "syscall wrote only where asked");
	check(munmap(p, n) == 0, "munmap after mprotect succeeds");

	/* PROT_NONE reservation made usable later. */
	p = map(4 * PAGE, PROT_NONE, MAP_PRIVATE);
	check(p != MAP_FAILED, "mmap PROT_NONE succeeds");
	if (p != MAP_FAILED) {
		check(mprotect(p + PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect inside a PROT_NONE reservation succeeds");
		check(zero(p + PAGE, PAGE), "page made accessible is zero-filled");
		fill(p + PAGE, PAGE, 3);
		check(has(p + PAGE, PAGE, 3), "page made accessible holds a pattern");
		check(munmap(p, 4 * PAGE) == 0, "munmap of the reservation succeeds");
	}

	errno = 0;
	check(mprotect(p, PAGE, PROT_READ) == -1 && errno == ENOMEM, "mprotect of unmapped memory fails with ENOMEM");
	errno = 0;
	check(mprotect((char *)p + 1, PAGE, PROT_READ) == -1 && errno == EINVAL, "mprotect of an unaligned address fails with EINVAL");
}

static void holes(void)
{
	size_t n = 16 * PAGE;
	unsigned char *p = map(n, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (p == MAP_FAILED) {
		check(0, "mmap for munmap hole");
		return;
	}
	fill(p, n, 4);
	check(munmap(p + 5 * PAGE, 3 * PAGE) == 0, "munmap of a middle part succeeds");
	check(efault_write(p + 6 * PAGE, 8), "syscall writing into the unmapped hole fails with EFAULT");
	check(has(p, 5 * PAGE, 4) && has_at(p, 8 * PAGE, 8 * PAGE, 4), "pages around the hole keep their contents");
	unsigned char *q = mmap(p + 5 * PAGE, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	check(q == p + 5 * PAGE, "MAP_FIXED refills the hole at the requested address");
	check(zero(p + 5 * PAGE, 3 * PAGE), "refilled hole is zero-filled");
	check(has(p, 5 * PAGE, 4) && has_at(p, 8 * PAGE, 8 * PAGE, 4), "MAP_FIXED did not disturb neighbours");

	/* MAP_FIXED over existing memory replaces it with zeroes. */
	q = mmap(p + 10 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	check(q == p + 10 * PAGE && zero(q, PAGE), "MAP_FIXED over a mapped page replaces it with zeroes");
	check(has_at(p, 9 * PAGE, PAGE, 4) && has_at(p, 11 * PAGE, PAGE, 4), "MAP_FIXED replacement kept its neighbours");

	errno = 0;
	q = mmap(p + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	check(q == MAP_FAILED && errno == EEXIST, "MAP_FIXED_NOREPLACE on an existing range fails with EEXIST");
	check(has(p, 5 * PAGE, 4), "failed MAP_FIXED_NOREPLACE left the range intact");

	check(munmap(p + 12 * PAGE, 4 * PAGE) == 0, "munmap of the tail succeeds");
	q = mmap(p + 12 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	check(q == p + 12 * PAGE, "MAP_FIXED_NOREPLACE on a free range maps at that address");
	check(munmap(p, 13 * PAGE) == 0, "munmap spanning several mappings succeeds");
	check(munmap(p, 16 * PAGE) == 0, "munmap of an already unmapped range succeeds");
	check(efault_write(p, 8), "syscall writing into unmapped memory fails with EFAULT");

	errno = 0;
	check(munmap((char *)p + 1, PAGE) == -1 && errno == EINVAL, "munmap of an unaligned address fails with EINVAL");
	errno = 0;
	check(map(0, PROT_READ, MAP_PRIVATE) == MAP_FAILED && errno == EINVAL, "mmap of length 0 fails with EINVAL");
	errno = 0;
	check(mmap(NULL, PAGE, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL,
	      "mmap without MAP_PRIVATE or MAP_SHARED fails with EINVAL");
	errno = 0;
	check(mmap((char *)p + 1, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED &&
		      errno == EINVAL,
	      "MAP_FIXED at an unaligned address fails with EINVAL");
}

static void remap(void)
{
	/* grow in place when the following range is free */
	unsigned char *p = map(3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (p == MAP_FAILED) {
		check(0, "mmap for mremap");
		return;
	}
	check(munmap(p + 2 * PAGE, PAGE) == 0, "munmap to free space after a mapping succeeds");
	fill(p, 2 * PAGE, 5);
	unsigned char *q = mremap(p, 2 * PAGE, 3 * PAGE, 0);
	check(q == p, "mremap grows in place when the space after is free");
	if (q == p) {
		check(has(p, 2 * PAGE, 5) && zero(p + 2 * PAGE, PAGE), "in-place growth keeps contents and zero-fills the tail");
	}

	/* growing without MREMAP_MAYMOVE into an occupied range fails */
	unsigned char *blocker = mmap(p + 3 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (blocker == p + 3 * PAGE) {
		errno = 0;
		q = mremap(p, 3 * PAGE, 5 * PAGE, 0);
		check(q == MAP_FAILED && errno == ENOMEM, "mremap growth into an occupied range without MAYMOVE fails with ENOMEM");
		check(has(p, 2 * PAGE, 5), "failed mremap left contents intact");
		munmap(blocker, PAGE);
	} else {
		printf("mremap growth into an occupied range without MAYMOVE fails with ENOMEM\n");
		printf("failed mremap left contents intact\n");
		if (blocker != MAP_FAILED)
			munmap(blocker, PAGE);
	}
	munmap(p, 3 * PAGE);

	/* grow with MREMAP_MAYMOVE: a 1 MiB mapping boxed in by a neighbour */
	size_t n = 1 << 20;
	p = map(n + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (p == MAP_FAILED) {
		check(0, "mmap for mremap MAYMOVE");
		return;
	}
	check(mprotect(p + n, PAGE, PROT_READ) == 0, "mprotect a guard neighbour succeeds");
	fill(p, n, 6);
	q = mremap(p, n, 4 * n, MREMAP_MAYMOVE);
	check(q != MAP_FAILED, "mremap MREMAP_MAYMOVE grow succeeds");
	if (q != MAP_FAILED) {
		check(has(q, n, 6), "mremap grow keeps contents");
		check(zero(q + n, 3 * n), "mremap grow zero-fills the new part");
		fill(q, 4 * n, 7);
		check(has(q, 4 * n, 7), "grown mapping holds a pattern");
		unsigned char *r = mremap(q, 4 * n, n, 0);
		check(r == q, "mremap shrink stays in place");
		check(has(r, n, 7), "mremap shrink keeps contents");
		check(efault_write(q + 2 * n, 8), "memory past a shrunk mapping is unmapped");
		munmap(r, n);
	}
	munmap(p + n, PAGE);

	/* MREMAP_FIXED moves to a chosen address */
	p = map(2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned char *dst = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (p != MAP_FAILED && dst != MAP_FAILED) {
		fill(p, 2 * PAGE, 8);
		q = mremap(p, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst + PAGE);
		check(q == dst + PAGE, "mremap MREMAP_FIXED moves to the requested address");
		check(has(q, 2 * PAGE, 8), "mremap MREMAP_FIXED keeps contents");
		check(efault_write(p, 8), "old range is unmapped after a move");
		munmap(dst, 4 * PAGE);
	} else {
		check(0, "mmap for mremap MREMAP_FIXED");
	}
	errno = 0;
	check(mremap(p, PAGE, 2 * PAGE, MREMAP_MAYMOVE) == MAP_FAILED && errno == EFAULT,
	      "mremap of unmapped memory fails with EFAULT");
}

static void advise(void)
{
	size_t n = 8 * PAGE;
	unsigned char *p = map(n, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (p == MAP_FAILED) {
		check(0, "mmap for madvise");
		return;
	}
	fill(p, n, 10);
	check(madvise(p + 2 * PAGE, 2 * PAGE, MADV_DONTNEED) == 0, "madvise MADV_DONTNEED succeeds");
	check(zero(p + 2 * PAGE, 2 * PAGE), "MADV_DONTNEED zeroes private anonymous pages");
	check(has(p, 2 * PAGE, 10) && has_at(p, 4 * PAGE, 4 * PAGE, 10), "MADV_DONTNEED left other pages alone");
	check(madvise(p, n, MADV_WILLNEED) == 0, "madvise MADV_WILLNEED succeeds");
	check(madvise(p, n, MADV_NORMAL) == 0, "madvise MADV_NORMAL succeeds");
	check(has(p, 2 * PAGE, 10), "advice hints keep contents");
	munmap(p, n);

	/* Shared anonymous memory is backed by a shmem object: DONTNEED only
	 * drops the page table entries, the data stays. */
	p = map(n, PROT_READ | PROT_WRITE, MAP_SHARED);
	check(p != MAP_FAILED, "mmap MAP_SHARED|MAP_ANONYMOUS succeeds");
	if (p != MAP_FAILED) {
		check(zero(p, n), "shared anonymous memory is zero-filled");
		fill(p, n, 11);
		check(has(p, n, 11), "shared anonymous memory holds a pattern");
		check(madvise(p, n, MADV_DONTNEED) == 0, "madvise MADV_DONTNEED on shared memory succeeds");
		check(has(p, n, 11), "MADV_DONTNEED keeps shared anonymous contents");
		munmap(p, n);
	}
}

typedef int (*fn)(void);

static void jit(void)
{
	/* mov eax, imm32 ; ret */
	unsigned char code[] = {0xb8, 0, 0, 0, 0, 0xc3};
	unsigned char *p = map(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	if (p == MAP_FAILED) {
		check(0, "mmap for code");
		return;
	}
	code[1] = 42;
	memcpy(p, code, sizeof code);
	check(mprotect(p, PAGE, PROT_READ | PROT_EXEC) == 0, "mprotect PROT_READ|PROT_EXEC succeeds");
	int v = ((fn)p)();
	check(v == 42, "generated code returns 42");
	check(mprotect(p, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect code page back to writable succeeds");
	p[1] = 43;
	check(mprotect(p, PAGE, PROT_READ | PROT_EXEC) == 0, "mprotect patched code executable succeeds");
	v = ((fn)p)();
	check(v == 43, "patched code returns 43");
	munmap(p, PAGE);

	/* A fresh mapping at the same address must run the new code. */
	unsigned char *q = mmap(p, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (q == p) {
		code[1] = 44;
		memcpy(q, code, sizeof code);
		v = ((fn)q)();
		check(v == 44, "code remapped at the same address returns 44");
		munmap(q, PAGE);
	} else {
		printf("code remapped at the same address returns 44\n");
		if (q != MAP_FAILED)
			munmap(q, PAGE);
	}
}

static void uname_into_readonly(void)
{
	struct utsname *u = map(sizeof(struct utsname) + PAGE, PROT_READ, MAP_PRIVATE);
	if (u == MAP_FAILED) {
		check(0, "mmap for uname");
		return;
	}
	errno = 0;
	check(syscall(SYS_uname, u) == -1 && errno == EFAULT, "uname into read-only memory fails with EFAULT");
	munmap(u, sizeof(struct utsname) + PAGE);
}

int main(void)
{
	sizes();
	protect();
	holes();
	remap();
	advise();
	jit();
	uname_into_readonly();
	printf(failures ? "mmap_pattern: %d failures\n" : "mmap_pattern: ok\n", failures);
	return failures ? 1 : 0;
}
