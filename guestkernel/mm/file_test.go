package mm

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/platform"
)

// fakeFile is a Mappable whose data is pages of the memory file, like a
// tmpfs file. Unless contiguous its pages are in reverse order, so
// Translate returns runs of one page, else of the whole file.
type fakeFile struct {
	t  testing.TB
	mf *memfile.File

	mu         sync.Mutex
	pages      []uint64 // memory-file offset of each page
	size       uint64
	refs       int
	incs, decs int
	records    []fileRecord
	dirty      map[uint64]bool // page index → translated for write
	translates int
	synced     [][2]uint64
	// afterTranslate, if set, runs at the end of Translate with mu held:
	// a truncation or eviction landing between Translate and install.
	afterTranslate func()
}

type fileRecord struct {
	ms                MappingSpace
	addr, off, length uint64
	writable          bool
}

func newFakeFile(t testing.TB, mf *memfile.File, size uint64, contiguous bool) *fakeFile {
	f := &fakeFile{t: t, mf: mf, size: size, dirty: map[uint64]bool{}}
	n, _ := pageUp(size)
	n /= PageSize
	base, err := mf.Allocate(n * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < n; i++ {
		off := base + i*PageSize
		if !contiguous {
			off = base + (n-1-i)*PageSize
		}
		f.pages = append(f.pages, off)
		// Recognisable content: the page index in every byte.
		b := mf.Slice(off, PageSize)
		for j := range b {
			b[j] = byte('A' + i%26)
		}
	}
	return f
}

func (f *fakeFile) Translate(off, length uint64, forWrite bool) (uint64, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.translates++
	i := off / PageSize
	if off%PageSize != 0 || length == 0 {
		f.t.Errorf("Translate(%#x, %#x): not page aligned or empty", off, length)
	}
	end, _ := pageUp(f.size)
	if off >= end {
		return 0, 0, ErrPastEOF
	}
	n := uint64(PageSize)
	for n < length && off+n < end && f.pages[i+n/PageSize] == f.pages[i]+n {
		n += PageSize
	}
	if forWrite {
		for p := i; p < i+n/PageSize; p++ {
			f.dirty[p] = true
		}
	}
	if h := f.afterTranslate; h != nil {
		f.afterTranslate = nil
		h()
	}
	return f.pages[i], n, nil
}

func (f *fakeFile) AddMapping(ms MappingSpace, addr, off, length uint64, writable bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, fileRecord{ms, addr, off, length, writable})
}

func (f *fakeFile) RemoveMapping(ms MappingSpace, addr, off, length uint64, writable bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := fileRecord{ms, addr, off, length, writable}
	for i, r := range f.records {
		if r == want {
			f.records = append(f.records[:i], f.records[i+1:]...)
			return
		}
	}
	f.t.Errorf("RemoveMapping(%#x, %#x, %#x, %v) matches no AddMapping; have %v", addr, off, length, writable, f.records)
}

func (f *fakeFile) IncRef() {
	f.mu.Lock()
	f.refs++
	f.incs++
	f.mu.Unlock()
}

func (f *fakeFile) DecRef() {
	f.mu.Lock()
	f.refs--
	f.decs++
	if f.refs < 0 {
		f.t.Errorf("DecRef below zero")
	}
	f.mu.Unlock()
}

func (f *fakeFile) SyncRange(off, length uint64) error {
	f.mu.Lock()
	f.synced = append(f.synced, [2]uint64{off, length})
	f.mu.Unlock()
	return nil
}

// truncate shrinks the file, invalidating its mappings past the new end
// with its lock held, as a filesystem does.
func (f *fakeFile) truncate(size uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.size = size
	end, _ := pageUp(size)
	for _, r := range f.records {
		if r.off+r.length > end {
			s := max(r.off, end)
			r.ms.Invalidate(r.addr+(s-r.off), r.off+r.length-s)
		}
	}
}

// grow restores the file's size (its pages were never freed).
func (f *fakeFile) grow(size uint64) {
	f.mu.Lock()
	f.size = size
	f.mu.Unlock()
}

func (f *fakeFile) page(i uint64) []byte {
	return f.mf.Slice(f.pages[i], PageSize)
}

// checkRecords compares the file's mapping records with m's VMAs of f, and
// its references with their number.
func (f *fakeFile) checkRecords(t *testing.T, m *MM) {
	t.Helper()
	var want []string
	for _, v := range m.VMAs() {
		if v.mappable == Mappable(f) {
			want = append(want, fmt.Sprintf("%#x+%#x@%#x w=%v", v.Start, v.size(), v.Offset, v.Shared && v.maxPerms.Write))
		}
	}
	f.mu.Lock()
	var got []string
	for _, r := range f.records {
		got = append(got, fmt.Sprintf("%#x+%#x@%#x w=%v", r.addr, r.length, r.off, r.writable))
	}
	refs := f.refs
	f.mu.Unlock()
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("mapping records %v, want the VMAs %v", got, want)
	}
	if refs != len(want) {
		t.Errorf("%d references, want one per VMA (%d)", refs, len(want))
	}
}

func mapFile(t *testing.T, m *MM, f *fakeFile, length uint64, perms platform.AccessType, shared bool) uint64 {
	t.Helper()
	return mustMap(t, m, MMapOpts{Length: length, Perms: perms, Shared: shared,
		Mappable: f, MaxPerms: platform.AnyAccess, Dev: unix.Mkdev(8, 1), Ino: 42, Name: "/tmp/f"})
}

