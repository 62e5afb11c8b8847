package vmm

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/pagetables"
	"github.com/ringfence/ringfence/ring0"
)

// Name is the platform's --platform name.
const Name = "kvm"

func init() {
	platform.Register(Name, 20, New)
}

// Guest physical layout. The memory file appears at guest physical
// addresses equal to its offsets, registered in slotChunk pieces as it is
// used; ring-0 pages and page-table pages sit in the top 2 GiB of the
// guest's physical address width (CPUID 0x80000008), above any offset the
// memory file may use here.
const (
	slotChunk    = 1 << 30
	ring0Size    = 1 << 20
	tablesSize   = 256 << 20
	slotRing0    = 0
	slotTables   = 1
	firstMemSlot = 2

	// Guest virtual layout of the upper half.
	kBase   = 0xffffff8000000000 // ring-0 pages
	kTables = kBase + 1<<30      // page-table pages (for in-guest updates)

	// Ring-0 region: code, IDT, then per-vCPU GDT+TSS page and stack pages.
	r0Code      = 0x0000
	r0IDT       = 0x1000
	r0VCPUs     = 0x2000
	r0PerVCPU   = 0x3000 // GDT/TSS page + 8 KiB stack
	maxVCPUs    = (ring0Size - r0VCPUs) / r0PerVCPU
	frameWords  = 7 // vector, error, rip, cs, rflags, rsp, ss
	userMaxAddr = 0x7ffffffff000
)

// Platform is the KVM platform: one VM per sandbox.
type Platform struct {
	k  *KVM
	vm *VM

	mem      []byte // host mapping of the memory file
	ring0    []byte
	tables   []byte
	alloc    *pagetables.SliceAllocator
	kernelPT *pagetables.PageTables
	ptOpts   pagetables.Options
	// shadowPaging is set where the hypervisor shadows guest page tables
	// (PVM): host-side edits of present entries then need the shadows
	// dropped (zap) before the guest runs again.
	shadowPaging bool
	// ring0Syscall is set where a ring-3 syscall enters ring 0 (hardware).
	ring0Syscall bool
	// ring0Phys and tablesPhys place the ring-0 and page-table regions;
	// memory-file offsets must stay below ring0Phys.
	ring0Phys, tablesPhys uint64
	// zapNeed: present entries changed under shadow paging; drop the
	// shadows before the next run (checked on every Switch, hence atomic).
	zapNeed atomic.Bool
	xcr0    uint64

	mu    sync.Mutex
	slots map[uint64]bool
	vcpus []*vcpu
	free  []*vcpu
	limit int

	logf func(string, ...any)
}

type exitKind int

const (
	atUser      exitKind = iota // the vCPU is in user mode (fresh, EINTR, PVM syscall)
	atSysret                    // hardware syscall exit: resume at SYSRETQ
	atException                 // exception exit: resume at ADD RSP; IRETQ
)

type vcpu struct {
	*VCPU
	id      int
	at      exitKind
	cr3     uint64
	asGen   uint64
	fs, gs  uint64
	fpOwner *platform.FPState
	// vsyscallRet is set while a vsyscall-page call is being served: the
	// return to the app pops its return address.
	vsyscallRet bool
	stackTop    uint64 // guest virtual
	stack       []byte // host view of the stack pages
	tid         atomic.Int32
	xsave       [XSaveSize]byte
}

