//go:build !amd64

package process

import (
	"fmt"
	"runtime"
)

// installSeccomp fails: the filter's system call numbers are x86-64's,
// and the gofer must not serve without one.
func installSeccomp() error {
	return fmt.Errorf("no seccomp filter for GOARCH=%s", runtime.GOARCH)
}
