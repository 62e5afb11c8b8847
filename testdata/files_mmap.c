/*
 * files_mmap: file-backed memory mappings in a scratch directory:
 * MAP_SHARED stores reach read() and write() reaches the mapping, msync,
 * MAP_PRIVATE copies stay private, mapping offsets, zeros past EOF in the
 * last page, EACCES for mode mismatches (O_WRONLY, O_RDONLY + shared
 * write, mprotect upgrade; O_APPEND is no obstacle), growing a mapped file
 * with ftruncate, madvise(MADV_DONTNEED) on shared and private file
 * mappings, mremap of a file mapping, and memfd_create with shared mappings
 * and seals.
 *
 * No access here faults; the SIGBUS past EOF is files_sigbus.
 *
 * Usage: files_mmap [dir]   (default: a fresh mkdtemp directory in /tmp)
 * Build: gcc -O2 -static -o files_mmap files_mmap.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testdir.h"

static long pg;

static int all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static int failed(void *p, int err)
{
	return p == MAP_FAILED && errno == err;
}

int main(int argc, char **argv)
{
	char buf[64];
	struct stat st;
	char *m, *m2;
	int fd;

	td_setup(argc, argv);
	pg = sysconf(_SC_PAGESIZE);

	/* MAP_SHARED both ways */
	fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0 && ftruncate(fd, 2 * pg) == 0, "create f of two pages");
	check(pwrite(fd, "page zero", 9, 0) == 9 && pwrite(fd, "page one", 8, pg) == 8, "label both pages");
	m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED, "mmap MAP_SHARED of f");
	check(memcmp(m, "page zero", 9) == 0 && memcmp(m + pg, "page one", 8) == 0, "the mapping shows the file contents");
	memcpy(m + 100, "stored", 6);
	check(pread(fd, buf, 6, 100) == 6 && memcmp(buf, "stored", 6) == 0, "a store through MAP_SHARED is seen by read");
	check(pwrite(fd, "written", 7, pg + 200) == 7 && memcmp(m + pg + 200, "written", 7) == 0, "a write is seen through the mapping");
	check(msync(m, 2 * pg, MS_SYNC) == 0, "msync MS_SYNC returns 0");
	check(msync(m, pg, MS_ASYNC) == 0, "msync MS_ASYNC returns 0");
	errno = 0;
	check(msync(m + 1, pg, MS_SYNC) == -1 && errno == EINVAL, "msync of an unaligned address fails with EINVAL");
	m2 = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, pg);
	check(m2 != MAP_FAILED && memcmp(m2, "page one", 8) == 0, "mmap at offset one page shows page one");
	m[pg + 10] = '#';
	check(m2[10] == '#', "two shared mappings of one page see each other's stores");
	munmap(m2, pg);
	errno = 0;
	check(failed(mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 1), EINVAL), "mmap at an unaligned offset fails with EINVAL");
	errno = 0;
	check(failed(mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, 0), EINVAL), "mmap of length 0 fails with EINVAL");

	/* MAP_PRIVATE */
	char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	check(p != MAP_FAILED && memcmp(p, "page zero", 9) == 0, "mmap MAP_PRIVATE shows the file");
	memcpy(p, "PRIVATE", 7);
	check(memcmp(p, "PRIVATE", 7) == 0, "a store to the private mapping is visible in it");
	check(pread(fd, buf, 9, 0) == 9 && memcmp(buf, "page zero", 9) == 0, "the store does not reach the file");
	check(memcmp(m, "page zero", 9) == 0, "the store is not seen by the shared mapping");
	memcpy(m, "SHARED", 6);
	check(memcmp(p, "PRIVATE", 7) == 0, "a copied private page keeps its own data after shared stores");
	check(madvise(p, pg, MADV_DONTNEED) == 0 && memcmp(p, "SHAREDero", 9) == 0, "MADV_DONTNEED drops the private copy and shows the file again");
	check(munmap(p, 2 * pg) == 0, "munmap the private mapping");
	check(madvise(m, 2 * pg, MADV_DONTNEED) == 0 && memcmp(m, "SHAREDero", 9) == 0 && m[pg + 10] == '#', "MADV_DONTNEED on a shared mapping keeps the data");

	/* mremap */
	check(munmap(m + pg, pg) == 0, "unmap the second page");
	m2 = mremap(m, pg, 2 * pg, MREMAP_MAYMOVE);
	check(m2 != MAP_FAILED, "mremap the one-page file mapping to two pages");
	check(memcmp(m2, "SHAREDero", 9) == 0 && memcmp(m2 + pg, "page one", 8) == 0 && m2[pg + 10] == '#', "the grown mapping keeps page zero and maps page one of the file");
	m2[pg + 300] = '%';
	check(pread(fd, buf, 1, pg + 300) == 1 && buf[0] == '%', "stores to the grown part reach the file");
	m = mremap(m2, 2 * pg, pg, 0);
	check(m == m2 && memcmp(m, "SHAREDero", 9) == 0, "mremap shrinks in place and keeps the contents");
	check(munmap(m, pg) == 0, "munmap");

	/* growing a mapped file */
	check(ftruncate(fd, pg) == 0, "shrink f to one page");
	m = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED, "map three pages of the one-page file");
	check(ftruncate(fd, 3 * pg) == 0, "ftruncate f to three pages");
	check(all_zero(m + pg, 2 * pg), "the new pages read as zeros through the mapping");
	memcpy(m + 2 * pg + 5, "new page", 8);
	check(pread(fd, buf, 8, 2 * pg + 5) == 8 && memcmp(buf, "new page", 8) == 0, "a store into a new page reaches the file");
	check(fstat(fd, &st) == 0 && st.st_size == 3 * pg, "the file size is three pages");
	munmap(m, 3 * pg);
	close(fd);

	/* partial last page */
	fd = open("short", O_RDWR | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0 && write(fd, "0123456789", 10) == 10, "create a 10-byte file");
	m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED && memcmp(m, "0123456789", 10) == 0, "map its one page");
	check(all_zero(m + 10, pg - 10), "the rest of the last page reads as zeros");
	m[20] = 'x';
	check(fstat(fd, &st) == 0 && st.st_size == 10, "a store past EOF in the last page does not change the size");
	check(pread(fd, buf, 64, 0) == 10, "and read still stops at EOF");
	munmap(m, pg);
	close(fd);

	/* access mode checks */
	fd = open("f", O_WRONLY);
	errno = 0;
	check(failed(mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 0), EACCES), "mmap of an O_WRONLY descriptor fails with EACCES");
	close(fd);
	fd = open("f", O_RDONLY);
	errno = 0;
	check(failed(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EACCES), "MAP_SHARED PROT_WRITE of an O_RDONLY descriptor fails with EACCES");
	p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	check(p != MAP_FAILED, "MAP_PRIVATE PROT_WRITE of an O_RDONLY descriptor succeeds");
	p[0] = 'p';
	check(pread(fd, buf, 1, 0) == 1 && buf[0] == 'S', "and its stores stay private");
	munmap(p, pg);
	m = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED, "MAP_SHARED PROT_READ of an O_RDONLY descriptor succeeds");
	errno = 0;
	check(mprotect(m, pg, PROT_READ | PROT_WRITE) == -1 && errno == EACCES, "mprotect to PROT_WRITE of that mapping fails with EACCES");
	munmap(m, pg);
	close(fd);
	fd = open("f", O_RDWR | O_APPEND);
	m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED, "MAP_SHARED PROT_WRITE of an O_RDWR|O_APPEND descriptor succeeds (only append-only inodes refuse)");
	m[1] = 'h';
	check(pread(fd, buf, 2, 0) == 2 && memcmp(buf, "Sh", 2) == 0, "and its stores land at their offset, not at the end");
	munmap(m, pg);
	close(fd);
	fd = open(".", O_RDONLY | O_DIRECTORY);
	errno = 0;
	check(failed(mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 0), ENODEV), "mmap of a directory fails with ENODEV");
	close(fd);

	/* memfd */
	fd = memfd_create("rf-test", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	check(fd >= 0, "memfd_create with MFD_ALLOW_SEALING");
	check(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0, "a new memfd is an empty regular file");
	check(fcntl(fd, F_GETFD) == FD_CLOEXEC, "MFD_CLOEXEC sets FD_CLOEXEC");
	check(ftruncate(fd, pg) == 0, "ftruncate the memfd to one page");
	m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	m2 = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED && m2 != MAP_FAILED && m != m2, "map the memfd shared twice");
	strcpy(m, "from one");
	check(strcmp(m2, "from one") == 0, "the second mapping sees the first's store");
	strcpy(m2 + 100, "from two");
	check(strcmp(m + 100, "from two") == 0, "the first mapping sees the second's store");
	check(pread(fd, buf, 8, 0) == 8 && memcmp(buf, "from one", 8) == 0, "read of the memfd sees the stores");
	check(fcntl(fd, F_GET_SEALS) == 0, "a new sealable memfd has no seals");
	errno = 0;
	check(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == -1 && errno == EBUSY, "F_SEAL_WRITE with writable shared mappings fails with EBUSY");
	munmap(m, pg);
	munmap(m2, pg);
	check(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == 0, "F_SEAL_WRITE after unmapping succeeds");
	check(fcntl(fd, F_GET_SEALS) == F_SEAL_WRITE, "F_GET_SEALS shows F_SEAL_WRITE");
	errno = 0;
	check(write(fd, "x", 1) == -1 && errno == EPERM, "write to a write-sealed memfd fails with EPERM");
	errno = 0;
	check(failed(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EPERM), "a writable shared mapping of a write-sealed memfd fails with EPERM");
	m = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED && strcmp(m, "from one") == 0, "a read-only mapping of it still works");
	munmap(m, pg);
	check(ftruncate(fd, 2 * pg) == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0, "grow, then seal shrink and grow");
	errno = 0;
	check(ftruncate(fd, pg) == -1 && errno == EPERM, "ftruncate smaller fails with EPERM");
	errno = 0;
	check(ftruncate(fd, 4 * pg) == -1 && errno == EPERM, "ftruncate larger fails with EPERM");
	check(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL) == 0, "F_SEAL_SEAL");
	errno = 0;
	check(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == -1 && errno == EPERM, "no more seals after F_SEAL_SEAL (EPERM)");
	close(fd);
	fd = memfd_create("plain", 0);
	check(fd >= 0 && fcntl(fd, F_GET_SEALS) == F_SEAL_SEAL, "a memfd without MFD_ALLOW_SEALING reports F_SEAL_SEAL");
	errno = 0;
	check(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == -1 && errno == EPERM, "and adding a seal fails with EPERM");
	check(fcntl(fd, F_GETFD) == 0, "without MFD_CLOEXEC FD_CLOEXEC is clear");
	close(fd);
	errno = 0;
	check(memfd_create("x", 0x1000) == -1 && errno == EINVAL, "memfd_create with an unknown flag fails with EINVAL");

	td_cleanup();
	printf(failures ? "files_mmap: %d failures\n" : "files_mmap: ok\n", failures);
	return failures ? 1 : 0;
}
