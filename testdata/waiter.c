/*
 * waiter: prints "ready" and then waits in one of three ways until a signal
 * ends it, so tests can check that signals sent to runsc reach the app
 * whatever it is doing:
 *
 *   waiter sleep   blocked in nanosleep
 *   waiter read    blocked in read(0) on a pipe that never delivers
 *   waiter spin    running app code in a loop, making no system calls
 *
 * Build: gcc -O2 -static -o waiter waiter.c
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "sleep";
	write(1, "ready\n", 6);
	if (strcmp(mode, "read") == 0) {
		char c;
		read(0, &c, 1);
		puts("read returned");
	} else if (strcmp(mode, "spin") == 0) {
		volatile unsigned long n = 0;
		for (;;)
			n++;
	} else {
		struct timespec ts = {60, 0};
		nanosleep(&ts, NULL);
		puts("sleep finished");
	}
	return 0;
}
