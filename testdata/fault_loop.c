/*
 * fault_loop: page-fault benchmark. "fault_loop ROUNDS" maps 256 fresh
 * anonymous pages per round, writes one byte to each (the first touch of
 * each page faults), and unmaps them; it prints one line
 *
 *   ns_per_call <float>
 *
 * the mean time per first touch, measured with CLOCK_MONOTONIC. The output
 * is a measurement, not compared between native and sandboxed runs.
 *
 * Build: gcc -O2 -static -o fault_loop fault_loop.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGES 256

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 100;
	if (rounds <= 0) {
		fprintf(stderr, "usage: fault_loop ROUNDS (ROUNDS > 0)\n");
		return 2;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long r = 0; r < rounds; r++) {
		volatile char *p = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		for (int i = 0; i < PAGES; i++)
			p[i * 4096] = 1;
		munmap((void *)p, PAGES * 4096);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("ns_per_call %.2f\n", ns / (double)(rounds * PAGES));
	return 0;
}
