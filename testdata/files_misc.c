/*
 * files_misc: the rest of the file system surface, in a scratch directory:
 *  - extended attributes (user.*): set/get/list/remove, f- and l- forms,
 *    XATTR_CREATE/XATTR_REPLACE, ENODATA, ERANGE, EPERM on symlinks;
 *  - inotify: event masks, names and rename cookies in order for a watched
 *    directory and file, IN_IGNORED, FIONREAD, non-blocking reads;
 *  - generic ioctls: FIONREAD (pipe, regular file), FIOCLEX/FIONCLEX, FIONBIO;
 *  - /dev/null, /dev/zero, /dev/full, /dev/urandom;
 *  - a FIFO made with mknodat, used O_RDWR|O_NONBLOCK;
 *  - /proc/self/fd and /proc/self/exe links; getcwd after chdir ..;
 *  - mount of a tmpfs on a subdirectory (as root), umount2 (EBUSY, MNT_DETACH).
 * Where a feature may be refused (user xattrs, mount), the outcome is
 * printed either way rather than counted as a failure.
 *
 * Usage: files_misc [dir]   (default: a fresh mkdtemp directory in /tmp)
 * Build: gcc -O2 -static -o files_misc files_misc.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "check.h"
#include "testdir.h"

static int put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* user_names prints the user.* names of a listxattr result, sorted. */
static void user_names(const char *what, char *list, ssize_t n)
{
	char *names[32];
	int k = 0;
	for (char *p = list; n > 0 && p < list + n && k < 32; p += strlen(p) + 1)
		if (strncmp(p, "user.", 5) == 0)
			names[k++] = p;
	qsort(names, k, sizeof names[0], cmpstr);
	printf("%s:", what);
	for (int i = 0; i < k; i++)
		printf(" %s", names[i]);
	printf("\n");
	fflush(stdout);
}

static void xattrs(void)
{
	char buf[256];
	ssize_t n;

	check(put("x", "data") == 0 && symlink("x", "lx") == 0, "create x and symlink lx -> x");
	if (setxattr("x", "user.test", "hello", 5, 0) != 0) {
		printf("setxattr user.test: refused with errno %d; xattr checks skipped\n", errno);
		return;
	}
	check(1, "setxattr user.test = hello");
	n = getxattr("x", "user.test", buf, sizeof buf);
	check(n == 5 && memcmp(buf, "hello", 5) == 0, "getxattr returns hello");
	check(getxattr("x", "user.test", NULL, 0) == 5, "getxattr with size 0 returns the length 5");
	errno = 0;
	check(getxattr("x", "user.test", buf, 2) == -1 && errno == ERANGE, "getxattr into a 2-byte buffer fails with ERANGE");
	errno = 0;
	check(getxattr("x", "user.missing", buf, sizeof buf) == -1 && errno == ENODATA, "getxattr of a missing name fails with ENODATA");
	errno = 0;
	check(setxattr("x", "user.test", "again", 5, XATTR_CREATE) == -1 && errno == EEXIST, "XATTR_CREATE of an existing name fails with EEXIST");
	errno = 0;
	check(setxattr("x", "user.new", "v", 1, XATTR_REPLACE) == -1 && errno == ENODATA, "XATTR_REPLACE of a missing name fails with ENODATA");
	check(setxattr("x", "user.test", "replaced", 8, XATTR_REPLACE) == 0 && getxattr("x", "user.test", buf, sizeof buf) == 8 && memcmp(buf, "replaced", 8) == 0, "XATTR_REPLACE replaces the value");
	check(setxattr("x", "user.empty", "", 0, XATTR_CREATE) == 0 && getxattr("x", "user.empty", buf, sizeof buf) == 0, "an empty value is allowed");
	int fd = open("x", O_RDONLY);
	check(fsetxattr(fd, "user.viafd", "fd", 2, 0) == 0 && fgetxattr(fd, "user.viafd", buf, sizeof buf) == 2 && memcmp(buf, "fd", 2) == 0, "fsetxattr and fgetxattr on a descriptor");
	check(lgetxattr("lx", "user.test", buf, sizeof buf) == -1 && getxattr("lx", "user.test", buf, sizeof buf) == 8, "getxattr follows the symlink, lgetxattr does not");
	errno = 0;
	check(lsetxattr("lx", "user.test", "x", 1, 0) == -1 && errno == EPERM, "lsetxattr of a user.* name on a symlink fails with EPERM");
	n = listxattr("x", buf, sizeof buf);
	check(n > 0, "listxattr");
	user_names("user xattrs", buf, n);
	ssize_t need = listxattr("x", NULL, 0);
	check(need == n, "listxattr with size 0 returns the needed size");
	errno = 0;
	check(listxattr("x", buf, 3) == -1 && errno == ERANGE, "listxattr into a 3-byte buffer fails with ERANGE");
	check(removexattr("x", "user.test") == 0, "removexattr user.test");
	errno = 0;
	check(getxattr("x", "user.test", buf, sizeof buf) == -1 && errno == ENODATA, "the removed name is gone (ENODATA)");
	errno = 0;
	check(removexattr("x", "user.test") == -1 && errno == ENODATA, "removexattr of a missing name fails with ENODATA");
	check(fremovexattr(fd, "user.viafd") == 0 && removexattr("x", "user.empty") == 0, "fremovexattr and removexattr of the rest");
	n = flistxattr(fd, buf, sizeof buf);
	user_names("user xattrs after removal", buf, n < 0 ? 0 : n);
	errno = 0;
	check(setxattr("x", "bogus.name", "v", 1, 0) == -1 && errno == EOPNOTSUPP, "an unknown namespace fails with EOPNOTSUPP");
	close(fd);
}

