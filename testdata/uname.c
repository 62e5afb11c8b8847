/*
 * uname: prints the stable uname(2) fields (sysname, machine) and properties
 * of the others; release and version differ between hosts and sandboxes.
 *
 * Build: gcc -O2 -static -o uname uname.c
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void)
{
	struct utsname u;
	memset(&u, 0xff, sizeof u);
	if (uname(&u) != 0) {
		printf("FAIL: uname: errno %d\n", errno);
		return 1;
	}
	printf("sysname=%s\n", u.sysname);
	printf("machine=%s\n", u.machine);
	printf("release %s\n", isdigit((unsigned char)u.release[0]) ? "starts with a digit" : "does not start with a digit");
	printf("version %s\n", u.version[0] ? "is non-empty" : "is empty");
	printf("nodename %s\n", u.nodename[0] ? "is non-empty" : "is empty");
	int terminated = memchr(u.sysname, 0, sizeof u.sysname) && memchr(u.nodename, 0, sizeof u.nodename) &&
			 memchr(u.release, 0, sizeof u.release) && memchr(u.version, 0, sizeof u.version) &&
			 memchr(u.machine, 0, sizeof u.machine) && memchr(u.domainname, 0, sizeof u.domainname);
	printf("all fields %s\n", terminated ? "are NUL-terminated" : "are not NUL-terminated");
	errno = 0;
	long r = syscall(SYS_uname, (void *)8);
	printf("uname into a bad pointer %s\n", r == -1 && errno == EFAULT ? "fails with EFAULT" : "does not fail with EFAULT");
	return 0;
}