// New makes the KVM platform. It fails with a clear error where /dev/kvm
// is missing or lacks what the platform needs.
func New(opts platform.Options) (platform.Platform, error) {
	rep, err := cachedSemantics(opts.StateDir, opts.Logf)
	if err != nil {
		return nil, err
	}
	if opts.Auto {
		if err := worthChoosing(rep); err != nil {
			return nil, err
		}
	}
	k, err := Open()
	if err != nil {
		return nil, err
	}
	vm, err := k.NewVM()
	if err != nil {
		k.Close()
		return nil, err
	}
	p := &Platform{k: k, vm: vm, slots: map[uint64]bool{}, logf: opts.Logf,
		shadowPaging: !rep.HostPTEEditsVisible, ring0Syscall: rep.SyscallInRing0, limit: runtime.NumCPU()}
	if p.logf == nil {
		p.logf = func(string, ...any) {}
	}
	if opts.NumVCPUs > 0 {
		p.limit = opts.NumVCPUs
	}
	if p.limit > maxVCPUs {
		p.limit = maxVCPUs
	}
	fail := func(err error) (platform.Platform, error) {
		p.Close()
		return nil, err
	}
	p.mem, err = unix.Mmap(opts.MemoryFD, 0, 1<<40, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		return fail(fmt.Errorf("kvm: mapping the memory file: %w", err))
	}
	physBits := uint64(36)
	if eax, _, _, _, ok := vm.CPUID(0x80000008, 0); ok && eax&0xff >= 36 {
		physBits = uint64(eax & 0xff)
	}
	p.ring0Phys = 1<<physBits - 2<<30
	p.tablesPhys = p.ring0Phys + 1<<30
	if p.ring0, err = anon(ring0Size); err != nil {
		return fail(err)
	}
	if p.tables, err = anon(tablesSize); err != nil {
		return fail(err)
	}
	if err := vm.SetMemory(slotRing0, p.ring0Phys, p.ring0, false); err != nil {
		return fail(err)
	}
	if err := vm.SetMemory(slotTables, p.tablesPhys, p.tables, false); err != nil {
		return fail(err)
	}
	if p.alloc, err = pagetables.NewSliceAllocator(p.tablesPhys, p.tables); err != nil {
		return fail(err)
	}
	p.ptOpts = pagetables.Options{LargePages: true}
	if p.kernelPT, err = pagetables.New(p.alloc, p.ptOpts); err != nil {
		return fail(err)
	}
	if err := p.buildKernelHalf(); err != nil {
		return fail(err)
	}
	if eax, _, _, _, ok := vm.CPUID(0xd, 0); ok {
		p.xcr0 = uint64(eax) & 0x2ff // x87, SSE, AVX, AVX-512, PKRU (no MPX)
	}
	p.logf("kvm: %v", rep)
	return p, nil
}

func anon(size int) ([]byte, error) {
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("kvm: allocating %d bytes of guest memory: %w", size, err)
	}
	return m, nil
}

// buildKernelHalf writes the ring-0 code and tables and maps them, with the
// page-table pages, in the kernel template's upper half.
func (p *Platform) buildKernelHalf() error {
	copy(p.ring0[r0Code:], ring0.Code())
	idt := ring0.IDT(kBase + r0Code)
	copy(p.ring0[r0IDT:], idt[:])
	if err := p.kernelPT.PrepareUpperHalf(kBase, 1<<31); err != nil {
		return err
	}
	maps := []struct {
		virt, phys, size uint64
		perms            pagetables.Perms
	}{
		// The entry page runs at CPL 3 on PVM, so it is user-executable;
		// it holds nothing secret.
		{kBase + r0Code, p.ring0Phys + r0Code, 0x1000, pagetables.Read | pagetables.Execute | pagetables.User},
		{kBase + r0IDT, p.ring0Phys + r0IDT, ring0Size - r0IDT, pagetables.Read | pagetables.Write},
		{kTables, p.tablesPhys, tablesSize, pagetables.Read | pagetables.Write},
	}
	for _, m := range maps {
		if _, err := p.kernelPT.Map(m.virt, m.phys, m.size, m.perms); err != nil {
			return err
		}
	}
	return nil
}

// Name implements platform.Platform.
func (p *Platform) Name() string { return Name }

// MinUserAddress implements platform.Platform.
func (p *Platform) MinUserAddress() uint64 { return 0x10000 }

// MaxUserAddress implements platform.Platform: the whole lower half, as on
// Linux.
func (p *Platform) MaxUserAddress() uint64 { return userMaxAddr }

// NeedsLockedThread implements platform.Platform: Interrupt signals the
// thread in KVM_RUN.
func (p *Platform) NeedsLockedThread() bool { return true }

// Close implements platform.Platform.
func (p *Platform) Close() error {
	for _, v := range p.vcpus {
		v.Close()
	}
	if p.vm != nil {
		p.vm.Close()
	}
	if p.k != nil {
		p.k.Close()
	}
	for _, m := range [][]byte{p.mem, p.ring0, p.tables} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	return nil
}

