// Package platformtest owns the platform conformance suite: one set of
// tests, written against the platform interface alone, that every platform
// (ptrace, kvm) must pass unchanged.
package platformtest

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// memSize is the size of the memory file the suite gives a platform.
const memSize = 64 << 20

// env is one test's platform, memory file, address space and context.
type env struct {
	t    *testing.T
	p    platform.Platform
	mem  []byte // the suite's own mapping of the memory file
	as   platform.AddressSpace
	ctx  platform.Context
	fpu  *platform.FPState
	regs platform.Registers
	next int64 // next free memory-file offset
}

// Layout of the test app's address space.
const (
	codeAddr  = 0x400000
	dataAddr  = 0x600000
	faultAddr = 0x12345000
)

func newEnv(t *testing.T, newPlatform platform.Constructor) *env {
	t.Helper()
	// Contexts may be bound to this goroutine's thread; the thread dies
	// with the test rather than carry a pinned affinity into the pool.
	runtime.LockOSThread()
	fd, err := unix.MemfdCreate("platformtest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Ftruncate(fd, memSize); err != nil {
		t.Fatalf("ftruncate: %v", err)
	}
	mem, err := unix.Mmap(fd, 0, memSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	p, err := newPlatform(platform.Options{MemoryFD: fd, Logf: t.Logf})
	if err != nil {
		t.Skipf("platform unavailable here: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatalf("NewAddressSpace: %v", err)
	}
	t.Cleanup(as.Release)
	ctx, err := p.NewContext()
	if err != nil {
		t.Fatalf("NewContext: %v", err)
	}
	t.Cleanup(ctx.Release)
	e := &env{t: t, p: p, mem: mem, as: as, ctx: ctx, fpu: platform.NewFPState()}
	e.regs.Cs, e.regs.Ss, e.regs.Eflags = platform.UserCS, platform.UserSS, platform.EflagsInit
	return e
}

// mapPage allocates a page of the memory file, fills it with content and
// maps it at addr with at. It returns the page's offset.
func (e *env) mapPage(addr uint64, at platform.AccessType, content []byte) int64 {
	e.t.Helper()
	off := e.next
	e.next += 4096
	copy(e.mem[off:off+4096], content)
	if err := e.as.MapFile(addr, off, 4096, at); err != nil {
		e.t.Fatalf("MapFile(%#x): %v", addr, err)
	}
	return off
}

// run loads code at codeAddr and points rip at it.
func (e *env) loadCode(code ...byte) {
	e.mapPage(codeAddr, platform.ReadExec, code)
	e.regs.Rip = codeAddr
}

func (e *env) switchExpect(kind platform.EventKind) platform.Event {
	e.t.Helper()
	ev, err := e.ctx.Switch(e.as, &e.regs, e.fpu)
	if err != nil {
		e.t.Fatalf("Switch: %v", err)
	}
	if ev.Kind != kind {
		e.t.Fatalf("Switch returned %v (%+v) at rip %#x, want %v", ev.Kind, ev, e.regs.Rip, kind)
	}
	return ev
}

// Machine code snippets. A system call's number is the app's rax, which a
// platform reports in OrigRax (Rax then holds -ENOSYS, as on Linux), so the
// snippets below report a value to the suite by "making it a syscall".
var (
	movEax39Syscall  = []byte{0xb8, 0x27, 0, 0, 0, 0x0f, 0x05}
	movRdiRax        = []byte{0x48, 0x89, 0xc7}
	movEax500Syscall = []byte{0xb8, 0xf4, 0x01, 0, 0, 0x0f, 0x05}
	loadRaxFromRbx   = []byte{0x48, 0x8b, 0x03}
	storeRcxToRbx    = []byte{0x48, 0x89, 0x0b}
	syscallInsn      = []byte{0x0f, 0x05}
	loadRaxFromFs    = []byte{0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0}
	movqXmm0Rdi      = []byte{0x66, 0x48, 0x0f, 0x6e, 0xc7}
	movqRaxXmm0      = []byte{0x66, 0x48, 0x0f, 0x7e, 0xc0}
	jmpSelf          = []byte{0xeb, 0xfe}
)

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// Run runs the whole suite against the platform newPlatform makes.
func Run(t *testing.T, newPlatform platform.Constructor) {
	tests := []struct {
		name string
		fn   func(*testing.T, platform.Constructor)
	}{
		{"Syscall", testSyscall},
		{"RegistersPreserved", testRegistersPreserved},
		{"FaultThenMap", testFaultThenMap},
		{"WriteSharedWithMemoryFile", testWriteShared},
		{"WriteToReadOnlyFaults", testWriteReadOnly},
		{"UnmapFaults", testUnmap},
		{"Signals", testSignals},
		{"Interrupt", testInterrupt},
		{"FSBase", testFSBase},
		{"FPState", testFPState},
		{"UserAddressRange", testAddressRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newPlatform) })
	}
}

