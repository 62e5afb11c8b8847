/*
 * files_open: open/openat/creat/openat2 flags and errors on a scratch
 * directory: O_CREAT|O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY, O_NOFOLLOW,
 * O_PATH, O_CLOEXEC, O_NONBLOCK, access modes, dirfd-relative opens,
 * openat2 RESOLVE_BENEATH / RESOLVE_NO_SYMLINKS / RESOLVE_IN_ROOT,
 * close_range, ENAMETOOLONG/ENOENT/EISDIR, and umask on created modes.
 *
 * Usage: files_open [dir]   (default: a fresh mkdtemp directory in /tmp)
 * Build: gcc -O2 -static -o files_open files_open.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "testdir.h"

static long openat2_(int dirfd, const char *path, long flags, long mode, long resolve)
{
	struct open_how how;
	memset(&how, 0, sizeof how);
	how.flags = flags;
	how.mode = mode;
	how.resolve = resolve;
	return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* contents reads up to n-1 bytes of path into buf and returns buf. */
static const char *contents(const char *path, char *buf, size_t n)
{
	buf[0] = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return "(open failed)";
	ssize_t r = read(fd, buf, n - 1);
	buf[r > 0 ? r : 0] = 0;
	close(fd);
	return buf;
}

static int put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

int main(int argc, char **argv)
{
	char buf[256];
	struct stat st;
	int fd, fd2;

	td_setup(argc, argv);

	/* creat and O_CREAT|O_EXCL */
	fd = creat("a", 0644);
	check(fd >= 0, "creat makes a new file");
	check(fcntl(fd, F_GETFL) >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY, "creat opens O_WRONLY");
	check(write(fd, "hello", 5) == 5, "write to the created file");
	close(fd);
	errno = 0;
	check(open("a", O_CREAT | O_EXCL | O_WRONLY, 0644) == -1 && errno == EEXIST, "O_CREAT|O_EXCL on an existing file fails with EEXIST");
	fd = open("b", O_CREAT | O_EXCL | O_RDWR, 0600);
	check(fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600, "O_CREAT|O_EXCL on a new name creates a 0600 file");
	close(fd);
	check(symlink("nowhere", "dangling") == 0, "symlink to a missing target");
	errno = 0;
	check(open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644) == -1 && errno == EEXIST, "O_CREAT|O_EXCL on a dangling symlink fails with EEXIST");
	fd = open("dangling", O_CREAT | O_WRONLY, 0644);
	check(fd >= 0 && stat("nowhere", &st) == 0 && S_ISREG(st.st_mode), "O_CREAT through a dangling symlink creates its target");
	close(fd);
	fd = open("a", O_CREAT | O_RDONLY, 0600);
	check(fd >= 0 && mode_of("a") == 0644, "O_CREAT on an existing file keeps its mode");
	close(fd);

	/* O_TRUNC */
	fd = open("a", O_WRONLY | O_TRUNC);
	check(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0, "O_TRUNC empties the file");
	close(fd);

	/* O_APPEND */
	fd = open("a", O_WRONLY | O_APPEND);
	check(fd >= 0, "open O_APPEND");
	check(write(fd, "abc", 3) == 3, "append write of abc");
	check(lseek(fd, 0, SEEK_SET) == 0, "lseek to 0 on an O_APPEND descriptor");
	check(write(fd, "def", 3) == 3 && lseek(fd, 0, SEEK_CUR) == 6, "append write after lseek(0) leaves the offset at the end (6)");
	check(strcmp(contents("a", buf, sizeof buf), "abcdef") == 0, "O_APPEND writes went to the end: abcdef");
	check((fcntl(fd, F_GETFL) & O_APPEND) != 0, "F_GETFL shows O_APPEND");
	check(pwrite(fd, "g", 1, 0) == 1 && strcmp(contents("a", buf, sizeof buf), "abcdefg") == 0, "pwrite at 0 on an O_APPEND descriptor appends");
	check(fcntl(fd, F_SETFL, 0) == 0 && (fcntl(fd, F_GETFL) & O_APPEND) == 0, "F_SETFL clears O_APPEND");
	check(lseek(fd, 0, SEEK_SET) == 0 && write(fd, "A", 1) == 1 && strcmp(contents("a", buf, sizeof buf), "Abcdefg") == 0, "without O_APPEND the write goes to the offset");
	close(fd);

	/* access modes */
	fd = open("a", O_RDONLY);
	check(fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY, "F_GETFL shows O_RDONLY");
	errno = 0;
	check(write(fd, "x", 1) == -1 && errno == EBADF, "write to an O_RDONLY descriptor fails with EBADF");
	close(fd);
	fd = open("a", O_WRONLY);
	errno = 0;
	check(read(fd, buf, 1) == -1 && errno == EBADF, "read from an O_WRONLY descriptor fails with EBADF");
	close(fd);
	fd = open("a", O_RDWR);
	check(fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "F_GETFL shows O_RDWR");
	check(read(fd, buf, 3) == 3 && write(fd, "D", 1) == 1 && strcmp(contents("a", buf, sizeof buf), "AbcDefg") == 0, "O_RDWR read then write share one offset");
	close(fd);

	/* O_DIRECTORY and directories */
	check(mkdir("d", 0755) == 0, "mkdir d");
	errno = 0;
	check(open("a", O_RDONLY | O_DIRECTORY) == -1 && errno == ENOTDIR, "O_DIRECTORY on a file fails with ENOTDIR");
	fd = open("d", O_RDONLY | O_DIRECTORY);
	check(fd >= 0, "O_DIRECTORY on a directory succeeds");
	errno = 0;
	check(read(fd, buf, 1) == -1 && errno == EISDIR, "read from a directory fails with EISDIR");
	close(fd);
	errno = 0;
	check(open("d", O_WRONLY) == -1 && errno == EISDIR, "open of a directory O_WRONLY fails with EISDIR");
	errno = 0;
	check(open("d", O_RDWR) == -1 && errno == EISDIR, "open of a directory O_RDWR fails with EISDIR");
	errno = 0;
	check(open("d", O_CREAT | O_WRONLY, 0644) == -1 && errno == EISDIR, "O_CREAT on an existing directory fails with EISDIR");
	errno = 0;
	check(open("newdir/", O_CREAT | O_WRONLY, 0644) == -1 && errno == EISDIR, "O_CREAT of a name with a trailing slash fails with EISDIR");
	errno = 0;
	check(open("a/", O_RDONLY) == -1 && errno == ENOTDIR, "a file name with a trailing slash fails with ENOTDIR");

	/* O_NOFOLLOW */
	check(symlink("a", "la") == 0 && symlink("d", "ld") == 0, "symlinks la -> a and ld -> d");
	errno = 0;
	check(open("la", O_RDONLY | O_NOFOLLOW) == -1 && errno == ELOOP, "O_NOFOLLOW on a symlink fails with ELOOP");
	fd = open("la", O_RDONLY);
	check(fd >= 0 && read(fd, buf, 7) == 7 && memcmp(buf, "AbcDefg", 7) == 0, "open follows a symlink by default");
	close(fd);
	check(put("d/f", "in d") == 0, "create d/f");
	fd = open("ld/f", O_RDONLY | O_NOFOLLOW);
	check(fd >= 0, "O_NOFOLLOW only applies to the last component (ld/f opens)");
	close(fd);

	/* O_PATH */
	fd = open("a", O_PATH);
	check(fd >= 0, "O_PATH open of a file");
	errno = 0;
	check(read(fd, buf, 1) == -1 && errno == EBADF, "read from an O_PATH descriptor fails with EBADF");
	errno = 0;
	check(write(fd, "x", 1) == -1 && errno == EBADF, "write to an O_PATH descriptor fails with EBADF");
	check(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 7, "fstat of an O_PATH descriptor works");
	check((fcntl(fd, F_GETFL) & O_PATH) != 0, "F_GETFL shows O_PATH");
	errno = 0;
	check(fchmod(fd, 0600) == -1 && errno == EBADF, "fchmod of an O_PATH descriptor fails with EBADF");
	close(fd);
	fd = open("la", O_PATH | O_NOFOLLOW);
	check(fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode), "O_PATH|O_NOFOLLOW opens the symlink itself");
	memset(buf, 0, sizeof buf);
	check(readlinkat(fd, "", buf, sizeof buf) == 1 && buf[0] == 'a', "readlinkat(fd, \"\") reads an O_PATH symlink");
	close(fd);
	fd = open("d", O_PATH | O_DIRECTORY);
	fd2 = openat(fd, "f", O_RDONLY);
	check(fd2 >= 0 && read(fd2, buf, 4) == 4 && memcmp(buf, "in d", 4) == 0, "an O_PATH directory works as a dirfd");
	close(fd2);
	close(fd);

	/* O_CLOEXEC and O_NONBLOCK */
	fd = open("a", O_RDONLY | O_CLOEXEC);
	check(fcntl(fd, F_GETFD) == FD_CLOEXEC, "O_CLOEXEC sets FD_CLOEXEC");
	close(fd);
	fd = open("a", O_RDONLY);
	check(fcntl(fd, F_GETFD) == 0, "without O_CLOEXEC FD_CLOEXEC is clear");
	close(fd);
	fd = open("a", O_RDONLY | O_NONBLOCK);
	check((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0, "F_GETFL shows O_NONBLOCK");
	check(fcntl(fd, F_SETFL, 0) == 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK) == 0, "F_SETFL clears O_NONBLOCK");
	check(read(fd, buf, 7) == 7, "O_NONBLOCK regular file reads normally");
	close(fd);

	/* descriptor numbering */
	fd = open("a", O_RDONLY);
	close(fd);
	fd2 = open("b", O_RDONLY);
	check(fd2 == fd, "open reuses the lowest free descriptor");
	close(fd2);

	/* openat */
	int dfd = open("d", O_RDONLY | O_DIRECTORY);
	fd = openat(dfd, "g", O_CREAT | O_WRONLY, 0644);
	check(fd >= 0 && stat("d/g", &st) == 0, "openat(dirfd, \"g\", O_CREAT) creates d/g");
	close(fd);
	fd = openat(dfd, "../a", O_RDONLY);
	check(fd >= 0 && read(fd, buf, 7) == 7 && memcmp(buf, "AbcDefg", 7) == 0, "openat(dirfd, \"../a\") reaches the parent");
	close(fd);
	char abspath[PATH_MAX + 8];
	snprintf(abspath, sizeof abspath, "%s/d/f", td_path);
	fd = openat(-1, abspath, O_RDONLY);
	check(fd >= 0, "openat with an absolute path ignores the dirfd");
	close(fd);
	fd = openat(AT_FDCWD, "d/f", O_RDONLY);
	check(fd >= 0, "openat(AT_FDCWD) is relative to the cwd");
	close(fd);
	fd = open("a", O_RDONLY);
	errno = 0;
	check(openat(fd, "x", O_RDONLY) == -1 && errno == ENOTDIR, "openat with a file as dirfd fails with ENOTDIR");
	close(fd);
	errno = 0;
	check(openat(999, "x", O_RDONLY) == -1 && errno == EBADF, "openat with a closed dirfd fails with EBADF");

	/* openat2 */
	check(put("d/sub_target", "x") == 0 && symlink("/f", "d/abs") == 0 && symlink("../../f", "d/up") == 0 && symlink("f", "d/rel") == 0, "symlinks in d: abs -> /f, up -> ../../f, rel -> f");
	fd = openat2_(dfd, "f", O_RDONLY, 0, RESOLVE_BENEATH);
	check(fd >= 0, "openat2 RESOLVE_BENEATH of a name inside succeeds");
	close(fd);
	errno = 0;
	check(openat2_(dfd, "../a", O_RDONLY, 0, RESOLVE_BENEATH) == -1 && errno == EXDEV, "openat2 RESOLVE_BENEATH of ../a fails with EXDEV");
	errno = 0;
	check(openat2_(dfd, abspath, O_RDONLY, 0, RESOLVE_BENEATH) == -1 && errno == EXDEV, "openat2 RESOLVE_BENEATH of an absolute path fails with EXDEV");
	errno = 0;
	check(openat2_(dfd, "abs", O_RDONLY, 0, RESOLVE_BENEATH) == -1 && errno == EXDEV, "openat2 RESOLVE_BENEATH through an absolute symlink fails with EXDEV");
	fd = openat2_(dfd, "rel", O_RDONLY, 0, RESOLVE_BENEATH);
	check(fd >= 0, "openat2 RESOLVE_BENEATH through a relative symlink inside succeeds");
	close(fd);
	errno = 0;
	check(openat2_(dfd, "rel", O_RDONLY, 0, RESOLVE_NO_SYMLINKS) == -1 && errno == ELOOP, "openat2 RESOLVE_NO_SYMLINKS through a symlink fails with ELOOP");
	errno = 0;
	check(openat2_(AT_FDCWD, "ld/f", O_RDONLY, 0, RESOLVE_NO_SYMLINKS) == -1 && errno == ELOOP, "openat2 RESOLVE_NO_SYMLINKS with a symlinked directory fails with ELOOP");
	fd = openat2_(dfd, "abs", O_RDONLY, 0, RESOLVE_IN_ROOT);
	memset(buf, 0, sizeof buf);
	check(fd >= 0 && read(fd, buf, sizeof buf) == 4 && strcmp(buf, "in d") == 0, "openat2 RESOLVE_IN_ROOT resolves the absolute symlink /f inside d");
	close(fd);
	fd = openat2_(dfd, "up", O_RDONLY, 0, RESOLVE_IN_ROOT);
	memset(buf, 0, sizeof buf);
	check(fd >= 0 && read(fd, buf, sizeof buf) == 4 && strcmp(buf, "in d") == 0, "openat2 RESOLVE_IN_ROOT clamps ../../f to d/f");
	close(fd);
	fd = openat2_(dfd, "new", O_CREAT | O_WRONLY, 0640, RESOLVE_BENEATH);
	check(fd >= 0 && mode_of("d/new") == 0640, "openat2 O_CREAT with mode 0640 creates d/new");
	close(fd);
	errno = 0;
	check(openat2_(dfd, "f", O_RDONLY, 0644, 0) == -1 && errno == EINVAL, "openat2 with a mode but no O_CREAT fails with EINVAL");
	errno = 0;
	check(openat2_(dfd, "f", O_RDONLY, 0, 1ULL << 40) == -1 && errno == EINVAL, "openat2 with unknown resolve bits fails with EINVAL");
	struct open_how how = {.flags = O_RDONLY};
	errno = 0;
	check(syscall(SYS_openat2, dfd, "f", &how, 8) == -1 && errno == EINVAL, "openat2 with a too-small open_how fails with EINVAL");
	close(dfd);

	/* close_range */
	fd = open("a", O_RDONLY);
	check(dup2(fd, 500) == 500 && dup2(fd, 501) == 501 && dup2(fd, 502) == 502, "dup2 to 500, 501, 502");
	close(fd);
	check(close_range(500, 502, CLOSE_RANGE_CLOEXEC) == 0, "close_range(500, 502, CLOSE_RANGE_CLOEXEC) succeeds");
	check(fcntl(500, F_GETFD) == FD_CLOEXEC && fcntl(501, F_GETFD) == FD_CLOEXEC && fcntl(502, F_GETFD) == FD_CLOEXEC, "CLOSE_RANGE_CLOEXEC marks all three close-on-exec and leaves them open");
	check(close_range(500, 501, 0) == 0, "close_range(500, 501, 0) succeeds");
	errno = 0;
	check(fcntl(500, F_GETFD) == -1 && errno == EBADF && fcntl(501, F_GETFD) == -1 && fcntl(502, F_GETFD) == FD_CLOEXEC, "close_range closed 500 and 501 but not 502");
	check(close_range(502, 520, 0) == 0 && fcntl(502, F_GETFD) == -1, "close_range over a sparse range closes 502");
	errno = 0;
	check(close_range(10, 5, 0) == -1 && errno == EINVAL, "close_range with first > last fails with EINVAL");

	/* name errors */
	char longname[301];
	memset(longname, 'n', 300);
	longname[300] = 0;
	errno = 0;
	check(open(longname, O_CREAT | O_WRONLY, 0644) == -1 && errno == ENAMETOOLONG, "a 300-byte name fails with ENAMETOOLONG");
	static char longpath[PATH_MAX + 100];
	for (size_t i = 0; i + 2 < sizeof longpath; i += 2)
		memcpy(longpath + i, "./", 2);
	longpath[sizeof longpath - 2] = 'a';
	longpath[sizeof longpath - 1] = 0;
	errno = 0;
	check(open(longpath, O_RDONLY) == -1 && errno == ENAMETOOLONG, "a path longer than PATH_MAX fails with ENAMETOOLONG");
	errno = 0;
	check(open("nodir/x", O_CREAT | O_WRONLY, 0644) == -1 && errno == ENOENT, "O_CREAT under a missing directory fails with ENOENT");
	errno = 0;
	check(open("missing", O_RDONLY) == -1 && errno == ENOENT, "open of a missing file fails with ENOENT");
	errno = 0;
	check(open("", O_RDONLY) == -1 && errno == ENOENT, "open of the empty path fails with ENOENT");
	errno = 0;
	check(open("a/x", O_RDONLY) == -1 && errno == ENOTDIR, "a path through a file fails with ENOTDIR");

	/* umask */
	umask(027);
	fd = creat("m1", 0777);
	close(fd);
	check(mode_of("m1") == 0750, "umask 027 turns creat mode 0777 into 0750");
	check(mkdir("m2", 0777) == 0 && mode_of("m2") == 0750, "umask 027 turns mkdir mode 0777 into 0750");
	check(umask(0) == 027, "umask returns the previous mask 027");
	fd = creat("m3", 0777);
	close(fd);
	check(mode_of("m3") == 0777, "umask 0 keeps creat mode 0777");
	umask(022);
	fd = open("m4", O_CREAT | O_WRONLY, 06777);
	close(fd);
	check(mode_of("m4") == 06755, "umask 022 keeps set-id bits: 06777 becomes 06755");

	td_cleanup();
	printf(failures ? "files_open: %d failures\n" : "files_open: ok\n", failures);
	return failures ? 1 : 0;
}
