// Package loader owns turning an executable into a runnable address space:
// it checks the ELF, maps its segments into a memory manager, lays out the
// stack with argv, envp and the auxiliary vector, and picks the randomised
// positions of the stack, the mmap area, the program break and a PIE's base.
package loader

import (
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
)

// Error is a failure to load: Errno is what execve returns to an app; the
// message is what runsc tells a person.
type Error struct {
	Errno unix.Errno
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is match the errno.
func (e *Error) Unwrap() error { return e.Errno }

func errorf(errno unix.Errno, format string, args ...any) *Error {
	return &Error{Errno: errno, Msg: fmt.Sprintf(format, args...)}
}

// Creds are the credentials the auxiliary vector reports.
type Creds struct {
	UID, EUID, GID, EGID uint32
}

// Args is what to load.
type Args struct {
	// ELF is File already checked by CheckELF, if the caller did; Load
	// parses File itself otherwise.
	ELF         *elf.File
	File        io.ReaderAt
	Name        string // for messages
	Argv        []string
	Envv        []string
	ExecFn      string // AT_EXECFN: the path as the caller named it
	Creds       Creds
	HWCap       uint64
	HWCap2      uint64
	MinSigStkSz uint64
	StackSize   uint64 // RLIMIT_STACK
}

// Image is a loaded program.
type Image struct {
	Entry      uint64
	StackPtr   uint64
	BrkStart   uint64
	Auxv       []AuxEntry
	Executable bool
}

// AuxEntry is one auxiliary vector entry.
type AuxEntry struct{ Key, Val uint64 }

// Auxiliary vector keys.
const (
	AtNull        = 0
	AtPhdr        = 3
	AtPhent       = 4
	AtPhnum       = 5
	AtPagesz      = 6
	AtBase        = 7
	AtFlags       = 8
	AtEntry       = 9
	AtUID         = 11
	AtEUID        = 12
	AtGID         = 13
	AtEGID        = 14
	AtPlatform    = 15
	AtHWCap       = 16
	AtClktck      = 17
	AtSecure      = 23
	AtRandom      = 25
	AtHWCap2      = 26
	AtExecFn      = 31
	AtMinSigStkSz = 51
)

// ELF base for position-independent executables (Linux's ELF_ET_DYN_BASE
// for x86-64), before randomisation.
const pieBase = 0x555555554000

// CheckELF reads the header of f and explains in one line why it cannot
// run, or returns nil.
func CheckELF(f io.ReaderAt, name string) (*elf.File, error) {
	var ident [elf.EI_NIDENT]byte
	if n, _ := f.ReadAt(ident[:], 0); n < len(ident) || !bytes.Equal(ident[:4], []byte(elf.ELFMAG)) {
		if n >= 2 && ident[0] == '#' && ident[1] == '!' {
			return nil, errorf(unix.ENOEXEC, "%s: is a script (#!); scripts need the files support that is not built yet", name)
		}
		return nil, errorf(unix.ENOEXEC, "%s: not an ELF executable (exec format error)", name)
	}
	if elf.Class(ident[elf.EI_CLASS]) != elf.ELFCLASS64 {
		return nil, errorf(unix.ENOEXEC, "%s: 32-bit ELF; only 64-bit x86-64 programs run here", name)
	}
	if elf.Data(ident[elf.EI_DATA]) != elf.ELFDATA2LSB {
		return nil, errorf(unix.ENOEXEC, "%s: big-endian ELF; only x86-64 programs run here", name)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, errorf(unix.ENOEXEC, "%s: malformed ELF: %v", name, err)
	}
	if ef.Machine != elf.EM_X86_64 {
		return nil, errorf(unix.ENOEXEC, "%s: ELF for %v; only x86-64 programs run here", name, ef.Machine)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return nil, errorf(unix.ENOEXEC, "%s: ELF type %v is not an executable", name, ef.Type)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
			return nil, errorf(unix.ENOEXEC, "%s: dynamically linked (interpreter %s); only static programs run until the files support lands",
				name, string(bytes.TrimRight(interp, "\x00")))
		}
	}
	return ef, nil
}

