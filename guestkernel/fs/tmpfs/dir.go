package tmpfs

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// bogoDirentSize is what Linux tmpfs counts per entry in a directory's
// size (two for "." and ".."): st_size of a directory is 20*(n+2).
const bogoDirentSize = 20

// dir is a directory. Entries are kept twice: by name for lookups, and in
// creation order with increasing sequence numbers for IterDir, whose
// cookies are those sequence numbers. Removal only marks an entry gone
// (compacting now and then), so an iteration resumes after its cookie
// without skipping or repeating entries however many were removed.
type dir struct {
	inode
	// parent is the directory holding this one (nil for the root). It
	// changes only in Rename, under fs.renameMu.
	parent *dir

	names   map[string]*dentry
	order   []*dentry // ascending seq; gone entries linger until compacted
	nGone   int
	lastSeq int64
	dead    bool // removed (rmdir, replaced by rename, unmounted)
}

type dentry struct {
	name  string
	child node
	seq   int64
	gone  bool
}

var _ TmpfileCreator = (*dir)(nil)

func (d *dir) Stat(ctx vfs.Context) (vfs.Attr, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a := d.attrLocked()
	a.Size = int64(len(d.names)+2) * bogoDirentSize
	return a, nil
}

func (d *dir) Open(ctx vfs.Context, flags int) (vfs.File, error) { return nil, unix.EISDIR }

func (d *dir) unlinkedLocked() { d.fs.inodes.Add(-1) }

func (d *dir) addLocked(name string, child node) {
	d.lastSeq++
	de := &dentry{name: name, child: child, seq: d.lastSeq}
	d.names[name] = de
	d.order = append(d.order, de)
}

func (d *dir) removeLocked(name string) {
	de := d.names[name]
	delete(d.names, name)
	de.gone = true
	d.nGone++
	// Compact once most of order is dead weight; cookies are sequence
	// numbers, not indexes, so iterators do not notice.
	if d.nGone > 16 && d.nGone > len(d.order)/2 {
		live := make([]*dentry, 0, len(d.names))
		for _, e := range d.order {
			if !e.gone {
				live = append(live, e)
			}
		}
		d.order, d.nGone = live, 0
	}
}

// touchLocked records a change of the directory's entries.
func (d *dir) touchLocked(t unix.Timespec) { d.mtime, d.ctime = t, t }

// checkNewLocked is what every creating operation checks first.
func (d *dir) checkNewLocked(name string) error {
	if d.dead {
		return unix.ENOENT
	}
	if _, ok := d.names[name]; ok {
		return unix.EEXIST
	}
	return nil
}

func (d *dir) Lookup(ctx vfs.Context, name string) (vfs.Inode, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if de, ok := d.names[name]; ok {
		return de.child, nil
	}
	return nil, unix.ENOENT
}

// dtype is the DT_* of a file type.
func dtype(ftype uint32) uint8 { return uint8(ftype >> 12) }

