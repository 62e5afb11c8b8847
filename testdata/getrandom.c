/*
 * getrandom: checks getrandom(2): full-length results, two calls differ,
 * GRND_NONBLOCK works, zero-length and invalid-flag behaviour, and a crude
 * byte histogram over 1 MiB (catches constant, short-period or zero-padded
 * output). Random bytes themselves are never printed.
 *
 * Build: gcc -O2 -static -o getrandom getrandom.c
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"


static unsigned char big[1 << 20];

int main(void)
{
	unsigned char a[64], b[64], c[64];
	memset(a, 0, sizeof a);
	memset(b, 0, sizeof b);
	ssize_t n = getrandom(a, sizeof a, 0);
	check(n == 64, "getrandom returned 64");
	n = getrandom(b, sizeof b, 0);
	check(n == 64, "getrandom returned 64");
	check(memcmp(a, b, sizeof a) != 0, "two calls differ");
	int nz = 0;
	for (int i = 0; i < 64; i++)
		nz += a[i] != 0;
	check(nz > 32, "result is not mostly zero");

	n = getrandom(c, sizeof c, GRND_NONBLOCK);
	check(n == 64, "getrandom GRND_NONBLOCK returned 64");
	check(memcmp(a, c, sizeof a) != 0 && memcmp(b, c, sizeof b) != 0, "GRND_NONBLOCK result differs from earlier calls");

	/* Tail of the buffer past the requested length stays untouched. */
	memset(c, 0xAA, sizeof c);
	n = syscall(SYS_getrandom, c, 10, 0);
	int tail = 1;
	for (int i = 10; i < 64; i++)
		tail &= c[i] == 0xAA;
	check(n == 10 && tail, "getrandom of 10 bytes writes exactly 10 bytes");

	n = syscall(SYS_getrandom, c, 0, 0);
	check(n == 0, "getrandom of 0 bytes returns 0");
	errno = 0;
	n = syscall(SYS_getrandom, c, sizeof c, 0x1000);
	check(n == -1 && errno == EINVAL, "getrandom with unknown flags fails with EINVAL");
	errno = 0;
	n = syscall(SYS_getrandom, (void *)8, 16, 0);
	check(n == -1 && errno == EFAULT, "getrandom into a bad pointer fails with EFAULT");

	/* 1 MiB in one call; Linux returns it all for urandom-class reads. */
	size_t got = 0;
	int calls = 0;
	while (got < sizeof big && calls < 1000) {
		n = getrandom(big + got, sizeof big - got, 0);
		if (n <= 0)
			break;
		got += n;
		calls++;
	}
	check(got == sizeof big, "1 MiB of randomness read");
	unsigned long hist[256] = {0};
	for (size_t i = 0; i < got; i++)
		hist[big[i]]++;
	/* expected 4096 per value, sd 64: allow about +-15 sd */
	int ok = got == sizeof big;
	for (int i = 0; i < 256; i++)
		ok &= hist[i] > 3100 && hist[i] < 5100;
	check(ok, "1 MiB byte histogram is roughly uniform");
	int period = 0;
	for (size_t off = 64; off + 64 <= got; off += 64)
		period |= memcmp(big, big + off, 64) == 0;
	check(!period, "no 64-byte block repeats the first one");

	printf(failures ? "getrandom: %d failures\n" : "getrandom: ok\n", failures);
	return failures ? 1 : 0;
}
