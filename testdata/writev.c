/*
 * writev: exercises the standard descriptors with raw system calls: write,
 * writev (several iovecs, empty iovecs, iovcnt 0, iovcnt > IOV_MAX), pwrite64
 * and pread64 on a pipe (ESPIPE), dup/dup2/dup3/fcntl(F_DUPFD, F_DUPFD_CLOEXEC,
 * F_GETFD, F_SETFD, F_GETFL), close, EBADF on closed and bogus descriptors,
 * fstat/newfstatat(AT_EMPTY_PATH) of a pipe, TCGETS/TIOCGWINSZ on a pipe
 * (ENOTTY), EFAULT for bad buffers, and writes to stderr. Deliberately bad
 * calls go through syscall(2) so libc and the compiler stay out of the way.
 *
 * The harness runs it with stdout and stderr connected to pipes; stdout
 * output is compared byte for byte, stderr gets two fixed lines.
 *
 * Build: gcc -O2 -static -o writev writev.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

static int failures;

/* say writes one line to stdout with a single write(2) call. */
static void say(const char *s)
{
	char buf[512];
	size_t n = strlen(s);
	if (n > sizeof buf - 1)
		n = sizeof buf - 1;
	memcpy(buf, s, n);
	buf[n] = '\n';
	if (write(1, buf, n + 1) != (ssize_t)(n + 1))
		failures++;
}

static void check(int ok, const char *what)
{
	char buf[512];
	if (ok) {
		say(what);
	} else {
		snprintf(buf, sizeof buf, "FAIL: %s (errno %d)", what, errno);
		say(buf);
		failures++;
	}
}

