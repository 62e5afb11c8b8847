package mm

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/platform"
)

// fakeAS records what the memory manager installs, page by page. The
// memory manager serialises calls (asMu), so it needs no lock of its own.
type fakeAS struct {
	maps, unmaps int
	released     bool
	pages        map[uint64]fakePTE
	unmapped     [][2]uint64 // [addr, length) of each Unmap
}

// fakePTE is one installed page.
type fakePTE struct {
	off   uint64
	perms platform.AccessType
}

func (f *fakeAS) MapFile(addr uint64, off int64, length uint64, at platform.AccessType) error {
	f.maps++
	if f.pages == nil {
		f.pages = map[uint64]fakePTE{}
	}
	for i := uint64(0); i < length; i += PageSize {
		f.pages[addr+i] = fakePTE{uint64(off) + i, at}
	}
	return nil
}

func (f *fakeAS) Unmap(addr, length uint64) {
	f.unmaps++
	f.unmapped = append(f.unmapped, [2]uint64{addr, length})
	if length > 1<<30 { // the whole address space: don't walk it
		for a := range f.pages {
			if a >= addr && a-addr < length {
				delete(f.pages, a)
			}
		}
		return
	}
	for i := uint64(0); i < length; i += PageSize {
		delete(f.pages, addr+i)
	}
}

func (f *fakeAS) Release() { f.released = true }

const (
	lo = 0x10000
	hi = 0x7f0000000000
)

func newMM(t *testing.T) (*MM, *fakeAS, *memfile.File) {
	mf, err := memfile.New(1 << 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	as := &fakeAS{}
	m := New(mf, as, lo, hi)
	m.SetMmapBase(0x7e0000000000)
	return m, as, mf
}

func mustMap(t *testing.T, m *MM, o MMapOpts) uint64 {
	t.Helper()
	addr, err := m.MMap(o)
	if err != nil {
		t.Fatalf("MMap(%+v): %v", o, err)
	}
	return addr
}

func TestMMapPlacementTopDown(t *testing.T) {
	m, _, _ := newMM(t)
	a := mustMap(t, m, MMapOpts{Length: 3 * PageSize, Perms: platform.ReadWrite})
	b := mustMap(t, m, MMapOpts{Length: PageSize, Perms: platform.Read})
	if a != 0x7e0000000000-3*PageSize || b != a-PageSize {
		t.Fatalf("placed at %#x and %#x, want top-down below the mmap base", a, b)
	}
	if _, err := m.MMap(MMapOpts{Addr: b, Length: PageSize, NoReplace: true, Perms: platform.Read}); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("MAP_FIXED_NOREPLACE over a mapping: %v, want EEXIST", err)
	}
	if _, err := m.MMap(MMapOpts{Addr: 0x1000, Length: PageSize, Fixed: true}); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("MAP_FIXED below the minimum address: %v, want ENOMEM", err)
	}
}

func TestCopyAndFault(t *testing.T) {
	m, as, mf := newMM(t)
	a := mustMap(t, m, MMapOpts{Length: 4 * PageSize, Perms: platform.ReadWrite})
	msg := []byte("across a page boundary")
	if _, err := m.CopyOut(a+PageSize-5, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := m.CopyIn(a+PageSize-5, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("CopyIn = %q, %v", got, err)
	}
	if err := m.HandleFault(a, platform.NoAccess); err != nil {
		t.Fatalf("first fault in a RW mapping: %v", err)
	}
	var fe *FaultError
	if err := m.HandleFault(a, platform.NoAccess); !errors.As(err, &fe) || fe.Code != SegvAccErr {
		t.Fatalf("repeat fault on an installed page: %v, want SEGV_ACCERR", err)
	}
	if err := m.HandleFault(0x20000, platform.NoAccess); !errors.As(err, &fe) || fe.Code != SegvMapErr {
		t.Fatalf("fault outside any mapping: %v, want SEGV_MAPERR", err)
	}
	if as.maps != 1 {
		t.Fatalf("%d installs, want 1 for the whole VMA", as.maps)
	}
	// Copy-out to a read-only range fails.
	if err := m.MProtect(a, PageSize, platform.Read); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CopyOut(a, []byte{1}); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("CopyOut to read-only memory: %v, want EFAULT", err)
	}
	// Unmapping frees the memory-file range.
	before := mf.FreeBytes()
	if err := m.MUnmap(a, 4*PageSize); err != nil {
		t.Fatal(err)
	}
	if mf.FreeBytes() != before+4*PageSize {
		t.Fatalf("munmap freed %d bytes of the memory file, want %d", mf.FreeBytes()-before, 4*PageSize)
	}
	if len(m.VMAs()) != 0 {
		t.Fatalf("VMAs left after unmapping everything: %+v", m.VMAs())
	}
}