func fault(t *testing.T, m *MM, addr uint64, access platform.AccessType) {
	t.Helper()
	if err := m.HandleFault(addr, access); err != nil {
		t.Fatalf("fault at %#x (%v): %v", addr, access, err)
	}
}

func TestFileSharedFault(t *testing.T) {
	m, as, mf := newMM(t)
	f := newFakeFile(t, mf, 8*PageSize, true)
	a := mapFile(t, m, f, 8*PageSize, platform.ReadWrite, true)

	// A read installs the file's own pages, read-only, not dirty, and the
	// whole (32 KiB) VMA at once since the file is contiguous.
	fault(t, m, a+3*PageSize+5, platform.Read)
	for i := uint64(0); i < 8; i++ {
		p, ok := as.pages[a+i*PageSize]
		if !ok || p.off != f.pages[i] || p.perms != platform.Read {
			t.Fatalf("page %d installed as %+v (%v), want the file's page %#x read-only", i, p, ok, f.pages[i])
		}
	}
	if as.maps != 1 || len(f.dirty) != 0 {
		t.Fatalf("%d installs, dirty %v; want one install, nothing dirty", as.maps, f.dirty)
	}
	// A write upgrades just that page and dirties it.
	fault(t, m, a+3*PageSize, platform.AccessType{Write: true})
	if p := as.pages[a+3*PageSize]; p.perms != platform.ReadWrite || p.off != f.pages[3] || !f.dirty[3] || len(f.dirty) != 1 {
		t.Fatalf("after a write fault: %+v dirty %v", p, f.dirty)
	}
	// A repeat of an access the page allows (another thread won) is fine.
	fault(t, m, a+3*PageSize, platform.Read)

	// The Sentry's writes go to the file, and reads see it.
	if _, err := m.CopyOut(a+PageSize-2, []byte("xyzw")); err != nil {
		t.Fatal(err)
	}
	if got := string(f.page(0)[PageSize-2:]) + string(f.page(1)[:2]); got != "xyzw" {
		t.Fatalf("file holds %q after CopyOut, want xyzw", got)
	}
	if !f.dirty[0] || !f.dirty[1] {
		t.Fatalf("CopyOut did not translate for write: dirty %v", f.dirty)
	}
	copy(f.page(5)[10:], "from the file")
	got := make([]byte, 13)
	if _, err := m.CopyIn(a+5*PageSize+10, got); err != nil || string(got) != "from the file" {
		t.Fatalf("CopyIn = %q, %v", got, err)
	}
}

func TestFileSharedUnknownAccess(t *testing.T) {
	m, as, mf := newMM(t)
	f := newFakeFile(t, mf, 4*PageSize, false)
	a := mapFile(t, m, f, 4*PageSize, platform.ReadWrite, true)
	// The platform cannot tell the access: a writable shared mapping is
	// installed writable and translated for write.
	fault(t, m, a, platform.NoAccess)
	for i := uint64(0); i < 4; i++ {
		if p := as.pages[a+i*PageSize]; p.perms != platform.ReadWrite || p.off != f.pages[i] || !f.dirty[i] {
			t.Fatalf("page %d: %+v dirty %v", i, p, f.dirty[i])
		}
	}
	if as.maps != 4 {
		t.Fatalf("%d installs of a non-contiguous file, want one per page", as.maps)
	}
	var fe *FaultError
	if err := m.HandleFault(a, platform.NoAccess); !errors.As(err, &fe) || fe.Code != SegvAccErr || fe.Signo != int32(unix.SIGSEGV) {
		t.Fatalf("repeat fault: %v, want SIGSEGV SEGV_ACCERR", err)
	}
}

func TestFileFaultAround(t *testing.T) {
	m, as, mf := newMM(t)
	// Pages the Mappable has one by one: the aligned 64 KiB window.
	f := newFakeFile(t, mf, 64*PageSize, false)
	a := mapFile(t, m, f, 64*PageSize, platform.Read, false)
	if a%faultAround != 0 {
		t.Fatalf("test assumes an aligned mapping, got %#x", a)
	}
	fault(t, m, a+20*PageSize, platform.Read)
	if len(as.pages) != 16 {
		t.Fatalf("%d pages installed, want the 16 of the window", len(as.pages))
	}
	for i := uint64(16); i < 32; i++ {
		if _, ok := as.pages[a+i*PageSize]; !ok {
			t.Fatalf("page %d of the window not installed", i)
		}
	}
	// A fault next to an installed window installs only the gap.
	fault(t, m, a+15*PageSize, platform.Read)
	if len(as.pages) != 32 {
		t.Fatalf("%d pages installed, want 32", len(as.pages))
	}
	if _, ok := as.pages[a+32*PageSize]; ok {
		t.Fatal("a window spilled over installed pages")
	}

	// A contiguous file: the faulting page's run reaches the VMA's end
	// (but not over installed pages), in one install.
	g := newFakeFile(t, mf, 64*PageSize, true)
	b := mapFile(t, m, g, 64*PageSize, platform.Read, true)
	fault(t, m, b+60*PageSize, platform.Read) // installs [48, 64)
	n, maps := len(as.pages), as.maps
	fault(t, m, b+20*PageSize, platform.Read)
	if len(as.pages)-n != 32 || as.maps != maps+1 {
		t.Fatalf("%d pages in %d installs, want [16, 48) in one", len(as.pages)-n, as.maps-maps)
	}
	// Writes stay within the window: the Mappable dirties what it gives.
	c := mapFile(t, m, g, 64*PageSize, platform.ReadWrite, true)
	fault(t, m, c+20*PageSize, platform.AccessType{Write: true})
	if len(g.dirty) != 16 {
		t.Fatalf("a write fault dirtied %d pages, want the window's 16", len(g.dirty))
	}
}

