// Package mm owns an application address space as the Sentry sees it: the
// VMAs (ranges with permissions), brk, anonymous mmap/munmap/mprotect/
// mremap/madvise, demand faulting, and copy-in/copy-out of app memory
// through the Sentry's own mapping of the memory file.
//
// Each VMA that has been touched owns a contiguous range of memory-file
// offsets ("backing"), so an app address translates to a file offset by
// arithmetic. On the first fault in a VMA the whole VMA is installed in the
// platform address space: the file is sparse, so this commits no memory,
// and later touches of the VMA cost the app no exits at all.
package mm

import (
	"fmt"
	"sort"
	"sync"

	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/platform"
)

// PageSize is the app page size.
const PageSize = memfile.PageSize

// SEGV codes a fault resolves to.
const (
	SegvMapErr = 1
	SegvAccErr = 2
)

// FaultError is a fault the memory manager cannot resolve: the app gets
// SIGSEGV with Code.
type FaultError struct {
	Addr uint64
	Code int32
}

func (e *FaultError) Error() string {
	what := "unmapped address"
	if e.Code == SegvAccErr {
		what = "access not permitted"
	}
	return fmt.Sprintf("fault at %#x: %s", e.Addr, what)
}

// VMA is one range of the address space with uniform attributes.
type VMA struct {
	Start, End uint64
	Perms      platform.AccessType
	Shared     bool
	Name       string // "[heap]", "[stack]", or empty

	backing int64 // memory-file offset of Start, -1 if none yet
	mapped  bool  // installed in the platform address space
}

func (v *VMA) size() uint64 { return v.End - v.Start }

// sameKind reports whether a and b differ only in range.
func sameKind(a, b *VMA) bool {
	return a.Perms == b.Perms && a.Shared == b.Shared && a.Name == b.Name
}

// MM is one address space.
type MM struct {
	mu  sync.Mutex
	mf  *memfile.File
	as  platform.AddressSpace
	min uint64
	max uint64

	vmas []*VMA // sorted, non-overlapping

	// commitLimit is the largest single accountable request (Linux's
	// overcommit heuristic: RAM plus swap); 0 means no limit.
	commitLimit uint64

	mmapBase uint64 // top of the top-down mmap search
	brkStart uint64
	brk      uint64
}

// New makes an empty address space over as, using [min, max).
func New(mf *memfile.File, as platform.AddressSpace, min, max uint64) *MM {
	return &MM{mf: mf, as: as, min: min, max: max, mmapBase: max}
}

// Release frees all memory and the platform address space.
func (m *MM) Release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range m.vmas {
		m.freeBacking(v)
	}
	m.vmas = nil
	m.as.Release()
}

// AddressSpace returns the platform address space.
func (m *MM) AddressSpace() platform.AddressSpace { return m.as }

// Limits returns the usable range [min, max).
func (m *MM) Limits() (uint64, uint64) { return m.min, m.max }

// SetMmapBase sets where top-down mmap placement starts.
func (m *MM) SetMmapBase(addr uint64) {
	m.mu.Lock()
	m.mmapBase = addr
	m.mu.Unlock()
}

// SetCommitLimit sets the largest single writable private (or shared)
// mapping, brk or mremap growth the address space grants, as Linux's
// default overcommit heuristic does.
func (m *MM) SetCommitLimit(bytes uint64) {
	m.mu.Lock()
	m.commitLimit = bytes
	m.mu.Unlock()
}

func (m *MM) overCommit(length uint64) bool {
	return m.commitLimit != 0 && length > m.commitLimit
}

// SetBrkStart sets the initial program break.
func (m *MM) SetBrkStart(addr uint64) {
	m.mu.Lock()
	m.brkStart, m.brk = addr, addr
	m.mu.Unlock()
}

// VMAs returns a copy of the VMA list (for tests and /proc later).
func (m *MM) VMAs() []VMA {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]VMA, len(m.vmas))
	for i, v := range m.vmas {
		out[i] = *v
	}
	return out
}

func pageUp(n uint64) (uint64, bool) {
	r := (n + PageSize - 1) &^ (PageSize - 1)
	return r, r >= n
}

func pageDown(n uint64) uint64 { return n &^ (PageSize - 1) }

// find returns the index of the VMA containing addr, or -1.
func (m *MM) find(addr uint64) int {
	i := sort.Search(len(m.vmas), func(i int) bool { return m.vmas[i].End > addr })
	if i < len(m.vmas) && m.vmas[i].Start <= addr {
		return i
	}
	return -1
}

// firstEndingAfter returns the index of the first VMA with End > addr.
func (m *MM) firstEndingAfter(addr uint64) int {
	return sort.Search(len(m.vmas), func(i int) bool { return m.vmas[i].End > addr })
}

