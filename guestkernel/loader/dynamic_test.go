package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
)

// fakeAS stands in for a platform address space: the loader only needs
// the memory manager's view of memory, which lives in the memory file.
type fakeAS struct{}

func (fakeAS) MapFile(addr uint64, off int64, length uint64, at platform.AccessType) error {
	return nil
}
func (fakeAS) Unmap(addr, length uint64) {}
func (fakeAS) Release()                  {}

// newMM makes an empty address space with the ptrace platform's limits.
func newMM(t *testing.T) *mm.MM {
	t.Helper()
	mf, err := memfile.New(1 << 36)
	if err != nil {
		t.Fatal(err)
	}
	m := mm.New(mf, fakeAS{}, 0x10000, 0x7ffffffff000)
	t.Cleanup(func() { m.Release(); mf.Close() })
	return m
}

// hostExe is an Executable over a host file.
type hostExe struct {
	*os.File
	size int64
}

func (h hostExe) Size() int64 { return h.size }

// hostOpener opens host paths, failing as execve would; rename maps a
// path to another host path first.
type hostOpener struct{ rename map[string]string }

func (o hostOpener) OpenExecutable(path string) (Executable, error) {
	if p, ok := o.rename[path]; ok {
		path = p
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err // a *PathError wrapping the errno
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		f.Close()
		return nil, unix.EACCES
	}
	return hostExe{f, st.Size()}, nil
}

// memExe is an Executable over bytes.
type memExe struct{ *bytes.Reader }

func (memExe) Close() error { return nil }

// memOpener serves files from memory.
type memOpener map[string][]byte

func (o memOpener) OpenExecutable(path string) (Executable, error) {
	b, ok := o[path]
	if !ok {
		return nil, unix.ENOENT
	}
	return memExe{bytes.NewReader(b)}, nil
}

// seg is one PT_LOAD of a synthetic ELF.
type seg struct {
	off, vaddr, filesz, memsz uint64
	flags                     elf.ProgFlag
}

// buildELF makes an x86-64 ELF of size bytes whose every byte past the
// headers is non-zero, so memory that should be zero cannot pass by luck.
// A non-empty interp adds a PT_INTERP holding it verbatim (add the NUL).
func buildELF(typ elf.Type, entry uint64, interp string, segs []seg, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(0xa0 | i%16)
	}
	nph := len(segs)
	if interp != "" {
		nph++
	}
	le := binary.LittleEndian
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS], b[elf.EI_DATA], b[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	clear(b[elf.EI_OSABI:elf.EI_NIDENT])
	le.PutUint16(b[16:], uint16(typ))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], entry)
	le.PutUint64(b[32:], 64) // e_phoff
	le.PutUint64(b[40:], 0)  // e_shoff
	le.PutUint32(b[48:], 0)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], uint16(nph))
	le.PutUint16(b[58:], 64)
	le.PutUint16(b[60:], 0)
	le.PutUint16(b[62:], 0)
	ph := func(i int, typ elf.ProgType, flags elf.ProgFlag, off, vaddr, filesz, memsz uint64) {
		p := b[64+56*i:]
		le.PutUint32(p[0:], uint32(typ))
		le.PutUint32(p[4:], uint32(flags))
		le.PutUint64(p[8:], off)
		le.PutUint64(p[16:], vaddr)
		le.PutUint64(p[24:], vaddr)
		le.PutUint64(p[32:], filesz)
		le.PutUint64(p[40:], memsz)
		le.PutUint64(p[48:], mm.PageSize)
	}
	i := 0
	if interp != "" {
		off := uint64(64 + 56*nph)
		copy(b[off:], interp)
		ph(0, elf.PT_INTERP, elf.PF_R, off, segs[0].vaddr+off, uint64(len(interp)), uint64(len(interp)))
		i++
	}
	for _, s := range segs {
		ph(i, elf.PT_LOAD, s.flags, s.off, s.vaddr, s.filesz, s.memsz)
		i++
	}
	return b
}

func auxv(img *Image, key uint64) uint64 {
	for _, e := range img.Auxv {
		if e.Key == key {
			return e.Val
		}
	}
	return 0
}

