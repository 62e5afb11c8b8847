package tmpfs

import (
	"slices"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

const (
	writeSeals = unix.F_SEAL_WRITE | unix.F_SEAL_FUTURE_WRITE
	allSeals   = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW |
		unix.F_SEAL_WRITE | unix.F_SEAL_FUTURE_WRITE | unix.F_SEAL_EXEC
)

// regular is a regular file. Its data is a sparse set of memory-file
// pages (pm); holes read as zeros. Bytes past size within the last page
// are kept zero, so that extending the file exposes zeros. The inode is
// also the file's mm.Mappable.
type regular struct {
	inode

	pm      pageMap
	size    int64
	opens   int       // open files not yet released
	mapRefs int       // IncRef from VMAs
	maps    []mapping // AddMapping records, for invalidation on truncate
	seals   uint32

	// linkable is an O_TMPFILE file opened without O_EXCL that Link may
	// still name.
	linkable bool
	// evicted is set once the data is freed: no name, file or mapping is
	// left and none can come back.
	evicted bool

	memfd     bool
	memfdName string
}

// mapping is one AddMapping: ms maps file bytes [off, off+length) at addr.
type mapping struct {
	ms                mm.MappingSpace
	addr, off, length uint64
	writable          bool
}

// invalidation is an Invalidate call to make once the inode is unlocked.
type invalidation struct {
	ms           mm.MappingSpace
	addr, length uint64
}

var (
	_ mm.Mappable = (*regular)(nil)
	_ Namer       = (*regular)(nil)
)

// memOff is the memory-file offset of file byte off within e.
func (e extent) memOff(off uint64) uint64 { return e.mem + off - e.start<<pageShift }

func (r *regular) Stat(ctx vfs.Context) (vfs.Attr, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a := r.attrLocked()
	a.Size = r.size
	a.Blocks = int64(r.pm.pages * (pageSize / 512))
	return a, nil
}

// Name is "memfd:NAME" for a memfd and "" for a file with a path.
func (r *regular) Name() string {
	if r.memfd {
		return "memfd:" + r.memfdName
	}
	return ""
}

// Open opens the file. An inode whose data is gone (unlinked, then its
// last file closed) can only reach here through a race with that unlink;
// it answers ENOENT as the path walk would have a moment later.
func (r *regular) Open(ctx vfs.Context, flags int) (vfs.File, error) {
	r.mu.Lock()
	if r.evicted {
		r.mu.Unlock()
		return nil, unix.ENOENT
	}
	r.opens++
	r.mu.Unlock()
	return newFile(r, flags), nil
}

func (r *regular) SetAttr(ctx vfs.Context, req *vfs.SetAttr) error {
	r.mu.Lock()
	if req.Mask&vfs.SetSize != 0 {
		switch {
		case req.Size < 0:
			r.mu.Unlock()
			return unix.EINVAL
		case req.Size < r.size && r.seals&unix.F_SEAL_SHRINK != 0,
			req.Size > r.size && r.seals&unix.F_SEAL_GROW != 0:
			r.mu.Unlock()
			return unix.EPERM
		}
	}
	if req.Mask&vfs.SetMode != 0 && r.seals&unix.F_SEAL_EXEC != 0 && (r.mode^req.Mode)&0111 != 0 {
		r.mu.Unlock()
		return unix.EPERM
	}
	t := now()
	var inv []invalidation
	var freed []memRange
	if req.Mask&vfs.SetSize != 0 {
		if req.Size != r.size {
			inv, freed = r.resizeLocked(req.Size)
		}
		r.mtime = t
	}
	r.setAttrLocked(req, t)
	r.mu.Unlock()
	r.finish(inv, freed)
	return nil
}

// resizeLocked sets the size. Shrinking unmaps the pages past the new end
// and returns them with the mappings to invalidate before they are freed.
func (r *regular) resizeLocked(size int64) ([]invalidation, []memRange) {
	old := uint64(r.size)
	r.size = size
	if uint64(size) >= old {
		// Zero what a shared mapping may have written past the old end.
		r.zeroLocked(old, pageUp(old))
		return nil, nil
	}
	from := pageUp(uint64(size))
	r.zeroLocked(uint64(size), from)
	freed := r.pm.remove(from>>pageShift, noPage, nil)
	return r.invalidationsLocked(from, noPage), freed
}

// finish does, without the inode lock, what must follow a change that
// took pages away: Invalidate first, so that no address space still maps
// a page when it is freed and reused. Invalidate takes the address
// space's lock, which its faults hold while calling Translate, so calling
// it under r.mu could deadlock.
func (r *regular) finish(inv []invalidation, freed []memRange) {
	for _, v := range inv {
		v.ms.Invalidate(v.addr, v.length)
	}
	r.fs.freeMem(freed)
}

// zeroLocked clears file bytes [start, end) in allocated pages.
func (r *regular) zeroLocked(start, end uint64) {
	if start >= end {
		return
	}
	for i := r.pm.find(start >> pageShift); i < len(r.pm.exts); i++ {
		e := r.pm.exts[i]
		if e.start<<pageShift >= end {
			break
		}
		s, t := max(start, e.start<<pageShift), min(end, e.end<<pageShift)
		clear(r.fs.mf.Slice(e.memOff(s), t-s))
	}
}

// invalidationsLocked lists the mapped addresses of file bytes [from, to).
func (r *regular) invalidationsLocked(from, to uint64) []invalidation {
	var inv []invalidation
	for _, m := range r.maps {
		s, t := max(m.off, from), min(m.off+m.length, to)
		if s < t {
			inv = append(inv, invalidation{m.ms, m.addr + (s - m.off), t - s})
		}
	}
	return inv
}

// allocLocked maps n pages from page (a hole; i = pm.find(page)), charging
// them to the size limit; with partial it settles for fewer.
func (r *regular) allocLocked(i int, page, n uint64, partial bool) (extent, error) {
	g := r.fs.charge(int64(n), partial)
	if g == 0 {
		return extent{}, unix.ENOSPC
	}
	return r.allocChargedLocked(i, page, uint64(g))
}

// allocChargedLocked is allocLocked for pages already charged.
func (r *regular) allocChargedLocked(i int, page, n uint64) (extent, error) {
	mem, err := r.fs.mf.Allocate(n << pageShift)
	if err != nil {
		r.fs.uncharge(int64(n))
		return extent{}, unix.ENOMEM
	}
	// New pages are about to be written (write, fallocate, a mapping's
	// fault): map them into the Sentry in one call, not a fault per page.
	r.fs.mf.Populate(mem, n<<pageShift)
	e := extent{page, page + n, mem}
	r.pm.insert(i, e)
	return e, nil
}

func (r *regular) unlinkedLocked() { r.maybeEvictLocked() }

// maybeEvictLocked frees the file once nothing can reach its data: no
// name, no open file, no mapping.
func (r *regular) maybeEvictLocked() {
	if r.nlink != 0 || r.opens != 0 || r.mapRefs != 0 || r.evicted {
		return
	}
	r.evicted = true
	freed := r.pm.remove(0, noPage, nil)
	r.pm.exts = nil
	r.maps = nil
	r.fs.freeMem(freed)
	r.fs.inodes.Add(-1)
}

// Translate implements mm.Mappable. A hole gets a page (also for a
// private read fault: simpler than a shared zero page, and what a write
// fault would need next anyway).
func (r *regular) Translate(off, length uint64, forWrite bool) (uint64, uint64, error) {
	length = max(length, pageSize)
	r.mu.RLock()
	mem, n, hole, err := r.translateLocked(off, length)
	r.mu.RUnlock()
	if !hole {
		return mem, n, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if mem, n, hole, err = r.translateLocked(off, length); !hole {
		return mem, n, err
	}
	page := off >> pageShift
	e, err := r.allocLocked(r.pm.find(page), page, 1, false)
	if err != nil {
		return 0, 0, err
	}
	return e.memOff(off), min(length, e.end<<pageShift-off), nil
}

func (r *regular) translateLocked(off, length uint64) (mem, n uint64, hole bool, err error) {
	eof := pageUp(uint64(r.size))
	if off >= eof {
		return 0, 0, false, mm.ErrPastEOF
	}
	i, ok := r.pm.lookup(off >> pageShift)
	if !ok {
		return 0, 0, true, nil
	}
	e := r.pm.exts[i]
	return e.memOff(off), min(e.end<<pageShift-off, length, eof-off), false, nil
}

// AddMapping implements mm.Mappable. writable is true for shared
// mappings that can be made writable (Linux's VM_SHARED|VM_MAYWRITE, the
// MM's Shared && MaxPerms.Write): those make F_SEAL_WRITE fail with EBUSY.
func (r *regular) AddMapping(ms mm.MappingSpace, addr, off, length uint64, writable bool) {
	r.mu.Lock()
	r.maps = append(r.maps, mapping{ms, addr, off, length, writable})
	r.mu.Unlock()
}

// RemoveMapping implements mm.Mappable. The MM removes exactly the tuple
// it added, and adds a split or moved VMA's new records before removing
// the old one, so a record equal to the arguments is removed first (one
// of them, if the same tuple was added twice). Failing that, whatever
// part of ms's records [addr, addr+length) covers is taken away, for a
// caller that unmaps part of what it added.
func (r *regular) RemoveMapping(ms mm.MappingSpace, addr, off, length uint64, writable bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := mapping{ms, addr, off, length, writable}
	for i, m := range r.maps {
		if m == want {
			r.maps = slices.Delete(r.maps, i, i+1)
			return
		}
	}
	end := addr + length
	for i := 0; i < len(r.maps); {
		m := r.maps[i]
		mEnd := m.addr + m.length
		if m.ms != ms || m.addr >= end || mEnd <= addr {
			i++
			continue
		}
		var keep [2]mapping
		nk := 0
		if m.addr < addr {
			keep[nk] = mapping{m.ms, m.addr, m.off, addr - m.addr, m.writable}
			nk++
		}
		if mEnd > end {
			keep[nk] = mapping{m.ms, end, m.off + (end - m.addr), mEnd - end, m.writable}
			nk++
		}
		r.maps = slices.Replace(r.maps, i, i+1, keep[:nk]...)
		i += nk
	}
}

// IncRef implements mm.Mappable.
func (r *regular) IncRef() {
	r.mu.Lock()
	r.mapRefs++
	r.mu.Unlock()
}

// DecRef implements mm.Mappable.
func (r *regular) DecRef() {
	r.mu.Lock()
	r.mapRefs--
	r.maybeEvictLocked()
	r.mu.Unlock()
}

// cursor walks a vector of buffers.
type cursor struct {
	bufs [][]byte
	i, o int
}

// fill copies src into the buffers.
func (c *cursor) fill(src []byte) {
	for len(src) > 0 {
		n := copy(c.bufs[c.i][c.o:], src)
		src = src[n:]
		c.advance(n)
	}
}

// drain copies from the buffers into dst.
func (c *cursor) drain(dst []byte) {
	for len(dst) > 0 {
		n := copy(dst, c.bufs[c.i][c.o:])
		dst = dst[n:]
		c.advance(n)
	}
}

// zero clears n bytes of the buffers.
func (c *cursor) zero(n uint64) {
	for n > 0 {
		b := c.bufs[c.i][c.o:]
		k := min(uint64(len(b)), n)
		clear(b[:k])
		n -= k
		c.advance(int(k))
	}
}

func (c *cursor) advance(n int) {
	c.o += n
	if c.o == len(c.bufs[c.i]) {
		c.i++
		c.o = 0
	}
}

func total(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// read copies file bytes from off into dst; holes read as zeros. It takes
// the lock shared only: reads change nothing (no atime).
func (r *regular) read(dst [][]byte, off int64) (int, error) {
	if off < 0 {
		return 0, unix.EINVAL
	}
	want := int64(total(dst))
	if want == 0 {
		return 0, nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if off >= r.size {
		return 0, nil
	}
	end := uint64(r.size)
	if want < r.size-off {
		end = uint64(off + want)
	}
	c := cursor{bufs: dst}
	exts := r.pm.exts
	pos := uint64(off)
	for i := r.pm.find(pos >> pageShift); pos < end; {
		if i < len(exts) && exts[i].start<<pageShift <= pos {
			e := exts[i]
			t := min(end, e.end<<pageShift)
			c.fill(r.fs.mf.Slice(e.memOff(pos), t-pos))
			pos = t
			i++
			continue
		}
		t := end
		if i < len(exts) {
			t = min(t, exts[i].start<<pageShift)
		}
		c.zero(t - pos)
		pos = t
	}
	return int(end - uint64(off)), nil
}

// write copies src to the file at off (at the end if appending), filling
// holes with newly allocated pages. It returns the bytes written and the
// file's size after. Like Linux, running out of space part way is a
// short write; only a write that could do nothing fails.
func (r *regular) write(ctx vfs.Context, src [][]byte, off int64, appending bool) (int, int64, error) {
	want := int64(total(src))
	r.mu.Lock()
	defer r.mu.Unlock()
	if appending {
		off = r.size
	} else if off < 0 {
		return 0, r.size, unix.EINVAL
	}
	if r.seals&writeSeals != 0 {
		return 0, r.size, unix.EPERM
	}
	if want == 0 {
		return 0, r.size, nil
	}
	if off >= maxFileSize {
		return 0, r.size, unix.EFBIG
	}
	limit := min(want, maxFileSize-off)
	if r.seals&unix.F_SEAL_GROW != 0 && limit > r.size-off {
		if off >= r.size {
			return 0, r.size, unix.EPERM
		}
		limit = r.size - off
	}
	if off > r.size {
		// The gap in the old last page must read as zeros.
		r.zeroLocked(uint64(r.size), min(uint64(off), pageUp(uint64(r.size))))
	}
	c := cursor{bufs: src}
	pos, end := uint64(off), uint64(off+limit)
	var err error
	for pos < end {
		page := pos >> pageShift
		i, ok := r.pm.lookup(page)
		var e extent
		if ok {
			e = r.pm.exts[i]
		} else {
			holeEnd := pageUp(end) >> pageShift
			if i < len(r.pm.exts) {
				holeEnd = min(holeEnd, r.pm.exts[i].start)
			}
			if e, err = r.allocLocked(i, page, holeEnd-page, true); err != nil {
				break
			}
		}
		t := min(end, e.end<<pageShift)
		c.drain(r.fs.mf.Slice(e.memOff(pos), t-pos))
		pos = t
	}
	n := int64(pos) - off
	if n == 0 {
		return 0, r.size, err
	}
	if int64(pos) > r.size {
		r.size = int64(pos)
	}
	t := now()
	r.mtime, r.ctime = t, t
	r.killPrivsLocked(ctx)
	return int(n), r.size, nil
}

// killPrivsLocked drops set-user-ID, and set-group-ID with group execute,
// on a change of the data by a caller without CAP_FSETID, as Linux's
// file_remove_privs does.
func (r *regular) killPrivsLocked(ctx vfs.Context) {
	var kill uint32
	if r.mode&unix.S_ISUID != 0 {
		kill |= unix.S_ISUID
	}
	if r.mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP {
		kill |= unix.S_ISGID
	}
	if kill != 0 && !hasCap(ctx, vfs.CapFsetid) {
		r.mode &^= kill
	}
}

// fallocate implements fallocate(2): mode 0 and KEEP_SIZE allocate,
// PUNCH_HOLE|KEEP_SIZE frees, ZERO_RANGE (with or without KEEP_SIZE)
// zeroes and allocates.
func (r *regular) fallocate(ctx vfs.Context, mode uint32, off, length int64) error {
	if off < 0 || length <= 0 {
		return unix.EINVAL
	}
	if off > maxFileSize-length {
		return unix.EFBIG
	}
	start, end := uint64(off), uint64(off+length)
	keep := mode&unix.FALLOC_FL_KEEP_SIZE != 0
	switch mode &^ unix.FALLOC_FL_KEEP_SIZE {
	case 0:
		return r.allocRange(ctx, start, end, keep, false)
	case unix.FALLOC_FL_ZERO_RANGE:
		return r.allocRange(ctx, start, end, keep, true)
	case unix.FALLOC_FL_PUNCH_HOLE:
		if !keep {
			return unix.EOPNOTSUPP
		}
		return r.punch(ctx, start, end)
	}
	return unix.EOPNOTSUPP
}

// allocRange backs [start, end) with pages, all or none (ENOSPC), first
// zeroing what is there if zero is set, and extends the size unless keep.
func (r *regular) allocRange(ctx vfs.Context, start, end uint64, keep, zero bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if zero && r.seals&writeSeals != 0 {
		return unix.EPERM
	}
	if end > uint64(r.size) && r.seals&unix.F_SEAL_GROW != 0 {
		return unix.EPERM
	}
	sp, ep := start>>pageShift, pageUp(end)>>pageShift
	if zero {
		// Whole pages are decommitted rather than cleared: mappings of
		// them stay valid and read zeros, and the memory goes back.
		ws, we := pageUp(start), pageDown(end)
		if ws < we {
			r.zeroLocked(start, ws)
			for i := r.pm.find(ws >> pageShift); i < len(r.pm.exts) && r.pm.exts[i].start < we>>pageShift; i++ {
				e := r.pm.exts[i]
				s, t := max(e.start, ws>>pageShift), min(e.end, we>>pageShift)
				r.fs.mf.Decommit(e.memAt(s), (t-s)<<pageShift)
			}
			r.zeroLocked(we, end)
		} else {
			r.zeroLocked(start, end)
		}
	}
	if holes := (ep - sp) - r.pm.mappedIn(sp, ep); holes > 0 {
		if r.fs.charge(int64(holes), false) == 0 {
			return unix.ENOSPC
		}
		for page := sp; page < ep; {
			i, ok := r.pm.lookup(page)
			if ok {
				page = r.pm.exts[i].end
				continue
			}
			holeEnd := ep
			if i < len(r.pm.exts) {
				holeEnd = min(holeEnd, r.pm.exts[i].start)
			}
			if _, err := r.allocChargedLocked(i, page, holeEnd-page); err != nil {
				// That run's charge is returned; return the rest.
				r.fs.uncharge(int64(holes - (holeEnd - page)))
				return err
			}
			holes -= holeEnd - page
			page = holeEnd
		}
	}
	if !keep && end > uint64(r.size) {
		r.zeroLocked(uint64(r.size), pageUp(uint64(r.size)))
		r.size = int64(end)
	}
	t := now()
	r.mtime, r.ctime = t, t
	if zero {
		r.killPrivsLocked(ctx)
	}
	return nil
}

// punch zeroes [start, end) and frees the whole pages in it, invalidating
// their mappings first.
func (r *regular) punch(ctx vfs.Context, start, end uint64) error {
	r.mu.Lock()
	if r.seals&writeSeals != 0 {
		r.mu.Unlock()
		return unix.EPERM
	}
	var inv []invalidation
	var freed []memRange
	ws, we := pageUp(start), pageDown(end)
	if ws < we {
		r.zeroLocked(start, ws)
		r.zeroLocked(we, end)
		freed = r.pm.remove(ws>>pageShift, we>>pageShift, nil)
		inv = r.invalidationsLocked(ws, we)
	} else {
		r.zeroLocked(start, end)
	}
	t := now()
	r.mtime, r.ctime = t, t
	r.killPrivsLocked(ctx)
	r.mu.Unlock()
	r.finish(inv, freed)
	return nil
}

// seekDataHole answers SEEK_DATA and SEEK_HOLE from the page map: any
// allocated page is data (also one fallocate reserved and nobody wrote).
func (r *regular) seekDataHole(off int64, whence int) (int64, error) {
	if whence != unix.SEEK_DATA && whence != unix.SEEK_HOLE {
		return 0, unix.EINVAL
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if off < 0 || off >= r.size {
		return 0, unix.ENXIO
	}
	page := uint64(off) >> pageShift
	i, in := r.pm.lookup(page)
	if whence == unix.SEEK_DATA {
		if in {
			return off, nil
		}
		if i < len(r.pm.exts) {
			if d := int64(r.pm.exts[i].start << pageShift); d < r.size {
				return d, nil
			}
		}
		return 0, unix.ENXIO
	}
	if !in {
		return off, nil
	}
	e := r.pm.exts[i].end
	for j := i + 1; j < len(r.pm.exts) && r.pm.exts[j].start == e; j++ {
		e = r.pm.exts[j].end
	}
	return min(int64(e<<pageShift), r.size), nil
}

// addSeals implements F_ADD_SEALS (Linux's memfd_add_seals).
func (r *regular) addSeals(seals uint32, fileWritable bool) error {
	if !fileWritable {
		return unix.EPERM
	}
	if seals&^allSeals != 0 {
		return unix.EINVAL
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seals&unix.F_SEAL_SEAL != 0 {
		return unix.EPERM
	}
	// F_SEAL_EXEC on an executable file implies the write seals: W^X.
	if seals&unix.F_SEAL_EXEC != 0 && r.mode&0111 != 0 {
		seals |= unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | writeSeals
	}
	if seals&unix.F_SEAL_WRITE != 0 && r.seals&unix.F_SEAL_WRITE == 0 {
		for _, m := range r.maps {
			if m.writable {
				return unix.EBUSY
			}
		}
	}
	r.seals |= seals
	return nil
}

func (r *regular) getSeals() uint32 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.seals
}
