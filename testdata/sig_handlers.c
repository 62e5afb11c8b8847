/*
 * sig_handlers: signals delivered to app handlers — siginfo contents,
 * SA_RESETHAND, SA_NODEFER and the handler's mask, sigaltstack with
 * SA_ONSTACK, a SIGSEGV handler that fixes the fault and returns, SIGFPE
 * escaped with siglongjmp, alarm + pause, nanosleep cut short by SIGALRM,
 * SA_RESTART on a blocked read, and the FP/vector registers surviving a
 * handler that clobbers them. Prints properties only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t got, depth, maxdepth;
static volatile int info_signo, info_code, info_pid;
static volatile int usr2_blocked_inside, usr1_blocked_inside;

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	info_signo = si->si_signo;
	info_code = si->si_code;
	info_pid = si->si_pid;
	got = sig;
}

static int blocked(int sig)
{
	sigset_t cur;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	return sigismember(&cur, sig);
}

static void on_mask(int sig)
{
	(void)sig;
	usr1_blocked_inside = blocked(SIGUSR1);
	usr2_blocked_inside = blocked(SIGUSR2);
	got++;
}

static volatile int nest_raised;

static void on_nest(int sig)
{
	depth++;
	if (depth > maxdepth)
		maxdepth = depth;
	if (!nest_raised) {
		nest_raised = 1;
		raise(sig);
	}
	depth--;
}

static char *alt_base;
static size_t alt_size = 256 * 1024;
static volatile int on_alt;
static volatile int alt_flags_inside;

static void on_alt_handler(int sig)
{
	char local;
	stack_t cur;
	(void)sig;
	on_alt = (char *)&local >= alt_base && (char *)&local < alt_base + alt_size;
	sigaltstack(NULL, &cur);
	alt_flags_inside = cur.ss_flags;
}

static char *segv_page;
static volatile void *segv_addr;
static volatile int segv_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	segv_addr = si->si_addr;
	segv_code = si->si_code;
	mprotect(segv_page, 4096, PROT_READ | PROT_WRITE);
}

static sigjmp_buf fpe_jmp;
static volatile int fpe_code;

static void on_fpe(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	fpe_code = si->si_code;
	siglongjmp(fpe_jmp, 1);
}

static volatile int alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void on_clobber(int sig)
{
	(void)sig;
	/* Change every xmm/ymm register the compiler might hold values in. */
#ifdef __AVX__
	__asm__ volatile("vpcmpeqd %%ymm0, %%ymm0, %%ymm0\n\t"
			 "vmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm8\n\tvmovdqa %%ymm0, %%ymm15" ::: "xmm0", "xmm1", "xmm8", "xmm15");
#endif
	__asm__ volatile("pcmpeqd %%xmm0, %%xmm0\n\tmovdqa %%xmm0, %%xmm1\n\tmovdqa %%xmm0, %%xmm2\n\t"
			 "movdqa %%xmm0, %%xmm8\n\tmovdqa %%xmm0, %%xmm15" ::: "xmm0", "xmm1", "xmm2", "xmm8", "xmm15");
	volatile double d = 1.0;
	for (int i = 0; i < 10; i++)
		d = d * 3.5 + 0.25;
	got = (int)d;
}

static int restart_wfd;

static void on_restart_alarm(int sig)
{
	(void)sig;
	if (++alarms == 3) {
		struct itimerval off = {0};
		setitimer(ITIMER_REAL, &off, NULL);
		write(restart_wfd, "x", 1);
	}
}

/* xmm_survives sends itself SIGUSR1 with a value in xmm8 that the handler
 * overwrites, and reports whether it is intact after the handler returns
 * (the syscall instruction itself preserves it). */
static int xmm_survives(void)
{
	uint64_t in = 0x1122334455667788ULL, out;
	got = 0;
	long pid = getpid(), tid = gettid();
	__asm__ volatile("movq %[in], %%xmm8\n\t"
			 "mov $234, %%eax\n\t"
			 "mov %[pid], %%rdi\n\t"
			 "mov %[tid], %%rsi\n\t"
			 "mov $10, %%edx\n\t"
			 "syscall\n\t"
			 "movq %%xmm8, %[out]"
			 : [out] "=r"(out)
			 : [in] "r"(in), [pid] "r"(pid), [tid] "r"(tid)
			 : "rax", "rdi", "rsi", "rdx", "rcx", "r11", "xmm8", "memory");
	return out == in && got > 1000;
}

