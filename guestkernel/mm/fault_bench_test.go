package mm

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/ptrace_fallback"
	"github.com/ringfence/ringfence/vmm"
)

// BenchmarkFileFault measures first touches of a file mapping on the real
// platforms, for several fault-around sizes: app code reads one byte of
// each page of a 4 MiB shared mapping, and ns/page is the cost per page,
// faults (and the munmap) included. far=1 lets a read fault install the
// whole contiguous run the Mappable returns (faultFar). "contiguous" is a file whose pages are one run of the
// memory file (tmpfs-like), "scattered" one whose every page is separate
// (a page cache's worst case: one MapFile per page). It needs root (the
// platforms); it skips a platform that cannot run here.
func BenchmarkFileFault(b *testing.B) {
	for _, p := range []struct {
		name string
		new  platform.Constructor
	}{{"ptrace", ptrace_fallback.New}, {"kvm", vmm.New}} {
		b.Run(p.name, func(b *testing.B) {
			for _, layout := range []string{"contiguous", "scattered"} {
				for _, around := range []uint64{PageSize, 64 << 10, 1 << 20} {
					for _, far := range []bool{false, true} {
						name := layout + "/around=" + strconv.FormatUint(around>>10, 10) + "K/far=" + strconv.FormatBool(far)
						b.Run(name, func(b *testing.B) {
							benchFileFault(b, p.new, layout == "contiguous", around, far)
						})
					}
				}
			}
		})
	}
}

func benchFileFault(b *testing.B, newPlatform platform.Constructor, contiguous bool, around uint64, far bool) {
	runtime.LockOSThread()
	defer func(old uint64, oldFar bool) { faultAround, faultFar = old, oldFar }(faultAround, faultFar)
	faultAround, faultFar = around, far
	mf, err := memfile.New(1 << 30)
	if err != nil {
		b.Fatal(err)
	}
	defer mf.Close()
	p, err := newPlatform(platform.Options{MemoryFD: mf.FD()})
	if err != nil {
		b.Skipf("platform unavailable: %v", err)
	}
	defer p.Close()
	as, err := p.NewAddressSpace()
	if err != nil {
		b.Fatal(err)
	}
	ctx, err := p.NewContext()
	if err != nil {
		b.Fatal(err)
	}
	defer ctx.Release()
	fpu := platform.NewFPState()
	m := New(mf, as, p.MinUserAddress(), p.MaxUserAddress())
	defer m.Release()
	m.SetMmapBase(p.MaxUserAddress() - 1<<32)

	// loop: mov al,[rbx]; add rbx,4096; cmp rbx,rcx; jb loop; mov eax,39; syscall
	code := []byte{0x8a, 0x03, 0x48, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00, 0x48, 0x39, 0xcb, 0x72, 0xf2,
		0xb8, 0x27, 0, 0, 0, 0x0f, 0x05}
	codeAddr, err := m.MMap(MMapOpts{Length: PageSize, Perms: platform.ReadExec})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.WriteForce(codeAddr, code); err != nil {
		b.Fatal(err)
	}
	const size = 4 << 20
	f := newFakeFile(b, mf, size, contiguous)
	faults := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, err := m.MMap(MMapOpts{Length: size, Perms: platform.Read, Shared: true, Mappable: f, MaxPerms: platform.Read})
		if err != nil {
			b.Fatal(err)
		}
		regs := platform.Registers{Rip: codeAddr, Rbx: a, Rcx: a + size, Cs: platform.UserCS, Ss: platform.UserSS, Eflags: platform.EflagsInit}
		for done := false; !done; {
			ev, err := ctx.Switch(as, &regs, fpu)
			if err != nil {
				b.Fatal(err)
			}
			switch ev.Kind {
			case platform.EventSyscall:
				done = true
			case platform.EventFault:
				faults++
				if err := m.HandleFault(ev.FaultAddr, ev.FaultAccess); err != nil {
					b.Fatalf("fault at %#x: %v", ev.FaultAddr, err)
				}
			case platform.EventInterrupted:
			default:
				b.Fatalf("unexpected %v (%+v)", ev.Kind, ev)
			}
		}
		if err := m.MUnmap(a, size); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(size/PageSize), "ns/page")
	b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
}
