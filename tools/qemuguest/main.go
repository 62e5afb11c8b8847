// Command qemuguest runs a static test program inside a throwaway Linux
// guest under qemu's TCG emulator, on a CPU model (-cpu max) that offers AMD
// SVM with nested paging. The guest loads its own kvm and kvm-amd modules, so
// the program sees a /dev/kvm with real hardware semantics rather than the
// host's (here a software hypervisor that cannot run qemu -accel kvm).
//
// Usage:
//
//	go run ./tools/qemuguest [flags] -- PROGRAM [ARGS...]
//
// The guest kernel is the newest /boot/vmlinuz-* with KVM modules under
// /lib/modules/<version> (Debian package linux-image-amd64). qemuguest builds
// an initramfs from busybox-static, the modules and an /init script, caches
// it, appends PROGRAM and the --file files, boots, and relays the program's
// stdout and stderr on separate serial ports, so no kernel console output is
// mixed in. It exits with the program's exit status, 2 when it could not
// start the guest (usage, missing kernel or qemu, PROGRAM not static), and 3
// when the guest failed: it did not boot, /dev/kvm did not appear, the
// timeout expired, or the guest died before the program finished.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Exit statuses of qemuguest itself; any other status is the program's.
const (
	exitSetup  = 2 // could not start the guest
	exitGuest  = 3 // the guest failed before the program's status came back
	exitNoBoot = 4 // the guest kernel never started /init (boot again)
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type config struct {
	kernel, modules string
	qemu, cpu, mem  string
	smp             int
	timeout         time.Duration
	bootTimeout     time.Duration
	cacheDir        string
	appendCmdline   string
	consoleLog      string
	bzImage         bool
	verbose         bool
	copyCwd         bool
	run             runSpec
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fset := flag.NewFlagSet("qemuguest", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintf(stderr, "usage: qemuguest [flags] -- PROGRAM [ARGS...]\n\n"+
			"Runs the static binary PROGRAM in a qemu TCG guest (-cpu max: AMD SVM+NPT)\n"+
			"whose /dev/kvm is the guest kernel's own KVM. Exits with PROGRAM's status,\n"+
			"%d if the guest could not be started, %d if it failed.\n\nflags:\n", exitSetup, exitGuest)
		fset.PrintDefaults()
	}
	c := &config{}
	var files, env listFlag
	defCache := ""
	if d, err := os.UserCacheDir(); err == nil {
		defCache = filepath.Join(d, "ringfence-qemuguest")
	}
	fset.StringVar(&c.kernel, "kernel", "", "guest kernel `bzImage` (default: newest /boot/vmlinuz-* with KVM modules)")
	fset.StringVar(&c.modules, "modules", "", "guest kernel module `dir` (default: /lib/modules/<kernel version>)")
	fset.StringVar(&c.qemu, "qemu", "qemu-system-x86_64", "qemu `binary`")
	fset.StringVar(&c.cpu, "cpu", "max", "qemu CPU `model`; it must offer SVM")
	fset.StringVar(&c.mem, "mem", "2G", "guest memory `size`")
	fset.IntVar(&c.smp, "smp", 2, "guest CPUs")
	fset.DurationVar(&c.timeout, "timeout", 5*time.Minute, "kill the guest and fail after this `duration`")
	fset.DurationVar(&c.bootTimeout, "boot-timeout", 90*time.Second, "kill the guest and exit 4 if its /init has not started after this `duration` (0: no limit)")
	fset.StringVar(&c.cacheDir, "cache-dir", defCache, "`dir` for the cached base initramfs")
	fset.StringVar(&c.appendCmdline, "append", "", "extra guest kernel command line `args`")
	fset.StringVar(&c.consoleLog, "console-log", "", "write the guest kernel console to `file`")
	fset.BoolVar(&c.bzImage, "bzimage", false, "boot the compressed bzImage as is, not the vmlinux extracted from it (about 5 s slower under TCG)")
	fset.BoolVar(&c.verbose, "v", false, "show the kernel console, guest events and timings on stderr")
	fset.Var(&files, "file", "copy a file or directory into the guest, at GUESTPATH or else at its absolute host path: `HOSTPATH[:GUESTPATH]` (repeatable)")
	fset.Var(&env, "env", "`K=V` in the program's environment, which is otherwise empty (repeatable)")
	fset.StringVar(&c.run.workdir, "workdir", "/", "the program's working `dir` in the guest")
	fset.BoolVar(&c.copyCwd, "copy-cwd", false, "copy the current directory into the guest at the same path and run the program there (for go test -exec, which runs tests in their package directory)")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	rest := fset.Args()
	if len(rest) == 0 {
		fset.Usage()
		return nil, errors.New("no PROGRAM given")
	}
	c.run.program, c.run.args = rest[0], rest[1:]
	if c.smp < 1 {
		return nil, errors.New("--smp must be at least 1")
	}
	if c.timeout <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	if !strings.HasPrefix(c.run.workdir, "/") {
		return nil, fmt.Errorf("--workdir %q must be absolute", c.run.workdir)
	}
	for _, e := range env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.HasPrefix(k, "-") {
			return nil, fmt.Errorf("--env %q: want K=V", e)
		}
	}
	c.run.env = env
	for _, f := range files {
		gf, err := parseFileSpec(f)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(gf.host); err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		c.run.files = append(c.run.files, gf)
	}
	if c.copyCwd {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if err := checkGuestPath(wd); err != nil {
			return nil, fmt.Errorf("--copy-cwd: %w", err)
		}
		c.run.files = append(c.run.files, guestFile{host: wd, guest: wd})
		c.run.workdir = wd
	}
	if c.cacheDir == "" {
		return nil, errors.New("no cache directory: set --cache-dir, XDG_CACHE_HOME or HOME")
	}
	return c, nil
}

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "qemuguest: %v\n", err)
		return exitSetup
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "qemuguest: "+format+"\n", a...) }
	t0 := time.Now()

	initrd, cleanup, err := prepare(c, logf)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		logf("%v", err)
		return exitSetup
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &guest{cfg: c, initrd: initrd, stdout: stdout, stderr: stderr, logf: logf}
	status := g.boot(ctx)
	if c.verbose {
		logf("timings: preparing %.2fs, %s, total %.2fs",
			g.started.Sub(t0).Seconds(), g.timings(), time.Since(t0).Seconds())
	}
	return status
}

