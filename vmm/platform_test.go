package vmm

import (
	"os"
	"testing"

	"github.com/ringfence/ringfence/guestkernel/platform/platformtest"
)

func TestConformance(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skipf("no /dev/kvm here: %v", err)
	}
	platformtest.Run(t, New)
}

func BenchmarkSyscallRoundTrip(b *testing.B) {
	platformtest.BenchmarkSyscall(b, New)
}

func BenchmarkAddressSpaceSwitch(b *testing.B) {
	platformtest.BenchmarkAddressSpaceSwitch(b, New)
}
