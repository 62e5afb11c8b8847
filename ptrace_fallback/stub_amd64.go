package ptrace_fallback

import (
	"encoding/binary"
)

// Stub layout. The stub is a tiny static ELF loaded at stubBase; its only
// page holds the ELF headers and a few instructions. Everything else in the
// stub's address space below stubBase belongs to the app. stubBase sits far
// enough below the top of the user address space (256 GiB) that the host
// kernel's randomised stack for the exec can never collide with it.
const (
	stubBase     = 0x7fc000000000
	stubPageSize = 0x1000
	// hostUserTop is Linux x86-64's TASK_SIZE (47-bit user addresses).
	hostUserTop = 0x7ffffffff000

	elfHeaderSize  = 64
	progHeaderSize = 56
	stubEntry      = stubBase + elfHeaderSize + progHeaderSize
)

// stubCode is the stub's machine code. At start it closes every fd but 0
// (the memory file), unmaps everything but its own page (the exec's stack,
// vDSO and vvar), and stops with int3. Afterwards the Sentry only ever runs
// syscallSite: an injected system call followed by int3, and app code under
// PTRACE_SYSEMU, whose system calls never reach the host.
//
//	mov eax, 436 (close_range); mov edi, 1; mov esi, -1; xor edx, edx; syscall
//	mov eax, 11 (munmap); xor edi, edi; movabs rsi, stubBase; syscall
//	mov eax, 11; movabs rdi, stubBase+page; movabs rsi, top-(stubBase+page); syscall
//	int3
//	syscallSite: syscall; int3; jmp syscallSite
func stubCode() []byte {
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
	c = append(c, 0x0f, 0x05) // syscall
	c = append(c, 0xcc)       // int3
	c = append(c, 0x0f, 0x05) // syscallSite: syscall
	c = append(c, 0xcc)       // int3
	c = append(c, 0xeb, 0xfb) // jmp syscallSite
	return c
}

// syscallSiteOffset is the offset of syscallSite within stubCode.
const syscallSiteOffset = 0x42

// stubSyscallSite is the address of the injected-syscall instruction.
const stubSyscallSite = stubEntry + syscallSiteOffset

// stubELF returns the complete stub executable.
func stubELF() []byte {
	le := binary.LittleEndian
	code := stubCode()
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
