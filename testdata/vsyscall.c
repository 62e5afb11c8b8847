/*
 * vsyscall: calls the legacy vsyscall page (time, gettimeofday, getcpu at
 * 0xffffffffff600000), as very old static binaries do. The host kernel
 * emulates these calls; in the sandbox the Sentry must serve them, never
 * the host behind its back. Where the host has vsyscall=none both runs die
 * of SIGSEGV alike.
 *
 * Build: gcc -O2 -static -o vsyscall vsyscall.c
 */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "check.h"

int main(void)
{
	time_t (*vtime)(time_t *) = (void *)0xffffffffff600400;
	int (*vgettimeofday)(struct timeval *, void *) = (void *)0xffffffffff600000;
	long (*vgetcpu)(unsigned *, unsigned *, void *) = (void *)0xffffffffff600800;

	time_t t0 = time(NULL);
	time_t stored = 0;
	time_t v = vtime(&stored);
	check(v >= t0 && v - t0 < 3, "vsyscall time agrees with time()");
	check(stored == v, "vsyscall time stores its result");

	struct timeval tv;
	int r = vgettimeofday(&tv, NULL);
	check(r == 0 && tv.tv_sec >= t0 && tv.tv_sec - t0 < 3, "vsyscall gettimeofday agrees with time()");

	unsigned cpu = 9999, node = 9999;
	long g = vgetcpu(&cpu, &node, NULL);
	check(g == 0 && cpu < 4096 && node < 1024, "vsyscall getcpu returns a plausible cpu and node");
	printf(failures ? "vsyscall: %d failures\n" : "vsyscall: ok\n", failures);
	return failures != 0;
}
