// Package vmm owns the KVM platform's machine: /dev/kvm, the VM, its memory
// slots, vCPUs and their shared run pages (sync regs), and the exits. It
// uses gokvm's kvm package for the ioctls it has and adds the rest here.
//
// Status: the building blocks and the start-up probe exist; the platform
// itself (address spaces on package pagetables, Switch on the ring0 entry
// code) is not registered yet. See docs/ARCHITECTURE.md, "KVM platform:
// what the probe found", for why the PVM-style /dev/kvm on our machines
// needs page-table updates made from inside the guest.
package vmm

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/ring0"
)

// Capabilities the platform relies on.
var required = []struct {
	cap  kvm.Capability
	name string
}{
	{kvm.Capability(3), "KVM_CAP_USER_MEMORY"},
	{kvm.Capability(74), "KVM_CAP_SYNC_REGS"},
	{kvm.Capability(136), "KVM_CAP_IMMEDIATE_EXIT"},
	{kvm.Capability(55), "KVM_CAP_XSAVE"},
	{kvm.Capability(56), "KVM_CAP_XCRS"},
}

// Sync-regs sets (kvm_valid_regs / kvm_dirty_regs bits).
const (
	SyncRegs   = 1
	SyncSregs  = 2
	SyncEvents = 4
)

// Exit reasons the platform handles.
const (
	ExitIO            = 2
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitInternalError = 17
)

// kvm_run layout (x86-64).
const (
	runImmediateExit = 1
	runExitReason    = 8
	runExitData      = 32  // the exit union
	runValidRegs     = 288 // kvm_valid_regs
	runDirtyRegs     = 296 // kvm_dirty_regs
	runSyncRegs      = 304 // struct kvm_sync_regs: regs, sregs, events
	runSyncSregs     = runSyncRegs + 144
)

// KVM is an open /dev/kvm.
type KVM struct {
	fd      int
	runSize int
}

// Open opens /dev/kvm and checks the API version and every capability the
// platform needs, naming the first one missing.
func Open() (*KVM, error) {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("kvm: /dev/kvm does not exist (no KVM on this host, or not passed to the container)")
		}
		return nil, fmt.Errorf("kvm: opening /dev/kvm: %w", err)
	}
	k := &KVM{fd: fd}
	fail := func(err error) (*KVM, error) {
		unix.Close(fd)
		return nil, err
	}
	v, err := kvm.GetAPIVersion(uintptr(fd))
	if err != nil || v != 12 {
		return fail(fmt.Errorf("kvm: API version %d (%v), want 12", v, err))
	}
	for _, c := range required {
		if r, err := kvm.CheckExtension(uintptr(fd), c.cap); err != nil || r == 0 {
			return fail(fmt.Errorf("kvm: /dev/kvm lacks %s, which the platform needs", c.name))
		}
	}
	size, err := kvm.GetVCPUMMmapSize(uintptr(fd))
	if err != nil {
		return fail(fmt.Errorf("kvm: KVM_GET_VCPU_MMAP_SIZE: %w", err))
	}
	k.runSize = int(size)
	return k, nil
}

// Close closes /dev/kvm.
func (k *KVM) Close() error { return unix.Close(k.fd) }

// VM is one virtual machine.
type VM struct {
	k     *KVM
	fd    int
	cpuid *kvm.CPUID
}

// NewVM creates a VM.
func (k *KVM) NewVM() (*VM, error) {
	fd, err := retry(func() (uintptr, error) { return kvm.CreateVM(uintptr(k.fd)) })
	if err != nil {
		return nil, fmt.Errorf("kvm: KVM_CREATE_VM: %w", err)
	}
	cpuid := &kvm.CPUID{Nent: 100, Entries: make([]kvm.CPUIDEntry2, 100)}
	if err := kvm.GetSupportedCPUID(uintptr(k.fd), cpuid); err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("kvm: KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	return &VM{k: k, fd: int(fd), cpuid: cpuid}, nil
}

// retry repeats an ioctl a signal interrupted (the Go runtime preempts
// goroutines with signals).
func retry(op func() (uintptr, error)) (uintptr, error) {
	for {
		r, err := op()
		if !errors.Is(err, unix.EINTR) {
			return r, err
		}
	}
}

// Close destroys the VM (after its vCPUs are closed).
func (vm *VM) Close() error { return unix.Close(vm.fd) }

// CPUID returns the supported CPUID entry for leaf/subleaf.
func (vm *VM) CPUID(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32, ok bool) {
	for _, e := range vm.cpuid.Entries[:vm.cpuid.Nent] {
		if e.Function == leaf && (e.Index == subleaf || e.Flags&1 == 0) {
			return e.Eax, e.Ebx, e.Ecx, e.Edx, true
		}
	}
	return 0, 0, 0, 0, false
}

// SetMemory maps host memory at guest physical phys as slot.
func (vm *VM) SetMemory(slot uint32, phys uint64, mem []byte, readOnly bool) error {
	r := &kvm.UserspaceMemoryRegion{
		Slot:          slot,
		GuestPhysAddr: phys,
		MemorySize:    uint64(len(mem)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))),
	}
	if readOnly {
		r.SetMemReadonly()
	}
	if _, err := retry(func() (uintptr, error) { return 0, kvm.SetUserMemoryRegion(uintptr(vm.fd), r) }); err != nil {
		return fmt.Errorf("kvm: memory slot %d at %#x (%d bytes): %w", slot, phys, len(mem), err)
	}
	return nil
}

