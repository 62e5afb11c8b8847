/*
 * files_dir: the name space in a scratch directory: mkdir/mkdirat, rmdir,
 * unlink/unlinkat, rename and renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE),
 * link/linkat (AT_SYMLINK_FOLLOW, AT_EMPTY_PATH), symlink/symlinkat,
 * readlink/readlinkat, dangling and looping symlinks, chdir/fchdir/getcwd,
 * "." / ".." / trailing-slash path handling, getdents64 over a directory of
 * 10,000 files (every name exactly once, d_type agrees with stat), readdir
 * while entries are being removed, and O_TMPFILE (linked into the name space
 * through /proc/self/fd and AT_EMPTY_PATH; O_EXCL ones cannot be).
 *
 * getdents order is file-system specific, so names are checked as a set.
 *
 * Usage: files_dir [dir]   (default: a fresh mkdtemp directory in /tmp)
 * Build: gcc -O2 -static -o files_dir files_dir.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "testdir.h"

#define NFILES 10000

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int has(const char *path, const char *s)
{
	char buf[256];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	return n == (ssize_t)strlen(s) && memcmp(buf, s, n) == 0;
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* cwd_rel returns getcwd() with the test directory prefix replaced by "." */
static const char *cwd_rel(void)
{
	static char buf[PATH_MAX], out[PATH_MAX];
	if (getcwd(buf, sizeof buf) == NULL)
		return "(getcwd failed)";
	size_t n = strlen(td_path);
	if (strncmp(buf, td_path, n) != 0 || (buf[n] != 0 && buf[n] != '/'))
		return "(outside the test directory)";
	snprintf(out, sizeof out, ".%s", buf + n);
	return out;
}

static int dtype_of_mode(mode_t m)
{
	if (S_ISREG(m))
		return DT_REG;
	if (S_ISDIR(m))
		return DT_DIR;
	if (S_ISLNK(m))
		return DT_LNK;
	if (S_ISFIFO(m))
		return DT_FIFO;
	return -1;
}

static unsigned char seen[NFILES];
static char dbuf[4096];

/* scan reads dir with getdents64 and a 4 KiB buffer. It counts the entries
 * other than . and .., checks that . and .. appear once each, and that
 * d_type agrees with fstatat. Names fNNNNN are tallied in seen[]; *other
 * counts any other names. */
static long scan(int dfd, int *dots_ok, int *types_ok, long *other)
{
	long count = 0;
	int dot = 0, dotdot = 0;
	*types_ok = 1;
	*other = 0;
	memset(seen, 0, sizeof seen);
	if (lseek(dfd, 0, SEEK_SET) != 0)
		return -1;
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, dbuf, sizeof dbuf);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *e = (void *)(dbuf + off);
			off += e->d_reclen;
			if (strcmp(e->d_name, ".") == 0) {
				dot++;
				continue;
			}
			if (strcmp(e->d_name, "..") == 0) {
				dotdot++;
				continue;
			}
			count++;
			struct stat st;
			if (e->d_type != DT_UNKNOWN) {
				if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || dtype_of_mode(st.st_mode) != e->d_type)
					*types_ok = 0;
			}
			char *end;
			long i = e->d_name[0] == 'f' && strlen(e->d_name) == 6 ? strtol(e->d_name + 1, &end, 10) : -1;
			if (i >= 0 && i < NFILES && *end == 0) {
				if (seen[i] < 255)
					seen[i]++;
			} else {
				(*other)++;
			}
		}
	}
	*dots_ok = dot == 1 && dotdot == 1;
	return count;
}

