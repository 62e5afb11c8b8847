/*
 * files_sigbus: a MAP_SHARED mapping of a file that extends past EOF. The
 * partial last page reads zeros past EOF; touching a page wholly past EOF
 * must raise SIGBUS, and with the default action the program dies of it.
 *
 * Expected result: the lines below are printed, then the process is killed
 * by SIGBUS (wait status "signaled, SIGBUS"; a shell reports 135). If the
 * touch does not fault, the program prints a FAIL line and exits 1.
 *
 * The file and the test directory are removed before the fault (the mapping
 * keeps the unlinked file alive), so dying leaves nothing behind. Core dumps
 * are switched off with RLIMIT_CORE 0.
 *
 * Usage: files_sigbus [dir]   (default: a fresh mkdtemp directory in /tmp)
 * Build: gcc -O2 -static -o files_sigbus files_sigbus.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testdir.h"

int main(int argc, char **argv)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct rlimit rl = {0, 0};
	sigset_t set;

	check(setrlimit(RLIMIT_CORE, &rl) == 0, "core dumps off");
	signal(SIGBUS, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	check(sigprocmask(SIG_UNBLOCK, &set, NULL) == 0, "SIGBUS has its default action and is unblocked");

	td_setup(argc, argv);
	int fd = open("short", O_RDWR | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0 && write(fd, "tiny", 4) == 4, "create a 4-byte file");
	volatile char *m = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED, "mmap three pages of it MAP_SHARED");
	if (m == MAP_FAILED)
		return 1;
	close(fd);
	td_cleanup();
	check(access("short", F_OK) == -1, "the file is unlinked; the mapping keeps it");

	check(m[0] == 't' && m[3] == 'y', "the first bytes read back");
	int zero = 1;
	for (long i = 4; i < pg; i++)
		zero &= m[i] == 0;
	check(zero, "the rest of the first page reads as zeros");
	m[pg - 1] = 'z';
	check(m[pg - 1] == 'z', "a store in the partial last page works");
	check(1, "touching the second page, wholly past EOF: expect death by SIGBUS");
	(void)m[pg + 1];

	check(0, "touching a page past EOF did not raise SIGBUS");
	return 1;
}
