package pagetables

import (
	"errors"
	"fmt"
)

// Options configure a PageTables.
type Options struct {
	// LargePages allows 2 MiB PDE leaves where a mapped range has 2 MiB
	// aligned virtual and physical addresses and covers the whole 2 MiB.
	LargePages bool
	// HugePages allows 1 GiB PDPTE leaves under the same rule. Set it only
	// if CPUID.80000001H:EDX[26] (Page1GB) is set in the guest; otherwise
	// such entries raise reserved-bit page faults.
	HugePages bool
	// PCID is the process-context identifier CR3 returns in bits 0..11;
	// zero means none. Only meaningful with CR4.PCIDE=1. Must be < 4096.
	PCID uint16
}

// PageTables is one guest address space: a PML4 and the tables below it.
// See the package comment for the shared-kernel-half contract and the
// concurrency rules.
type PageTables struct {
	alloc Allocator
	opts  Options
	root  uint64
	top   *[512]uint64
	// shared marks PML4 slots 256..511 as the kernel template's: they are
	// read-only here and not freed by Release.
	shared bool
	pages  int // table pages owned, including the PML4
}

// New returns an empty address space with a freshly allocated PML4.
func New(alloc Allocator, opts Options) (*PageTables, error) {
	if alloc == nil {
		return nil, errors.New("pagetables: nil allocator")
	}
	if opts.PCID >= 1<<12 {
		return nil, fmt.Errorf("pagetables: PCID %#x exceeds 12 bits", opts.PCID)
	}
	pt := &PageTables{alloc: alloc, opts: opts}
	root, top, err := pt.newTable()
	if err != nil {
		return nil, fmt.Errorf("pagetables: allocating PML4: %w", err)
	}
	pt.root, pt.top = root, top
	return pt, nil
}

// NewWithKernelHalf returns an address space whose PML4 entries 256..511
// are copies of kernel's, so the upper half is shared with the kernel
// template (see the package comment). alloc must be able to Lookup the
// template's pages; in practice it is the template's allocator.
func NewWithKernelHalf(alloc Allocator, opts Options, kernel *PageTables) (*PageTables, error) {
	if kernel == nil || kernel.top == nil {
		return nil, errors.New("pagetables: nil or released kernel template")
	}
	pt, err := New(alloc, opts)
	if err != nil {
		return nil, err
	}
	copy(pt.top[upperIndex:], kernel.top[upperIndex:])
	pt.shared = true
	return pt, nil
}

// Root returns the guest physical address of the PML4.
func (pt *PageTables) Root() uint64 { return pt.root }

// CR3 returns the value to load into CR3: the PML4 address with the PCID
// in bits 0..11 (PWT/PCD stay clear when PCID is zero).
func (pt *PageTables) CR3() uint64 { return pt.root | uint64(pt.opts.PCID) }

// Options returns the options pt was created with.
func (pt *PageTables) Options() Options { return pt.opts }

// OwnedPages returns how many table pages pt owns (including its PML4 and,
// for a template, the upper-half tables; not pages shared from a
// template).
func (pt *PageTables) OwnedPages() int { return pt.pages }

// Map maps [virt, virt+length) to [phys, phys+length) with perms,
// replacing whatever was mapped there. It uses 2 MiB / 1 GiB leaves where
// the options allow and both addresses are aligned, and splits a large
// leaf that the range covers only in part. virt, phys and length must be
// 4 KiB aligned, the virtual range canonical (within one half) and the
// physical range below 2^52; length 0 is a no-op.
//
// flush reports that a present entry changed (a mapping was replaced, a
// large page split, or a table freed): the caller must invalidate the
// range before relying on the new mapping. On error (allocator out of
// pages) part of the range may already be mapped or replaced and flush is
// still meaningful; no empty table is left behind.
func (pt *PageTables) Map(virt, phys, length uint64, perms Perms) (flush bool, err error) {
	last, ok, err := pt.checkRange(virt, length, true)
	if err == nil && (perms&^allPerms != 0 || perms&anyAccess == 0) {
		err = ErrBadPerms
	}
	if err == nil && (phys&pageMask != 0 || phys >= maxPhys || length > maxPhys-phys) {
		if phys&pageMask != 0 {
			err = ErrUnaligned
		} else {
			err = ErrPhysRange
		}
	}
	if err != nil {
		return false, fmt.Errorf("pagetables: Map(%#x, %#x, %#x, %v): %w", virt, phys, length, perms, err)
	}
	if !ok {
		return false, nil
	}
	flush, err = pt.mapRange(pt.top, topLevel, virt, last, phys, leafBits(perms))
	if err != nil {
		err = fmt.Errorf("pagetables: Map(%#x, %#x, %#x, %v): %w", virt, phys, length, perms, err)
	}
	return flush, err
}

