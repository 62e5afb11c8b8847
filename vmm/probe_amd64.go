package vmm

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/ring0"
)

// Report is what the start-up probe found out about this /dev/kvm.
type Report struct {
	// SyscallInRing0 is true where a ring-3 `syscall` enters LSTAR in ring
	// 0, as on VT-x/SVM; false on PVM-style hypervisors, where it stays at
	// CPL 3.
	SyscallInRing0 bool
	// SyscallRoundTrip is the floor of the platform's syscall path: app
	// `syscall`, one exit, the host resumes the app.
	SyscallRoundTrip time.Duration
	// ExceptionRoundTrip is the same for an exception taken through the
	// IDT (ud2), its exit, and iretq back.
	ExceptionRoundTrip time.Duration
	// HostPTEEditsVisible is true where page-table entries the host writes
	// into guest memory take effect after a CR3 reload (hardware paging);
	// false where the hypervisor shadows the guest's page tables and never
	// sees host-side writes (PVM), so edits must be made by the guest.
	HostPTEEditsVisible bool
}

func (r Report) String() string {
	sem := "hardware semantics (syscall enters ring 0)"
	if !r.SyscallInRing0 {
		sem = "PVM semantics (syscall stays at CPL 3)"
	}
	pte := "host page-table edits visible"
	if !r.HostPTEEditsVisible {
		pte = "host page-table edits invisible (shadow paging)"
	}
	if r.SyscallRoundTrip == 0 {
		return sem + "; " + pte // the quick probe times nothing
	}
	return fmt.Sprintf("%s; syscall round trip %v, exception round trip %v; %s",
		sem, r.SyscallRoundTrip.Round(100*time.Nanosecond), r.ExceptionRoundTrip.Round(100*time.Nanosecond), pte)
}

// Probe guest layout (guest physical = offset in mem).
const (
	probeMemSize = 4 << 20
	pCode        = 0x0000 // ring0 code, upper half
	pIDT         = 0x1000
	pGDT         = 0x2000 // GDT, TSS at +0x800
	pStack       = 0x3000 // ring-0 stack page
	pTables      = 0x10000
	pUserCode    = 0x100000
	pDataA       = 0x101000
	pDataB       = 0x102000

	vUserCode = 0x400000
	vData     = 0x600000

	valueA = 0xaaaa
	valueB = 0xbbbb
)

// User code of the probe guest.
var probeCode = []byte{
	// 0x00: syscall loop
	0x0f, 0x05, 0xeb, 0xfc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
	// 0x10: ud2 (the exception entry returns to it: a loop)
	0x0f, 0x0b, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
	// 0x20: mov rax, [vData]; syscall; jmp 0x20
	0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x60, 0x00, 0x0f, 0x05, 0xeb, 0xf4,
}

// Probe builds a minimal guest from the ring0 entry code and measures the
// paths the platform would use. It takes well under a second on hardware
// and about a second on PVM.
func Probe() (Report, error) { return probe(500) }