func readMem(t *testing.T, m *mm.MM, addr, n uint64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := m.CopyIn(addr, b); err != nil {
		t.Fatalf("CopyIn(%#x, %d): %v", addr, n, err)
	}
	return b
}

// checkSegments checks that each segment of file sits at bias+vaddr with
// its file bytes, and reads as zeros from Filesz to the end of its last
// page (unless the next segment shares that page).
func checkSegments(t *testing.T, m *mm.MM, bias uint64, file []byte, segs []seg) {
	t.Helper()
	for i, s := range segs {
		addr := bias + s.vaddr
		if got, want := readMem(t, m, addr, s.filesz), file[s.off:s.off+s.filesz]; !bytes.Equal(got, want) {
			t.Errorf("segment %d at %#x does not hold its file bytes", i, addr)
		}
		zeroEnd := pageUp(addr + s.memsz)
		if i+1 < len(segs) && bias+segs[i+1].vaddr < zeroEnd {
			zeroEnd = bias + segs[i+1].vaddr
		}
		zeroStart := addr + s.filesz
		got := readMem(t, m, zeroStart, zeroEnd-zeroStart)
		if k := bytes.IndexFunc(got, func(r rune) bool { return r != 0 }); k >= 0 {
			t.Errorf("segment %d: byte at %#x past Filesz is %#x, want 0 (bss and the rest of the last file page are zero)",
				i, zeroStart+uint64(k), got[k])
		}
	}
}

// vmaAt returns the VMA holding addr.
func vmaAt(m *mm.MM, addr uint64) (mm.VMA, bool) {
	for _, v := range m.VMAs() {
		if v.Start <= addr && addr < v.End {
			return v, true
		}
	}
	return mm.VMA{}, false
}

// testSegs exercise the segment loader: a page with a lead of file bytes
// before the segment, a bss over several pages, a segment sharing the
// bss's last page, and a hole before the last.
var testSegs = []seg{
	{off: 0, vaddr: 0x0, filesz: 0x1000, memsz: 0x1000, flags: elf.PF_R | elf.PF_X},
	{off: 0x1234, vaddr: 0x2234, filesz: 0x500, memsz: 0x3000, flags: elf.PF_R | elf.PF_W},
	{off: 0x2800, vaddr: 0x5800, filesz: 0x100, memsz: 0x100, flags: elf.PF_R},
	{off: 0x2000, vaddr: 0x8000, filesz: 0x10, memsz: 0x10, flags: elf.PF_R},
}

func withBase(segs []seg, base uint64) []seg {
	out := append([]seg(nil), segs...)
	for i := range out {
		out[i].vaddr += base
	}
	return out
}

func TestLoadZeroesBSSAndKeepsSegmentsApart(t *testing.T) {
	segs := withBase(testSegs, 0x400000)
	file := buildELF(elf.ET_EXEC, 0x400100, "", segs, 0x3000)
	m := newMM(t)
	img, err := Load(m, Args{File: bytes.NewReader(file), Name: "bss", Argv: []string{"bss"}, ExecFn: "bss"})
	if err != nil {
		t.Fatal(err)
	}
	checkSegments(t, m, 0, file, segs)
	// The first page of a segment shows the file's bytes before it, as an
	// mmap of the file would.
	if got := readMem(t, m, 0x402000, 0x234); !bytes.Equal(got, file[0x1000:0x1234]) {
		t.Errorf("bytes before the segment in its first page are not the file's")
	}
	if v, ok := vmaAt(m, 0x405000); !ok || !v.Perms.Write || !v.Perms.Read {
		t.Errorf("page shared by the RW bss and an R segment: %+v, want both permissions", v)
	}
	if v, ok := vmaAt(m, 0x406000); ok {
		t.Errorf("hole between segments is mapped: %+v", v)
	}
	if img.Entry != 0x400100 || auxv(img, AtBase) != 0 || img.InterpBase != 0 || auxv(img, AtEntry) != 0x400100 {
		t.Errorf("static image: entry %#x, AT_BASE %#x, AT_ENTRY %#x", img.Entry, auxv(img, AtBase), auxv(img, AtEntry))
	}
	if img.BrkStart < 0x409000 {
		t.Errorf("brk %#x inside the program", img.BrkStart)
	}
}