// Unmap removes every mapping in [virt, virt+length) and frees the table
// pages that become empty, except the upper-half PDPTs (PML4 slots
// 256..511 stay until Release, as they may be shared). Splitting a large
// leaf the range covers only in part needs a table page, hence the error.
//
// flush reports that something was unmapped, so the caller must
// invalidate the range (and only then let the allocator reuse the freed
// pages). Same input rules as Map.
func (pt *PageTables) Unmap(virt, length uint64) (flush bool, err error) {
	last, ok, err := pt.checkRange(virt, length, true)
	if err != nil {
		return false, fmt.Errorf("pagetables: Unmap(%#x, %#x): %w", virt, length, err)
	}
	if !ok {
		return false, nil
	}
	flush, err = pt.unmapRange(pt.top, topLevel, virt, last)
	if err != nil {
		err = fmt.Errorf("pagetables: Unmap(%#x, %#x): %w", virt, length, err)
	}
	return flush, err
}

// Protect sets the permissions of every page already mapped in
// [virt, virt+length) to perms; unmapped pages stay unmapped. A large leaf
// the range covers only in part is split, unless its permissions already
// equal perms. flush reports that a present entry changed. Same input
// rules as Map; to revoke all access, Unmap instead.
func (pt *PageTables) Protect(virt, length uint64, perms Perms) (flush bool, err error) {
	last, ok, err := pt.checkRange(virt, length, true)
	if err == nil && (perms&^allPerms != 0 || perms&anyAccess == 0) {
		err = ErrBadPerms
	}
	if err != nil {
		return false, fmt.Errorf("pagetables: Protect(%#x, %#x, %v): %w", virt, length, perms, err)
	}
	if !ok {
		return false, nil
	}
	flush, err = pt.protectRange(pt.top, topLevel, virt, last, leafBits(perms))
	if err != nil {
		err = fmt.Errorf("pagetables: Protect(%#x, %#x, %v): %w", virt, length, perms, err)
	}
	return flush, err
}

// PrepareUpperHalf allocates the PDPT for every PML4 slot that
// [virt, virt+length) touches, which must lie in the upper half. Call it
// on a kernel template before NewWithKernelHalf, so that mappings the
// template makes there later are visible in every address space sharing
// its upper half.
func (pt *PageTables) PrepareUpperHalf(virt, length uint64) error {
	last, ok, err := pt.checkRange(virt, length, true)
	if err == nil && virt < upperStart {
		err = ErrNonCanonical
	}
	if err != nil {
		return fmt.Errorf("pagetables: PrepareUpperHalf(%#x, %#x): %w", virt, length, err)
	}
	if !ok {
		return nil
	}
	for i := index(virt, topLevel); i <= index(last, topLevel); i++ {
		if pt.top[i]&entryPresent != 0 {
			continue
		}
		phys, _, err := pt.newTable()
		if err != nil {
			return fmt.Errorf("pagetables: PrepareUpperHalf(%#x, %#x): %w", virt, length, err)
		}
		pt.top[i] = phys | tableBits
	}
	return nil
}

// Lookup walks the tables for virt (any byte address). It returns the
// physical address virt translates to, the mapping's permissions (Read is
// always set), and the size of the leaf page (4 KiB, 2 MiB or 1 GiB).
func (pt *PageTables) Lookup(virt uint64) (phys uint64, perms Perms, size uint64, ok bool) {
	if !canonical(virt) {
		return 0, 0, 0, false
	}
	t := pt.top
	for level := topLevel; ; level-- {
		e := t[index(virt, level)]
		if e&entryPresent == 0 {
			return 0, 0, 0, false
		}
		if isLeaf(e, level) {
			size = uint64(1) << shift(level)
			return leafAddr(e, level) | virt&(size-1), permsOf(e), size, true
		}
		t = pt.alloc.Lookup(e & addrMask)
	}
}

