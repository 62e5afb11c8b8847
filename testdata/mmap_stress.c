/*
 * mmap_stress: 100,000 random mmap/munmap/mprotect operations (fixed seed)
 * over 64 slots. Every live region holds a pattern that is checked before
 * it changes; every munmap is followed, now and then, by a MAP_FIXED_NOREPLACE
 * mapping at the same address that must read as zeros, which a stale TLB
 * entry or shadow page table would betray. Prints operation counts and ok.
 *
 * Build: gcc -O2 -static -o mmap_stress mmap_stress.c
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define SLOTS 64
#define PAGE 4096

struct slot {
	unsigned char *addr;
	size_t pages;
	unsigned tag;
	int readonly;
};

static struct slot slots[SLOTS];
static uint64_t seed = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n)
{
	seed = seed * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)(seed >> 33) % n;
}

static void fill(struct slot *s)
{
	for (size_t p = 0; p < s->pages; p++)
		memset(s->addr + p * PAGE, (int)((s->tag + p) & 0xff), PAGE);
}

static int verify(struct slot *s)
{
	for (size_t p = 0; p < s->pages; p++) {
		unsigned char want = (unsigned char)((s->tag + p) & 0xff);
		unsigned char *q = s->addr + p * PAGE;
		if (q[0] != want || q[PAGE / 2] != want || q[PAGE - 1] != want)
			return 0;
	}
	return 1;
}

int main(void)
{
	long maps = 0, unmaps = 0, protects = 0, fresh = 0, bad = 0;
	for (long op = 0; op < 100000; op++) {
		struct slot *s = &slots[rnd(SLOTS)];
		if (!s->addr) {
			s->pages = 1 + rnd(4);
			s->addr = mmap(NULL, s->pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (s->addr == MAP_FAILED) {
				printf("FAIL: mmap\n");
				return 1;
			}
			s->tag = (unsigned)op;
			s->readonly = 0;
			fill(s);
			maps++;
			continue;
		}
		if (!verify(s)) {
			bad++;
			printf("FAIL: contents changed before op %ld\n", op);
		}
		switch (rnd(3)) {
		case 0: /* unmap, and sometimes check the hole reads fresh */
			munmap(s->addr, s->pages * PAGE);
			unmaps++;
			if (rnd(4) == 0) {
				unsigned char *r = mmap(s->addr, s->pages * PAGE, PROT_READ | PROT_WRITE,
							MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
				if (r != s->addr) {
					bad++;
					printf("FAIL: address not free after munmap\n");
				} else {
					for (size_t p = 0; p < s->pages; p++)
						if (r[p * PAGE] != 0 || r[p * PAGE + PAGE - 1] != 0) {
							bad++;
							printf("FAIL: stale contents after munmap\n");
							break;
						}
					munmap(r, s->pages * PAGE);
					fresh++;
				}
			}
			s->addr = NULL;
			break;
		case 1: /* read-only and back, contents kept */
			mprotect(s->addr, s->pages * PAGE, PROT_READ);
			protects++;
			if (!verify(s)) {
				bad++;
				printf("FAIL: contents changed by mprotect\n");
			}
			mprotect(s->addr, s->pages * PAGE, PROT_READ | PROT_WRITE);
			protects++;
			break;
		case 2: /* rewrite with a new tag */
			s->tag = (unsigned)op;
			fill(s);
			break;
		}
	}
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].addr && !verify(&slots[i]))
			bad++;
	printf("maps %ld unmaps %ld protects %ld fresh-checks %ld\n", maps, unmaps, protects, fresh);
	printf(bad ? "mmap_stress: %ld failures\n" : "mmap_stress: ok\n", bad);
	return bad != 0;
}
