/*
 * pty_pair: a pseudo-terminal pair through glibc's posix_openpt, grantpt,
 * unlockpt and ptsname. It checks that a new pty is locked, the slave
 * node's type, owner and numbers, the slave's default termios, canonical
 * input ("hello\r" reads as "hello\n", erase, word erase, kill, EOF, a
 * partial line is not readable, VINTR flushes the line), echo back to the
 * master, ONLCR on slave output, raw mode after cfmakeraw (bytes pass
 * unchanged, no echo, VMIN/VTIME), the window size from either end, and
 * the ends' closes: the master reads EIO once the slave is closed (POLLHUP
 * too) and not after a reopen; closing the master removes the node and
 * hangs the slave up (EOF, EIO on write).
 *
 * It opens everything with O_NOCTTY, so it never gets a controlling
 * terminal: the output does not depend on how it was started. It prints
 * no pty numbers. Run as root.
 *
 * Build: gcc -O2 -static -Wall -o pty_pair pty_pair.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "check.h"

/* read_exact reads n bytes from fd, waiting up to 2 s for each piece. */
static int read_exact(int fd, char *buf, int n)
{
	int got = 0;
	while (got < n) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 2000) <= 0)
			break;
		int r = read(fd, buf + got, n - got);
		if (r <= 0)
			break;
		got += r;
	}
	return got;
}

/* expect reads strlen(want) bytes and compares. */
static int expect(int fd, const char *want)
{
	char buf[256];
	int n = strlen(want);
	return read_exact(fd, buf, n) == n && memcmp(buf, want, n) == 0;
}

/* quiet reports that nothing arrives on fd within 100 ms. */
static int quiet(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, 100) == 0;
}

/* drain reads whatever arrives on fd until it is quiet. */
static void drain(int fd)
{
	char buf[256];
	while (!quiet(fd))
		if (read(fd, buf, sizeof buf) <= 0)
			break;
}

static int put(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s);
}

