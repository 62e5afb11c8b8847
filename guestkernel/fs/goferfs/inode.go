package goferfs

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// getdentsChunk is how many bytes of entries one Getdents asks for.
const getdentsChunk = 256 << 10

// inode is one live name of a gofer file, holding a gofer handle.
type inode struct {
	vfs.NoOps // xattrs: ENOTSUP (the protocol has none)

	fs     *FS
	d      *fileData
	mode   uint32 // file type bits, fixed for the file's life
	handle atomic.Uint64

	// Guarded by fs.mu.
	parent   *inode
	name     string
	refs     int               // VFS references plus one per live child
	children map[string]*inode // live children of a directory
	retired  []uint64          // handles replaced by a rename, closed on release

	target atomic.Pointer[string] // symlink target once read (immutable)
}

var (
	_ vfs.Inode       = (*inode)(nil)
	_ vfs.Releaser    = (*inode)(nil)
	_ vfs.Revalidator = (*inode)(nil)
	_ PathLookuper    = (*inode)(nil)
	_ mm.Mappable     = (*inode)(nil)
)

func (i *inode) isDir() bool { return i.mode == unix.S_IFDIR }

func (i *inode) readOnly() error {
	if i.fs.opts.ReadOnly {
		return unix.EROFS
	}
	return nil
}

// incRef takes a reference for an open File, so the inode (and its
// handle, which fstat uses) outlives an eviction of its dentry.
func (i *inode) incRef() {
	i.fs.mu.Lock()
	i.refs++
	i.fs.mu.Unlock()
}

// Release implements vfs.Releaser. The root ignores it.
func (i *inode) Release() {
	fs := i.fs
	if i == fs.root {
		return
	}
	fs.mu.Lock()
	fs.decRefLocked(i)
	fs.unlock()
}

// Stat implements vfs.Inode. ctx may be nil.
func (i *inode) Stat(vfs.Context) (vfs.Attr, error) {
	if i.fs.opts.CacheMode == Exclusive {
		if a, ok := i.d.cachedAttr(); ok {
			return a, nil
		}
	}
	st, err := i.fs.c.Stat(i.handle.Load())
	if err != nil {
		return vfs.Attr{}, err
	}
	if i.d.setAttrFromHost(&st) && i.fs.opts.CacheMode == Shared {
		i.d.dropCleanPages()
	}
	a, _ := i.d.cachedAttr()
	return a, nil
}

// SetAttr implements vfs.Inode. A size change of a regular file also
// adjusts the page cache (under its lock, so no page is filled or written
// back between the host's truncate and the cache's).
func (i *inode) SetAttr(_ vfs.Context, req *vfs.SetAttr) error {
	if err := i.readOnly(); err != nil {
		return err
	}
	r := proto.SetattrReq{Handle: i.handle.Load()}
	if req.Mask&vfs.SetMode != 0 {
		r.Mask |= proto.SetattrMode
		r.Mode = req.Mode & 0o7777
	}
	if req.Mask&vfs.SetUID != 0 {
		r.Mask |= proto.SetattrUID
		r.UID = req.UID
	}
	if req.Mask&vfs.SetGID != 0 {
		r.Mask |= proto.SetattrGID
		r.GID = req.GID
	}
	if req.Mask&vfs.SetAtime != 0 {
		r.Mask |= proto.SetattrAtime
		r.Atime = proto.Timespec{Sec: req.Atime.Sec, Nsec: uint32(req.Atime.Nsec)}
	}
	if req.Mask&vfs.SetMtime != 0 {
		r.Mask |= proto.SetattrMtime
		r.Mtime = proto.Timespec{Sec: req.Mtime.Sec, Nsec: uint32(req.Mtime.Nsec)}
	}
	if req.Mask&vfs.SetSize == 0 || i.mode != unix.S_IFREG {
		if req.Mask&vfs.SetSize != 0 {
			if req.Size < 0 {
				return unix.EINVAL
			}
			r.Mask |= proto.SetattrSize
			r.Size = uint64(req.Size)
		}
		st, err := i.fs.c.Setattr(r)
		if err != nil {
			return err
		}
		i.d.setAttrFromHost(&st)
		return nil
	}
	if req.Size < 0 {
		return unix.EINVAL
	}
	r.Mask |= proto.SetattrSize
	r.Size = uint64(req.Size)
	d := i.d
	d.mu.Lock()
	old := uint64(d.size())
	if d.rfd >= 0 {
		// The host knows better than a Shared-mode cache.
		var hs unix.Stat_t
		if unix.Fstat(d.rfd, &hs) == nil {
			old = uint64(hs.Size)
		}
	}
	st, err := i.fs.c.Setattr(r)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	invals, free := d.resizeLocked(old, st.Size)
	d.setAttrFromHost(&st)
	d.mu.Unlock()
	d.finishDrop(invals, free)
	return nil
}