func TestFilePrivateCOW(t *testing.T) {
	m, as, mf := newMM(t)
	f := newFakeFile(t, mf, 4*PageSize, true)
	a := mapFile(t, m, f, 4*PageSize, platform.ReadWrite, false)

	// Reads map the file's pages read-only although the VMA is writable.
	fault(t, m, a+PageSize, platform.Read)
	if p := as.pages[a+PageSize]; p.off != f.pages[1] || p.perms != platform.Read {
		t.Fatalf("read fault installed %+v, want the file page read-only", p)
	}
	// A write copies the page and maps the copy writable.
	fault(t, m, a+PageSize, platform.AccessType{Write: true})
	p := as.pages[a+PageSize]
	if p.off == f.pages[1] || p.perms != platform.ReadWrite {
		t.Fatalf("write fault installed %+v, want a private copy read-write", p)
	}
	if len(f.dirty) != 0 {
		t.Fatalf("a private mapping dirtied the file: %v", f.dirty)
	}
	// The app writes its copy; the file is unchanged; reads see the copy.
	copy(mf.Slice(p.off, PageSize), "app's own")
	if f.page(1)[0] != 'B' {
		t.Fatalf("the file's page changed: %q", f.page(1)[:9])
	}
	got := make([]byte, 9)
	if _, err := m.CopyIn(a+PageSize, got); err != nil || string(got) != "app's own" {
		t.Fatalf("CopyIn after a private write = %q, %v", got, err)
	}
	// The Sentry's writes copy too, and drop the installed file page.
	fault(t, m, a+2*PageSize, platform.Read)
	if _, err := m.CopyOut(a+2*PageSize+1, []byte("sentry")); err != nil {
		t.Fatal(err)
	}
	if _, ok := as.pages[a+2*PageSize]; ok {
		t.Fatal("the file's page stays installed after the Sentry copied it")
	}
	if f.page(2)[1] != 'C' {
		t.Fatal("CopyOut to a private mapping wrote the file")
	}
	got = make([]byte, 8)
	if _, err := m.CopyIn(a+2*PageSize, got); err != nil || string(got) != "Csentry"+"C" {
		t.Fatalf("CopyIn = %q, %v", got, err)
	}
	// A fault now installs the private copy, writable.
	fault(t, m, a+2*PageSize, platform.Read)
	if p := as.pages[a+2*PageSize]; p.perms != platform.ReadWrite || p.off == f.pages[2] {
		t.Fatalf("fault on a copied page installed %+v", p)
	}
	// The file changing under the mapping shows in uncopied pages only.
	copy(f.page(3), "new")
	copy(f.page(1), "new")
	if _, err := m.CopyIn(a+3*PageSize, got[:3]); err != nil || string(got[:3]) != "new" {
		t.Fatalf("uncopied page reads %q, want the file's", got[:3])
	}
	if _, err := m.CopyIn(a+PageSize, got[:3]); err != nil || string(got[:3]) != "app" {
		t.Fatalf("copied page reads %q, want the copy", got[:3])
	}
	// Unmapping frees the copies.
	before := mf.FreeBytes()
	if err := m.MUnmap(a, 4*PageSize); err != nil {
		t.Fatal(err)
	}
	if mf.FreeBytes() != before+4*PageSize {
		t.Fatalf("munmap freed %d bytes, want the private backing (%d)", mf.FreeBytes()-before, 4*PageSize)
	}
	f.checkRecords(t, m)
}

func TestFilePrivateUnknownAccess(t *testing.T) {
	m, as, mf := newMM(t)
	f := newFakeFile(t, mf, PageSize, true)
	a := mapFile(t, m, f, PageSize, platform.ReadWrite, false)
	fault(t, m, a, platform.NoAccess) // read-only file page first
	if p := as.pages[a]; p.perms != platform.Read || p.off != f.pages[0] {
		t.Fatalf("first fault: %+v", p)
	}
	fault(t, m, a, platform.NoAccess) // then it must be a write: copy
	if p := as.pages[a]; p.perms != platform.ReadWrite || p.off == f.pages[0] {
		t.Fatalf("second fault: %+v", p)
	}
	var fe *FaultError
	if err := m.HandleFault(a, platform.NoAccess); !errors.As(err, &fe) || fe.Code != SegvAccErr {
		t.Fatalf("third fault: %v, want SEGV_ACCERR", err)
	}
	// A read-only private mapping never copies.
	b := mapFile(t, m, f, PageSize, platform.Read, false)
	fault(t, m, b, platform.NoAccess)
	if err := m.HandleFault(b, platform.NoAccess); !errors.As(err, &fe) || fe.Code != SegvAccErr {
		t.Fatalf("repeat fault on a read-only private mapping: %v, want SEGV_ACCERR", err)
	}
	if err := m.HandleFault(b, platform.AccessType{Write: true}); !errors.As(err, &fe) || fe.Code != SegvAccErr {
		t.Fatalf("write fault on a read-only private mapping: %v, want SEGV_ACCERR", err)
	}
}

