package ptrace_fallback

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Stub layout. The stub is a tiny static ELF loaded at stubBase; its only
// page holds the ELF headers, a few instructions and a seccomp filter.
// Everything else in the stub's address space below stubBase belongs to the
// app. stubBase sits far enough below the top of the user address space
// (256 GiB) that the host kernel's randomised stack for the exec can never
// collide with it.
const (
	stubBase     = 0x7fc000000000
	stubPageSize = 0x1000
	// hostUserTop is Linux x86-64's TASK_SIZE (47-bit user addresses).
	hostUserTop = 0x7ffffffff000

	elfHeaderSize  = 64
	progHeaderSize = 56
	stubEntry      = stubBase + elfHeaderSize + progHeaderSize
)

// The stub's seccomp filter. App system calls never reach it: PTRACE_SYSEMU
// stops them before seccomp runs. What does reach it is what the stub
// really executes: the mmap and munmap the Sentry injects (allowed), and
// the host kernel's emulation of the legacy vsyscall page (time,
// gettimeofday, getcpu at 0xffffffffff600000), which would otherwise run on
// the host behind the Sentry's back. Those get SECCOMP_RET_TRACE, so the
// tracer sees them and the Sentry serves them. A foreign architecture is
// killed.
const (
	auditArchX8664    = 0xc000003e
	seccompRetKill    = 0x80000000 // SECCOMP_RET_KILL_PROCESS
	seccompRetTrace   = 0x7ff00000
	seccompRetAllow   = 0x7fff0000
	bpfLdWAbs         = 0x20
	bpfJeqK           = 0x15
	bpfRetK           = 0x06
	seccompDataNr     = 0
	seccompDataArch   = 4
	prSetNoNewPrivs   = 38
	seccompModeFilter = 1
)

type bpfInsn struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

var stubFilter = []bpfInsn{
	{bpfLdWAbs, 0, 0, seccompDataArch},
	{bpfJeqK, 0, 5, auditArchX8664}, // foreign arch: kill
	{bpfLdWAbs, 0, 0, seccompDataNr},
	{bpfJeqK, 2, 0, unix.SYS_MMAP},
	{bpfJeqK, 1, 0, unix.SYS_MUNMAP},
	{bpfRetK, 0, 0, seccompRetTrace},
	{bpfRetK, 0, 0, seccompRetAllow},
	{bpfRetK, 0, 0, seccompRetKill},
}

// stubImage is the stub's code and data, and where its syscall site is.
type stubImage struct {
	bytes       []byte
	syscallSite uint64
}

