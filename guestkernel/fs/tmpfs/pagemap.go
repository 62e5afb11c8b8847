package tmpfs

import (
	"slices"

	"github.com/ringfence/ringfence/guestkernel/memfile"
)

const (
	pageSize  = memfile.PageSize
	pageShift = 12
	// maxFileSize is Linux's MAX_LFS_FILESIZE on 64-bit hosts.
	maxFileSize = int64(^uint64(0) >> 1)
	// noPage is "to the end of the file" for page ranges.
	noPage = ^uint64(0)
)

func pageUp(n uint64) uint64   { return (n + pageSize - 1) &^ (pageSize - 1) }
func pageDown(n uint64) uint64 { return n &^ (pageSize - 1) }

// extent maps file pages [start, end) to the memory-file bytes starting at
// mem. Extents are the unit of allocation: a write into a hole allocates
// the whole run of missing pages at once, so sequential files usually end
// up as a handful of extents and mappings translate large contiguous runs.
type extent struct{ start, end, mem uint64 }

func (e extent) memAt(page uint64) uint64 { return e.mem + (page-e.start)<<pageShift }

// memRange is a range of memory-file bytes to give back.
type memRange struct{ off, length uint64 }

// pageMap is a file's sparse page index: sorted, non-overlapping extents.
// A sorted slice keeps lookups at O(log n) without per-lookup allocation,
// and SEEK_DATA/SEEK_HOLE and truncation are simple scans from a point.
type pageMap struct {
	exts  []extent
	pages uint64 // pages mapped in all
}

// find returns the index of the first extent that ends after page.
func (m *pageMap) find(page uint64) int {
	lo, hi := 0, len(m.exts)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.exts[mid].end <= page {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// lookup returns find(page) and whether that extent holds page.
func (m *pageMap) lookup(page uint64) (int, bool) {
	i := m.find(page)
	return i, i < len(m.exts) && m.exts[i].start <= page
}

// insert adds e, which overlaps no extent, at its place i (= find(e.start)),
// merging it with neighbours contiguous both in the file and in memory.
func (m *pageMap) insert(i int, e extent) {
	m.pages += e.end - e.start
	if i > 0 {
		p := &m.exts[i-1]
		if p.end == e.start && p.memAt(p.end) == e.mem {
			p.end = e.end
			if i < len(m.exts) {
				n := m.exts[i]
				if n.start == p.end && p.memAt(n.start) == n.mem {
					p.end = n.end
					m.exts = slices.Delete(m.exts, i, i+1)
				}
			}
			return
		}
	}
	if i < len(m.exts) {
		n := &m.exts[i]
		if n.start == e.end && e.memAt(e.end) == n.mem {
			n.start, n.mem = e.start, e.mem
			return
		}
	}
	m.exts = slices.Insert(m.exts, i, e)
}

// remove unmaps pages [start, end) and appends the memory they used to
// freed, which the caller frees once nothing can reach it any more.
func (m *pageMap) remove(start, end uint64, freed []memRange) []memRange {
	lo := m.find(start)
	hi := lo
	var keep [2]extent // only the first and last extents can survive in part
	nk := 0
	for hi < len(m.exts) && m.exts[hi].start < end {
		e := m.exts[hi]
		s, t := max(e.start, start), min(e.end, end)
		freed = append(freed, memRange{e.memAt(s), (t - s) << pageShift})
		m.pages -= t - s
		if e.start < s {
			keep[nk] = extent{e.start, s, e.mem}
			nk++
		}
		if t < e.end {
			keep[nk] = extent{t, e.end, e.memAt(t)}
			nk++
		}
		hi++
	}
	if hi > lo {
		m.exts = slices.Replace(m.exts, lo, hi, keep[:nk]...)
	}
	return freed
}

// mappedIn counts the mapped pages in [start, end).
func (m *pageMap) mappedIn(start, end uint64) uint64 {
	var n uint64
	for i := m.find(start); i < len(m.exts) && m.exts[i].start < end; i++ {
		e := m.exts[i]
		n += min(e.end, end) - max(e.start, start)
	}
	return n
}
