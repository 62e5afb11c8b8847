/*
 * files_lock: advisory file locks within one process, on a file in a
 * scratch directory. Separate open file descriptions give separate lock
 * owners for flock and for OFD locks, so conflicts are visible without a
 * second process:
 *  - flock: shared/exclusive between two open file descriptions, LOCK_NB
 *    gives EWOULDBLOCK, LOCK_UN and closing release, dup shares the lock;
 *  - POSIX fcntl locks: F_SETLK/F_GETLK (a process never conflicts with
 *    itself), access-mode checks, lockf, and how they look to an OFD lock
 *    (range splitting, l_pid, release on any close of the file);
 *  - OFD locks: F_OFD_SETLK/F_OFD_GETLK conflicts (EAGAIN, the conflicting
 *    range, l_pid -1), whence and length forms, unlock, release on close.
 * Leases are not tested.
 *
 * Usage: files_lock [dir]   (default: a fresh mkdtemp directory in /tmp)
 * Build: gcc -O2 -static -o files_lock files_lock.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "check.h"
#include "testdir.h"

static struct flock fl;

static int lk(int fd, int cmd, short type, short whence, off_t start, off_t len)
{
	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = whence;
	fl.l_start = start;
	fl.l_len = len;
	return fcntl(fd, cmd, &fl);
}

/* probe asks, through an OFD lock query on fd, whether a write lock on
 * [start, start+len) would conflict; the answer is left in fl. */
static int probe(int fd, off_t start, off_t len)
{
	return lk(fd, F_OFD_GETLK, F_WRLCK, SEEK_SET, start, len);
}

static int is(short type, off_t start, off_t len)
{
	return fl.l_type == type && fl.l_start == start && fl.l_len == len;
}

