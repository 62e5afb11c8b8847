package pagetables

import (
	"errors"
	"testing"
)

const testBase = 0x1_0000_0000 // guest physical base of test allocators

func newTestAlloc(tb testing.TB, pages int) *SliceAllocator {
	tb.Helper()
	a, err := NewSliceAllocator(testBase, make([]byte, pages*PageSize))
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func TestNewSliceAllocatorRejects(t *testing.T) {
	mem := make([]byte, 4*PageSize+8)
	for _, tc := range []struct {
		name string
		base uint64
		mem  []byte
	}{
		{"unaligned base", 0x1001, mem[:PageSize]},
		{"empty", 0, nil},
		{"partial page", 0, mem[:PageSize+1]},
		{"unaligned memory", 0, mem[1 : 1+PageSize]},
		{"beyond 52 bits", maxPhys - PageSize, mem[:2*PageSize]},
	} {
		if _, err := NewSliceAllocator(tc.base, tc.mem); err == nil {
			t.Errorf("%s: NewSliceAllocator succeeded", tc.name)
		}
	}
}

func TestSliceAllocator(t *testing.T) {
	a := newTestAlloc(t, 3)
	if a.Pages() != 3 || a.FreeCount() != 3 || a.Base() != testBase {
		t.Fatalf("Pages=%d FreeCount=%d Base=%#x", a.Pages(), a.FreeCount(), a.Base())
	}
	var phys []uint64
	for i := 0; i < 3; i++ {
		p, e, err := a.NewPage()
		if err != nil {
			t.Fatal(err)
		}
		if want := testBase + uint64(i)*PageSize; p != want {
			t.Errorf("page %d at %#x, want %#x", i, p, want)
		}
		if a.Lookup(p) != e {
			t.Errorf("Lookup(%#x) differs from NewPage's view", p)
		}
		e[7] = 0xdead // dirty it; a reused page must come back zeroed
		phys = append(phys, p)
	}
	if _, _, err := a.NewPage(); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("NewPage on full allocator: %v, want ErrNoMemory", err)
	}
	a.FreePage(phys[1])
	p, e, err := a.NewPage()
	if err != nil || p != phys[1] {
		t.Fatalf("NewPage after free = %#x, %v; want %#x", p, err, phys[1])
	}
	if e[7] != 0 {
		t.Errorf("reused page not zeroed")
	}

	// Deferred reuse: freed pages wait for Recycle.
	a.SetDeferredReuse(true)
	a.FreePage(phys[0])
	if a.FreeCount() != 0 || a.PendingCount() != 1 {
		t.Fatalf("deferred: FreeCount=%d PendingCount=%d", a.FreeCount(), a.PendingCount())
	}
	if _, _, err := a.NewPage(); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("NewPage handed out a pending page: %v", err)
	}
	a.Recycle()
	if a.FreeCount() != 1 || a.PendingCount() != 0 {
		t.Fatalf("after Recycle: FreeCount=%d PendingCount=%d", a.FreeCount(), a.PendingCount())
	}
	a.FreePage(phys[2])
	a.SetDeferredReuse(false) // recycles
	if a.FreeCount() != 2 {
		t.Fatalf("after SetDeferredReuse(false): FreeCount=%d", a.FreeCount())
	}
}

func TestSliceAllocatorPanics(t *testing.T) {
	a := newTestAlloc(t, 2)
	p, _, _ := a.NewPage()
	a.FreePage(p)
	for name, f := range map[string]func(){
		"double free":   func() { a.FreePage(p) },
		"foreign free":  func() { a.FreePage(testBase - PageSize) },
		"lookup beyond": func() { a.Lookup(testBase + 2*PageSize) },
		"lookup inside": func() { a.Lookup(testBase + 8) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
