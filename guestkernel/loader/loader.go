// Package loader owns turning an executable into a runnable address space:
// it follows #! lines, checks the ELF, maps its segments (and its program
// interpreter's, for a dynamically linked program) into a memory manager,
// lays out the stack with argv, envp and the auxiliary vector, and picks
// the randomised positions of the stack, the mmap area, the program break
// and a PIE's base.
package loader

import (
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"errors"
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
	ELF *elf.File
	// File is the ELF to load: an Executable from ResolveScript, or any
	// io.ReaderAt (an *os.File). Load does not close it.
	File io.ReaderAt
	Name string // for messages: the path of File
	// Argv is the argument vector; for a script, the one ResolveScript
	// returned.
	Argv []string
	Envv []string
	// ExecFn is AT_EXECFN: the path as given to execve, which for a #!
	// script is the script's path, not the interpreter's.
	ExecFn string
	// Opener opens the program interpreter a dynamically linked ELF
	// names (PT_INTERP); without one only static programs load.
	Opener      Opener
	Creds       Creds
	HWCap       uint64
	HWCap2      uint64
	MinSigStkSz uint64
	StackSize   uint64 // RLIMIT_STACK
}

// Image is a loaded program.
type Image struct {
	// Entry is where the app starts: the interpreter's entry point for a
	// dynamically linked program, the program's own otherwise.
	Entry    uint64
	StackPtr uint64
	BrkStart uint64
	Auxv     []AuxEntry
	// Interp is the program interpreter's path and InterpBase its load
	// bias (AT_BASE); both zero for a static program.
	Interp     string
	InterpBase uint64
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
// run, or returns nil. A dynamically linked ELF passes: Load opens its
// interpreter.
func CheckELF(f io.ReaderAt, name string) (*elf.File, error) {
	var ident [elf.EI_NIDENT]byte
	if n, _ := f.ReadAt(ident[:], 0); n < len(ident) || !bytes.Equal(ident[:4], []byte(elf.ELFMAG)) {
		if n >= 2 && ident[0] == '#' && ident[1] == '!' {
			// Scripts are ResolveScript's to follow before the ELF check.
			return nil, errorf(unix.ENOEXEC, "%s: not an ELF executable (it is a #! script)", name)
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
	return ef, nil
}

// interpPath returns the path in ef's first PT_INTERP (the only one Linux
// reads), or "" for a static program.
func interpPath(f io.ReaderAt, ef *elf.File, name string) (string, error) {
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		// Linux's bounds: a name and its NUL, at most PATH_MAX; checking
		// before reading keeps a hostile header from sizing our buffer.
		if p.Filesz < 2 || p.Filesz > unix.PathMax {
			return "", errorf(unix.ENOEXEC, "%s: malformed ELF: interpreter path of %d bytes (must be 2 to %d with its NUL)",
				name, p.Filesz, unix.PathMax)
		}
		buf := make([]byte, p.Filesz)
		if n, err := f.ReadAt(buf, int64(p.Off)); n < len(buf) {
			return "", errorf(unix.ENOEXEC, "%s: malformed ELF: reading the interpreter path: %v", name, err)
		}
		if buf[len(buf)-1] != 0 {
			return "", errorf(unix.ENOEXEC, "%s: malformed ELF: the interpreter path is not NUL-terminated", name)
		}
		// Linux opens it as a C string: an earlier NUL ends it.
		return string(buf[:bytes.IndexByte(buf, 0)]), nil
	}
	return "", nil
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

// Load loads a.File into m, which must be empty, and returns the image. A
// dynamically linked program's interpreter is opened with a.Opener and
// loaded too; the app then starts in the interpreter, which finds the
// program through AT_PHDR and AT_ENTRY.
func Load(m *mm.MM, a Args) (*Image, error) {
	ef := a.ELF
	if ef == nil {
		var err error
		if ef, err = CheckELF(a.File, a.Name); err != nil {
			return nil, err
		}
	}
	// Open and check the interpreter before touching m, so a missing
	// or bad one fails the exec cleanly, as on Linux.
	ipath, err := interpPath(a.File, ef, a.Name)
	if err != nil {
		return nil, err
	}
	var (
		iexe Executable
		ief  *elf.File
	)
	if ipath != "" {
		if iexe, ief, err = openInterp(a.Opener, a.Name, ipath); err != nil {
			return nil, err
		}
		defer iexe.Close() // its bytes are copied into m
	}
	_, top := m.Limits()

	// Layout: stack at the top (randomised by up to 1 GiB), then a gap of
	// the stack limit plus 128 MiB, then the mmap area growing down.
	stackSize := a.StackSize
	if stackSize == 0 || stackSize > 1<<30 {
		stackSize = 8 << 20
	}
	stackTop := pageDown(top - random(1<<30))
	m.SetMmapBase(pageDown(stackTop - stackSize - (128 << 20) - random(1<<32)))

	var bias uint64
	if ef.Type == elf.ET_DYN {
		// Linux aligns a PIE's bias to its largest PT_LOAD alignment so
		// segments asking for huge-page alignment get it.
		bias = pageDown(pieBase+random(1<<32)) &^ (maxAlign(ef) - 1)
	}
	prog, err := mapELF(m, a.File, ef, a.Name, bias, false)
	if err != nil {
		return nil, err
	}
	img := &Image{Entry: ef.Entry + prog.bias}
	atEntry := img.Entry
	if ief != nil {
		// An ET_DYN interpreter goes wherever the mmap allocator puts it
		// (below the randomised mmap base); an ET_EXEC one at its own
		// addresses.
		interp, err := mapELF(m, io.NewSectionReader(iexe, 0, iexe.Size()), ief, ipath, 0, ief.Type == elf.ET_DYN)
		if err != nil {
			return nil, interpError(err, a.Name, ipath, 0)
		}
		img.Interp, img.InterpBase = ipath, interp.bias
		img.Entry = ief.Entry + interp.bias
	}
	// The break follows the program, never the interpreter.
	img.BrkStart = prog.end + pageDown(random(32<<20))
	m.SetBrkStart(img.BrkStart)

	aux := stackAux{phdr: prog.phdr, phnum: uint64(len(ef.Progs)), base: img.InterpBase, entry: atEntry}
	if err := img.buildStack(m, a, stackTop, stackSize, aux); err != nil {
		return nil, err
	}
	return img, nil
}

// openInterp opens and checks the interpreter prog names.
func openInterp(o Opener, prog, path string) (Executable, *elf.File, error) {
	if o == nil {
		return nil, nil, errorf(unix.ENOEXEC, "%s: dynamically linked (interpreter %s); dynamic programs need a filesystem to load the interpreter from, and none was given",
			prog, path)
	}
	exe, err := o.OpenExecutable(path)
	if err != nil {
		return nil, nil, openError(err, fmt.Sprintf("%s: interpreter %s", prog, path))
	}
	// Linux answers ELIBBAD for an interpreter that is not an ELF for
	// this machine.
	ief, err := CheckELF(io.NewSectionReader(exe, 0, exe.Size()), path)
	if err == nil {
		var nested string
		if nested, err = interpPath(exe, ief, path); err == nil && nested != "" {
			// Linux ignores an interpreter's own PT_INTERP, and the app
			// then crashes in an unrelocated program; refusing says why.
			err = errorf(unix.ELIBBAD, "%s: names an interpreter itself (%s); an interpreter must be self-contained", path, nested)
		}
	}
	if err != nil {
		exe.Close()
		return nil, nil, interpError(err, prog, path, unix.ELIBBAD)
	}
	return exe, ief, nil
}

// interpError puts "prog: interpreter " before an error about the
// interpreter at path, keeping its errno unless errno is set.
func interpError(err error, prog, path string, errno unix.Errno) error {
	le, ok := err.(*Error)
	if !ok {
		return err
	}
	if errno == 0 {
		errno = le.Errno
	}
	return &Error{Errno: errno, Msg: fmt.Sprintf("%s: interpreter %s", prog, le.Msg)}
}

// openError turns an Opener's failure into an *Error: what, then why.
func openError(err error, what string) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return &Error{Errno: unix.EIO, Msg: fmt.Sprintf("%s: %v", what, err)}
	}
	if le, ok := err.(*Error); ok {
		return &Error{Errno: errno, Msg: fmt.Sprintf("%s: %s", what, le.Msg)}
	}
	// A bare errno reads best as its text ("no such file or directory");
	// a wrapped one (a *PathError) would repeat the path.
	return &Error{Errno: errno, Msg: fmt.Sprintf("%s: %v", what, errno)}
}

// maxAlign is the largest power-of-two PT_LOAD alignment of ef, at least a
// page (Linux's maximum_alignment).
func maxAlign(ef *elf.File) uint64 {
	align := uint64(mm.PageSize)
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Align&(p.Align-1) == 0 && p.Align > align && p.Align <= 1<<30 {
			align = p.Align
		}
	}
	return align
}