// probe runs the probe guest, timing n round trips of each path.
func probe(n int) (Report, error) {
	var rep Report
	k, err := Open()
	if err != nil {
		return rep, err
	}
	defer k.Close()
	vm, err := k.NewVM()
	if err != nil {
		return rep, err
	}
	defer vm.Close()
	mem, err := unix.Mmap(-1, 0, probeMemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return rep, err
	}
	defer unix.Munmap(mem)
	if err := vm.SetMemory(0, 0, mem, false); err != nil {
		return rep, err
	}
	le := binary.LittleEndian
	copy(mem[pCode:], ring0.Code())
	idt := ring0.IDT(kBase + pCode)
	copy(mem[pIDT:], idt[:])
	gdt := ring0.GDT(kBase + pGDT + 0x800)
	for i, d := range gdt {
		le.PutUint64(mem[pGDT+8*i:], d)
	}
	tss := ring0.TSS(kBase + pStack + 0x1000)
	copy(mem[pGDT+0x800:], tss[:])
	copy(mem[pUserCode:], probeCode)
	le.PutUint64(mem[pDataA:], valueA)
	le.PutUint64(mem[pDataB:], valueB)

	// Page tables by hand: 4 KiB pages only.
	const (
		pml4, pdptLo, pdLo, ptCode, ptData, pdptHi, pdHi, ptHi = pTables, pTables + 0x1000, pTables + 0x2000,
			pTables + 0x3000, pTables + 0x4000, pTables + 0x5000, pTables + 0x6000, pTables + 0x7000
		table   = 7 // P|RW|US: leaves decide
		present = 1
		rw      = 2
		user    = 4
		nx      = 1 << 63
	)
	set := func(t, i int, v uint64) { le.PutUint64(mem[t+8*i:], v) }
	set(pml4, 0, pdptLo|table)
	set(pml4, 511, pdptHi|table)
	set(pdptLo, 0, pdLo|table)
	set(pdLo, vUserCode>>21, ptCode|table)
	set(pdLo, vData>>21, ptData|table)
	set(ptCode, 0, pUserCode|present|user)
	set(ptData, 0, pDataA|present|rw|user|nx)
	set(pdptHi, 0, pdHi|table)
	set(pdHi, 0, ptHi|table)
	set(ptHi, 0, pCode|present|user) // LSTAR runs at CPL 3 on PVM
	set(ptHi, 1, pIDT|present|nx)
	set(ptHi, 2, pGDT|present|rw|nx)
	set(ptHi, 3, pStack|present|rw|nx)

	c, err := vm.NewVCPU(0)
	if err != nil {
		return rep, err
	}
	defer c.Close()
	if err := c.enterUserMode(userModeSetup{
		cr3: pml4, lstar: kBase + pCode + ring0.SyscallEntry,
		gdt: kBase + pGDT, tss: kBase + pGDT + 0x800, idt: kBase + pIDT,
	}); err != nil {
		return rep, err
	}
	if err := c.SetRegs(&kvm.Regs{RIP: vUserCode, RFLAGS: 0x202, RSP: 0x800000}); err != nil {
		return rep, err
	}

	// next runs the vCPU to the next exit that is not a signal.
	next := func() (uint32, error) {
		for {
			reason, err := c.Run()
			if err != nil || reason != ExitIntr {
				return reason, err
			}
		}
	}
	// resumeSyscall returns from a syscall exit to user mode.
	resumeSyscall := func() {
		if c.Sregs().CS.DPL == 0 {
			return // hardware: the entry code's SYSRETQ does it
		}
		r := c.Regs()
		r.RIP, r.RFLAGS = r.RCX, r.R11
		c.MarkDirty(SyncRegs)
	}
	expectPort := func(reason uint32, port uint16) error {
		if reason != ExitIO {
			return fmt.Errorf("kvm probe: exit %d at rip %#x, want an I/O exit on port %#x", reason, c.Regs().RIP, port)
		}
		if _, _, p := c.IOExit(); p != port {
			if p == ring0.PortException {
				f := c.Regs().RSP - kBase - pStack
				if f <= 0x1000-56 {
					return fmt.Errorf("kvm probe: unexpected exception %d (error %#x) at rip %#x, cr2 %#x",
						le.Uint64(mem[pStack+f:]), le.Uint64(mem[pStack+f+8:]), le.Uint64(mem[pStack+f+16:]), c.Sregs().CR2)
				}
			}
			return fmt.Errorf("kvm probe: I/O exit on port %#x at rip %#x, want %#x", p, c.Regs().RIP, port)
		}
		return nil
	}

	// Syscall semantics and round trip.
	reason, err := next()
	if err != nil {
		return rep, err
	}
	if err := expectPort(reason, ring0.PortSyscall); err != nil {
		return rep, err
	}
	rep.SyscallInRing0 = c.Sregs().CS.DPL == 0
	start := time.Now()
	for i := 0; i < n; i++ {
		resumeSyscall()
		if reason, err = next(); err != nil {
			return rep, err
		}
		if err := expectPort(reason, ring0.PortSyscall); err != nil {
			return rep, err
		}
	}
	if n > 0 {
		rep.SyscallRoundTrip = time.Since(start) / time.Duration(n)
	}

	// Exception round trip: ud2 in a loop through the IDT.
	r := c.Regs()
	r.RIP, r.RFLAGS, r.RSP = vUserCode+0x10, 0x202, 0x800000
	c.MarkDirty(SyncRegs)
	if c.Sregs().CS.DPL == 0 { // hardware: leave ring 0 through sysret's state
		s := c.Sregs()
		s.CS.Selector, s.CS.DPL = ring0.UserCS, 3
		s.SS.Selector, s.SS.DPL = ring0.UserSS, 3
		c.MarkDirty(SyncSregs)
	}
	if reason, err = next(); err != nil {
		return rep, err
	}
	if err := expectPort(reason, ring0.PortException); err != nil {
		return rep, err
	}
	start = time.Now()
	for i := 0; i < n; i++ {
		if reason, err = next(); err != nil {
			return rep, err
		}
		if err := expectPort(reason, ring0.PortException); err != nil {
			return rep, err
		}
	}
	if n > 0 {
		rep.ExceptionRoundTrip = time.Since(start) / time.Duration(n)
	}

	// Host page-table edits: read A, repoint the PTE at B from the host,
	// reload CR3, read again.
	frame := c.Regs().RSP - kBase - pStack
	// Return to user mode at the probe's read loop through the frame.
	le.PutUint64(mem[pStack+frame+16:], vUserCode+0x20) // rip
	if reason, err = next(); err != nil {
		return rep, err
	}
	if err := expectPort(reason, ring0.PortSyscall); err != nil {
		return rep, err
	}
	if got := c.Regs().RAX; got != valueA {
		return rep, fmt.Errorf("kvm probe: guest read %#x, want %#x", got, valueA)
	}
	set(ptData, 0, pDataB|present|rw|user|nx)
	c.Sregs().CR3 = pml4
	c.MarkDirty(SyncSregs)
	resumeSyscall()
	if reason, err = next(); err != nil {
		return rep, err
	}
	if err := expectPort(reason, ring0.PortSyscall); err != nil {
		return rep, err
	}
	rep.HostPTEEditsVisible = c.Regs().RAX == valueB
	return rep, nil
}
