package overlay

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// layer is a file or directory of one layer: idx 0 is the upper layer,
// idx i the lower layer lowers[i-1].
type layer struct {
	in  vfs.Inode
	idx int
}

// ref boxes an Inode for atomic.Pointer.
type ref struct{ in vfs.Inode }

// inode is one file of the overlay: the stack of layer files a name
// resolves to. Its type and inode number never change.
type inode struct {
	fs     *FS
	typ    uint32 // S_IFMT bits
	ino    uint64
	isRoot bool
	// origin says ino came from a lower layer (for a non-directory, a
	// copied-up file keeps it).
	origin bool
	// lowers are, for a directory, the lower directories merged into it,
	// top first; for a non-directory, the lower file it shows or was
	// copied up from. Never changes.
	lowers []layer

	// upper is the upper layer's file, once there is one: set once, by
	// creation or copy-up, never cleared.
	upper atomic.Pointer[ref]

	// mu is held across this inode's copy-up and, for a directory, while
	// its entries change. Lock order: child before parent.
	mu sync.Mutex
	// children caches the inodes of names looked up here, so that one
	// name is one inode (copy-up happens once, renames move it). Each
	// holds a reference on this directory.
	children map[string]*inode
	gen      uint64 // counts changes of the entries, under mu
	dead     bool   // removed by rmdir (or a rename over it), under mu
	snaps    []*snapshot
	nextSnap uint32

	// smu guards parent and name; it is a leaf lock. They change under
	// the parent's mu (rename, unlink).
	smu    sync.Mutex
	parent *inode // nil for the root and for removed files
	name   string

	// refs counts the VFS's dentries for the inode, the overlay's own
	// temporary holds and, for a directory, its cached children. At zero
	// the inode leaves its parent's cache and releases its layer files.
	refs      atomic.Int64
	destroyed atomic.Bool
}

var (
	_ vfs.Inode          = (*inode)(nil)
	_ vfs.Releaser       = (*inode)(nil)
	_ vfs.TmpfileCreator = (*inode)(nil)
)

func (i *inode) isDir() bool { return i.typ == unix.S_IFDIR }

func (i *inode) getUpper() vfs.Inode {
	if r := i.upper.Load(); r != nil {
		return r.in
	}
	return nil
}

func (i *inode) setUpper(in vfs.Inode) { i.upper.Store(&ref{in}) }

// top is the file that answers reads: the upper one if any.
func (i *inode) top() vfs.Inode {
	if u := i.getUpper(); u != nil {
		return u
	}
	return i.lowers[0].in
}

func (i *inode) parentName() (*inode, string) {
	i.smu.Lock()
	defer i.smu.Unlock()
	return i.parent, i.name
}

func (i *inode) setParent(p *inode, name string) {
	i.smu.Lock()
	i.parent, i.name = p, name
	i.smu.Unlock()
}

// merged reports a directory made of more than one layer.
func (i *inode) merged() bool {
	if !i.isDir() {
		return false
	}
	n := len(i.lowers)
	if i.getUpper() != nil {
		n++
	}
	return n > 1
}

// Release is the VFS dropping one of its dentries for the inode.
func (i *inode) Release() { i.decRef() }

// decRef drops a reference; the last one takes the inode out of its
// parent's cache (which drops the parent's reference in turn).
func (i *inode) decRef() {
	if i.isRoot || i.refs.Add(-1) > 0 {
		return
	}
	for {
		p, name := i.parentName()
		if p == nil {
			i.destroy()
			return
		}
		p.mu.Lock()
		if q, _ := i.parentName(); q != p {
			p.mu.Unlock() // moved meanwhile: retry with the new parent
			continue
		}
		if i.refs.Load() > 0 {
			p.mu.Unlock() // looked up again meanwhile
			return
		}
		if p.children[name] == i {
			delete(p.children, name)
		}
		i.setParent(nil, "")
		p.mu.Unlock()
		i.destroy()
		p.decRef()
		return
	}
}

// destroy releases the layer files, once.
func (i *inode) destroy() {
	if !i.destroyed.CompareAndSwap(false, true) {
		return
	}
	release(i.getUpper())
	for _, l := range i.lowers {
		release(l.in)
	}
	i.mu.Lock()
	i.snaps = nil
	i.mu.Unlock()
}

