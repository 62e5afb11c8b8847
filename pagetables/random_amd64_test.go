package pagetables

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// modelPage is the reference model's view of one 4 KiB page.
type modelPage struct {
	phys  uint64
	perms Perms
}

// model is the reference: virtual page number -> mapping.
type model map[uint64]modelPage

// norm is what Lookup reports for perms: x86 cannot deny reads.
func norm(p Perms) Perms { return p | Read }

// TestRandomAgainstModel runs random Map/Unmap/Protect sequences against
// a map from page number to (phys, perms), for several seeds, page-size
// options and windows, and checks every page the operation touched by
// Lookup, plus periodic full walks.
func TestRandomAgainstModel(t *testing.T) {
	ops := 3000
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		ops, seeds = 800, seeds[:1]
	}
	windows := []struct {
		name  string
		base  uint64
		seeds []uint64
	}{
		// 2 GiB windows straddling a PML4 slot boundary.
		{"lower", 512*gib - gib, seeds},
		{"upper", upperStart + 1024*gib - gib, seeds[:1]},
	}
	configs := []struct {
		name string
		opts Options
	}{
		{"4K", Options{}},
		{"2M", Options{LargePages: true}},
		{"1G", Options{LargePages: true, HugePages: true}},
	}
	for _, w := range windows {
		for _, c := range configs {
			for _, seed := range w.seeds {
				t.Run(fmt.Sprintf("%s/%s/seed%d", w.name, c.name, seed), func(t *testing.T) {
					t.Parallel()
					runRandom(t, seed, ops, w.base, 2*gib, c.opts)
				})
			}
		}
	}
}

func runRandom(t *testing.T, seed uint64, nops int, base, size uint64, opts Options) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	a := newTestAlloc(t, 8192)
	start := a.FreeCount()
	pt := newTestPT(t, a, opts)
	ref := model{}
	var leaves [3]int // pages Lookup found in 4K, 2M and 1G leaves
	splitFlushes := 0 // Map flushes with no model change: splits

	randPerms := func() Perms {
		p := Perms(rng.IntN(8)) // some subset of Read, Write, Execute
		if p == 0 {
			p = Read
		}
		if rng.IntN(2) == 0 {
			p |= User
		}
		if rng.IntN(8) == 0 {
			p |= Global
		}
		return p
	}
	// randRange picks a range in the window: mostly small and 4 KiB
	// granular, sometimes 2 MiB granular (so large pages form and later
	// get split), rarely 1 GiB.
	randRange := func() (virt, length, align uint64) {
		switch r := rng.IntN(1000); {
		case r < 600:
			align = PageSize
			virt = base + rng.Uint64N(size/PageSize)*PageSize
			length = (1 + rng.Uint64N(64)) * PageSize
		case r < 997:
			align = LargePageSize
			virt = base + rng.Uint64N(size/LargePageSize)*LargePageSize
			length = (1 + rng.Uint64N(2)) * LargePageSize
			if rng.IntN(4) == 0 { // ragged edges: partial large pages
				virt += PageSize
				length -= 2 * PageSize
			}
		default:
			align = HugePageSize
			virt = base + rng.Uint64N(size/HugePageSize)*HugePageSize
			length = HugePageSize
		}
		length = min(length, base+size-virt)
		return virt, length, align
	}

	for i := 0; i < nops; i++ {
		virt, length, align := randRange()
		first, n := virt/PageSize, length/PageSize
		// present: something mapped in the range before; changed: the
		// model says a present page's translation or perms changes.
		present, changed := false, false
		var flush bool
		var err error
		var what string
		switch k := rng.IntN(100); {
		case k < 45:
			phys := rng.Uint64N(1<<40/align) * align
			perms := randPerms()
			what = fmt.Sprintf("Map(%#x, %#x, %#x, %v)", virt, phys, length, perms)
			for j := uint64(0); j < n; j++ {
				np := modelPage{phys + j*PageSize, norm(perms)}
				if old, ok := ref[first+j]; ok {
					present = true
					changed = changed || old != np
				}
				ref[first+j] = np
			}
			flush, err = pt.Map(virt, phys, length, perms)
		case k < 75:
			what = fmt.Sprintf("Unmap(%#x, %#x)", virt, length)
			for j := uint64(0); j < n; j++ {
				if _, ok := ref[first+j]; ok {
					present, changed = true, true
					delete(ref, first+j)
				}
			}
			flush, err = pt.Unmap(virt, length)
		default:
			perms := randPerms()
			what = fmt.Sprintf("Protect(%#x, %#x, %v)", virt, length, perms)
			for j := uint64(0); j < n; j++ {
				if old, ok := ref[first+j]; ok {
					present = true
					if old.perms != norm(perms) {
						changed = true
						ref[first+j] = modelPage{old.phys, norm(perms)}
					}
				}
			}
			flush, err = pt.Protect(virt, length, perms)
		}
		if err != nil {
			t.Fatalf("op %d: %s: %v", i, what, err)
		}
		// Protect and Unmap flush exactly when the model changes; Map may
		// also flush to split a large page it leaves equivalent.
		if changed && !flush || !present && flush {
			t.Fatalf("op %d: %s: flush %v, model present %v changed %v", i, what, flush, present, changed)
		}
		if flush && !changed {
			splitFlushes++
		}
		// Check the touched range and one page either side.
		lo, hi := max(first, base/PageSize+1)-1, min(first+n, (base+size)/PageSize-1)+1
		for vp := lo; vp < hi; vp++ {
			size, msg := checkPage(pt, ref, vp)
			if msg != "" {
				t.Fatalf("after op %d (%s): %s", i, what, msg)
			}
			switch size {
			case PageSize:
				leaves[0]++
			case LargePageSize:
				leaves[1]++
			case HugePageSize:
				leaves[2]++
			}
		}
		if i%500 == 499 || i == nops-1 {
			checkAll(t, pt, ref, i)
			// Rebuild the model: deletions leave tombstones that make
			// lookups of absent pages probe far.
			fresh := make(model, len(ref))
			for k, v := range ref {
				fresh[k] = v
			}
			ref = fresh
		}
	}
	t.Logf("pages checked in 4K/2M/1G leaves: %v; split-only Map flushes %d", leaves, splitFlushes)
	// Make sure the page sizes the options allow were exercised.
	if opts.LargePages && leaves[1] == 0 || opts.HugePages && leaves[2] == 0 {
		t.Errorf("options %+v but Lookup saw leaves %v", opts, leaves)
	}
	if _, err := pt.Unmap(base, size); err != nil {
		t.Fatal(err)
	}
	checkStructure(t, pt)
	// Only the PML4 (and the kept PDPTs of the upper half) remain.
	want := 1
	if base >= upperStart {
		want += index(base+size-1, topLevel) - index(base, topLevel) + 1
	}
	if pt.OwnedPages() != want || a.FreeCount() != start-want {
		t.Errorf("after unmapping everything OwnedPages %d FreeCount %d; want %d, %d", pt.OwnedPages(), a.FreeCount(), want, start-want)
	}
	pt.Release()
	if a.FreeCount() != start {
		t.Errorf("after Release FreeCount %d, want %d", a.FreeCount(), start)
	}
}

