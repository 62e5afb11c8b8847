/*
 * reread: print a file's size and contents, wait a second (the test
 * changes the file on the host meanwhile), and print them again: with
 * --file-access=shared the sandbox must see the new contents and size.
 *
 * Build: gcc -O2 -static -o reread reread.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void show(const char *path)
{
	struct stat st;
	char buf[256] = {0};
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0) {
		printf("open/stat failed\n");
		return;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	printf("size %lld read %zd: %s", (long long)st.st_size, n, buf);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	show(argv[1]);
	struct timespec ts = {1, 0};
	nanosleep(&ts, NULL);
	show(argv[1]);
	return 0;
}