static const char *mask_name(uint32_t m)
{
	static char s[128];
	static const struct {
		uint32_t bit;
		const char *name;
	} bits[] = {
		{IN_ACCESS, "IN_ACCESS"}, {IN_MODIFY, "IN_MODIFY"}, {IN_ATTRIB, "IN_ATTRIB"},
		{IN_CLOSE_WRITE, "IN_CLOSE_WRITE"}, {IN_CLOSE_NOWRITE, "IN_CLOSE_NOWRITE"},
		{IN_OPEN, "IN_OPEN"}, {IN_MOVED_FROM, "IN_MOVED_FROM"}, {IN_MOVED_TO, "IN_MOVED_TO"},
		{IN_CREATE, "IN_CREATE"}, {IN_DELETE, "IN_DELETE"}, {IN_DELETE_SELF, "IN_DELETE_SELF"},
		{IN_MOVE_SELF, "IN_MOVE_SELF"}, {IN_UNMOUNT, "IN_UNMOUNT"}, {IN_Q_OVERFLOW, "IN_Q_OVERFLOW"},
		{IN_IGNORED, "IN_IGNORED"}, {IN_ISDIR, "IN_ISDIR"},
	};
	s[0] = 0;
	for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
		if (m & bits[i].bit) {
			if (s[0])
				strcat(s, "|");
			strcat(s, bits[i].name);
		}
	if (!s[0])
		snprintf(s, sizeof s, "0x%x", m);
	return s;
}

/* drain reads all pending events and prints them as "watch mask name". */
static int drain(int ifd, int dw, int fw, uint32_t *cookies)
{
	static char ev[8192] __attribute__((aligned(8)));
	int count = 0;
	for (;;) {
		ssize_t n = read(ifd, ev, sizeof ev);
		if (n <= 0)
			break;
		for (char *p = ev; p < ev + n;) {
			struct inotify_event *e = (void *)p;
			printf("inotify event: %s %s %s\n", e->wd == dw ? "dir" : e->wd == fw ? "file" : "?", mask_name(e->mask), e->len ? e->name : "-");
			if (cookies && (e->mask & (IN_MOVED_FROM | IN_MOVED_TO)))
				cookies[(e->mask & IN_MOVED_TO) != 0] = e->cookie;
			p += sizeof *e + e->len;
			count++;
		}
	}
	fflush(stdout);
	return count;
}