func TestFilePrivateDontneed(t *testing.T) {
	m, as, mf := newMM(t)
	f := newFakeFile(t, mf, 2*PageSize, true)
	a := mapFile(t, m, f, 2*PageSize, platform.ReadWrite, false)
	if _, err := m.CopyOut(a, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	fault(t, m, a, platform.AccessType{Write: true})
	fault(t, m, a+PageSize, platform.Read)
	if err := m.MAdvise(a, 2*PageSize, madvDontneed); err != nil {
		t.Fatal(err)
	}
	if len(as.pages) != 0 {
		t.Fatalf("pages still installed after MADV_DONTNEED: %v", as.pages)
	}
	got := make([]byte, 4)
	if _, err := m.CopyIn(a, got); err != nil || string(got) != "AAAA" {
		t.Fatalf("after MADV_DONTNEED the page reads %q, want the file's", got)
	}
	fault(t, m, a, platform.Read)
	if p := as.pages[a]; p.off != f.pages[0] {
		t.Fatalf("after MADV_DONTNEED a fault installs %+v, want the file page", p)
	}
	// Shared: just unmapped, data kept.
	b := mapFile(t, m, f, PageSize, platform.ReadWrite, true)
	m.CopyOut(b, []byte("kept"))
	fault(t, m, b, platform.Read)
	if err := m.MAdvise(b, PageSize, madvDontneed); err != nil {
		t.Fatal(err)
	}
	if _, ok := as.pages[b]; ok {
		t.Fatal("shared page still installed after MADV_DONTNEED")
	}
	if string(f.page(0)[:4]) != "kept" {
		t.Fatal("MADV_DONTNEED on a shared mapping lost file data")
	}
	if err := m.MAdvise(b, PageSize, madvFree); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("MADV_FREE on a file mapping: %v, want EINVAL", err)
	}
}

func TestFilePastEOF(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, PageSize+100, true)
	a := mapFile(t, m, f, 4*PageSize, platform.Read, true)
	fault(t, m, a+PageSize+200, platform.Read) // the file's partial last page
	var fe *FaultError
	err := m.HandleFault(a+2*PageSize+8, platform.Read)
	if !errors.As(err, &fe) || fe.Signo != int32(unix.SIGBUS) || fe.Code != BusAdrErr || fe.Addr != a+2*PageSize+8 {
		t.Fatalf("fault past EOF: %v (%+v), want SIGBUS BUS_ADRERR", err, fe)
	}
	if _, err := m.CopyIn(a+2*PageSize-2, make([]byte, 4)); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("CopyIn across EOF: %v, want EFAULT", err)
	}
	// A private write past EOF is SIGBUS too: there is nothing to copy.
	b := mapFile(t, m, f, 4*PageSize, platform.ReadWrite, false)
	if err := m.HandleFault(b+3*PageSize, platform.AccessType{Write: true}); !errors.As(err, &fe) || fe.Signo != int32(unix.SIGBUS) {
		t.Fatalf("private write past EOF: %v, want SIGBUS", err)
	}
	// Anonymous memory keeps SIGSEGV.
	if err := m.HandleFault(0x20000, platform.Read); !errors.As(err, &fe) || fe.Signo != int32(unix.SIGSEGV) || fe.Code != SegvMapErr {
		t.Fatalf("unmapped fault: %+v, want SIGSEGV SEGV_MAPERR", fe)
	}
}

func TestFileInvalidate(t *testing.T) {
	m, as, mf := newMM(t)
	f := newFakeFile(t, mf, 8*PageSize, true)
	a := mapFile(t, m, f, 8*PageSize, platform.Read, true)
	anon := mustMap(t, m, MMapOpts{Length: PageSize, Perms: platform.ReadWrite})
	fault(t, m, anon, platform.NoAccess)
	fault(t, m, a, platform.Read)
	n := f.translates

	f.truncate(5 * PageSize)
	for i := uint64(0); i < 8; i++ {
		if _, ok := as.pages[a+i*PageSize]; ok != (i < 5) {
			t.Fatalf("page %d installed %v after truncation to 5 pages", i, ok)
		}
	}
	if k := len(as.unmapped); k == 0 || as.unmapped[k-1] != [2]uint64{a + 5*PageSize, 3 * PageSize} {
		t.Fatalf("unmaps %v, want the last one [%#x, 3 pages)", as.unmapped, a+5*PageSize)
	}
	var fe *FaultError
	if err := m.HandleFault(a+6*PageSize, platform.Read); !errors.As(err, &fe) || fe.Signo != int32(unix.SIGBUS) {
		t.Fatalf("fault on a truncated page: %v, want SIGBUS", err)
	}
	f.grow(8 * PageSize)
	fault(t, m, a+6*PageSize, platform.Read)
	if f.translates == n {
		t.Fatal("no Translate after invalidation")
	}
	// A stale Invalidate of anonymous memory unmaps nothing.
	k := len(as.unmapped)
	m.Invalidate(anon, PageSize)
	if len(as.unmapped) != k || as.pages[anon] == (fakePTE{}) {
		t.Fatalf("Invalidate of an anonymous range unmapped it: %v", as.unmapped[k:])
	}
	// Private copies survive invalidation (they are reinstalled).
	b := mapFile(t, m, f, PageSize, platform.ReadWrite, false)
	m.CopyOut(b, []byte("copy"))
	fault(t, m, b, platform.Read)
	m.Invalidate(b, PageSize)
	if _, ok := as.pages[b]; ok {
		t.Fatal("Invalidate left the page installed")
	}
	got := make([]byte, 4)
	if m.CopyIn(b, got); string(got) != "copy" {
		t.Fatalf("private copy lost to Invalidate: %q", got)
	}
}

