/*
 * testdir.h: the scratch directory the files_*.c programs work in.
 *
 * td_setup(argc, argv) uses argv[1] when it is given, and otherwise makes a
 * fresh directory with mkdtemp("/tmp/rf-XXXXXX"). It resolves the directory
 * to an absolute path without symlinks (td_path), opens it (td_fd), makes it
 * the working directory and sets umask 022, so the programs can use short
 * relative names and their output never names the directory itself.
 *
 * td_cleanup() goes back to the directory, removes what the program made:
 * for a directory of its own, the whole tree; for an argv[1] directory, only
 * the entries that were not there when td_setup ran (so pointing it at a
 * directory with other contents is safe).
 */
#ifndef RINGFENCE_TESTDATA_TESTDIR_H
#define RINGFENCE_TESTDATA_TESTDIR_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char td_path[PATH_MAX];
static int td_fd = -1;
static int td_made;
static char **td_before;
static int td_nbefore;

static void td_die(const char *what)
{
	printf("FAIL: test directory: %s\n", what);
	fflush(stdout);
	exit(2);
}

/* td_rm_at removes name (a file or a whole tree) relative to dirfd. */
static void td_rm_at(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0)
		return;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	fchmod(fd, 0700);
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	struct dirent *e;
	/* Restart after each pass: removing entries while reading is allowed,
	 * but a fresh pass makes sure nothing is left behind. */
	for (int pass = 0; pass < 4; pass++) {
		int removed = 0;
		rewinddir(d);
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			td_rm_at(fd, e->d_name);
			removed++;
		}
		if (removed == 0)
			break;
	}
	closedir(d);
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

static int td_was_there(const char *name)
{
	for (int i = 0; i < td_nbefore; i++)
		if (strcmp(td_before[i], name) == 0)
			return 1;
	return 0;
}

static void td_setup(int argc, char **argv)
{
	char tmpl[] = "/tmp/rf-XXXXXX";
	const char *dir;
	if (argc > 1) {
		dir = argv[1];
	} else {
		dir = mkdtemp(tmpl);
		if (dir == NULL)
			td_die("mkdtemp failed");
		td_made = 1;
	}
	if (realpath(dir, td_path) == NULL)
		td_die("realpath failed");
	td_fd = open(td_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (td_fd < 0)
		td_die("open failed");
	if (fchdir(td_fd) != 0)
		td_die("chdir failed");
	umask(022);
	if (!td_made) {
		DIR *d = opendir(".");
		struct dirent *e;
		if (d == NULL)
			td_die("opendir failed");
		while ((e = readdir(d)) != NULL) {
			td_before = realloc(td_before, (td_nbefore + 1) * sizeof *td_before);
			td_before[td_nbefore++] = strdup(e->d_name);
		}
		closedir(d);
	}
}

static void td_cleanup(void)
{
	if (fchdir(td_fd) != 0)
		return;
	if (td_made) {
		td_rm_at(AT_FDCWD, td_path);
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		DIR *d = opendir(".");
		struct dirent *e;
		if (d == NULL)
			return;
		while ((e = readdir(d)) != NULL)
			if (!td_was_there(e->d_name))
				td_rm_at(td_fd, e->d_name);
		closedir(d);
	}
}

#endif
