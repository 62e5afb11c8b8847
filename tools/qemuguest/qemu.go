package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Serial ports of the guest, in -serial order (ttyS0..ttyS3).
const (
	portConsole = iota
	portStdout
	portStderr
	portControl
	numPorts
)

// consoleTail is how many kernel console lines a failure report shows.
const consoleTail = 40

// guest is one boot of the guest.
type guest struct {
	cfg            *config
	initrd         string
	stdout, stderr io.Writer
	logf           func(string, ...any)

	mu      sync.Mutex
	started time.Time // qemu started
	booted  time.Time // "booted": /init runs
	kvmOK   time.Time // "kvm ok"
	start   time.Time // "start": the program is being started
	ran     time.Time // "ran N": the program exited, output not yet flushed
	exited  time.Time // "exit N"
	ended   time.Time // qemu exited
	kernel  string    // guest uname -r
	status  int       // the program's status, valid if !exited.IsZero()
	fail    string    // "fail" reason from /init
	dmesg   []string  // "dmesg" lines sent with a failure
	console []string  // last consoleTail console lines
}

// qemuArgs is the qemu command line; serial port i is the pipe on fd 3+i.
func (g *guest) qemuArgs() []string {
	c := g.cfg
	cmdline := "console=ttyS0 quiet panic=-1"
	if c.appendCmdline != "" {
		cmdline += " " + c.appendCmdline
	}
	args := []string{
		"-accel", "tcg", "-cpu", c.cpu, "-m", c.mem, "-smp", strconv.Itoa(c.smp),
		"-nographic", "-nodefaults", "-no-reboot", "-nic", "none", "-monitor", "none",
		"-kernel", c.kernel, "-initrd", g.initrd, "-append", cmdline,
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
	}
	for i := 0; i < numPorts; i++ {
		args = append(args,
			"-chardev", fmt.Sprintf("file,id=qg%d,path=/dev/fd/%d", i, 3+i),
			"-serial", fmt.Sprintf("chardev:qg%d", i))
	}
	return args
}

