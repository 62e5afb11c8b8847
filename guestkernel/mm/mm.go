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
//
// A VMA may instead map a Mappable (file data); see file.go for how those
// fault, copy on write, and are invalidated.
//
// Lock order: MM.mu, then a Mappable's own locks, then MM.asMu (a leaf).
// MM calls Translate, AddMapping, RemoveMapping, IncRef and DecRef with mu
// held; a Mappable calls Invalidate with its own locks held, and
// Invalidate takes only asMu. Every platform address space change happens
// under asMu, so the platform sees them serialised.
package mm

import (
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/platform"
)

// PageSize is the app page size.
const PageSize = memfile.PageSize

// SIGSEGV and SIGBUS codes a fault resolves to.
const (
	SegvMapErr = 1
	SegvAccErr = 2
	BusAdrErr  = 2
)

// FaultError is a fault the memory manager cannot resolve: the app gets
// signal Signo (SIGSEGV, or SIGBUS for a file page past the end of the
// file) with Code.
type FaultError struct {
	Addr  uint64
	Signo int32
	Code  int32
}

func segv(addr uint64, code int32) *FaultError {
	return &FaultError{Addr: addr, Signo: int32(unix.SIGSEGV), Code: code}
}

func sigbus(addr uint64) *FaultError {
	return &FaultError{Addr: addr, Signo: int32(unix.SIGBUS), Code: BusAdrErr}
}

func (e *FaultError) Error() string {
	what := "unmapped address"
	switch {
	case e.Signo == int32(unix.SIGBUS):
		what = "no file data (SIGBUS)"
	case e.Code == SegvAccErr:
		what = "access not permitted"
	}
	return fmt.Sprintf("fault at %#x: %s", e.Addr, what)
}

// VMA is one range of the address space with uniform attributes.
type VMA struct {
	Start, End uint64
	Perms      platform.AccessType
	Shared     bool
	Name       string // "[heap]", "[stack]", a mapped file's path, or empty

	// Offset, Dev and Ino identify a file mapping for /proc/PID/maps:
	// Offset is the file offset mapped at Start. All zero for anonymous
	// memory.
	Offset   uint64
	Dev, Ino uint64

	maxPerms platform.AccessType // what the open file allows
	mappable Mappable            // file data; nil for anonymous memory

	// backing is the memory-file offset of Start, -1 if none yet. An
	// anonymous VMA's pages all live there; a private file VMA keeps its
	// copied-on-write pages there (reserved on the first copy; the file is
	// sparse), and priv says which pages those are.
	backing int64
	priv    bitset
	mapped  bool // anonymous: installed in the platform address space
}

func (v *VMA) size() uint64 { return v.End - v.Start }

// sameKind reports whether a and b differ only in range (and, for file
// VMAs, offset: the caller checks offsets are contiguous).
func sameKind(a, b *VMA) bool {
	return a.Perms == b.Perms && a.Shared == b.Shared && a.Name == b.Name &&
		a.mappable == b.mappable && a.maxPerms == b.maxPerms && a.Dev == b.Dev && a.Ino == b.Ino
}

// follows reports whether b's file range continues a's (always true for
// anonymous memory).
func follows(a, b *VMA) bool {
	return a.mappable == nil || a.Offset+a.size() == b.Offset
}

// MM is one address space.
type MM struct {
	mu  sync.Mutex
	mf  *memfile.File
	as  platform.AddressSpace
	min uint64
	max uint64

	vmas []*VMA // sorted, non-overlapping

	// asMu serialises platform address space changes and guards inst; it
	// is the only lock Invalidate takes.
	asMu sync.Mutex
	// inst records what of file VMAs is in the platform address space and
	// with which permissions (anonymous VMAs use VMA.mapped instead).
	inst instSet
	// [pendLo, pendHi) is the window a fault is translating (faults are
	// serialised by mu); Invalidate of any of it sets pendStale, and the
	// fault translates again rather than install what may be stale.
	// Unrelated invalidations (a page cache evicting elsewhere to make
	// room) do not disturb it. Guarded by asMu.
	pendLo, pendHi uint64
	pendStale      bool
	released       bool // guarded by asMu

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
		m.detach(v)
	}
	m.vmas = nil
	// A late Invalidate must not touch the released address space.
	m.asMu.Lock()
	m.released = true
	m.inst = nil
	m.as.Release()
	m.asMu.Unlock()
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

// VMAs returns a copy of the VMA list (for tests and /proc/PID/maps; see
// VMA.MapsLine).
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
	if v.mappable == nil {
		v.End = addr
		m.insertAt(i+1, &tail)
		return
	}
	old := recordOf(v)
	head := (addr - v.Start) / PageSize
	tail.Offset = v.Offset + (addr - v.Start)
	tail.priv = v.priv.slice(head, v.size()/PageSize)
	v.priv = v.priv.slice(0, head)
	v.End = addr
	m.insertAt(i+1, &tail)
	v.mappable.IncRef()
	m.addRecord(v)
	m.addRecord(&tail)
	m.removeRecord(v.mappable, old)
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
		if a.End != b.Start || !sameKind(a, b) || a.mapped != b.mapped || !follows(a, b) {
			return false
		}
		switch {
		case a.backing < 0 && b.backing < 0:
		case a.backing >= 0 && b.backing >= 0 && a.backing+int64(a.size()) == b.backing:
		default:
			return false
		}
		if a.mappable == nil {
			a.End = b.End
			return true
		}
		oldA, oldB := recordOf(a), recordOf(b)
		a.priv = a.priv.orAt(a.size()/PageSize, b.priv)
		a.End = b.End
		m.addRecord(a)
		m.removeRecord(a.mappable, oldA)
		m.removeRecord(a.mappable, oldB)
		a.mappable.DecRef() // b's reference
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

// removeRange unmaps [start, end): removes the range from the platform
// address space, frees backing, and drops VMAs.
func (m *MM) removeRange(start, end uint64) {
	i, j := m.isolate(start, end)
	if i == j {
		return
	}
	// Out of the platform first, so no app thread touches freed pages.
	m.asUnmap(start, end)
	for _, v := range m.vmas[i:j] {
		m.freeBacking(v)
		m.detach(v)
	}
	m.vmas = append(m.vmas[:i], m.vmas[j:]...)
}

// asUnmap removes [start, end) from the platform address space, forgetting
// any file pages installed there.
func (m *MM) asUnmap(start, end uint64) {
	m.asMu.Lock()
	m.as.Unmap(start, end-start)
	m.inst.remove(start, end)
	m.asMu.Unlock()
}

// asMap installs a memory-file range in the platform address space.
func (m *MM) asMap(addr uint64, off int64, length uint64, at platform.AccessType) error {
	m.asMu.Lock()
	err := m.as.MapFile(addr, off, length, at)
	m.asMu.Unlock()
	return err
}

func (m *MM) freeBacking(v *VMA) {
	if v.backing >= 0 {
		m.mf.Free(uint64(v.backing), v.size())
		v.backing = -1
	}
	v.priv = nil
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
	if err := m.asMap(v.Start, v.backing, v.size(), v.Perms); err != nil {
		return err
	}
	v.mapped = true
	return nil
}
