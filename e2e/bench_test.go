package e2e

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// getpidCalls is how many getpid system calls one getpid_loop run makes.
const getpidCalls = 200000

// BenchmarkGetpid measures the system call round trip: each iteration runs
// testdata/getpid_loop once with getpidCalls calls, natively and on each
// platform, and reports the mean of its ns_per_call as ns/call. (ns/op is
// the whole process run, startup included.)
func BenchmarkGetpid(b *testing.B) {
	prog := Program(b, "getpid_loop", Static)
	argv := []string{prog, strconv.Itoa(getpidCalls)}
	b.Run("native", func(b *testing.B) {
		benchGetpid(b, func() Result { return RunNative(b, argv) })
	})
	for _, p := range Platforms() {
		b.Run(p, func(b *testing.B) {
			RequireSandbox(b, p)
			Runsc(b)
			benchGetpid(b, func() Result { return RunSandboxed(b, p, argv) })
		})
	}
}

func benchGetpid(b *testing.B, run func() Result) {
	b.Helper()
	var sum float64
	n := 0
	for b.Loop() {
		r := run()
		if r.Code != 0 || r.Err != nil || r.TimedOut {
			b.Fatalf("getpid_loop: exit status %s\nstderr:\n%s", r.Status(), clip(r.Stderr))
		}
		v, err := parseNsPerCall(string(r.Stdout))
		if err != nil {
			b.Fatalf("getpid_loop: %v\nstdout:\n%s\nstderr:\n%s", err, clip(r.Stdout), clip(r.Stderr))
		}
		sum += v
		n++
	}
	if n > 0 {
		b.ReportMetric(sum/float64(n), "ns/call")
	}
}

func parseNsPerCall(out string) (float64, error) {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "ns_per_call "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, errNoNsPerCall
}

var errNoNsPerCall = errors.New(`no "ns_per_call <float>" line in the output`)

// BenchmarkStartup measures starting and finishing a trivial static program,
// busybox true, natively and on each platform: ns/op is the startup cost.
func BenchmarkStartup(b *testing.B) {
	RequireBusybox(b)
	argv := []string{Busybox, "true"}
	b.Run("native", func(b *testing.B) {
		benchTrue(b, func() Result { return RunNative(b, argv) })
	})
	for _, p := range Platforms() {
		b.Run(p, func(b *testing.B) {
			RequireSandbox(b, p)
			Runsc(b)
			benchTrue(b, func() Result { return RunSandboxed(b, p, argv) })
		})
	}
}

func benchTrue(b *testing.B, run func() Result) {
	b.Helper()
	for b.Loop() {
		if r := run(); r.Code != 0 || r.Err != nil || r.TimedOut {
			b.Fatalf("busybox true: exit status %s\nstderr:\n%s", r.Status(), clip(r.Stderr))
		}
	}
}