// ensureSlots registers the memory file's chunks covering [off, off+n).
func (p *Platform) ensureSlots(off, n uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := off / slotChunk; c <= (off+n-1)/slotChunk; c++ {
		if p.slots[c] {
			continue
		}
		if (c+1)*slotChunk > p.ring0Phys || (c+1)*slotChunk > uint64(len(p.mem)) {
			return fmt.Errorf("kvm: memory file offset %#x beyond this guest's physical address space (%#x)", off, p.ring0Phys)
		}
		if err := p.vm.SetMemory(uint32(firstMemSlot+c), c*slotChunk, p.mem[c*slotChunk:(c+1)*slotChunk], false); err != nil {
			return err
		}
		p.slots[c] = true
	}
	return nil
}

// zapShadows makes a shadowing hypervisor drop every shadow page table by
// deleting and re-adding the page-table slot: it has no other way to learn
// of entries the host rewrote.
func (p *Platform) zapShadows() error {
	del := &kvm.UserspaceMemoryRegion{Slot: slotTables, GuestPhysAddr: p.tablesPhys, UserspaceAddr: uint64(uintptr(unsafe.Pointer(&p.tables[0])))}
	if err := kvm.SetUserMemoryRegion(uintptr(p.vm.fd), del); err != nil {
		return fmt.Errorf("kvm: dropping shadow page tables: %w", err)
	}
	return p.vm.SetMemory(slotTables, p.tablesPhys, p.tables, false)
}

// addressSpace is one app address space: guest page tables sharing the
// kernel template's upper half.
type addressSpace struct {
	p   *Platform
	mu  sync.Mutex
	pt  *pagetables.PageTables
	gen uint64 // bumped when present entries change: vCPUs must flush
}

// NewAddressSpace implements platform.Platform.
func (p *Platform) NewAddressSpace() (platform.AddressSpace, error) {
	pt, err := pagetables.NewWithKernelHalf(p.alloc, p.ptOpts, p.kernelPT)
	if err != nil {
		return nil, fmt.Errorf("kvm: new address space: %w", err)
	}
	return &addressSpace{p: p, pt: pt, gen: 1}, nil
}

func perms(at platform.AccessType) pagetables.Perms {
	pp := pagetables.Read | pagetables.User
	if at.Write {
		pp |= pagetables.Write
	}
	if at.Execute {
		pp |= pagetables.Execute
	}
	return pp
}

func (as *addressSpace) changed(flush bool) {
	if !flush {
		return
	}
	as.gen++
	if as.p.shadowPaging {
		as.p.zapNeed.Store(true)
	}
}