// VCPU is one virtual CPU and its shared run page.
type VCPU struct {
	vm  *VM
	fd  int
	run []byte
}

// NewVCPU creates vCPU id with the VM's supported CPUID.
func (vm *VM) NewVCPU(id int) (*VCPU, error) {
	fd, err := retry(func() (uintptr, error) { return kvm.CreateVCPU(uintptr(vm.fd), id) })
	if err != nil {
		return nil, fmt.Errorf("kvm: KVM_CREATE_VCPU %d: %w", id, err)
	}
	run, err := unix.Mmap(int(fd), 0, vm.k.runSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("kvm: mapping the run page of vCPU %d: %w", id, err)
	}
	c := &VCPU{vm: vm, fd: int(fd), run: run}
	if err := kvm.SetCPUID2(uintptr(fd), vm.cpuid); err != nil {
		c.Close()
		return nil, fmt.Errorf("kvm: KVM_SET_CPUID2: %w", err)
	}
	// Ask for registers in the run page on every exit.
	c.setRun64(runValidRegs, SyncRegs|SyncSregs|SyncEvents)
	return c, nil
}

// Close frees the vCPU.
func (c *VCPU) Close() error {
	unix.Munmap(c.run)
	return unix.Close(c.fd)
}

func (c *VCPU) run64(off int) uint64 { return *(*uint64)(unsafe.Pointer(&c.run[off])) }
func (c *VCPU) setRun64(off int, v uint64) {
	*(*uint64)(unsafe.Pointer(&c.run[off])) = v
}

// Regs is the vCPU's general registers in the run page (valid after an
// exit; mark them dirty to change them).
func (c *VCPU) Regs() *kvm.Regs { return (*kvm.Regs)(unsafe.Pointer(&c.run[runSyncRegs])) }

// Sregs is the vCPU's special registers in the run page.
func (c *VCPU) Sregs() *kvm.Sregs { return (*kvm.Sregs)(unsafe.Pointer(&c.run[runSyncSregs])) }

// MarkDirty tells KVM to load the given sync-regs sets on the next run.
func (c *VCPU) MarkDirty(sets uint64) { c.setRun64(runDirtyRegs, c.run64(runDirtyRegs)|sets) }

// ExitReason is the last exit's reason.
func (c *VCPU) ExitReason() uint32 { return *(*uint32)(unsafe.Pointer(&c.run[runExitReason])) }

// IOExit describes a KVM_EXIT_IO.
func (c *VCPU) IOExit() (out bool, size uint8, port uint16) {
	d := c.run[runExitData:]
	return d[0] == 1, d[1], uint16(d[2]) | uint16(d[3])<<8
}

// FailEntryReason is the hardware reason of a KVM_EXIT_FAIL_ENTRY.
func (c *VCPU) FailEntryReason() uint64 { return c.run64(runExitData) }

// SetImmediateExit makes the next (or a racing) KVM_RUN return at once.
func (c *VCPU) SetImmediateExit(on bool) {
	v := byte(0)
	if on {
		v = 1
	}
	c.run[runImmediateExit] = v
}

// Run enters the guest until an exit. EINTR (a signal, including the Go
// runtime's preemption signal) is returned as ExitIntr with no error.
func (c *VCPU) Run() (uint32, error) {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), uintptr(0xAE80), 0)
	if e == unix.EINTR || e == unix.EAGAIN {
		return ExitIntr, nil
	}
	if e != 0 {
		return 0, fmt.Errorf("kvm: KVM_RUN: %w", e)
	}
	return c.ExitReason(), nil
}

// SetSregs and SetRegs load state with ioctls (set-up only; the run loop
// uses the run page).
func (c *VCPU) SetSregs(s *kvm.Sregs) error {
	if err := kvm.SetSregs(uintptr(c.fd), s); err != nil {
		return fmt.Errorf("kvm: KVM_SET_SREGS: %w", err)
	}
	return nil
}

// SetRegs loads the general registers with an ioctl (set-up only).
func (c *VCPU) SetRegs(r *kvm.Regs) error {
	if err := kvm.SetRegs(uintptr(c.fd), r); err != nil {
		return fmt.Errorf("kvm: KVM_SET_REGS: %w", err)
	}
	return nil
}

