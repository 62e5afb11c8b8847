/*
 * files_rw: data movement on regular files in a scratch directory: read,
 * write, pread/pwrite, readv/writev, preadv/pwritev, preadv2/pwritev2
 * (offset -1 and RWF_APPEND), lseek (SEEK_SET/CUR/END, SEEK_DATA/SEEK_HOLE
 * on a sparse file), reads at and past EOF, ftruncate/truncate grow and
 * shrink, fallocate (mode 0 and FALLOC_FL_KEEP_SIZE), the sync family,
 * sendfile, copy_file_range, splice file -> pipe -> file, tee and vmsplice.
 *
 * SEEK_HOLE/SEEK_DATA checks only what holds on every file system that
 * Linux supports them on (a file system may report data where a hole is).
 *
 * Usage: files_rw [dir]   (default: a fresh mkdtemp directory in /tmp)
 * Build: gcc -O2 -static -o files_rw files_rw.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "check.h"
#include "testdir.h"

static off_t size_of(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	return st.st_size;
}

static int all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static char big[1 << 16], big2[1 << 16];

int main(int argc, char **argv)
{
	char buf[256];
	int fd, fd2;
	ssize_t n;

	td_setup(argc, argv);

	/* read, write, lseek */
	fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0, "create f");
	check(write(fd, "0123456789", 10) == 10, "write 10 bytes");
	check(lseek(fd, 0, SEEK_CUR) == 10, "offset after the write is 10");
	check(lseek(fd, 2, SEEK_SET) == 2, "lseek SEEK_SET 2");
	check(read(fd, buf, 3) == 3 && memcmp(buf, "234", 3) == 0, "read 3 bytes at 2: 234");
	check(lseek(fd, 1, SEEK_CUR) == 6, "lseek SEEK_CUR +1 gives 6");
	check(lseek(fd, -2, SEEK_CUR) == 4, "lseek SEEK_CUR -2 gives 4");
	check(lseek(fd, -3, SEEK_END) == 7, "lseek SEEK_END -3 gives 7");
	check(read(fd, buf, 100) == 3 && memcmp(buf, "789", 3) == 0, "short read up to EOF returns 3");
	check(read(fd, buf, 100) == 0, "read at EOF returns 0");
	check(lseek(fd, 100, SEEK_SET) == 100 && read(fd, buf, 10) == 0, "read past EOF returns 0");
	errno = 0;
	check(lseek(fd, -1, SEEK_SET) == -1 && errno == EINVAL, "lseek to a negative offset fails with EINVAL");
	errno = 0;
	check(lseek(fd, 0, 42) == -1 && errno == EINVAL, "lseek with a bad whence fails with EINVAL");
	check(lseek(fd, 0, SEEK_CUR) == 100, "a failed lseek leaves the offset alone");
	check(lseek(fd, 20, SEEK_SET) == 20 && write(fd, "X", 1) == 1 && size_of(fd) == 21, "write past EOF extends the file to 21");
	check(pread(fd, buf, 11, 10) == 11 && all_zero(buf, 10) && buf[10] == 'X', "the gap reads back as zeros");
	check(read(fd, buf, 0) == 0 && write(fd, buf, 0) == 0, "zero-length read and write return 0");

	/* pread/pwrite */
	check(lseek(fd, 3, SEEK_SET) == 3, "offset set to 3");
	check(pread(fd, buf, 4, 5) == 4 && memcmp(buf, "5678", 4) == 0, "pread 4 at 5: 5678");
	check(pwrite(fd, "ab", 2, 0) == 2, "pwrite 2 at 0");
	check(lseek(fd, 0, SEEK_CUR) == 3, "pread and pwrite leave the offset at 3");
	check(pread(fd, buf, 10, 21) == 0 && pread(fd, buf, 10, 1000) == 0, "pread at and past EOF returns 0");
	errno = 0;
	check(pread(fd, buf, 1, -1) == -1 && errno == EINVAL, "pread at a negative offset fails with EINVAL");
	check(pwrite(fd, "Z", 1, 30) == 1 && size_of(fd) == 31, "pwrite past EOF extends the file to 31");
	close(fd);

	/* readv/writev/preadv/pwritev/preadv2/pwritev2 */
	fd = open("v", O_RDWR | O_CREAT | O_TRUNC, 0644);
	struct iovec wv[3] = {{"abc", 3}, {"", 0}, {"defgh", 5}};
	check(writev(fd, wv, 3) == 8 && lseek(fd, 0, SEEK_CUR) == 8, "writev of 3+0+5 bytes returns 8 and advances");
	char r1[2], r2[4], r3[10];
	struct iovec rv[3] = {{r1, 2}, {r2, 4}, {r3, 10}};
	check(lseek(fd, 0, SEEK_SET) == 0 && readv(fd, rv, 3) == 8, "readv returns 8");
	check(memcmp(r1, "ab", 2) == 0 && memcmp(r2, "cdef", 4) == 0 && memcmp(r3, "gh", 2) == 0, "readv scatters ab|cdef|gh");
	struct iovec pw[2] = {{"XY", 2}, {"Z", 1}};
	check(pwritev(fd, pw, 2, 2) == 3 && lseek(fd, 0, SEEK_CUR) == 8, "pwritev at 2 leaves the offset alone");
	memset(r3, 0, sizeof r3);
	struct iovec pr[2] = {{r1, 2}, {r3, 10}};
	check(preadv(fd, pr, 2, 1) == 7 && memcmp(r1, "bX", 2) == 0 && memcmp(r3, "YZfgh", 5) == 0, "preadv at 1 gives bX|YZfgh");
	check(lseek(fd, 4, SEEK_SET) == 4, "offset set to 4");
	struct iovec one = {"Q", 1};
	check(pwritev2(fd, &one, 1, -1, 0) == 1 && lseek(fd, 0, SEEK_CUR) == 5, "pwritev2 at offset -1 writes at and advances the file offset");
	check(pwritev2(fd, &one, 1, 0, 0) == 1 && lseek(fd, 0, SEEK_CUR) == 5, "pwritev2 at offset 0 leaves the file offset");
	one.iov_base = "!";
	check(pwritev2(fd, &one, 1, 0, RWF_APPEND) == 1 && size_of(fd) == 9, "pwritev2 RWF_APPEND appends");
	memset(buf, 0, sizeof buf);
	struct iovec rb = {buf, sizeof buf};
	check(preadv2(fd, &rb, 1, 0, 0) == 9 && strcmp(buf, "QbXYQfgh!") == 0, "preadv2 at 0 reads QbXYQfgh!");
	memset(buf, 0, sizeof buf);
	check(preadv2(fd, &rb, 1, -1, 0) == 4 && strcmp(buf, "fgh!") == 0 && lseek(fd, 0, SEEK_CUR) == 9, "preadv2 at offset -1 reads from and advances the file offset");
	errno = 0;
	check(pwritev2(fd, &one, 1, 0, 0x40000000) == -1 && errno == EOPNOTSUPP, "pwritev2 with an unknown flag fails with EOPNOTSUPP");
	close(fd);

	/* SEEK_DATA / SEEK_HOLE */
	fd = open("sparse", O_RDWR | O_CREAT | O_TRUNC, 0644);
	memset(big, 'd', 4096);
	check(pwrite(fd, big, 4096, 0) == 4096 && pwrite(fd, big, 4096, 1 << 20) == 4096, "sparse file: 4 KiB at 0 and 4 KiB at 1 MiB");
	off_t sz = size_of(fd);
	check(sz == (1 << 20) + 4096, "sparse file size is 1 MiB + 4 KiB");
	check(lseek(fd, 0, SEEK_DATA) == 0, "SEEK_DATA from 0 gives 0");
	off_t h = lseek(fd, 0, SEEK_HOLE);
	check(h >= 4096 && h <= sz, "SEEK_HOLE from 0 is between 4096 and the size");
	off_t d = lseek(fd, 8192, SEEK_DATA);
	check(d >= 8192 && d <= (1 << 20), "SEEK_DATA from 8192 is between 8192 and 1 MiB");
	check(lseek(fd, sz - 1, SEEK_HOLE) == sz, "SEEK_HOLE from the last byte gives the size");
	errno = 0;
	check(lseek(fd, sz, SEEK_DATA) == -1 && errno == ENXIO, "SEEK_DATA at EOF fails with ENXIO");
	errno = 0;
	check(lseek(fd, sz + 10, SEEK_HOLE) == -1 && errno == ENXIO, "SEEK_HOLE past EOF fails with ENXIO");
	check(pread(fd, big2, 4096, 65536) == 4096 && all_zero(big2, 4096), "the hole reads as zeros");
	close(fd);

	/* truncate */
	fd = open("t", O_RDWR | O_CREAT | O_TRUNC, 0644);
	check(write(fd, "abcdef", 6) == 6, "t: write abcdef");
	check(ftruncate(fd, 10000) == 0 && size_of(fd) == 10000, "ftruncate grows to 10000");
	check(pread(fd, big, 10000, 0) == 10000 && memcmp(big, "abcdef", 6) == 0 && all_zero(big + 6, 9994), "grown part reads as zeros");
	check(ftruncate(fd, 3) == 0 && size_of(fd) == 3, "ftruncate shrinks to 3");
	check(lseek(fd, 0, SEEK_CUR) == 6, "ftruncate does not move the offset");
	check(ftruncate(fd, 6) == 0 && pread(fd, buf, 6, 0) == 6 && memcmp(buf, "abc\0\0\0", 6) == 0, "shrink then grow drops the old bytes");
	check(truncate("t", 2) == 0 && size_of(fd) == 2, "truncate by path to 2");
	errno = 0;
	check(ftruncate(fd, -1) == -1 && errno == EINVAL, "ftruncate to -1 fails with EINVAL");
	errno = 0;
	check(truncate("missing", 0) == -1 && errno == ENOENT, "truncate of a missing file fails with ENOENT");
	errno = 0;
	check(truncate(".", 0) == -1 && errno == EISDIR, "truncate of a directory fails with EISDIR");
	fd2 = open("t", O_RDONLY);
	errno = 0;
	check(ftruncate(fd2, 0) == -1 && errno == EINVAL, "ftruncate of an O_RDONLY descriptor fails with EINVAL");

	/* fallocate */
	check(fallocate(fd, 0, 0, 8192) == 0 && size_of(fd) == 8192, "fallocate mode 0 grows the size to 8192");
	check(pread(fd, big, 8192, 0) == 8192 && memcmp(big, "ab", 2) == 0 && all_zero(big + 2, 8190), "fallocated range reads as zeros");
	check(fallocate(fd, 0, 0, 100) == 0 && size_of(fd) == 8192, "fallocate inside the file keeps the size");
	check(fallocate(fd, FALLOC_FL_KEEP_SIZE, 8192, 65536) == 0 && size_of(fd) == 8192, "FALLOC_FL_KEEP_SIZE keeps the size at 8192");
	errno = 0;
	check(fallocate(fd, 0, 0, 0) == -1 && errno == EINVAL, "fallocate of length 0 fails with EINVAL");
	errno = 0;
	check(fallocate(fd2, 0, 0, 4096) == -1 && errno == EBADF, "fallocate on an O_RDONLY descriptor fails with EBADF");
	close(fd2);

	/* sync family */
	check(fsync(fd) == 0, "fsync returns 0");
	check(fdatasync(fd) == 0, "fdatasync returns 0");
	check(syncfs(fd) == 0, "syncfs returns 0");
	sync();
	check(1, "sync returns");
	check(sync_file_range(fd, 0, 4096, SYNC_FILE_RANGE_WRITE) == 0, "sync_file_range returns 0");
	errno = 0;
	check(sync_file_range(fd, 0, 4096, 0x80) == -1 && errno == EINVAL, "sync_file_range with a bad flag fails with EINVAL");
	close(fd);

	/* sendfile */
	int src = open("src", O_RDWR | O_CREAT | O_TRUNC, 0644);
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = 'a' + i % 23;
	check(write(src, big, sizeof big) == sizeof big, "src: 64 KiB pattern");
	int dst = open("dst", O_RDWR | O_CREAT | O_TRUNC, 0644);
	off_t off = 100;
	n = sendfile(dst, src, &off, 1000);
	check(n == 1000 && off == 1100, "sendfile with an offset pointer copies 1000 bytes and updates it to 1100");
	check(lseek(src, 0, SEEK_CUR) == sizeof big, "sendfile with an offset pointer leaves the source offset");
	check(lseek(dst, 0, SEEK_CUR) == 1000 && pread(dst, big2, 1000, 0) == 1000 && memcmp(big2, big + 100, 1000) == 0, "sendfile wrote the right bytes and advanced the destination");
	check(lseek(src, 60000, SEEK_SET) == 60000, "src offset to 60000");
	n = sendfile(dst, src, NULL, 10000);
	check(n == (ssize_t)sizeof big - 60000 && lseek(src, 0, SEEK_CUR) == sizeof big, "sendfile without an offset pointer stops at EOF and advances the source");
	off = sizeof big;
	check(sendfile(dst, src, &off, 10) == 0, "sendfile at EOF returns 0");
	close(dst);

	/* copy_file_range */
	dst = open("cfr", O_RDWR | O_CREAT | O_TRUNC, 0644);
	loff_t in = 10, out = 5;
	n = copy_file_range(src, &in, dst, &out, 20000, 0);
	check(n == 20000 && in == 20010 && out == 20005, "copy_file_range copies 20000 bytes and updates both offsets");
	check(size_of(dst) == 20005 && pread(dst, big2, 20000, 5) == 20000 && memcmp(big2, big + 10, 20000) == 0 && pread(dst, buf, 5, 0) == 5 && all_zero(buf, 5), "copy_file_range result matches, with a zero gap before it");
	check(lseek(src, 0, SEEK_SET) == 0 && lseek(dst, 0, SEEK_SET) == 0, "reset offsets");
	n = copy_file_range(src, NULL, dst, NULL, 100, 0);
	check(n == 100 && lseek(src, 0, SEEK_CUR) == 100 && lseek(dst, 0, SEEK_CUR) == 100, "copy_file_range without offsets advances both file offsets");
	in = sizeof big;
	check(copy_file_range(src, &in, dst, NULL, 100, 0) == 0, "copy_file_range at EOF returns 0");
	in = 0;
	out = 50;
	errno = 0;
	check(copy_file_range(src, &in, src, &out, 100, 0) == -1 && errno == EINVAL, "copy_file_range to an overlapping range of the same file fails with EINVAL");
	errno = 0;
	in = 0;
	check(copy_file_range(src, &in, dst, NULL, 10, 1) == -1 && errno == EINVAL, "copy_file_range with flags fails with EINVAL");
	close(dst);

	/* splice, tee, vmsplice */
	int p[2], q[2];
	check(pipe(p) == 0 && pipe(q) == 0, "two pipes");
	in = 1000;
	n = splice(src, &in, p[1], NULL, 3000, 0);
	check(n == 3000 && in == 4000, "splice file -> pipe moves 3000 bytes and updates the offset");
	dst = open("spl", O_RDWR | O_CREAT | O_TRUNC, 0644);
	out = 0;
	size_t moved = 0;
	while (moved < 3000) {
		n = splice(p[0], NULL, dst, &out, 3000 - moved, 0);
		if (n <= 0)
			break;
		moved += n;
	}
	check(moved == 3000 && out == 3000, "splice pipe -> file moves 3000 bytes");
	check(pread(dst, big2, 3000, 0) == 3000 && memcmp(big2, big + 1000, 3000) == 0, "spliced file content matches");
	errno = 0;
	check(splice(src, NULL, dst, NULL, 10, 0) == -1 && errno == EINVAL, "splice between two files fails with EINVAL");
	close(dst);

	check(write(p[1], "teedata", 7) == 7, "write 7 bytes into pipe p");
	check(tee(p[0], q[1], 100, SPLICE_F_NONBLOCK) == 7, "tee p -> q copies 7 bytes");
	memset(buf, 0, sizeof buf);
	check(read(q[0], buf, sizeof buf) == 7 && strcmp(buf, "teedata") == 0, "q holds the teed bytes");
	memset(buf, 0, sizeof buf);
	check(read(p[0], buf, sizeof buf) == 7 && strcmp(buf, "teedata") == 0, "p still holds the bytes after tee");
	errno = 0;
	check(tee(p[0], q[1], 100, SPLICE_F_NONBLOCK) == -1 && errno == EAGAIN, "tee from an empty pipe with SPLICE_F_NONBLOCK fails with EAGAIN");

	static char vm[] = "vmspliced bytes";
	struct iovec viov[2] = {{vm, 9}, {vm + 9, 6}};
	check(vmsplice(p[1], viov, 2, 0) == 15, "vmsplice of two iovecs returns 15");
	memset(buf, 0, sizeof buf);
	check(read(p[0], buf, sizeof buf) == 15 && strcmp(buf, "vmspliced bytes") == 0, "the pipe yields the vmspliced bytes");
	errno = 0;
	check(vmsplice(src, viov, 2, 0) == -1 && errno == EBADF, "vmsplice on a regular file fails with EBADF");
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	close(src);

	td_cleanup();
	printf(failures ? "files_rw: %d failures\n" : "files_rw: ok\n", failures);
	return failures ? 1 : 0;
}
