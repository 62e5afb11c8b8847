package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ringfence/ringfence/boot"
)

func doCommand(onUsage cli.OnUsageErrorFunc) *cli.Command {
	return &cli.Command{
		Name:      "do",
		Usage:     "run a program in a new sandbox, with this terminal's streams and environment",
		ArgsUsage: "CMD [ARGS...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cwd", Usage: "working directory of the program"},
			&cli.StringSliceFlag{Name: "env", Usage: "add or replace an environment variable (K=V); repeatable"},
			&cli.GenericFlag{Name: "volume", Value: &volumeList{},
				Usage: "bind-mount a host directory into the sandbox, as HOST:GUEST[:ro]; writes reach the host; repeatable"},
		},
		OnUsageError:    onUsage,
		SkipFlagParsing: false,
		Action:          doAction,
	}
}

func doAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return usageError("do: missing CMD (usage: runsc do [--cwd DIR] [--env K=V]... CMD [ARGS...])")
	}
	args := c.Args().Slice()
	env := os.Environ()
	for _, kv := range c.StringSlice("env") {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageError("do: invalid --env %q (want K=V)", kv)
		}
		env = setEnv(env, kv)
	}
	cwd := c.String("cwd")
	if cwd == "" {
		cwd, _ = os.Getwd()
	} else if st, err := os.Stat(cwd); err != nil || !st.IsDir() {
		return usageError("do: --cwd %q is not a directory", cwd)
	}
	// A bare name is looked up in the sandbox's PATH by the Sentry.
	path := args[0]
	volumes := c.Generic("volume").(*volumeList).volumes
	hostname, _ := os.Hostname()
	status, err := boot.Run(boot.Options{
		Platform:   c.String("platform"),
		NumVCPUs:   c.Int("num-vcpus"),
		RootDir:    c.String("root"),
		Strace:     c.Bool("strace"),
		Path:       path,
		Argv:       args,
		Env:        env,
		Cwd:        cwd,
		Hostname:   hostname,
		Volumes:    volumes,
		Overlay:    c.String("overlay"),
		FileAccess: c.String("file-access"),
		DebugArgs:  goferDebugArgs(c),
	})
	if err != nil {
		if be, ok := err.(*boot.Error); ok {
			return cli.Exit("runsc do: "+be.Msg, be.Status)
		}
		return cli.Exit("runsc do: "+err.Error(), boot.ExitRunscFailed)
	}
	return cli.Exit("", status.ShellCode())
}

// setEnv replaces K's entry in env or appends kv.
func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if strings.HasPrefix(e, k+"=") {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// volumeList collects --volume HOST:GUEST[:ro] flags.
type volumeList struct{ volumes []boot.Volume }

func (l *volumeList) Set(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw") {
		return fmt.Errorf("invalid --volume %q (want HOST:GUEST or HOST:GUEST:ro)", v)
	}
	if !strings.HasPrefix(parts[1], "/") {
		return fmt.Errorf("invalid --volume %q: the sandbox path %q must be absolute", v, parts[1])
	}
	st, err := os.Stat(parts[0])
	if err != nil {
		return fmt.Errorf("invalid --volume %q: %v", v, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("invalid --volume %q: %s is not a directory (only directories can be mounted)", v, parts[0])
	}
	l.volumes = append(l.volumes, boot.Volume{Source: parts[0], Target: parts[1], ReadOnly: len(parts) == 3 && parts[2] == "ro"})
	return nil
}

func (l *volumeList) String() string {
	if l == nil {
		return ""
	}
	var s []string
	for _, v := range l.volumes {
		s = append(s, v.Source+":"+v.Target)
	}
	return strings.Join(s, ",")
}

// goferDebugArgs passes runsc's logging flags on to the gofer it starts.
func goferDebugArgs(c *cli.Context) []string {
	var args []string
	if c.Bool("debug") {
		args = append(args, "--debug")
	}
	if l := c.String("debug-log"); l != "" {
		args = append(args, "--debug-log="+l)
	}
	return args
}