// buildStub assembles the stub. At start it closes every fd but 0 (the
// memory file), unmaps everything but its own page (the exec's stack, vDSO
// and vvar), sets no_new_privs, installs the seccomp filter and stops with
// int3 (rax then holds seccomp's result: 0). Afterwards the Sentry only
// ever runs syscallSite (an injected system call followed by int3) and app
// code under PTRACE_SYSEMU.
//
//	mov eax, 436 (close_range); mov edi, 1; mov esi, -1; xor edx, edx; syscall
//	mov eax, 11 (munmap); xor edi, edi; movabs rsi, stubBase; syscall
//	mov eax, 11; movabs rdi, stubBase+page; movabs rsi, top-(stubBase+page); syscall
//	mov eax, 157 (prctl); mov edi, PR_SET_NO_NEW_PRIVS; mov esi, 1; xor edx, edx; xor r10d, r10d; xor r8d, r8d; syscall
//	mov eax, 317 (seccomp); mov edi, SECCOMP_SET_MODE_FILTER; xor esi, esi; movabs rdx, &fprog; syscall
//	int3
//	syscallSite: syscall; int3; jmp syscallSite
//	fprog: {len, filter pointer}; filter
func buildStub() stubImage {
	le := binary.LittleEndian
	var c []byte
	imm64 := func(v uint64) { c = le.AppendUint64(c, v) }
	c = append(c, 0xb8, 0xb4, 0x01, 0x00, 0x00) // mov eax, 436
	c = append(c, 0xbf, 0x01, 0x00, 0x00, 0x00) // mov edi, 1
	c = append(c, 0xbe, 0xff, 0xff, 0xff, 0xff) // mov esi, -1
	c = append(c, 0x31, 0xd2)                   // xor edx, edx
	c = append(c, 0x0f, 0x05)                   // syscall
	c = append(c, 0xb8, 0x0b, 0x00, 0x00, 0x00) // mov eax, 11
	c = append(c, 0x31, 0xff)                   // xor edi, edi
	c = append(c, 0x48, 0xbe)                   // movabs rsi, imm64
	imm64(stubBase)
	c = append(c, 0x0f, 0x05)                   // syscall
	c = append(c, 0xb8, 0x0b, 0x00, 0x00, 0x00) // mov eax, 11
	c = append(c, 0x48, 0xbf)                   // movabs rdi, imm64
	imm64(stubBase + stubPageSize)
	c = append(c, 0x48, 0xbe) // movabs rsi, imm64
	imm64(hostUserTop - (stubBase + stubPageSize))
	c = append(c, 0x0f, 0x05)                       // syscall
	c = append(c, 0xb8, 0x9d, 0x00, 0x00, 0x00)     // mov eax, 157
	c = append(c, 0xbf, prSetNoNewPrivs, 0, 0, 0)   // mov edi, 38
	c = append(c, 0xbe, 0x01, 0x00, 0x00, 0x00)     // mov esi, 1
	c = append(c, 0x31, 0xd2)                       // xor edx, edx
	c = append(c, 0x45, 0x31, 0xd2)                 // xor r10d, r10d
	c = append(c, 0x45, 0x31, 0xc0)                 // xor r8d, r8d
	c = append(c, 0x0f, 0x05)                       // syscall
	c = append(c, 0xb8, 0x3d, 0x01, 0x00, 0x00)     // mov eax, 317
	c = append(c, 0xbf, seccompModeFilter, 0, 0, 0) // mov edi, 1
	c = append(c, 0x31, 0xf6)                       // xor esi, esi
	c = append(c, 0x48, 0xba)                       // movabs rdx, imm64
	fprogAt := len(c)
	imm64(0)                  // patched below
	c = append(c, 0x0f, 0x05) // syscall
	c = append(c, 0xcc)       // int3
	site := len(c)
	c = append(c, 0x0f, 0x05) // syscallSite: syscall
	c = append(c, 0xcc)       // int3
	c = append(c, 0xeb, 0xfb) // jmp syscallSite
	for len(c)%8 != 0 {
		c = append(c, 0xcc)
	}
	fprog := stubEntry + uint64(len(c))
	le.PutUint64(c[fprogAt:], fprog)
	c = le.AppendUint16(c, uint16(len(stubFilter)))
	c = append(c, 0, 0, 0, 0, 0, 0)
	imm64(fprog + 16)
	for _, in := range stubFilter {
		c = le.AppendUint16(c, in.code)
		c = append(c, in.jt, in.jf)
		c = le.AppendUint32(c, in.k)
	}
	return stubImage{bytes: c, syscallSite: stubEntry + uint64(site)}
}

// stub is the assembled stub, built once.
var stubImg = buildStub()

// stubSyscallSite is the address of the injected-syscall instruction.
var stubSyscallSite = stubImg.syscallSite

// stubELF returns the complete stub executable.
func stubELF() []byte {
	le := binary.LittleEndian
	code := stubImg.bytes
	size := uint64(elfHeaderSize + progHeaderSize + len(code))
	var b []byte
	// ELF header.
	b = append(b, 0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1 /* version */, 0 /* SysV */)
	b = append(b, make([]byte, 8)...)
	b = le.AppendUint16(b, 2)    // ET_EXEC
	b = le.AppendUint16(b, 0x3e) // EM_X86_64
	b = le.AppendUint32(b, 1)    // EV_CURRENT
	b = le.AppendUint64(b, stubEntry)
	b = le.AppendUint64(b, elfHeaderSize) // e_phoff
	b = le.AppendUint64(b, 0)             // e_shoff
	b = le.AppendUint32(b, 0)             // e_flags
	b = le.AppendUint16(b, elfHeaderSize)
	b = le.AppendUint16(b, progHeaderSize)
	b = le.AppendUint16(b, 1) // e_phnum
	b = le.AppendUint16(b, 0) // e_shentsize
	b = le.AppendUint16(b, 0) // e_shnum
	b = le.AppendUint16(b, 0) // e_shstrndx
	// Program header: one PT_LOAD, R+X, the whole file at stubBase.
	b = le.AppendUint32(b, 1)   // PT_LOAD
	b = le.AppendUint32(b, 4|1) // PF_R|PF_X
	b = le.AppendUint64(b, 0)   // p_offset
	b = le.AppendUint64(b, stubBase)
	b = le.AppendUint64(b, stubBase)
	b = le.AppendUint64(b, size) // p_filesz
	b = le.AppendUint64(b, size) // p_memsz
	b = le.AppendUint64(b, stubPageSize)
	return append(b, code...)
}
