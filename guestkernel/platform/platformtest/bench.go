package platformtest

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// benchEnv is what the benchmarks share: a platform over a small memory
// file with a syscall loop at codeAddr.
type benchEnv struct {
	p   platform.Platform
	ctx platform.Context
	fpu *platform.FPState
}

func newBenchEnv(b *testing.B, newPlatform platform.Constructor) *benchEnv {
	runtime.LockOSThread()
	fd, err := unix.MemfdCreate("platformbench", unix.MFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	unix.Ftruncate(fd, 1<<20)
	mem, err := unix.Mmap(fd, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Munmap(mem) })
	p, err := newPlatform(platform.Options{MemoryFD: fd})
	if err != nil {
		b.Skipf("platform unavailable here: %v", err)
	}
	b.Cleanup(func() { p.Close() })
	ctx, err := p.NewContext()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ctx.Release)
	// loop: syscall; jmp loop
	copy(mem, []byte{0x0f, 0x05, 0xeb, 0xfc})
	return &benchEnv{p: p, ctx: ctx, fpu: platform.NewFPState()}
}

func (e *benchEnv) newAS(b *testing.B) platform.AddressSpace {
	as, err := e.p.NewAddressSpace()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(as.Release)
	if err := as.MapFile(codeAddr, 0, 4096, platform.ReadExec); err != nil {
		b.Fatal(err)
	}
	return as
}

func loopRegs() platform.Registers {
	return platform.Registers{Rip: codeAddr, Cs: platform.UserCS, Ss: platform.UserSS, Eflags: platform.EflagsInit, Rax: 39}
}

// BenchmarkAddressSpaceSwitch measures a syscall round trip that changes
// address space every time: two address spaces run the same syscall loop
// in turn on one context. Compare with BenchmarkSyscall.
func BenchmarkAddressSpaceSwitch(b *testing.B, newPlatform platform.Constructor) {
	e := newBenchEnv(b, newPlatform)
	as := [2]platform.AddressSpace{e.newAS(b), e.newAS(b)}
	regs := [2]platform.Registers{loopRegs(), loopRegs()}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i & 1
		ev, err := e.ctx.Switch(as[k], &regs[k], e.fpu)
		if err != nil || ev.Kind != platform.EventSyscall {
			b.Fatalf("Switch = %v, %v", ev.Kind, err)
		}
		regs[k].Rax = uint64(i)
	}
}

// BenchmarkSyscall measures the platform's system call round trip alone:
// app code that loops on `syscall`, and a Sentry that answers each with a
// new rax. Every platform's benchmark calls it, so figures compare.
func BenchmarkSyscall(b *testing.B, newPlatform platform.Constructor) {
	e := newBenchEnv(b, newPlatform)
	as := e.newAS(b)
	regs := loopRegs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev, err := e.ctx.Switch(as, &regs, e.fpu)
		if err != nil || ev.Kind != platform.EventSyscall {
			b.Fatalf("Switch = %v, %v", ev.Kind, err)
		}
		regs.Rax = uint64(i)
	}
}