// prepare finds the kernel and modules, checks the program and writes the
// initrd (cached base layer plus this run's layer) to a temporary file.
func prepare(c *config, logf func(string, ...any)) (initrd string, cleanup func(), err error) {
	if c.run.program, err = filepath.Abs(c.run.program); err != nil {
		return "", nil, err
	}
	if err := checkStatic(c.run.program); err != nil {
		return "", nil, err
	}
	qemu, err := exec.LookPath(c.qemu)
	if err != nil {
		return "", nil, fmt.Errorf("%s not found: install the Debian package qemu-system-x86 (%v)", c.qemu, err)
	}
	c.qemu = qemu
	k, err := findKernel(c.kernel, c.modules)
	if err != nil {
		return "", nil, err
	}
	c.kernel, c.modules = k.image, k.modulesDir
	mods, err := resolveModules(k.modulesDir, kvmModules)
	if err != nil {
		return "", nil, err
	}
	if c.verbose {
		names := make([]string, len(mods))
		for i, m := range mods {
			names[i] = m.name
		}
		logf("kernel %s (%s), modules %s", k.image, k.version, strings.Join(names, " "))
	}
	if !c.bzImage {
		if vmlinux, cached, err := pvhImage(c.cacheDir, k); err == nil {
			c.kernel = vmlinux
			if c.verbose {
				logf("booting %s, extracted from %s (cached: %v)", vmlinux, k.image, cached)
			}
		} else if c.verbose {
			logf("booting the bzImage itself: %v", err)
		}
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return "", nil, fmt.Errorf("busybox not found: install the Debian package busybox-static")
	}
	base, cached, err := baseLayer(c.cacheDir, k, busybox, mods)
	if err != nil {
		return "", nil, err
	}
	if c.verbose {
		logf("base initramfs %s (cached: %v)", base, cached)
	}

	dir, err := os.MkdirTemp("", "qemuguest-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	initrd = filepath.Join(dir, "initrd")
	out, err := os.Create(initrd)
	if err != nil {
		return "", cleanup, err
	}
	in, err := os.Open(base)
	if err != nil {
		out.Close()
		return "", cleanup, err
	}
	_, err = io.Copy(out, in)
	in.Close()
	if err == nil {
		err = writeRunLayer(out, &c.run)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", cleanup, fmt.Errorf("writing initramfs: %w", err)
	}
	return initrd, cleanup, nil
}
