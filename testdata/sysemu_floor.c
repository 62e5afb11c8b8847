/*
 * sysemu_floor: the floor of a ptrace platform's syscall round trip. A
 * child makes raw getpid calls forever under PTRACE_SYSEMU; the parent
 * (tracer) only resumes it, N times, with tracer and tracee pinned to one
 * CPU as the ptrace platform pins them. "sysemu_floor N" prints
 *
 *   ns_per_call <float>
 *
 * The ptrace platform's getpid round trip compared with this figure shows
 * what the Sentry and its register traffic add.
 *
 * Build: gcc -O2 -static -o sysemu_floor sysemu_floor.c
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_SYSEMU
#define PTRACE_SYSEMU 31
#endif

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof set, &set);
	pid_t child = fork();
	if (child == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		for (;;)
			syscall(SYS_getpid);
	}
	int status;
	waitpid(child, &status, 0);
	ptrace(PTRACE_SETOPTIONS, child, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (ptrace(PTRACE_SYSEMU, child, 0, 0) != 0 || waitpid(child, &status, __WALL) != child) {
			perror("sysemu");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("ns_per_call %.2f\n", ns / (double)n);
	return 0;
}