int main(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	check(m >= 0, "posix_openpt opens a master");
	check(isatty(m), "the master is a terminal");
	check(grantpt(m) == 0, "grantpt succeeds");
	char *p = ptsname(m);
	check(p != NULL && strncmp(p, "/dev/pts/", 9) == 0, "ptsname is under /dev/pts");
	char name[64];
	snprintf(name, sizeof name, "%s", p ? p : "");
	unsigned int ptn = 0;
	check(ioctl(m, TIOCGPTN, &ptn) == 0, "TIOCGPTN works");
	char byn[64];
	snprintf(byn, sizeof byn, "/dev/pts/%u", ptn);
	check(strcmp(byn, name) == 0, "ptsname names /dev/pts/TIOCGPTN");

	int locked = -1;
	check(ioctl(m, TIOCGPTLCK, &locked) == 0 && locked == 1, "a new pty is locked");
	errno = 0;
	int s = open(name, O_RDWR | O_NOCTTY);
	check(s < 0 && errno == EIO, "opening a locked slave fails with EIO");
	check(unlockpt(m) == 0, "unlockpt succeeds");
	check(ioctl(m, TIOCGPTLCK, &locked) == 0 && locked == 0, "unlockpt unlocks");

	struct stat st;
	check(stat(name, &st) == 0, "stat of the slave works");
	check(S_ISCHR(st.st_mode) && major(st.st_rdev) == 136 && minor(st.st_rdev) == ptn,
	      "the slave is char 136:TIOCGPTN");
	check(st.st_uid == getuid() && (st.st_mode & 0600) == 0600, "the slave is the opener's, read-write for it");
	check(stat("/dev/pts/ptmx", &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 5 &&
	      minor(st.st_rdev) == 2, "/dev/pts/ptmx is char 5:2");
	check(stat("/dev/ptmx", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(5, 2),
	      "/dev/ptmx reaches char 5:2");

	s = open(name, O_RDWR | O_NOCTTY);
	check(s >= 0, "the slave opens once unlocked");
	check(isatty(s), "the slave is a terminal");
	int s2 = open(name, O_RDWR | O_NOCTTY);
	check(s2 >= 0 && close(s2) == 0, "the slave opens twice");

	struct termios t;
	check(tcgetattr(s, &t) == 0, "tcgetattr on the slave works");
	check((t.c_iflag & (ICRNL | IXON)) == (ICRNL | IXON) && !(t.c_iflag & (INLCR | IGNCR)),
	      "default iflag has ICRNL and IXON");
	check((t.c_oflag & (OPOST | ONLCR)) == (OPOST | ONLCR), "default oflag has OPOST and ONLCR");
	check((t.c_cflag & CSIZE) == CS8 && (t.c_cflag & CREAD) && cfgetospeed(&t) == B38400,
	      "default cflag is CS8, CREAD, 38400 baud");
	check((t.c_lflag & (ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN)) ==
		      (ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN),
	      "default lflag has ISIG ICANON ECHO ECHOE ECHOK ECHOCTL ECHOKE IEXTEN");
	check(t.c_cc[VINTR] == 3 && t.c_cc[VQUIT] == 034 && t.c_cc[VERASE] == 0177 && t.c_cc[VKILL] == 025 &&
		      t.c_cc[VEOF] == 4 && t.c_cc[VMIN] == 1 && t.c_cc[VTIME] == 0 && t.c_cc[VSTART] == 021 &&
		      t.c_cc[VSTOP] == 023 && t.c_cc[VSUSP] == 032 && t.c_cc[VWERASE] == 027 &&
		      t.c_cc[VLNEXT] == 026 && t.c_cc[VREPRINT] == 022,
	      "default control characters are Linux's");
	struct termios tm;
	/* Field by field: memcmp would compare the struct's padding. */
	check(tcgetattr(m, &tm) == 0 && tm.c_iflag == t.c_iflag && tm.c_oflag == t.c_oflag &&
		      tm.c_cflag == t.c_cflag && tm.c_lflag == t.c_lflag && memcmp(tm.c_cc, t.c_cc, 19) == 0,
	      "tcgetattr on the master shows the slave's");

	char buf[256];
	/* Canonical mode. */
	check(put(m, "hello\r"), "write hello\\r to the master");
	check(read(s, buf, sizeof buf) == 6 && memcmp(buf, "hello\n", 6) == 0, "the slave reads hello\\n");
	check(expect(m, "hello\r\n"), "the master reads the echo hello\\r\\n");

	check(put(m, "abx\177c\n"), "write a line with an erase");
	check(read(s, buf, sizeof buf) == 4 && memcmp(buf, "abc\n", 4) == 0, "VERASE erases a character");
	check(expect(m, "abx\b \bc\r\n"), "VERASE echoes backspace-space-backspace");

	check(put(m, "foo bar\027baz\n"), "write a line with a word erase");
	check(read(s, buf, sizeof buf) == 8 && memcmp(buf, "foo baz\n", 8) == 0, "VWERASE erases a word");
	drain(m);
	check(put(m, "junk\025ok\n"), "write a line with a kill");
	check(read(s, buf, sizeof buf) == 3 && memcmp(buf, "ok\n", 3) == 0, "VKILL erases the line");
	drain(m);

	check(put(m, "abc\004"), "write abc and VEOF");
	check(read(s, buf, sizeof buf) == 3 && memcmp(buf, "abc", 3) == 0, "VEOF ends a line without itself");
	check(put(m, "\004"), "write VEOF alone");
	check(read(s, buf, sizeof buf) == 0, "VEOF at the start of a line reads as EOF");
	check(expect(m, "abc") && quiet(m), "VEOF is not echoed");

	check(put(m, "two\nlines\n"), "write two lines at once");
	check(read(s, buf, sizeof buf) == 4 && memcmp(buf, "two\n", 4) == 0, "a read returns one line");
	check(read(s, buf, sizeof buf) == 6 && memcmp(buf, "lines\n", 6) == 0, "the next read the next line");
	drain(m);

	check(put(m, "part"), "write a partial line");
	check(quiet(s), "a partial line is not readable");
	check(put(m, "ial\n"), "finish the line");
	check(read(s, buf, sizeof buf) == 8 && memcmp(buf, "partial\n", 8) == 0, "the whole line reads");
	drain(m);

	check(put(m, "lost\003"), "write VINTR after some input");
	check(put(m, "kept\n"), "write another line");
	check(read(s, buf, sizeof buf) == 5 && memcmp(buf, "kept\n", 5) == 0, "VINTR flushed the earlier input");
	drain(m);

	check(put(m, "x\026\003\n"), "write VLNEXT VINTR");
	check(read(s, buf, sizeof buf) == 3 && memcmp(buf, "x\003\n", 3) == 0, "VLNEXT quotes the next character");
	drain(m);

	/* Output processing. */
	check(put(s, "a\n"), "write a\\n to the slave");
	check(expect(m, "a\r\n"), "ONLCR: the master reads a\\r\\n");
	check(put(s, "b\tc\r"), "write a tab and \\r to the slave");
	check(expect(m, "b\tc\r") && quiet(m), "tabs and \\r pass unchanged");

	/* Raw mode. */
	struct termios raw = t;
	cfmakeraw(&raw);
	check(tcsetattr(s, TCSANOW, &raw) == 0, "cfmakeraw and tcsetattr");
	struct termios back;
	check(tcgetattr(s, &back) == 0 && !(back.c_lflag & (ICANON | ECHO | ISIG)) && !(back.c_oflag & OPOST) &&
		      !(back.c_iflag & ICRNL),
	      "raw mode reads back");
	const char bytes[] = "\003\r\n\177\004\025x\377";
	check(write(m, bytes, 8) == 8, "write control bytes to the master");
	check(read_exact(s, buf, 8) == 8 && memcmp(buf, bytes, 8) == 0, "raw mode passes the bytes unchanged");
	check(quiet(m), "raw mode does not echo");
	check(put(s, "b\n"), "write b\\n to the raw slave");
	check(expect(m, "b\n"), "raw output is not processed");

	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	check(tcsetattr(s, TCSANOW, &raw) == 0, "VMIN 0 VTIME 0");
	check(read(s, buf, sizeof buf) == 0, "a read with nothing queued returns 0 at once");
	raw.c_cc[VTIME] = 1;
	check(tcsetattr(s, TCSANOW, &raw) == 0, "VMIN 0 VTIME 1");
	check(read(s, buf, sizeof buf) == 0, "a read times out with 0");
	check(put(m, "q"), "write one byte");
	check(read(s, buf, sizeof buf) == 1 && buf[0] == 'q', "the timed read returns it");
	raw.c_cc[VMIN] = 3;
	raw.c_cc[VTIME] = 0;
	check(tcsetattr(s, TCSANOW, &raw) == 0, "VMIN 3 VTIME 0");
	check(put(m, "123"), "write three bytes");
	check(read(s, buf, sizeof buf) == 3 && memcmp(buf, "123", 3) == 0, "the read returns VMIN bytes");

	check(tcsetattr(s, TCSANOW, &t) == 0, "restore the default termios");
	check(tcgetattr(s, &back) == 0 && back.c_lflag == t.c_lflag && back.c_oflag == t.c_oflag,
	      "the default termios reads back");
	check(tcsetattr(s, TCSAFLUSH, &t) == 0 && tcflush(s, TCIOFLUSH) == 0 && tcflush(m, TCIFLUSH) == 0,
	      "TCSAFLUSH and tcflush work");
	check(tcflow(s, TCOON) == 0 && tcdrain(s) == 0, "tcflow and tcdrain work");

	/* Window size. */
	struct winsize ws = {24, 80, 0, 0}, got;
	check(ioctl(m, TIOCSWINSZ, &ws) == 0, "TIOCSWINSZ on the master");
	check(ioctl(s, TIOCGWINSZ, &got) == 0 && got.ws_row == 24 && got.ws_col == 80, "the slave sees 24x80");
	struct winsize ws2 = {50, 132, 0, 0};
	check(ioctl(s, TIOCSWINSZ, &ws2) == 0, "TIOCSWINSZ on the slave");
	check(ioctl(m, TIOCGWINSZ, &got) == 0 && got.ws_row == 50 && got.ws_col == 132, "the master sees 50x132");

	/* Job control without a controlling terminal. */
	pid_t pg;
	errno = 0;
	check(ioctl(s, TIOCGPGRP, &pg) < 0 && errno == ENOTTY, "TIOCGPGRP on a slave that is not ours: ENOTTY");
	errno = 0;
	check(ioctl(s, TIOCGPTN, &ptn) < 0 && errno == ENOTTY, "TIOCGPTN on the slave: ENOTTY");

	/* Closing the slave. */
	drain(m);
	struct pollfd pf = {m, POLLIN, 0};
	check(poll(&pf, 1, 0) == 0, "the master has nothing to read");
	check(close(s) == 0, "close the slave");
	errno = 0;
	check(read(m, buf, sizeof buf) < 0 && errno == EIO, "the master reads EIO once the slave is closed");
	pf.revents = 0;
	check(poll(&pf, 1, 0) == 1 && (pf.revents & POLLHUP), "the master polls POLLHUP");
	s = open(name, O_RDWR | O_NOCTTY);
	check(s >= 0, "the slave reopens");
	fcntl(m, F_SETFL, O_NONBLOCK);
	errno = 0;
	check(read(m, buf, sizeof buf) < 0 && errno == EAGAIN, "after the reopen the master reads EAGAIN");

	/* Closing the master. */
	check(close(m) == 0, "close the master");
	errno = 0;
	check(stat(name, &st) < 0 && errno == ENOENT, "the slave node is gone");
	check(read(s, buf, sizeof buf) == 0, "the slave reads EOF");
	errno = 0;
	check(write(s, "x", 1) < 0 && errno == EIO, "the slave's writes fail with EIO");
	pf.fd = s;
	pf.events = POLLIN | POLLOUT;
	pf.revents = 0;
	check(poll(&pf, 1, 0) == 1 && (pf.revents & POLLHUP), "the slave polls POLLHUP");
	check(close(s) == 0, "close the slave");

	printf(failures ? "pty_pair: %d failures\n" : "pty_pair: ok\n", failures);
	return failures != 0;
}