// hostOpenFlags are the open flags the host descriptor gets. O_APPEND is
// left out: the VFS passes appending writes with offset -1 (Append), and
// an O_APPEND host descriptor would ignore pwrite offsets.
func hostOpenFlags(flags int) uint32 {
	return uint32(flags & (unix.O_ACCMODE | unix.O_DSYNC | unix.O_SYNC))
}

// Open implements vfs.Inode.
func (i *inode) Open(_ vfs.Context, flags int) (vfs.File, error) {
	acc := flags & unix.O_ACCMODE
	if acc != unix.O_RDONLY && i.fs.opts.ReadOnly {
		return nil, unix.EROFS
	}
	switch i.mode {
	case unix.S_IFDIR:
		return nil, unix.EISDIR
	case unix.S_IFLNK:
		return nil, unix.ELOOP
	case unix.S_IFREG:
		hf := hostOpenFlags(flags)
		fd := -1
		if hf == unix.O_RDONLY {
			fd = i.d.dupReadFD()
		}
		if fd < 0 {
			var err error
			if fd, err = i.fs.c.Open(i.handle.Load(), hf); err != nil {
				return nil, err
			}
			if hf == unix.O_RDONLY {
				// Keep a read descriptor: later read-only opens of the
				// file duplicate it instead of asking the gofer.
				i.d.ensureFDs(fd, false)
			}
		}
		return newRegularFile(i, fd, flags), nil
	case unix.S_IFIFO:
		// Always non-blocking on the host; blocking is emulated with
		// Context.WaitHostFD so a signal can interrupt it.
		fd, err := i.fs.c.Open(i.handle.Load(), uint32(acc|unix.O_NONBLOCK))
		if err != nil {
			return nil, err
		}
		return newPipeFile(i, fd, flags), nil
	}
	// Sockets and devices: the gofer refuses them.
	fd, err := i.fs.c.Open(i.handle.Load(), uint32(acc))
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	return nil, unix.ENXIO
}

// Lookup implements vfs.Inode.
func (i *inode) Lookup(ctx vfs.Context, name string) (vfs.Inode, error) {
	names := [1]string{name}
	res, err := i.LookupPath(ctx, names[:])
	if err != nil {
		for _, r := range res {
			r.(*inode).Release()
		}
		return nil, err
	}
	return res[0], nil
}

// LookupPath implements PathLookuper.
func (i *inode) LookupPath(_ vfs.Context, names []string) ([]vfs.Inode, error) {
	if !i.isDir() {
		return nil, unix.ENOTDIR
	}
	if len(names) == 0 {
		return nil, nil
	}
	fs := i.fs
	out := make([]vfs.Inode, 0, len(names))
	cur := i
	if fs.opts.CacheMode == Exclusive {
		// Live names need no round trip.
		fs.mu.Lock()
		for len(names) > 0 && cur.isDir() {
			child := cur.children[names[0]]
			if child == nil {
				break
			}
			child.refs++
			out = append(out, child)
			names = names[1:]
			cur = child
		}
		fs.mu.Unlock()
		if len(names) == 0 {
			return out, nil
		}
		if !cur.isDir() {
			if cur.mode == unix.S_IFLNK {
				return out, nil
			}
			return out, unix.ENOTDIR
		}
	}
	hs, sts, err := fs.c.Walk(cur.handle.Load(), names)
	fs.mu.Lock()
	for k := range hs {
		cur = fs.installLocked(cur, names[k], hs[k], &sts[k], false)
		out = append(out, cur)
	}
	fs.unlock()
	return out, err
}

