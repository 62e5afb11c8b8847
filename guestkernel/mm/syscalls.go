package mm

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// MMapOpts describes a mapping request: anonymous, or of a file when
// Mappable is set.
type MMapOpts struct {
	Addr      uint64
	Length    uint64
	Perms     platform.AccessType
	Shared    bool
	Fixed     bool // replace whatever is at Addr
	NoReplace bool // at Addr exactly, EEXIST if anything is there
	Populate  bool
	NoReserve bool // MAP_NORESERVE: exempt from the commit limit
	Name      string

	// Mappable, when set, backs the mapping with file data from Offset
	// (page aligned). Shared mappings write to the file; private ones copy
	// a page on its first write. MaxPerms is what the open file allows
	// (mprotect may not exceed it for shared mappings): it must allow
	// Read, and Write for a writable shared mapping, or MMap fails with
	// EACCES. Name is the file's path for /proc/PID/maps.
	Mappable Mappable
	Offset   uint64
	MaxPerms platform.AccessType
	// Dev and Ino name the file for /proc/PID/maps. Dev is encoded as
	// stat's st_dev is (unix.Major and unix.Minor decode it).
	Dev, Ino uint64
}

// MMap creates a mapping and returns its address.
func (m *MM) MMap(o MMapOpts) (uint64, error) {
	length, ok := pageUp(o.Length)
	if o.Length == 0 || !ok {
		return 0, unix.EINVAL
	}
	accountable := o.Perms.Write || o.Shared
	if o.Mappable != nil {
		if o.Offset%PageSize != 0 {
			return 0, unix.EINVAL
		}
		if o.Offset+length < o.Offset {
			return 0, unix.EOVERFLOW
		}
		if !o.MaxPerms.Read || (o.Shared && o.Perms.Write && !o.MaxPerms.Write) {
			return 0, unix.EACCES
		}
		// Only private writable file mappings can use memory the file
		// does not hold (their copies), as Linux accounts them.
		accountable = o.Perms.Write && !o.Shared
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if accountable && !o.NoReserve && m.overCommit(length) {
		return 0, unix.ENOMEM
	}
	var addr uint64
	switch {
	case o.Fixed || o.NoReplace:
		if o.Addr%PageSize != 0 {
			return 0, unix.EINVAL
		}
		addr = o.Addr
		if addr+length < addr || addr < m.min || addr+length > m.max {
			return 0, unix.ENOMEM
		}
		if o.NoReplace {
			if !m.isFree(addr, addr+length) {
				return 0, unix.EEXIST
			}
		} else {
			m.removeRange(addr, addr+length)
		}
	default:
		hint := pageDown(o.Addr)
		if hint != 0 && hint+length > hint && m.isFree(hint, hint+length) {
			addr = hint
		} else if addr, ok = m.findGap(length); !ok {
			return 0, unix.ENOMEM
		}
	}
	v := &VMA{Start: addr, End: addr + length, Perms: o.Perms, Shared: o.Shared, Name: o.Name, backing: -1}
	if o.Mappable != nil {
		v.mappable, v.Offset, v.maxPerms, v.Dev, v.Ino = o.Mappable, o.Offset, o.MaxPerms, o.Dev, o.Ino
		m.attach(v)
	}
	i := m.insert(v)
	if o.Populate && o.Perms.Any() {
		if v.mappable != nil {
			m.populate(v)
		} else if err := m.install(v); err != nil {
			m.vmas = append(m.vmas[:i], m.vmas[i+1:]...)
			return 0, unix.ENOMEM
		}
	}
	m.mergeAround(i)
	return addr, nil
}

// MUnmap removes [addr, addr+length).
func (m *MM) MUnmap(addr, length uint64) error {
	length, ok := pageUp(length)
	if addr%PageSize != 0 || length == 0 || !ok || addr+length < addr {
		return unix.EINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeRange(addr, addr+length)
	return nil
}

// MProtect changes the permissions of [addr, addr+length). A shared file
// mapping may not become writable unless its file was opened for writing
// (EACCES); a private one may.
func (m *MM) MProtect(addr, length uint64, perms platform.AccessType) error {
	length, ok := pageUp(length)
	if addr%PageSize != 0 || !ok || addr+length < addr {
		return unix.EINVAL
	}
	if length == 0 {
		return nil
	}
	end := addr + length
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.covered(addr, end) {
		return unix.ENOMEM
	}
	if perms.Write {
		for k := m.firstEndingAfter(addr); k < len(m.vmas) && m.vmas[k].Start < end; k++ {
			if v := m.vmas[k]; v.mappable != nil && v.Shared && !v.maxPerms.Write {
				return unix.EACCES
			}
		}
	}
	i, j := m.isolate(addr, end)
	for k := i; k < j; k++ {
		v := m.vmas[k]
		v.Perms = perms
		switch {
		case v.mappable != nil:
			// File pages are installed piecemeal with permissions that
			// depend on the page; let them fault in again.
			m.dropInstalled(v.Start, v.End)
		case v.mapped:
			if err := m.asMap(v.Start, v.backing, v.size(), perms); err != nil {
				return unix.ENOMEM
			}
		}
	}
	for k := j - 1; k >= i; k-- {
		if k < len(m.vmas) {
			m.mergeAround(k)
		}
	}
	return nil
}

// Linux mremap flags.
const (
	MremapMaymove   = 1
	MremapFixed     = 2
	MremapDontunmap = 4
)

// MRemap resizes and/or moves [old, old+oldSize). Moving never copies:
// the VMAs keep their memory-file backing, file and file offset; growing a
// file mapping maps more of the file. oldSize 0 maps the same pages of a
// shared file mapping again (anonymous shared memory cannot be duplicated
// yet: EINVAL).
func (m *MM) MRemap(old, oldSize, newSize uint64, flags int, newAddr uint64) (uint64, error) {
	if old%PageSize != 0 || flags&^(MremapMaymove|MremapFixed|MremapDontunmap) != 0 {
		return 0, unix.EINVAL
	}
	if flags&(MremapFixed|MremapDontunmap) != 0 && flags&MremapMaymove == 0 {
		return 0, unix.EINVAL
	}
	oldSize, ok1 := pageUp(oldSize)
	newSize, ok2 := pageUp(newSize)
	if !ok1 || !ok2 || newSize == 0 {
		return 0, unix.EINVAL
	}
	if oldSize == 0 {
		return m.duplicate(old, newSize, flags, newAddr)
	}
	if flags&MremapDontunmap != 0 && oldSize != newSize {
		return 0, unix.EINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	oldEnd := old + oldSize
	if oldEnd < old || !m.covered(old, oldEnd) {
		return 0, unix.EFAULT
	}
	if newSize > oldSize && m.overCommit(newSize-oldSize) {
		return 0, unix.ENOMEM
	}
	// The old range must look like one mapping.
	first := m.vmas[m.find(old)]
	for k := m.find(old) + 1; k < len(m.vmas) && m.vmas[k].Start < oldEnd; k++ {
		if !sameKind(first, m.vmas[k]) || !follows(m.vmas[k-1], m.vmas[k]) {
			return 0, unix.EFAULT
		}
	}

	if flags&MremapFixed != 0 {
		if newAddr%PageSize != 0 || newAddr+newSize < newAddr {
			return 0, unix.EINVAL
		}
		if newAddr < oldEnd && old < newAddr+newSize {
			return 0, unix.EINVAL
		}
		if newAddr < m.min || newAddr+newSize > m.max {
			return 0, unix.ENOMEM
		}
		m.removeRange(newAddr, newAddr+newSize)
		return m.move(old, oldSize, newAddr, newSize, flags&MremapDontunmap != 0), nil
	}
	if flags&MremapDontunmap != 0 {
		dst, ok := m.findGap(newSize)
		if !ok {
			return 0, unix.ENOMEM
		}
		return m.move(old, oldSize, dst, newSize, true), nil
	}
	if newSize <= oldSize {
		m.removeRange(old+newSize, oldEnd)
		return old, nil
	}
	if m.isFree(oldEnd, old+newSize) {
		m.grow(old, oldSize, newSize)
		return old, nil
	}
	if flags&MremapMaymove == 0 {
		return 0, unix.ENOMEM
	}
	dst, ok := m.findGap(newSize)
	if !ok {
		return 0, unix.ENOMEM
	}
	return m.move(old, oldSize, dst, newSize, false), nil
}

// move relocates [old, old+oldSize) to dst, keeping its backing, then
// grows or shrinks it to newSize. With keepOld the old range stays mapped
// but empty (MREMAP_DONTUNMAP).
func (m *MM) move(old, oldSize, dst, newSize uint64, keepOld bool) uint64 {
	if newSize < oldSize {
		m.removeRange(old+newSize, old+oldSize)
		oldSize = newSize
	}
	i, j := m.isolate(old, old+oldSize)
	moved := append([]*VMA(nil), m.vmas[i:j]...)
	m.vmas = append(m.vmas[:i], m.vmas[j:]...)
	m.asUnmap(old, old+oldSize)
	for _, v := range moved {
		nv := *v
		nv.Start = v.Start - old + dst
		nv.End = v.End - old + dst
		nv.mapped = false
		if v.mappable != nil {
			// The moved VMA takes over v's reference; with keepOld, v
			// keeps mapping the file (without its copies) and needs
			// its own.
			m.addRecord(&nv)
			if keepOld {
				v.mappable.IncRef()
			} else {
				m.removeRecord(v.mappable, recordOf(v))
			}
		}
		m.mergeAround(m.insert(&nv))
		if keepOld {
			v.backing, v.priv, v.mapped = -1, nil, false
			m.mergeAround(m.insert(v))
		}
	}
	if newSize > oldSize {
		m.grow(dst, oldSize, newSize)
	}
	return dst
}

// grow extends the mapping at addr from oldSize to newSize in place; the
// caller checked the room is free.
func (m *MM) grow(addr, oldSize, newSize uint64) {
	m.growVMA(m.vmas[m.find(addr+oldSize-1)], newSize-oldSize)
}

// growVMA extends last by delta bytes, keeping its backing contiguous when
// the memory file has room right after it.
func (m *MM) growVMA(last *VMA, delta uint64) {
	if last.mappable != nil {
		m.growFile(last, delta)
		return
	}
	if last.backing < 0 && !last.mapped {
		last.End += delta
		m.mergeAround(m.find(last.Start))
		return
	}
	if last.backing >= 0 && m.mf.AllocateAt(uint64(last.backing)+last.size(), delta) {
		oldEnd := last.End
		last.End += delta
		if last.mapped {
			off := last.backing + int64(oldEnd-last.Start)
			if err := m.asMap(oldEnd, off, delta, last.Perms); err != nil {
				last.mapped = false
				m.asUnmap(last.Start, last.End)
			}
		}
		m.mergeAround(m.find(last.Start))
		return
	}
	ext := &VMA{Start: last.End, End: last.End + delta, Perms: last.Perms, Shared: last.Shared, Name: last.Name, backing: -1}
	m.mergeAround(m.insert(ext))
}

// growFile extends file VMA last by delta bytes of the file that follows.
// Its private backing, if any, must grow contiguously too; if the memory
// file has no room there the growth becomes a VMA of its own.
func (m *MM) growFile(last *VMA, delta uint64) {
	if last.backing < 0 || m.mf.AllocateAt(uint64(last.backing)+last.size(), delta) {
		old := recordOf(last)
		last.End += delta
		m.addRecord(last)
		m.removeRecord(last.mappable, old)
		m.mergeAround(m.find(last.Start))
		return
	}
	ext := *last
	ext.Start, ext.End = last.End, last.End+delta
	ext.Offset = last.Offset + last.size()
	ext.backing, ext.priv = -1, nil
	m.attach(&ext)
	m.mergeAround(m.insert(&ext))
}

// duplicate implements mremap with oldSize 0: a second mapping of the same
// file pages as the shared file mapping at old.
func (m *MM) duplicate(old, newSize uint64, flags int, newAddr uint64) (uint64, error) {
	if flags&MremapMaymove == 0 || flags&MremapDontunmap != 0 {
		return 0, unix.EINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(old)
	if i < 0 {
		return 0, unix.EFAULT
	}
	v := m.vmas[i]
	if !v.Shared || v.mappable == nil {
		return 0, unix.EINVAL
	}
	off := v.Offset + (old - v.Start)
	if off+newSize < off {
		return 0, unix.EINVAL
	}
	var dst uint64
	if flags&MremapFixed != 0 {
		if newAddr%PageSize != 0 || newAddr+newSize < newAddr {
			return 0, unix.EINVAL
		}
		if newAddr < m.min || newAddr+newSize > m.max {
			return 0, unix.ENOMEM
		}
		m.removeRange(newAddr, newAddr+newSize)
		// The source may have gone with the range it overlapped.
		if i = m.find(old); i < 0 {
			return 0, unix.EFAULT
		}
		v = m.vmas[i]
		dst = newAddr
	} else {
		var ok bool
		if dst, ok = m.findGap(newSize); !ok {
			return 0, unix.ENOMEM
		}
	}
	nv := &VMA{Start: dst, End: dst + newSize, Perms: v.Perms, Shared: true, Name: v.Name,
		Offset: off, Dev: v.Dev, Ino: v.Ino, maxPerms: v.maxPerms, mappable: v.mappable, backing: -1}
	m.attach(nv)
	m.mergeAround(m.insert(nv))
	return dst, nil
}

// Brk sets the program break and returns the new one, or the old one if
// the request cannot be met (as Linux does).
func (m *MM) Brk(addr uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if addr < m.brkStart {
		return m.brk
	}
	oldTop, _ := pageUp(m.brk)
	newTop, ok := pageUp(addr)
	if !ok || newTop > m.max {
		return m.brk
	}
	switch {
	case newTop > oldTop:
		if !m.isFree(oldTop, newTop) || m.overCommit(newTop-oldTop) {
			return m.brk
		}
		if i := m.find(oldTop - 1); oldTop > m.brkStart && i >= 0 && m.vmas[i].Name == "[heap]" {
			m.growVMA(m.vmas[i], newTop-oldTop)
		} else {
			v := &VMA{Start: oldTop, End: newTop, Perms: platform.ReadWrite, Name: "[heap]", backing: -1}
			m.mergeAround(m.insert(v))
		}
	case newTop < oldTop:
		m.removeRange(newTop, oldTop)
	}
	m.brk = addr
	return addr
}

// Linux madvise advice values the memory manager acts on or accepts.
const (
	madvNormal     = 0
	madvRandom     = 1
	madvSequential = 2
	madvWillneed   = 3
	madvDontneed   = 4
	madvFree       = 8
	madvRemove     = 9
	madvDontfork   = 10
	madvDofork     = 11
	madvMergeable  = 12
	madvUnmergable = 13
	madvHugepage   = 14
	madvNohugepage = 15
	madvDontdump   = 16
	madvDodump     = 17
	madvWipeonfork = 18
	madvKeeponfork = 19
	madvCold       = 20
	madvPageout    = 21
)

// MAdvise applies advice to [addr, addr+length).
func (m *MM) MAdvise(addr, length uint64, advice int) error {
	length, ok := pageUp(length)
	if addr%PageSize != 0 || !ok || addr+length < addr {
		return unix.EINVAL
	}
	end := addr + length
	switch advice {
	case madvDontneed, madvFree, madvRemove:
	case madvNormal, madvRandom, madvSequential, madvWillneed, madvDontfork, madvDofork,
		madvMergeable, madvUnmergable, madvHugepage, madvNohugepage, madvDontdump,
		madvDodump, madvWipeonfork, madvKeeponfork, madvCold, madvPageout:
		// Hints the Sentry has no use for (it never swaps and does not
		// fork yet); Linux accepts them, so do we.
		m.mu.Lock()
		defer m.mu.Unlock()
		if !m.covered(addr, end) {
			return unix.ENOMEM
		}
		return nil
	default:
		return unix.EINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := m.firstEndingAfter(addr); i < len(m.vmas) && m.vmas[i].Start < end; i++ {
		v := m.vmas[i]
		s, e := max(v.Start, addr), min(v.End, end)
		if v.mappable != nil {
			if err := m.adviseFile(v, s, e, advice); err != nil {
				return err
			}
			continue
		}
		// Private anonymous memory reads as zeros afterwards: drop the
		// pages.
		if v.backing < 0 || (v.Shared && advice != madvRemove) {
			continue
		}
		m.mf.Decommit(uint64(v.backing)+(s-v.Start), e-s)
	}
	if !m.covered(addr, end) {
		return unix.ENOMEM
	}
	return nil
}

// adviseFile applies MADV_DONTNEED, MADV_FREE or MADV_REMOVE to [s, e) of
// file VMA v.
func (m *MM) adviseFile(v *VMA, s, e uint64, advice int) error {
	switch advice {
	case madvFree:
		return unix.EINVAL // Linux: private anonymous memory only
	case madvRemove:
		if !v.Shared || !v.maxPerms.Write {
			return unix.EACCES
		}
		// Punching a hole in the file needs a hook into the filesystem
		// that Mappable does not have yet.
		return unix.EOPNOTSUPP
	}
	// MADV_DONTNEED: the pages leave the address space; private copies
	// are dropped, so the next access sees the file again.
	m.dropInstalled(s, e)
	if !v.Shared && v.backing >= 0 {
		v.priv.clear(v.pageIndex(s), v.pageIndex(e))
		m.mf.Decommit(uint64(v.backing)+(s-v.Start), e-s)
	}
	return nil
}

// Linux msync flags.
const (
	MsAsync      = 1
	MsInvalidate = 2
	MsSync       = 4
)

// MSync flushes the shared file mappings in [addr, addr+length). MS_SYNC
// calls the Mappables' SyncRange (without the MM's lock: it may do I/O);
// MS_ASYNC and MS_INVALIDATE have nothing to do, since the Sentry's view
// and the app's are the same pages. Holes in the range give ENOMEM, after
// the mapped parts are flushed, as on Linux.
func (m *MM) MSync(addr, length uint64, flags int) error {
	if flags&^(MsAsync|MsInvalidate|MsSync) != 0 || addr%PageSize != 0 ||
		(flags&MsAsync != 0 && flags&MsSync != 0) {
		return unix.EINVAL
	}
	length, ok := pageUp(length)
	end := addr + length
	if !ok || end < addr {
		return unix.ENOMEM
	}
	if length == 0 {
		return nil
	}
	type syncRange struct {
		s           MappableSyncer
		mp          Mappable
		off, length uint64
	}
	var todo []syncRange
	m.mu.Lock()
	covered := m.covered(addr, end)
	if flags&MsSync != 0 {
		for i := m.firstEndingAfter(addr); i < len(m.vmas) && m.vmas[i].Start < end; i++ {
			v := m.vmas[i]
			s, ok := v.mappable.(MappableSyncer)
			if !v.Shared || !ok {
				continue
			}
			lo, hi := max(v.Start, addr), min(v.End, end)
			v.mappable.IncRef() // keep the file alive once mu is dropped
			todo = append(todo, syncRange{s, v.mappable, v.Offset + (lo - v.Start), hi - lo})
		}
	}
	m.mu.Unlock()
	var err error
	for _, r := range todo {
		if e := r.s.SyncRange(r.off, r.length); e != nil && err == nil {
			err = e
		}
		r.mp.DecRef()
	}
	if err != nil {
		return err
	}
	if !covered {
		return unix.ENOMEM
	}
	return nil
}

// MInCore fills vec with one byte per page from addr (page aligned): 1 if
// the page is resident. The Sentry never swaps, so anonymous memory is
// resident once its VMA has backing, and file pages are reported resident
// (tmpfs data always is; a page cache refills on access, so there is no
// cheap truer answer). ENOMEM if any page in the range is unmapped.
func (m *MM) MInCore(addr uint64, vec []byte) error {
	if addr%PageSize != 0 {
		return unix.EINVAL
	}
	end := addr + uint64(len(vec))*PageSize
	if end < addr || uint64(len(vec)) > (^uint64(0))/PageSize {
		return unix.ENOMEM
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.covered(addr, end) {
		return unix.ENOMEM
	}
	for i := m.firstEndingAfter(addr); i < len(m.vmas) && m.vmas[i].Start < end; i++ {
		v := m.vmas[i]
		lo, hi := max(v.Start, addr), min(v.End, end)
		var b byte
		if v.mappable != nil || v.backing >= 0 {
			b = 1
		}
		for a := lo; a < hi; a += PageSize {
			vec[(a-addr)/PageSize] = b
		}
	}
	return nil
}

// MLock checks [addr, addr+length) is mapped (ENOMEM if not): mlock and
// munlock have nothing else to do, since the Sentry never swaps app
// memory. Like Linux it rounds addr down and the end up.
func (m *MM) MLock(addr, length uint64) error {
	end, ok := pageUp(addr + length)
	if !ok || addr+length < addr {
		return unix.EINVAL
	}
	start := pageDown(addr)
	if end == start {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.covered(start, end) {
		return unix.ENOMEM
	}
	return nil
}

// HandleFault resolves an app page fault at addr. access is the attempted
// access, or NoAccess when the platform cannot tell. A nil error means the
// app can retry the instruction.
func (m *MM) HandleFault(addr uint64, access platform.AccessType) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(addr)
	if i < 0 {
		return segv(addr, SegvMapErr)
	}
	v := m.vmas[i]
	if v.mappable != nil {
		return m.fileFault(v, addr, access)
	}
	if !v.Perms.Any() || (access.Any() && !v.Perms.SupersetOf(access)) || v.mapped {
		// Installed already: the access itself is not permitted.
		return segv(addr, SegvAccErr)
	}
	if err := m.install(v); err != nil {
		return segv(addr, SegvMapErr)
	}
	return nil
}