static void set(int sig, void (*h)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void set_info(int sig, void (*h)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = h;
	sa.sa_flags = flags | SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

int main(void)
{
	struct sigaction old;

	/* raise: the handler runs before raise returns, with siginfo. */
	set_info(SIGUSR1, on_info, 0);
	got = 0;
	raise(SIGUSR1);
	check(got == SIGUSR1, "raise(SIGUSR1) ran the handler before returning");
	check(info_signo == SIGUSR1, "si_signo is SIGUSR1");
	check(info_code == SI_TKILL, "si_code is SI_TKILL for raise");
	check(info_pid == getpid(), "si_pid is getpid()");
	got = 0;
	kill(getpid(), SIGUSR1);
	check(got == SIGUSR1 && info_code == SI_USER, "kill(getpid()) delivers with SI_USER");

	/* SA_RESETHAND: the disposition is back to SIG_DFL afterwards. */
	set_info(SIGUSR1, on_info, SA_RESETHAND);
	got = 0;
	raise(SIGUSR1);
	sigaction(SIGUSR1, NULL, &old);
	check(got == SIGUSR1 && old.sa_handler == SIG_DFL, "SA_RESETHAND resets the action to SIG_DFL");

	/* Default: the signal is blocked inside its handler, sa_mask too. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_mask;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
	check(usr1_blocked_inside && usr2_blocked_inside, "inside the handler the signal and sa_mask are blocked");
	check(!blocked(SIGUSR1) && !blocked(SIGUSR2), "the mask is restored after the handler");
	sa.sa_flags = SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
	check(!usr1_blocked_inside, "SA_NODEFER leaves the signal unblocked inside the handler");

	/* Nesting: without SA_NODEFER a raise inside the handler waits. */
	set(SIGUSR2, on_nest, 0);
	depth = maxdepth = nest_raised = 0;
	raise(SIGUSR2);
	check(maxdepth == 1, "a signal raised in its own handler is deferred until it returns");
	set(SIGUSR2, on_nest, SA_NODEFER);
	depth = maxdepth = nest_raised = 0;
	raise(SIGUSR2);
	check(maxdepth == 2, "with SA_NODEFER it nests");

	/* sigaltstack + SA_ONSTACK. */
	alt_base = mmap(NULL, alt_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
	check(sigaltstack(&ss, NULL) == 0, "sigaltstack installs a stack");
	set(SIGUSR1, on_alt_handler, SA_ONSTACK);
	raise(SIGUSR1);
	check(on_alt, "an SA_ONSTACK handler runs on the alternate stack");
	check(alt_flags_inside == SS_ONSTACK, "sigaltstack reports SS_ONSTACK inside it");
	stack_t cur;
	sigaltstack(NULL, &cur);
	check(cur.ss_flags == 0 && cur.ss_sp == alt_base, "after the handler the stack is not in use");
	set(SIGUSR1, on_alt_handler, 0);
	raise(SIGUSR1);
	check(!on_alt, "without SA_ONSTACK the handler runs on the normal stack");

	/* SIGSEGV handler fixes the protection and the access reruns. */
	segv_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	set_info(SIGSEGV, on_segv, 0);
	*(volatile char *)(segv_page + 100) = 42;
	check(segv_addr == segv_page + 100, "SIGSEGV si_addr is the faulting address");
	check(segv_code == SEGV_ACCERR, "si_code is SEGV_ACCERR");
	check(segv_page[100] == 42, "the faulting store reran after the handler returned");

	/* SIGFPE from integer division by zero, left with siglongjmp. */
	set_info(SIGFPE, on_fpe, 0);
	volatile int zero = 0, r = 0;
	if (sigsetjmp(fpe_jmp, 1) == 0) {
		r = 10 / zero;
		check(0, "division by zero trapped");
	}
	check(fpe_code == FPE_INTDIV, "SIGFPE with FPE_INTDIV caught, siglongjmp out of the handler");
	check(!blocked(SIGFPE), "siglongjmp restored the mask");
	(void)r;

	/* alarm + pause. */
	set(SIGALRM, on_alarm, 0);
	alarms = 0;
	alarm(1);
	errno = 0;
	int pr = pause();
	check(pr == -1 && errno == EINTR && alarms == 1, "pause returns EINTR after the SIGALRM handler");

	/* nanosleep cut short by SIGALRM (no SA_RESTART): EINTR, time left. */
	struct itimerval it = {.it_value = {.tv_usec = 100000}};
	setitimer(ITIMER_REAL, &it, NULL);
	struct timespec req = {.tv_sec = 5}, rem = {0};
	errno = 0;
	int nr = nanosleep(&req, &rem);
	check(nr == -1 && errno == EINTR, "nanosleep interrupted by a handler returns EINTR");
	check(rem.tv_sec >= 3 && rem.tv_sec <= 5, "nanosleep reports the time left");

	/* A read of an empty pipe: EINTR without SA_RESTART ... */
	int p[2];
	pipe(p);
	setitimer(ITIMER_REAL, &it, NULL);
	char c;
	errno = 0;
	ssize_t n = read(p[0], &c, 1);
	check(n == -1 && errno == EINTR, "read interrupted without SA_RESTART returns EINTR");
	/* ... restarted with SA_RESTART: a repeating timer fires during the
	 * read; its third run writes a byte, which the restarted read gets. */
	close(p[1]);
	pipe(p);
	restart_wfd = p[1];
	set(SIGALRM, on_restart_alarm, SA_RESTART);
	alarms = 0;
	struct itimerval rep = {.it_value = {.tv_usec = 30000}, .it_interval = {.tv_usec = 30000}};
	setitimer(ITIMER_REAL, &rep, NULL);
	errno = 0;
	c = 0;
	n = read(p[0], &c, 1);
	check(n == 1 && c == 'x' && alarms == 3, "read with SA_RESTART is restarted across handlers and completes");

	/* FP and vector registers survive a handler that clobbers them. */
	set(SIGUSR1, on_clobber, 0);
	check(xmm_survives(), "xmm8 and FP values survive a handler that clobbers them");

	return failures != 0;
}
