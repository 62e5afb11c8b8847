// Package goferfs is the filesystem of files served by the gofer: a
// vfs.Filesystem over one gofer/client connection. The Sentry never opens
// host paths itself; every lookup and change is a gofer request, and file
// data moves through host descriptors the gofer donates.
//
// # Inodes and handles
//
// Each Inode holds one gofer handle. Inodes are kept in a tree of live
// names (a directory knows its live children), so that looking a name up
// again while the VFS still holds it returns the same Inode, and so that a
// rename can give the moved inode a handle for its new name (a gofer handle
// reopens its file by the name it was looked up with).
//
// Every Inode the package returns from Lookup, LookupPath, Create, Mkdir,
// Mknod or Symlink carries one reference, which the VFS gives back by
// calling the Inode's Release method (vfs.Releaser) when it drops the
// dentry. An open File and a live child hold references of their own, so
// an unlinked file's handle lives on while it is open. When the last reference goes, the handle is queued and
// queued handles are closed with one Close request per closeBatch. The
// root is never released. A VFS that never calls Release leaks handles,
// not correctness.
//
// Directories also implement PathLookuper: LookupPath resolves several
// components with one Walk request.
//
// All inodes of one host file (hard links, or a file looked up again after
// its dentry was dropped) share one fileData: attributes and page cache.
//
// # Attribute caching
//
// CacheMode Exclusive (the default) is for a rootfs the sandbox owns.
// Lookup of a live name costs no round trip, Stat answers from the cached
// attributes, and the sandbox's own changes update them locally: write
// grows the size and moves mtime, and setattr uses the stat the gofer
// returns. Some operations change attributes in ways the client cannot
// know exactly: creating or removing names changes the directory's times
// and link count, and link or rename changes the file's link count or
// ctime. These drop the cached attributes, so the next Stat asks the gofer
// once.
//
// CacheMode Shared is for files others change too. Directories implement
// vfs.Revalidator: before using a cached dentry the VFS asks, and the name
// is walked again (a different file under it makes the VFS look it up
// afresh, giving a new Inode). Every Lookup walks, and every Stat asks the
// gofer. When a stat shows that a file's size or mtime
// changed since it was last seen, its clean cached pages are dropped (and
// their mappings invalidated), so the next fault reads the new data.
// Reads and writes always go to the host descriptor, so they see outside
// changes in both modes.
//
// # File I/O and the page cache
//
// Opening a regular file gets a host descriptor from the gofer. Reads and
// writes are preadv/pwritev on it, with no gofer round trip and no
// allocation.
//
// Mapping a file with mmap gives it a page cache in the memory file: the
// file's fileData implements mm.Mappable and mm.MappableSyncer. Pages are
// read from the host on their first Translate and shared by every mapping of
// the file. While a file has cached pages, read and write through any of
// its Files consult them. So write(2) is visible through mappings, and
// read(2) sees data written through a shared mapping before write-back.
// Dirty pages are written back on Sync and SyncRange (fsync, msync), when
// the last writable mapping goes, and when the data is released.
// Truncation drops pages past the new end and invalidates their mappings.
package goferfs

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/client"
	"github.com/ringfence/ringfence/gofer/proto"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/vfs"
	"github.com/ringfence/ringfence/logging"
)

// CacheMode says whether the sandbox is the only one changing the files.
type CacheMode int

const (
	// Exclusive caches attributes and trusts them (the default).
	Exclusive CacheMode = iota
	// Shared revalidates on every Lookup and Stat.
	Shared
)

func (m CacheMode) String() string {
	if m == Shared {
		return "Shared"
	}
	return "Exclusive"
}

// Options configures a filesystem.
type Options struct {
	// ReadOnly refuses every change with EROFS (the gofer refuses too).
	ReadOnly bool
	// CacheMode is Exclusive or Shared; see the package documentation.
	CacheMode CacheMode
	// Dev, when non-zero, is the device number ConfigureMMap reports for
	// /proc/PID/maps (the VFS fills Attr.Dev itself).
	Dev uint64
}

// closeBatch is how many released handles are closed in one request.
const closeBatch = 64

// PathLookuper is implemented by goferfs directories: LookupPath resolves
// several components in one gofer round trip (components whose inodes are
// live cost nothing in Exclusive mode). It returns one Inode per component
// resolved, in order, each carrying a reference (see vfs.Releaser). Fewer
// results than names with a nil error mean the walk stopped after a
// symlink, which is the last result, for the VFS to follow. On error
// (ENOENT, ENOTDIR, EIO...) the inodes resolved before the failing
// component are returned too, and must be released. Names follow the
// Lookup rules (single components, never "." or ".."); the VFS checks
// search permission on the returned directories itself and handles mount
// points among them.
type PathLookuper interface {
	LookupPath(ctx vfs.Context, names []string) ([]vfs.Inode, error)
}

// FS is one mounted goferfs.
type FS struct {
	c    *client.Client
	mf   *memfile.File
	opts Options
	root *inode

	mu      sync.Mutex
	datas   map[fileKey]*fileData
	pending []uint64    // released handles awaiting a batched Close
	dead    []*fileData // data whose last reference went, to release unlocked
	stale   []*fileData // Shared mode: data changed on the host, drop clean pages
	closing sync.WaitGroup
}