// Revalidate implements vfs.Revalidator. In Exclusive mode a cached name
// is always right. In Shared mode the name is walked again: it still
// stands for child if it names the same host file (whose attributes the
// walk refreshes); if not, or it is gone, the VFS drops the dentry and
// looks the name up again.
func (i *inode) Revalidate(_ vfs.Context, name string, child vfs.Inode) bool {
	if i.fs.opts.CacheMode == Exclusive {
		return true
	}
	c, ok := child.(*inode)
	if !ok {
		return false
	}
	fs := i.fs
	names := [1]string{name}
	hs, sts, err := fs.c.Walk(i.handle.Load(), names[:])
	same := err == nil && len(hs) == 1 && keyOf(&sts[0]) == c.d.key
	stale := same && c.d.setAttrFromHost(&sts[0])
	if len(hs) > 0 {
		fs.mu.Lock()
		fs.pending = append(fs.pending, hs...)
		fs.unlock()
	}
	if stale {
		c.d.dropCleanPages()
	}
	return same
}

// installLocked makes the inode for a handle the gofer just returned for
// name in parent, holding one reference. If the name's live inode is the
// same file, that inode is reused and the new handle closed; if it is a
// different file (Shared mode: replaced behind our back), the old inode is
// detached. fresh says the file was just created, so an existing fileData
// with the same identity is a dead file's (inode number reuse).
func (fs *FS) installLocked(parent *inode, name string, h uint64, st *proto.Stat, fresh bool) *inode {
	if ex := parent.children[name]; ex != nil {
		if !fresh && ex.d.key == keyOf(st) && !ex.d.dead {
			fs.pending = append(fs.pending, h)
			ex.refs++
			if fs.opts.CacheMode == Shared && ex.d.setAttrFromHost(st) {
				fs.stale = append(fs.stale, ex.d)
			}
			return ex
		}
		fs.detachLocked(ex)
	}
	if fresh {
		if d := fs.datas[keyOf(st)]; d != nil {
			delete(fs.datas, d.key)
		}
	}
	return fs.newInodeLocked(parent, name, h, st)
}

// IterDir implements vfs.Inode with Getdents requests of getdentsChunk
// bytes, resuming at the gofer's cookies.
func (i *inode) IterDir(_ vfs.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	if !i.isDir() {
		return unix.ENOTDIR
	}
	if cookie < 0 {
		return unix.EINVAL
	}
	c := uint64(cookie)
	for {
		ents, eof, err := i.fs.c.Getdents(i.handle.Load(), c, getdentsChunk)
		if err != nil {
			return err
		}
		for k := range ents {
			e := &ents[k]
			if !emit(vfs.Dirent{Name: e.Name, Type: e.Type, Ino: e.Ino, Next: int64(e.Off)}) {
				return nil
			}
			c = e.Off
		}
		if eof || len(ents) == 0 {
			return nil
		}
	}
}

// owner is the owner of a new file in directory i: the caller's fsuid and
// fsgid, or the directory's group if it is set-group-ID. It also reports
// whether new directories inherit the set-group-ID bit.
func (i *inode) owner(ctx vfs.Context) (uid, gid uint32, setgid bool) {
	if ctx != nil {
		if cr := ctx.FSCredentials(); cr != nil {
			uid, gid = cr.UID, cr.GID
		}
	}
	// Mode and group are right even when the rest of the cached attributes
	// was invalidated by a change of the directory's entries.
	i.d.attrMu.Lock()
	if i.d.attr.Mode&unix.S_ISGID != 0 {
		gid, setgid = i.d.attr.GID, true
	}
	i.d.attrMu.Unlock()
	return uid, gid, setgid
}

// checkDirChange is the common precondition of creating and removing names.
func (i *inode) checkDirChange() error {
	if !i.isDir() {
		return unix.ENOTDIR
	}
	return i.readOnly()
}

// created installs a file the gofer just made in i.
func (i *inode) created(name string, e *proto.Entry) *inode {
	fs := i.fs
	fs.mu.Lock()
	child := fs.installLocked(i, name, e.Handle, &e.Stat, true)
	fs.unlock()
	i.d.invalidateAttr() // times and, for directories, link count changed
	return child
}

// Create implements vfs.Inode.
func (i *inode) Create(ctx vfs.Context, name string, mode uint32, flags int) (vfs.Inode, vfs.File, error) {
	if err := i.checkDirChange(); err != nil {
		return nil, nil, err
	}
	uid, gid, _ := i.owner(ctx)
	e, fd, err := i.fs.c.Create(i.handle.Load(), name, hostOpenFlags(flags), mode&0o7777, uid, gid)
	if err != nil {
		return nil, nil, err
	}
	child := i.created(name, &e)
	return child, newRegularFile(child, fd, flags), nil
}