// Stat reports the topmost file's attributes with the overlay's inode
// number. A merged directory has nlink 1, as on Linux: counting its
// subdirectories across layers is not worth it, and 1 tells find(1) not
// to rely on the count.
func (i *inode) Stat(ctx vfs.Context) (vfs.Attr, error) {
	a, err := i.top().Stat(ctx)
	if err != nil {
		return a, err
	}
	a.Ino = i.ino
	if i.merged() {
		a.Nlink = 1
	}
	return a, nil
}

// SetAttr copies the file up and changes the copy. Truncation copies no
// more data than the new size keeps.
func (i *inode) SetAttr(ctx vfs.Context, req *vfs.SetAttr) error {
	if i.fs.upper == nil {
		return unix.EROFS
	}
	limit := int64(-1)
	if req.Mask&vfs.SetSize != 0 {
		if i.isDir() {
			return unix.EISDIR
		}
		limit = max(req.Size, 0)
	}
	if err := i.copyUp(ctx, limit); err != nil {
		return err
	}
	return i.getUpper().SetAttr(ctx, req)
}

// Open opens the topmost file. Opening a regular file for writing (or
// truncation) copies it up first; a file opened for reading before that
// keeps reading the lower file, as on Linux. FIFOs and devices are never
// copied up by opening.
func (i *inode) Open(ctx vfs.Context, flags int) (vfs.File, error) {
	if i.isDir() {
		return nil, unix.EISDIR
	}
	if i.typ == unix.S_IFREG && (flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0) {
		if i.fs.upper == nil {
			return nil, unix.EROFS
		}
		limit := int64(-1)
		if flags&unix.O_TRUNC != 0 {
			limit = 0
		}
		if err := i.copyUp(ctx, limit); err != nil {
			return nil, err
		}
	}
	return i.top().Open(ctx, flags)
}

func (i *inode) Readlink(ctx vfs.Context) (string, error) { return i.top().Readlink(ctx) }

func (i *inode) Getxattr(ctx vfs.Context, name string) ([]byte, error) {
	if isPrivateXattr(name) {
		return nil, unix.ENODATA
	}
	return i.top().Getxattr(ctx, name)
}

func (i *inode) Listxattr(ctx vfs.Context) ([]string, error) {
	names, err := i.top().Listxattr(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(names, isPrivateXattr), nil
}

func (i *inode) Setxattr(ctx vfs.Context, name string, value []byte, flags int) error {
	if isPrivateXattr(name) {
		return unix.EPERM
	}
	if i.fs.upper == nil {
		return unix.EROFS
	}
	if err := i.copyUp(ctx, -1); err != nil {
		return err
	}
	return i.getUpper().Setxattr(ctx, name, value, flags)
}

// Removexattr of an attribute the lower file does not have fails without
// a copy-up, as on Linux.
func (i *inode) Removexattr(ctx vfs.Context, name string) error {
	if isPrivateXattr(name) {
		return unix.EPERM
	}
	if i.fs.upper == nil {
		return unix.EROFS
	}
	if i.getUpper() == nil {
		if _, err := i.top().Getxattr(ctx, name); err != nil {
			return err
		}
	}
	if err := i.copyUp(ctx, -1); err != nil {
		return err
	}
	return i.getUpper().Removexattr(ctx, name)
}

// StatFS reports the upper layer's space (where writes go), or the top
// lower layer's for a read-only overlay, with the overlay's magic.
func (i *inode) StatFS(ctx vfs.Context) (unix.Statfs_t, error) {
	l := i.fs.upper
	if l == nil {
		l = i.fs.lowers[0]
	}
	st, err := l.StatFS(ctx)
	if err != nil {
		return st, err
	}
	st.Type = SuperMagic
	return st, nil
}

// originIno reads the inode number a copied-up file recorded.
func originIno(mctx vfs.Context, in vfs.Inode) (uint64, bool) {
	v, err := in.Getxattr(mctx, xattrOrigin)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	return n, err == nil
}

// hasFlag reports a private "y" xattr.
func hasFlag(mctx vfs.Context, in vfs.Inode, name string) bool {
	v, err := in.Getxattr(mctx, name)
	return err == nil && string(v) == "y"
}

// setFlag sets a private "y" xattr.
func setFlag(mctx vfs.Context, in vfs.Inode, name string) error {
	return in.Setxattr(mctx, name, []byte("y"), 0)
}
