/*
 * auxv: checks the initial process stack the loader builds: argc/argv/envp
 * layout and the ELF auxiliary vector. Every line is a property that holds
 * on Linux and must hold in a correct sandbox; raw addresses, ids and random
 * bytes are never printed, so native and sandboxed output are byte-identical.
 * A failed property prints "FAIL: ..." and the exit status becomes 1.
 *
 * Only environment variables whose name starts with RF_ are printed (sorted),
 * so the host environment does not leak into the output.
 *
 * Build: gcc -O2 -static -o auxv auxv.c   (also -static-pie)
 */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

extern const ElfW(Ehdr) __ehdr_start; /* provided by the linker */
extern char _start[];

static int failures;

static void check(int ok, const char *what, const char *detail)
{
	if (ok) {
		printf("%s\n", what);
	} else {
		printf("FAIL: %s%s%s\n", what, detail ? " " : "", detail ? detail : "");
		failures++;
	}
}

struct want {
	unsigned long type;
	const char *name;
};

static const struct want wanted[] = {
	{AT_PHDR, "AT_PHDR"},	     {AT_PHENT, "AT_PHENT"},
	{AT_PHNUM, "AT_PHNUM"},	     {AT_PAGESZ, "AT_PAGESZ"},
	{AT_ENTRY, "AT_ENTRY"},	     {AT_UID, "AT_UID"},
	{AT_EUID, "AT_EUID"},	     {AT_GID, "AT_GID"},
	{AT_EGID, "AT_EGID"},	     {AT_SECURE, "AT_SECURE"},
	{AT_RANDOM, "AT_RANDOM"},    {AT_HWCAP, "AT_HWCAP"},
	{AT_HWCAP2, "AT_HWCAP2"},    {AT_CLKTCK, "AT_CLKTCK"},
	{AT_PLATFORM, "AT_PLATFORM"}, {AT_EXECFN, "AT_EXECFN"},
	{AT_MINSIGSTKSZ, "AT_MINSIGSTKSZ"},
};
#define NWANTED (sizeof(wanted) / sizeof(wanted[0]))

static ElfW(auxv_t) *auxv;

