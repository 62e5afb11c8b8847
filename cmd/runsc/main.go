// Command runsc is Ringfence's command line: an OCI runtime and the `do`
// command that runs a program in a fresh sandbox. This package owns flags,
// subcommands and exit codes; everything else lives in the packages it
// calls.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ringfence/ringfence/boot"
	"github.com/ringfence/ringfence/guestkernel/syscalls"
	"github.com/ringfence/ringfence/logging"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// exitUsage is the status for bad flags and values.
const exitUsage = 2

var validNetworks = []string{"sandbox", "none", "host"}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func usageError(format string, args ...any) error {
	return cli.Exit("runsc: "+fmt.Sprintf(format, args...), exitUsage)
}

func oneOf(v string, valid []string) bool {
	for _, x := range valid {
		if v == x {
			return true
		}
	}
	return false
}

func newApp(stdout, stderr io.Writer) *cli.App {
	onUsage := func(c *cli.Context, err error, isSubcommand bool) error {
		return usageError("%v (see 'runsc help')", err)
	}
	app := &cli.App{
		Name:      "runsc",
		Usage:     "Ringfence: run Linux programs and containers in a user-space kernel sandbox",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "platform", Value: "auto", Usage: "how app code runs: auto, ptrace or kvm"},
			&cli.BoolFlag{Name: "debug", Usage: "write debug messages to the debug log"},
			&cli.StringFlag{Name: "debug-log", Usage: "debug log file; a path ending in / is a directory with one log per runsc process"},
			&cli.BoolFlag{Name: "strace", Usage: "log every app system call with its arguments, result and duration"},
			&cli.StringFlag{Name: "root", Value: "/var/run/runsc", Usage: "directory for container state"},
			&cli.IntFlag{Name: "num-vcpus", Usage: "most vCPUs the kvm platform creates (default: the host's CPU count)"},
			&cli.StringFlag{Name: "overlay", Value: "memory", Usage: "root filesystem overlay: memory (writes stay in the sandbox) or none (writes reach the host)"},
			&cli.StringFlag{Name: "file-access", Value: "exclusive", Usage: "file caching: exclusive (the sandbox owns its files) or shared (revalidate files others may change)"},
			&cli.StringFlag{Name: "network", Value: "sandbox", Usage: "networking: sandbox, none or host (no networking is built yet: sockets fail with EAFNOSUPPORT)"},
		},
		OnUsageError: onUsage,
		Before: func(c *cli.Context) error {
			if p := c.String("platform"); !oneOf(p, boot.ValidPlatforms) {
				return usageError("invalid --platform %q (valid: %s)", p, strings.Join(boot.ValidPlatforms, ", "))
			}
			if n := c.Int("num-vcpus"); n < 0 {
				return usageError("invalid --num-vcpus %d (want a positive count, or 0 for the host's CPU count)", n)
			}
			if o := c.String("overlay"); !oneOf(o, boot.ValidOverlays) {
				return usageError("invalid --overlay %q (valid: %s)", o, strings.Join(boot.ValidOverlays, ", "))
			}
			if f := c.String("file-access"); !oneOf(f, boot.ValidFileAccess) {
				return usageError("invalid --file-access %q (valid: %s)", f, strings.Join(boot.ValidFileAccess, ", "))
			}
			if n := c.String("network"); !oneOf(n, validNetworks) {
				return usageError("invalid --network %q (valid: %s)", n, strings.Join(validNetworks, ", "))
			}
			cmd := c.Args().First()
			if cmd == "" {
				cmd = "runsc"
			}
			if err := logging.Setup(c.String("debug-log"), c.Bool("debug"), cmd); err != nil {
				return cli.Exit("runsc: "+err.Error(), boot.ExitRunscFailed)
			}
			logging.Debugf("runsc %s: %s", version, strings.Join(os.Args, " "))
			return nil
		},
		Commands: []*cli.Command{
			doCommand(onUsage),
			platformsCommand(),
			syscallsCommand(),
			goferCommand(onUsage),
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "runsc: unknown command %q (see 'runsc help')\n", name)
			cli.OsExiter(exitUsage)
		},
	}
	return app
}

// run runs the CLI and returns the exit status. urfave/cli reports exit
// statuses through OsExiter (after printing any message itself); run
// captures them so tests can call it and main alone exits.
func run(args []string, stdout, stderr io.Writer) (code int) {
	exited := false
	cli.OsExiter = func(c int) {
		if !exited {
			code, exited = c, true
		}
	}
	cli.ErrWriter = stderr
	err := newApp(stdout, stderr).Run(args)
	if exited {
		return code
	}
	if err != nil {
		fmt.Fprintln(stderr, "runsc:", err)
		return 1
	}
	return 0
}

func syscallsCommand() *cli.Command {
	return &cli.Command{
		Name:        "syscalls",
		Usage:       "list every x86-64 system call and how the Sentry supports it",
		Description: "The table is generated from the Sentry's system call table.\n\n" + syscalls.Markdown(),
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "markdown", Usage: "print a Markdown table of supported calls"}},
		Action: func(c *cli.Context) error {
			if c.Bool("markdown") {
				fmt.Fprint(c.App.Writer, syscalls.Markdown())
				return nil
			}
			for _, r := range syscalls.Report() {
				fmt.Fprintf(c.App.Writer, "%3d %-24s %-13s %s\n", r.Number, r.Name, r.Support, r.Note)
			}
			return nil
		},
	}
}

func platformsCommand() *cli.Command {
	return &cli.Command{
		Name:  "platforms",
		Usage: "probe each platform and show which one --platform=auto picks",
		Action: func(c *cli.Context) error {
			out := c.App.Writer
			for _, name := range boot.ValidPlatforms[1:] {
				if err := boot.ProbePlatform(name); err != nil {
					fmt.Fprintf(out, "%-7s unavailable: %v\n", name, err)
				} else {
					fmt.Fprintf(out, "%-7s available\n", name)
				}
			}
			if rep, err := boot.ProbeKVM(); err != nil {
				fmt.Fprintf(out, "        /dev/kvm probe: %v\n", err)
			} else {
				fmt.Fprintf(out, "        /dev/kvm probe: %v\n", rep)
			}
			chosen, err := boot.AutoPlatform()
			if err != nil {
				return cli.Exit("runsc: "+err.Error(), boot.ExitRunscFailed)
			}
			fmt.Fprintf(out, "auto    -> %s\n", chosen)
			return nil
		},
	}
}
