/*
 * files_stat: metadata calls in a scratch directory: stat, lstat, fstat,
 * fstatat (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH), statx against stat, file
 * types (regular, directory, symlink, FIFO, /dev/null), link counts, symlink
 * sizes, chmod/fchmod/fchmodat, chown/fchown/lchown/fchownat (run as root),
 * utimensat/futimens with explicit times, UTIME_OMIT and UTIME_NOW, utimes,
 * utime, futimesat, access/faccessat/faccessat2, statfs/fstatfs.
 *
 * Printed times are the ones the program set. Nothing file-system specific
 * (inode numbers, devices, blocks, directory sizes, f_type) is printed.
 *
 * Usage: files_stat [dir]   (default: a fresh mkdtemp directory in /tmp)
 * Build: gcc -O2 -static -o files_stat files_stat.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "check.h"
#include "testdir.h"

static struct stat st;

static int ts_le(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}

static void print_times(const char *what)
{
	printf("%s: atime %lld.%09ld mtime %lld.%09ld\n", what,
	       (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
	       (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	fflush(stdout);
}

static mode_t mode_of(const char *path)
{
	if (lstat(path, &st) != 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static int owner_is(const char *path, uid_t u, gid_t g)
{
	return lstat(path, &st) == 0 && st.st_uid == u && st.st_gid == g;
}

int main(int argc, char **argv)
{
	struct stat a, b;
	int fd;

	td_setup(argc, argv);

	fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0 && write(fd, "0123456789abc", 13) == 13, "create f with 13 bytes");

	/* stat family */
	check(stat("f", &a) == 0, "stat f");
	check(S_ISREG(a.st_mode) && (a.st_mode & 07777) == 0644, "f is a regular file with mode 0644");
	check(a.st_size == 13 && a.st_nlink == 1, "f has size 13 and one link");
	check(a.st_uid == geteuid() && a.st_gid == getegid(), "f is owned by the effective uid and gid");
	check(fstat(fd, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev && b.st_size == 13, "fstat matches stat");
	memset(&b, 0, sizeof b);
	check(fstatat(fd, "", &b, AT_EMPTY_PATH) == 0 && a.st_ino == b.st_ino && S_ISREG(b.st_mode), "fstatat(fd, \"\", AT_EMPTY_PATH) matches");
	errno = 0;
	check(fstatat(fd, "", &b, 0) == -1 && errno == ENOENT, "fstatat with an empty path and no AT_EMPTY_PATH fails with ENOENT");
	check(mkdir("d", 0755) == 0, "mkdir d");
	int dfd = open("d", O_RDONLY | O_DIRECTORY);
	check(symlink("../f", "d/lf") == 0, "symlink d/lf -> ../f");
	check(fstatat(dfd, "lf", &b, 0) == 0 && b.st_ino == a.st_ino, "fstatat(dirfd, lf) follows the symlink to f");
	check(fstatat(dfd, "lf", &b, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(b.st_mode) && b.st_size == 4, "fstatat AT_SYMLINK_NOFOLLOW sees a symlink of size 4");
	check(lstat("d/lf", &b) == 0 && S_ISLNK(b.st_mode) && (b.st_mode & 0777) == 0777, "lstat sees a symlink with mode 0777");
	errno = 0;
	check(stat("missing", &b) == -1 && errno == ENOENT, "stat of a missing file fails with ENOENT");
	errno = 0;
	check(fstatat(dfd, "lf", &b, 0x40000000) == -1 && errno == EINVAL, "fstatat with an unknown flag fails with EINVAL");

	/* statx */
	struct statx sx;
	memset(&sx, 0, sizeof sx);
	check(statx(AT_FDCWD, "f", 0, STATX_BASIC_STATS, &sx) == 0, "statx f");
	check((sx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS, "statx returns all basic fields");
	check(sx.stx_mode == a.st_mode && sx.stx_nlink == a.st_nlink && sx.stx_uid == a.st_uid && sx.stx_gid == a.st_gid, "statx mode, nlink, uid, gid match stat");
	check(sx.stx_size == (unsigned long long)a.st_size && sx.stx_ino == a.st_ino && sx.stx_blocks == (unsigned long long)a.st_blocks, "statx size, ino, blocks match stat");
	check(makedev(sx.stx_dev_major, sx.stx_dev_minor) == a.st_dev, "statx device numbers match st_dev");
	check(sx.stx_mtime.tv_sec == a.st_mtim.tv_sec && sx.stx_mtime.tv_nsec == (unsigned)a.st_mtim.tv_nsec && sx.stx_ctime.tv_sec == a.st_ctim.tv_sec, "statx times match stat");
	memset(&sx, 0, sizeof sx);
	check(statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) == 0 && sx.stx_ino == a.st_ino, "statx AT_EMPTY_PATH on a descriptor");
	check(statx(dfd, "lf", AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_SIZE, &sx) == 0 && S_ISLNK(sx.stx_mode) && sx.stx_size == 4, "statx AT_SYMLINK_NOFOLLOW sees the symlink");
	errno = 0;
	check(statx(AT_FDCWD, "f", 0, STATX__RESERVED, &sx) == -1 && errno == EINVAL, "statx with STATX__RESERVED fails with EINVAL");
	errno = 0;
	check(statx(AT_FDCWD, "f", 0x40000000, STATX_BASIC_STATS, &sx) == -1 && errno == EINVAL, "statx with an unknown flag fails with EINVAL");

	/* file types */
	check(stat("d", &b) == 0 && S_ISDIR(b.st_mode) && (b.st_mode & 07777) == 0755, "d is a directory with mode 0755");
	check(mkfifo("fifo", 0640) == 0 && lstat("fifo", &b) == 0 && S_ISFIFO(b.st_mode) && (b.st_mode & 07777) == 0640, "mkfifo makes a FIFO with mode 0640");
	check(stat("/dev/null", &b) == 0 && S_ISCHR(b.st_mode) && major(b.st_rdev) == 1 && minor(b.st_rdev) == 3, "/dev/null is character device 1:3");
	check(a.st_rdev == 0, "a regular file has st_rdev 0");

	/* link counts */
	check(link("f", "f2") == 0 && stat("f", &b) == 0 && b.st_nlink == 2 && fstat(fd, &b) == 0 && b.st_nlink == 2, "after link f has 2 links");
	check(unlink("f2") == 0 && fstat(fd, &b) == 0 && b.st_nlink == 1, "after unlink f has 1 link");
	check(mkdir("n", 0755) == 0 && stat("n", &b) == 0 && b.st_nlink == 2, "an empty directory has 2 links");
	check(mkdir("n/s1", 0755) == 0 && mkdir("n/s2", 0755) == 0 && stat("n", &b) == 0 && b.st_nlink == 4, "a directory with 2 subdirectories has 4 links");
	check(close(open("n/file", O_CREAT | O_WRONLY, 0644)) == 0 && stat("n", &b) == 0 && b.st_nlink == 4, "a file in it does not change the count");
	check(rmdir("n/s1") == 0 && stat("n", &b) == 0 && b.st_nlink == 3, "after rmdir of one subdirectory it has 3 links");
	check(rename("n/s2", "d/s2") == 0 && stat("n", &b) == 0 && b.st_nlink == 2, "moving a subdirectory out drops the count to 2");

	/* symlink sizes */
	static const char *targets[] = {"x", "some/relative/target", "/an/absolute/path/that/is/longer"};
	for (int i = 0; i < 3; i++) {
		char name[16], line[128];
		snprintf(name, sizeof name, "sl%d", i);
		snprintf(line, sizeof line, "symlink to a %zu-byte target has st_size %zu", strlen(targets[i]), strlen(targets[i]));
		check(symlink(targets[i], name) == 0 && lstat(name, &b) == 0 && b.st_size == (off_t)strlen(targets[i]), line);
	}

	/* chmod */
	check(chmod("f", 0600) == 0 && mode_of("f") == 0600, "chmod 0600");
	check(fchmod(fd, 0751) == 0 && mode_of("f") == 0751, "fchmod 0751");
	check(fchmodat(dfd, "../f", 04755, 0) == 0 && mode_of("f") == 04755, "fchmodat 04755 sets the set-user-ID bit");
	check(chmod("d/lf", 0640) == 0 && mode_of("f") == 0640 && mode_of("d/lf") == 0777, "chmod through a symlink changes the target");
	check(chmod("d", 01777) == 0 && mode_of("d") == 01777, "chmod 01777 sets the sticky bit on a directory");
	check(chmod("d", 0755) == 0, "chmod d back to 0755");
	errno = 0;
	check(chmod("missing", 0644) == -1 && errno == ENOENT, "chmod of a missing file fails with ENOENT");

	/* chown (as root) */
	check(chown("f", 1234, 5678) == 0 && owner_is("f", 1234, 5678), "chown f to 1234:5678");
	check(chown("f", -1, 42) == 0 && owner_is("f", 1234, 42), "chown with uid -1 changes only the group");
	check(fchown(fd, 99, -1) == 0 && owner_is("f", 99, 42), "fchown with gid -1 changes only the owner");
	check(lchown("d/lf", 1234, 5678) == 0 && owner_is("d/lf", 1234, 5678) && owner_is("f", 99, 42), "lchown changes the symlink, not its target");
	check(fchownat(dfd, "lf", 7, 8, 0) == 0 && owner_is("f", 7, 8), "fchownat follows the symlink");
	check(fchownat(dfd, "lf", 9, 10, AT_SYMLINK_NOFOLLOW) == 0 && owner_is("d/lf", 9, 10) && owner_is("f", 7, 8), "fchownat AT_SYMLINK_NOFOLLOW changes the symlink");
	check(fchownat(fd, "", 11, 12, AT_EMPTY_PATH) == 0 && owner_is("f", 11, 12), "fchownat AT_EMPTY_PATH on a descriptor");
	check(chmod("f", 04755) == 0 && chown("f", 1234, 5678) == 0 && mode_of("f") == 0755, "chown clears the set-user-ID bit");
	check(chown("f", geteuid(), getegid()) == 0, "chown f back");

	/* utimensat and friends */
	struct timespec ts[2] = {{1000000000, 123456789}, {1234567890, 987654321}};
	check(utimensat(AT_FDCWD, "f", ts, 0) == 0 && stat("f", &st) == 0, "utimensat with explicit times");
	print_times("after utimensat");
	check(st.st_atim.tv_sec == ts[0].tv_sec && st.st_atim.tv_nsec == ts[0].tv_nsec && st.st_mtim.tv_sec == ts[1].tv_sec && st.st_mtim.tv_nsec == ts[1].tv_nsec, "times read back as set");
	struct timespec om[2] = {{0, UTIME_OMIT}, {1500000000, 5}};
	check(utimensat(AT_FDCWD, "f", om, 0) == 0 && stat("f", &st) == 0, "utimensat with UTIME_OMIT for atime");
	print_times("after UTIME_OMIT");
	check(st.st_atim.tv_sec == 1000000000 && st.st_atim.tv_nsec == 123456789 && st.st_mtim.tv_sec == 1500000000, "UTIME_OMIT left atime alone");
	struct timespec before, after;
	clock_gettime(CLOCK_REALTIME_COARSE, &before);
	struct timespec nw[2] = {{1, 1}, {0, UTIME_NOW}};
	check(utimensat(AT_FDCWD, "f", nw, 0) == 0 && stat("f", &st) == 0, "utimensat with UTIME_NOW for mtime");
	clock_gettime(CLOCK_REALTIME, &after);
	check(st.st_atim.tv_sec == 1 && st.st_atim.tv_nsec == 1, "atime was set to 1.000000001");
	check(ts_le(before, st.st_mtim) && ts_le(st.st_mtim, after), "UTIME_NOW mtime is between the clock before and after");
	clock_gettime(CLOCK_REALTIME_COARSE, &before);
	check(utimensat(AT_FDCWD, "f", NULL, 0) == 0 && stat("f", &st) == 0, "utimensat with NULL times");
	clock_gettime(CLOCK_REALTIME, &after);
	check(ts_le(before, st.st_atim) && ts_le(before, st.st_mtim) && ts_le(st.st_mtim, after), "NULL times set both to now");
	struct timespec ft[2] = {{2000000000, 1}, {2000000001, 2}};
	check(futimens(fd, ft) == 0 && fstat(fd, &st) == 0, "futimens");
	print_times("after futimens");
	struct timespec lt[2] = {{300000000, 0}, {300000001, 0}};
	check(utimensat(dfd, "lf", lt, AT_SYMLINK_NOFOLLOW) == 0 && lstat("d/lf", &st) == 0 && st.st_mtim.tv_sec == 300000001, "utimensat AT_SYMLINK_NOFOLLOW sets the symlink's times");
	check(stat("f", &st) == 0 && st.st_mtim.tv_sec == 2000000001, "and leaves the target's");
	errno = 0;
	struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
	check(utimensat(AT_FDCWD, "f", bad, 0) == -1 && errno == EINVAL, "utimensat with tv_nsec 1e9 fails with EINVAL");
	struct timeval tv[2] = {{1111111111, 222222}, {1333333333, 444444}};
	check(utimes("f", tv) == 0 && stat("f", &st) == 0, "utimes");
	print_times("after utimes");
	struct utimbuf ub = {1400000000, 1500000000};
	check(utime("f", &ub) == 0 && stat("f", &st) == 0, "utime");
	print_times("after utime");
	struct timeval tv2[2] = {{1600000000, 7}, {1700000000, 8}};
	check(syscall(SYS_futimesat, dfd, "../f", tv2) == 0 && stat("f", &st) == 0, "futimesat relative to a dirfd");
	print_times("after futimesat");

	/* access */
	check(chmod("f", 0644) == 0, "chmod f 0644");
	check(access("f", F_OK) == 0, "access F_OK");
	check(access("f", R_OK) == 0 && access("f", W_OK) == 0 && access("f", R_OK | W_OK) == 0, "access R_OK and W_OK on 0644 as root");
	errno = 0;
	check(access("f", X_OK) == -1 && errno == EACCES, "access X_OK on 0644 fails with EACCES even for root");
	check(chmod("f", 0744) == 0 && access("f", X_OK) == 0, "access X_OK on 0744 succeeds");
	check(chmod("f", 0) == 0 && access("f", R_OK | W_OK) == 0, "root may read and write a mode 0 file");
	check(access("d", X_OK) == 0, "access X_OK on a directory");
	errno = 0;
	check(access("missing", F_OK) == -1 && errno == ENOENT, "access of a missing file fails with ENOENT");
	check(faccessat(dfd, "lf", R_OK, 0) == 0, "faccessat through a dirfd and symlink");
	check(syscall(SYS_faccessat2, dfd, "lf", R_OK, AT_SYMLINK_NOFOLLOW) == 0, "faccessat2 AT_SYMLINK_NOFOLLOW");
	check(syscall(SYS_faccessat2, fd, "", F_OK, AT_EMPTY_PATH) == 0, "faccessat2 AT_EMPTY_PATH on a descriptor");
	check(syscall(SYS_faccessat2, AT_FDCWD, "f", R_OK, AT_EACCESS) == 0, "faccessat2 AT_EACCESS");
	errno = 0;
	check(syscall(SYS_faccessat2, AT_FDCWD, "f", 8, 0) == -1 && errno == EINVAL, "faccessat2 with a bad mode fails with EINVAL");
	errno = 0;
	check(syscall(SYS_faccessat2, AT_FDCWD, "f", F_OK, 0x40000000) == -1 && errno == EINVAL, "faccessat2 with an unknown flag fails with EINVAL");

	/* statfs */
	struct statfs sf;
	check(statfs(".", &sf) == 0 && sf.f_bsize > 0 && sf.f_namelen == 255, "statfs succeeds with f_bsize > 0 and f_namelen 255");
	check(fstatfs(fd, &sf) == 0 && sf.f_bsize > 0 && sf.f_namelen == 255, "fstatfs succeeds with f_bsize > 0 and f_namelen 255");
	errno = 0;
	check(statfs("missing", &sf) == -1 && errno == ENOENT, "statfs of a missing path fails with ENOENT");

	close(dfd);
	close(fd);
	td_cleanup();
	printf(failures ? "files_stat: %d failures\n" : "files_stat: ok\n", failures);
	return failures ? 1 : 0;
}