static void notify(void)
{
	char buf[64];
	uint32_t cookies[2] = {0, 0};
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	check(ifd >= 0 && (fcntl(ifd, F_GETFL) & O_NONBLOCK) && fcntl(ifd, F_GETFD) == FD_CLOEXEC, "inotify_init1(IN_NONBLOCK|IN_CLOEXEC)");
	errno = 0;
	check(read(ifd, buf, sizeof buf) == -1 && errno == EAGAIN, "read with no events fails with EAGAIN");
	check(mkdir("w", 0755) == 0 && put("w/victim", "v") == 0, "make directory w and w/victim");
	int dw = inotify_add_watch(ifd, "w", IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO);
	int fw = inotify_add_watch(ifd, "w/victim", IN_ATTRIB | IN_DELETE_SELF);
	check(dw >= 0 && fw >= 0 && dw != fw, "watch w and w/victim");
	check(inotify_add_watch(ifd, "w", IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO) == dw, "watching w again returns the same descriptor");
	errno = 0;
	check(inotify_add_watch(ifd, "missing", IN_CREATE) == -1 && errno == ENOENT, "watching a missing path fails with ENOENT");
	errno = 0;
	check(inotify_add_watch(ifd, "w", 0) == -1 && errno == EINVAL, "an empty mask fails with EINVAL");

	int fd = open("w/file", O_WRONLY | O_CREAT, 0644);
	check(fd >= 0 && write(fd, "abc", 3) == 3, "create w/file and write to it");
	close(fd);
	check(rename("w/file", "w/moved") == 0, "rename w/file to w/moved");
	check(unlink("w/moved") == 0, "unlink w/moved");
	check(mkdir("w/sub", 0755) == 0 && rmdir("w/sub") == 0, "mkdir and rmdir w/sub");
	check(chmod("w/victim", 0600) == 0, "chmod w/victim");
	int pending = 0;
	check(ioctl(ifd, FIONREAD, &pending) == 0 && pending > 0, "FIONREAD on the inotify descriptor reports pending bytes");
	int n = drain(ifd, dw, fw, cookies);
	check(n == 8, "8 events so far");
	check(cookies[0] != 0 && cookies[0] == cookies[1], "IN_MOVED_FROM and IN_MOVED_TO share a non-zero cookie");
	check(unlink("w/victim") == 0, "unlink w/victim");
	drain(ifd, dw, fw, NULL);
	check(inotify_rm_watch(ifd, dw) == 0, "inotify_rm_watch of the directory watch");
	drain(ifd, dw, fw, NULL);
	errno = 0;
	check(inotify_rm_watch(ifd, dw) == -1 && errno == EINVAL, "removing it again fails with EINVAL");
	check(put("w/after", "x") == 0 && drain(ifd, dw, fw, NULL) == 0, "no events after the watch is gone");
	close(ifd);
}

