package vfs

import (
	"container/list"
	"sync"
)

// The dentry cache keeps every name that is in use (open, a working
// directory, a mount point, an ancestor of a cached name) and, beyond
// those, recently used names (CLOCK: a touched name survives one scan) up
// to a limit. Evicting a name
// releases its inode, which for remote files frees the gofer's handle (and
// its host descriptors): without a bound, walking a large tree would
// exhaust them.
type dentryCache struct {
	mu    sync.Mutex
	lru   list.List // of *Dentry, most recent at the front
	limit int
}

// DefaultDentryCacheSize bounds unused cached names.
const DefaultDentryCacheSize = 4096

// SetDentryCacheSize changes the bound (at least 64).
func (v *VFS) SetDentryCacheSize(n int) {
	v.dcache.mu.Lock()
	v.dcache.limit = max(n, 64)
	v.dcache.mu.Unlock()
}

// IncRef pins d in the cache (an open file, a working directory, a
// watch); DecRef unpins it.
func (d *Dentry) IncRef() { d.refs.Add(1) }

// DecRef undoes IncRef.
func (d *Dentry) DecRef() { d.refs.Add(-1) }

// cacheAdd records a new child dentry as recently used and evicts the
// least recently used unpinned names if the cache is over its bound.
func (v *VFS) cacheAdd(d *Dentry) {
	c := &v.dcache
	c.mu.Lock()
	if d.lru == nil {
		d.lru = c.lru.PushFront(d)
	}
	var victims []*Dentry
	if c.lru.Len() > c.limit {
		victims = c.collectLocked(c.lru.Len() - c.limit + c.limit/16)
	}
	c.mu.Unlock()
	for _, victim := range victims {
		v.evict(victim)
	}
}

// cacheTouch marks d recently used. Every walk of a cached name does
// this, so it takes no lock: the eviction scan gives a touched name a
// second chance instead (the CLOCK approximation of LRU).
func (v *VFS) cacheTouch(d *Dentry) {
	if !d.touched.Load() {
		d.touched.Store(true)
	}
}

// cacheRemove forgets d (its name was removed).
func (v *VFS) cacheRemove(d *Dentry) {
	c := &v.dcache
	c.mu.Lock()
	if d.lru != nil {
		c.lru.Remove(d.lru)
		d.lru = nil
	}
	c.mu.Unlock()
}

// collectLocked takes up to n unpinned leaf dentries off the cold end.
// Recently touched ones, pinned ones and directories with cached children
// move to the front, so the scan does not meet them again at once.
func (c *dentryCache) collectLocked(n int) []*Dentry {
	var out []*Dentry
	for scanned := c.lru.Len(); scanned > 0 && len(out) < n; scanned-- {
		e := c.lru.Back()
		d := e.Value.(*Dentry)
		if d.touched.Swap(false) || d.refs.Load() > 0 || d.mounts.Load() > 0 || d.hasChildren() {
			c.lru.MoveToFront(e)
			continue
		}
		c.lru.Remove(e)
		d.lru = nil
		out = append(out, d)
	}
	return out
}

func (d *Dentry) hasChildren() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.children) > 0
}

// evict drops d from its parent and releases its inode, unless it was
// pinned or gained children meanwhile.
func (v *VFS) evict(d *Dentry) {
	p := d.parent
	if p == nil {
		return
	}
	p.mu.Lock()
	still := p.children[d.name] == d
	if !still || d.refs.Load() > 0 || d.mounts.Load() > 0 || d.hasChildren() {
		p.mu.Unlock()
		if still {
			v.cacheAdd(d) // pinned meanwhile: keep it cached
		}
		return
	}
	delete(p.children, d.name)
	p.mu.Unlock()
	v.evictions.Add(1)
	if r, ok := d.inode.(Releaser); ok {
		r.Release()
	}
}

// CachedDentries is how many names the cache holds (for tests and
// /proc/sys/fs/dentry-state).
func (v *VFS) CachedDentries() int {
	v.dcache.mu.Lock()
	defer v.dcache.mu.Unlock()
	return v.dcache.lru.Len()
}