// MapFile implements platform.AddressSpace.
func (as *addressSpace) MapFile(addr uint64, offset int64, length uint64, at platform.AccessType) error {
	if !at.Any() {
		as.Unmap(addr, length)
		return nil
	}
	if err := as.p.ensureSlots(uint64(offset), length); err != nil {
		return err
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	flush, err := as.pt.Map(addr, uint64(offset), length, perms(at))
	as.changed(flush)
	return err
}

// Unmap implements platform.AddressSpace.
func (as *addressSpace) Unmap(addr, length uint64) {
	as.mu.Lock()
	defer as.mu.Unlock()
	flush, err := as.pt.Unmap(addr, length)
	if err != nil {
		as.p.logf("kvm: unmap %#x+%#x: %v", addr, length, err)
	}
	as.changed(flush)
}

// Release implements platform.AddressSpace.
func (as *addressSpace) Release() {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.pt != nil {
		as.pt.Release()
		as.pt = nil
		as.changed(true)
	}
}

// NewContext implements platform.Platform.
func (p *Platform) NewContext() (platform.Context, error) {
	return &context{p: p}, nil
}

// acquire takes a vCPU, preferring last, creating one while under the limit.
func (p *Platform) acquire(last *vcpu) (*vcpu, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, v := range p.free {
		if v == last {
			p.free = append(p.free[:i], p.free[i+1:]...)
			return v, nil
		}
	}
	if n := len(p.free); n > 0 {
		v := p.free[n-1]
		p.free = p.free[:n-1]
		return v, nil
	}
	if len(p.vcpus) >= p.limit {
		return nil, fmt.Errorf("kvm: all %d vCPUs busy", p.limit)
	}
	v, err := p.newVCPU(len(p.vcpus))
	if err != nil {
		return nil, err
	}
	p.vcpus = append(p.vcpus, v)
	return v, nil
}

func (p *Platform) release(v *vcpu) {
	p.mu.Lock()
	p.free = append(p.free, v)
	p.mu.Unlock()
}

// newVCPU creates vCPU id in user mode with its own GDT, TSS and stack.
func (p *Platform) newVCPU(id int) (*vcpu, error) {
	c, err := p.vm.NewVCPU(id)
	if err != nil {
		return nil, err
	}
	area := uint64(r0VCPUs + id*r0PerVCPU)
	tssAddr := kBase + area + 0x800
	gdt := ring0.GDT(tssAddr)
	for i, d := range gdt {
		binary.LittleEndian.PutUint64(p.ring0[area+uint64(8*i):], d)
	}
	v := &vcpu{VCPU: c, id: id, stackTop: kBase + area + r0PerVCPU, stack: p.ring0[area+0x1000 : area+r0PerVCPU]}
	tss := ring0.TSS(v.stackTop)
	copy(p.ring0[area+0x800:], tss[:])
	if err := c.enterUserMode(userModeSetup{
		cr3: p.kernelPT.CR3(), lstar: kBase + r0Code + ring0.SyscallEntry,
		gdt: kBase + area, tss: tssAddr, idt: kBase + r0IDT, osxsave: p.xcr0 != 0,
	}); err != nil {
		c.Close()
		return nil, err
	}
	if p.xcr0 != 0 {
		if err := c.SetXCR0(p.xcr0); err != nil {
			c.Close()
			return nil, err
		}
	}
	v.cr3 = p.kernelPT.CR3()
	v.at = atUser
	// Prime the run page's sync registers.
	c.SetImmediateExit(true)
	c.Run()
	c.SetImmediateExit(false)
	return v, nil
}

// context runs app threads on vCPUs it borrows for each Switch.
type context struct {
	p         *Platform
	last      *vcpu
	interrupt atomic.Bool
	running   atomic.Pointer[vcpu]
	tid       int32
	// vsyscallRet: the last event was a vsyscall-page call (see popReturn).
	vsyscallRet bool
}

// Interrupt implements platform.Context.
func (c *context) Interrupt() {
	c.interrupt.Store(true)
	if v := c.running.Load(); v != nil {
		v.SetImmediateExit(true)
		if tid := v.tid.Load(); tid != 0 {
			unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
		}
	}
}

// Release implements platform.Context.
func (c *context) Release() {}

// Switch implements platform.Context.
func (c *context) Switch(asI platform.AddressSpace, regs *platform.Registers, fpu *platform.FPState) (platform.Event, error) {
	as := asI.(*addressSpace)
	p := c.p
	v, err := p.acquire(c.last)
	if err != nil {
		return platform.Event{}, err
	}
	defer p.release(v)
	c.last = v
	if c.tid == 0 {
		c.tid = int32(unix.Gettid()) // the task's locked thread, for Interrupt
	}
	v.tid.Store(c.tid)

	if p.zapNeed.Load() && p.zapNeed.Swap(false) {
		if err := p.zapShadows(); err != nil {
			return platform.Event{}, err
		}
	}
	as.mu.Lock()
	if as.pt == nil {
		as.mu.Unlock()
		return platform.Event{}, platform.ErrContextKilled
	}
	cr3, gen := as.pt.CR3(), as.gen
	as.mu.Unlock()
	if v.cr3 != cr3 || v.asGen != gen {
		v.Sregs().CR3 = cr3
		v.cr3, v.asGen = cr3, gen
		v.MarkDirty(SyncSregs)
	}
	if regs.FsBase != v.fs || regs.GsBase != v.gs {
		s := v.Sregs()
		s.FS.Base, s.GS.Base = regs.FsBase, regs.GsBase
		v.fs, v.gs = regs.FsBase, regs.GsBase
		v.MarkDirty(SyncSregs)
	}
	if err := p.loadFP(v, fpu); err != nil {
		return platform.Event{}, err
	}
	if c.vsyscallRet {
		c.vsyscallRet = false
		if regs.Rip >= vsyscallBase && !p.popReturn(as, regs) {
			return platform.Event{Kind: platform.EventSignal, Signal: platform.SignalInfo{Signo: int32(unix.SIGSEGV), Code: siKernel}}, nil
		}
	}
	v.loadUser(regs)

	c.running.Store(v)
	defer c.running.Store(nil)
	for {
		if c.interrupt.Load() {
			v.SetImmediateExit(true)
		}
		reason, err := v.Run()
		if err != nil {
			return platform.Event{}, err
		}
		if reason == ExitIntr {
			v.SetImmediateExit(false)
			if !c.interrupt.Load() {
				continue // the Go runtime's own signal
			}
			if v.Sregs().CS.DPL != 3 {
				// Between a ring-0 entry's instructions: finish them and
				// interrupt again shortly.
				time.AfterFunc(20*time.Microsecond, c.Interrupt)
				continue
			}
			c.interrupt.Store(false)
			v.at = atUser
			v.storeUser(regs)
			return platform.Event{Kind: platform.EventInterrupted}, nil
		}
		ev, done, err := p.decode(v, reason, regs)
		if err != nil || done {
			c.vsyscallRet, v.vsyscallRet = v.vsyscallRet, false
			return ev, err
		}
	}
}

// decode turns an exit into an event; done is false for exits the
// platform absorbs.
func (p *Platform) decode(v *vcpu, reason uint32, regs *platform.Registers) (platform.Event, bool, error) {
	r := v.Regs()
	switch reason {
	case ExitIO:
		_, _, port := v.IOExit()
		user := v.Sregs().CS.DPL == 3
		switch {
		case port == ring0.PortSyscall && (r.RIP == kBase+r0Code+ring0.SyscallEntry || r.RIP == kBase+r0Code+ring0.SyscallResume):
			// (Some hypervisors report RIP at the OUT, some past it; KVM
			// finishes the OUT on re-entry unless the host moved RIP.)
			if user {
				v.at = atUser
			} else {
				v.at = atSysret
			}
			v.storeUser(regs)
			regs.Rip, regs.Eflags = r.RCX, r.R11
			regs.OrigRax, regs.Rax = r.RAX, negENOSYS
			return platform.Event{Kind: platform.EventSyscall}, true, nil
		case port == ring0.PortException && !user:
			return p.decodeException(v, regs)
		case user:
			// The app executed an I/O instruction the TSS let through
			// from elsewhere: a #GP, as on Linux.
			v.at = atUser
			v.storeUser(regs)
			return platform.Event{Kind: platform.EventSignal, Signal: platform.SignalInfo{Signo: int32(unix.SIGSEGV), Code: siKernel}}, true, nil
		}
		return platform.Event{}, true, fmt.Errorf("kvm: unexpected I/O exit on port %#x at %#x: %w", port, r.RIP, platform.ErrContextKilled)
	case ExitMMIO:
		// A page-table walk raced a shadow zap: run again.
		return platform.Event{}, false, nil
	case ExitFailEntry:
		return platform.Event{}, true, fmt.Errorf("kvm: entry failed (hardware reason %#x): %w", v.FailEntryReason(), platform.ErrContextKilled)
	}
	return platform.Event{}, true, fmt.Errorf("kvm: unexpected exit %d at rip %#x: %w", reason, r.RIP, platform.ErrContextKilled)
}

const siKernel = 0x80

// frame reads the exception frame on the vCPU's ring-0 stack.
func (v *vcpu) frame() []uint64 {
	off := v.Regs().RSP - (v.stackTop - uint64(len(v.stack)))
	if off+frameWords*8 > uint64(len(v.stack)) {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&v.stack[off])), frameWords)
}

