package mm

import (
	"errors"
	"math/bits"
	"sort"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// File-backed VMAs.
//
// A file VMA maps a Mappable from VMA.Offset. Unlike anonymous memory it is
// installed in the platform address space a window at a time, because the
// Mappable may have to fill pages from a remote file, and because each
// page may come from anywhere in the memory file: a fault installs the
// aligned faultAround bytes around it, and for a read also the whole
// contiguous run the Mappable already has from the faulting page to the
// VMA's end (BenchmarkFileFault: on ptrace 4x cheaper per page than the
// window alone for a tmpfs-like file). inst records what is installed, per
// page, so a repeat fault with the access unknown can be told apart.
//
// Shared mappings install the Mappable's pages themselves. A read fault on
// a writable shared VMA installs them read-only, so the first write faults
// again and Translate sees forWrite; a platform that cannot tell the access
// (NoAccess) gets them writable at once, translated for write, so a write is
// never missed.
//
// Private mappings install the file's pages read-only even when the VMA is
// writable. A write copies the page into the VMA's private backing (a range
// of the memory file reserved, like an anonymous VMA's, on the first copy)
// and sets its bit in VMA.priv; from then on that page is the private copy
// for good (until MADV_DONTNEED or munmap drops it).
//
// Fork copy-on-write reuses this path. Fork freezes a private VMA's
// current pages (an anonymous VMA's backing; for a private file VMA, its
// copies over its Mappable) into a reference-counted Mappable whose
// Translate is arithmetic and never fails, and whose AddMapping and
// RemoveMapping only count (it is never truncated, so never invalidates).
// Parent and child then each hold a private VMA of it at the same offsets,
// with backing -1 and no private pages; the parent's installed pages are
// dropped (or remapped read-only), so the next write in either faults and
// copies exactly as a MAP_PRIVATE file's does, including the ptrace case
// (read-only installed + repeat fault = write). The frozen memory is
// freed by the Mappable's last DecRef. Nothing here depends on the
// Mappable being a file.
//
// Invalidation: a Mappable that takes pages away (truncation, eviction)
// calls Invalidate with its own lock held, after Translate would no longer
// return those pages and before it reuses them. Invalidate unmaps only
// file pages recorded in inst, under asMu. A fault publishes the window it
// is about to translate (MM.pendLo/pendHi) under asMu and installs, under
// asMu again, only if no Invalidate touched the window meanwhile; else it
// translates again. So a translation that raced with an invalidation is
// never installed, and the fault retries only for invalidations of its
// own window.

// faultAround is how much of a file VMA a fault installs, aligned, around
// the faulting page (Linux's fault_around_bytes default); a power of two.
// A variable so benchmarks can compare sizes.
var faultAround uint64 = 64 << 10

// faultFar lets a read fault install the whole contiguous run the
// Mappable returns from the faulting page, to the VMA's end. A variable so
// benchmarks can compare.
var faultFar = true

// maxRuns bounds the runs one fault installs without allocating.
const maxRuns = 16

// A run is a piece of a fault's window to install.
type run struct {
	addr, off, length uint64
	perms             platform.AccessType
}

// record is the argument tuple of one AddMapping call.
type record struct {
	addr, off, length uint64
	writable          bool
}

// recordOf is v's mapping record. Writable means a shared mapping that may
// write the file (whatever its current permissions): it does not change
// with mprotect, so mprotect never re-registers.
func recordOf(v *VMA) record {
	return record{v.Start, v.Offset, v.size(), v.Shared && v.maxPerms.Write}
}

// addRecord tells v's Mappable that v maps it. Splits, merges, moves and
// growth add the new records before removing the old ones, so a truncation
// racing with them never misses a range (it may see overlapping records
// for a moment and invalidate twice, which is harmless).
func (m *MM) addRecord(v *VMA) {
	r := recordOf(v)
	v.mappable.AddMapping(m, r.addr, r.off, r.length, r.writable)
}

func (m *MM) removeRecord(mp Mappable, r record) {
	mp.RemoveMapping(m, r.addr, r.off, r.length, r.writable)
}

// attach gives a new file VMA its reference and mapping record.
func (m *MM) attach(v *VMA) {
	if v.mappable != nil {
		v.mappable.IncRef()
		m.addRecord(v)
	}
}

// detach undoes attach for a VMA leaving the address space.
func (m *MM) detach(v *VMA) {
	if v.mappable != nil {
		m.removeRecord(v.mappable, recordOf(v))
		v.mappable.DecRef()
		v.mappable = nil
	}
}

// Invalidate implements MappingSpace: it drops the file pages installed in
// [addr, addr+length) from the platform address space, so the next access
// faults and translates again. Private copies stay (they are the app's,
// not the file's) and are simply reinstalled by that fault. It takes only
// asMu, so a Mappable may call it with its own locks held, from any
// goroutine.
func (m *MM) Invalidate(addr, length uint64) {
	start := pageDown(addr)
	end := addr + length
	if end < addr {
		end = ^uint64(0)
	}
	end, ok := pageUp(end)
	if !ok {
		end = pageDown(^uint64(0))
	}
	if end <= start {
		return
	}
	m.asMu.Lock()
	defer m.asMu.Unlock()
	if start < m.pendHi && m.pendLo < end {
		m.pendStale = true
	}
	if m.released {
		return
	}
	m.unmapInstalled(start, end)
}

// unmapInstalled removes the installed file pages of [start, end) from the
// platform address space; asMu is held. Only what inst records is
// unmapped: a stale Invalidate must not take away anonymous memory that
// reused the range, and anonymous VMAs in the range stay installed.
func (m *MM) unmapInstalled(start, end uint64) {
	i := m.inst.firstEndingAfter(start)
	for i < len(m.inst) && m.inst[i].start < end {
		s := max(m.inst[i].start, start)
		e := min(m.inst[i].end, end)
		// Coalesce touching runs into one platform call.
		for i+1 < len(m.inst) && m.inst[i+1].start == e && e < end {
			i++
			e = min(m.inst[i].end, end)
		}
		m.as.Unmap(s, e-s)
		i++
	}
	m.inst.remove(start, end)
}

// pageIndex is the index in v.priv of the page at addr.
func (v *VMA) pageIndex(addr uint64) uint64 { return (addr - v.Start) / PageSize }

// isPrivate reports whether the page at addr is v's own copy.
func (v *VMA) isPrivate(addr uint64) bool {
	return !v.Shared && v.priv.has(v.pageIndex(addr))
}

// fileFault resolves a fault at addr in file VMA v; mu is held.
func (m *MM) fileFault(v *VMA, addr uint64, access platform.AccessType) error {
	if !v.Perms.Any() || (access.Any() && !v.Perms.SupersetOf(access)) {
		return segv(addr, SegvAccErr)
	}
	page := pageDown(addr)
	for {
		m.asMu.Lock()
		cur, installed := m.inst.lookup(page)
		lo, hi, far := page, page+PageSize, page+PageSize
		if !installed {
			wlo := max(v.Start, page&^(faultAround-1))
			whi := min(v.End, wlo+faultAround)
			lo, hi = m.inst.gap(page, wlo, whi)
			_, far = m.inst.gap(page, page, v.End)
		}
		m.pendLo, m.pendHi, m.pendStale = lo, far, false
		m.asMu.Unlock()

		write := access.Write
		switch {
		case installed && access.Any():
			if cur.SupersetOf(access) {
				// Another thread installed it first, or the platform
				// dropped it: install it again as it was.
				write = write || cur.Write
			}
		case installed:
			// A repeat fault with the access unknown: a write if the page
			// is installed read-only in a writable VMA, else a genuine
			// violation.
			if cur.Write || !v.Perms.Write {
				return segv(addr, SegvAccErr)
			}
			write = true
		case !access.Any() && v.Shared && v.Perms.Write:
			write = true
		}

		var buf [maxRuns]run
		runs := buf[:0]
		copied := false
		if write && !v.Shared {
			// Copy on write: only the faulting page.
			if !v.isPrivate(page) {
				if err := m.copyPage(v, page); err != nil {
					m.endPending()
					return faultErr(addr, err)
				}
				copied = true
			}
			runs = append(runs, run{page, uint64(v.backing) + (page - v.Start), PageSize, v.Perms})
		} else {
			// The pages before the fault are a bonus; the faulting page
			// must translate. In address order so runs coalesce.
			runs, _ = m.collect(v, lo, page, page, write, runs)
			// A long run from the faulting page may cover the rest of
			// the VMA (up to what is installed already); pages the
			// Mappable must fill stop at hi. Never for write: the run
			// would all be dirtied.
			if write || !faultFar {
				far = hi
			}
			var err error
			if runs, err = m.collect(v, page, hi, far, write, runs); err != nil {
				m.endPending()
				return faultErr(addr, err)
			}
		}

		m.asMu.Lock()
		stale := m.pendStale
		m.pendLo, m.pendHi = 0, 0
		if stale {
			// Invalidated while we translated: what we hold may be stale.
			m.asMu.Unlock()
			if copied {
				v.priv.clear(v.pageIndex(page), v.pageIndex(page)+1)
				m.mf.Decommit(uint64(v.backing)+(page-v.Start), PageSize)
			}
			continue
		}
		var err error
		for _, r := range runs {
			if err = m.as.MapFile(r.addr, int64(r.off), r.length, r.perms); err != nil {
				m.as.Unmap(r.addr, r.length)
				break
			}
			m.inst.add(r.addr, r.addr+r.length, r.perms)
		}
		m.asMu.Unlock()
		if err != nil {
			return segv(addr, SegvMapErr)
		}
		return nil
	}
}

// endPending ends a fault's window without installing it.
func (m *MM) endPending() {
	m.asMu.Lock()
	m.pendLo, m.pendHi = 0, 0
	m.asMu.Unlock()
}

// faultErr turns a failure to provide a file page into the app's signal:
// SIGBUS for a page the file does not have (past its end, or an I/O error,
// as Linux does), SIGSEGV for running out of memory.
func faultErr(addr uint64, err error) error {
	if errors.Is(err, errNoMemory) {
		return segv(addr, SegvMapErr)
	}
	return sigbus(addr)
}

var errNoMemory = errors.New("memory file full")

// collect appends to runs the translations of [start, end) in v: private
// copies with v's permissions, file pages with v's permissions less write
// unless forWrite (shared VMAs only). It stops at the first page that
// cannot be translated and fails only if that is start.
//
// The first Translate may reach up to far (>= end): a Mappable with a long
// run at hand (tmpfs) returns it whole, and the fault installs it in one
// go, while one that fills pages on demand (a page cache) reports only
// what it has, and is asked to fill no more than [start, end).
func (m *MM) collect(v *VMA, start, end, far uint64, forWrite bool, runs []run) ([]run, error) {
	filePerms := v.Perms
	if !forWrite || !v.Shared {
		filePerms.Write = false
		forWrite = false
	}
	for a := start; a < end; {
		if v.isPrivate(a) {
			e := v.privateEnd(a, end)
			runs = appendRun(runs, run{a, uint64(v.backing) + (a - v.Start), e - a, v.Perms})
			a = e
			continue
		}
		limit := end
		if a == start {
			limit = far
		}
		e := v.fileEnd(a, limit)
		off, n, err := m.translate(v, a, e-a, forWrite)
		if err != nil {
			if a == start {
				return runs, err
			}
			return runs, nil
		}
		runs = appendRun(runs, run{a, off, n, filePerms})
		a += n
	}
	return runs, nil
}

// privateEnd returns where the run of private pages at addr ends, at most
// limit.
func (v *VMA) privateEnd(addr, limit uint64) uint64 {
	return v.Start + v.priv.nextClear(v.pageIndex(addr), v.pageIndex(limit))*PageSize
}

// fileEnd returns where the run of the file's own (not copied) pages at
// addr ends, at most limit.
func (v *VMA) fileEnd(addr, limit uint64) uint64 {
	if v.Shared {
		return limit
	}
	return v.Start + v.priv.nextSet(v.pageIndex(addr), v.pageIndex(limit))*PageSize
}

// translate asks v's Mappable for the memory-file offset of the page at
// addr and how many bytes (at most length, whole pages) follow it
// contiguously.
func (m *MM) translate(v *VMA, addr, length uint64, forWrite bool) (uint64, uint64, error) {
	off, n, err := v.mappable.Translate(v.Offset+(addr-v.Start), length, forWrite)
	if err != nil {
		return 0, 0, err
	}
	// Defensive: a Mappable returning nothing must not loop us forever.
	n = pageDown(min(n, length))
	if n == 0 || off%PageSize != 0 {
		return 0, 0, ErrPastEOF
	}
	return off, n, nil
}

// appendRun appends r, extending the last run when r continues it.
func appendRun(runs []run, r run) []run {
	if k := len(runs) - 1; k >= 0 {
		p := &runs[k]
		if p.addr+p.length == r.addr && p.off+p.length == r.off && p.perms == r.perms {
			p.length += r.length
			return runs
		}
	}
	return append(runs, r)
}

// copyPage makes the page at addr of private file VMA v its own: copies
// the file's page into v's backing and marks it private.
func (m *MM) copyPage(v *VMA, addr uint64) error {
	src, _, err := m.translate(v, addr, PageSize, false)
	if err != nil {
		return err
	}
	if err := m.ensureBacking(v); err != nil {
		return errNoMemory
	}
	dst := uint64(v.backing) + (addr - v.Start)
	copy(m.mf.Slice(dst, PageSize), m.mf.Slice(src, PageSize))
	v.priv.set(v.pageIndex(addr))
	return nil
}

// fileSlice returns the Sentry's view of a prefix of [addr, addr+n) in file
// VMA v (as much as is contiguous in the memory file). write means the
// Sentry will write it: a shared page is translated for write, a private
// page is copied first.
func (m *MM) fileSlice(v *VMA, addr, n uint64, write bool) ([]byte, error) {
	page := pageDown(addr)
	end, _ := pageUp(addr + n)
	var off, avail uint64
	switch {
	case !v.Shared && (write || v.isPrivate(page)):
		if !v.isPrivate(page) {
			if err := m.copyPage(v, page); err != nil {
				return nil, err
			}
			// The app may have the file's page installed read-only.
			m.dropInstalled(page, page+PageSize)
		}
		e := v.privateEnd(page, end)
		off, avail = uint64(v.backing)+(page-v.Start), e-page
	default:
		e := v.fileEnd(page, end)
		var err error
		if off, avail, err = m.translate(v, page, e-page, write && v.Shared); err != nil {
			return nil, err
		}
	}
	skip := addr - page
	return m.mf.Slice(off+skip, min(n, avail-skip)), nil
}

// dropInstalled removes the installed file pages of [start, end) from the
// platform address space (the next access faults and installs afresh).
func (m *MM) dropInstalled(start, end uint64) {
	m.asMu.Lock()
	m.unmapInstalled(start, end)
	m.asMu.Unlock()
}

// populate installs what of file VMA v the file can provide, read-only for
// private mappings (MAP_POPULATE: no copies are made).
func (m *MM) populate(v *VMA) {
	for a := v.Start; a < v.End; {
		e := min(v.End, a+faultAround)
		m.asMu.Lock()
		m.pendLo, m.pendHi, m.pendStale = a, e, false
		m.asMu.Unlock()
		var buf [maxRuns]run
		runs, err := m.collect(v, a, e, v.End, false, buf[:0])
		m.asMu.Lock()
		stale := m.pendStale
		m.pendLo, m.pendHi = 0, 0
		if !stale {
			for _, r := range runs {
				if err = m.as.MapFile(r.addr, int64(r.off), r.length, r.perms); err != nil {
					m.as.Unmap(r.addr, r.length)
					break
				}
				m.inst.add(r.addr, r.addr+r.length, r.perms)
			}
		}
		m.asMu.Unlock()
		if err != nil || len(runs) == 0 {
			return
		}
		last := runs[len(runs)-1]
		a = last.addr + last.length
	}
}

// instRun is a range of a file VMA installed with perms.
type instRun struct {
	start, end uint64
	perms      platform.AccessType
}

// instSet is a sorted list of non-overlapping installed runs.
type instSet []instRun

func (s instSet) firstEndingAfter(addr uint64) int {
	return sort.Search(len(s), func(i int) bool { return s[i].end > addr })
}

// lookup returns the permissions the page at addr is installed with.
func (s instSet) lookup(addr uint64) (platform.AccessType, bool) {
	i := s.firstEndingAfter(addr)
	if i < len(s) && s[i].start <= addr {
		return s[i].perms, true
	}
	return platform.NoAccess, false
}

// gap returns the largest [lo, hi) within [wlo, whi) around addr (which is
// not installed) that holds no installed page.
func (s instSet) gap(addr, wlo, whi uint64) (uint64, uint64) {
	i := s.firstEndingAfter(addr)
	lo, hi := wlo, whi
	if i > 0 && s[i-1].end > lo {
		lo = s[i-1].end
	}
	if i < len(s) && s[i].start < hi {
		hi = s[i].start
	}
	return lo, hi
}

// remove forgets [start, end).
func (s *instSet) remove(start, end uint64) {
	r := *s
	i := r.firstEndingAfter(start)
	if i == len(r) || r[i].start >= end {
		return
	}
	j := i
	for j < len(r) && r[j].start < end {
		j++
	}
	// r[i:j] overlap; keep their parts outside [start, end).
	var keep [2]instRun
	k := 0
	if r[i].start < start {
		keep[k] = instRun{r[i].start, start, r[i].perms}
		k++
	}
	if r[j-1].end > end {
		keep[k] = instRun{end, r[j-1].end, r[j-1].perms}
		k++
	}
	if i+k > j { // one run split in two: one more entry
		r = append(r, instRun{})
		copy(r[j+1:], r[j:])
	} else {
		n := copy(r[i+k:], r[j:])
		r = r[:i+k+n]
	}
	copy(r[i:], keep[:k])
	*s = r
}

// add records [start, end) as installed with perms, replacing overlaps.
func (s *instSet) add(start, end uint64, perms platform.AccessType) {
	s.remove(start, end)
	r := *s
	i := r.firstEndingAfter(start)
	// Merge with neighbours of the same permissions.
	if i > 0 && r[i-1].end == start && r[i-1].perms == perms {
		r[i-1].end = end
		if i < len(r) && r[i].start == end && r[i].perms == perms {
			r[i-1].end = r[i].end
			r = append(r[:i], r[i+1:]...)
		}
		*s = r
		return
	}
	if i < len(r) && r[i].start == end && r[i].perms == perms {
		r[i].start = start
		return
	}
	r = append(r, instRun{})
	copy(r[i+1:], r[i:])
	r[i] = instRun{start, end, perms}
	*s = r
}

// bitset is a set of page indexes; nil is empty. It grows as bits are set.
type bitset []uint64

func (b bitset) has(i uint64) bool {
	w := i / 64
	return w < uint64(len(b)) && b[w]&(1<<(i%64)) != 0
}

func (b *bitset) set(i uint64) {
	w := i / 64
	if w >= uint64(len(*b)) {
		*b = append(*b, make(bitset, w+1-uint64(len(*b)))...)
	}
	(*b)[w] |= 1 << (i % 64)
}

// clear unsets [lo, hi).
func (b bitset) clear(lo, hi uint64) {
	for i := lo; i < hi && i/64 < uint64(len(b)); {
		if i%64 == 0 && hi-i >= 64 {
			b[i/64] = 0
			i += 64
			continue
		}
		b[i/64] &^= 1 << (i % 64)
		i++
	}
}

// nextSet returns the first set bit in [from, limit), or limit.
func (b bitset) nextSet(from, limit uint64) uint64 {
	for i := from; i < limit; {
		w := i / 64
		if w >= uint64(len(b)) {
			return limit
		}
		if x := b[w] >> (i % 64); x != 0 {
			return min(i+uint64(bits.TrailingZeros64(x)), limit)
		}
		i = (w + 1) * 64
	}
	return limit
}

// nextClear returns the first clear bit in [from, limit), or limit.
func (b bitset) nextClear(from, limit uint64) uint64 {
	for i := from; i < limit; {
		w := i / 64
		if w >= uint64(len(b)) {
			return i
		}
		if x := ^b[w] >> (i % 64); x != 0 {
			return min(i+uint64(bits.TrailingZeros64(x)), limit)
		}
		i = (w + 1) * 64
	}
	return limit
}

// word returns the 64 bits from bit pos.
func (b bitset) word(pos uint64) uint64 {
	w, s := pos/64, pos%64
	var x uint64
	if w < uint64(len(b)) {
		x = b[w] >> s
	}
	if s != 0 && w+1 < uint64(len(b)) {
		x |= b[w+1] << (64 - s)
	}
	return x
}

// slice returns bits [lo, hi) renumbered from 0, as a new set.
func (b bitset) slice(lo, hi uint64) bitset {
	if hi <= lo || lo/64 >= uint64(len(b)) {
		return nil
	}
	out := make(bitset, (hi-lo+63)/64)
	for i := range out {
		out[i] = b.word(lo + uint64(i)*64)
	}
	if r := (hi - lo) % 64; r != 0 {
		out[len(out)-1] &= 1<<r - 1
	}
	return out.trim()
}

// orAt returns b with o's bits added from bit pos.
func (b bitset) orAt(pos uint64, o bitset) bitset {
	o = o.trim()
	if len(o) == 0 {
		return b
	}
	need := (pos+uint64(len(o))*64)/64 + 1
	if uint64(len(b)) < need {
		b = append(b, make(bitset, need-uint64(len(b)))...)
	}
	w, s := pos/64, pos%64
	for i, x := range o {
		b[w+uint64(i)] |= x << s
		if s != 0 {
			b[w+uint64(i)+1] |= x >> (64 - s)
		}
	}
	return b.trim()
}

func (b bitset) trim() bitset {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return nil
	}
	return b
}

// count reports how many bits are set.
func (b bitset) count() int {
	n := 0
	for _, x := range b {
		n += bits.OnesCount64(x)
	}
	return n
}
