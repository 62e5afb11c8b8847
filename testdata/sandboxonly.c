/*
 * sandboxonly: behaviour that differs from the host on purpose, so it is
 * checked against fixed expectations rather than a native run.
 *
 *   sandboxonly enosys    calls quotactl, which the Sentry does not
 *                         implement, twice: each must fail with ENOSYS
 *   sandboxonly socket    socket(AF_INET/AF_INET6/AF_UNIX) before the
 *                         networking issue: EAFNOSUPPORT
 *
 * Build: gcc -O2 -static -o sandboxonly sandboxonly.c
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case ENOSYS: return "ENOSYS";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case 0: return "no error";
	}
	return strerror(e);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "enosys") == 0) {
		for (int i = 0; i < 2; i++) {
			errno = 0;
			long r = syscall(SYS_quotactl, 0, 0, 0, 0);
			printf("quotactl: %ld %s\n", r, errname(errno));
		}
		return 0;
	}
	if (strcmp(mode, "socket") == 0) {
		int fams[] = {AF_INET, AF_INET6, AF_UNIX};
		const char *names[] = {"AF_INET", "AF_INET6", "AF_UNIX"};
		for (int i = 0; i < 3; i++) {
			errno = 0;
			int fd = socket(fams[i], SOCK_STREAM, 0);
			printf("socket(%s): %s\n", names[i], fd < 0 ? errname(errno) : "opened");
		}
		return 0;
	}
	fprintf(stderr, "usage: sandboxonly enosys|socket\n");
	return 2;
}