// checkPage compares one page's Lookup with the model and describes any
// mismatch. (No t.Helper: it runs millions of times.)
func checkPage(pt *PageTables, ref model, vp uint64) (size uint64, msg string) {
	want, wantOK := ref[vp]
	// Probe a byte inside the page, not just its start.
	off := (vp * 0x9e5) & pageMask
	phys, perms, size, ok := pt.Lookup(vp*PageSize + off)
	if ok != wantOK || ok && (phys != want.phys+off || perms != want.perms) {
		return 0, fmt.Sprintf("Lookup(%#x) = %#x %v %v, want %#x %v %v", vp*PageSize+off, phys, perms, ok, want.phys+off, want.perms, wantOK)
	}
	if ok && !(size == PageSize || size == LargePageSize && pt.opts.LargePages || size == HugePageSize && pt.opts.HugePages) {
		return 0, fmt.Sprintf("Lookup(%#x) size %#x not allowed by options", vp*PageSize, size)
	}
	return size, ""
}

// checkAll walks every leaf, compares each 4 KiB page it covers with the
// model, and checks the page count and table invariants.
func checkAll(t *testing.T, pt *PageTables, ref model, i int) {
	t.Helper()
	pages := 0
	pt.Walk(func(virt, phys, size uint64, perms Perms) bool {
		for off := uint64(0); off < size; off += PageSize {
			want, ok := ref[(virt+off)/PageSize]
			if !ok || want.phys != phys+off || want.perms != perms {
				t.Fatalf("after op %d: walk finds %#x -> %#x %v, model %#x %v %v", i, virt+off, phys+off, perms, want.phys, want.perms, ok)
			}
		}
		pages += int(size / PageSize)
		return true
	})
	if pages != len(ref) {
		t.Fatalf("after op %d: walk counts %d pages, model has %d", i, pages, len(ref))
	}
	checkStructure(t, pt)
}
