package goferfs

import (
	"errors"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

const pageSize = memfile.PageSize

// fillWindow is the aligned window one page cache miss fills (at most):
// the memory manager's fault-around size, so a fault costs one host read.
const fillWindow = 64 << 10

// dirtyBit marks a cached page written through a shared mapping; it lives
// in the low bit of the page's (page aligned) memory-file offset.
const dirtyBit = 1

// errNoFD is a page cache operation on a file that was never configured
// for mapping (no host descriptor to fill or write back pages with).
var errNoFD = errors.New("goferfs: page cache has no host descriptor")

// fileKey identifies a host file: several inodes (hard links, a file
// looked up again after the VFS dropped it) share one fileData.
type fileKey struct {
	dev, ino uint64
	btime    proto.Timespec // guards against inode number reuse when known
}

func keyOf(st *proto.Stat) fileKey {
	k := fileKey{dev: uint64(st.DevMajor)<<32 | uint64(st.DevMinor), ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		k.btime = st.Btime
	}
	return k
}

// mapping is one AddMapping range.
type mapping struct {
	ms                mm.MappingSpace
	addr, off, length uint64
	writable          bool
}

// inval is a range to Invalidate once locks are dropped.
type inval struct {
	ms           mm.MappingSpace
	addr, length uint64
}

var (
	_ mm.Mappable       = (*fileData)(nil)
	_ mm.MappableSyncer = (*fileData)(nil)
)

// fileData is what all inodes of one host file share: its attributes and
// its page cache. It is the mm.Mappable of the file, so every mapping of,
// say, libc uses the same cached pages whichever path or process mapped it.
type fileData struct {
	fs  *FS
	key fileKey

	// Guarded by fs.mu.
	refs    int // inodes holding it plus mapping references (IncRef)
	mapRefs int // the IncRef part
	dead    bool

	attrMu    sync.Mutex
	attr      vfs.Attr
	attrValid bool // Exclusive: attr may be returned without asking
	hostSeen  bool
	hostMtime unix.Timespec
	hostSize  int64 // what the host last reported, for Shared mode

	// mu guards the page cache. I/O that bypasses the cache holds it for
	// reading, so no page can be filled from the host while a write to the
	// host is in flight (and go stale); filling, truncating and write-back
	// hold it for writing.
	mu       sync.RWMutex
	pages    map[uint64]uint64 // page index -> memory-file offset | dirtyBit
	ndirty   int
	maps     []mapping
	rfd      int   // host descriptor pages are read from, -1 until mapped
	wfd      int   // writable host descriptor for write-back, -1 if none
	wbErr    error // a write-back failure not yet reported by Sync
	released bool
}

func newFileData(fs *FS, key fileKey, st *proto.Stat) *fileData {
	d := &fileData{fs: fs, key: key, rfd: -1, wfd: -1}
	d.setAttrFromHost(st)
	return d
}

func ts(t proto.Timespec) unix.Timespec {
	return unix.Timespec{Sec: t.Sec, Nsec: int64(t.Nsec)}
}

func attrFromStat(st *proto.Stat) vfs.Attr {
	a := vfs.Attr{
		Mode:    st.Mode,
		Nlink:   uint64(st.Nlink),
		UID:     st.UID,
		GID:     st.GID,
		Rdev:    unix.Mkdev(st.RdevMajor, st.RdevMinor),
		Size:    int64(st.Size),
		Blocks:  int64(st.Blocks),
		Blksize: int64(st.Blksize),
		Ino:     st.Ino,
		Atime:   ts(st.Atime),
		Mtime:   ts(st.Mtime),
		Ctime:   ts(st.Ctime),
	}
	if st.Mask&unix.STATX_BTIME != 0 {
		a.Btime = ts(st.Btime)
	}
	return a
}

// setAttrFromHost replaces the cached attributes with st. It reports
// whether the file's data changed on the host since it last looked (size
// or modification time), which matters in Shared mode.
func (d *fileData) setAttrFromHost(st *proto.Stat) (changed bool) {
	a := attrFromStat(st)
	d.attrMu.Lock()
	changed = d.hostSeen && (a.Size != d.hostSize || a.Mtime != d.hostMtime)
	d.attr, d.attrValid, d.hostSeen = a, true, true
	d.hostSize, d.hostMtime = a.Size, a.Mtime
	d.attrMu.Unlock()
	return changed
}

// fillAttr sets attributes from st only if none are cached (Exclusive
// mode: what we have is at least as new as a stat taken on the way).
func (d *fileData) fillAttr(st *proto.Stat) {
	d.attrMu.Lock()
	valid := d.attrValid
	d.attrMu.Unlock()
	if !valid {
		d.setAttrFromHost(st)
	}
}

func (d *fileData) invalidateAttr() {
	d.attrMu.Lock()
	d.attrValid = false
	d.attrMu.Unlock()
}

// cachedAttr returns the cached attributes if valid.
func (d *fileData) cachedAttr() (vfs.Attr, bool) {
	d.attrMu.Lock()
	defer d.attrMu.Unlock()
	return d.attr, d.attrValid
}

func (d *fileData) size() int64 {
	d.attrMu.Lock()
	defer d.attrMu.Unlock()
	return d.attr.Size
}

// noteWrite records a write of n bytes at off: the size grows and the
// modification times move, as the host's will have.
func (d *fileData) noteWrite(off int64, n int) {
	if n <= 0 {
		return
	}
	now := time.Now()
	t := unix.NsecToTimespec(now.UnixNano())
	d.attrMu.Lock()
	if end := off + int64(n); end > d.attr.Size {
		d.attr.Size = end
		d.hostSize = end // our own change, not someone else's
		if b := (end + 511) / 512; b > d.attr.Blocks {
			d.attr.Blocks = b
		}
	}
	d.attr.Mtime, d.attr.Ctime = t, t
	d.attrMu.Unlock()
}

// noteSize records a size change we made.
func (d *fileData) noteSize(size int64) {
	d.attrMu.Lock()
	d.attr.Size, d.hostSize = size, size
	d.attrMu.Unlock()
}

// hasPages reports whether any page is cached; the caller holds mu.
func (d *fileData) hasPages() bool { return len(d.pages) > 0 }

// ensureFDs makes sure the page cache has a descriptor to read pages from
// and, if writable is set, one to write dirty pages back with. Both are
// duplicates of fd (an open host descriptor of this file), so mapping a
// file costs no gofer round trip.
func (d *fileData) ensureFDs(fd int, writable bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.released {
		return unix.EIO
	}
	if d.rfd < 0 {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return err
		}
		d.rfd = nfd
	}
	if writable && d.wfd < 0 {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return err
		}
		d.wfd = nfd
	}
	return nil
}

