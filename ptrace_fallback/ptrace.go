// Package ptrace_fallback owns the portable platform: application code runs
// in tiny stub processes traced with PTRACE_SYSEMU, so every system call the
// app makes stops in the Sentry instead of reaching the host. One stub
// process serves one address space; memory-file ranges are mapped into it by
// system calls injected at the stub's syscall site.
package ptrace_fallback

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// Name is this platform's --platform name.
const Name = "ptrace"

func init() {
	platform.Register(Name, 10, New)
}

// Platform is the ptrace platform.
type Platform struct {
	memFD int
	logf  func(string, ...any)
	// stubFile holds the stub executable; stubs exec it through
	// /proc/self/fd.
	stubFile *os.File

	cpus    []int
	nextCPU atomic.Uint32
}

// New makes the ptrace platform, probing that this host allows ptrace by
// starting and killing one stub.
func New(opts platform.Options) (platform.Platform, error) {
	fd, err := unix.MemfdCreate("ringfence-stub", 0)
	if err != nil {
		return nil, fmt.Errorf("ptrace: creating stub memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ringfence-stub")
	if _, err := f.Write(stubELF()); err != nil {
		f.Close()
		return nil, fmt.Errorf("ptrace: writing stub: %w", err)
	}
	p := &Platform{memFD: opts.MemoryFD, logf: opts.Logf, stubFile: f}
	if p.logf == nil {
		p.logf = func(string, ...any) {}
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		for i := 0; i < 1024; i++ {
			if set.IsSet(i) {
				p.cpus = append(p.cpus, i)
			}
		}
	}
	if err := p.probe(); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

// probe starts one stub on a throwaway locked thread.
func (p *Platform) probe() error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s, err := p.spawnStub()
		if err == nil {
			s.kill()
		}
		errc <- err
	}()
	return <-errc
}

// Name implements platform.Platform.
func (p *Platform) Name() string { return Name }

// MinUserAddress implements platform.Platform (Linux's default mmap_min_addr).
func (p *Platform) MinUserAddress() uint64 { return 0x10000 }

// MaxUserAddress implements platform.Platform: the app owns everything
// below the stub.
func (p *Platform) MaxUserAddress() uint64 { return stubBase }

// NeedsLockedThread implements platform.Platform.
func (p *Platform) NeedsLockedThread() bool { return true }

// Close implements platform.Platform.
func (p *Platform) Close() error { return p.stubFile.Close() }

// NewAddressSpace implements platform.Platform. The stub process starts on
// the first Switch into the address space, from the switching thread, which
// thereby becomes its tracer.
func (p *Platform) NewAddressSpace() (platform.AddressSpace, error) {
	return &addressSpace{p: p}, nil
}

// NewContext implements platform.Platform. The caller's OS thread becomes a
// tracer; it is pinned to one CPU, which its stubs inherit, because a
// same-CPU ptrace round trip costs a few microseconds and a cross-CPU one
// (waking an idle CPU) tens of times more.
func (p *Platform) NewContext() (platform.Context, error) {
	c := &context{p: p, tid: unix.Gettid()}
	if len(p.cpus) > 1 {
		cpu := p.cpus[int(p.nextCPU.Add(1)-1)%len(p.cpus)]
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			p.logf("ptrace: pinning tracer to CPU %d: %v", cpu, err)
		}
	}
	return c, nil
}

// mapOp is a pending change to a stub's mappings.
type mapOp struct {
	addr, length uint64
	offset       int64
	at           platform.AccessType
	unmap        bool
}

// addressSpace is one app address space: one stub process. Mapping changes
// queue until the next Switch into it, when the tracer injects them; no app
// code of this address space runs in between, so the app cannot tell.
type addressSpace struct {
	p *Platform

	mu      sync.Mutex
	stub    *stub
	pending []mapOp
}

// MapFile implements platform.AddressSpace.
func (as *addressSpace) MapFile(addr uint64, offset int64, length uint64, at platform.AccessType) error {
	as.mu.Lock()
	as.pending = append(as.pending, mapOp{addr: addr, length: length, offset: offset, at: at})
	as.mu.Unlock()
	return nil
}

// Unmap implements platform.AddressSpace.
func (as *addressSpace) Unmap(addr, length uint64) {
	as.mu.Lock()
	as.pending = append(as.pending, mapOp{addr: addr, length: length, unmap: true})
	as.mu.Unlock()
}

// Release implements platform.AddressSpace.
func (as *addressSpace) Release() {
	as.mu.Lock()
	s := as.stub
	as.stub = nil
	as.pending = nil
	as.mu.Unlock()
	if s != nil {
		s.kill()
	}
}

// flush applies pending mapping changes through s, which the caller traces.
func (as *addressSpace) flush(s *stub) error {
	as.mu.Lock()
	ops := as.pending
	as.pending = nil
	as.mu.Unlock()
	for _, op := range ops {
		var err error
		if op.unmap {
			_, err = s.inject(unix.SYS_MUNMAP, op.addr, op.length, 0, 0, 0, 0)
		} else {
			_, err = s.inject(unix.SYS_MMAP, op.addr, op.length, uint64(prot(op.at)),
				unix.MAP_SHARED|unix.MAP_FIXED, 0 /* memory file */, uint64(op.offset))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func prot(at platform.AccessType) int {
	p := unix.PROT_NONE
	if at.Read {
		p |= unix.PROT_READ
	}
	if at.Write {
		p |= unix.PROT_WRITE
	}
	if at.Execute {
		p |= unix.PROT_EXEC
	}
	return p
}