// splitAt makes addr a VMA boundary if it falls inside a VMA.
func (m *MM) splitAt(addr uint64) {
	i := m.find(addr)
	if i < 0 || m.vmas[i].Start == addr {
		return
	}
	v := m.vmas[i]
	tail := *v
	tail.Start = addr
	if v.backing >= 0 {
		tail.backing = v.backing + int64(addr-v.Start)
	}
	v.End = addr
	m.insertAt(i+1, &tail)
}

// isolate splits VMAs so [start, end) has boundaries at both ends and
// returns the index range [i, j) of the VMAs inside it.
func (m *MM) isolate(start, end uint64) (int, int) {
	m.splitAt(start)
	m.splitAt(end)
	i := m.firstEndingAfter(start)
	j := i
	for j < len(m.vmas) && m.vmas[j].Start < end {
		j++
	}
	return i, j
}

func (m *MM) insertAt(i int, v *VMA) {
	m.vmas = append(m.vmas, nil)
	copy(m.vmas[i+1:], m.vmas[i:])
	m.vmas[i] = v
}

func (m *MM) insert(v *VMA) int {
	i := m.firstEndingAfter(v.Start)
	m.insertAt(i, v)
	return i
}

// mergeAround merges the VMA at i with equal neighbours whose backing is
// contiguous and whose install state matches.
func (m *MM) mergeAround(i int) {
	tryMerge := func(a, b *VMA) bool {
		if a.End != b.Start || !sameKind(a, b) || a.mapped != b.mapped {
			return false
		}
		switch {
		case a.backing < 0 && b.backing < 0:
		case a.backing >= 0 && b.backing >= 0 && a.backing+int64(a.size()) == b.backing:
		default:
			return false
		}
		a.End = b.End
		return true
	}
	if i+1 < len(m.vmas) && tryMerge(m.vmas[i], m.vmas[i+1]) {
		m.vmas = append(m.vmas[:i+1], m.vmas[i+2:]...)
	}
	if i > 0 && tryMerge(m.vmas[i-1], m.vmas[i]) {
		m.vmas = append(m.vmas[:i], m.vmas[i+1:]...)
	}
}

// covered reports whether [start, end) is entirely inside VMAs.
func (m *MM) covered(start, end uint64) bool {
	addr := start
	for i := m.firstEndingAfter(start); i < len(m.vmas) && addr < end; i++ {
		if m.vmas[i].Start > addr {
			return false
		}
		addr = m.vmas[i].End
	}
	return addr >= end
}

// isFree reports whether [start, end) touches no VMA and is in range.
func (m *MM) isFree(start, end uint64) bool {
	if start < m.min || end > m.max || end <= start {
		return false
	}
	i := m.firstEndingAfter(start)
	return i == len(m.vmas) || m.vmas[i].Start >= end
}

// findGap finds length free bytes, top-down from mmapBase, then bottom-up
// above it, as Linux's default layout does.
func (m *MM) findGap(length uint64) (uint64, bool) {
	for i := len(m.vmas); i >= 0; i-- {
		lo, hi := m.min, m.max
		if i > 0 {
			lo = m.vmas[i-1].End
		}
		if i < len(m.vmas) {
			hi = m.vmas[i].Start
		}
		if hi > m.mmapBase {
			hi = m.mmapBase
		}
		if hi > lo && hi-lo >= length {
			return hi - length, true
		}
	}
	for i := 0; i <= len(m.vmas); i++ {
		lo, hi := m.min, m.max
		if i > 0 {
			lo = m.vmas[i-1].End
		}
		if i < len(m.vmas) {
			hi = m.vmas[i].Start
		}
		if lo < m.mmapBase {
			lo = m.mmapBase
		}
		if hi > lo && hi-lo >= length {
			return lo, true
		}
	}
	return 0, false
}

// removeRange unmaps [start, end): frees backing, drops VMAs, and removes
// the range from the platform address space.
func (m *MM) removeRange(start, end uint64) {
	i, j := m.isolate(start, end)
	if i == j {
		return
	}
	for _, v := range m.vmas[i:j] {
		m.freeBacking(v)
	}
	m.vmas = append(m.vmas[:i], m.vmas[j:]...)
	m.as.Unmap(start, end-start)
}

func (m *MM) freeBacking(v *VMA) {
	if v.backing >= 0 {
		m.mf.Free(uint64(v.backing), v.size())
		v.backing = -1
	}
}

// ensureBacking gives v memory-file offsets.
func (m *MM) ensureBacking(v *VMA) error {
	if v.backing >= 0 {
		return nil
	}
	off, err := m.mf.Allocate(v.size())
	if err != nil {
		return err
	}
	v.backing = int64(off)
	return nil
}

// install maps the whole of v in the platform address space.
func (m *MM) install(v *VMA) error {
	if err := m.ensureBacking(v); err != nil {
		return err
	}
	if err := m.as.MapFile(v.Start, v.backing, v.size(), v.Perms); err != nil {
		return err
	}
	v.mapped = true
	return nil
}