// Walk calls fn for every leaf mapping in ascending virtual order (lower
// half first, including shared upper-half mappings), with the leaf's
// virtual and physical base and size. It stops when fn returns false.
func (pt *PageTables) Walk(fn func(virt, phys, size uint64, perms Perms) bool) {
	pt.walk(pt.top, topLevel, 0, fn)
}

func (pt *PageTables) walk(t *[512]uint64, level int, base uint64, fn func(virt, phys, size uint64, perms Perms) bool) bool {
	sh := shift(level)
	for i, e := range t {
		if e&entryPresent == 0 {
			continue
		}
		v := base | uint64(i)<<sh
		if level == topLevel && i >= upperIndex {
			v |= upperStart // sign-extend bit 47
		}
		if isLeaf(e, level) {
			if !fn(v, leafAddr(e, level), uint64(1)<<sh, permsOf(e)) {
				return false
			}
			continue
		}
		if !pt.walk(pt.alloc.Lookup(e&addrMask), level-1, v, fn) {
			return false
		}
	}
	return true
}

// Release frees every table page pt owns, leaving shared upper-half pages
// alone. pt must not be used afterwards. A template must be released after
// every address space sharing its upper half.
func (pt *PageTables) Release() {
	if pt.top == nil {
		return
	}
	for i, e := range pt.top {
		if e&entryPresent == 0 || (pt.shared && i >= upperIndex) {
			continue
		}
		pt.freeTable(e&addrMask, topLevel-1)
	}
	pt.freePage(pt.root)
	pt.top, pt.root = nil, 0
}

// checkRange validates a virtual range and returns its last byte; ok is
// false for an empty range. mutate rejects the shared upper half.
func (pt *PageTables) checkRange(virt, length uint64, mutate bool) (last uint64, ok bool, err error) {
	if virt&pageMask != 0 || length&pageMask != 0 {
		return 0, false, ErrUnaligned
	}
	if !canonical(virt) {
		return 0, false, ErrNonCanonical
	}
	if length == 0 {
		return 0, false, nil
	}
	last = virt + length - 1
	// Both ends canonical and in the same half, without wrapping.
	if last < virt || !canonical(last) || (virt^last)>>63 != 0 {
		return 0, false, ErrNonCanonical
	}
	if mutate && pt.shared && virt >= upperStart {
		return 0, false, ErrKernelHalf
	}
	return last, true, nil
}

// leafAllowed reports whether a leaf may be placed at level (above PT).
func (pt *PageTables) leafAllowed(level int) bool {
	return (level == 1 && pt.opts.LargePages) || (level == 2 && pt.opts.HugePages)
}

// mapRange maps [virt, last] to phys onward within table t at level.
// bits are the leaf bits without PS.
func (pt *PageTables) mapRange(t *[512]uint64, level int, virt, last, phys, bits uint64) (flush bool, err error) {
	sh := shift(level)
	span := uint64(1) << sh
	for v := virt; ; {
		i := index(v, level)
		end := min(v|(span-1), last) // last byte of this entry's share
		p := phys + (v - virt)
		e := t[i]
		switch {
		case level == 0:
			ne := p | bits
			if e&entryPresent != 0 && e&^(entryAccessed|entryDirty) != ne {
				flush = true
			}
			t[i] = ne

		case pt.leafAllowed(level) && v&(span-1) == 0 && end-v == span-1 && p&(span-1) == 0:
			ne := p | bits | entryPS
			t[i] = ne
			if e&entryPresent != 0 {
				if !isLeaf(e, level) {
					// Written after the new leaf, so no walk reaches a
					// freed table through t.
					pt.freeTable(e&addrMask, level-1)
					flush = true
				} else if e&^(entryAccessed|entryDirty) != ne {
					flush = true
				}
			}

		default:
			var ct *[512]uint64
			fresh := false
			switch {
			case e&entryPresent == 0:
				cp, c, err := pt.newTable()
				if err != nil {
					return flush, err
				}
				t[i] = cp | tableBits
				ct, fresh = c, true
			case isLeaf(e, level):
				c, err := pt.split(t, i, level)
				if err != nil {
					return flush, err
				}
				ct, flush = c, true
			default:
				ct = pt.alloc.Lookup(e & addrMask)
			}
			f, err := pt.mapRange(ct, level-1, v, end, p, bits)
			flush = flush || f
			if err != nil {
				if fresh && isEmpty(ct) {
					cp := t[i] & addrMask
					t[i] = 0
					pt.freePage(cp)
				}
				return flush, err
			}
		}
		if end == last {
			return flush, nil
		}
		v = end + 1
	}
}

