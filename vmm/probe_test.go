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

// TestProbeCache checks the per-boot cache of the semantics probe: a second
// lookup reads the file the first wrote, and a stale boot id is ignored.
func TestProbeCache(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("no /dev/kvm here: %v", err)
	}
	if readBootID() == "" {
		t.Skip("no boot id to key the cache on")
	}
	dir := t.TempDir()
	first, err := cachedSemantics(dir, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	path := dir + "/kvm-probe.json"
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("probe not cached: %v", err)
	}
	// A cache from another boot, with the opposite answer, is ignored.
	os.WriteFile(path, []byte(`{"BootID":"other","Report":{"SyscallInRing0":`+map[bool]string{true: "false", false: "true"}[first.SyscallInRing0]+`}}`), 0o644)
	again, err := cachedSemantics(dir, t.Logf)
	if err != nil || again.SyscallInRing0 != first.SyscallInRing0 {
		t.Fatalf("stale cache used: %+v, %v", again, err)
	}
	// This boot's cache is used as is.
	os.WriteFile(path, []byte(`{"BootID":"`+readBootID()+`","Report":{"SyscallInRing0":true,"HostPTEEditsVisible":true}}`), 0o644)
	cached, err := cachedSemantics(dir, t.Logf)
	if err != nil || !cached.SyscallInRing0 || !cached.HostPTEEditsVisible {
		t.Fatalf("this boot's cache not used: %+v, %v", cached, err)
	}
}
