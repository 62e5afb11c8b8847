/*
 * pivot_root: mount a tmpfs, pivot_root into it with the old root under
 * /old, check both views, then detach the old root. Natively it runs in a
 * private mount namespace of its own (unshare(CLONE_NEWNS)), so the host
 * is untouched; in the sandbox unshare is not available and the sandbox's
 * own namespace is changed, which dies with it.
 *
 * Build: gcc -O2 -static -o pivot_root pivot_root.c
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

int main(void)
{
	unshare(CLONE_NEWNS); /* native only: ENOSYS/EPERM in the sandbox */
	mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	/* /mnt exists on Debian; mounting on it leaves nothing behind. */
	const char *dir = "/mnt";
	check(mount("none", dir, "tmpfs", 0, "mode=0755") == 0, "mount a tmpfs on /mnt");
	char path[128];
	snprintf(path, sizeof path, "%s/old", dir);
	check(mkdir(path, 0755) == 0, "make new_root/old");
	snprintf(path, sizeof path, "%s/marker", dir);
	FILE *f = fopen(path, "w");
	check(f != NULL && fputs("in the new root\n", f) >= 0 && fclose(f) == 0, "write new_root/marker");
	snprintf(path, sizeof path, "%s/old", dir);
	check(syscall(SYS_pivot_root, dir, path) == 0, "pivot_root(new_root, new_root/old)");
	check(chdir("/") == 0, "chdir /");
	char buf[64] = {0};
	f = fopen("/marker", "r");
	check(f != NULL && fgets(buf, sizeof buf, f) != NULL && strcmp(buf, "in the new root\n") == 0, "/marker is the new root's");
	if (f)
		fclose(f);
	struct stat st;
	check(stat("/old/etc", &st) == 0 && S_ISDIR(st.st_mode), "the old root is under /old");
	snprintf(path, sizeof path, "/old%s", dir);
	check(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "the new root's mount point is visible in the old root");
	check(umount2("/old", MNT_DETACH) == 0, "detach the old root");
	check(stat("/old/etc", &st) != 0, "/old is empty afterwards");
	printf("pivot_root: %s\n", failures ? "failed" : "ok");
	return failures != 0;
}