int main(int argc, char **argv)
{
	static char zeros[1000];
	int a, b, c;

	td_setup(argc, argv);
	a = open("lockfile", O_RDWR | O_CREAT | O_TRUNC, 0644);
	check(a >= 0 && write(a, zeros, sizeof zeros) == sizeof zeros, "create a 1000-byte lockfile");
	b = open("lockfile", O_RDWR);
	check(b >= 0, "open it a second time (a second open file description)");

	/* flock */
	check(flock(a, LOCK_SH) == 0, "flock LOCK_SH on the first");
	check(flock(b, LOCK_SH | LOCK_NB) == 0, "flock LOCK_SH|LOCK_NB on the second: shared locks coexist");
	errno = 0;
	check(flock(b, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK, "LOCK_EX|LOCK_NB on the second fails with EWOULDBLOCK");
	check(flock(b, LOCK_UN) == 0, "LOCK_UN on the second");
	check(flock(a, LOCK_EX | LOCK_NB) == 0, "the first upgrades to LOCK_EX");
	errno = 0;
	check(flock(b, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK, "LOCK_SH|LOCK_NB on the second now fails with EWOULDBLOCK");
	c = dup(a);
	check(flock(c, LOCK_EX | LOCK_NB) == 0, "a dup of the first shares its lock");
	check(close(c) == 0, "close the dup");
	errno = 0;
	check(flock(b, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK, "closing the dup does not release the lock");
	check(flock(a, LOCK_UN) == 0, "LOCK_UN on the first");
	check(flock(b, LOCK_EX | LOCK_NB) == 0, "now the second gets LOCK_EX");
	c = open("lockfile", O_RDONLY);
	errno = 0;
	check(flock(c, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK, "a third open file description is refused");
	check(close(b) == 0 && flock(c, LOCK_EX | LOCK_NB) == 0, "closing the holder releases its flock");
	check(flock(c, LOCK_UN) == 0 && close(c) == 0, "unlock and close the third");
	b = open("lockfile", O_RDWR);
	errno = 0;
	check(flock(a, LOCK_SH | LOCK_EX) == -1 && errno == EINVAL, "flock with LOCK_SH|LOCK_EX fails with EINVAL");
	errno = 0;
	check(flock(999, LOCK_SH) == -1 && errno == EBADF, "flock of a closed descriptor fails with EBADF");
	check(flock(a, LOCK_EX) == 0 && lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 0) == 0, "flock and OFD locks do not interact");
	check(flock(a, LOCK_UN) == 0 && lk(b, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0) == 0, "release both");

	/* POSIX record locks */
	check(lk(a, F_SETLK, F_WRLCK, SEEK_SET, 0, 100) == 0, "F_SETLK write lock on [0,100) through the first");
	check(lk(b, F_SETLK, F_WRLCK, SEEK_SET, 50, 100) == 0, "an overlapping F_SETLK through the second succeeds: same process");
	check(lk(b, F_GETLK, F_WRLCK, SEEK_SET, 0, 0) == 0 && fl.l_type == F_UNLCK, "F_GETLK reports F_UNLCK for the process's own locks");
	check(lk(a, F_SETLK, F_UNLCK, SEEK_SET, 0, 0) == 0, "unlock the whole file");
	check(lk(a, F_SETLK, F_WRLCK, SEEK_SET, 0, 100) == 0, "write lock [0,100) again");
	check(probe(b, 0, 0) == 0 && is(F_WRLCK, 0, 100) && fl.l_pid == getpid(), "F_OFD_GETLK sees the POSIX lock [0,100) with l_pid = the process id");
	check(lk(a, F_SETLK, F_UNLCK, SEEK_SET, 40, 20) == 0, "unlock [40,60) in the middle");
	check(probe(b, 40, 20) == 0 && fl.l_type == F_UNLCK, "[40,60) is now free");
	check(probe(b, 30, 20) == 0 && is(F_WRLCK, 0, 40), "the lock was split: [0,40) remains");
	check(probe(b, 50, 30) == 0 && is(F_WRLCK, 60, 40), "and [60,100) remains");
	check(lk(a, F_SETLK, F_RDLCK, SEEK_SET, 0, 100) == 0, "a read lock over [0,100) replaces and merges");
	check(probe(b, 45, 1) == 0 && is(F_RDLCK, 0, 100), "one read lock [0,100) now");
	check(lk(b, F_OFD_GETLK, F_RDLCK, SEEK_SET, 0, 0) == 0 && fl.l_type == F_UNLCK, "a read lock query does not conflict with it");
	c = open("lockfile", O_RDONLY);
	check(close(c) == 0, "open and close the file through another descriptor");
	check(probe(b, 0, 0) == 0 && fl.l_type == F_UNLCK, "closing any descriptor of the file dropped the process's POSIX locks");
	c = open("lockfile", O_RDONLY);
	errno = 0;
	check(lk(c, F_SETLK, F_WRLCK, SEEK_SET, 0, 10) == -1 && errno == EBADF, "F_SETLK F_WRLCK on an O_RDONLY descriptor fails with EBADF");
	close(c);
	c = open("lockfile", O_WRONLY);
	errno = 0;
	check(lk(c, F_SETLK, F_RDLCK, SEEK_SET, 0, 10) == -1 && errno == EBADF, "F_SETLK F_RDLCK on an O_WRONLY descriptor fails with EBADF");
	errno = 0;
	check(lk(c, F_SETLK, 42, SEEK_SET, 0, 10) == -1 && errno == EINVAL, "F_SETLK with a bad l_type fails with EINVAL");
	close(c);
	check(lseek(a, 200, SEEK_SET) == 200 && lockf(a, F_TLOCK, 50) == 0, "lockf F_TLOCK of 50 bytes at offset 200");
	check(lockf(a, F_TEST, 50) == 0, "lockf F_TEST on the process's own lock returns 0");
	check(probe(b, 0, 0) == 0 && is(F_WRLCK, 200, 50), "the lockf lock is the POSIX write lock [200,250)");
	check(lockf(a, F_ULOCK, 50) == 0 && probe(b, 0, 0) == 0 && fl.l_type == F_UNLCK, "lockf F_ULOCK releases it");
	check(lseek(a, 0, SEEK_SET) == 0, "rewind the first descriptor");

	/* OFD locks */
	check(lk(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 100) == 0, "F_OFD_SETLK write lock [0,100) on the first");
	errno = 0;
	check(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 50, 100) == -1 && errno == EAGAIN, "an overlapping OFD write lock on the second fails with EAGAIN");
	errno = 0;
	check(lk(b, F_OFD_SETLK, F_RDLCK, SEEK_SET, 99, 1) == -1 && errno == EAGAIN, "an overlapping OFD read lock fails with EAGAIN");
	check(lk(b, F_OFD_GETLK, F_WRLCK, SEEK_SET, 50, 100) == 0 && is(F_WRLCK, 0, 100) && fl.l_pid == -1, "F_OFD_GETLK returns the conflicting [0,100) with l_pid -1");
	check(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 100, 100) == 0, "an adjacent OFD lock [100,200) on the second succeeds");
	check(lk(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 100) == 0, "re-locking its own range succeeds");
	check(lk(a, F_OFD_GETLK, F_WRLCK, SEEK_SET, 0, 0) == 0 && is(F_WRLCK, 100, 100), "the first sees the second's [100,200)");
	c = dup(a);
	check(lk(c, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 50) == 0, "a dup shares the open file description's OFD locks");
	close(c);
	check(lk(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 100) == 0, "unlock [0,100) on the first");
	check(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 100) == 0, "now the second locks [0,100)");
	check(lk(b, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0) == 0, "the second unlocks everything");
	check(lk(a, F_OFD_SETLK, F_RDLCK, SEEK_SET, 300, 50) == 0 && lk(b, F_OFD_SETLK, F_RDLCK, SEEK_SET, 320, 50) == 0, "overlapping OFD read locks coexist");
	errno = 0;
	check(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 320, 50) == -1 && errno == EAGAIN, "upgrading to write over another's read lock fails with EAGAIN");
	check(lk(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0) == 0 && lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 320, 50) == 0, "after the first unlocks, the upgrade succeeds");
	check(lk(b, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0) == 0, "the second unlocks everything");
	check(lseek(a, 500, SEEK_SET) == 500 && lk(a, F_OFD_SETLK, F_WRLCK, SEEK_CUR, 10, 5) == 0, "OFD lock with SEEK_CUR +10 at offset 500");
	check(probe(b, 0, 0) == 0 && is(F_WRLCK, 510, 5), "it covers [510,515)");
	check(lk(a, F_OFD_SETLK, F_WRLCK, SEEK_END, -100, 0) == 0, "OFD lock from SEEK_END -100 to EOF and beyond");
	check(probe(b, 600, 1000) == 0 && is(F_WRLCK, 900, 0), "it covers [900, end of file space), shown as l_len 0");
	check(lk(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0) == 0, "unlock the first");
	check(lk(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 700, -100) == 0 && probe(b, 0, 0) == 0 && is(F_WRLCK, 600, 100), "a negative length locks the bytes before l_start: [600,700)");
	c = open("lockfile", O_RDWR);
	check(lk(c, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10) == 0 && close(c) == 0, "an OFD lock taken through a third description, which is then closed");
	check(probe(b, 0, 10) == 0 && fl.l_type == F_UNLCK, "closing the description released its OFD lock");
	check(probe(b, 600, 100) == 0 && is(F_WRLCK, 600, 100), "but closing another description leaves the first's OFD lock");
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_pid = 1;
	errno = 0;
	check(fcntl(b, F_OFD_SETLK, &fl) == -1 && errno == EINVAL, "F_OFD_SETLK with a non-zero l_pid fails with EINVAL");
	check(lk(b, F_OFD_SETLKW, F_WRLCK, SEEK_SET, 0, 100) == 0, "F_OFD_SETLKW on a free range does not block");
	check(lk(a, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0) == 0 && lk(b, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0) == 0, "release all");

	close(a);
	close(b);
	td_cleanup();
	printf(failures ? "files_lock: %d failures\n" : "files_lock: ok\n", failures);
	return failures ? 1 : 0;
}
