package main

import (
	"fmt"
	"os"
	"os/exec"
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
	path := args[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			return cli.Exit(fmt.Sprintf("runsc do: %s: command not found in PATH", path), boot.ExitNotFound)
		}
		path = p
	}
	hostname, _ := os.Hostname()
	status, err := boot.Run(boot.Options{
		Platform: c.String("platform"),
		NumVCPUs: c.Int("num-vcpus"),
		RootDir:  c.String("root"),
		Strace:   c.Bool("strace"),
		Path:     path,
		Argv:     args,
		Env:      env,
		Cwd:      cwd,
		Hostname: hostname,
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
