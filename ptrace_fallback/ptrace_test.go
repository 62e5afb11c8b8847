package ptrace_fallback

import (
	"testing"

	"github.com/ringfence/ringfence/guestkernel/platform/platformtest"
)

func TestConformance(t *testing.T) {
	platformtest.Run(t, New)
}

func BenchmarkSyscallRoundTrip(b *testing.B) {
	platformtest.BenchmarkSyscall(b, New)
}

func BenchmarkAddressSpaceSwitch(b *testing.B) {
	platformtest.BenchmarkAddressSpaceSwitch(b, New)
}