// Mkdir implements vfs.Inode.
func (i *inode) Mkdir(ctx vfs.Context, name string, mode uint32) (vfs.Inode, error) {
	if err := i.checkDirChange(); err != nil {
		return nil, err
	}
	uid, gid, setgid := i.owner(ctx)
	mode &= 0o7777
	if setgid {
		mode |= unix.S_ISGID
	}
	e, err := i.fs.c.Mkdir(i.handle.Load(), name, mode, uid, gid)
	if err != nil {
		return nil, err
	}
	return i.created(name, &e), nil
}

// Mknod implements vfs.Inode. The gofer makes FIFOs (and regular files)
// only; device nodes and sockets fail with EPERM.
func (i *inode) Mknod(ctx vfs.Context, name string, mode uint32, dev uint64) (vfs.Inode, error) {
	if err := i.checkDirChange(); err != nil {
		return nil, err
	}
	uid, gid, _ := i.owner(ctx)
	e, err := i.fs.c.Mknod(i.handle.Load(), name, mode, unix.Major(dev), unix.Minor(dev), uid, gid)
	if err != nil {
		return nil, err
	}
	return i.created(name, &e), nil
}

// Symlink implements vfs.Inode.
func (i *inode) Symlink(ctx vfs.Context, name, target string) (vfs.Inode, error) {
	if err := i.checkDirChange(); err != nil {
		return nil, err
	}
	uid, gid, _ := i.owner(ctx)
	e, err := i.fs.c.Symlink(i.handle.Load(), name, target, uid, gid)
	if err != nil {
		return nil, err
	}
	child := i.created(name, &e)
	child.target.Store(&target)
	return child, nil
}

// Link implements vfs.Inode.
func (i *inode) Link(_ vfs.Context, name string, target vfs.Inode) error {
	if err := i.checkDirChange(); err != nil {
		return err
	}
	t, ok := target.(*inode)
	if !ok || t.fs != i.fs {
		return unix.EXDEV
	}
	e, err := i.fs.c.Link(t.handle.Load(), i.handle.Load(), name)
	if err != nil {
		return err
	}
	// The new name is not live until looked up; its handle goes back.
	i.fs.mu.Lock()
	i.fs.pending = append(i.fs.pending, e.Handle)
	i.fs.unlock()
	t.d.setAttrFromHost(&e.Stat) // same file: the new link count
	i.d.invalidateAttr()
	return nil
}

// Unlink implements vfs.Inode.
func (i *inode) Unlink(_ vfs.Context, name string) error { return i.remove(name, 0) }

// Rmdir implements vfs.Inode.
func (i *inode) Rmdir(_ vfs.Context, name string) error { return i.remove(name, proto.AtRemoveDir) }

func (i *inode) remove(name string, flags uint32) error {
	if err := i.checkDirChange(); err != nil {
		return err
	}
	if err := i.fs.c.Unlink(i.handle.Load(), name, flags); err != nil {
		return err
	}
	fs := i.fs
	fs.mu.Lock()
	if child := i.children[name]; child != nil {
		child.d.invalidateAttr() // link count
		fs.detachLocked(child)
	}
	fs.unlock()
	i.d.invalidateAttr()
	return nil
}

// Rename implements vfs.Inode. A gofer handle reopens its file by the name
// it was looked up with, so a live inode that moved gets a handle for its
// new name (its old one is closed on release, as an operation may still
// be using it).
func (i *inode) Rename(_ vfs.Context, oldName string, newDir vfs.Inode, newName string, flags uint32) error {
	if err := i.checkDirChange(); err != nil {
		return err
	}
	nd, ok := newDir.(*inode)
	if !ok || nd.fs != i.fs {
		return unix.EXDEV
	}
	if !nd.isDir() {
		return unix.ENOTDIR
	}
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 {
		return unix.EINVAL
	}
	fs := i.fs
	if err := fs.c.Rename(i.handle.Load(), oldName, nd.handle.Load(), newName, flags); err != nil {
		return err
	}
	exchange := flags&unix.RENAME_EXCHANGE != 0
	fs.mu.Lock()
	moved, other := i.children[oldName], nd.children[newName]
	if moved == other || (!exchange && moved != nil && other != nil && moved.d == other.d) {
		// Renaming a name onto itself or onto another link of the same
		// file changes nothing (rename(2)).
		moved, other = nil, nil
	}
	// Hold them so a concurrent Release cannot free them meanwhile.
	for _, x := range []*inode{moved, other} {
		if x != nil {
			x.refs++
		}
	}
	fs.mu.Unlock()
	var movedH, otherH uint64
	var movedOK, otherOK bool
	if moved != nil {
		movedH, movedOK = fs.rewalk(nd, newName, moved)
	}
	if exchange && other != nil {
		otherH, otherOK = fs.rewalk(i, oldName, other)
	}
	fs.mu.Lock()
	if other != nil {
		if exchange {
			fs.moveLocked(other, i, oldName, otherH, otherOK)
		} else {
			other.d.invalidateAttr() // replaced: link count dropped
			fs.detachLocked(other)
		}
		fs.decRefLocked(other)
	}
	if moved != nil {
		fs.moveLocked(moved, nd, newName, movedH, movedOK)
		moved.d.invalidateAttr() // ctime
		fs.decRefLocked(moved)
	}
	fs.unlock()
	i.d.invalidateAttr()
	nd.d.invalidateAttr()
	return nil
}

