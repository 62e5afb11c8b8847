package mm

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// MMapOpts describes an anonymous mapping request.
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
}

// MMap creates an anonymous mapping and returns its address.
func (m *MM) MMap(o MMapOpts) (uint64, error) {
	length, ok := pageUp(o.Length)
	if o.Length == 0 || !ok {
		return 0, unix.EINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if (o.Perms.Write || o.Shared) && !o.NoReserve && m.overCommit(length) {
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
	i := m.insert(v)
	if o.Populate && o.Perms.Any() {
		if err := m.install(v); err != nil {
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

// MProtect changes the permissions of [addr, addr+length).
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
	i, j := m.isolate(addr, end)
	for k := i; k < j; k++ {
		v := m.vmas[k]
		v.Perms = perms
		if v.mapped {
			if err := m.as.MapFile(v.Start, v.backing, v.size(), perms); err != nil {
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
// the VMAs keep their memory-file backing.
func (m *MM) MRemap(old, oldSize, newSize uint64, flags int, newAddr uint64) (uint64, error) {
	if old%PageSize != 0 || flags&^(MremapMaymove|MremapFixed|MremapDontunmap) != 0 {
		return 0, unix.EINVAL
	}
	if flags&(MremapFixed|MremapDontunmap) != 0 && flags&MremapMaymove == 0 {
		return 0, unix.EINVAL
	}
	oldSize, ok1 := pageUp(oldSize)
	newSize, ok2 := pageUp(newSize)
	if !ok1 || !ok2 || newSize == 0 || oldSize == 0 {
		// oldSize 0 duplicates a shared mapping: not supported yet.
		return 0, unix.EINVAL
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
	for k := m.find(old); k < len(m.vmas) && m.vmas[k].Start < oldEnd; k++ {
		if !sameKind(first, m.vmas[k]) {
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
	m.as.Unmap(old, oldSize)
	for _, v := range moved {
		nv := *v
		nv.Start = v.Start - old + dst
		nv.End = v.End - old + dst
		nv.mapped = false
		m.mergeAround(m.insert(&nv))
		if keepOld {
			v.backing, v.mapped = -1, false
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
			if err := m.as.MapFile(oldEnd, off, delta, last.Perms); err != nil {
				last.mapped = false
				m.as.Unmap(last.Start, last.size())
			}
		}
		m.mergeAround(m.find(last.Start))
		return
	}
	ext := &VMA{Start: last.End, End: last.End + delta, Perms: last.Perms, Shared: last.Shared, Name: last.Name, backing: -1}
	m.mergeAround(m.insert(ext))
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
	// Private anonymous memory reads as zeros afterwards: drop the pages.
	for i := m.firstEndingAfter(addr); i < len(m.vmas) && m.vmas[i].Start < end; i++ {
		v := m.vmas[i]
		if v.backing < 0 || (v.Shared && advice != madvRemove) {
			continue
		}
		s, e := max(v.Start, addr), min(v.End, end)
		m.mf.Decommit(uint64(v.backing)+(s-v.Start), e-s)
	}
	if !m.covered(addr, end) {
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
		return &FaultError{Addr: addr, Code: SegvMapErr}
	}
	v := m.vmas[i]
	if !v.Perms.Any() || (access.Any() && !v.Perms.SupersetOf(access)) || v.mapped {
		// Installed already: the access itself is not permitted.
		return &FaultError{Addr: addr, Code: SegvAccErr}
	}
	if err := m.install(v); err != nil {
		return &FaultError{Addr: addr, Code: SegvMapErr}
	}
	return nil
}