func random(n uint64) uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) % n
}

func perms(f elf.ProgFlag) platform.AccessType {
	return platform.AccessType{Read: f&elf.PF_R != 0, Write: f&elf.PF_W != 0, Execute: f&elf.PF_X != 0}
}

func pageDown(v uint64) uint64 { return v &^ (mm.PageSize - 1) }
func pageUp(v uint64) uint64   { return (v + mm.PageSize - 1) &^ (mm.PageSize - 1) }

// Load loads a.File into m, which must be empty, and returns the image.
func Load(m *mm.MM, a Args) (*Image, error) {
	ef := a.ELF
	if ef == nil {
		var err error
		if ef, err = CheckELF(a.File, a.Name); err != nil {
			return nil, err
		}
	}
	min, max := m.Limits()

	// Layout: stack at the top (randomised by up to 1 GiB), then a gap of
	// the stack limit plus 128 MiB, then the mmap area growing down.
	stackSize := a.StackSize
	if stackSize == 0 || stackSize > 1<<30 {
		stackSize = 8 << 20
	}
	stackTop := pageDown(max - random(1<<30))
	m.SetMmapBase(pageDown(stackTop - stackSize - (128 << 20) - random(1<<32)))

	var bias uint64
	if ef.Type == elf.ET_DYN {
		bias = pageDown(pieBase + random(1<<32))
	}
	var (
		loads    []*elf.Prog
		phdrAddr uint64
		top      uint64
	)
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if p.Memsz == 0 {
				continue
			}
			if p.Filesz > p.Memsz || p.Vaddr%mm.PageSize != p.Off%mm.PageSize {
				return nil, errorf(unix.ENOEXEC, "%s: malformed ELF: bad PT_LOAD segment", a.Name)
			}
			loads = append(loads, p)
		case elf.PT_PHDR:
			phdrAddr = p.Vaddr + bias
		}
	}
	if len(loads) == 0 {
		return nil, errorf(unix.ENOEXEC, "%s: ELF has no loadable segments", a.Name)
	}
	phoff := elfPhoff(a.File)
	// Map segments in order; a page shared by two segments gets both
	// segments' permissions.
	var prevEnd uint64
	var prevPerms platform.AccessType
	for _, p := range loads {
		start, end := pageDown(p.Vaddr+bias), pageUp(p.Vaddr+bias+p.Memsz)
		if start < min || end > max || end < start || start < prevEnd && start+mm.PageSize < prevEnd {
			return nil, errorf(unix.ENOEXEC, "%s: segment at %#x does not fit the address space", a.Name, p.Vaddr+bias)
		}
		pp := perms(p.Flags)
		if start < prevEnd {
			union := platform.AccessType{Read: pp.Read || prevPerms.Read, Write: pp.Write || prevPerms.Write, Execute: pp.Execute || prevPerms.Execute}
			if err := m.MProtect(start, mm.PageSize, union); err != nil {
				return nil, errorf(unix.ENOMEM, "%s: mapping segment: %v", a.Name, err)
			}
			start = prevEnd
		}
		if start < end {
			if _, err := m.MMap(mm.MMapOpts{Addr: start, Length: end - start, Perms: pp, NoReplace: true, Populate: true}); err != nil {
				return nil, errorf(unix.ENOMEM, "%s: mapping segment at %#x: %v", a.Name, start, err)
			}
		}
		if p.Filesz > 0 {
			// Read the file straight into app memory.
			slices, err := m.ForceSlices(p.Vaddr+bias, int(p.Filesz))
			if err != nil {
				return nil, errorf(unix.ENOMEM, "%s: segment memory: %v", a.Name, err)
			}
			off := int64(p.Off)
			for _, b := range slices {
				if _, err := a.File.ReadAt(b, off); err != nil {
					return nil, errorf(unix.ENOEXEC, "%s: reading segment: %v", a.Name, err)
				}
				off += int64(len(b))
			}
		}
		if phdrAddr == 0 && phoff >= p.Off && phoff < p.Off+p.Filesz {
			phdrAddr = p.Vaddr + bias + (phoff - p.Off)
		}
		prevEnd, prevPerms = end, pp
		if end > top {
			top = end
		}
	}
	brk := top + pageDown(random(32<<20))
	m.SetBrkStart(brk)

	img := &Image{Entry: ef.Entry + bias, BrkStart: brk}
	if err := img.buildStack(m, a, stackTop, stackSize, phdrAddr, uint64(len(ef.Progs))); err != nil {
		return nil, err
	}
	return img, nil
}

