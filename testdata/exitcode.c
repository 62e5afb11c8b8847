/*
 * exitcode: ends the process in the way argv[1] asks, so the harness can
 * compare exit statuses (signal deaths appear as 128+N):
 *
 *   exitcode N          print a line, then exit(N)       (status N & 0xff)
 *   exitcode return N   return N from main
 *   exitcode _exit N    _exit(N): unflushed stdio output is lost
 *   exitcode sysexit N  raw SYS_exit (not exit_group) of the only thread
 *   exitcode segv       store through a NULL pointer     (SIGSEGV, 139)
 *   exitcode abort      abort()                          (SIGABRT, 134)
 *   exitcode ill        ud2                              (SIGILL, 132)
 *   exitcode fpe        integer division by zero         (SIGFPE, 136)
 *   exitcode trap       int3                             (SIGTRAP, 133)
 *
 * Build: gcc -O2 -static -o exitcode exitcode.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: exitcode N | return N | _exit N | sysexit N | segv | abort | ill | fpe | trap\n");
		return 2;
	}
	const char *mode = argv[1];
	int n = argc > 2 ? atoi(argv[2]) : 0;
	printf("mode %s\n", mode);
	if (strcmp(mode, "return") == 0) {
		printf("returning %d\n", n);
		return n;
	}
	if (strcmp(mode, "_exit") == 0) {
		printf("this line is buffered and lost\n");
		_exit(n);
	}
	if (strcmp(mode, "sysexit") == 0) {
		printf("raw exit %d\n", n);
		fflush(stdout);
		syscall(SYS_exit, n);
		printf("FAIL: SYS_exit returned\n");
		return 99;
	}
	if (strcmp(mode, "segv") == 0) {
		printf("storing through NULL\n");
		fflush(stdout);
		*(volatile int *)0 = 1;
		printf("FAIL: survived a NULL store\n");
		return 99;
	}
	if (strcmp(mode, "abort") == 0) {
		printf("calling abort\n");
		fflush(stdout);
		abort();
	}
	if (strcmp(mode, "ill") == 0) {
		printf("executing ud2\n");
		fflush(stdout);
		__asm__ volatile("ud2");
		printf("FAIL: survived ud2\n");
		return 99;
	}
	if (strcmp(mode, "fpe") == 0) {
		printf("dividing by zero\n");
		fflush(stdout);
		volatile int zero = 0;
		volatile int r = 1000 / zero;
		(void)r;
		printf("FAIL: survived division by zero\n");
		return 99;
	}
	if (strcmp(mode, "trap") == 0) {
		printf("executing int3\n");
		fflush(stdout);
		__asm__ volatile("int3");
		printf("FAIL: survived int3\n");
		return 99;
	}
	n = atoi(mode);
	printf("exiting with %d\n", n);
	exit(n);
}