func testSyscall(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(cat(movEax39Syscall, movRdiRax, movEax500Syscall)...)
	e.regs.Rdi, e.regs.Rsi, e.regs.Rdx, e.regs.R10, e.regs.R8, e.regs.R9 = 1, 2, 3, 4, 5, 6
	e.switchExpect(platform.EventSyscall)
	if e.regs.OrigRax != 39 {
		t.Errorf("syscall number %d, want 39", e.regs.OrigRax)
	}
	if got := e.regs.SyscallArgs(); got != [6]uint64{1, 2, 3, 4, 5, 6} {
		t.Errorf("syscall args %v, want [1 2 3 4 5 6]", got)
	}
	if e.regs.Rip != codeAddr+7 {
		t.Errorf("rip after syscall %#x, want %#x", e.regs.Rip, codeAddr+7)
	}
	// The result the Sentry writes reaches the app.
	e.regs.Rax = 1234
	e.switchExpect(platform.EventSyscall)
	if e.regs.OrigRax != 500 || e.regs.Rdi != 1234 {
		t.Errorf("second syscall %d with rdi %d, want 500 with 1234", e.regs.OrigRax, e.regs.Rdi)
	}
}

func testRegistersPreserved(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(cat(syscallInsn, syscallInsn)...)
	e.regs.Rax = 39
	e.regs.Rbx, e.regs.Rbp, e.regs.R12, e.regs.R13, e.regs.R14, e.regs.R15 = 11, 12, 13, 14, 15, 16
	e.regs.Rsp = 0x7000
	e.switchExpect(platform.EventSyscall)
	e.regs.Rax = 39
	e.regs.R15 = 99 // a change besides rax must reach the app too
	e.switchExpect(platform.EventSyscall)
	r := e.regs
	if r.Rbx != 11 || r.Rbp != 12 || r.R12 != 13 || r.R13 != 14 || r.R14 != 15 || r.R15 != 99 || r.Rsp != 0x7000 {
		t.Errorf("registers changed across syscalls: %+v", r)
	}
}

func testFaultThenMap(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(cat(loadRaxFromRbx, syscallInsn)...)
	e.regs.Rbx = faultAddr + 8
	ev := e.switchExpect(platform.EventFault)
	if ev.FaultAddr != faultAddr+8 {
		t.Errorf("fault address %#x, want %#x", ev.FaultAddr, faultAddr+8)
	}
	if e.regs.Rip != codeAddr {
		t.Errorf("rip at fault %#x, want the faulting instruction %#x", e.regs.Rip, codeAddr)
	}
	page := make([]byte, 16)
	binary.LittleEndian.PutUint64(page[8:], 0xdeadbeefcafe)
	e.mapPage(faultAddr, platform.Read, page)
	e.switchExpect(platform.EventSyscall)
	if e.regs.OrigRax != 0xdeadbeefcafe {
		t.Errorf("app read %#x from the mapped page, want 0xdeadbeefcafe", e.regs.OrigRax)
	}
}

func testWriteShared(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(cat(storeRcxToRbx, syscallInsn)...)
	off := e.mapPage(dataAddr, platform.ReadWrite, nil)
	e.regs.Rbx, e.regs.Rcx = dataAddr+16, 0x1122334455667788
	e.switchExpect(platform.EventSyscall)
	if got := u64(e.mem[off+16:]); got != 0x1122334455667788 {
		t.Errorf("memory file holds %#x after the app's store, want 0x1122334455667788", got)
	}
}

func testWriteReadOnly(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(cat(storeRcxToRbx, syscallInsn)...)
	e.mapPage(dataAddr, platform.Read, nil)
	e.regs.Rbx, e.regs.Rcx = dataAddr, 7
	ev := e.switchExpect(platform.EventFault)
	if ev.FaultAddr != dataAddr {
		t.Errorf("fault address %#x, want %#x", ev.FaultAddr, dataAddr)
	}
	if ev.FaultAccess.Any() && !ev.FaultAccess.Write {
		t.Errorf("fault access %v on a store, want write or unknown", ev.FaultAccess)
	}
	off := e.mapPage(dataAddr, platform.ReadWrite, nil)
	e.switchExpect(platform.EventSyscall)
	if got := u64(e.mem[off:]); got != 7 {
		t.Errorf("store after remapping writable left %d, want 7", got)
	}
}

