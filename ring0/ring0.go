// Package ring0 owns what runs in guest ring 0 on the KVM platform and the
// descriptor tables around it: the entry code (syscall and exception
// entries that hand the user state to the host with one exit, and the way
// back to ring 3), the GDT, IDT and TSS layouts, the segment selectors and
// the SYSCALL MSR values. It is a builder of bytes: the vmm places them in
// guest memory and maps them in the upper half. No Go code runs in the
// guest; the host does all the work at the exits.
package ring0

import "encoding/binary"

// Entry offsets within Code.
const (
	SyscallEntry   = 0x00
	SyscallResume  = 0x02 // RIP after the OUT of the syscall entry
	IretEntry      = 0x08
	ExceptionEntry = 0x10
	ExceptionExit  = 0x12 // RIP after the OUT of the exception entry
	VectorBase     = 0x20
	VectorStride   = 16
	NumVectors     = 33 // 0-31 and the preemption vector 32
	CodeSize       = VectorBase + NumVectors*VectorStride
)

// Ports the entry code exits on.
const (
	PortSyscall   = 0xF1
	PortException = 0xF2
)

// PreemptVector is the vector the host may inject to pull a vCPU out of
// user code (an exit through the exception entry).
const PreemptVector = 32

func codeAddr() *[CodeSize]byte

// Code returns the entry code, to be copied into guest memory.
func Code() []byte {
	src := codeAddr()
	return append([]byte(nil), src[:]...)
}

// Segment selectors, laid out as Linux does so that user CS and SS values
// match what the ptrace platform reports (0x33, 0x2b).
const (
	KernelCS = 0x10
	KernelSS = 0x18
	User32CS = 0x23
	UserSS   = 0x2b
	UserCS   = 0x33
	TSSSel   = 0x40
)

// GDTEntries is the GDT's size in 8-byte slots (the TSS takes two).
const GDTEntries = 10

// GDT returns the descriptor table for a vCPU whose TSS is at tss.
// Accessed bits are preset: the CPU never has to write the table.
func GDT(tss uint64) [GDTEntries]uint64 {
	var g [GDTEntries]uint64
	g[KernelCS/8] = 0x00af9b000000ffff // 64-bit code, DPL 0
	g[KernelSS/8] = 0x00cf93000000ffff // data, DPL 0
	g[User32CS/8] = 0x00cffb000000ffff // 32-bit code, DPL 3 (sysret's base)
	g[UserSS/8] = 0x00cff3000000ffff   // data, DPL 3
	g[UserCS/8] = 0x00affb000000ffff   // 64-bit code, DPL 3
	const limit = TSSSize - 1
	g[TSSSel/8] = limit | (tss&0xffffff)<<16 | 0x89<<40 | ((tss>>24)&0xff)<<56
	g[TSSSel/8+1] = tss >> 32
	return g
}

// TSS layout: the 64-bit TSS proper, then an I/O permission bitmap for
// ports 0-255 and its terminating byte.
const (
	tssCore   = 0x68
	ioBitmap  = 32
	TSSSize   = tssCore + ioBitmap + 1
	ioMapBase = tssCore
)

// TSS returns a TSS whose ring-0 stack (RSP0) is stack: exceptions from
// ring 3 switch to it. Its I/O bitmap lets ring 3 use exactly one port,
// PortSyscall, so that where the syscall entry runs at CPL 3 (PVM) its OUT
// exits directly instead of faulting first; the host accepts that port
// only from the entry's own address.
func TSS(stack uint64) [TSSSize]byte {
	var t [TSSSize]byte
	binary.LittleEndian.PutUint64(t[4:], stack)
	t[0x66] = ioMapBase
	for i := 0; i <= ioBitmap; i++ {
		t[ioMapBase+i] = 0xff // 1 = denied
	}
	t[ioMapBase+PortSyscall/8] &^= 1 << (PortSyscall % 8)
	return t
}

// IDT returns the interrupt descriptor table for code placed at codeBase:
// interrupt gates (IF cleared) into ring 0. #BP and #OF have DPL 3 so int3
// and into work from user code as on Linux.
func IDT(codeBase uint64) [NumVectors * 16]byte {
	var idt [NumVectors * 16]byte
	for v := 0; v < NumVectors; v++ {
		addr := codeBase + VectorBase + uint64(v)*VectorStride
		attr := uint64(0x8e)
		if v == 3 || v == 4 {
			attr = 0xee
		}
		lo := addr&0xffff | KernelCS<<16 | attr<<40 | (addr>>16&0xffff)<<48
		binary.LittleEndian.PutUint64(idt[v*16:], lo)
		binary.LittleEndian.PutUint64(idt[v*16+8:], addr>>32)
	}
	return idt
}

// SYSCALL MSRs.
const (
	MSRStar  = 0xc0000081
	MSRLstar = 0xc0000082
	MSRFmask = 0xc0000084
)

// Star is the STAR value: kernel CS/SS from KernelCS, user from User32CS
// (sysret adds 16 for CS and 8 for SS).
const Star = uint64(User32CS)<<48 | uint64(KernelCS)<<32

// Fmask clears TF, DF, IF, AC and NT on syscall entry, as Linux does.
const Fmask = 0x47700