// rewalk gets a handle for name in dir, which must be the file of want.
func (fs *FS) rewalk(dir *inode, name string, want *inode) (uint64, bool) {
	names := [1]string{name}
	hs, sts, err := fs.c.Walk(dir.handle.Load(), names[:])
	if err != nil || len(hs) != 1 || keyOf(&sts[0]) != want.d.key {
		if len(hs) > 0 {
			fs.mu.Lock()
			fs.pending = append(fs.pending, hs...)
			fs.unlock()
		}
		fs.logf("goferfs: no handle for renamed %q: %v", name, err)
		return 0, false
	}
	return hs[0], true
}

// moveLocked makes i the live inode of name in dir, with handle h if ok.
func (fs *FS) moveLocked(i *inode, dir *inode, name string, h uint64, ok bool) {
	if i.parent != nil && i.parent.children[i.name] == i {
		delete(i.parent.children, i.name)
	}
	old := i.parent
	if dir.children == nil {
		dir.children = make(map[string]*inode)
	}
	if ex := dir.children[name]; ex != nil && ex != i {
		// Looked up concurrently; this one wins.
		ex.parent = nil
		fs.decRefLocked(dir)
	}
	dir.children[name] = i
	dir.refs++
	i.parent, i.name = dir, name
	if old != nil {
		fs.decRefLocked(old)
	}
	if ok {
		i.retired = append(i.retired, i.handle.Load())
		i.handle.Store(h)
	}
}

// Readlink implements vfs.Inode; the target is read once.
func (i *inode) Readlink(vfs.Context) (string, error) {
	if i.mode != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	if t := i.target.Load(); t != nil {
		return *t, nil
	}
	t, err := i.fs.c.Readlink(i.handle.Load())
	if err != nil {
		return "", err
	}
	i.target.Store(&t)
	return t, nil
}

// StatFS implements vfs.Inode.
func (i *inode) StatFS(vfs.Context) (unix.Statfs_t, error) {
	s, err := i.fs.c.StatFS(i.handle.Load())
	if err != nil {
		return unix.Statfs_t{}, err
	}
	st := unix.Statfs_t{
		Type:    int64(s.Type),
		Bsize:   int64(s.Bsize),
		Blocks:  s.Blocks,
		Bfree:   s.Bfree,
		Bavail:  s.Bavail,
		Files:   s.Files,
		Ffree:   s.Ffree,
		Namelen: int64(s.NameLen),
		Frsize:  int64(s.Frsize),
	}
	if i.fs.opts.ReadOnly {
		st.Flags |= unix.ST_RDONLY
	}
	return st, nil
}

// The inode is the mm.Mappable of its file through its shared data, so
// every inode of a file maps the same pages.

func (i *inode) Translate(off, length uint64, forWrite bool) (uint64, uint64, error) {
	return i.d.Translate(off, length, forWrite)
}
func (i *inode) AddMapping(ms mm.MappingSpace, addr, off, length uint64, writable bool) {
	i.d.AddMapping(ms, addr, off, length, writable)
}
func (i *inode) RemoveMapping(ms mm.MappingSpace, addr, off, length uint64, writable bool) {
	i.d.RemoveMapping(ms, addr, off, length, writable)
}
func (i *inode) IncRef() { i.d.IncRef() }
func (i *inode) DecRef() { i.d.DecRef() }