static void ioctls_and_devices(void)
{
	char buf[64];
	int p[2], v, fd;

	check(pipe(p) == 0 && write(p[1], "0123456789", 10) == 10, "write 10 bytes into a pipe");
	check(ioctl(p[0], FIONREAD, &v) == 0 && v == 10, "FIONREAD on the pipe is 10");
	close(p[0]);
	close(p[1]);
	fd = open("r", O_RDWR | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0 && write(fd, buf, 64) == 64 && lseek(fd, 24, SEEK_SET) == 24, "a 64-byte file positioned at 24");
	check(ioctl(fd, FIONREAD, &v) == 0 && v == 40, "FIONREAD on the regular file is the 40 bytes left");
	check(ioctl(fd, FIOCLEX) == 0 && fcntl(fd, F_GETFD) == FD_CLOEXEC, "FIOCLEX sets FD_CLOEXEC");
	check(ioctl(fd, FIONCLEX) == 0 && fcntl(fd, F_GETFD) == 0, "FIONCLEX clears it");
	v = 1;
	check(ioctl(fd, FIONBIO, &v) == 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK), "FIONBIO 1 sets O_NONBLOCK");
	v = 0;
	check(ioctl(fd, FIONBIO, &v) == 0 && !(fcntl(fd, F_GETFL) & O_NONBLOCK), "FIONBIO 0 clears it");
	close(fd);

	fd = open("/dev/null", O_RDWR);
	check(fd >= 0 && write(fd, "gone", 4) == 4 && read(fd, buf, sizeof buf) == 0, "/dev/null swallows writes and reads EOF");
	close(fd);
	fd = open("/dev/zero", O_RDWR);
	memset(buf, 1, sizeof buf);
	int zero = read(fd, buf, sizeof buf) == sizeof buf;
	for (size_t i = 0; i < sizeof buf; i++)
		zero &= buf[i] == 0;
	check(fd >= 0 && zero, "/dev/zero reads zeros");
	check(write(fd, "x", 1) == 1, "/dev/zero accepts writes");
	close(fd);
	fd = open("/dev/full", O_RDWR);
	errno = 0;
	check(fd >= 0 && write(fd, "x", 1) == -1 && errno == ENOSPC, "write to /dev/full fails with ENOSPC");
	check(read(fd, buf, 8) == 8 && buf[0] == 0, "/dev/full reads zeros");
	close(fd);
	fd = open("/dev/urandom", O_RDONLY);
	check(fd >= 0 && read(fd, buf, 32) == 32, "read 32 bytes from /dev/urandom");
	close(fd);

	check(mknodat(td_fd, "fifo", S_IFIFO | 0644, 0) == 0, "mknodat makes a FIFO");
	struct stat st;
	check(stat("fifo", &st) == 0 && S_ISFIFO(st.st_mode) && (st.st_mode & 0777) == 0644, "it is a FIFO with mode 0644");
	errno = 0;
	check(open("fifo", O_WRONLY | O_NONBLOCK) == -1 && errno == ENXIO, "O_WRONLY|O_NONBLOCK with no reader fails with ENXIO");
	fd = open("fifo", O_RDWR | O_NONBLOCK);
	check(fd >= 0, "open the FIFO O_RDWR|O_NONBLOCK");
	errno = 0;
	check(read(fd, buf, sizeof buf) == -1 && errno == EAGAIN, "reading the empty FIFO fails with EAGAIN");
	check(write(fd, "through", 7) == 7 && read(fd, buf, sizeof buf) == 7 && memcmp(buf, "through", 7) == 0, "bytes written come back out");
	errno = 0;
	check(lseek(fd, 0, SEEK_SET) == -1 && errno == ESPIPE, "lseek on a FIFO fails with ESPIPE");
	close(fd);
	check(mknod("plain", S_IFREG | 0600, 0) == 0 && stat("plain", &st) == 0 && S_ISREG(st.st_mode), "mknod S_IFREG makes a regular file");
}

