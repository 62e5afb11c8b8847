/*
 * clock: checks time syscalls: CLOCK_MONOTONIC never goes backwards over
 * many reads, CLOCK_REALTIME agrees with time() and gettimeofday(), clock
 * resolutions, nanosleep/clock_nanosleep (relative and TIMER_ABSTIME) sleep at
 * least as long as asked, realtime and monotonic advance together, and
 * EINVAL for bad arguments. Only properties are printed, never times.
 *
 * Build: gcc -O2 -static -o clock clock.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


static int64_t ns(clockid_t c)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		return -1;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int valid(const struct timespec *ts)
{
	return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000;
}

int main(void)
{
	struct timespec ts;

	/* monotonic */
	int ok = 1, bad_ts = 0;
	int64_t prev = ns(CLOCK_MONOTONIC);
	for (int i = 0; i < 100000; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		bad_ts |= !valid(&ts);
		int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		if (now < prev)
			ok = 0;
		prev = now;
	}
	check(prev > 0, "clock_gettime(CLOCK_MONOTONIC) works");
	check(ok, "clock is monotonic");
	check(!bad_ts, "monotonic tv_nsec is in range");
	/* raw syscall path too (glibc may use the vDSO natively) */
	struct timespec raw;
	check(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &raw) == 0 && valid(&raw), "raw clock_gettime syscall works");
	check(ns(CLOCK_MONOTONIC) >= (int64_t)raw.tv_sec * 1000000000 + raw.tv_nsec, "vDSO-or-libc and raw monotonic agree in order");

	/* realtime vs time() vs gettimeofday() */
	clock_gettime(CLOCK_REALTIME, &ts);
	check(valid(&ts), "realtime tv_nsec is in range");
	time_t t = time(NULL);
	long long d = (long long)t - (long long)ts.tv_sec;
	check(d >= -2 && d <= 2, "realtime agrees with time()");
	time_t t2;
	check(time(&t2) == t2, "time() stores its result");
	check(ts.tv_sec > 1577836800, "realtime is after 2020-01-01");
	struct timeval tv;
	check(gettimeofday(&tv, NULL) == 0, "gettimeofday succeeds");
	d = (long long)tv.tv_sec - (long long)ts.tv_sec;
	check(d >= -2 && d <= 2, "gettimeofday agrees with clock_gettime(CLOCK_REALTIME)");
	check(tv.tv_usec >= 0 && tv.tv_usec < 1000000, "gettimeofday tv_usec is in range");
	check(syscall(SYS_time, NULL) >= t, "raw time syscall works");

	/* resolution */
	check(clock_getres(CLOCK_MONOTONIC, &ts) == 0, "clock_getres(CLOCK_MONOTONIC) succeeds");
	check(ts.tv_sec == 0 && ts.tv_nsec > 0 && ts.tv_nsec <= 1000000, "monotonic resolution is at most 1ms");
	check(clock_getres(CLOCK_REALTIME, &ts) == 0 && ts.tv_sec == 0 && ts.tv_nsec > 0 && ts.tv_nsec <= 1000000,
	      "realtime resolution is at most 1ms");
	check(clock_getres(CLOCK_MONOTONIC, NULL) == 0, "clock_getres with NULL result succeeds");

	/* sleeping */
	int64_t m0 = ns(CLOCK_MONOTONIC), r0 = ns(CLOCK_REALTIME);
	struct timespec req = {0, 20 * 1000000};
	check(nanosleep(&req, NULL) == 0, "nanosleep succeeds");
	int64_t m1 = ns(CLOCK_MONOTONIC), r1 = ns(CLOCK_REALTIME);
	check(m1 - m0 >= 20000000, "nanosleep slept at least 20ms");
	check(m1 - m0 < 5000000000LL, "nanosleep(20ms) returned within 5s");
	int64_t skew = (r1 - r0) - (m1 - m0);
	check(skew > -1000000000LL && skew < 1000000000LL, "realtime and monotonic advance together");

	m0 = ns(CLOCK_MONOTONIC);
	req.tv_nsec = 10 * 1000000;
	check(clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL) == 0, "clock_nanosleep relative succeeds");
	m1 = ns(CLOCK_MONOTONIC);
	check(m1 - m0 >= 10000000, "clock_nanosleep slept at least 10ms");

	struct timespec abs;
	clock_gettime(CLOCK_MONOTONIC, &abs);
	abs.tv_nsec += 15 * 1000000;
	if (abs.tv_nsec >= 1000000000) {
		abs.tv_sec++;
		abs.tv_nsec -= 1000000000;
	}
	check(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL) == 0, "clock_nanosleep TIMER_ABSTIME succeeds");
	clock_gettime(CLOCK_MONOTONIC, &ts);
	check(ts.tv_sec > abs.tv_sec || (ts.tv_sec == abs.tv_sec && ts.tv_nsec >= abs.tv_nsec), "clock_nanosleep TIMER_ABSTIME woke after the deadline");
	abs.tv_sec -= 10;
	m0 = ns(CLOCK_MONOTONIC);
	check(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL) == 0, "clock_nanosleep to a past deadline succeeds");
	check(ns(CLOCK_MONOTONIC) - m0 < 1000000000LL, "clock_nanosleep to a past deadline returns at once");

	req.tv_sec = 0;
	req.tv_nsec = 0;
	check(nanosleep(&req, NULL) == 0, "nanosleep(0) succeeds");

	/* errors */
	errno = 0;
	req.tv_nsec = 1000000000;
	check(nanosleep(&req, NULL) == -1 && errno == EINVAL, "nanosleep with tv_nsec=1e9 fails with EINVAL");
	req.tv_sec = -1;
	req.tv_nsec = 0;
	errno = 0;
	check(nanosleep(&req, NULL) == -1 && errno == EINVAL, "nanosleep with negative tv_sec fails with EINVAL");
	errno = 0;
	check(syscall(SYS_clock_gettime, 1000, &ts) == -1 && errno == EINVAL, "clock_gettime of an invalid clock fails with EINVAL");
	errno = 0;
	check(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)8) == -1 && errno == EFAULT,
	      "clock_gettime into a bad pointer fails with EFAULT");

	printf(failures ? "clock: %d failures\n" : "clock: ok\n", failures);
	return failures ? 1 : 0;
}