int main(int argc, char **argv)
{
	struct stat st;
	char buf[PATH_MAX];
	int fd;

	td_setup(argc, argv);

	/* mkdir, rmdir, unlink */
	check(mkdir("d", 0755) == 0, "mkdir d");
	errno = 0;
	check(mkdir("d", 0755) == -1 && errno == EEXIST, "mkdir of an existing directory fails with EEXIST");
	check(put("file", "data") == 0, "create file");
	errno = 0;
	check(mkdir("file", 0755) == -1 && errno == EEXIST, "mkdir over a file fails with EEXIST");
	int dfd = open("d", O_RDONLY | O_DIRECTORY);
	check(mkdirat(dfd, "sub", 0700) == 0 && stat("d/sub", &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "mkdirat(dirfd, sub, 0700)");
	errno = 0;
	check(mkdirat(dfd, "sub", 0700) == -1 && errno == EEXIST, "mkdirat of an existing name fails with EEXIST");
	check(mkdir("e/", 0755) == 0 && stat("e", &st) == 0 && S_ISDIR(st.st_mode), "mkdir with a trailing slash");
	errno = 0;
	check(mkdir("nodir/x", 0755) == -1 && errno == ENOENT, "mkdir under a missing directory fails with ENOENT");
	check(put("d/sub/x", "x") == 0, "create d/sub/x");
	errno = 0;
	check(rmdir("d/sub") == -1 && errno == ENOTEMPTY, "rmdir of a non-empty directory fails with ENOTEMPTY");
	errno = 0;
	check(rmdir("file") == -1 && errno == ENOTDIR, "rmdir of a file fails with ENOTDIR");
	errno = 0;
	check(rmdir("d/sub/.") == -1 && errno == EINVAL, "rmdir of a path ending in . fails with EINVAL");
	errno = 0;
	check(rmdir("missing") == -1 && errno == ENOENT, "rmdir of a missing name fails with ENOENT");
	errno = 0;
	check(unlink("d") == -1 && errno == EISDIR, "unlink of a directory fails with EISDIR");
	errno = 0;
	check(unlinkat(dfd, "sub", 0) == -1 && errno == EISDIR, "unlinkat of a directory without AT_REMOVEDIR fails with EISDIR");
	errno = 0;
	check(unlinkat(dfd, "sub/x", AT_REMOVEDIR) == -1 && errno == ENOTDIR, "unlinkat AT_REMOVEDIR of a file fails with ENOTDIR");
	errno = 0;
	check(unlinkat(dfd, "sub/x", 0x40000000) == -1 && errno == EINVAL, "unlinkat with an unknown flag fails with EINVAL");
	check(unlinkat(dfd, "sub/x", 0) == 0 && !exists("d/sub/x"), "unlinkat of a file");
	check(unlinkat(dfd, "sub", AT_REMOVEDIR) == 0 && !exists("d/sub"), "unlinkat AT_REMOVEDIR of an empty directory");
	check(rmdir("e") == 0 && !exists("e"), "rmdir of an empty directory");
	errno = 0;
	check(unlink("missing") == -1 && errno == ENOENT, "unlink of a missing name fails with ENOENT");
	fd = open("file", O_RDONLY);
	check(unlink("file") == 0 && !exists("file"), "unlink of an open file removes the name");
	check(fstat(fd, &st) == 0 && st.st_nlink == 0 && read(fd, buf, 10) == 4 && memcmp(buf, "data", 4) == 0, "the open file has 0 links and is still readable");
	close(fd);

	/* rename */
	check(put("r1", "one") == 0 && put("r2", "two") == 0, "create r1 and r2");
	check(rename("r1", "r2") == 0 && !exists("r1") && has("r2", "one"), "rename over a file replaces it");
	check(rename("r2", "d/r3") == 0 && has("d/r3", "one"), "rename into a subdirectory");
	check(link("d/r3", "d/r4") == 0 && rename("d/r3", "d/r4") == 0 && exists("d/r3") && exists("d/r4"), "rename between two links of one file does nothing");
	check(mkdir("a", 0755) == 0 && mkdir("b", 0755) == 0 && put("b/in", "b") == 0, "directories a and non-empty b");
	errno = 0;
	check(rename("a", "b") == -1 && (errno == ENOTEMPTY), "rename of a directory over a non-empty one fails with ENOTEMPTY");
	check(mkdir("c", 0755) == 0 && rename("b", "c") == 0 && !exists("b") && has("c/in", "b"), "rename of a directory over an empty one replaces it");
	errno = 0;
	check(rename("c", "c/inner") == -1 && errno == EINVAL, "rename of a directory into its own subtree fails with EINVAL");
	errno = 0;
	check(rename("d/r4", "a") == -1 && errno == EISDIR, "rename of a file over a directory fails with EISDIR");
	errno = 0;
	check(rename("a", "d/r4") == -1 && errno == ENOTDIR, "rename of a directory over a file fails with ENOTDIR");
	errno = 0;
	check(rename("missing", "x") == -1 && errno == ENOENT, "rename of a missing name fails with ENOENT");
	check(rename("a", "a2") == 0 && stat("a2", &st) == 0 && S_ISDIR(st.st_mode), "rename of a directory");
	check(renameat(dfd, "r4", AT_FDCWD, "r5") == 0 && has("r5", "one"), "renameat between directory descriptors");

	/* renameat2 */
	check(put("x1", "first") == 0 && put("x2", "second") == 0, "create x1 and x2");
	errno = 0;
	check(renameat2(AT_FDCWD, "x1", AT_FDCWD, "x2", RENAME_NOREPLACE) == -1 && errno == EEXIST && has("x2", "second"), "RENAME_NOREPLACE onto an existing name fails with EEXIST");
	check(renameat2(AT_FDCWD, "x1", AT_FDCWD, "x3", RENAME_NOREPLACE) == 0 && has("x3", "first") && !exists("x1"), "RENAME_NOREPLACE onto a new name");
	check(renameat2(AT_FDCWD, "x2", AT_FDCWD, "x3", RENAME_EXCHANGE) == 0 && has("x2", "first") && has("x3", "second"), "RENAME_EXCHANGE swaps two files");
	check(renameat2(AT_FDCWD, "x2", AT_FDCWD, "c", RENAME_EXCHANGE) == 0 && has("c", "first") && has("x2/in", "b"), "RENAME_EXCHANGE swaps a file and a directory");
	errno = 0;
	check(renameat2(AT_FDCWD, "c", AT_FDCWD, "nothere", RENAME_EXCHANGE) == -1 && errno == ENOENT, "RENAME_EXCHANGE with a missing target fails with ENOENT");
	errno = 0;
	check(renameat2(AT_FDCWD, "c", AT_FDCWD, "x3", RENAME_EXCHANGE | RENAME_NOREPLACE) == -1 && errno == EINVAL, "RENAME_EXCHANGE|RENAME_NOREPLACE fails with EINVAL");

	/* link, linkat */
	check(put("h1", "shared") == 0 && link("h1", "h2") == 0, "link h1 to h2");
	check(stat("h2", &st) == 0 && st.st_nlink == 2, "h2 has 2 links");
	fd = open("h2", O_WRONLY | O_APPEND);
	check(fd >= 0 && write(fd, "!", 1) == 1 && has("h1", "shared!"), "a write through one link shows through the other");
	close(fd);
	errno = 0;
	check(link("h1", "h2") == -1 && errno == EEXIST, "link onto an existing name fails with EEXIST");
	errno = 0;
	check(link("d", "dlink") == -1 && errno == EPERM, "link of a directory fails with EPERM");
	errno = 0;
	check(link("missing", "m2") == -1 && errno == ENOENT, "link of a missing file fails with ENOENT");
	check(symlink("h1", "sh") == 0, "symlink sh -> h1");
	check(linkat(AT_FDCWD, "sh", AT_FDCWD, "sh_nofollow", 0) == 0 && lstat("sh_nofollow", &st) == 0 && S_ISLNK(st.st_mode), "linkat without AT_SYMLINK_FOLLOW links the symlink itself");
	check(linkat(AT_FDCWD, "sh", dfd, "sh_follow", AT_SYMLINK_FOLLOW) == 0 && lstat("d/sh_follow", &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 3, "linkat AT_SYMLINK_FOLLOW links the target");
	fd = open("h1", O_RDONLY);
	check(linkat(fd, "", AT_FDCWD, "h_empty", AT_EMPTY_PATH) == 0 && has("h_empty", "shared!"), "linkat AT_EMPTY_PATH links an open file");
	close(fd);

	/* symlink, readlink */
	check(symlink("d/r5_target", "rel") == 0, "symlink with a relative target");
	ssize_t n = readlink("rel", buf, sizeof buf);
	check(n == 11 && memcmp(buf, "d/r5_target", 11) == 0, "readlink returns the relative target without a NUL");
	char abs[PATH_MAX + 16];
	snprintf(abs, sizeof abs, "%s/h1", td_path);
	check(symlinkat(abs, dfd, "abs") == 0, "symlinkat with an absolute target");
	n = readlinkat(dfd, "abs", buf, sizeof buf);
	check(n == (ssize_t)strlen(abs) && memcmp(buf, abs, n) == 0, "readlinkat returns the absolute target");
	check(has("d/abs", "shared!"), "the absolute symlink resolves");
	memset(buf, 0, sizeof buf);
	check(readlink("rel", buf, 4) == 4 && memcmp(buf, "d/r5", 4) == 0 && buf[4] == 0, "readlink into a short buffer truncates");
	errno = 0;
	check(readlink("h1", buf, sizeof buf) == -1 && errno == EINVAL, "readlink of a regular file fails with EINVAL");
	errno = 0;
	check(stat("rel", &st) == -1 && errno == ENOENT, "stat of a dangling symlink fails with ENOENT");
	check(lstat("rel", &st) == 0 && S_ISLNK(st.st_mode), "lstat of a dangling symlink succeeds");
	check(symlink("loop2", "loop1") == 0 && symlink("loop1", "loop2") == 0 && symlink("self", "self") == 0, "symlink loops loop1 <-> loop2 and self");
	errno = 0;
	check(stat("loop1", &st) == -1 && errno == ELOOP, "stat through a two-link loop fails with ELOOP");
	errno = 0;
	check(open("self", O_RDONLY) == -1 && errno == ELOOP, "open of a self-referencing symlink fails with ELOOP");
	errno = 0;
	check(symlink("x", "h1") == -1 && errno == EEXIST, "symlink onto an existing name fails with EEXIST");
	errno = 0;
	check(symlink("", "empty") == -1 && errno == ENOENT, "symlink with an empty target fails with ENOENT");
	check(symlink("d", "ld") == 0 && has("ld/r3", "one") && has("ld/sh_follow", "shared!"), "a path through a symlinked directory");

	/* chdir, fchdir, getcwd */
	check(mkdir("d/deep", 0755) == 0 && mkdir("d/deep/er", 0755) == 0, "mkdir d/deep/er");
	check(chdir("d/deep/er") == 0, "chdir d/deep/er");
	printf("cwd: %s\n", cwd_rel());
	check(chdir("..") == 0, "chdir ..");
	printf("cwd: %s\n", cwd_rel());
	check(fchdir(td_fd) == 0, "fchdir to the test directory");
	printf("cwd: %s\n", cwd_rel());
	check(fchdir(dfd) == 0, "fchdir to d");
	printf("cwd: %s\n", cwd_rel());
	check(chdir("../ld/deep/./er/..") == 0, "chdir through a symlink, . and ..");
	printf("cwd: %s\n", cwd_rel());
	fchdir(td_fd);
	errno = 0;
	check(chdir("h1") == -1 && errno == ENOTDIR, "chdir to a file fails with ENOTDIR");
	errno = 0;
	check(chdir("missing") == -1 && errno == ENOENT, "chdir to a missing name fails with ENOENT");
	fd = open("h1", O_RDONLY);
	errno = 0;
	check(fchdir(fd) == -1 && errno == ENOTDIR, "fchdir to a file fails with ENOTDIR");
	close(fd);
	errno = 0;
	check(syscall(SYS_getcwd, buf, 2) == -1 && errno == ERANGE, "getcwd into a 2-byte buffer fails with ERANGE");
	check(mkdir("gone", 0755) == 0 && chdir("gone") == 0 && rmdir("../gone") == 0, "rmdir of the current directory");
	errno = 0;
	check(syscall(SYS_getcwd, buf, sizeof buf) == -1 && errno == ENOENT, "getcwd in a removed directory fails with ENOENT");
	errno = 0;
	check(open("newfile", O_CREAT | O_WRONLY, 0644) == -1 && errno == ENOENT, "creating a file in a removed directory fails with ENOENT");
	fchdir(td_fd);

	/* path components */
	check(stat("d/./deep/../deep/er", &st) == 0 && S_ISDIR(st.st_mode), "stat of d/./deep/../deep/er");
	check(stat("d//deep///er/", &st) == 0 && S_ISDIR(st.st_mode), "repeated slashes and a trailing slash on a directory");
	check(stat("./h1", &st) == 0 && S_ISREG(st.st_mode), "stat of ./h1");
	errno = 0;
	check(stat("h1/", &st) == -1 && errno == ENOTDIR, "stat of file/ fails with ENOTDIR");
	errno = 0;
	check(stat("h1/.", &st) == -1 && errno == ENOTDIR, "stat of file/. fails with ENOTDIR");
	errno = 0;
	check(stat("h1/..", &st) == -1 && errno == ENOTDIR, "stat of file/.. fails with ENOTDIR");
	errno = 0;
	check(open("h1/", O_RDONLY) == -1 && errno == ENOTDIR, "open of file/ fails with ENOTDIR");
	check(lstat("ld/", &st) == 0 && S_ISDIR(st.st_mode), "lstat of symlink/ follows it to the directory");
	struct stat r1, r2;
	check(stat("/..", &r1) == 0 && stat("/", &r2) == 0 && r1.st_ino == r2.st_ino && r1.st_dev == r2.st_dev, "/.. is /");

	/* getdents64 of a large directory */
	check(mkdir("big", 0755) == 0, "mkdir big");
	int bfd = open("big", O_RDONLY | O_DIRECTORY);
	int made = 0;
	for (int i = 0; i < NFILES; i++) {
		snprintf(buf, sizeof buf, "f%05d", i);
		fd = openat(bfd, buf, O_CREAT | O_WRONLY | O_EXCL, 0644);
		if (fd >= 0) {
			made++;
			close(fd);
		}
	}
	check(made == NFILES, "created 10000 files in big");
	int dots_ok, types_ok;
	long other;
	long count = scan(bfd, &dots_ok, &types_ok, &other);
	check(count == NFILES, "getdents64 with a 4 KiB buffer returns 10000 entries besides . and ..");
	int once = 1;
	for (int i = 0; i < NFILES; i++)
		once &= seen[i] == 1;
	check(once && other == 0, "every name appears exactly once");
	check(dots_ok, ". and .. appear once each");
	check(types_ok, "every d_type agrees with fstatat");
	count = scan(bfd, &dots_ok, &types_ok, &other);
	check(count == NFILES, "after lseek to 0 the directory reads the same again");
	check(mkdir("big/zdir", 0755) == 0 && symlink("f00000", "big/zlink") == 0 && mkfifo("big/zfifo", 0644) == 0, "add a directory, a symlink and a FIFO");
	count = scan(bfd, &dots_ok, &types_ok, &other);
	check(count == NFILES + 3 && other == 3 && types_ok, "10003 entries, with d_type right for all kinds");
	int removed = 0;
	for (int i = 0; i < NFILES; i++) {
		snprintf(buf, sizeof buf, "f%05d", i);
		removed += unlinkat(bfd, buf, 0) == 0;
	}
	check(removed == NFILES && unlinkat(bfd, "zdir", AT_REMOVEDIR) == 0 && unlinkat(bfd, "zlink", 0) == 0 && unlinkat(bfd, "zfifo", 0) == 0, "unlinked everything in big");
	count = scan(bfd, &dots_ok, &types_ok, &other);
	check(count == 0 && dots_ok, "big is empty: only . and .. remain");
	close(bfd);
	check(rmdir("big") == 0, "rmdir big");

	/* readdir while unlinking */
	check(mkdir("churn", 0755) == 0, "mkdir churn");
	for (int i = 0; i < 1000; i++) {
		snprintf(buf, sizeof buf, "churn/f%05d", i);
		close(open(buf, O_CREAT | O_WRONLY, 0644));
	}
	DIR *dir = opendir("churn");
	check(dir != NULL, "opendir churn");
	int got = 0;
	memset(seen, 0, sizeof seen);
	struct dirent *de;
	while (got < 100 && (de = readdir(dir)) != NULL) {
		int i;
		if (sscanf(de->d_name, "f%05d", &i) == 1 && i >= 0 && i < 1000) {
			seen[i]++;
			got++;
		}
	}
	for (int i = 1; i < 1000; i += 2) {
		snprintf(buf, sizeof buf, "churn/f%05d", i);
		unlink(buf);
	}
	while ((de = readdir(dir)) != NULL) {
		int i;
		if (sscanf(de->d_name, "f%05d", &i) == 1 && i >= 0 && i < 1000) {
			seen[i]++;
			got++;
		}
	}
	closedir(dir);
	int evens = 1, twice = 0;
	for (int i = 0; i < 1000; i++) {
		if (i % 2 == 0)
			evens &= seen[i] == 1;
		twice |= seen[i] > 1;
	}
	check(got >= 500 && got <= 1000, "readdir while unlinking returns between 500 and 1000 names");
	check(evens, "every name not unlinked is returned exactly once");
	check(!twice, "no name is returned twice");

	/* O_TMPFILE */
	fd = open(".", O_TMPFILE | O_RDWR, 0600);
	check(fd >= 0, "O_TMPFILE|O_RDWR in the test directory");
	check(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 0 && (st.st_mode & 0777) == 0600, "the O_TMPFILE file is regular, mode 0600, with 0 links");
	check(write(fd, "temporary", 9) == 9, "write to the O_TMPFILE file");
	dir = opendir(".");
	int listed = 0;
	long entries = 0;
	while ((de = readdir(dir)) != NULL)
		entries++;
	closedir(dir);
	snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
	check(linkat(AT_FDCWD, buf, AT_FDCWD, "named", AT_SYMLINK_FOLLOW) == 0, "linkat /proc/self/fd/N AT_SYMLINK_FOLLOW names it");
	check(has("named", "temporary"), "the named file has the content");
	check(fstat(fd, &st) == 0 && st.st_nlink == 1, "the O_TMPFILE file now has 1 link");
	check(linkat(fd, "", AT_FDCWD, "named2", AT_EMPTY_PATH) == 0 && has("named2", "temporary"), "linkat AT_EMPTY_PATH gives it a second name");
	dir = opendir(".");
	while ((de = readdir(dir)) != NULL)
		listed++;
	closedir(dir);
	check(listed == entries + 2, "before linking it was not in the directory; after, both names are");
	close(fd);
	fd = open(".", O_TMPFILE | O_RDWR | O_EXCL, 0600);
	check(fd >= 0 && write(fd, "x", 1) == 1, "O_TMPFILE|O_EXCL file");
	snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
	errno = 0;
	check(linkat(AT_FDCWD, buf, AT_FDCWD, "named3", AT_SYMLINK_FOLLOW) == -1 && errno == ENOENT, "an O_TMPFILE|O_EXCL file cannot be linked (ENOENT)");
	errno = 0;
	check(linkat(fd, "", AT_FDCWD, "named3", AT_EMPTY_PATH) == -1 && errno == ENOENT, "nor with AT_EMPTY_PATH (ENOENT)");
	close(fd);
	errno = 0;
	check(open(".", O_TMPFILE | O_RDONLY, 0600) == -1 && errno == EINVAL, "O_TMPFILE without write access fails with EINVAL");
	errno = 0;
	check(open("h1", O_TMPFILE | O_RDWR, 0600) == -1 && errno == ENOTDIR, "O_TMPFILE on a file fails with ENOTDIR");

	close(dfd);
	td_cleanup();
	printf(failures ? "files_dir: %d failures\n" : "files_dir: ok\n", failures);
	return failures ? 1 : 0;
}
