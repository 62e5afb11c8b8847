package memfile

import "testing"

func TestAllocateFreeCoalesce(t *testing.T) {
	f, err := New(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, _ := f.Allocate(3 * PageSize)
	b, _ := f.Allocate(PageSize)
	c, _ := f.Allocate(PageSize)
	if a != 0 || b != 3*PageSize || c != 4*PageSize {
		t.Fatalf("offsets %d %d %d, want first fit", a, b, c)
	}
	copy(f.Slice(b, PageSize), "hello")
	f.Free(b, PageSize)
	if f.AllocateAt(b, PageSize) != true {
		t.Fatal("AllocateAt of a freed range failed")
	}
	if got := f.Slice(b, 5); string(got) == "hello" {
		t.Fatal("freed memory kept its contents; Free must punch a hole")
	}
	if f.AllocateAt(b, PageSize) {
		t.Fatal("AllocateAt of a used range succeeded")
	}
	f.Free(a, 3*PageSize)
	f.Free(b, PageSize)
	f.Free(c, PageSize)
	if f.FreeBytes() != 1<<30 || len(f.free) != 1 {
		t.Fatalf("after freeing all: %d bytes in %d extents, want one extent of the whole file", f.FreeBytes(), len(f.free))
	}
	// AllocateAt in the middle splits an extent.
	if !f.AllocateAt(10*PageSize, PageSize) || len(f.free) != 2 {
		t.Fatalf("middle AllocateAt: %v", f.free)
	}
}
