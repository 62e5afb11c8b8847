/*
 * proc_self: properties of /proc and /sys as a program sees them, which
 * the sandbox must generate the same as the host shows them: limits,
 * status fields, cmdline, comm, descriptors, cwd/exe links, the maps of
 * the program itself, CPU counts, memory total, hostname, overcommit mode.
 * Prints properties, not addresses, pids or times.
 *
 * Build: gcc -O2 -static -o proc_self proc_self.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char *slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	ssize_t n, total = 0;
	while ((n = read(fd, buf + total, sizeof buf - 1 - total)) > 0)
		total += n;
	close(fd);
	buf[total] = 0;
	return buf;
}

/* field returns the value of "Key:\t..." in a status-like file. */
static const char *field(const char *text, const char *key)
{
	static char v[256];
	const char *p = strstr(text, key);
	if (!p)
		return "(missing)";
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strcspn(p, "\n");
	if (n >= sizeof v)
		n = sizeof v - 1;
	memcpy(v, p, n);
	v[n] = 0;
	return v;
}

int main(int argc, char **argv)
{
	(void)argc;
	char *s = slurp("/proc/self/limits");
	check(s != NULL, "/proc/self/limits is readable");
	if (s)
		printf("%s", s);
	s = slurp("/proc/self/status");
	check(s != NULL, "/proc/self/status is readable");
	if (s) {
		printf("status Name: %s\n", field(s, "\nName:") [0] ? field(s, "Name:") : "");
		printf("status State: %.1s\n", field(s, "\nState:"));
		printf("status Umask: %s\n", field(s, "\nUmask:"));
		printf("status Threads: %s\n", field(s, "\nThreads:"));
		printf("status Uid: %s\n", field(s, "\nUid:"));
		printf("status Gid: %s\n", field(s, "\nGid:"));
		printf("status has VmRSS: %d\n", strstr(s, "\nVmRSS:") != NULL);
	}
	s = slurp("/proc/self/cmdline");
	check(s != NULL && strcmp(s, argv[0]) == 0, "cmdline starts with argv[0]");
	s = slurp("/proc/self/comm");
	check(s != NULL && strncmp(s, "proc_self", 9) == 0, "comm is the program name");
	char link[4096];
	ssize_t n = readlink("/proc/self/exe", link, sizeof link - 1);
	check(n > 0 && (link[n] = 0, strcmp(link + n - 9, "proc_self") == 0), "/proc/self/exe names the program");
	check(chdir("/etc") == 0, "chdir /etc");
	n = readlink("/proc/self/cwd", link, sizeof link - 1);
	check(n == 4 && memcmp(link, "/etc", 4) == 0, "/proc/self/cwd is /etc");
	n = readlink("/proc/self/root", link, sizeof link - 1);
	check(n == 1 && link[0] == '/', "/proc/self/root is /");
	int fd = open("hostname", O_RDONLY);
	n = readlink("/proc/self/fd/3", link, sizeof link - 1);
	check(fd == 3 && n > 0 && (link[n] = 0, strcmp(link, "/etc/hostname") == 0), "/proc/self/fd/3 names /etc/hostname");
	s = slurp("/proc/self/fdinfo/3");
	check(s != NULL && strstr(s, "pos:\t0\n") != NULL && strstr(s, "flags:\t") != NULL, "fdinfo shows pos and flags");
	DIR *d = opendir("/proc/self/fd");
	int seen = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] >= '0' && e->d_name[0] <= '4' && e->d_name[1] == 0)
			seen |= 1 << (e->d_name[0] - '0');
	if (d)
		closedir(d);
	check(seen == 0x1f, "/proc/self/fd lists 0-2, the file and the directory being listed");
	close(fd);
	s = slurp("/proc/self/maps");
	int stack = 0, exe = 0;
	for (char *line = s ? strtok(s, "\n") : NULL; line; line = strtok(NULL, "\n")) {
		stack += strstr(line, "[stack]") != NULL;
		exe += strstr(line, "proc_self") != NULL;
	}
	check(stack == 1, "maps has one [stack]");
	printf("maps lines naming the program: %s\n", exe > 0 ? "some" : "none");
	printf("nprocs online: %ld configured: %ld\n", sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_NPROCESSORS_CONF));
	s = slurp("/sys/devices/system/cpu/online");
	printf("cpu online: %s", s ? s : "(missing)\n");
	s = slurp("/proc/meminfo");
	printf("MemTotal: %s\n", s ? field(s, "MemTotal:") : "(missing)");
	s = slurp("/proc/sys/kernel/hostname");
	char host[256] = {0};
	gethostname(host, sizeof host);
	check(s != NULL && strncmp(s, host, strlen(host)) == 0, "/proc/sys/kernel/hostname is the hostname");
	s = slurp("/proc/sys/vm/overcommit_memory");
	printf("overcommit_memory: %s", s ? s : "(missing)\n");
	s = slurp("/proc/sys/kernel/random/boot_id");
	check(s != NULL && strlen(s) == 37, "boot_id is a UUID");
	s = slurp("/proc/filesystems");
	check(s != NULL && strstr(s, "tmpfs") && strstr(s, "proc"), "/proc/filesystems lists tmpfs and proc");
	return failures != 0;
}
