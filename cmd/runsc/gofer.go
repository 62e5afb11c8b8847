package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ringfence/ringfence/gofer/process"
	"github.com/ringfence/ringfence/logging"
)

// exitGoferFailed is `runsc gofer`'s status when it could not confine
// itself or a connection ended with an error.
const exitGoferFailed = 1

// mountList collects repeated --mount flags in order. It is a cli.Generic
// rather than a StringSliceFlag because the latter splits values at
// commas, and host paths may contain them.
type mountList struct{ mounts []process.Mount }

func (l *mountList) Set(v string) error {
	m, err := process.ParseMount(v)
	if err != nil {
		return err
	}
	l.mounts = append(l.mounts, m)
	return nil
}

func (l *mountList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(l.mounts))
	for i, m := range l.mounts {
		s[i] = m.String()
	}
	return strings.Join(s, " ")
}

func goferCommand(onUsage cli.OnUsageErrorFunc) *cli.Command {
	mounts := &mountList{}
	return &cli.Command{
		Name:  "gofer",
		Usage: "serve host directories to a sandbox over inherited sockets (started by the sandbox, not by hand)",
		Description: "The gofer opens each mount source, confines itself (private mount namespace, empty\n" +
			"read-only root, reduced capabilities, no_new_privs, seccomp) and then serves the\n" +
			"gofer protocol on one inherited socket per mount until all of them are closed.",
		Flags: []cli.Flag{
			&cli.GenericFlag{Name: process.FlagMount, Value: mounts,
				Usage: "a directory to serve, as rw:PATH or ro:PATH; repeatable, in socket order"},
			&cli.IntFlag{Name: process.FlagMountFDStart, Value: 3,
				Usage: "descriptor of the first mount's socket; mount i uses this + i"},
			&cli.BoolFlag{Name: process.FlagAllowUnconfined,
				Usage: "serve without a private mount namespace and root if there is no privilege to create them (testing only)"},
		},
		OnUsageError: onUsage,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("gofer: unexpected arguments %q", c.Args().Slice())
			}
			if len(mounts.mounts) == 0 {
				return usageError("gofer: no --%s given", process.FlagMount)
			}
			logging.Debugf("gofer: serving %s", mounts)
			err := process.Main(process.Config{
				Mounts:          mounts.mounts,
				FDStart:         c.Int(process.FlagMountFDStart),
				AllowUnconfined: c.Bool(process.FlagAllowUnconfined),
				// Logf nil: errors go to stderr, which Spawn points
				// where the debug log goes.
			})
			if err != nil {
				return cli.Exit("runsc gofer: "+err.Error(), exitGoferFailed)
			}
			return nil
		},
	}
}