func TestFileRecordsAndRefs(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 16*PageSize, true)
	a := mapFile(t, m, f, 8*PageSize, platform.ReadWrite, true)
	f.checkRecords(t, m)
	steps := []struct {
		name string
		do   func() error
	}{
		{"split by mprotect", func() error { return m.MProtect(a+2*PageSize, 3*PageSize, platform.Read) }},
		{"merge back", func() error { return m.MProtect(a+2*PageSize, 3*PageSize, platform.ReadWrite) }},
		{"munmap the middle", func() error { return m.MUnmap(a+3*PageSize, PageSize) }},
		{"munmap the head", func() error { return m.MUnmap(a, PageSize) }},
		{"fill the hole with the same offsets (merges)", func() error {
			_, err := m.MMap(MMapOpts{Addr: a + 3*PageSize, Length: PageSize, Fixed: true, Perms: platform.ReadWrite, Shared: true,
				Mappable: f, Offset: 3 * PageSize, MaxPerms: platform.AnyAccess, Dev: unix.Mkdev(8, 1), Ino: 42, Name: "/tmp/f"})
			return err
		}},
		{"map the wrong offset next door (no merge)", func() error {
			_, err := m.MMap(MMapOpts{Addr: a, Length: PageSize, Fixed: true, Perms: platform.ReadWrite, Shared: true,
				Mappable: f, Offset: 9 * PageSize, MaxPerms: platform.AnyAccess, Dev: unix.Mkdev(8, 1), Ino: 42, Name: "/tmp/f"})
			return err
		}},
		{"mremap grow in place", func() error { _, err := m.MRemap(a+PageSize, 7*PageSize, 9*PageSize, 0, 0); return err }},
		{"mremap shrink", func() error { _, err := m.MRemap(a+PageSize, 9*PageSize, 5*PageSize, 0, 0); return err }},
		{"mremap move", func() error {
			_, err := m.MRemap(a+PageSize, 5*PageSize, 5*PageSize, MremapMaymove|MremapFixed, a+64*PageSize)
			return err
		}},
		{"mremap dontunmap", func() error {
			_, err := m.MRemap(a+64*PageSize, 2*PageSize, 2*PageSize, MremapMaymove|MremapDontunmap, 0)
			return err
		}},
		{"mremap duplicate", func() error { _, err := m.MRemap(a+65*PageSize, 0, 3*PageSize, MremapMaymove, 0); return err }},
		{"MAP_FIXED over part", func() error {
			_, err := m.MMap(MMapOpts{Addr: a + 66*PageSize, Length: PageSize, Fixed: true, Perms: platform.Read})
			return err
		}},
		{"munmap everything", func() error { return m.MUnmap(lo, hi-lo) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		t.Run(s.name, func(t *testing.T) { f.checkRecords(t, m) })
	}
	if f.refs != 0 || f.incs != f.decs || len(f.records) != 0 {
		t.Fatalf("after unmapping all: %d refs (%d IncRef, %d DecRef), records %v", f.refs, f.incs, f.decs, f.records)
	}
	// Release drops what is left too.
	mapFile(t, m, f, 2*PageSize, platform.Read, false)
	m.Release()
	if f.refs != 0 || len(f.records) != 0 {
		t.Fatalf("after Release: %d refs, records %v", f.refs, f.records)
	}
}

func TestFileMRemapKeepsData(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 16*PageSize, true)
	a := mapFile(t, m, f, 4*PageSize, platform.ReadWrite, false)
	mustMap(t, m, MMapOpts{Addr: a + 4*PageSize, Length: PageSize, Fixed: true, Perms: platform.Read}) // block growth
	if _, err := m.CopyOut(a+PageSize+7, []byte("private")); err != nil {
		t.Fatal(err)
	}
	b, err := m.MRemap(a, 4*PageSize, 8*PageSize, MremapMaymove, 0)
	if err != nil || b == a {
		t.Fatalf("MRemap = %#x, %v; want a move", b, err)
	}
	got := make([]byte, 7)
	if _, err := m.CopyIn(b+PageSize+7, got); err != nil || string(got) != "private" {
		t.Fatalf("moved private copy reads %q, %v", got, err)
	}
	// Uncopied pages, including the grown part, read the file at the
	// same offsets.
	for _, i := range []uint64{0, 2, 6} {
		if _, err := m.CopyIn(b+i*PageSize, got[:1]); err != nil || got[0] != byte('A'+i) {
			t.Fatalf("page %d reads %q, %v; want the file's", i, got[:1], err)
		}
	}
	vs := m.VMAs()
	for _, v := range vs {
		if v.Start == b && (v.Offset != 0 || v.End != b+8*PageSize) {
			t.Fatalf("moved VMA %+v, want offset 0 and 8 pages", v)
		}
	}
	f.checkRecords(t, m)
}

