/*
 * malloc_churn: allocates and frees about 100 MB in total through glibc
 * malloc in a deterministic churn pattern. Small blocks come from the brk
 * heap; blocks above glibc's mmap threshold (128 KiB initially) come from
 * anonymous mmap, and once glibc raises its dynamic threshold also from a
 * heap that grows and is trimmed with brk. Each block is filled with a
 * pattern derived from a fixed-seed PRNG and verified before it is freed or
 * reallocated; calloc blocks must arrive zeroed, which catches a kernel
 * that hands back stale memory after brk shrink/grow or munmap/mmap.
 * After the first 40 MB, mallopt pins the mmap threshold at 128 KiB and the
 * trim threshold at 64 KiB, so the rest churns mmap/munmap and brk
 * grow/shrink hard.
 *
 * Output (deterministic): counts, a checksum of the pattern data, "ok".
 *
 * Build: gcc -O2 -static -o malloc_churn malloc_churn.c
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 256
#define TOTAL (100ull << 20)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

struct slot {
	unsigned char *p;
	size_t n;
	uint32_t seed;
};

static struct slot slots[SLOTS];
static uint64_t checksum = 1469598103934665603ull; /* FNV-1a offset basis */
static unsigned long bad, nmalloc, ncalloc, nrealloc, nfree, nlarge;

static unsigned char pat(uint32_t seed, size_t i)
{
	uint32_t x = seed + (uint32_t)i * 2654435761u;
	return (unsigned char)(x ^ (x >> 13) ^ (x >> 24));
}

static void fill(struct slot *s, size_t from)
{
	for (size_t i = from; i < s->n; i++)
		s->p[i] = pat(s->seed, i);
}

/* verify checks the pattern in [0, upto) and folds it into the checksum. */
static void verify(struct slot *s, size_t upto)
{
	for (size_t i = 0; i < upto; i++) {
		unsigned char c = s->p[i];
		if (c != pat(s->seed, i)) {
			bad++;
			return;
		}
	}
	/* Sample the data into the checksum (every 61st byte and the ends). */
	for (size_t i = 0; i < upto; i += 61)
		checksum = (checksum ^ s->p[i]) * 1099511628211ull;
	if (upto)
		checksum = (checksum ^ s->p[upto - 1]) * 1099511628211ull;
	checksum = (checksum ^ upto) * 1099511628211ull;
}

static size_t pick_size(void)
{
	uint64_t r = next() % 100;
	if (r < 65)
		return 1 + next() % 512; /* tiny: tcache/fastbins */
	if (r < 85)
		return 512 + next() % (16 << 10); /* small: brk heap */
	if (r < 95)
		return (16 << 10) + next() % (64 << 10); /* medium, below threshold */
	return (128 << 10) + next() % (384 << 10); /* large: mmap (initially) */
}

int main(void)
{
	uint64_t total = 0;
	int tuned = 0;
	while (total < TOTAL) {
		if (!tuned && total >= (40ull << 20)) {
			if (mallopt(M_MMAP_THRESHOLD, 128 << 10) != 1 || mallopt(M_TRIM_THRESHOLD, 64 << 10) != 1) {
				printf("FAIL: mallopt\n");
				return 1;
			}
			tuned = 1;
		}
		struct slot *s = &slots[next() % SLOTS];
		uint64_t op = next() % 10;
		if (s->p && op < 2) {
			/* realloc: keep the old prefix, extend with fresh pattern */
			size_t n = pick_size();
			unsigned char *q = realloc(s->p, n);
			if (!q) {
				printf("FAIL: realloc(%zu) returned NULL\n", n);
				return 1;
			}
			s->p = q;
			verify(s, n < s->n ? n : s->n);
			size_t old = s->n;
			s->n = n;
			if (n > old)
				fill(s, old);
			total += n;
			nrealloc++;
			continue;
		}
		if (s->p) {
			verify(s, s->n);
			free(s->p);
			s->p = NULL;
			nfree++;
		}
		size_t n = pick_size();
		if (n >= (128 << 10))
			nlarge++;
		s->seed = (uint32_t)next();
		s->n = n;
		if (op < 5) {
			s->p = calloc(1, n);
			if (s->p) {
				for (size_t i = 0; i < n; i++)
					if (s->p[i] != 0) {
						printf("FAIL: calloc(%zu) memory not zeroed at offset %zu\n", n, i);
						return 1;
					}
			}
			ncalloc++;
		} else {
			s->p = malloc(n);
			nmalloc++;
		}
		if (!s->p) {
			printf("FAIL: allocation of %zu bytes returned NULL\n", n);
			return 1;
		}
		fill(s, 0);
		total += n;
	}
	for (int i = 0; i < SLOTS; i++) {
		if (slots[i].p) {
			verify(&slots[i], slots[i].n);
			free(slots[i].p);
			slots[i].p = NULL;
			nfree++;
		}
	}
	/*
	 * Everything is freed and the heap trimmed; now large blocks come
	 * straight from mmap and go back with munmap. Keep a few alive at a
	 * time so unmaps happen in the middle of the mapped area.
	 */
	for (int i = 0; i < 120; i++) {
		struct slot *s = &slots[i % 4];
		if (s->p) {
			verify(s, s->n);
			free(s->p);
			nfree++;
		}
		s->n = (256 << 10) + (size_t)(next() % 64) * 4096 + (size_t)(next() % 4096);
		s->seed = (uint32_t)next();
		s->p = malloc(s->n);
		if (!s->p) {
			printf("FAIL: allocation of %zu bytes returned NULL\n", s->n);
			return 1;
		}
		fill(s, 0);
		nmalloc++;
		nlarge++;
	}
	for (int i = 0; i < 4; i++) {
		verify(&slots[i], slots[i].n);
		free(slots[i].p);
		nfree++;
	}
	printf("allocated at least %llu MiB\n", (unsigned long long)(TOTAL >> 20));
	printf("malloc=%lu calloc=%lu realloc=%lu free=%lu large=%lu\n", nmalloc, ncalloc, nrealloc, nfree, nlarge);
	printf("checksum=%016llx\n", (unsigned long long)checksum);
	if (bad) {
		printf("FAIL: %lu blocks lost their pattern\n", bad);
		return 1;
	}
	printf("ok\n");
	return 0;
}
