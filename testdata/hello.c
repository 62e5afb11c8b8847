/*
 * hello: the smallest useful guest. Prints a greeting, argc and every argv
 * string (argv[0] included: execve must pass it through unchanged), and one
 * line on stderr so the harness can check that both streams are forwarded.
 *
 * Build: gcc -O2 -static -o hello hello.c   (also -static-pie)
 */
#include <stdio.h>

int main(int argc, char **argv)
{
	printf("hello, world\n");
	printf("argc=%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d]=\"%s\"\n", i, argv[i]);
	printf("argv[argc] is %s\n", argv[argc] == NULL ? "NULL" : "not NULL");
	fflush(stdout);
	fprintf(stderr, "hello, stderr\n");
	return 0;
}