func TestFileMProtectAndMMapPerms(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 4*PageSize, true)
	ro := MMapOpts{Length: 2 * PageSize, Perms: platform.Read, Shared: true, Mappable: f, MaxPerms: platform.ReadExec}
	a := mustMap(t, m, ro)
	if err := m.MProtect(a, PageSize, platform.ReadWrite); !errors.Is(err, unix.EACCES) {
		t.Fatalf("mprotect a read-only file's shared mapping writable: %v, want EACCES", err)
	}
	if err := m.MProtect(a, PageSize, platform.ReadExec); err != nil {
		t.Fatalf("mprotect exec: %v", err)
	}
	rw := ro
	rw.Perms = platform.ReadWrite
	if _, err := m.MMap(rw); !errors.Is(err, unix.EACCES) {
		t.Fatalf("mmap a read-only file shared and writable: %v, want EACCES", err)
	}
	priv := ro
	priv.Shared = false
	b := mustMap(t, m, priv)
	if err := m.MProtect(b, PageSize, platform.ReadWrite); err != nil {
		t.Fatalf("mprotect a private file mapping writable: %v", err)
	}
	rw.Shared = false
	if _, err := m.MMap(rw); err != nil {
		t.Fatalf("mmap a read-only file private and writable: %v", err)
	}
	noRead := ro
	noRead.MaxPerms = platform.AccessType{Write: true}
	if _, err := m.MMap(noRead); !errors.Is(err, unix.EACCES) {
		t.Fatalf("mmap a write-only file: %v, want EACCES", err)
	}
	unaligned := ro
	unaligned.Offset = 100
	if _, err := m.MMap(unaligned); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("mmap at an unaligned offset: %v, want EINVAL", err)
	}
	f.checkRecords(t, m)
}

func TestMSync(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 8*PageSize, true)
	a := mustMap(t, m, MMapOpts{Length: 4 * PageSize, Perms: platform.ReadWrite, Shared: true, Mappable: f,
		Offset: 2 * PageSize, MaxPerms: platform.ReadWrite})
	for _, c := range []struct {
		addr, length uint64
		flags        int
		want         error
	}{
		{a, PageSize, 8, unix.EINVAL},
		{a, PageSize, MsSync | MsAsync, unix.EINVAL},
		{a + 1, PageSize, MsSync, unix.EINVAL},
		{a, 8 * PageSize, MsSync, unix.ENOMEM},
		{a - PageSize, PageSize, MsAsync, unix.ENOMEM},
		{a, 0, MsSync, nil},
		{a, 4 * PageSize, MsAsync | MsInvalidate, nil},
	} {
		if err := m.MSync(c.addr, c.length, c.flags); !errors.Is(err, c.want) && (err != nil || c.want != nil) {
			t.Errorf("msync(%#x, %#x, %d) = %v, want %v", c.addr, c.length, c.flags, err, c.want)
		}
	}
	f.synced = nil
	if err := m.MSync(a+PageSize, 100, MsSync); err != nil {
		t.Fatal(err)
	}
	if len(f.synced) != 1 || f.synced[0] != [2]uint64{3 * PageSize, PageSize} {
		t.Fatalf("SyncRange calls %v, want one of [3 pages, 1 page)", f.synced)
	}
	// Private mappings have nothing to write back.
	b := mustMap(t, m, MMapOpts{Length: PageSize, Perms: platform.ReadWrite, Mappable: f, MaxPerms: platform.Read})
	f.synced = nil
	if err := m.MSync(b, PageSize, MsSync); err != nil || len(f.synced) != 0 {
		t.Fatalf("msync of a private mapping: %v, SyncRange %v", err, f.synced)
	}
}

func TestMInCoreAndMLock(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 8*PageSize, true)
	a := mustMap(t, m, MMapOpts{Length: 2 * PageSize, Perms: platform.ReadWrite})
	b := mapFile(t, m, f, 2*PageSize, platform.Read, true)
	vec := make([]byte, 2)
	if err := m.MInCore(a, vec); err != nil || vec[0] != 0 {
		t.Fatalf("mincore of untouched memory = %v, %v", vec, err)
	}
	m.CopyOut(a, []byte{1})
	if err := m.MInCore(a, vec); err != nil || vec[0] != 1 || vec[1] != 1 {
		t.Fatalf("mincore of touched memory = %v, %v", vec, err)
	}
	if err := m.MInCore(b, vec); err != nil || vec[0] != 1 {
		t.Fatalf("mincore of a file mapping = %v, %v", vec, err)
	}
	if err := m.MInCore(a+1, vec); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("mincore unaligned: %v", err)
	}
	if err := m.MInCore(b-PageSize, vec); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("mincore from a hole: %v, want ENOMEM", err)
	}
	if err := m.MLock(a+5, 100); err != nil {
		t.Fatalf("mlock: %v", err)
	}
	if err := m.MLock(0x20000, PageSize); !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("mlock of unmapped memory: %v, want ENOMEM", err)
	}
}