// placed is where mapELF put an ELF.
type placed struct {
	bias uint64 // added to every p_vaddr
	end  uint64 // page-aligned end of the highest segment
	phdr uint64 // the program headers in memory (AT_PHDR), 0 if not loaded
}

// mapELF maps ef's PT_LOAD segments, read from f, into m: at p_vaddr+bias,
// or, if anywhere, at a base m's mmap allocator picks. It is the one
// segment loader for programs and interpreters alike. As Linux does, it
// first reserves the whole span with one mapping, so the segments stay
// contiguous and nothing else can be placed between them, then maps each
// segment over its part and unmaps the holes between segments.
//
// Each segment is fresh anonymous memory holding exactly its file bytes,
// so its bss (Memsz beyond Filesz) reads as zeros, including the rest of
// the last file page, which Linux zeroes too (padzero) rather than showing
// the file's next bytes.
func mapELF(m *mm.MM, f io.ReaderAt, ef *elf.File, name string, bias uint64, anywhere bool) (placed, error) {
	var loads []*elf.Prog
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Filesz > p.Memsz || p.Vaddr%mm.PageSize != p.Off%mm.PageSize ||
			pageUp(p.Vaddr+p.Memsz) < p.Vaddr || p.Off+p.Filesz < p.Off { // no wrapping
			return placed{}, errorf(unix.ENOEXEC, "%s: malformed ELF: bad PT_LOAD segment", name)
		}
		loads = append(loads, p)
	}
	if len(loads) == 0 {
		return placed{}, errorf(unix.ENOEXEC, "%s: ELF has no loadable segments", name)
	}
	lo, hi := pageDown(loads[0].Vaddr), uint64(0)
	for _, p := range loads {
		lo, hi = min(lo, pageDown(p.Vaddr)), max(hi, pageUp(p.Vaddr+p.Memsz))
	}

	// Reserve the span. It has no permissions: every page of it that
	// stays is mapped over below.
	reserve := mm.MMapOpts{Length: hi - lo, Perms: platform.NoAccess}
	if anywhere {
		addr, err := m.MMap(reserve)
		if err != nil {
			return placed{}, errorf(unix.ENOMEM, "%s: no room for %d bytes of segments: %v", name, hi-lo, err)
		}
		bias = addr - lo
	} else {
		if limLo, limHi := m.Limits(); lo+bias < lo || lo+bias < limLo || hi+bias < hi || hi+bias > limHi {
			return placed{}, errorf(unix.ENOEXEC, "%s: segments at %#x-%#x do not fit the address space", name, lo+bias, hi+bias)
		}
		reserve.Addr, reserve.NoReplace = lo+bias, true
		if _, err := m.MMap(reserve); err != nil {
			return placed{}, errorf(unix.ENOMEM, "%s: mapping segments at %#x: %v", name, lo+bias, err)
		}
	}

	// Map segments in order; a page shared by two segments gets both
	// segments' permissions.
	prevEnd := lo + bias
	var prevPerms platform.AccessType
	for _, p := range loads {
		vaddr := p.Vaddr + bias
		start, end := pageDown(vaddr), pageUp(vaddr+p.Memsz)
		if start+mm.PageSize < prevEnd {
			return placed{}, errorf(unix.ENOEXEC, "%s: malformed ELF: segment at %#x overlaps the one before", name, p.Vaddr)
		}
		pp := perms(p.Flags)
		// lead is the part of the first page before the segment: an mmap
		// of the file shows the file's bytes there, and so do we. (The
		// bias is page-aligned, so lead <= p.Off.)
		lead := vaddr - start
		switch {
		case start < prevEnd:
			// The page holds the previous segment's end: keep its bytes.
			union := platform.AccessType{Read: pp.Read || prevPerms.Read, Write: pp.Write || prevPerms.Write, Execute: pp.Execute || prevPerms.Execute}
			if err := m.MProtect(start, mm.PageSize, union); err != nil {
				return placed{}, errorf(unix.ENOMEM, "%s: mapping segment: %v", name, err)
			}
			start, lead = prevEnd, 0
		case start > prevEnd:
			// Linux leaves the holes between segments unmapped.
			if err := m.MUnmap(prevEnd, start-prevEnd); err != nil {
				return placed{}, errorf(unix.ENOMEM, "%s: unmapping a segment gap: %v", name, err)
			}
		}
		if start < end {
			// Named after the file, so /proc/PID/maps shows the program.
			if _, err := m.MMap(mm.MMapOpts{Addr: start, Length: end - start, Perms: pp, Fixed: true, Populate: true, Name: name}); err != nil {
				return placed{}, errorf(unix.ENOMEM, "%s: mapping segment at %#x: %v", name, start, err)
			}
		}
		if p.Filesz > 0 {
			if err := readInto(m, f, vaddr-lead, p.Off-lead, p.Filesz+lead); err != nil {
				return placed{}, errorf(unix.ENOEXEC, "%s: reading segment at %#x: %v", name, p.Vaddr, err)
			}
		}
		prevEnd, prevPerms = end, pp
	}

	pl := placed{bias: bias, end: hi + bias}
	phoff := elfPhoff(f)
	for _, p := range ef.Progs {
		if p.Type == elf.PT_PHDR {
			pl.phdr = p.Vaddr + bias
			return pl, nil
		}
	}
	for _, p := range loads {
		if phoff >= p.Off && phoff < p.Off+p.Filesz {
			pl.phdr = p.Vaddr + bias + (phoff - p.Off)
			break
		}
	}
	return pl, nil
}