static void procfs(void)
{
	char link[64], buf[PATH_MAX + 32], want[PATH_MAX + 32];
	struct stat st;
	ssize_t n;

	int fd = open("named", O_RDWR | O_CREAT, 0644);
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	snprintf(want, sizeof want, "%s/named", td_path);
	check(n > 0 && strcmp(buf, want) == 0, "/proc/self/fd/N names the file by its full path");
	printf("basename: %s\n", strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf);
	check(unlink("named") == 0, "unlink it");
	n = readlink(link, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	check(n > 10 && strcmp(buf + n - 10, " (deleted)") == 0, "now the link ends in \" (deleted)\"");
	close(fd);
	int p[2];
	check(pipe(p) == 0, "a pipe");
	snprintf(link, sizeof link, "/proc/self/fd/%d", p[0]);
	n = readlink(link, buf, sizeof buf - 1);
	check(n > 6 && strncmp(buf, "pipe:[", 6) == 0, "/proc/self/fd of a pipe reads pipe:[...]");
	close(p[0]);
	close(p[1]);

	n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	check(n > 0 && buf[0] == '/', "/proc/self/exe is an absolute path");
	check(stat("/proc/self/exe", &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111), "/proc/self/exe is an executable regular file");
	fd = open("/proc/self/exe", O_RDONLY);
	check(fd >= 0 && read(fd, buf, 4) == 4 && memcmp(buf, "\177ELF", 4) == 0, "/proc/self/exe starts with the ELF magic");
	close(fd);

	check(chdir(td_path) == 0 && chdir("..") == 0, "chdir into the test directory, then ..");
	char *cwd = getcwd(buf, sizeof buf);
	snprintf(want, sizeof want, "%s", td_path);
	char *slash = strrchr(want, '/');
	if (slash == want)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	check(cwd && strcmp(cwd, want) == 0, "getcwd is the test directory's parent");
	check(fchdir(td_fd) == 0, "back into the test directory");
}

static void mounts(void)
{
	struct stat st, here;
	struct statfs sf;
	char buf[16];

	check(mkdir("mnt", 0755) == 0, "mkdir mnt");
	if (mount("none", "mnt", "tmpfs", 0, "size=1m,mode=0700") != 0) {
		printf("mount tmpfs: refused with errno %d; mount checks skipped\n", errno);
		return;
	}
	check(1, "mount a tmpfs on mnt");
	check(statfs("mnt", &sf) == 0 && sf.f_type == TMPFS_MAGIC, "statfs of mnt says tmpfs");
	check(stat("mnt", &st) == 0 && stat(".", &here) == 0 && st.st_dev != here.st_dev, "mnt has its own device");
	check((st.st_mode & 0777) == 0700, "the mode= option applies to the mount's root");
	check(put("mnt/inside", "on tmpfs") == 0, "write mnt/inside");
	int fd = open("mnt/inside", O_RDONLY);
	errno = 0;
	check(umount2("mnt", 0) == -1 && errno == EBUSY, "umount2 with a file open fails with EBUSY");
	close(fd);
	check(umount2("mnt", 0) == 0, "umount2 after closing succeeds");
	errno = 0;
	check(stat("mnt/inside", &st) == -1 && errno == ENOENT, "the file is gone with the mount");
	check(stat("mnt", &st) == 0 && stat(".", &here) == 0 && st.st_dev == here.st_dev, "mnt is a plain directory again");

	check(mount("none", "mnt", "tmpfs", 0, "size=1m") == 0 && put("mnt/kept", "detached") == 0, "mount again and write mnt/kept");
	fd = open("mnt/kept", O_RDONLY);
	check(umount2("mnt", MNT_DETACH) == 0, "umount2 MNT_DETACH with the file open succeeds");
	memset(buf, 0, sizeof buf);
	check(read(fd, buf, sizeof buf) == 8 && strcmp(buf, "detached") == 0, "the open file is still readable");
	errno = 0;
	check(stat("mnt/kept", &st) == -1 && errno == ENOENT, "but it is gone from the name space");
	close(fd);
	errno = 0;
	check(umount2("mnt", 0) == -1 && errno == EINVAL, "umount2 of a directory that is not a mount point fails with EINVAL");
}

int main(int argc, char **argv)
{
	td_setup(argc, argv);
	xattrs();
	notify();
	ioctls_and_devices();
	procfs();
	mounts();
	td_cleanup();
	printf(failures ? "files_misc: %d failures\n" : "files_misc: ok\n", failures);
	return failures ? 1 : 0;
}
