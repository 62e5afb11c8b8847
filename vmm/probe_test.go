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
// re-entry through the same entry code, with no Sentry work at all. ns/op
// is per syscall; ns/exception is the same for an exception through the
// IDT.
func BenchmarkExitFloor(b *testing.B) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		b.Skipf("no /dev/kvm here: %v", err)
	}
	rep, err := probe(b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rep.SyscallRoundTrip.Nanoseconds()), "ns/op")
	b.ReportMetric(float64(rep.ExceptionRoundTrip.Nanoseconds()), "ns/exception")
}