func elfPhoff(f io.ReaderAt) uint64 {
	var b [8]byte
	f.ReadAt(b[:], 32) // e_phoff in ELF64
	return binary.LittleEndian.Uint64(b[:])
}

// buildStack maps the stack and writes argv, envp and auxv as Linux does:
// strings at the top, then the AT_RANDOM bytes, then (16-byte aligned) argc,
// argv pointers, envp pointers and the auxv pairs.
func (img *Image) buildStack(m *mm.MM, a Args, top, size, phdr, phnum uint64) error {
	if _, err := m.MMap(mm.MMapOpts{Addr: top - size, Length: size, Perms: platform.ReadWrite, Fixed: true, Populate: true, Name: "[stack]"}); err != nil {
		return errorf(unix.ENOMEM, "mapping the stack: %v", err)
	}
	var strs []byte
	sp := top
	push := func(b []byte) uint64 {
		sp -= uint64(len(b))
		strs = append(b, strs...)
		return sp
	}
	pushStr := func(s string) uint64 { return push(append([]byte(s), 0)) }
	execfn := pushStr(a.ExecFn)
	envp := make([]uint64, len(a.Envv))
	for i := len(a.Envv) - 1; i >= 0; i-- {
		envp[i] = pushStr(a.Envv[i])
	}
	argv := make([]uint64, len(a.Argv))
	for i := len(a.Argv) - 1; i >= 0; i-- {
		argv[i] = pushStr(a.Argv[i])
	}
	platformStr := pushStr("x86_64")
	rnd := make([]byte, 16)
	rand.Read(rnd)
	randomAddr := push(rnd)
	if top-sp > size/4 {
		return errorf(unix.E2BIG, "argument list and environment too long (%d bytes)", top-sp)
	}
	if err := m.WriteForce(sp, strs); err != nil {
		return errorf(unix.EFAULT, "writing the stack: %v", err)
	}

	img.Auxv = []AuxEntry{
		{AtHWCap, a.HWCap}, {AtPagesz, mm.PageSize}, {AtClktck, 100},
		{AtPhdr, phdr}, {AtPhent, 56}, {AtPhnum, phnum}, {AtBase, 0}, {AtFlags, 0},
		{AtEntry, img.Entry},
		{AtUID, uint64(a.Creds.UID)}, {AtEUID, uint64(a.Creds.EUID)},
		{AtGID, uint64(a.Creds.GID)}, {AtEGID, uint64(a.Creds.EGID)},
		{AtSecure, 0}, {AtRandom, randomAddr}, {AtHWCap2, a.HWCap2},
		{AtExecFn, execfn}, {AtPlatform, platformStr}, {AtMinSigStkSz, a.MinSigStkSz},
		{AtNull, 0},
	}
	var words []uint64
	words = append(words, uint64(len(argv)))
	words = append(words, argv...)
	words = append(words, 0)
	words = append(words, envp...)
	words = append(words, 0)
	for _, e := range img.Auxv {
		words = append(words, e.Key, e.Val)
	}
	sp = (sp - uint64(len(words))*8) &^ 15
	buf := make([]byte, len(words)*8)
	for i, w := range words {
		binary.LittleEndian.PutUint64(buf[i*8:], w)
	}
	if err := m.WriteForce(sp, buf); err != nil {
		return errorf(unix.EFAULT, "writing the stack: %v", err)
	}
	img.StackPtr = sp
	return nil
}
