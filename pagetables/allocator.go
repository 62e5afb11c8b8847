package pagetables

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Allocator hands out zeroed 4 KiB table pages of guest physical memory.
//
// Contract, beyond the method comments:
//   - Pages must not be reachable by app code (not mapped, or mapped
//     without User/Write in every app address space): whoever can write a
//     table page owns the address space.
//   - A page passed to FreePage may still be cached by a vCPU's
//     paging-structure caches until the caller's TLB flush completes. The
//     allocator must not hand it out again (for a table or anything else)
//     before then; SliceAllocator's deferred-reuse mode does this.
//   - One PageTables calls the allocator only from its own (serialized)
//     methods, but several PageTables may share one allocator from
//     different goroutines, so an implementation shared that way must be
//     safe for concurrent use.
//   - Keep NewPage, FreePage and Lookup free of Go heap allocation: they
//     are on the Map/Unmap path.
type Allocator interface {
	// NewPage returns a zeroed page: its guest physical address and the
	// host's view of its 512 entries.
	NewPage() (phys uint64, entries *[512]uint64, err error)
	// FreePage returns a page no longer used.
	FreePage(phys uint64)
	// Lookup returns the host view of a table page by physical address.
	Lookup(phys uint64) *[512]uint64
}

// SliceAllocator is an Allocator that carves table pages out of one byte
// slice which the guest sees at physical address base. The platform can
// back it with the host mapping of a guest memory region reserved for page
// tables; tests back it with an ordinary slice. It is safe for concurrent
// use and never allocates after construction.
type SliceAllocator struct {
	base uint64
	mem  []byte

	mu       sync.Mutex
	free     []uint32 // page indices NewPage may return, LIFO
	pending  []uint32 // freed pages awaiting Recycle (deferred mode)
	used     []uint64 // bitmap of pages handed out, to catch double frees
	deferred bool
}

var _ Allocator = (*SliceAllocator)(nil)

// NewSliceAllocator returns an allocator over mem, which the guest sees at
// guest physical address base. base must be 4 KiB aligned, len(mem) a
// non-zero multiple of 4 KiB, and mem 8-byte aligned (entries are written
// as uint64). mem must stay mapped for the allocator's lifetime.
func NewSliceAllocator(base uint64, mem []byte) (*SliceAllocator, error) {
	switch {
	case base&pageMask != 0:
		return nil, fmt.Errorf("pagetables: allocator base %#x not 4 KiB aligned", base)
	case len(mem) == 0 || len(mem)%PageSize != 0:
		return nil, fmt.Errorf("pagetables: allocator size %#x not a non-zero multiple of 4 KiB", len(mem))
	case uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0:
		return nil, fmt.Errorf("pagetables: allocator memory not 8-byte aligned")
	case base >= maxPhys || uint64(len(mem)) > maxPhys-base:
		return nil, fmt.Errorf("pagetables: allocator range %#x+%#x exceeds 52 physical bits", base, len(mem))
	case len(mem)/PageSize > math.MaxUint32:
		return nil, fmt.Errorf("pagetables: allocator too large")
	}
	n := len(mem) / PageSize
	a := &SliceAllocator{
		base:    base,
		mem:     mem,
		free:    make([]uint32, n),
		pending: make([]uint32, 0, n),
		used:    make([]uint64, (n+63)/64),
	}
	// Stack order: the lowest address is handed out first.
	for i := range a.free {
		a.free[i] = uint32(n - 1 - i)
	}
	return a, nil
}

// NewPage implements Allocator. It returns ErrNoMemory when no page is
// free.
func (a *SliceAllocator) NewPage() (uint64, *[512]uint64, error) {
	a.mu.Lock()
	n := len(a.free)
	if n == 0 {
		a.mu.Unlock()
		return 0, nil, ErrNoMemory
	}
	idx := a.free[n-1]
	a.free = a.free[:n-1]
	a.used[idx/64] |= 1 << (idx % 64)
	a.mu.Unlock()

	t := a.table(idx)
	clear(t[:]) // zeroed on the way out: freed pages keep stale entries until reuse
	return a.base + uint64(idx)*PageSize, t, nil
}

// FreePage implements Allocator. It panics on a page it does not own or
// one that is not handed out: either is a page-table corruption bug.
func (a *SliceAllocator) FreePage(phys uint64) {
	idx := a.index(phys)
	a.mu.Lock()
	defer a.mu.Unlock()
	w, bit := idx/64, uint64(1)<<(idx%64)
	if a.used[w]&bit == 0 {
		panic(fmt.Sprintf("pagetables: FreePage(%#x): page is not allocated", phys))
	}
	a.used[w] &^= bit
	// Both slices have capacity for every page, so append never allocates.
	if a.deferred {
		a.pending = append(a.pending, idx)
	} else {
		a.free = append(a.free, idx)
	}
}

// Lookup implements Allocator. It panics on an address outside the
// allocator's range or not page aligned.
func (a *SliceAllocator) Lookup(phys uint64) *[512]uint64 {
	return a.table(a.index(phys))
}

// SetDeferredReuse selects whether freed pages wait for Recycle before
// NewPage may return them again. A KVM platform turns it on and calls
// Recycle after the TLB shootdown that follows an Unmap, so no vCPU can
// still walk a freed table page when it is reused. Turning it off
// recycles the pending pages.
func (a *SliceAllocator) SetDeferredReuse(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deferred = on
	if !on {
		a.recycleLocked()
	}
}

// Recycle makes every page freed since the last Recycle available to
// NewPage again. Call it only once no vCPU can hold stale translations
// through those pages.
func (a *SliceAllocator) Recycle() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recycleLocked()
}

func (a *SliceAllocator) recycleLocked() {
	a.free = append(a.free, a.pending...)
	a.pending = a.pending[:0]
}

// FreeCount returns the number of pages NewPage can hand out now.
func (a *SliceAllocator) FreeCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.free)
}

// PendingCount returns the number of freed pages awaiting Recycle.
func (a *SliceAllocator) PendingCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}

// Pages returns the allocator's total number of pages.
func (a *SliceAllocator) Pages() int { return len(a.mem) / PageSize }

// Base returns the guest physical address of the allocator's first page.
func (a *SliceAllocator) Base() uint64 { return a.base }

func (a *SliceAllocator) index(phys uint64) uint32 {
	off := phys - a.base // wraps to a huge value below base
	if phys < a.base || off >= uint64(len(a.mem)) || off&pageMask != 0 {
		panic(fmt.Sprintf("pagetables: table page %#x outside allocator [%#x, %#x)", phys, a.base, a.base+uint64(len(a.mem))))
	}
	return uint32(off / PageSize)
}

func (a *SliceAllocator) table(idx uint32) *[512]uint64 {
	return (*[512]uint64)(unsafe.Pointer(&a.mem[uint64(idx)*PageSize]))
}