// readInto reads n bytes of f at off straight into app memory at addr,
// whatever its permissions.
func readInto(m *mm.MM, f io.ReaderAt, addr, off, n uint64) error {
	slices, err := m.ForceSlices(addr, int(n))
	if err != nil {
		return err
	}
	for _, b := range slices {
		got, err := f.ReadAt(b, int64(off))
		if got < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // the file ends inside the segment
			}
			return err
		}
		off += uint64(len(b))
	}
	return nil
}

func elfPhoff(f io.ReaderAt) uint64 {
	var b [8]byte
	f.ReadAt(b[:], 32) // e_phoff in ELF64
	return binary.LittleEndian.Uint64(b[:])
}

// stackAux is what the auxiliary vector says about the program: its
// program headers and entry, and the interpreter's base (0 if none).
type stackAux struct{ phdr, phnum, base, entry uint64 }

// buildStack maps the stack and writes argv, envp and auxv as Linux does:
// strings at the top, then the AT_RANDOM bytes, then (16-byte aligned) argc,
// argv pointers, envp pointers and the auxv pairs.
func (img *Image) buildStack(m *mm.MM, a Args, top, size uint64, aux stackAux) error {
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
		{AtPhdr, aux.phdr}, {AtPhent, 56}, {AtPhnum, aux.phnum}, {AtBase, aux.base}, {AtFlags, 0},
		{AtEntry, aux.entry},
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
