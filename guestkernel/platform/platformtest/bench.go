package platformtest

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// BenchmarkSyscall measures the platform's system call round trip alone:
// app code that loops on `syscall`, and a Sentry that answers each with a
// new rax. Every platform's benchmark calls it, so figures compare.
func BenchmarkSyscall(b *testing.B, newPlatform platform.Constructor) {
	runtime.LockOSThread()
	fd, err := unix.MemfdCreate("platformbench", unix.MFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	unix.Ftruncate(fd, 1<<20)
	mem, err := unix.Mmap(fd, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	p, err := newPlatform(platform.Options{MemoryFD: fd})
	if err != nil {
		b.Skipf("platform unavailable here: %v", err)
	}
	defer p.Close()
	as, _ := p.NewAddressSpace()
	defer as.Release()
	ctx, _ := p.NewContext()
	defer ctx.Release()
	// loop: syscall; jmp loop
	copy(mem, []byte{0x0f, 0x05, 0xeb, 0xfc})
	as.MapFile(codeAddr, 0, 4096, platform.ReadExec)
	regs := platform.Registers{Rip: codeAddr, Cs: platform.UserCS, Ss: platform.UserSS, Eflags: platform.EflagsInit, Rax: 39}
	fpu := platform.NewFPState()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev, err := ctx.Switch(as, &regs, fpu)
		if err != nil || ev.Kind != platform.EventSyscall {
			b.Fatalf("Switch = %v, %v", ev.Kind, err)
		}
		regs.Rax = uint64(i)
	}
}
