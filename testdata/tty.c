/*
 * tty: terminal properties of the standard streams, for running on a
 * pseudo-terminal: isatty, the window size (TIOCGWINSZ), termios flags
 * (TCGETS), and a TCSETS round trip that turns ECHO off and back on.
 *
 * Build: gcc -O2 -static -o tty tty.c
 */
#include <stdio.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "check.h"

int main(void)
{
	printf("isatty(0)=%d isatty(1)=%d isatty(2)=%d\n", isatty(0), isatty(1), isatty(2));
	struct winsize ws;
	if (ioctl(1, TIOCGWINSZ, &ws) == 0)
		printf("winsize %dx%d\n", ws.ws_row, ws.ws_col);
	else
		printf("TIOCGWINSZ failed\n");
	struct termios t;
	check(tcgetattr(1, &t) == 0, "tcgetattr works");
	printf("ICANON=%d ECHO=%d\n", !!(t.c_lflag & ICANON), !!(t.c_lflag & ECHO));
	struct termios raw = t;
	raw.c_lflag &= ~ECHO;
	check(tcsetattr(1, TCSANOW, &raw) == 0, "tcsetattr clears ECHO");
	struct termios back;
	tcgetattr(1, &back);
	check(!(back.c_lflag & ECHO), "ECHO reads back cleared");
	check(tcsetattr(1, TCSANOW, &t) == 0, "tcsetattr restores");
	tcgetattr(1, &back);
	check(!!(back.c_lflag & ECHO) == !!(t.c_lflag & ECHO), "ECHO reads back restored");
	printf(failures ? "tty: %d failures\n" : "tty: ok\n", failures);
	return failures != 0;
}