// unmapRange clears [virt, last] within table t at level and reports
// whether any present entry was cleared.
func (pt *PageTables) unmapRange(t *[512]uint64, level int, virt, last uint64) (changed bool, err error) {
	sh := shift(level)
	span := uint64(1) << sh
	for v := virt; ; {
		i := index(v, level)
		end := min(v|(span-1), last)
		e := t[i]
		if e&entryPresent != 0 {
			full := v&(span-1) == 0 && end-v == span-1
			// Upper-half PML4 slots may be shared: never cleared here.
			keep := level == topLevel && i >= upperIndex
			switch {
			case full && isLeaf(e, level):
				t[i] = 0
				changed = true
			case full && !keep:
				t[i] = 0
				pt.freeTable(e&addrMask, level-1)
				changed = true
			default:
				var ct *[512]uint64
				if isLeaf(e, level) {
					c, err := pt.split(t, i, level)
					if err != nil {
						return changed, err
					}
					ct, changed = c, true
				} else {
					ct = pt.alloc.Lookup(e & addrMask)
				}
				c, err := pt.unmapRange(ct, level-1, v, end)
				if c {
					changed = true
					if !keep && isEmpty(ct) {
						cp := t[i] & addrMask // not e: e may be the leaf split above
						t[i] = 0
						pt.freePage(cp)
					}
				}
				if err != nil {
					return changed, err
				}
			}
		}
		if end == last {
			return changed, nil
		}
		v = end + 1
	}
}

// protectRange rewrites the permissions of present leaves in [virt, last]
// within table t at level. bits are the leaf bits without PS.
func (pt *PageTables) protectRange(t *[512]uint64, level int, virt, last, bits uint64) (changed bool, err error) {
	sh := shift(level)
	span := uint64(1) << sh
	for v := virt; ; {
		i := index(v, level)
		end := min(v|(span-1), last)
		e := t[i]
		if e&entryPresent != 0 {
			var ct *[512]uint64
			switch {
			case isLeaf(e, level) && e&permBits == bits:
				// Already right; in particular, don't split for nothing.
			case isLeaf(e, level) && v&(span-1) == 0 && end-v == span-1:
				t[i] = e&^permBits | bits
				changed = true
			case isLeaf(e, level):
				c, err := pt.split(t, i, level)
				if err != nil {
					return changed, err
				}
				ct, changed = c, true
			default:
				ct = pt.alloc.Lookup(e & addrMask)
			}
			if ct != nil {
				c, err := pt.protectRange(ct, level-1, v, end, bits)
				changed = changed || c
				if err != nil {
					return changed, err
				}
			}
		}
		if end == last {
			return changed, nil
		}
		v = end + 1
	}
}

// split replaces the large leaf t[i] at level with a table of 512 leaves
// one level down that translate the same range with the same bits, and
// returns that table.
func (pt *PageTables) split(t *[512]uint64, i, level int) (*[512]uint64, error) {
	e := t[i]
	cp, ct, err := pt.newTable()
	if err != nil {
		return nil, err
	}
	base := leafAddr(e, level)
	flags := e &^ addrMask
	if level-1 == 0 {
		flags &^= entryPS // bit 7 of a PTE is PAT
	}
	step := uint64(1) << shift(level-1)
	for j := range ct {
		ct[j] = base + uint64(j)*step | flags
	}
	t[i] = cp | tableBits // after filling: a walk sees old or new, both valid
	return ct, nil
}

// freeTable frees the table at phys (at level) and every table below it.
func (pt *PageTables) freeTable(phys uint64, level int) {
	if level > 0 {
		t := pt.alloc.Lookup(phys)
		for _, e := range t {
			if e&entryPresent != 0 && !isLeaf(e, level) {
				pt.freeTable(e&addrMask, level-1)
			}
		}
	}
	pt.freePage(phys)
}

func (pt *PageTables) newTable() (uint64, *[512]uint64, error) {
	phys, t, err := pt.alloc.NewPage()
	if err != nil {
		return 0, nil, err
	}
	if t == nil || phys&pageMask != 0 || phys >= maxPhys {
		panic(fmt.Sprintf("pagetables: allocator returned bad page %#x", phys))
	}
	pt.pages++
	return phys, t, nil
}

func (pt *PageTables) freePage(phys uint64) {
	pt.pages--
	pt.alloc.FreePage(phys)
}
