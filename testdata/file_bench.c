/*
 * file_bench: file system benchmarks. Each mode prints one line
 *
 *   ns_per_call <float>
 *
 * measured with CLOCK_MONOTONIC around the loop (not compared between
 * native and sandboxed runs):
 *
 *   file_bench openclose FILE N    open(O_RDONLY)+close of FILE, per pair
 *   file_bench stat FILE N         stat of FILE, per call
 *   file_bench read FILE [KIB]     sequential reads of FILE, 64 KiB (or KIB
 *                                  KiB, at most 1024) at a time, per read
 *   file_bench write FILE MB       64 KiB sequential writes of MB MiB to a
 *                                  new FILE (removed after), per write
 *   file_bench getdents DIR N      N full listings of DIR with 32 KiB
 *                                  getdents64 calls, per listing
 *
 * Build: gcc -O2 -static -o file_bench file_bench.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static char buf[1 << 20];

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: file_bench openclose|stat|read|write|getdents PATH [N|MB]\n");
		return 2;
	}
	const char *mode = argv[1], *path = argv[2];
	long n = argc > 3 ? atol(argv[3]) : 1;
	double start, end;
	long ops = 0;
	if (strcmp(mode, "openclose") == 0) {
		start = now_ns();
		for (long i = 0; i < n; i++) {
			int fd = open(path, O_RDONLY);
			if (fd < 0)
				die("open");
			close(fd);
		}
		end = now_ns();
		ops = n;
	} else if (strcmp(mode, "stat") == 0) {
		struct stat st;
		start = now_ns();
		for (long i = 0; i < n; i++)
			if (stat(path, &st) != 0)
				die("stat");
		end = now_ns();
		ops = n;
	} else if (strcmp(mode, "read") == 0) {
		size_t bs = argc > 3 ? (size_t)atol(argv[3]) * 1024 : 65536;
		if (bs == 0 || bs > sizeof buf)
			bs = 65536;
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			die("open");
		start = now_ns();
		ssize_t r;
		while ((r = read(fd, buf, bs)) > 0)
			ops++;
		end = now_ns();
		if (r < 0)
			die("read");
		close(fd);
	} else if (strcmp(mode, "write") == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die("open");
		memset(buf, 'x', 65536);
		long writes = n * 16; /* 16 x 64 KiB per MiB */
		start = now_ns();
		for (long i = 0; i < writes; i++)
			if (write(fd, buf, 65536) != 65536)
				die("write");
		end = now_ns();
		ops = writes;
		close(fd);
		unlink(path);
	} else if (strcmp(mode, "getdents") == 0) {
		int fd = open(path, O_RDONLY | O_DIRECTORY);
		if (fd < 0)
			die("open");
		long entries = 0;
		start = now_ns();
		for (long i = 0; i < n; i++) {
			lseek(fd, 0, SEEK_SET);
			long r;
			while ((r = syscall(SYS_getdents64, fd, buf, 32768)) > 0)
				for (long off = 0; off < r; off += *(unsigned short *)(buf + off + 16))
					entries++;
			if (r < 0)
				die("getdents64");
		}
		end = now_ns();
		ops = n;
		if (entries == 0)
			die("empty directory");
		close(fd);
	} else {
		fprintf(stderr, "file_bench: unknown mode %s\n", mode);
		return 2;
	}
	if (ops == 0) {
		fprintf(stderr, "file_bench: nothing measured\n");
		return 1;
	}
	printf("ns_per_call %.2f\n", (end - start) / (double)ops);
	return 0;
}
