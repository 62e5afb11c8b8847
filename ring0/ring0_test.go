package ring0

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestCodeLayout(t *testing.T) {
	c := Code()
	if len(c) != CodeSize {
		t.Fatalf("code is %d bytes, want %d", len(c), CodeSize)
	}
	if !bytes.Equal(c[SyscallEntry:SyscallEntry+5], []byte{0xe6, PortSyscall, 0x48, 0x0f, 0x07}) {
		t.Errorf("syscall entry % x", c[:5])
	}
	if !bytes.Equal(c[IretEntry:IretEntry+2], []byte{0x48, 0xcf}) {
		t.Errorf("iret entry % x", c[IretEntry:IretEntry+2])
	}
	if !bytes.Equal(c[ExceptionEntry:ExceptionEntry+8], []byte{0xe6, PortException, 0x48, 0x83, 0xc4, 0x10, 0x48, 0xcf}) {
		t.Errorf("exception entry % x", c[ExceptionEntry:ExceptionEntry+8])
	}
	// Every vector pushes its number and jumps to the exception entry.
	for v := 0; v < NumVectors; v++ {
		b := VectorBase + v*VectorStride
		s := c[b:]
		off := 0
		if s[0] == 0x6a && s[1] == 0 && s[2] == 0x6a {
			off = 2 // pushed a zero error code first
		}
		if s[off] != 0x6a || int(s[off+1]) != v || s[off+2] != 0xe9 {
			t.Fatalf("vector %d stub % x", v, s[:10])
		}
		end := b + off + 7
		target := end + int(int32(binary.LittleEndian.Uint32(s[off+3:])))
		if target != ExceptionEntry {
			t.Errorf("vector %d jumps to %#x, want %#x", v, target, ExceptionEntry)
		}
	}
}

func TestDescriptors(t *testing.T) {
	g := GDT(0xffffff8000123000)
	if g[UserCS/8]>>53&1 != 1 || g[UserCS/8]>>45&3 != 3 {
		t.Errorf("user CS not 64-bit DPL 3: %#x", g[UserCS/8])
	}
	tssBase := (g[TSSSel/8]>>16)&0xffffff | (g[TSSSel/8]>>56&0xff)<<24 | g[TSSSel/8+1]<<32
	if tssBase != 0xffffff8000123000 {
		t.Errorf("TSS base %#x", tssBase)
	}
	idt := IDT(0xffffff8000000000)
	lo, hi := binary.LittleEndian.Uint64(idt[14*16:]), binary.LittleEndian.Uint64(idt[14*16+8:])
	addr := lo&0xffff | (lo>>48)<<16 | hi<<32
	if addr != 0xffffff8000000000+VectorBase+14*VectorStride {
		t.Errorf("#PF gate points at %#x", addr)
	}
	if lo>>45&3 != 0 || binary.LittleEndian.Uint64(idt[3*16:])>>45&3 != 3 {
		t.Error("gate DPLs wrong: #PF must be 0, #BP 3")
	}
	tss := TSS(0x1234)
	if binary.LittleEndian.Uint64(tss[4:]) != 0x1234 {
		t.Error("RSP0 not set")
	}
	base := int(binary.LittleEndian.Uint16(tss[0x66:]))
	for port := 0; port < 256; port++ {
		allowed := tss[base+port/8]&(1<<(port%8)) == 0
		if allowed != (port == PortSyscall) {
			t.Errorf("port %#x allowed=%v", port, allowed)
		}
	}
}
