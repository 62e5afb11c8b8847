// Command readmegen rewrites the system call coverage table in README.md
// (between the syscalls:begin and syscalls:end markers) from the Sentry's
// table, so the README cannot drift from the code.
package main

import (
	"fmt"
	"os"

	"github.com/ringfence/ringfence/guestkernel/syscalls"
)

func main() {
	path := "README.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "readmegen: %v\n", err)
		os.Exit(1)
	}
	out, err := syscalls.ReplaceCoverage(string(b))
	if err != nil {
		fmt.Fprintf(os.Stderr, "readmegen: %s: %v\n", path, err)
		os.Exit(1)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "readmegen: %v\n", err)
		os.Exit(1)
	}
}