/* auxval looks type up by walking the vector; *count gets the occurrences. */
static unsigned long auxval(unsigned long type, int *count)
{
	unsigned long v = 0;
	int n = 0;
	for (ElfW(auxv_t) *a = auxv; a->a_type != AT_NULL; a++) {
		if (a->a_type == type) {
			if (n == 0)
				v = a->a_un.a_val;
			n++;
		}
	}
	if (count)
		*count = n;
	return v;
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv, char **envp)
{
	char buf[256];

	/* argc / argv */
	printf("argc=%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d]=\"%s\"\n", i, argv[i]);
	check(argv[argc] == NULL, "argv is NULL-terminated", NULL);
	check(envp == argv + argc + 1, "envp follows argv on the stack", NULL);

	/* environment: RF_* only, sorted */
	int nenv = 0;
	char **e = envp;
	while (*e)
		e++, nenv++;
	char **rf = calloc(nenv + 1, sizeof(char *));
	int nrf = 0;
	for (int i = 0; i < nenv; i++)
		if (strncmp(envp[i], "RF_", 3) == 0)
			rf[nrf++] = envp[i];
	qsort(rf, nrf, sizeof(char *), cmpstr);
	for (int i = 0; i < nrf; i++)
		printf("env \"%s\"\n", rf[i]);
	const char *t = getenv("RF_TEST");
	printf("getenv(RF_TEST)=%s%s%s\n", t ? "\"" : "", t ? t : "(unset)", t ? "\"" : "");

	/* auxv starts right after the environment's NULL terminator. */
	auxv = (ElfW(auxv_t) *)(e + 1);
	int nauxv = 0;
	for (ElfW(auxv_t) *a = auxv; a->a_type != AT_NULL; a++)
		nauxv++;
	check(nauxv > 0 && nauxv < 64, "auxv is AT_NULL-terminated and not empty", NULL);

	for (size_t i = 0; i < NWANTED; i++) {
		int n;
		auxval(wanted[i].type, &n);
		if (n == 1)
			printf("auxv has %s\n", wanted[i].name);
		else if (n == 0)
			printf("FAIL: auxv has %s (missing)\n", wanted[i].name), failures++;
		else
			printf("FAIL: auxv has %s (%d times)\n", wanted[i].name, n), failures++;
	}

	unsigned long pagesz = auxval(AT_PAGESZ, NULL);
	snprintf(buf, sizeof buf, "(got %lu)", pagesz);
	check(pagesz == 4096, "AT_PAGESZ=4096", buf);
	check(sysconf(_SC_PAGESIZE) == 4096, "sysconf(_SC_PAGESIZE)=4096", NULL);

	errno = 0;
	unsigned long g = getauxval(AT_PAGESZ);
	check(g == pagesz && errno == 0, "getauxval(AT_PAGESZ) agrees with the auxv", NULL);
	errno = 0;
	g = getauxval(AT_PHNUM);
	check(g == auxval(AT_PHNUM, NULL) && errno == 0, "getauxval(AT_PHNUM) agrees with the auxv", NULL);
	errno = 0;
	g = getauxval(12345);
	check(g == 0 && errno == ENOENT, "getauxval of an unknown type fails with ENOENT", NULL);

	unsigned long phent = auxval(AT_PHENT, NULL);
	snprintf(buf, sizeof buf, "(got %lu)", phent);
	check(phent == 56, "AT_PHENT=56", buf);

	/* Program headers: AT_PHDR must point at this executable's headers. */
	const ElfW(Ehdr) *eh = &__ehdr_start;
	printf("ELF type %s\n", eh->e_type == ET_EXEC ? "ET_EXEC" : eh->e_type == ET_DYN ? "ET_DYN" : "other");
	const ElfW(Phdr) *ph = (const ElfW(Phdr) *)auxval(AT_PHDR, NULL);
	check(ph == (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff), "AT_PHDR points at the ELF program headers", NULL);
	unsigned long phnum = auxval(AT_PHNUM, NULL);
	snprintf(buf, sizeof buf, "(auxv %lu, ELF header %u)", phnum, eh->e_phnum);
	check(phnum == eh->e_phnum, "AT_PHNUM matches the ELF header", buf);
	check(phent == eh->e_phentsize, "AT_PHENT matches the ELF header", NULL);
	if (ph == (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff)) {
		int loads = 0, text = 0;
		uintptr_t bias = 0;
		if (eh->e_type == ET_DYN) {
			/* the load bias is where the first PT_LOAD (offset 0) landed */
			for (unsigned i = 0; i < phnum; i++)
				if (ph[i].p_type == PT_LOAD) {
					bias = (uintptr_t)eh - (ph[i].p_vaddr - ph[i].p_offset);
					break;
				}
		}
		for (unsigned i = 0; i < phnum; i++) {
			if (ph[i].p_type != PT_LOAD)
				continue;
			loads++;
			uintptr_t lo = bias + ph[i].p_vaddr, hi = lo + ph[i].p_memsz;
			if ((ph[i].p_flags & PF_X) && (uintptr_t)main >= lo && (uintptr_t)main < hi)
				text++;
		}
		check(loads > 0, "program headers include PT_LOAD", NULL);
		check(text == 1, "main lies in an executable PT_LOAD", NULL);
		if (eh->e_type == ET_DYN) {
			check(bias % 4096 == 0, "load bias is page aligned", NULL);
			check(bias != 0, "static-pie is relocated away from 0", NULL);
		}
	}

	check(auxval(AT_ENTRY, NULL) == (uintptr_t)_start, "AT_ENTRY matches _start", NULL);

	check(auxval(AT_UID, NULL) == getuid(), "AT_UID matches getuid()", NULL);
	check(auxval(AT_EUID, NULL) == geteuid(), "AT_EUID matches geteuid()", NULL);
	check(auxval(AT_GID, NULL) == getgid(), "AT_GID matches getgid()", NULL);
	check(auxval(AT_EGID, NULL) == getegid(), "AT_EGID matches getegid()", NULL);
	snprintf(buf, sizeof buf, "(got %lu)", auxval(AT_SECURE, NULL));
	check(auxval(AT_SECURE, NULL) == 0, "AT_SECURE=0", buf);
	snprintf(buf, sizeof buf, "(got %lu)", auxval(AT_CLKTCK, NULL));
	check(auxval(AT_CLKTCK, NULL) == 100, "AT_CLKTCK=100", buf);
	check(sysconf(_SC_CLK_TCK) == 100, "sysconf(_SC_CLK_TCK)=100", NULL);

	const unsigned char *rnd = (const unsigned char *)auxval(AT_RANDOM, NULL);
	if (rnd) {
		volatile unsigned char acc = 0;
		int nonzero = 0;
		for (int i = 0; i < 16; i++) {
			acc ^= rnd[i];
			nonzero |= rnd[i] != 0;
		}
		(void)acc;
		printf("AT_RANDOM readable\n");
		check(nonzero, "AT_RANDOM bytes are not all zero", NULL);
	} else {
		check(0, "AT_RANDOM readable", "(NULL)");
	}

	unsigned long hwcap = auxval(AT_HWCAP, NULL);
	/* CPUID.1:EDX bit 0 is FPU, bit 25 SSE, bit 26 SSE2: baseline x86-64. */
	check((hwcap & 1) && (hwcap & (1ul << 25)) && (hwcap & (1ul << 26)), "AT_HWCAP has FPU, SSE and SSE2", NULL);

	const char *plat = (const char *)auxval(AT_PLATFORM, NULL);
	snprintf(buf, sizeof buf, "(got \"%.100s\")", plat ? plat : "NULL");
	check(plat && strcmp(plat, "x86_64") == 0, "AT_PLATFORM=x86_64", buf);

	const char *execfn = (const char *)auxval(AT_EXECFN, NULL);
	if (execfn) {
		snprintf(buf, sizeof buf, "(\"%.100s\" vs \"%.100s\")", base(execfn), base(argv[0]));
		check(strcmp(base(execfn), base(argv[0])) == 0, "AT_EXECFN basename matches argv[0] basename", buf);
		/* the harness always runs programs by absolute path */
		check(execfn[0] == '/', "AT_EXECFN is an absolute path", NULL);
	} else {
		check(0, "AT_EXECFN is set", NULL);
	}

	unsigned long minsig = auxval(AT_MINSIGSTKSZ, NULL);
	check(minsig >= 1024, "AT_MINSIGSTKSZ is at least 1024", NULL);
	check(minsig <= 65536, "AT_MINSIGSTKSZ is at most 65536", NULL);

	printf(failures ? "auxv: %d failures\n" : "auxv: ok\n", failures);
	return failures ? 1 : 0;
}