int main(void)
{
	ssize_t n;

	n = write(1, "plain write\n", 12);
	check(n == 12, "write returned 12");
	n = write(1, "", 0);
	check(n == 0, "write of 0 bytes returns 0");

	struct iovec iov[4] = {
		{"writev ", 7},
		{"", 0},
		{"of several ", 11},
		{"iovecs\n", 7},
	};
	n = writev(1, iov, 4);
	check(n == 25, "writev returned 25");
	n = writev(1, iov, 0);
	check(n == 0, "writev with iovcnt 0 returns 0");
	errno = 0;
	n = syscall(SYS_writev, 1, iov, IOV_MAX + 1);
	check(n == -1 && errno == EINVAL, "writev with iovcnt > IOV_MAX fails with EINVAL");
	errno = 0;
	n = syscall(SYS_writev, 1, iov, -1);
	check(n == -1 && errno == EINVAL, "writev with negative iovcnt fails with EINVAL");

	static struct iovec many[IOV_MAX];
	static char letters[IOV_MAX];
	for (int i = 0; i < IOV_MAX - 1; i++) {
		letters[i] = 'a' + i % 26;
		many[i].iov_base = &letters[i];
		many[i].iov_len = 1;
	}
	many[IOV_MAX - 1].iov_base = "\n";
	many[IOV_MAX - 1].iov_len = 1;
	n = writev(1, many, IOV_MAX);
	check(n == IOV_MAX, "writev of IOV_MAX one-byte iovecs returned IOV_MAX");

	errno = 0;
	n = pwrite(1, "x", 1, 0);
	check(n == -1 && errno == ESPIPE, "pwrite64 on a pipe fails with ESPIPE");
	errno = 0;
	char c;
	n = pread(1, &c, 1, 0);
	check(n == -1 && errno == ESPIPE, "pread64 on a pipe fails with ESPIPE");
	errno = 0;
	n = read(1, &c, 1);
	check(n == -1 && errno == EBADF, "read from the write end of a pipe fails with EBADF");

	errno = 0;
	n = syscall(SYS_write, 1, (void *)8, 16);
	check(n == -1 && errno == EFAULT, "write from a bad pointer fails with EFAULT");
	errno = 0;
	struct iovec bad = {(void *)8, 16};
	n = syscall(SYS_writev, 1, &bad, 1);
	check(n == -1 && errno == EFAULT, "writev from a bad pointer fails with EFAULT");
	errno = 0;
	n = syscall(SYS_writev, 1, (void *)8, 1);
	check(n == -1 && errno == EFAULT, "writev with a bad iovec array fails with EFAULT");

	/* fstat of a pipe */
	struct stat st;
	check(fstat(1, &st) == 0, "fstat(1) succeeds");
	check(S_ISFIFO(st.st_mode), "stdout is a FIFO");
	memset(&st, 0, sizeof st);
	check(fstatat(1, "", &st, AT_EMPTY_PATH) == 0 && S_ISFIFO(st.st_mode), "newfstatat(1, \"\", AT_EMPTY_PATH) says FIFO");
	errno = 0;
	check(fstat(77, &st) == -1 && errno == EBADF, "fstat of a closed descriptor fails with EBADF");

	/* terminal ioctls on a pipe */
	struct termios tio;
	errno = 0;
	check(ioctl(1, TCGETS, &tio) == -1 && errno == ENOTTY, "TCGETS on a pipe fails with ENOTTY");
	check(!isatty(1), "isatty(1) is false");
	struct winsize ws;
	errno = 0;
	check(ioctl(1, TIOCGWINSZ, &ws) == -1 && errno == ENOTTY, "TIOCGWINSZ on a pipe fails with ENOTTY");

	/* fcntl flags */
	int fl = fcntl(1, F_GETFL);
	check(fl >= 0 && (fl & O_ACCMODE) == O_WRONLY, "stdout is open O_WRONLY");
	check(fcntl(1, F_GETFD) == 0, "stdout is not close-on-exec");

	/* dup family */
	int d = dup(1);
	check(d == 3, "dup(1) returns the lowest free descriptor 3");
	n = write(d, "via dup\n", 8);
	check(n == 8, "write through the dup succeeds");
	check(fcntl(d, F_GETFD) == 0, "dup clears close-on-exec");
	check(fcntl(d, F_SETFD, FD_CLOEXEC) == 0 && fcntl(d, F_GETFD) == FD_CLOEXEC, "F_SETFD sets FD_CLOEXEC");
	check(close(d) == 0, "close of the dup succeeds");
	errno = 0;
	check(close(d) == -1 && errno == EBADF, "second close fails with EBADF");
	errno = 0;
	check(write(d, "x", 1) == -1 && errno == EBADF, "write to a closed descriptor fails with EBADF");

	check(dup2(1, 10) == 10, "dup2(1, 10) returns 10");
	n = write(10, "via dup2\n", 9);
	check(n == 9, "write through dup2 succeeds");
	check(dup2(10, 10) == 10, "dup2 onto itself returns the descriptor");
	errno = 0;
	check(dup3(10, 10, 0) == -1 && errno == EINVAL, "dup3 onto itself fails with EINVAL");
	check(dup3(1, 11, O_CLOEXEC) == 11 && fcntl(11, F_GETFD) == FD_CLOEXEC, "dup3 with O_CLOEXEC sets FD_CLOEXEC");
	check(fcntl(1, F_DUPFD, 20) == 20, "F_DUPFD returns the lowest free descriptor >= 20");
	check(fcntl(1, F_DUPFD, 20) == 21, "F_DUPFD skips used descriptors");
	int e = fcntl(1, F_DUPFD_CLOEXEC, 5);
	check(e == 5 && fcntl(e, F_GETFD) == FD_CLOEXEC, "F_DUPFD_CLOEXEC sets FD_CLOEXEC");
	check(close(10) == 0 && close(11) == 0 && close(20) == 0 && close(21) == 0 && close(5) == 0, "closing the dups succeeds");
	errno = 0;
	check(dup2(1, -1) == -1 && errno == EBADF, "dup2 to a negative descriptor fails with EBADF");
	errno = 0;
	check(dup(99) == -1 && errno == EBADF, "dup of a closed descriptor fails with EBADF");
	errno = 0;
	check(fcntl(99, F_GETFD) == -1 && errno == EBADF, "fcntl of a closed descriptor fails with EBADF");
	errno = 0;
	check(write(-1, "x", 1) == -1 && errno == EBADF, "write to -1 fails with EBADF");
	errno = 0;
	check(write(1 << 20, "x", 1) == -1 && errno == EBADF, "write to a huge descriptor fails with EBADF");

	/* stderr */
	n = write(2, "stderr: plain write\n", 20);
	check(n == 20, "write to stderr succeeds");
	struct iovec eiov[2] = {{"stderr: ", 8}, {"writev\n", 7}};
	n = writev(2, eiov, 2);
	check(n == 15, "writev to stderr succeeds");

	/* all duplicates are closed, so 3 is the lowest free descriptor again */
	d = dup(1);
	check(d == 3, "descriptor 3 is reused after close");
	close(d);

	char buf[64];
	snprintf(buf, sizeof buf, failures ? "writev: %d failures" : "writev: ok", failures);
	say(buf);
	return failures ? 1 : 0;
}