var _ vfs.Filesystem = (*FS)(nil)

// New makes a filesystem of the tree c serves (its root handle). The
// caller keeps ownership of c and mf; Release does not close c.
func New(c *client.Client, mf *memfile.File, opts Options) (*FS, error) {
	st, err := c.Stat(client.RootHandle)
	if err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, unix.ENOTDIR
	}
	fs := &FS{c: c, mf: mf, opts: opts, datas: make(map[fileKey]*fileData)}
	fs.mu.Lock()
	fs.root = fs.newInodeLocked(nil, "", client.RootHandle, &st)
	fs.mu.Unlock()
	return fs, nil
}

// Type implements vfs.Filesystem.
func (fs *FS) Type() string { return "goferfs" }

// Root implements vfs.Filesystem.
func (fs *FS) Root() vfs.Inode { return fs.root }

// Release implements vfs.Filesystem: it closes released handles and
// writes back and frees the page cache of every file no mapping uses
// (mapped files keep theirs until the last mapping goes). The client
// connection stays open.
func (fs *FS) Release() {
	fs.FlushHandles()
	fs.mu.Lock()
	var ds []*fileData
	for _, d := range fs.datas {
		if d.mapRefs == 0 {
			ds = append(ds, d)
		}
	}
	fs.mu.Unlock()
	for _, d := range ds {
		d.release()
	}
}

// FlushHandles closes every handle released so far and waits for batches
// already being closed.
func (fs *FS) FlushHandles() error {
	fs.mu.Lock()
	batch := fs.pending
	fs.pending = nil
	fs.mu.Unlock()
	var err error
	if len(batch) > 0 {
		err = fs.c.Close(batch...)
	}
	fs.closing.Wait()
	return err
}

// unlock releases fs.mu and then does the work queued under it: releasing
// dead data and closing a full batch of handles (in the background, so
// the VFS's eviction path does not wait for the gofer).
func (fs *FS) unlock() {
	var batch []uint64
	if len(fs.pending) >= closeBatch {
		batch = fs.pending
		fs.pending = nil
	}
	dead, stale := fs.dead, fs.stale
	fs.dead, fs.stale = nil, nil
	if batch != nil {
		fs.closing.Add(1)
	}
	fs.mu.Unlock()
	for _, d := range dead {
		d.release()
	}
	for _, d := range stale {
		d.dropCleanPages()
	}
	if batch != nil {
		go func() {
			defer fs.closing.Done()
			if err := fs.c.Close(batch...); err != nil {
				fs.logf("goferfs: closing %d handles: %v", len(batch), err)
			}
		}()
	}
}

func (fs *FS) logf(format string, args ...any) { logging.Debugf(format, args...) }

// newInodeLocked makes the inode of handle h (with stat st) named name in
// parent, holding one reference.
func (fs *FS) newInodeLocked(parent *inode, name string, h uint64, st *proto.Stat) *inode {
	key := keyOf(st)
	d := fs.datas[key]
	if d == nil {
		d = newFileData(fs, key, st)
		fs.datas[key] = d
	} else if fs.opts.CacheMode == Shared {
		if d.setAttrFromHost(st) {
			fs.stale = append(fs.stale, d)
		}
	} else {
		d.fillAttr(st)
	}
	d.refs++
	i := &inode{fs: fs, d: d, mode: st.Mode & unix.S_IFMT, parent: parent, name: name, refs: 1}
	i.handle.Store(h)
	if parent != nil {
		if parent.children == nil {
			parent.children = make(map[string]*inode)
		}
		parent.children[name] = i
		parent.refs++
	}
	return i
}

// decRefLocked drops one reference to i; the last one detaches it from its
// parent (dropping the reference it held there), queues its handles for
// closing and drops its data.
func (fs *FS) decRefLocked(i *inode) {
	for i != nil {
		if i.refs <= 0 {
			fs.logf("goferfs: inode %d released too often", i.d.key.ino)
			return
		}
		i.refs--
		if i.refs > 0 || i == fs.root {
			return
		}
		fs.pending = append(fs.pending, i.handle.Load())
		fs.pending = append(fs.pending, i.retired...)
		i.retired = nil
		fs.decDataLocked(i.d)
		p := i.parent
		if p != nil && p.children[i.name] == i {
			delete(p.children, i.name)
		}
		i.parent = nil
		i = p
	}
}

// decDataLocked drops one reference to d and queues it for release when
// it was the last.
func (fs *FS) decDataLocked(d *fileData) {
	d.refs--
	if d.refs > 0 || d.dead {
		return
	}
	d.dead = true
	if fs.datas[d.key] == d {
		delete(fs.datas, d.key)
	}
	fs.dead = append(fs.dead, d)
}

// detachLocked removes i from its parent's live names (it was unlinked or
// replaced); i itself stays valid for whoever holds it.
func (fs *FS) detachLocked(i *inode) {
	p := i.parent
	if p == nil {
		return
	}
	if p.children[i.name] == i {
		delete(p.children, i.name)
	}
	i.parent = nil
	fs.decRefLocked(p)
}
