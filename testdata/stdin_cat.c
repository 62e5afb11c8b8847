/*
 * stdin_cat: streams stdin to stdout with plain read(2)/write(2) in odd-sized
 * chunks, alternating with readv(2)/writev(2), handling short writes. With
 * "stdin_cat count" it instead prints the byte count and an FNV-1a hash of
 * stdin plus a few properties of the stdin descriptor (the harness feeds
 * stdin through a pipe, so pread must fail with ESPIPE).
 *
 * Build: gcc -O2 -static -o stdin_cat stdin_cat.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int write_all(const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(1, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static unsigned char buf[65536];
	int count = argc > 1 && strcmp(argv[1], "count") == 0;
	uint64_t h = 1469598103934665603ull, total = 0;
	unsigned long reads = 0;
	for (;;) {
		ssize_t n;
		if (reads % 2 == 0) {
			n = read(0, buf, 1 + (reads * 7919) % sizeof buf);
		} else {
			struct iovec iov[3] = {
				{buf, 100},
				{buf + 100, 0},
				{buf + 100, 4000},
			};
			n = readv(0, iov, 3);
		}
		reads++;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "stdin_cat: read: %s\n", strerror(errno));
			return 1;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (count) {
			for (ssize_t i = 0; i < n; i++)
				h = (h ^ buf[i]) * 1099511628211ull;
			continue;
		}
		if (reads % 3 == 0 && n > 1) {
			struct iovec iov[2] = {{buf, (size_t)n / 2}, {buf + n / 2, (size_t)(n - n / 2)}};
			ssize_t w = writev(1, iov, 2);
			if (w < 0) {
				fprintf(stderr, "stdin_cat: writev: %s\n", strerror(errno));
				return 1;
			}
			if (w < n && write_all(buf + w, (size_t)(n - w)) < 0) {
				fprintf(stderr, "stdin_cat: write: %s\n", strerror(errno));
				return 1;
			}
		} else if (write_all(buf, (size_t)n) < 0) {
			fprintf(stderr, "stdin_cat: write: %s\n", strerror(errno));
			return 1;
		}
	}
	if (count) {
		printf("bytes %llu\n", (unsigned long long)total);
		printf("fnv1a %016llx\n", (unsigned long long)h);
		ssize_t r = read(0, buf, sizeof buf);
		printf("read after EOF returns %zd\n", r);
		errno = 0;
		r = pread(0, buf, 1, 0);
		printf("pread on stdin %s\n", r == -1 && errno == ESPIPE ? "fails with ESPIPE" : "does not fail with ESPIPE");
		struct stat st;
		if (fstat(0, &st) == 0)
			printf("stdin is %s\n", S_ISFIFO(st.st_mode) ? "a pipe" : S_ISREG(st.st_mode) ? "a regular file" : S_ISCHR(st.st_mode) ? "a character device" : "something else");
		else
			printf("fstat on stdin fails\n");
	}
	return 0;
}
