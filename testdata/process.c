/*
 * process: identity and per-process state syscalls that a single-threaded
 * static program uses: getpid/gettid/getppid, uid/gid family, getgroups,
 * set_tid_address, getrlimit/prlimit64 (get and set), sched_getaffinity,
 * sched_yield, rt_sigaction and rt_sigprocmask state (no delivery), and
 * sigaltstack. Only relations are printed, never ids or limits, because the
 * sandbox may present different ones.
 *
 * Build: gcc -O2 -static -o process process.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"


static void handler(int sig)
{
	(void)sig;
}

int main(void)
{
	/* ids */
	pid_t pid = getpid();
	check(pid > 0, "getpid is positive");
	check(syscall(SYS_getpid) == pid, "raw getpid agrees with libc");
	check(syscall(SYS_gettid) == pid, "gettid equals getpid in a single-threaded process");
	check(getppid() >= 0 && getppid() != pid, "getppid differs from getpid");
	check(getuid() == geteuid(), "uid equals euid");
	check(getgid() == getegid(), "gid equals egid");
	int ng = getgroups(0, NULL);
	check(ng >= 0, "getgroups(0, NULL) succeeds");
	if (ng >= 0) {
		gid_t *g = calloc(ng + 1, sizeof(gid_t));
		check(getgroups(ng + 1, g) == ng, "getgroups returns the same count twice");
		free(g);
	}
	check(syscall(SYS_set_tid_address, NULL) == pid, "set_tid_address returns the tid");

	/* rlimits */
	struct rlimit rl;
	check(getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur <= rl.rlim_max, "RLIMIT_STACK soft <= hard");
	check(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= 3 && rl.rlim_cur <= rl.rlim_max, "RLIMIT_NOFILE is sane");
	struct rlimit old, cur;
	check(prlimit(0, RLIMIT_CORE, NULL, &old) == 0, "prlimit64 get RLIMIT_CORE succeeds");
	struct rlimit nl = {0, old.rlim_max};
	check(prlimit(0, RLIMIT_CORE, &nl, NULL) == 0, "prlimit64 lowering RLIMIT_CORE succeeds");
	check(getrlimit(RLIMIT_CORE, &cur) == 0 && cur.rlim_cur == 0 && cur.rlim_max == old.rlim_max, "lowered RLIMIT_CORE is reported back");
	struct rlimit inv = {2, 1};
	errno = 0;
	check(setrlimit(RLIMIT_CORE, &inv) == -1 && errno == EINVAL, "setrlimit with soft > hard fails with EINVAL");
	errno = 0;
	check(syscall(SYS_prlimit64, 0, 1000, NULL, &cur) == -1 && errno == EINVAL, "prlimit64 of an unknown resource fails with EINVAL");

	/* scheduling */
	cpu_set_t set;
	CPU_ZERO(&set);
	check(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity succeeds");
	check(CPU_COUNT(&set) >= 1, "affinity mask has at least one CPU");
	long r = syscall(SYS_sched_getaffinity, 0, sizeof set, &set);
	check(r > 0 && r <= (long)sizeof set && r % 8 == 0, "raw sched_getaffinity returns a positive multiple of 8");
	check(sched_yield() == 0, "sched_yield succeeds");

	/* signal state: set and read back, never delivered */
	struct sigaction sa, got;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	check(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction SIGUSR1 SIG_IGN succeeds");
	check(sigaction(SIGUSR1, NULL, &got) == 0 && got.sa_handler == SIG_IGN, "SIGUSR1 reads back as SIG_IGN");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sa.sa_flags = SA_RESTART;
	check(sigaction(SIGUSR2, &sa, NULL) == 0, "sigaction SIGUSR2 with a handler succeeds");
	memset(&got, 0, sizeof got);
	check(sigaction(SIGUSR2, NULL, &got) == 0 && got.sa_handler == handler && (got.sa_flags & SA_RESTART) &&
		      sigismember(&got.sa_mask, SIGUSR2),
	      "SIGUSR2 handler, flags and mask read back");
	check(sigaction(SIGTERM, NULL, &got) == 0 && got.sa_handler == SIG_DFL, "SIGTERM starts as SIG_DFL");
	errno = 0;
	check(sigaction(SIGKILL, &sa, NULL) == -1 && errno == EINVAL, "sigaction on SIGKILL fails with EINVAL");
	errno = 0;
	check(sigaction(SIGSTOP, &sa, NULL) == -1 && errno == EINVAL, "sigaction on SIGSTOP fails with EINVAL");
	errno = 0;
	check(syscall(SYS_rt_sigaction, 65, NULL, &got, 8) == -1 && errno == EINVAL, "rt_sigaction of signal 65 fails with EINVAL");
	errno = 0;
	check(syscall(SYS_rt_sigaction, SIGUSR1, NULL, &got, 4) == -1 && errno == EINVAL, "rt_sigaction with a bad sigsetsize fails with EINVAL");

	sigset_t m, o;
	check(sigprocmask(SIG_SETMASK, NULL, &o) == 0 && !sigismember(&o, SIGUSR1), "initial mask does not block SIGUSR1");
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGKILL);
	sigaddset(&m, SIGSTOP);
	check(sigprocmask(SIG_BLOCK, &m, NULL) == 0, "sigprocmask SIG_BLOCK succeeds");
	check(sigprocmask(SIG_SETMASK, NULL, &o) == 0 && sigismember(&o, SIGUSR1), "SIGUSR1 reads back as blocked");
	check(!sigismember(&o, SIGKILL) && !sigismember(&o, SIGSTOP), "SIGKILL and SIGSTOP cannot be blocked");
	check(sigprocmask(SIG_UNBLOCK, &m, NULL) == 0 && sigprocmask(SIG_SETMASK, NULL, &o) == 0 && !sigismember(&o, SIGUSR1),
	      "SIG_UNBLOCK unblocks SIGUSR1");
	errno = 0;
	check(syscall(SYS_rt_sigprocmask, 99, &m, NULL, 8) == -1 && errno == EINVAL, "rt_sigprocmask with a bad how fails with EINVAL");

	/* sigaltstack */
	stack_t ss, os;
	check(sigaltstack(NULL, &os) == 0 && (os.ss_flags & SS_DISABLE), "no alternate signal stack at start");
	size_t sz = 64 * 1024;
	ss.ss_sp = malloc(sz);
	ss.ss_size = sz;
	ss.ss_flags = 0;
	check(sigaltstack(&ss, NULL) == 0, "sigaltstack set succeeds");
	memset(&os, 0, sizeof os);
	check(sigaltstack(NULL, &os) == 0 && os.ss_sp == ss.ss_sp && os.ss_size == sz && os.ss_flags == 0,
	      "sigaltstack reads back");
	ss.ss_size = 512;
	errno = 0;
	check(sigaltstack(&ss, NULL) == -1 && errno == ENOMEM, "sigaltstack smaller than MINSIGSTKSZ fails with ENOMEM");
	ss.ss_flags = SS_DISABLE;
	check(sigaltstack(&ss, NULL) == 0 && sigaltstack(NULL, &os) == 0 && (os.ss_flags & SS_DISABLE), "sigaltstack can be disabled");

	printf(failures ? "process: %d failures\n" : "process: ok\n", failures);
	return failures ? 1 : 0;
}