func TestLoadSyntheticInterpreter(t *testing.T) {
	const ipath = "/lib/ld-test.so"
	ifile := buildELF(elf.ET_DYN, 0x123, "", testSegs, 0x3000)
	main := []seg{{off: 0, vaddr: 0x400000, filesz: 0x800, memsz: 0x800, flags: elf.PF_R | elf.PF_X}}
	mfile := buildELF(elf.ET_EXEC, 0x400200, ipath+"\x00", main, 0x1000)
	m := newMM(t)
	img, err := Load(m, Args{File: bytes.NewReader(mfile), Name: "prog", Argv: []string{"prog"}, Opener: memOpener{ipath: ifile}})
	if err != nil {
		t.Fatal(err)
	}
	base := auxv(img, AtBase)
	if base == 0 || base%mm.PageSize != 0 || base != img.InterpBase || img.Interp != ipath {
		t.Fatalf("AT_BASE %#x, image %q at %#x: want a page-aligned interpreter base", base, img.Interp, img.InterpBase)
	}
	if img.Entry != base+0x123 || auxv(img, AtEntry) != 0x400200 {
		t.Errorf("entry %#x, AT_ENTRY %#x: want the interpreter's entry and the program's", img.Entry, auxv(img, AtEntry))
	}
	checkSegments(t, m, base, ifile, testSegs)
	if v, ok := vmaAt(m, base+0x6000); ok {
		t.Errorf("hole between the interpreter's segments is mapped: %+v", v)
	}
	if img.BrkStart < 0x401000 || img.BrkStart >= base {
		t.Errorf("brk %#x: want it after the program, not the interpreter at %#x", img.BrkStart, base)
	}
}

func openHost(t *testing.T, path string) Executable {
	t.Helper()
	exe, err := hostOpener{}.OpenExecutable(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	t.Cleanup(func() { exe.Close() })
	return exe
}

func TestLoadDynamicTrue(t *testing.T) {
	exe := openHost(t, "/bin/true")
	ef, err := CheckELF(exe, "/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	ipath, err := interpPath(exe, ef, "/bin/true")
	if err != nil || ipath == "" {
		t.Skipf("/bin/true is not dynamically linked (%q, %v)", ipath, err)
	}
	iexe := openHost(t, ipath)
	ief, err := elf.NewFile(iexe)
	if err != nil {
		t.Fatal(err)
	}

	m := newMM(t)
	img, err := Load(m, Args{ELF: ef, File: exe, Name: "/bin/true", Argv: []string{"true"}, ExecFn: "/bin/true", Opener: hostOpener{}})
	if err != nil {
		t.Fatal(err)
	}
	base := auxv(img, AtBase)
	if base == 0 || base%mm.PageSize != 0 {
		t.Fatalf("AT_BASE = %#x, want a page-aligned non-zero interpreter base", base)
	}
	if img.Entry != base+ief.Entry {
		t.Errorf("entry %#x, want interpreter base %#x + e_entry %#x", img.Entry, base, ief.Entry)
	}
	bias := auxv(img, AtEntry) - ef.Entry
	if bias%mm.PageSize != 0 || bias < pieBase {
		t.Errorf("AT_ENTRY %#x gives program bias %#x, want the PIE base's", auxv(img, AtEntry), bias)
	}
	var span uint64
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			span = max(span, pageUp(p.Vaddr+p.Memsz))
		}
	}
	phdr := auxv(img, AtPhdr)
	if phdr < bias || phdr >= bias+span {
		t.Errorf("AT_PHDR %#x outside the program at %#x-%#x", phdr, bias, bias+span)
	}
	if auxv(img, AtPhnum) != uint64(len(ef.Progs)) || auxv(img, AtPhent) != 56 {
		t.Errorf("AT_PHNUM %d, AT_PHENT %d", auxv(img, AtPhnum), auxv(img, AtPhent))
	}
	phdrs := make([]byte, 56*len(ef.Progs))
	exe.ReadAt(phdrs, int64(elfPhoff(exe)))
	if got := readMem(t, m, phdr, uint64(len(phdrs))); !bytes.Equal(got, phdrs) {
		t.Errorf("memory at AT_PHDR is not the program headers")
	}

	// The interpreter's segments hold its bytes, and their bss is zero.
	var isegs []seg
	for _, p := range ief.Progs {
		if p.Type == elf.PT_LOAD {
			isegs = append(isegs, seg{off: p.Off, vaddr: p.Vaddr, filesz: p.Filesz, memsz: p.Memsz, flags: p.Flags})
		}
	}
	ifile, err := io.ReadAll(io.NewSectionReader(iexe, 0, iexe.Size()))
	if err != nil {
		t.Fatal(err)
	}
	checkSegments(t, m, base, ifile, isegs)
	if v, ok := vmaAt(m, base+isegs[0].vaddr); !ok || v.Perms.Write {
		t.Errorf("interpreter's first segment: %+v, want read-only", v)
	}
	if img.BrkStart < bias+span || img.BrkStart >= base {
		t.Errorf("brk %#x: want it after the program (%#x), below the interpreter (%#x)", img.BrkStart, bias+span, base)
	}
	if base < bias+span || base > img.StackPtr {
		t.Errorf("interpreter at %#x, want it in the mmap area between the program and the stack", base)
	}
}