// dupReadFD returns a new duplicate of the page cache's read descriptor,
// or -1 if there is none (saves a gofer Open for files already mapped).
func (d *fileData) dupReadFD() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.rfd < 0 {
		return -1
	}
	fd, err := unix.FcntlInt(uintptr(d.rfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// Translate implements mm.Mappable.Translate. A cached page is returned
// with as many following pages as are contiguous in the memory file. A
// miss reads, in one pread into freshly allocated pages, from off to the
// end of its aligned fillWindow (never past length or a cached page): not
// all of a long length, as the memory manager asks.
func (d *fileData) Translate(off, length uint64, forWrite bool) (uint64, uint64, error) {
	if length < pageSize {
		length = pageSize
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.released {
		return 0, 0, unix.EIO
	}
	if forWrite && d.wfd < 0 {
		// Only a shared writable mapping writes, and ConfigureMMap gave it
		// a writable descriptor.
		return 0, 0, unix.EACCES
	}
	idx := off / pageSize
	end := off + length
	if v, ok := d.pages[idx]; ok {
		base := v &^ dirtyBit
		n := uint64(0)
		for p := idx; p*pageSize < end; p++ {
			v, ok := d.pages[p]
			if !ok || v&^dirtyBit != base+n {
				break
			}
			if forWrite && v&dirtyBit == 0 {
				d.pages[p] = v | dirtyBit
				d.ndirty++
			}
			n += pageSize
		}
		return base, n, nil
	}
	if d.rfd < 0 {
		return 0, 0, errNoFD
	}
	// Fill uncached pages only: a cached page may be dirty.
	want := min(end-off, (off/fillWindow+1)*fillWindow-off)
	k := uint64(1)
	for k*pageSize < want {
		if _, ok := d.pages[idx+k]; ok {
			break
		}
		k++
	}
	mf := d.fs.mf
	mem, err := mf.Allocate(k * pageSize)
	if err != nil {
		return 0, 0, err
	}
	buf := mf.Slice(mem, k*pageSize)
	n, err := preadFull(d.rfd, buf, int64(off))
	if err != nil {
		mf.Free(mem, k*pageSize)
		return 0, 0, err
	}
	if n == 0 {
		mf.Free(mem, k*pageSize)
		return 0, 0, mm.ErrPastEOF
	}
	valid := (uint64(n) + pageSize - 1) / pageSize
	clear(buf[n : valid*pageSize]) // the part of the last page past EOF
	if valid < k {
		mf.Free(mem+valid*pageSize, (k-valid)*pageSize)
	}
	if d.pages == nil {
		d.pages = make(map[uint64]uint64)
	}
	for p := uint64(0); p < valid; p++ {
		v := mem + p*pageSize
		if forWrite {
			v |= dirtyBit
			d.ndirty++
		}
		d.pages[idx+p] = v
	}
	return mem, valid * pageSize, nil
}

// AddMapping implements mm.Mappable.
func (d *fileData) AddMapping(ms mm.MappingSpace, addr, off, length uint64, writable bool) {
	d.mu.Lock()
	d.maps = append(d.maps, mapping{ms: ms, addr: addr, off: off, length: length, writable: writable})
	d.mu.Unlock()
}

// RemoveMapping implements mm.Mappable: it removes the record AddMapping
// made with the same arguments (records may overlap, so it must not cut
// ranges out of others). When the last writable mapping goes, dirty pages
// are written back.
func (d *fileData) RemoveMapping(ms mm.MappingSpace, addr, off, length uint64, writable bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := mapping{ms: ms, addr: addr, off: off, length: length, writable: writable}
	for k, m := range d.maps {
		if m == want {
			d.maps = slices.Delete(d.maps, k, k+1)
			break
		}
	}
	if writable && !d.hasWritableMapping() {
		if err := d.writebackLocked(true); err != nil && d.wbErr == nil {
			d.wbErr = err
		}
	}
}

func (d *fileData) hasWritableMapping() bool {
	for _, m := range d.maps {
		if m.writable {
			return true
		}
	}
	return false
}

// IncRef implements mm.Mappable: a VMA keeps the page cache alive.
func (d *fileData) IncRef() {
	d.fs.mu.Lock()
	d.refs++
	d.mapRefs++
	d.fs.mu.Unlock()
}

// DecRef implements mm.Mappable.
func (d *fileData) DecRef() {
	d.fs.mu.Lock()
	d.mapRefs--
	d.fs.decDataLocked(d)
	d.fs.unlock()
}

// writebackLocked writes dirty pages to the host (up to the file size; a
// shared mapping cannot extend a file). Pages stay dirty unless clear is
// set: while a writable mapping exists the app may write them again
// without faulting, so only when none is left are they known clean.
func (d *fileData) writebackLocked(clear bool) error {
	return d.writebackRangeLocked(0, ^uint64(0), clear)
}

// writebackRangeLocked is writebackLocked for the pages of file offsets
// [from, to).
func (d *fileData) writebackRangeLocked(from, to uint64, clear bool) error {
	if d.ndirty == 0 {
		return nil
	}
	if d.wfd < 0 {
		return errNoFD
	}
	idxs := make([]uint64, 0, d.ndirty)
	for p, v := range d.pages {
		if v&dirtyBit != 0 && p*pageSize < to && (p+1)*pageSize > from {
			idxs = append(idxs, p)
		}
	}
	slices.Sort(idxs)
	size := uint64(d.size())
	var first error
	for _, p := range idxs {
		off := p * pageSize
		if off < size && first == nil {
			n := min(pageSize, size-off)
			first = pwriteFull(d.wfd, d.fs.mf.Slice(d.pages[p]&^dirtyBit, n), int64(off))
		}
		if clear && first == nil {
			d.pages[p] &^= dirtyBit
			d.ndirty--
		}
	}
	return first
}

// SyncRange implements mm.MappableSyncer: msync(MS_SYNC) writes the dirty
// pages of file range [off, off+length) to the host.
func (d *fileData) SyncRange(off, length uint64) error {
	end := off + length
	if end < off {
		end = ^uint64(0)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writebackRangeLocked(off, end, !d.hasWritableMapping())
}

// sync writes dirty pages back and reports any earlier write-back error.
func (d *fileData) sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.writebackLocked(!d.hasWritableMapping())
	if err == nil {
		err = d.wbErr
	}
	d.wbErr = nil
	return err
}

// invalsFromLocked lists the mapped ranges of file offsets >= from.
func (d *fileData) invalsFromLocked(from uint64) []inval {
	var out []inval
	for _, m := range d.maps {
		mEnd := m.off + m.length
		if mEnd <= from {
			continue
		}
		start := max(from, m.off)
		out = append(out, inval{ms: m.ms, addr: m.addr + (start - m.off), length: mEnd - start})
	}
	return out
}

// zeroCachedLocked zeroes the cached bytes of [from, to).
func (d *fileData) zeroCachedLocked(from, to uint64) {
	for pos := from; pos < to; {
		p := pos / pageSize
		n := min(to, (p+1)*pageSize) - pos
		if v, ok := d.pages[p]; ok {
			clear(d.fs.mf.Slice(v&^dirtyBit+pos%pageSize, n))
		}
		pos += n
	}
}

// resizeLocked adjusts the cache to a size change from oldSize to
// newSize: bytes past the new end in its last page read as zeros, pages
// wholly past it are dropped. It returns the mapped ranges to invalidate
// and the pages to free, both to be done once mu is released (and in that
// order, so no app can touch a page after it is freed).
func (d *fileData) resizeLocked(oldSize, newSize uint64) ([]inval, []uint64) {
	if len(d.pages) == 0 {
		return nil, nil
	}
	if newSize > oldSize {
		// Whatever a mapping wrote past the old end must not appear.
		d.zeroCachedLocked(oldSize, min(newSize, (oldSize+pageSize-1)/pageSize*pageSize))
		return nil, nil
	}
	cut := (newSize + pageSize - 1) / pageSize * pageSize
	d.zeroCachedLocked(newSize, cut)
	var free []uint64
	for p, v := range d.pages {
		if p*pageSize >= cut {
			if v&dirtyBit != 0 {
				d.ndirty--
			}
			free = append(free, v&^dirtyBit)
			delete(d.pages, p)
		}
	}
	if len(free) == 0 {
		return nil, nil
	}
	return d.invalsFromLocked(cut), free
}

// dropCleanPages forgets every clean cached page (Shared mode, after the
// file changed on the host), invalidating mappings first.
func (d *fileData) dropCleanPages() {
	d.mu.Lock()
	var free []uint64
	for p, v := range d.pages {
		if v&dirtyBit == 0 {
			free = append(free, v)
			delete(d.pages, p)
		}
	}
	var invals []inval
	if len(free) > 0 {
		invals = d.invalsFromLocked(0)
	}
	d.mu.Unlock()
	d.finishDrop(invals, free)
}

// finishDrop invalidates mappings, then frees pages.
func (d *fileData) finishDrop(invals []inval, free []uint64) {
	for _, iv := range invals {
		iv.ms.Invalidate(iv.addr, iv.length)
	}
	freePages(d.fs.mf, free)
}

// freePages returns pages to the memory file, coalescing neighbours.
func freePages(mf *memfile.File, pages []uint64) {
	if len(pages) == 0 {
		return
	}
	slices.Sort(pages)
	start, n := pages[0], uint64(pageSize)
	for _, p := range pages[1:] {
		if p == start+n {
			n += pageSize
			continue
		}
		mf.Free(start, n)
		start, n = p, pageSize
	}
	mf.Free(start, n)
}

// release writes dirty pages back, frees the cache and closes the host
// descriptors. It is called once nothing refers to d (no inode, no
// mapping), or by FS.Release for data no mapping refers to.
func (d *fileData) release() {
	d.mu.Lock()
	if d.released {
		d.mu.Unlock()
		return
	}
	d.released = true
	if err := d.writebackLocked(true); err != nil {
		d.fs.logf("goferfs: write-back of inode %d on release: %v", d.key.ino, err)
	}
	free := make([]uint64, 0, len(d.pages))
	for _, v := range d.pages {
		free = append(free, v&^dirtyBit)
	}
	d.pages, d.ndirty = nil, 0
	for _, fd := range []int{d.rfd, d.wfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	d.rfd, d.wfd = -1, -1
	d.mu.Unlock()
	freePages(d.fs.mf, free)
}

// readCached is ReadAt for a file with cached pages (the caller holds mu
// for reading): cached pages are copied from the memory file, the rest is
// read from the host.
func (d *fileData) readCached(fd int, dst [][]byte, off int64) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if off >= st.Size {
		return 0, nil
	}
	want := min(int64(totalLen(dst)), st.Size-off)
	cur := cursor{bufs: dst}
	done := int64(0)
	for done < want {
		pos := uint64(off + done)
		p := pos / pageSize
		chunk := int64(min(uint64(want-done), (p+1)*pageSize-pos))
		if v, ok := d.pages[p]; ok {
			src := d.fs.mf.Slice(v&^dirtyBit+pos%pageSize, uint64(chunk))
			for len(src) > 0 {
				b := cur.next(len(src))
				copy(b, src)
				src = src[len(b):]
			}
			done += chunk
			continue
		}
		// Extend the uncached run, then read it straight from the host.
		for q := p + 1; done+chunk < want; q++ {
			if _, ok := d.pages[q]; ok {
				break
			}
			chunk = min(want-done, int64((q+1)*pageSize-pos))
		}
		for got := int64(0); got < chunk; {
			b := cur.next(int(chunk - got))
			n, err := preadFull(fd, b, off+done+got)
			if err != nil || n < len(b) {
				// Truncated meanwhile, or failing: stop here.
				if done+got+int64(n) > 0 {
					return int(done + got + int64(n)), nil
				}
				return 0, err
			}
			got += int64(n)
		}
		done += chunk
	}
	return int(done), nil
}

// updateCachedLocked copies the n bytes written from src at off into the
// cached pages they cover, so mappings see write(2).
func (d *fileData) updateCachedLocked(src [][]byte, off int64, n int) {
	cur := cursor{bufs: src}
	for done := 0; done < n; {
		pos := uint64(off) + uint64(done)
		p := pos / pageSize
		chunk := int(min(uint64(n-done), (p+1)*pageSize-pos))
		v, ok := d.pages[p]
		if !ok {
			cur.skip(chunk)
			done += chunk
			continue
		}
		dst := d.fs.mf.Slice(v&^dirtyBit+pos%pageSize, uint64(chunk))
		for len(dst) > 0 {
			b := cur.next(len(dst))
			if b == nil {
				return
			}
			copy(dst, b)
			dst = dst[len(b):]
		}
		done += chunk
	}
}