func (p *Platform) decodeException(v *vcpu, regs *platform.Registers) (platform.Event, bool, error) {
	f := v.frame()
	if f == nil {
		return platform.Event{}, true, fmt.Errorf("kvm: exception exit with a bad ring-0 stack: %w", platform.ErrContextKilled)
	}
	vector, code, rip, cs := f[0], f[1], f[2], f[3]
	if cs&3 != 3 {
		return platform.Event{}, true, fmt.Errorf("kvm: exception %d in ring 0 at %#x (error %#x): %w", vector, rip, code, platform.ErrContextKilled)
	}
	v.at = atException
	v.storeUser(regs)
	regs.Rip, regs.Cs, regs.Eflags, regs.Rsp, regs.Ss = f[2], f[3], f[4], f[5], f[6]
	regs.OrigRax = ^uint64(0)
	sig := func(signo unix.Signal, code int32, addr uint64) (platform.Event, bool, error) {
		return platform.Event{Kind: platform.EventSignal, Signal: platform.SignalInfo{Signo: int32(signo), Code: code, Addr: addr}}, true, nil
	}
	switch vector {
	case 14:
		addr := v.Sregs().CR2
		if nr, ok := vsyscallNumber(addr, rip, code); ok {
			// A legacy vsyscall-page call: serve it as the system call it
			// stands for; loadUser then emulates the RET.
			regs.OrigRax, regs.Rax = nr, negENOSYS
			v.vsyscallRet = true
			return platform.Event{Kind: platform.EventSyscall}, true, nil
		}
		at := platform.Read
		if code&2 != 0 {
			at = platform.AccessType{Write: true}
		}
		if code&16 != 0 {
			at = platform.AccessType{Execute: true}
		}
		segv := int32(1) // SEGV_MAPERR
		if code&1 != 0 {
			segv = 2 // SEGV_ACCERR
		}
		return platform.Event{Kind: platform.EventFault, FaultAddr: addr, FaultAccess: at,
			Signal: platform.SignalInfo{Signo: int32(unix.SIGSEGV), Code: segv, Addr: addr}}, true, nil
	case 0:
		return sig(unix.SIGFPE, 1, rip) // FPE_INTDIV
	case 1:
		return sig(unix.SIGTRAP, 2, rip) // TRAP_TRACE
	case 3:
		return sig(unix.SIGTRAP, siKernel, 0)
	case 4:
		return sig(unix.SIGSEGV, siKernel, 0)
	case 5:
		return sig(unix.SIGSEGV, siKernel, 0)
	case 6:
		return sig(unix.SIGILL, 2, rip) // ILL_ILLOPN
	case 16, 19:
		return sig(unix.SIGFPE, 0, rip)
	case 17:
		return sig(unix.SIGBUS, 1, 0) // BUS_ADRALN
	case 12:
		return sig(unix.SIGBUS, siKernel, 0)
	case 13:
		return sig(unix.SIGSEGV, siKernel, 0)
	}
	return platform.Event{}, true, fmt.Errorf("kvm: exception %d from the app at %#x: %w", vector, rip, platform.ErrContextKilled)
}