// IterDir emits entries in batches and calls emit without the lock held,
// so that emit may copy out to app memory (which may fault on a tmpfs
// mapping) or call back into the directory.
func (d *dir) IterDir(ctx vfs.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	var batch [64]vfs.Dirent
	for {
		d.mu.RLock()
		lo, hi := 0, len(d.order)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if d.order[mid].seq <= cookie {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		n := 0
		for i := lo; i < len(d.order) && n < len(batch); i++ {
			de := d.order[i]
			if de.gone {
				continue
			}
			b := de.child.base()
			batch[n] = vfs.Dirent{Name: de.name, Type: dtype(b.ftype), Ino: b.ino, Next: de.seq}
			n++
		}
		d.mu.RUnlock()
		for k := range n {
			if !emit(batch[k]) {
				return nil
			}
			cookie = batch[k].Next
		}
		// Loop until a batch comes back empty, not merely short: entries
		// added behind the cursor while emit ran are seen, as with Linux's
		// cursor in the dentry list.
		if n == 0 {
			return nil
		}
	}
}

// newRegular makes a regular file in d (d.mu held; nil d for memfds),
// charging an inode.
func (fs *FS) newRegular(ctx vfs.Context, d *dir, mode uint32) (*regular, error) {
	if err := fs.chargeInode(); err != nil {
		return nil, err
	}
	r := &regular{seals: unix.F_SEAL_SEAL}
	fs.initInode(&r.inode, ctx, d, unix.S_IFREG|mode&07777)
	return r, nil
}

func (d *dir) Create(ctx vfs.Context, name string, mode uint32, flags int) (vfs.Inode, vfs.File, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkNewLocked(name); err != nil {
		return nil, nil, err
	}
	r, err := d.fs.newRegular(ctx, d, mode)
	if err != nil {
		return nil, nil, err
	}
	r.nlink = 1
	r.opens = 1
	d.addLocked(name, r)
	d.touchLocked(r.ctime)
	return r, newFile(r, flags), nil
}

// CreateTmpfile makes an unnamed regular file for open(O_TMPFILE) in d.
func (d *dir) CreateTmpfile(ctx vfs.Context, mode uint32, flags int) (vfs.Inode, vfs.File, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.dead {
		return nil, nil, unix.ENOENT
	}
	r, err := d.fs.newRegular(ctx, d, mode)
	if err != nil {
		return nil, nil, err
	}
	r.opens = 1
	r.linkable = flags&unix.O_EXCL == 0
	return r, newFile(r, flags), nil
}

func (d *dir) Mkdir(ctx vfs.Context, name string, mode uint32) (vfs.Inode, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkNewLocked(name); err != nil {
		return nil, err
	}
	if err := d.fs.chargeInode(); err != nil {
		return nil, err
	}
	c := &dir{parent: d, names: make(map[string]*dentry)}
	d.fs.initInode(&c.inode, ctx, d, unix.S_IFDIR|mode&01777)
	c.nlink = 2
	d.nlink++
	d.addLocked(name, c)
	d.touchLocked(c.ctime)
	return c, nil
}

// Mknod makes a FIFO, socket or device node, or (as mknod(2) with S_IFREG
// or no type does) an empty regular file.
func (d *dir) Mknod(ctx vfs.Context, name string, mode uint32, dev uint64) (vfs.Inode, error) {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
	case 0, unix.S_IFREG:
		in, f, err := d.Create(ctx, name, mode&07777, unix.O_RDONLY)
		if err != nil {
			return nil, err
		}
		f.Release()
		return in, nil
	case unix.S_IFDIR:
		return nil, unix.EPERM
	default:
		return nil, unix.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkNewLocked(name); err != nil {
		return nil, err
	}
	if err := d.fs.chargeInode(); err != nil {
		return nil, err
	}
	s := &special{}
	d.fs.initInode(&s.inode, ctx, d, mode&(unix.S_IFMT|07777))
	s.rdev = dev
	s.nlink = 1
	d.addLocked(name, s)
	d.touchLocked(s.ctime)
	return s, nil
}

func (d *dir) Symlink(ctx vfs.Context, name, target string) (vfs.Inode, error) {
	if target == "" {
		return nil, unix.ENOENT
	}
	if len(target) >= unix.PathMax {
		return nil, unix.ENAMETOOLONG
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkNewLocked(name); err != nil {
		return nil, err
	}
	if err := d.fs.chargeInode(); err != nil {
		return nil, err
	}
	s := &symlink{target: target}
	if len(target) >= shortSymlinkLen {
		if d.fs.charge(1, false) == 0 {
			d.fs.inodes.Add(-1)
			return nil, unix.ENOSPC
		}
		s.charged = true
	}
	d.fs.initInode(&s.inode, ctx, d, unix.S_IFLNK|0777)
	s.nlink = 1
	d.addLocked(name, s)
	d.touchLocked(s.ctime)
	return s, nil
}

// Link gives target another name. A file whose last name is gone cannot
// get one back (ENOENT), except an O_TMPFILE file opened without O_EXCL,
// once.
func (d *dir) Link(ctx vfs.Context, name string, target vfs.Inode) error {
	t, ok := target.(node)
	if !ok || t.base().fs != d.fs {
		return unix.EXDEV
	}
	tb := t.base()
	if tb.ftype == unix.S_IFDIR {
		return unix.EPERM
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkNewLocked(name); err != nil {
		return err
	}
	tb.mu.Lock()
	if tb.nlink == 0 {
		r, ok := t.(*regular)
		if !ok || !r.linkable || r.evicted {
			tb.mu.Unlock()
			return unix.ENOENT
		}
		r.linkable = false
	}
	tb.nlink++
	t0 := now()
	tb.ctime = t0
	tb.mu.Unlock()
	d.addLocked(name, t)
	d.touchLocked(t0)
	return nil
}

func (d *dir) Unlink(ctx vfs.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	de, ok := d.names[name]
	if !ok {
		return unix.ENOENT
	}
	if _, isDir := de.child.(*dir); isDir {
		return unix.EISDIR
	}
	t := now()
	cb := de.child.base()
	cb.mu.Lock()
	cb.nlink--
	cb.ctime = t
	if cb.nlink == 0 {
		de.child.unlinkedLocked()
	}
	cb.mu.Unlock()
	d.removeLocked(name)
	d.touchLocked(t)
	return nil
}

func (d *dir) Rmdir(ctx vfs.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	de, ok := d.names[name]
	if !ok {
		return unix.ENOENT
	}
	c, isDir := de.child.(*dir)
	if !isDir {
		return unix.ENOTDIR
	}
	c.mu.Lock()
	if len(c.names) != 0 {
		c.mu.Unlock()
		return unix.ENOTEMPTY
	}
	t := now()
	c.killLocked(t)
	c.mu.Unlock()
	d.nlink--
	d.removeLocked(name)
	d.touchLocked(t)
	return nil
}

// killLocked marks an empty directory removed.
func (d *dir) killLocked(t unix.Timespec) {
	d.nlink = 0
	d.dead = true
	d.ctime = t
	d.unlinkedLocked()
}

// isAncestor reports whether a is x or one of its ancestors (renameMu
// held, so that no parent pointer moves meanwhile).
func isAncestor(a, x *dir) bool {
	for p := x; p != nil; p = p.parent {
		if p == a {
			return true
		}
	}
	return false
}

// lockPair locks two distinct inodes in inode-number order; they must be
// unrelated in the tree (neither an ancestor of the other).
func lockPair(a, b *inode) {
	if a.ino > b.ino {
		a, b = b, a
	}
	a.mu.Lock()
	b.mu.Lock()
}

func (d *dir) Rename(ctx vfs.Context, oldName string, newDir vfs.Inode, newName string, flags uint32) error {
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 ||
		flags == unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE {
		return unix.EINVAL
	}
	nd, ok := newDir.(*dir)
	if !ok || nd.fs != d.fs {
		return unix.EXDEV
	}
	fs := d.fs
	fs.renameMu.Lock()
	defer fs.renameMu.Unlock()

	// Directories ancestor first, as every other path locks parent
	// before child; unrelated ones in inode order (only one rename at a
	// time holds two unrelated directories).
	switch {
	case d == nd:
		d.mu.Lock()
		defer d.mu.Unlock()
	case isAncestor(d, nd):
		d.mu.Lock()
		nd.mu.Lock()
		defer d.mu.Unlock()
		defer nd.mu.Unlock()
	case isAncestor(nd, d):
		nd.mu.Lock()
		d.mu.Lock()
		defer d.mu.Unlock()
		defer nd.mu.Unlock()
	default:
		lockPair(&d.inode, &nd.inode)
		defer d.mu.Unlock()
		defer nd.mu.Unlock()
	}

	src, ok := d.names[oldName]
	if !ok {
		return unix.ENOENT
	}
	if nd.dead {
		return unix.ENOENT
	}
	dst := nd.names[newName]
	exchange := flags&unix.RENAME_EXCHANGE != 0
	if flags&unix.RENAME_NOREPLACE != 0 && dst != nil {
		return unix.EEXIST
	}
	if exchange && dst == nil {
		return unix.ENOENT
	}
	s := src.child
	if dst != nil && dst.child == s {
		return nil // two names of one inode: Linux does nothing
	}
	sDir, _ := s.(*dir)
	if sDir != nil && isAncestor(sDir, nd) {
		return unix.EINVAL
	}
	var t node
	var tDir *dir
	if dst != nil {
		t = dst.child
		tDir, _ = t.(*dir)
		switch {
		case exchange:
			if tDir != nil && isAncestor(tDir, d) {
				return unix.EINVAL
			}
		case sDir != nil && tDir == nil:
			return unix.ENOTDIR
		case sDir == nil && tDir != nil:
			return unix.EISDIR
		case tDir != nil && isAncestor(tDir, d):
			// The target holds the source, so it is not empty. Checked
			// here because locking tDir after its descendant d could
			// deadlock.
			return unix.ENOTEMPTY
		}
	}

	// The inodes moved are children of d and nd, and unrelated to each
	// other and to the directories after the checks above.
	sb := s.base()
	if t != nil {
		lockPair(sb, t.base())
		defer t.base().mu.Unlock()
	} else {
		sb.mu.Lock()
	}
	defer sb.mu.Unlock()
	if !exchange && tDir != nil && len(tDir.names) != 0 {
		return unix.ENOTEMPTY
	}

	tm := now()
	if exchange {
		src.child, dst.child = t, s
		if d != nd {
			if sDir != nil {
				d.nlink--
				nd.nlink++
				sDir.parent = nd
			}
			if tDir != nil {
				nd.nlink--
				d.nlink++
				tDir.parent = d
			}
		}
		t.base().ctime = tm
	} else {
		if t != nil {
			tb := t.base()
			if tDir != nil {
				tDir.killLocked(tm)
				nd.nlink--
			} else {
				tb.nlink--
				tb.ctime = tm
				if tb.nlink == 0 {
					t.unlinkedLocked()
				}
			}
			nd.removeLocked(newName)
		}
		d.removeLocked(oldName)
		nd.addLocked(newName, s)
		if sDir != nil && d != nd {
			d.nlink--
			nd.nlink++
			sDir.parent = nd
		}
	}
	sb.ctime = tm
	d.touchLocked(tm)
	nd.touchLocked(tm)
	return nil
}

// releaseTreeLocked drops every name below d (d.mu held), for Release.
func (d *dir) releaseTreeLocked() {
	t := now()
	for _, de := range d.order {
		if de.gone {
			continue
		}
		if c, ok := de.child.(*dir); ok {
			c.mu.Lock()
			c.releaseTreeLocked()
			c.killLocked(t)
			c.mu.Unlock()
			continue
		}
		cb := de.child.base()
		cb.mu.Lock()
		cb.nlink--
		cb.ctime = t
		if cb.nlink == 0 {
			de.child.unlinkedLocked()
		}
		cb.mu.Unlock()
	}
	clear(d.names)
	d.order, d.nGone = nil, 0
}
