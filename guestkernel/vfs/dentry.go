package vfs

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// Superblock is one instance of a filesystem as the VFS tracks it: the
// Filesystem, its device number, and how many mounts use it.
type Superblock struct {
	v    *VFS
	FS   Filesystem
	Dev  uint64
	root *Dentry
	refs atomic.Int64
}

// Root is the dentry of the filesystem's root directory.
func (sb *Superblock) Root() *Dentry { return sb.root }

// Dentry binds a name in a directory to an inode. Dentries are cached for
// as long as the directory tree holds them: a name once looked up is not
// looked up again (filesystems that can change behind the Sentry's back
// revalidate inside Lookup, see Revalidator).
type Dentry struct {
	sb     *Superblock
	inode  Inode
	name   string  // guarded by the VFS rename lock
	parent *Dentry // nil for a filesystem root; guarded by the rename lock

	// dirMu serialises changes to this directory's entries (Linux's
	// i_rwsem): create, unlink, rename in or out.
	dirMu sync.Mutex

	mu       sync.Mutex
	children map[string]*Dentry // positive entries only

	mounts atomic.Int32 // mounts whose mount point this is
	dead   atomic.Bool  // unlinked or rmdir'd
	opens  atomic.Int32 // open descriptions (IN_DELETE_SELF waits for them)

	refs    atomic.Int32  // pins: open files, working directories, watches
	touched atomic.Bool   // used since the cache's last eviction scan
	lru     *list.Element // in the VFS's dentry cache; guarded by its mu
}

// Revalidator is an optional Inode interface for filesystems whose files
// can change outside the Sentry: the VFS asks a cached child whether it
// still stands for name before using it.
type Revalidator interface {
	Revalidate(ctx Context, name string, child Inode) bool
}

// Releaser is an optional Inode interface: the VFS calls Release when it
// drops its dentry for the inode (unlink, eviction), so a remote
// filesystem can free its handle.
type Releaser interface {
	Release()
}

func newDentry(sb *Superblock, inode Inode, name string, parent *Dentry) *Dentry {
	return &Dentry{sb: sb, inode: inode, name: name, parent: parent}
}

// Inode is the dentry's inode.
func (d *Dentry) Inode() Inode { return d.inode }

// Superblock is the filesystem the dentry belongs to.
func (d *Dentry) Superblock() *Superblock { return d.sb }

// Dead reports whether the dentry's name has been removed.
func (d *Dentry) Dead() bool { return d.dead.Load() }

func (d *Dentry) cachedChild(name string) *Dentry {
	d.mu.Lock()
	c := d.children[name]
	d.mu.Unlock()
	if c != nil && d.sb.v != nil {
		d.sb.v.cacheTouch(c)
	}
	return c
}

func (d *Dentry) addChild(c *Dentry) {
	d.mu.Lock()
	if d.children == nil {
		d.children = make(map[string]*Dentry)
	}
	d.children[c.name] = c
	d.mu.Unlock()
	if d.sb.v != nil {
		d.sb.v.cacheAdd(c)
	}
}

func (d *Dentry) removeChild(name string) *Dentry {
	d.mu.Lock()
	c := d.children[name]
	delete(d.children, name)
	d.mu.Unlock()
	if c != nil && d.sb.v != nil {
		d.sb.v.cacheRemove(c)
	}
	return c
}

// VirtualDentry is a dentry as seen through one mount: the pair a path
// resolves to.
type VirtualDentry struct {
	Mount  *Mount
	Dentry *Dentry
}

// Ok reports a non-empty VirtualDentry.
func (vd VirtualDentry) Ok() bool { return vd.Dentry != nil }

// Inode is the inode the pair names.
func (vd VirtualDentry) Inode() Inode { return vd.Dentry.inode }
