/*
 * getpid_loop: syscall round-trip benchmark. "getpid_loop N" makes N raw
 * getpid system calls (no libc caching, no vDSO) and prints one line
 *
 *   ns_per_call <float>
 *
 * measured with CLOCK_MONOTONIC around the loop. The output is a
 * measurement, not compared between native and sandboxed runs.
 *
 * Build: gcc -O2 -static -o getpid_loop getpid_loop.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	if (n <= 0) {
		fprintf(stderr, "usage: getpid_loop N (N > 0)\n");
		return 2;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(SYS_getpid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("ns_per_call %.2f\n", ns / (double)n);
	return 0;
}
