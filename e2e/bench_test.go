package e2e

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// getpidCalls is how many getpid system calls one getpid_loop run makes:
// fewer where each costs a hundred microseconds (kvm on PVM-style hosts).
func getpidCalls(platform string) int {
	if platform == "kvm" {
		return 5000
	}
	return 200000
}

// BenchmarkGetpid measures the system call round trip: each iteration runs
// testdata/getpid_loop once, natively and on each platform, and reports
// the mean of its ns_per_call as ns/call. (ns/op is the whole process run,
// startup included.)
func BenchmarkGetpid(b *testing.B) {
	benchProgram(b, "getpid_loop", getpidCalls)
}

// BenchmarkPageFault measures the first touch of fresh anonymous memory:
// testdata/fault_loop maps, touches and unmaps 256 pages a round; ns/call
// is per page.
func BenchmarkPageFault(b *testing.B) {
	benchProgram(b, "fault_loop", func(platform string) int {
		if platform == "kvm" {
			return 20
		}
		return 200
	})
}

// benchProgram runs a testdata program that prints ns_per_call, with the
// argument count(platform) ("native" for the native run).
func benchProgram(b *testing.B, name string, count func(platform string) int) {
	prog := Program(b, name, Static)
	b.Run("native", func(b *testing.B) {
		argv := []string{prog, strconv.Itoa(count("native"))}
		benchGetpid(b, func() Result { return RunNative(b, argv) })
	})
	for _, p := range Platforms() {
		b.Run(p, func(b *testing.B) {
			RequireSandbox(b, p)
			Runsc(b)
			argv := []string{prog, strconv.Itoa(count(p))}
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
			b.Fatalf("%v: exit status %s\nstderr:\n%s", r.Argv, r.Status(), clip(r.Stderr))
		}
		v, err := parseNsPerCall(string(r.Stdout))
		if err != nil {
			b.Fatalf("%v: %v\nstdout:\n%s\nstderr:\n%s", r.Argv, err, clip(r.Stdout), clip(r.Stderr))
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

// BenchmarkSysemuFloor is the floor of the ptrace platform's round trip: a
// C tracer that only resumes a getpid loop under PTRACE_SYSEMU, on one CPU.
// Compare BenchmarkGetpid/ptrace with it.
func BenchmarkSysemuFloor(b *testing.B) {
	prog := Program(b, "sysemu_floor", Static)
	argv := []string{prog, "200000"}
	benchGetpid(b, func() Result { return RunNative(b, argv) })
}