// storeUser copies the general registers of the run page into regs.
func (v *vcpu) storeUser(regs *platform.Registers) {
	r := v.Regs()
	regs.Rax, regs.Rbx, regs.Rcx, regs.Rdx = r.RAX, r.RBX, r.RCX, r.RDX
	regs.Rsi, regs.Rdi, regs.Rsp, regs.Rbp = r.RSI, r.RDI, r.RSP, r.RBP
	regs.R8, regs.R9, regs.R10, regs.R11 = r.R8, r.R9, r.R10, r.R11
	regs.R12, regs.R13, regs.R14, regs.R15 = r.R12, r.R13, r.R14, r.R15
	regs.Rip, regs.Eflags = r.RIP, r.RFLAGS
	regs.Cs, regs.Ss = ring0.UserCS, ring0.UserSS
	regs.FsBase, regs.GsBase = v.fs, v.gs
}

// The legacy vsyscall page and the calls at its 1 KiB slots.
const vsyscallBase = 0xffffffffff600000

var vsyscallCalls = [3]uint64{unix.SYS_GETTIMEOFDAY, unix.SYS_TIME, unix.SYS_GETCPU}

// vsyscallNumber recognises an instruction fetch of a vsyscall entry.
func vsyscallNumber(addr, rip, code uint64) (uint64, bool) {
	slot := (addr - vsyscallBase) >> 10
	if addr&^0xfff != vsyscallBase || addr&0x3ff != 0 || slot >= 3 || rip != addr || code&16 == 0 {
		return 0, false
	}
	return vsyscallCalls[slot], true
}

// popReturn emulates RET for a served vsyscall: RIP from the app's stack.
func (p *Platform) popReturn(as *addressSpace, regs *platform.Registers) bool {
	as.mu.Lock()
	phys, _, _, ok := as.pt.Lookup(regs.Rsp)
	as.mu.Unlock()
	if !ok || regs.Rsp%8 != 0 || phys+8 > uint64(len(p.mem)) {
		return false
	}
	regs.Rip = binary.LittleEndian.Uint64(p.mem[phys:])
	regs.Rsp += 8
	return true
}