// boot runs qemu to completion and returns qemuguest's exit status.
func (g *guest) boot(ctx context.Context) int {
	ctx, cancel := context.WithTimeoutCause(ctx, g.cfg.timeout, errTimeout)
	defer cancel()
	// Now and then a TCG guest never gets past the firmware; give up on it
	// early, with its own status, so callers can simply boot again.
	ctx, cancelBoot := context.WithCancelCause(ctx)
	defer cancelBoot(nil)
	if g.cfg.bootTimeout > 0 {
		watchdog := time.AfterFunc(g.cfg.bootTimeout, func() {
			g.mu.Lock()
			stuck := g.booted.IsZero()
			g.mu.Unlock()
			if stuck {
				cancelBoot(errBootTimeout)
			}
		})
		defer watchdog.Stop()
	}

	var readers [numPorts]*os.File
	var writers []*os.File
	defer func() {
		for _, f := range append(readers[:], writers...) {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range readers {
		r, w, err := os.Pipe()
		if err != nil {
			g.logf("%v", err)
			return exitSetup
		}
		readers[i] = r
		writers = append(writers, w)
	}

	var consoleFile io.Writer = io.Discard
	if g.cfg.consoleLog != "" {
		f, err := os.Create(g.cfg.consoleLog)
		if err != nil {
			g.logf("--console-log: %v", err)
			return exitSetup
		}
		defer f.Close()
		consoleFile = f
	}

	var qemuErr bytes.Buffer
	cmd := exec.CommandContext(ctx, g.cfg.qemu, g.qemuArgs()...)
	cmd.ExtraFiles = writers
	cmd.Stdout = &qemuErr
	cmd.Stderr = &qemuErr
	cmd.WaitDelay = 5 * time.Second
	if g.cfg.verbose {
		g.logf("%s %s", g.cfg.qemu, strings.Join(g.qemuArgs(), " "))
	}
	g.started = time.Now()
	if err := cmd.Start(); err != nil {
		g.logf("starting qemu: %v", err)
		return exitSetup
	}
	for _, w := range writers {
		w.Close()
	}
	writers = nil

	var wg sync.WaitGroup
	copyOut := func(dst io.Writer, src io.Reader) {
		defer wg.Done()
		io.Copy(dst, src)
	}
	wg.Add(numPorts)
	go copyOut(g.stdout, readers[portStdout])
	go copyOut(g.stderr, readers[portStderr])
	go func() {
		defer wg.Done()
		g.readConsole(readers[portConsole], consoleFile)
	}()
	go func() {
		defer wg.Done()
		g.readControl(readers[portControl])
	}()

	waitErr := cmd.Wait()
	wg.Wait()
	g.ended = time.Now()
	return g.verdict(ctx, cmd, waitErr, qemuErr.String())
}

var (
	errTimeout     = errors.New("timeout")
	errBootTimeout = errors.New("boot timeout")
)

// verdict turns what happened into an exit status, explaining failures.
func (g *guest) verdict(ctx context.Context, cmd *exec.Cmd, waitErr error, qemuOut string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if !g.exited.IsZero() && g.fail == "" {
		// isa-debug-exit makes qemu exit with (value<<1)|1, value being
		// the low byte of the status; 0 means the poweroff fallback ran.
		if want := (g.status<<1 | 1) & 0xff; code != want && code != 0 {
			g.logf("warning: the program exited %d but qemu exited %d (want %d)", g.status, code, want)
		}
		return g.status
	}
	if context.Cause(ctx) == errBootTimeout {
		g.logf("the guest did not boot within %v; qemu killed", g.cfg.bootTimeout)
		g.report(qemuOut)
		return exitNoBoot
	}
	if context.Cause(ctx) == errTimeout {
		g.logf("timed out after %v (%s); qemu killed", g.cfg.timeout, g.stage())
		g.report(qemuOut)
		return exitGuest
	}
	if ctx.Err() != nil {
		g.logf("interrupted (%s); qemu killed", g.stage())
		return exitGuest
	}
	switch {
	case g.fail != "":
		g.logf("guest setup failed: %s", g.fail)
		for _, l := range g.dmesg {
			g.logf("  dmesg: %s", l)
		}
	case g.booted.IsZero():
		g.logf("the guest did not boot: its /init never reported (qemu: %v)", waitErrString(waitErr, code))
		g.report(qemuOut)
	default:
		g.logf("the guest stopped before the program's exit status came back (%s; qemu: %v)", g.stage(), waitErrString(waitErr, code))
		g.report(qemuOut)
	}
	return exitGuest
}

func waitErrString(err error, code int) string {
	if err == nil {
		return fmt.Sprintf("exit status %d", code)
	}
	return err.Error()
}

// stage describes how far the guest got; g.mu held.
func (g *guest) stage() string {
	switch {
	case !g.ran.IsZero():
		return "the program had exited, but something kept its stdout or stderr open"
	case !g.start.IsZero():
		return "the program was running"
	case !g.kvmOK.IsZero():
		return "/dev/kvm was up, the program not yet started"
	case !g.booted.IsZero():
		return "/init was loading the KVM modules"
	}
	return "the kernel was booting"
}

// report prints qemu's own output and the tail of the kernel console; g.mu
// held.
func (g *guest) report(qemuOut string) {
	if s := strings.TrimSpace(qemuOut); s != "" {
		g.logf("qemu said:\n%s", s)
	}
	if len(g.console) > 0 {
		g.logf("last %d lines of the guest console:\n%s", len(g.console), strings.Join(g.console, "\n"))
	}
}

func (g *guest) readConsole(r io.Reader, log io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := printable(sc.Text())
		fmt.Fprintln(log, line)
		if g.cfg.verbose {
			g.logf("console %.2fs: %s", time.Since(g.started).Seconds(), line)
		}
		g.mu.Lock()
		g.console = append(g.console, line)
		if len(g.console) > consoleTail {
			g.console = g.console[len(g.console)-consoleTail:]
		}
		g.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

func (g *guest) readControl(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		verb, arg, _ := strings.Cut(line, " ")
		now := time.Now()
		g.mu.Lock()
		switch verb {
		case "booted":
			g.booted, g.kernel = now, arg
		case "kvm":
			g.kvmOK = now
		case "start":
			g.start = now
		case "ran":
			g.ran = now
		case "warn":
			g.logf("warning: %s", arg)
		case "fail":
			g.fail = strings.TrimSpace(arg)
		case "dmesg":
			g.dmesg = append(g.dmesg, arg)
		case "exit":
			if n, err := strconv.Atoi(arg); err == nil {
				g.exited, g.status = now, n
			}
		}
		g.mu.Unlock()
		if g.cfg.verbose {
			g.logf("guest %.2fs: %s", now.Sub(g.started).Seconds(), line)
		}
	}
	io.Copy(io.Discard, r)
}

// timings summarizes where the time went.
func (g *guest) timings() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%.2fs", t.Sub(g.started).Seconds())
	}
	prog := "-"
	if !g.start.IsZero() && !g.exited.IsZero() {
		prog = fmt.Sprintf("%.2fs", g.exited.Sub(g.start).Seconds())
	}
	return fmt.Sprintf("qemu start to /init %s, to /dev/kvm %s, program %s, qemu exit %s",
		at(g.booted), at(g.kvmOK), prog, at(g.ended))
}

// printable drops terminal escape sequences (the firmware clears the screen)
// and other control characters from a console line.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0x1b:
			// ESC [ params final, or ESC and one character.
			if i+1 < len(s) && s[i+1] == '[' {
				i += 2
				for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
					i++
				}
			} else {
				i++
			}
		case c == '\t' || c >= 0x20 && c != 0x7f:
			b.WriteByte(c)
		}
	}
	return b.String()
}
