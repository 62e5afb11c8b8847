package pagetables

import (
	"errors"
	"testing"
)

const (
	kib = uint64(1) << 10
	mib = uint64(1) << 20
	gib = uint64(1) << 30

	rw   = Read | Write
	rwu  = Read | Write | User
	rxu  = Read | Execute | User
	rwxu = Read | Write | Execute | User
)

func newTestPT(tb testing.TB, a Allocator, opts Options) *PageTables {
	tb.Helper()
	pt, err := New(a, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return pt
}

// checkStructure verifies the invariants Unmap maintains and returns the
// number of table pages pt owns: no table below the PML4 is empty except
// upper-half PDPTs, and OwnedPages matches what is reachable.
func checkStructure(tb testing.TB, pt *PageTables) {
	tb.Helper()
	var count func(t *[512]uint64, level int, emptyOK bool) int
	count = func(t *[512]uint64, level int, emptyOK bool) int {
		if !emptyOK && isEmpty(t) {
			tb.Errorf("empty level-%d table left behind", level)
		}
		n := 1
		for i, e := range t {
			if e&entryPresent == 0 {
				continue
			}
			if isLeaf(e, level) {
				checkLeaf(tb, e, level)
				continue
			}
			if e&^addrMask != tableBits {
				tb.Errorf("level-%d table entry %d = %#x, want table bits %#x", level, i, e, tableBits)
			}
			upper := level == topLevel && i >= upperIndex
			if upper && pt.shared {
				continue
			}
			n += count(pt.alloc.Lookup(e&addrMask), level-1, upper)
		}
		return n
	}
	if n := count(pt.top, topLevel, true); n != pt.OwnedPages() {
		tb.Errorf("reachable table pages = %d, OwnedPages = %d", n, pt.OwnedPages())
	}
}

// checkLeaf checks the raw encoding of a leaf entry: only bits this
// package (or the hardware, A/D) sets, no PAT bit in a PTE, and an
// address aligned to the leaf's size.
func checkLeaf(tb testing.TB, e uint64, level int) {
	tb.Helper()
	known := addrMask | entryPresent | entryWrite | entryUser | entryAccessed | entryDirty | entryGlobal | entryNX
	if level > 0 {
		known |= entryPS
	}
	if e&^known != 0 || e&addrMask&(uint64(1)<<shift(level)-1) != 0 {
		tb.Errorf("bad level-%d leaf %#x", level, e)
	}
}

type opKind int

const (
	opMap opKind = iota
	opUnmap
	opProtect
)

type op struct {
	kind         opKind
	virt, length uint64
	phys         uint64
	perms        Perms
	flush        bool
}

type probe struct {
	virt  uint64
	phys  uint64
	perms Perms
	size  uint64 // 0: expect not mapped
}

func mapOp(virt, phys, length uint64, p Perms, flush bool) op {
	return op{opMap, virt, length, phys, p, flush}
}
func unmapOp(virt, length uint64, flush bool) op { return op{opUnmap, virt, length, 0, 0, flush} }
func protectOp(virt, length uint64, p Perms, flush bool) op {
	return op{opProtect, virt, length, 0, p, flush}
}

func TestOperations(t *testing.T) {
	large := Options{LargePages: true}
	huge := Options{LargePages: true, HugePages: true}
	const upper = upperStart
	for _, tc := range []struct {
		name   string
		opts   Options
		ops    []op
		probes []probe
		tables int // OwnedPages afterwards
	}{
		{
			name:   "map one page",
			ops:    []op{mapOp(0x1000, 0x5000, 4*kib, rwu, false)},
			probes: []probe{{0x1000, 0x5000, rwu, 4 * kib}, {0x1fff, 0x5fff, rwu, 4 * kib}, {0x2000, 0, 0, 0}, {0, 0, 0, 0}},
			tables: 4,
		},
		{
			name: "read-only and execute-only",
			ops: []op{
				mapOp(0x1000, 0x5000, 4*kib, Read, false),
				mapOp(0x2000, 0x6000, 4*kib, Execute, false),
				mapOp(0x3000, 0x7000, 4*kib, Write|Global, false),
			},
			probes: []probe{{0x1000, 0x5000, Read, 4 * kib}, {0x2000, 0x6000, Read | Execute, 4 * kib}, {0x3000, 0x7000, Read | Write | Global, 4 * kib}},
			tables: 4,
		},
		{
			name:   "remap replaces and asks for a flush",
			ops:    []op{mapOp(0x1000, 0x5000, 8*kib, rwu, false), mapOp(0x2000, 0x9000, 4*kib, rxu, true)},
			probes: []probe{{0x1000, 0x5000, rwu, 4 * kib}, {0x2000, 0x9000, rxu, 4 * kib}},
			tables: 4,
		},
		{
			name:   "identical remap needs no flush",
			ops:    []op{mapOp(0x1000, 0x5000, 8*kib, rwu, false), mapOp(0x1000, 0x5000, 8*kib, rwu, false)},
			probes: []probe{{0x2000, 0x6000, rwu, 4 * kib}},
			tables: 4,
		},
		{
			name:   "unmap frees empty tables",
			ops:    []op{mapOp(0x7000_0000, 0x5000, 16*kib, rwu, false), unmapOp(0x7000_0000, 16*kib, true)},
			probes: []probe{{0x7000_0000, 0, 0, 0}},
			tables: 1,
		},
		{
			name:   "unmap keeps tables still in use",
			ops:    []op{mapOp(0x1000, 0x5000, 16*kib, rwu, false), unmapOp(0x2000, 4*kib, true)},
			probes: []probe{{0x1000, 0x5000, rwu, 4 * kib}, {0x2000, 0, 0, 0}, {0x3000, 0x7000, rwu, 4 * kib}},
			tables: 4,
		},
		{
			name:   "unmap of nothing",
			ops:    []op{mapOp(0x1000, 0x5000, 4*kib, rwu, false), unmapOp(0x10_0000_0000, 4*gib, false)},
			probes: []probe{{0x1000, 0x5000, rwu, 4 * kib}},
			tables: 4,
		},
		{
			name:   "2 MiB pages when aligned and allowed",
			opts:   large,
			ops:    []op{mapOp(2*mib, 6*mib, 4*mib, rwu, false)},
			probes: []probe{{2 * mib, 6 * mib, rwu, 2 * mib}, {4*mib + 5, 8*mib + 5, rwu, 2 * mib}, {6 * mib, 0, 0, 0}},
			tables: 3,
		},
		{
			name:   "4 KiB pages when large pages are off",
			ops:    []op{mapOp(2*mib, 6*mib, 4*mib, rwu, false)},
			probes: []probe{{2 * mib, 6 * mib, rwu, 4 * kib}, {6*mib - 4*kib, 10*mib - 4*kib, rwu, 4 * kib}},
			tables: 5,
		},
		{
			name:   "4 KiB pages when physical is misaligned",
			opts:   large,
			ops:    []op{mapOp(2*mib, 6*mib+4*kib, 2*mib, rwu, false)},
			probes: []probe{{2 * mib, 6*mib + 4*kib, rwu, 4 * kib}},
			tables: 4,
		},
		{
			name:   "mixed sizes in one range",
			opts:   large,
			ops:    []op{mapOp(2*mib-4*kib, 4*mib-4*kib, 2*mib+8*kib, rwu, false)},
			probes: []probe{{2*mib - 4*kib, 4*mib - 4*kib, rwu, 4 * kib}, {2 * mib, 4 * mib, rwu, 2 * mib}, {4 * mib, 6 * mib, rwu, 4 * kib}, {4*mib + 4*kib, 0, 0, 0}},
			tables: 5, // PML4, PDPT, PD, two PTs
		},
		{
			name:   "1 GiB pages when allowed",
			opts:   huge,
			ops:    []op{mapOp(gib, 3*gib, gib, rwxu, false)},
			probes: []probe{{gib + 12345, 3*gib + 12345, rwxu, gib}},
			tables: 2,
		},
		{
			name:   "2 MiB pages when 1 GiB pages are off",
			opts:   large,
			ops:    []op{mapOp(gib, 3*gib, gib, rwxu, false)},
			probes: []probe{{gib + 12345, 3*gib + 12345, rwxu, 2 * mib}},
			tables: 3,
		},
		{
			name:   "range crossing a PML4 slot",
			ops:    []op{mapOp(512*gib-4*kib, 0x5000, 8*kib, rwu, false)},
			probes: []probe{{512*gib - 4*kib, 0x5000, rwu, 4 * kib}, {512 * gib, 0x6000, rwu, 4 * kib}},
			tables: 7,
		},
		{
			name: "protect changes permissions",
			ops: []op{
				mapOp(0x1000, 0x5000, 12*kib, rwxu, false),
				protectOp(0x2000, 4*kib, Read|User, true),
				protectOp(0x2000, 4*kib, Read|User, false),
			},
			probes: []probe{{0x1000, 0x5000, rwxu, 4 * kib}, {0x2000, 0x6000, Read | User, 4 * kib}, {0x3000, 0x7000, rwxu, 4 * kib}},
			tables: 4,
		},
		{
			name:   "protect creates no mappings",
			ops:    []op{mapOp(0x1000, 0x5000, 4*kib, rwu, false), protectOp(0, 64*kib, rxu, true)},
			probes: []probe{{0, 0, 0, 0}, {0x1000, 0x5000, rxu, 4 * kib}, {0x2000, 0, 0, 0}},
			tables: 4,
		},
		{
			name:   "protect of nothing",
			ops:    []op{protectOp(0, gib, rxu, false)},
			tables: 1,
		},
		{
			name:   "unmap part of a 2 MiB page splits it",
			opts:   large,
			ops:    []op{mapOp(2*mib, 6*mib, 2*mib, rwu, false), unmapOp(3*mib, 4*kib, true)},
			probes: []probe{{2 * mib, 6 * mib, rwu, 4 * kib}, {3 * mib, 0, 0, 0}, {3*mib + 4*kib, 7*mib + 4*kib, rwu, 4 * kib}, {4*mib - 1, 8*mib - 1, rwu, 4 * kib}},
			tables: 4,
		},
		{
			name:   "unmap across two 2 MiB pages splits both",
			opts:   large,
			ops:    []op{mapOp(2*mib, 6*mib, 4*mib, rwu, false), unmapOp(3*mib, 2*mib, true)},
			probes: []probe{{3*mib - 4*kib, 7*mib - 4*kib, rwu, 4 * kib}, {3 * mib, 0, 0, 0}, {5*mib - 4*kib, 0, 0, 0}, {5 * mib, 9 * mib, rwu, 4 * kib}},
			tables: 5,
		},
		{
			name:   "unmap a whole 2 MiB page",
			opts:   large,
			ops:    []op{mapOp(2*mib, 6*mib, 2*mib, rwu, false), unmapOp(2*mib, 2*mib, true)},
			probes: []probe{{2 * mib, 0, 0, 0}},
			tables: 1,
		},
		{
			name:   "protect part of a 2 MiB page splits it",
			opts:   large,
			ops:    []op{mapOp(2*mib, 6*mib, 2*mib, rwu, false), protectOp(3*mib, 4*kib, Read|User, true)},
			probes: []probe{{2 * mib, 6 * mib, rwu, 4 * kib}, {3 * mib, 7 * mib, Read | User, 4 * kib}, {3*mib + 4*kib, 7*mib + 4*kib, rwu, 4 * kib}},
			tables: 4,
		},
		{
			name:   "protect a whole 2 MiB page keeps it",
			opts:   large,
			ops:    []op{mapOp(2*mib, 6*mib, 2*mib, rwu, false), protectOp(2*mib, 2*mib, Read|User, true)},
			probes: []probe{{2 * mib, 6 * mib, Read | User, 2 * mib}},
			tables: 3,
		},
		{
			name:   "protect part of a 2 MiB page without change does not split",
			opts:   large,
			ops:    []op{mapOp(2*mib, 6*mib, 2*mib, rwu, false), protectOp(3*mib, 4*kib, rwu, false)},
			probes: []probe{{3 * mib, 7 * mib, rwu, 2 * mib}},
			tables: 3,
		},
		{
			name:   "map 4 KiB inside a 1 GiB page splits twice",
			opts:   huge,
			ops:    []op{mapOp(gib, 3*gib, gib, rwu, false), mapOp(gib+3*mib+4*kib, 0x5000, 4*kib, rxu, true)},
			probes: []probe{{gib, 3 * gib, rwu, 2 * mib}, {gib + 3*mib, 3*gib + 3*mib, rwu, 4 * kib}, {gib + 3*mib + 4*kib, 0x5000, rxu, 4 * kib}, {gib + 5*mib, 3*gib + 5*mib, rwu, 2 * mib}, {2*gib - 1, 4*gib - 1, rwu, 2 * mib}},
			tables: 4,
		},
		{
			name:   "2 MiB page over 4 KiB pages frees their table",
			opts:   large,
			ops:    []op{mapOp(2*mib, 0x5000, 8*kib, rwu, false), mapOp(2*mib, 6*mib, 2*mib, rxu, true)},
			probes: []probe{{2 * mib, 6 * mib, rxu, 2 * mib}, {2*mib + 4*kib, 6*mib + 4*kib, rxu, 2 * mib}},
			tables: 3,
		},
		{
			name:   "1 GiB page over a populated directory frees it",
			opts:   huge,
			ops:    []op{mapOp(gib, 0x5000, 8*kib, rwu, false), mapOp(gib+2*mib, 6*mib, 2*mib, rwu, false), mapOp(gib, 3*gib, gib, rwu, true)},
			probes: []probe{{gib, 3 * gib, rwu, gib}},
			tables: 2,
		},
		{
			name:   "upper half in an unshared table",
			ops:    []op{mapOp(upper, 0x5000, 4*kib, Read|Execute|Global, false), mapOp(^uint64(0)-4*kib+1, 0x6000, 4*kib, rw, false)},
			probes: []probe{{upper, 0x5000, Read | Execute | Global, 4 * kib}, {^uint64(0), 0x6fff, rw, 4 * kib}},
			tables: 7,
		},
		{
			name:   "unmap in the upper half keeps the PDPT",
			ops:    []op{mapOp(upper, 0x5000, 4*kib, rw, false), unmapOp(upper, 1<<47, true)},
			probes: []probe{{upper, 0, 0, 0}},
			tables: 2,
		},
		{
			name:   "length zero is a no-op",
			ops:    []op{mapOp(0x1000, 0x5000, 0, rw, false), unmapOp(0x1000, 0, false), protectOp(0x1000, 0, rw, false)},
			probes: []probe{{0x1000, 0, 0, 0}},
			tables: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAlloc(t, 64)
			pt := newTestPT(t, a, tc.opts)
			for i, o := range tc.ops {
				var flush bool
				var err error
				switch o.kind {
				case opMap:
					flush, err = pt.Map(o.virt, o.phys, o.length, o.perms)
				case opUnmap:
					flush, err = pt.Unmap(o.virt, o.length)
				case opProtect:
					flush, err = pt.Protect(o.virt, o.length, o.perms)
				}
				if err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
				if flush != o.flush {
					t.Errorf("op %d: flush = %v, want %v", i, flush, o.flush)
				}
			}
			for _, p := range tc.probes {
				phys, perms, size, ok := pt.Lookup(p.virt)
				if ok != (p.size != 0) || phys != p.phys || perms != p.perms || size != p.size {
					t.Errorf("Lookup(%#x) = %#x %v %#x %v; want %#x %v %#x %v", p.virt, phys, perms, size, ok, p.phys, p.perms, p.size, p.size != 0)
				}
			}
			if pt.OwnedPages() != tc.tables {
				t.Errorf("OwnedPages = %d, want %d", pt.OwnedPages(), tc.tables)
			}
			checkStructure(t, pt)
			pt.Release()
			if a.FreeCount() != a.Pages() {
				t.Errorf("after Release FreeCount = %d, want %d", a.FreeCount(), a.Pages())
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	a := newTestAlloc(t, 16)
	pt := newTestPT(t, a, Options{})
	top := ^uint64(0) - PageSize + 1
	for _, tc := range []struct {
		name string
		err  error
		f    func() (bool, error)
	}{
		{"unaligned virt", ErrUnaligned, func() (bool, error) { return pt.Map(0x1001, 0, PageSize, rw) }},
		{"unaligned phys", ErrUnaligned, func() (bool, error) { return pt.Map(0x1000, 0x10, PageSize, rw) }},
		{"unaligned length", ErrUnaligned, func() (bool, error) { return pt.Map(0x1000, 0, 100, rw) }},
		{"non-canonical start", ErrNonCanonical, func() (bool, error) { return pt.Map(lowerEnd, 0, PageSize, rw) }},
		{"non-canonical hole", ErrNonCanonical, func() (bool, error) { return pt.Map(0x0000_9000_0000_0000, 0, PageSize, rw) }},
		{"range runs off the lower half", ErrNonCanonical, func() (bool, error) { return pt.Map(lowerEnd-PageSize, 0, 2*PageSize, rw) }},
		{"range spans the hole", ErrNonCanonical, func() (bool, error) { return pt.Map(0, 0, upperStart+PageSize, rw) }},
		{"range wraps", ErrNonCanonical, func() (bool, error) { return pt.Map(top, 0, 2*PageSize, rw) }},
		{"physical too large", ErrPhysRange, func() (bool, error) { return pt.Map(0, maxPhys, PageSize, rw) }},
		{"physical range too large", ErrPhysRange, func() (bool, error) { return pt.Map(0, maxPhys-PageSize, 2*PageSize, rw) }},
		{"no access", ErrBadPerms, func() (bool, error) { return pt.Map(0, 0, PageSize, User|Global) }},
		{"unknown perms", ErrBadPerms, func() (bool, error) { return pt.Map(0, 0, PageSize, Read|1<<7) }},
		{"unmap unaligned", ErrUnaligned, func() (bool, error) { return pt.Unmap(0x1000, 0x800) }},
		{"unmap non-canonical", ErrNonCanonical, func() (bool, error) { return pt.Unmap(0x0000_8000_0000_0000, PageSize) }},
		{"protect non-canonical", ErrNonCanonical, func() (bool, error) { return pt.Protect(0xffff_0000_0000_0000, PageSize, rw) }},
		{"protect no access", ErrBadPerms, func() (bool, error) { return pt.Protect(0, PageSize, 0) }},
		{"prepare lower half", ErrNonCanonical, func() (bool, error) { return false, pt.PrepareUpperHalf(0, PageSize) }},
	} {
		flush, err := tc.f()
		if !errors.Is(err, tc.err) || flush {
			t.Errorf("%s: flush %v, err %v; want %v", tc.name, flush, err, tc.err)
		}
	}
	if pt.OwnedPages() != 1 {
		t.Errorf("failed calls allocated tables: OwnedPages = %d", pt.OwnedPages())
	}
	// The very top page is fine.
	if _, err := pt.Map(top, 0x5000, PageSize, rw); err != nil {
		t.Errorf("Map of the top page: %v", err)
	}
	for _, v := range []uint64{lowerEnd, 0x0000_9000_0000_0000, 0xffff_7fff_ffff_f000} {
		if _, _, _, ok := pt.Lookup(v); ok {
			t.Errorf("Lookup(%#x) of a non-canonical address succeeded", v)
		}
	}
	if _, err := New(a, Options{PCID: 1 << 12}); err == nil {
		t.Error("New accepted a 13-bit PCID")
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New accepted a nil allocator")
	}
}

// rawEntry returns the entry mapping virt at level (3 = PML4 .. 0 = PT).
func rawEntry(pt *PageTables, virt uint64, level int) uint64 {
	t := pt.top
	for l := topLevel; l > level; l-- {
		t = pt.alloc.Lookup(t[index(virt, l)] & addrMask)
	}
	return t[index(virt, level)]
}

func TestEntryEncoding(t *testing.T) {
	a := newTestAlloc(t, 16)
	pt := newTestPT(t, a, Options{LargePages: true, PCID: 5})
	if pt.Root()&pageMask != 0 || pt.Root() < testBase || pt.CR3() != pt.Root()|5 {
		t.Errorf("Root %#x CR3 %#x", pt.Root(), pt.CR3())
	}
	if pt2 := newTestPT(t, a, Options{}); pt2.CR3() != pt2.Root() {
		t.Errorf("CR3 without PCID = %#x, Root %#x", pt2.CR3(), pt2.Root())
	}
	for _, tc := range []struct {
		virt, phys, length uint64
		perms              Perms
		level              int
		want               uint64
	}{
		{0x1000, 0x5000, PageSize, Read, 0, 0x5000 | entryPresent | entryNX},
		{0x2000, 0x6000, PageSize, rwu, 0, 0x6000 | entryPresent | entryWrite | entryUser | entryNX},
		{0x3000, 0x000f_ffff_ffff_f000, PageSize, Execute | Global, 0, 0x000f_ffff_ffff_f000 | entryPresent | entryGlobal},
		{4 * mib, 8 * mib, 2 * mib, rwxu, 1, 8*mib | entryPresent | entryWrite | entryUser | entryPS},
	} {
		if _, err := pt.Map(tc.virt, tc.phys, tc.length, tc.perms); err != nil {
			t.Fatal(err)
		}
		if got := rawEntry(pt, tc.virt, tc.level); got != tc.want {
			t.Errorf("entry for %#x (%v) = %#x, want %#x", tc.virt, tc.perms, got, tc.want)
		}
		for l := topLevel; l > tc.level; l-- {
			if got := rawEntry(pt, tc.virt, l); got&^addrMask != tableBits {
				t.Errorf("level-%d entry for %#x = %#x, want table bits %#x", l, tc.virt, got, tableBits)
			}
		}
	}
}

// TestSharedKernelHalf builds a kernel template and two app address spaces
// sharing its upper half.
func TestSharedKernelHalf(t *testing.T) {
	const (
		kernText = 0xffff_ffff_8000_0000 // last PML4 slot
		kernHeap = 0xffff_c000_0000_0000 // a slot prepared, mapped later
		kernLate = 0xffff_a000_0000_0000 // a slot neither prepared nor mapped at share time
	)
	a := newTestAlloc(t, 64)
	start := a.FreeCount()
	opts := Options{LargePages: true}
	kern := newTestPT(t, a, opts)
	if _, err := kern.Map(kernText, 0x20_0000, 4*mib, Read|Execute|Global); err != nil {
		t.Fatal(err)
	}
	if err := kern.PrepareUpperHalf(kernHeap, gib); err != nil {
		t.Fatal(err)
	}
	app1, err := NewWithKernelHalf(a, Options{PCID: 1}, kern)
	if err != nil {
		t.Fatal(err)
	}
	app2, err := NewWithKernelHalf(a, Options{PCID: 2}, kern)
	if err != nil {
		t.Fatal(err)
	}
	if app1.OwnedPages() != 1 || app2.OwnedPages() != 1 {
		t.Errorf("app OwnedPages = %d, %d; want 1 (shared half is not owned)", app1.OwnedPages(), app2.OwnedPages())
	}
	for i := upperIndex; i < entriesPerTable; i++ {
		if app1.top[i] != kern.top[i] || app2.top[i] != kern.top[i] {
			t.Fatalf("PML4[%d] differs from the template", i)
		}
	}

	live := map[string]*PageTables{"kernel": kern, "app1": app1, "app2": app2}
	expect := func(what string, virt, phys uint64, size uint64) {
		t.Helper()
		for name, pt := range live {
			p, _, s, ok := pt.Lookup(virt)
			if ok != (size != 0) || p != phys || s != size {
				t.Errorf("%s: %s Lookup(%#x) = %#x %#x %v; want %#x %#x", what, name, virt, p, s, ok, phys, size)
			}
		}
	}
	expect("text", kernText+mib, 0x30_0000, 2*mib)

	// App-private lower halves.
	if _, err := app1.Map(0x40_0000, 0x100_0000, PageSize, rxu); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := app2.Lookup(0x40_0000); ok {
		t.Error("app1's mapping visible in app2")
	}
	if _, _, _, ok := kern.Lookup(0x40_0000); ok {
		t.Error("app1's mapping visible in the template")
	}

	// Template changes below the PML4 show up everywhere.
	if _, err := kern.Map(kernHeap, 0x800_0000, 2*mib+PageSize, rw|Global); err != nil {
		t.Fatal(err)
	}
	expect("heap", kernHeap+2*mib, 0x820_0000, PageSize)
	expect("heap", kernHeap, 0x800_0000, 2*mib)
	if _, err := kern.Protect(kernText, PageSize, Read|Global); err != nil {
		t.Fatal(err)
	}
	for _, pt := range []*PageTables{app1, app2} {
		if _, perms, _, _ := pt.Lookup(kernText); perms != Read|Global {
			t.Errorf("protect in template not visible: perms %v", perms)
		}
	}
	if flush, err := kern.Unmap(kernHeap, gib); err != nil || !flush {
		t.Fatalf("Unmap = %v, %v", flush, err)
	}
	expect("unmapped heap", kernHeap, 0, 0)
	// The shared PDPT survived the Unmap, so later mappings still show.
	if _, err := kern.Map(kernHeap+gib/2, 0x900_0000, PageSize, rw); err != nil {
		t.Fatal(err)
	}
	expect("heap again", kernHeap+gib/2, 0x900_0000, PageSize)

	// Documented limit: a PML4 slot filled after sharing stays private.
	if _, err := kern.Map(kernLate, 0xa00_0000, PageSize, rw); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := app1.Lookup(kernLate); ok {
		t.Error("new PML4 slot of the template visible in app1")
	}

	// Apps cannot touch the upper half.
	for name, err := range map[string]error{
		"Map":     second(app1.Map(kernHeap, 0, PageSize, rw)),
		"Unmap":   second(app1.Unmap(kernText, PageSize)),
		"Protect": second(app1.Protect(kernText, PageSize, rw)),
		"Prepare": app1.PrepareUpperHalf(kernHeap, PageSize),
	} {
		if !errors.Is(err, ErrKernelHalf) {
			t.Errorf("app %s of the upper half: %v, want ErrKernelHalf", name, err)
		}
	}
	// Unmapping the whole lower half of an app frees only its own tables.
	if _, err := app1.Unmap(0, lowerEnd); err != nil {
		t.Fatal(err)
	}
	if app1.OwnedPages() != 1 {
		t.Errorf("app1 OwnedPages after Unmap = %d", app1.OwnedPages())
	}
	checkStructure(t, kern)
	checkStructure(t, app1)
	checkStructure(t, app2)

	kernPages := kern.OwnedPages()
	app1.Release()
	delete(live, "app1")
	expect("after app1 Release", kernHeap+gib/2, 0x900_0000, PageSize)
	app2.Release()
	if got := a.FreeCount(); got != start-kernPages {
		t.Errorf("after app releases FreeCount = %d, want %d", got, start-kernPages)
	}
	if p, _, _, ok := kern.Lookup(kernText); !ok || p != 0x20_0000 {
		t.Errorf("template lost its mapping after app release")
	}
	kern.Release()
	if a.FreeCount() != start {
		t.Errorf("after template Release FreeCount = %d, want %d", a.FreeCount(), start)
	}
}

func second(_ bool, err error) error { return err }

// TestTablePageReuse maps and unmaps repeatedly and checks that every
// table page goes back to the allocator.
func TestTablePageReuse(t *testing.T) {
	a := newTestAlloc(t, 256)
	start := a.FreeCount()
	pt := newTestPT(t, a, Options{LargePages: true})
	ranges := []struct{ virt, length uint64 }{
		{0, 64 * kib},
		{2*mib - 4*kib, 2*mib + 8*kib},
		{511 * gib, 2 * gib}, // crosses a PML4 slot
		{0x7fff_ffe0_0000, 2 * mib},
		{upperStart + 3*gib, 6 * mib},
	}
	for round := 0; round < 3; round++ {
		for i, r := range ranges {
			if _, err := pt.Map(r.virt, uint64(i)*4*gib, r.length, rwu); err != nil {
				t.Fatal(err)
			}
		}
		if round == 1 { // split everything before tearing down
			for _, r := range ranges {
				if _, err := pt.Protect(r.virt+PageSize, PageSize, Read); err != nil {
					t.Fatal(err)
				}
			}
		}
		if pt.OwnedPages() <= 1 {
			t.Fatal("no tables allocated")
		}
		checkStructure(t, pt)
		for _, r := range ranges {
			if _, err := pt.Unmap(r.virt, r.length); err != nil {
				t.Fatal(err)
			}
		}
		// PML4 plus the kept upper-half PDPT.
		if pt.OwnedPages() != 2 || a.FreeCount() != start-2 {
			t.Fatalf("round %d: OwnedPages %d FreeCount %d, want 2 and %d", round, pt.OwnedPages(), a.FreeCount(), start-2)
		}
		checkStructure(t, pt)
	}
	pt.Release()
	if a.FreeCount() != start {
		t.Errorf("after Release FreeCount = %d, want %d", a.FreeCount(), start)
	}
}

// TestOutOfPages checks that an allocator failure leaves no empty tables
// and a consistent state.
func TestOutOfPages(t *testing.T) {
	a := newTestAlloc(t, 3)
	pt := newTestPT(t, a, Options{LargePages: true})
	// Needs PDPT, PD and PT: the PT allocation fails.
	if _, err := pt.Map(0x1000, 0x5000, PageSize, rw); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("Map: %v, want ErrNoMemory", err)
	}
	if pt.OwnedPages() != 1 || a.FreeCount() != 2 {
		t.Fatalf("after failed Map OwnedPages %d FreeCount %d", pt.OwnedPages(), a.FreeCount())
	}
	checkStructure(t, pt)
	// A 2 MiB page needs no PT; splitting it then fails.
	if _, err := pt.Map(2*mib, 4*mib, 2*mib, rw); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Unmap":   second(pt.Unmap(3*mib, PageSize)),
		"Protect": second(pt.Protect(3*mib, PageSize, Read)),
		"Map":     second(pt.Map(3*mib, 0, PageSize, Read)),
	} {
		if !errors.Is(err, ErrNoMemory) {
			t.Errorf("%s needing a split: %v, want ErrNoMemory", name, err)
		}
	}
	if p, perms, size, ok := pt.Lookup(3 * mib); !ok || p != 5*mib || perms != rw || size != 2*mib {
		t.Errorf("large page changed by failed split: %#x %v %#x %v", p, perms, size, ok)
	}
	checkStructure(t, pt)
	pt.Release()
	if a.FreeCount() != 3 {
		t.Errorf("FreeCount after Release = %d", a.FreeCount())
	}
}

// TestNoAllocations checks the hot path does not touch the Go heap.
func TestNoAllocations(t *testing.T) {
	a := newTestAlloc(t, 64)
	pt := newTestPT(t, a, Options{LargePages: true})
	if _, err := pt.Map(0x10_0000, 0x5000, PageSize, rw); err != nil { // keep tables alive
		t.Fatal(err)
	}
	for name, f := range map[string]func(){
		"4K warm": func() {
			pt.Map(0x20_0000, 0x6000, PageSize, rwu)
			pt.Protect(0x20_0000, PageSize, Read)
			pt.Lookup(0x20_0000)
			pt.Unmap(0x20_0000, PageSize)
		},
		"4K cold": func() {
			pt.Map(0x40_0000_0000, 0x6000, PageSize, rwu)
			pt.Unmap(0x40_0000_0000, PageSize)
		},
		"2M split": func() {
			pt.Map(0x40_0000, 0x40_0000, 2*mib, rwu)
			pt.Protect(0x40_1000, PageSize, Read)
			pt.Unmap(0x40_0000, 2*mib)
		},
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}