// GetSregs reads the special registers with an ioctl.
func (c *VCPU) GetSregs() (*kvm.Sregs, error) {
	s, err := kvm.GetSregs(uintptr(c.fd))
	if err != nil {
		return nil, fmt.Errorf("kvm: KVM_GET_SREGS: %w", err)
	}
	return s, nil
}

// SetMSRs writes model-specific registers (set-up only).
func (c *VCPU) SetMSRs(msrs map[uint32]uint64) error {
	type entry struct {
		Index, _ uint32
		Data     uint64
	}
	buf := make([]byte, 8+16*len(msrs))
	*(*uint32)(unsafe.Pointer(&buf[0])) = uint32(len(msrs))
	i := 0
	for idx, v := range msrs {
		e := (*entry)(unsafe.Pointer(&buf[8+16*i]))
		e.Index, e.Data = idx, v
		i++
	}
	n, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), 0x4008AE89, uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 || int(n) != len(msrs) {
		return fmt.Errorf("kvm: KVM_SET_MSRS set %d of %d: %v", n, len(msrs), errno)
	}
	return nil
}

// XSaveSize is the size of struct kvm_xsave.
const XSaveSize = 4096

// GetXSave reads the guest's FPU/SSE/AVX state (KVM_GET_XSAVE).
func (c *VCPU) GetXSave(buf *[XSaveSize]byte) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), 0x9000AEA4, uintptr(unsafe.Pointer(buf))); e != 0 {
		return fmt.Errorf("kvm: KVM_GET_XSAVE: %w", e)
	}
	return nil
}

// SetXSave loads the guest's FPU/SSE/AVX state (KVM_SET_XSAVE).
func (c *VCPU) SetXSave(buf *[XSaveSize]byte) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), 0x5000AEA5, uintptr(unsafe.Pointer(buf))); e != 0 {
		return fmt.Errorf("kvm: KVM_SET_XSAVE: %w", e)
	}
	return nil
}

// SetXCR0 sets the guest's XCR0 (KVM_SET_XCRS), enabling AVX and friends.
func (c *VCPU) SetXCR0(v uint64) error {
	// struct kvm_xcrs { u32 nr_xcrs, flags; struct { u32 xcr, reserved; u64 value; } xcrs[16]; u64 padding[16]; }
	var buf [8 + 16*16 + 8*16]byte
	*(*uint32)(unsafe.Pointer(&buf[0])) = 1
	*(*uint64)(unsafe.Pointer(&buf[16])) = v
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(c.fd), 0x4188AEA7, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("kvm: KVM_SET_XCRS: %w", e)
	}
	return nil
}

// userModeSetup is where a vCPU's descriptor tables and entry code live.
type userModeSetup struct {
	cr3      uint64 // page tables
	lstar    uint64 // the ring0 syscall entry
	gdt, tss uint64 // this vCPU's GDT and TSS
	idt      uint64
	osxsave  bool // enable XSAVE features (CR4.OSXSAVE)
}

// enterUserMode puts a fresh vCPU in 64-bit ring 3 with paging, the
// SYSCALL MSRs and the given descriptor tables: the state both the probe
// and the platform start app code from.
func (c *VCPU) enterUserMode(u userModeSetup) error {
	if err := c.SetMSRs(map[uint32]uint64{
		ring0.MSRLstar: u.lstar,
		ring0.MSRStar:  ring0.Star,
		ring0.MSRFmask: ring0.Fmask,
	}); err != nil {
		return err
	}
	s, err := c.GetSregs()
	if err != nil {
		return err
	}
	s.CR3 = u.cr3
	s.CR4 = 1<<5 | 1<<9 | 1<<10 // PAE, OSFXSR, OSXMMEXCPT
	if u.osxsave {
		s.CR4 |= 1 << 18
	}
	s.CR0 = 1 | 1<<1 | 1<<4 | 1<<5 | 1<<16 | 1<<31 // PE, MP, ET, NE, WP, PG
	s.EFER = 1 | 1<<8 | 1<<10 | 1<<11              // SCE, LME, LMA, NXE
	s.CS = userCS
	s.DS, s.ES, s.FS, s.GS, s.SS = userDS, userDS, userDS, userDS, userDS
	s.TR = kvm.Segment{Base: u.tss, Limit: ring0.TSSSize - 1, Selector: ring0.TSSSel, Typ: 11, Present: 1}
	s.GDT = kvm.Descriptor{Base: u.gdt, Limit: ring0.GDTEntries*8 - 1}
	s.IDT = kvm.Descriptor{Base: u.idt, Limit: ring0.NumVectors*16 - 1}
	return c.SetSregs(s)
}

// User-mode segments, with Linux's selectors.
var (
	userCS = kvm.Segment{Limit: 0xffffffff, Selector: ring0.UserCS, Typ: 11, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	userDS = kvm.Segment{Limit: 0xffffffff, Selector: ring0.UserSS, Typ: 3, Present: 1, DPL: 3, S: 1, DB: 1, G: 1}
)
