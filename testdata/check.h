/*
 * check.h: the property checker the testdata programs share. check() prints
 * the property on success and "FAIL: property (errno N)" otherwise, and
 * counts failures so main can exit non-zero. Each line is flushed at once,
 * so it is out before whatever the program tests next can go wrong.
 */
#ifndef RINGFENCE_TESTDATA_CHECK_H
#define RINGFENCE_TESTDATA_CHECK_H

#include <errno.h>
#include <stdio.h>

static int failures;

static void check(int ok, const char *what)
{
	if (ok) {
		printf("%s\n", what);
	} else {
		printf("FAIL: %s (errno %d)\n", what, errno);
		failures++;
	}
	fflush(stdout);
}

#endif