func TestMapsLine(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 8*PageSize, true)
	m.SetBrkStart(0x555555559000)
	m.Brk(0x555555559000 + 3*PageSize)
	mustMap(t, m, MMapOpts{Addr: 0x7d947990c000, Fixed: true, Length: 38 * PageSize, Perms: platform.ReadExec,
		Mappable: f, Offset: PageSize, MaxPerms: platform.AnyAccess, Dev: unix.Mkdev(0xfe, 0), Ino: 325835,
		Name: "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"})
	mustMap(t, m, MMapOpts{Addr: 0x7d6373f68000, Fixed: true, Length: 34 * PageSize, Perms: platform.ReadWrite})
	mustMap(t, m, MMapOpts{Addr: 0x7d6aae337000, Fixed: true, Length: PageSize, Perms: platform.ReadWrite, Shared: true})
	mustMap(t, m, MMapOpts{Addr: 0x10000, Fixed: true, Length: PageSize, Perms: platform.AccessType{Write: true}, Shared: true,
		Mappable: f, MaxPerms: platform.AnyAccess, Dev: unix.Mkdev(0x103, 0x45), Ino: 7, Name: "/x"})
	var got []string
	for _, v := range m.VMAs() {
		got = append(got, v.MapsLine())
	}
	// Lines as Linux prints them (the first three copied from a host).
	want := []string{
		"00010000-00011000 -w-s 00000000 103:45 7                                 /x",
		"555555559000-55555555c000 rw-p 00000000 00:00 0                          [heap]",
		"7d6373f68000-7d6373f8a000 rw-p 00000000 00:00 0 ",
		"7d6aae337000-7d6aae338000 rw-s 00000000 00:00 0                          /dev/zero (deleted)",
		"7d947990c000-7d9479932000 r-xp 00001000 fe:00 325835                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("maps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFileInvalidateConcurrent truncates and regrows a file, invalidating
// from another goroutine with the file's lock held, while faults and
// copies run: under -race this checks the locking, and it would deadlock
// if Invalidate took the MM's lock.
func TestFileInvalidateConcurrent(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 32*PageSize, false)
	shared := mapFile(t, m, f, 32*PageSize, platform.ReadWrite, true)
	priv := mapFile(t, m, f, 32*PageSize, platform.ReadWrite, false)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f.truncate(uint64(i%32) * PageSize)
			f.grow(32 * PageSize)
			m.Invalidate(shared, 32*PageSize)
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	var buf [8]byte
	for i := 0; time.Now().Before(deadline); i++ {
		p := uint64(i%32) * PageSize
		acc := []platform.AccessType{platform.Read, {Write: true}, platform.NoAccess}[i%3]
		var fe *FaultError
		for _, a := range []uint64{shared + p, priv + p} {
			if err := m.HandleFault(a, acc); err != nil && !errors.As(err, &fe) {
				t.Fatalf("fault: %v", err)
			}
		}
		m.CopyIn(shared+p, buf[:])
		m.CopyOut(priv+p, buf[:])
		if i%50 == 0 {
			m.MProtect(priv, 32*PageSize, platform.Read)
			m.MProtect(priv, 32*PageSize, platform.ReadWrite)
		}
	}
	close(stop)
	wg.Wait()
	f.checkRecords(t, m)
}

func TestBitset(t *testing.T) {
	var b bitset
	for _, i := range []uint64{0, 3, 63, 64, 130, 200} {
		b.set(i)
	}
	has := func(b bitset, want ...uint64) {
		t.Helper()
		var got []uint64
		for i := uint64(0); i < 300; i++ {
			if b.has(i) {
				got = append(got, i)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("bits %v, want %v", got, want)
		}
	}
	has(b.slice(3, 131), 0, 60, 61, 127)
	has(b.slice(0, 64), 0, 3, 63)
	has(b.slice(201, 300))
	has(b.slice(0, 3).orAt(3, b.slice(3, 300)), 0, 3, 63, 64, 130, 200)
	has(b.slice(0, 70).orAt(70, b.slice(70, 300)), 0, 3, 63, 64, 130, 200)
	b.clear(1, 131)
	has(b, 0, 200)
	if b.count() != 2 {
		t.Fatalf("count %d", b.count())
	}
}

func TestInstSet(t *testing.T) {
	var s instSet
	r, w := platform.Read, platform.ReadWrite
	s.add(0x1000, 0x5000, r)
	s.add(0x5000, 0x6000, r) // merges
	s.add(0x2000, 0x3000, w) // splits
	s.remove(0x4000, 0x4800)
	want := "1000-2000 r-- 2000-3000 rw- 3000-4000 r-- 4800-6000 r-- "
	got := ""
	for _, r := range s {
		got += fmt.Sprintf("%x-%x %v ", r.start, r.end, r.perms)
	}
	if got != want {
		t.Fatalf("set %s, want %s", got, want)
	}
	if p, ok := s.lookup(0x2800); !ok || p != w {
		t.Fatal("lookup")
	}
	if lo, hi := s.gap(0x4000, 0, 0x10000); lo != 0x4000 || hi != 0x4800 {
		t.Fatalf("gap = %#x-%#x", lo, hi)
	}
	s.remove(0, 0x10000)
	if len(s) != 0 {
		t.Fatalf("set %v after removing all", s)
	}
}

func TestFileSpanAcrossPages(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 4*PageSize, false) // one page per run
	a := mapFile(t, m, f, 4*PageSize, platform.ReadWrite, true)
	got := make([]byte, 3*PageSize)
	if _, err := m.CopyIn(a+PageSize/2, got); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("A"), PageSize/2)
	want = append(want, bytes.Repeat([]byte("B"), PageSize)...)
	want = append(want, bytes.Repeat([]byte("C"), PageSize)...)
	want = append(want, bytes.Repeat([]byte("D"), PageSize/2)...)
	if !bytes.Equal(got, want) {
		t.Fatal("CopyIn across non-contiguous file pages read the wrong data")
	}
}