// loadUser arranges for the next run to continue the app with regs, by
// the path back to user mode that matches where the vCPU stopped.
func (v *vcpu) loadUser(regs *platform.Registers) {
	r := v.Regs()
	rsp := r.RSP
	r.RAX, r.RBX, r.RCX, r.RDX = regs.Rax, regs.Rbx, regs.Rcx, regs.Rdx
	r.RSI, r.RDI, r.RSP, r.RBP = regs.Rsi, regs.Rdi, regs.Rsp, regs.Rbp
	r.R8, r.R9, r.R10, r.R11 = regs.R8, regs.R9, regs.R10, regs.R11
	r.R12, r.R13, r.R14, r.R15 = regs.R12, regs.R13, regs.R14, regs.R15
	flags := regs.Eflags&0x3f7fd5 | 0x202 // user-settable flags, IF and bit 1
	switch v.at {
	case atUser:
		r.RIP, r.RFLAGS = regs.Rip, flags
	case atSysret:
		if regs.Rcx == regs.Rip && regs.R11 == flags && regs.Rip < userMaxAddr {
			break // SYSRETQ restores RIP from RCX and RFLAGS from R11
		}
		// Otherwise return through a frame with IRETQ.
		top := v.stackTop - frameWords*8
		v.writeFrame(top, regs.Rip, flags, regs.Rsp)
		r.RSP, r.RIP = top, kBase+r0Code+ring0.IretEntry
	case atException:
		// Back through ADD RSP, 16; IRETQ with the frame rewritten.
		v.writeFrame(rsp+16, regs.Rip, flags, regs.Rsp)
		r.RSP = rsp
	}
	v.at = atUser
	v.MarkDirty(SyncRegs)
}

// writeFrame writes an iret frame (rip, cs, rflags, rsp, ss) at guest
// stack address at.
func (v *vcpu) writeFrame(at, rip, flags, rsp uint64) {
	off := at - (v.stackTop - uint64(len(v.stack)))
	f := unsafe.Slice((*uint64)(unsafe.Pointer(&v.stack[off])), 5)
	f[0], f[1], f[2], f[3], f[4] = rip, ring0.UserCS, flags, rsp, ring0.UserSS
}

// loadFP makes fpu live in v, saving whatever state v held for another
// task first.
func (p *Platform) loadFP(v *vcpu, fpu *platform.FPState) error {
	if fpu.Live() == v {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if o := v.fpOwner; o != nil {
		if err := v.GetXSave(&v.xsave); err != nil {
			return err
		}
		copy(o.Data, v.xsave[:])
		o.SetLive(nil)
		v.fpOwner = nil
	}
	if w, ok := fpu.Live().(*vcpu); ok && w != nil {
		if err := w.GetXSave(&w.xsave); err != nil {
			return err
		}
		copy(fpu.Data, w.xsave[:])
		w.fpOwner = nil
		fpu.SetLive(nil)
	}
	n := copy(v.xsave[:], fpu.Data)
	clear(v.xsave[n:])
	if err := v.SetXSave(&v.xsave); err != nil {
		return err
	}
	fpu.SetLive(v)
	v.fpOwner = fpu
	return nil
}

// SaveFPState implements platform.Context.
func (c *context) SaveFPState(fpu *platform.FPState) error {
	w, ok := fpu.Live().(*vcpu)
	if !ok || w == nil {
		return nil
	}
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if err := w.GetXSave(&w.xsave); err != nil {
		return err
	}
	copy(fpu.Data, w.xsave[:])
	w.fpOwner = nil
	fpu.SetLive(nil)
	return nil
}

// autoMaxRoundTrip is the syscall round trip above which --platform=auto
// prefers ptrace (a same-CPU SYSEMU round trip costs a few µs).
const autoMaxRoundTrip = 4 * time.Microsecond

// worthChoosing decides for --platform=auto: hardware semantics and exits
// cheaper than ptrace's round trip.
func worthChoosing(rep Report) error {
	if !rep.SyscallInRing0 {
		return fmt.Errorf("kvm: not chosen by --platform=auto: this /dev/kvm has PVM semantics, where every app syscall costs two emulated ring transitions (~100-200 µs, against ~5 µs on ptrace); --platform=kvm forces it")
	}
	timed, err := probe(50)
	if err != nil {
		return err
	}
	if timed.SyscallRoundTrip > autoMaxRoundTrip {
		return fmt.Errorf("kvm: not chosen by --platform=auto: a syscall round trip costs %v here (limit %v); --platform=kvm forces it",
			timed.SyscallRoundTrip, autoMaxRoundTrip)
	}
	return nil
}

// probeSemantics learns what /dev/kvm does with a syscall and with host
// page-table edits, quickly (no timing loops).
func probeSemantics() (Report, error) {
	return probe(0)
}

// negENOSYS is what rax holds at a syscall stop, as on Linux.
var negENOSYS = ^uint64(unix.ENOSYS) + 1