func testUnmap(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(cat(loadRaxFromRbx, syscallInsn, loadRaxFromRbx, syscallInsn)...)
	e.mapPage(dataAddr, platform.Read, []byte{42})
	e.regs.Rbx = dataAddr
	e.switchExpect(platform.EventSyscall)
	if e.regs.OrigRax != 42 {
		t.Fatalf("read %d, want 42", e.regs.OrigRax)
	}
	e.as.Unmap(dataAddr, 4096)
	ev := e.switchExpect(platform.EventFault)
	if ev.FaultAddr != dataAddr {
		t.Errorf("fault after unmap at %#x, want %#x", ev.FaultAddr, dataAddr)
	}
}

func testSignals(t *testing.T, np platform.Constructor) {
	for _, tc := range []struct {
		name  string
		code  []byte
		signo unix.Signal
	}{
		{"int3", []byte{0xcc}, unix.SIGTRAP},
		{"ud2", []byte{0x0f, 0x0b}, unix.SIGILL},
		{"divide", []byte{0x31, 0xd2, 0x31, 0xc9, 0xf7, 0xf1}, unix.SIGFPE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, np)
			e.loadCode(tc.code...)
			ev := e.switchExpect(platform.EventSignal)
			if unix.Signal(ev.Signal.Signo) != tc.signo {
				t.Errorf("signal %d, want %v", ev.Signal.Signo, tc.signo)
			}
		})
	}
}

func testInterrupt(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(jmpSelf...)
	go func() {
		time.Sleep(50 * time.Millisecond)
		e.ctx.Interrupt()
	}()
	e.switchExpect(platform.EventInterrupted)
	if e.regs.Rip != codeAddr {
		t.Errorf("rip after interrupting a loop %#x, want %#x", e.regs.Rip, codeAddr)
	}
	// An interrupt that arrives between switches makes the next one return
	// at once.
	e.ctx.Interrupt()
	e.switchExpect(platform.EventInterrupted)
}

func testFSBase(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(cat(loadRaxFromFs, syscallInsn)...)
	page := make([]byte, 8)
	binary.LittleEndian.PutUint64(page, 0xf5f5f5)
	e.mapPage(dataAddr, platform.Read, page)
	e.regs.FsBase = dataAddr
	e.switchExpect(platform.EventSyscall)
	if e.regs.OrigRax != 0xf5f5f5 {
		t.Errorf("fs:[0] read %#x, want 0xf5f5f5", e.regs.OrigRax)
	}
	if e.regs.FsBase != dataAddr {
		t.Errorf("fs_base %#x after switch, want %#x", e.regs.FsBase, dataAddr)
	}
}

// xmm0Offset is XMM0's offset in the FXSAVE image.
const xmm0Offset = 160

func testFPState(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	e.loadCode(cat(movqXmm0Rdi, syscallInsn, movqRaxXmm0, syscallInsn, movqRaxXmm0, syscallInsn)...)
	e.regs.Rdi = 0xabcdef12345
	e.switchExpect(platform.EventSyscall)
	// Clobber rax: the value must come back from xmm0 kept by the platform.
	e.regs.Rax = 0
	e.switchExpect(platform.EventSyscall)
	if e.regs.OrigRax != 0xabcdef12345 {
		t.Fatalf("xmm0 held %#x across a switch, want 0xabcdef12345", e.regs.OrigRax)
	}
	if err := e.ctx.SaveFPState(e.fpu); err != nil {
		t.Fatalf("SaveFPState: %v", err)
	}
	if got := u64(e.fpu.Data[xmm0Offset:]); got != 0xabcdef12345 {
		t.Errorf("saved xmm0 %#x, want 0xabcdef12345", got)
	}
	// The Sentry changes the saved state; the app sees the change.
	binary.LittleEndian.PutUint64(e.fpu.Data[xmm0Offset:], 0x777)
	e.switchExpect(platform.EventSyscall)
	if e.regs.OrigRax != 0x777 {
		t.Errorf("xmm0 after the Sentry wrote the FP state: %#x, want 0x777", e.regs.OrigRax)
	}
}

func testAddressRange(t *testing.T, np platform.Constructor) {
	e := newEnv(t, np)
	min, max := e.p.MinUserAddress(), e.p.MaxUserAddress()
	if min == 0 || min > codeAddr || max <= 1<<40 || max > 1<<47 || max%4096 != 0 {
		t.Fatalf("user address range [%#x, %#x) is implausible", min, max)
	}
	// The highest user page works.
	top := max - 4096
	e.loadCode(cat(loadRaxFromRbx, syscallInsn)...)
	e.mapPage(top, platform.Read, []byte{9})
	e.regs.Rbx = top
	e.switchExpect(platform.EventSyscall)
	if e.regs.OrigRax != 9 {
		t.Errorf("read %d from the top user page, want 9", e.regs.OrigRax)
	}
}