// TestFileInvalidateDuringFault truncates the file between the fault's
// Translate and its install: the stale translation must not be installed,
// and the retry sees the truncation (SIGBUS). An invalidation elsewhere
// does not make the fault translate again.
func TestFileInvalidateDuringFault(t *testing.T) {
	m, as, mf := newMM(t)
	f := newFakeFile(t, mf, 4*PageSize, true)
	a := mapFile(t, m, f, 4*PageSize, platform.Read, true)
	f.afterTranslate = func() {
		f.size = 0
		m.Invalidate(a, 4*PageSize)
	}
	var fe *FaultError
	if err := m.HandleFault(a, platform.Read); !errors.As(err, &fe) || fe.Signo != int32(unix.SIGBUS) {
		t.Fatalf("fault racing a truncation: %v, want SIGBUS", err)
	}
	if len(as.pages) != 0 {
		t.Fatalf("stale translation installed: %v", as.pages)
	}

	f.size = 4 * PageSize
	b := mapFile(t, m, f, 4*PageSize, platform.Read, true)
	f.afterTranslate = func() { m.Invalidate(a, 4*PageSize) } // not b's window
	n := f.translates
	fault(t, m, b, platform.Read)
	if f.translates != n+1 || len(as.pages) != 4 {
		t.Fatalf("%d Translate calls, %d pages installed; want 1 and 4", f.translates-n, len(as.pages))
	}
}

// TestFilePrivateSplitKeepsCopies splits, merges and grows a private file
// mapping with copied pages: each page keeps reading its copy or the file.
func TestFilePrivateSplitKeepsCopies(t *testing.T) {
	m, _, mf := newMM(t)
	f := newFakeFile(t, mf, 16*PageSize, true)
	a := mapFile(t, m, f, 8*PageSize, platform.ReadWrite, false)
	for _, i := range []uint64{1, 5, 7} {
		if _, err := m.CopyOut(a+i*PageSize, []byte{'0' + byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, n uint64) {
		t.Helper()
		for i := uint64(0); i < n; i++ {
			want := byte('A' + i)
			if i == 1 || i == 5 || i == 7 {
				want = '0' + byte(i)
			}
			got := []byte{0}
			if _, err := m.CopyIn(a+i*PageSize, got); err != nil || got[0] != want {
				t.Fatalf("%s: page %d reads %q, %v; want %q", what, i, got, err, want)
			}
		}
		f.checkRecords(t, m)
	}
	if err := m.MProtect(a+2*PageSize, 4*PageSize, platform.Read); err != nil {
		t.Fatal(err)
	}
	if n := len(m.VMAs()); n != 3 {
		t.Fatalf("%d VMAs after the split, want 3", n)
	}
	check("split", 8)
	if err := m.MProtect(a+2*PageSize, 4*PageSize, platform.ReadWrite); err != nil {
		t.Fatal(err)
	}
	if n := len(m.VMAs()); n != 1 {
		t.Fatalf("%d VMAs after merging back, want 1", n)
	}
	check("merged", 8)
	// Something now owns the memory file right after the copies, so
	// growing cannot extend the backing: the growth is a VMA of its own.
	anon := mustMap(t, m, MMapOpts{Length: PageSize, Perms: platform.ReadWrite})
	m.CopyOut(anon, []byte{1})
	if _, err := m.MRemap(a, 8*PageSize, 12*PageSize, 0, 0); err != nil {
		t.Fatal(err)
	}
	if n := len(m.VMAs()); n != 3 {
		t.Fatalf("%d VMAs after growing, want 3 (two of the file, one anonymous)", n)
	}
	check("grown", 12)
	if _, err := m.CopyOut(a+10*PageSize, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if f.page(10)[0] != 'K' {
		t.Fatal("writing the grown part wrote the file")
	}
}

func TestFilePopulateAndForceSlices(t *testing.T) {
	m, as, mf := newMM(t)
	f := newFakeFile(t, mf, 4*PageSize, false)
	a := mustMap(t, m, MMapOpts{Length: 6 * PageSize, Perms: platform.ReadWrite, Mappable: f, MaxPerms: platform.Read, Populate: true})
	if len(as.pages) != 4 {
		t.Fatalf("MAP_POPULATE installed %d pages, want the file's 4", len(as.pages))
	}
	for i := uint64(0); i < 4; i++ {
		if p := as.pages[a+i*PageSize]; p.perms != platform.Read || p.off != f.pages[i] {
			t.Fatalf("populated page %d: %+v, want the file's page read-only", i, p)
		}
	}
	// The loader writes through ForceSlices: a private mapping copies.
	sl, err := m.ForceSlices(a+PageSize-1, 2)
	if err != nil || len(sl) != 2 {
		t.Fatalf("ForceSlices = %d slices, %v", len(sl), err)
	}
	sl[0][0], sl[1][0] = '!', '?'
	if f.page(0)[PageSize-1] != 'A' || f.page(1)[0] != 'B' {
		t.Fatal("ForceSlices wrote the file through a private mapping")
	}
	if _, ok := as.pages[a]; ok {
		t.Fatal("the file's page stays installed under a private copy")
	}
	got := make([]byte, 2)
	if _, err := m.CopyIn(a+PageSize-1, got); err != nil || string(got) != "!?" {
		t.Fatalf("CopyIn = %q, %v", got, err)
	}
}
