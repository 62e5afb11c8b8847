package vmm

import (
	"os"
	"testing"
)

// TestProbe runs the start-up probe: the ring0 entry code must carry a
// syscall and an exception out of a real guest and back, on whatever
// /dev/kvm this machine has.
func TestProbe(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("no /dev/kvm here: %v", err)
	}
	rep, err := Probe()
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	t.Logf("probe: %v", rep)
	if rep.SyscallRoundTrip <= 0 || rep.ExceptionRoundTrip <= 0 {
		t.Errorf("implausible timings: %+v", rep)
	}
}

// BenchmarkExitFloor is the floor of the KVM platform's syscall path on
// this machine: a guest that only makes syscalls, each one exit and one
// re-entry, with no Sentry work at all.
func BenchmarkExitFloor(b *testing.B) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		b.Skipf("no /dev/kvm here: %v", err)
	}
	for i := 0; i < b.N; i++ {
		rep, err := Probe()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.SyscallRoundTrip.Nanoseconds()), "ns/syscall")
		b.ReportMetric(float64(rep.ExceptionRoundTrip.Nanoseconds()), "ns/exception")
	}
}