func TestMProtectSplitsAndMerges(t *testing.T) {
	m, _, _ := newMM(t)
	a := mustMap(t, m, MMapOpts{Length: 4 * PageSize, Perms: platform.ReadWrite})
	if err := m.MProtect(a+PageSize, PageSize, platform.Read); err != nil {
		t.Fatal(err)
	}
	if n := len(m.VMAs()); n != 3 {
		t.Fatalf("%d VMAs after protecting the middle, want 3", n)
	}
	if err := m.MProtect(a+PageSize, PageSize, platform.ReadWrite); err != nil {
		t.Fatal(err)
	}
	if n := len(m.VMAs()); n != 1 {
		t.Fatalf("%d VMAs after restoring, want 1 (merged)", n)
	}
	if err := m.MProtect(a+8*PageSize, PageSize, platform.Read); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("mprotect of unmapped memory: %v, want ENOMEM", err)
	}
}

func TestMRemapMoveKeepsContents(t *testing.T) {
	m, _, _ := newMM(t)
	a := mustMap(t, m, MMapOpts{Length: 2 * PageSize, Perms: platform.ReadWrite})
	mustMap(t, m, MMapOpts{Addr: a + 2*PageSize, Length: PageSize, Fixed: true, Perms: platform.Read}) // block growth in place
	if _, err := m.CopyOut(a+100, []byte("keep me")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.MRemap(a, 2*PageSize, 8*PageSize, 0, 0); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("growing without MAYMOVE into a mapping: %v, want ENOMEM", err)
	}
	b, err := m.MRemap(a, 2*PageSize, 8*PageSize, MremapMaymove, 0)
	if err != nil || b == a {
		t.Fatalf("MRemap = %#x, %v; want a move", b, err)
	}
	got := make([]byte, 7)
	if _, err := m.CopyIn(b+100, got); err != nil || string(got) != "keep me" {
		t.Fatalf("moved contents %q, %v", got, err)
	}
	if _, err := m.CopyIn(a+100, got); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("old range still readable after move: %v", err)
	}
	// Shrink in place.
	if c, err := m.MRemap(b, 8*PageSize, PageSize, 0, 0); err != nil || c != b {
		t.Fatalf("shrink = %#x, %v", c, err)
	}
}

func TestBrk(t *testing.T) {
	m, _, _ := newMM(t)
	m.SetBrkStart(0x500000)
	if got := m.Brk(0); got != 0x500000 {
		t.Fatalf("brk(0) = %#x", got)
	}
	if got := m.Brk(0x500000 + 10000); got != 0x500000+10000 {
		t.Fatalf("grow brk = %#x", got)
	}
	if _, err := m.CopyOut(0x500000+9999, []byte{1}); err != nil {
		t.Fatalf("writing below the break: %v", err)
	}
	if got := m.Brk(0x500000 + 100000); got != 0x500000+100000 {
		t.Fatalf("grow brk again = %#x", got)
	}
	if n := len(m.VMAs()); n != 1 {
		t.Fatalf("%d VMAs for the heap, want 1", n)
	}
	if got := m.Brk(0x500000 + 10); got != 0x500000+10 {
		t.Fatalf("shrink brk = %#x", got)
	}
	if _, err := m.CopyIn(0x500000+PageSize, make([]byte, 1)); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("reading above a shrunk break: %v, want EFAULT", err)
	}
}

func TestMAdviseDontneedZeroes(t *testing.T) {
	m, _, _ := newMM(t)
	a := mustMap(t, m, MMapOpts{Length: PageSize, Perms: platform.ReadWrite})
	m.CopyOut(a, []byte{7})
	if err := m.MAdvise(a, PageSize, madvDontneed); err != nil {
		t.Fatal(err)
	}
	b := []byte{1}
	m.CopyIn(a, b)
	if b[0] != 0 {
		t.Fatal("MADV_DONTNEED left private anonymous memory non-zero")
	}
}

func TestCopyInString(t *testing.T) {
	m, _, _ := newMM(t)
	a := mustMap(t, m, MMapOpts{Length: PageSize, Perms: platform.ReadWrite})
	m.CopyOut(a+PageSize-4, []byte("abc\x00"))
	if s, err := m.CopyInString(a+PageSize-4, 100); err != nil || s != "abc" {
		t.Fatalf("CopyInString = %q, %v", s, err)
	}
	m.CopyOut(a+PageSize-3, []byte("xyz"))
	if _, err := m.CopyInString(a+PageSize-3, 100); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("unterminated string at the end of a mapping: %v, want EFAULT", err)
	}
}