func wantErr(t *testing.T, err error, errno unix.Errno, msg string) {
	t.Helper()
	var le *Error
	if !errors.As(err, &le) || le.Errno != errno {
		t.Fatalf("error %v, want a loader error with %v", err, errno)
	}
	if !strings.Contains(le.Msg, msg) {
		t.Errorf("message %q, want it to say %q", le.Msg, msg)
	}
}

func TestLoadInterpreterErrors(t *testing.T) {
	main := []seg{{off: 0, vaddr: 0x400000, filesz: 0x800, memsz: 0x800, flags: elf.PF_R | elf.PF_X}}
	prog := func(interp string) []byte { return buildELF(elf.ET_EXEC, 0x400200, interp, main, 0x2000) }
	load := func(file []byte, o Opener) error {
		_, err := Load(newMM(t), Args{File: bytes.NewReader(file), Name: "prog", Argv: []string{"prog"}, Opener: o})
		return err
	}
	notELF := []byte("#!/bin/sh\n")
	tooLong := "/" + strings.Repeat("a", unix.PathMax) + "\x00"
	wantErr(t, load(prog("/lib/ld.so\x00"), nil), unix.ENOEXEC, "prog: dynamically linked (interpreter /lib/ld.so); dynamic programs need a filesystem")
	wantErr(t, load(prog("/lib/ld.so"), memOpener{}), unix.ENOEXEC, "not NUL-terminated")
	wantErr(t, load(prog(tooLong), memOpener{}), unix.ENOEXEC, "interpreter path of 4098 bytes")
	wantErr(t, load(prog("/lib/ld.so\x00"), memOpener{}), unix.ENOENT, "prog: interpreter /lib/ld.so: no such file or directory")
	wantErr(t, load(prog("/lib/ld.so\x00"), memOpener{"/lib/ld.so": notELF}), unix.ELIBBAD, "prog: interpreter /lib/ld.so: not an ELF executable")
	wantErr(t, load(prog("/lib/ld.so\x00"), memOpener{"/lib/ld.so": elfHeader(1, 3)}), unix.ELIBBAD, "interpreter /lib/ld.so: 32-bit ELF")
	// An interpreter is read up to the first NUL, as Linux's C string is.
	wantErr(t, load(prog("/lib/ld.so\x00junk\x00"), memOpener{}), unix.ENOENT, "interpreter /lib/ld.so: no such")
}

func TestLoadRefusesInterpreterWithInterpreter(t *testing.T) {
	exe := openHost(t, "/bin/true")
	ef, err := CheckELF(exe, "/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	ipath, _ := interpPath(exe, ef, "/bin/true")
	if ipath == "" {
		t.Skip("/bin/true is static")
	}
	// /bin/true's interpreter is made /bin/true itself, which names one.
	o := hostOpener{rename: map[string]string{ipath: "/bin/true"}}
	_, err = Load(newMM(t), Args{File: exe, Name: "/bin/true", Argv: []string{"true"}, Opener: o})
	wantErr(t, err, unix.ELIBBAD, "/bin/true: interpreter "+ipath+": names an interpreter itself")
}
