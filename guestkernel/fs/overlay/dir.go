package overlay

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// mkWhiteout makes name in the upper directory du a whiteout.
func mkWhiteout(mctx vfs.Context, du vfs.Inode, name string) error {
	w, err := du.Mknod(mctx, name, unix.S_IFCHR, 0)
	if err == nil {
		release(w)
	}
	return err
}

// tempWhiteout makes a whiteout under a private name in du, to be renamed
// over a name later: made first, it cannot fail after the name's upper
// file is gone (which would bring the lower one back).
func (fs *FS) tempWhiteout(mctx vfs.Context, du vfs.Inode) (string, error) {
	name := fs.tempName()
	return name, mkWhiteout(mctx, du, name)
}

// writable is what every changing directory operation checks first.
func (d *inode) writable(name string) error {
	if !d.isDir() {
		return unix.ENOTDIR
	}
	if d.fs.upper == nil {
		return unix.EROFS
	}
	if isPrivateName(name) {
		return unix.EPERM
	}
	return nil
}

// clearNameLocked makes sure name is free in the merged view of d (d.mu
// held, d copied up) and removes a whiteout the upper directory has for
// it, reporting whether it did.
func (d *inode) clearNameLocked(ctx vfs.Context, name string) (bool, error) {
	if d.dead {
		return false, unix.ENOENT
	}
	if _, ok := d.children[name]; ok {
		return false, unix.EEXIST
	}
	du := d.getUpper()
	st, err := d.fs.lookupStack(ctx, du, d.lowers, name)
	if err == nil {
		st.release()
		return false, unix.EEXIST
	}
	if err != unix.ENOENT {
		return false, err
	}
	wh, err := isWhiteoutAt(ctx, du, name)
	if err != nil || !wh {
		return false, err
	}
	if err := du.Unlink(d.fs.mctx(ctx), name); err != nil {
		return false, err
	}
	return true, nil
}

// makeEntry is the common part of Create, Mkdir, Mknod and Symlink: mk
// makes the file in the upper directory, over a whiteout if there was
// one; a directory made there becomes opaque, so the lower one's
// contents stay hidden.
func (d *inode) makeEntry(ctx vfs.Context, name string, mk func(du vfs.Inode) (vfs.Inode, error)) (*inode, error) {
	if err := d.writable(name); err != nil {
		return nil, err
	}
	if err := d.copyUp(ctx, -1); err != nil {
		return nil, err
	}
	mctx := d.fs.mctx(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	wh, err := d.clearNameLocked(ctx, name)
	if err != nil {
		return nil, err
	}
	du := d.getUpper()
	up, err := mk(du)
	if err != nil {
		if wh {
			mkWhiteout(mctx, du, name)
		}
		return nil, err
	}
	a, err := up.Stat(ctx)
	if err == nil && a.IsDir() && wh {
		err = setFlag(mctx, up, xattrOpaque)
		if err != nil {
			du.Rmdir(mctx, name)
			mkWhiteout(mctx, du, name)
		}
	}
	if err != nil {
		release(up)
		return nil, err
	}
	c := d.newChild(name, stack{upper: up, attr: a, ino: mixIno(a.Ino, 0)})
	d.insertLocked(c)
	d.gen++
	return c, nil
}

// Create makes a regular file in the upper layer.
func (d *inode) Create(ctx vfs.Context, name string, mode uint32, flags int) (vfs.Inode, vfs.File, error) {
	var f vfs.File
	c, err := d.makeEntry(ctx, name, func(du vfs.Inode) (vfs.Inode, error) {
		in, file, err := du.Create(ctx, name, mode, flags)
		f = file
		return in, err
	})
	if err != nil {
		if f != nil {
			f.Release()
		}
		return nil, nil, err
	}
	return c, f, nil
}

func (d *inode) Mkdir(ctx vfs.Context, name string, mode uint32) (vfs.Inode, error) {
	c, err := d.makeEntry(ctx, name, func(du vfs.Inode) (vfs.Inode, error) {
		return du.Mkdir(ctx, name, mode)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Mknod refuses the character device 0:0: in an overlay it would read
// back as a whiteout, that is as nothing.
func (d *inode) Mknod(ctx vfs.Context, name string, mode uint32, dev uint64) (vfs.Inode, error) {
	if mode&unix.S_IFMT == unix.S_IFCHR && dev == 0 {
		return nil, unix.EPERM
	}
	c, err := d.makeEntry(ctx, name, func(du vfs.Inode) (vfs.Inode, error) {
		return du.Mknod(ctx, name, mode, dev)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (d *inode) Symlink(ctx vfs.Context, name, target string) (vfs.Inode, error) {
	c, err := d.makeEntry(ctx, name, func(du vfs.Inode) (vfs.Inode, error) {
		return du.Symlink(ctx, name, target)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Link copies target up and links its upper file. As on Linux without
// the index feature, a lower file with several names becomes separate
// files as each is copied up.
func (d *inode) Link(ctx vfs.Context, name string, target vfs.Inode) error {
	if err := d.writable(name); err != nil {
		return err
	}
	t, ok := target.(*inode)
	if !ok || t.fs != d.fs {
		return unix.EXDEV
	}
	if t.isDir() {
		return unix.EPERM
	}
	if err := t.copyUp(ctx, -1); err != nil {
		return err
	}
	if err := d.copyUp(ctx, -1); err != nil {
		return err
	}
	mctx := d.fs.mctx(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	wh, err := d.clearNameLocked(ctx, name)
	if err != nil {
		return err
	}
	du := d.getUpper()
	if err := du.Link(ctx, name, t.getUpper()); err != nil {
		if wh {
			mkWhiteout(mctx, du, name)
		}
		return err
	}
	if t.origin {
		setFlag(mctx, du, xattrImpure)
	}
	d.gen++
	// The VFS gives the new name a dentry of its own for target, and
	// will release it from both.
	t.refs.Add(1)
	return nil
}

// Unlink removes the upper file, if any, and leaves a whiteout if a lower
// layer has the name.
func (d *inode) Unlink(ctx vfs.Context, name string) error {
	if err := d.writable(name); err != nil {
		return err
	}
	c, err := d.getChild(ctx, name)
	if err != nil {
		return err
	}
	defer c.decRef()
	if c.isDir() {
		return unix.EISDIR
	}
	lower, err := d.lowerPositive(ctx, name)
	if err != nil {
		return err
	}
	if err := d.copyUp(ctx, -1); err != nil {
		return err
	}
	mctx := d.fs.mctx(ctx)
	err = func() error {
		// c.mu first: a copy-up of c in progress finishes before.
		c.mu.Lock()
		defer c.mu.Unlock()
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.children[name] != c {
			return unix.ENOENT
		}
		du := d.getUpper()
		switch {
		case c.getUpper() != nil && lower:
			tmp, err := d.fs.tempWhiteout(mctx, du)
			if err != nil {
				return err
			}
			if err := du.Rename(mctx, tmp, du, name, 0); err != nil {
				du.Unlink(mctx, tmp)
				return err
			}
		case c.getUpper() != nil:
			if err := du.Unlink(ctx, name); err != nil {
				return err
			}
		default:
			if err := mkWhiteout(mctx, du, name); err != nil {
				return err
			}
		}
		d.removeLocked(c)
		return nil
	}()
	if err != nil {
		return err
	}
	d.decRef() // c's hold on its parent
	return nil
}

// Rmdir removes a directory whose merged view is empty: the whiteouts in
// its upper directory first, then the directory, leaving a whiteout if a
// lower layer has the name.
func (d *inode) Rmdir(ctx vfs.Context, name string) error {
	if err := d.writable(name); err != nil {
		return err
	}
	c, err := d.getChild(ctx, name)
	if err != nil {
		return err
	}
	defer c.decRef()
	if !c.isDir() {
		return unix.ENOTDIR
	}
	lower, err := d.lowerPositive(ctx, name)
	if err != nil {
		return err
	}
	if err := d.copyUp(ctx, -1); err != nil {
		return err
	}
	mctx := d.fs.mctx(ctx)
	err = func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.children[name] != c {
			return unix.ENOENT
		}
		ents, junk, err := c.readMerged(ctx)
		if err != nil {
			return err
		}
		if len(ents) > 0 {
			return unix.ENOTEMPTY
		}
		du, cu := d.getUpper(), c.getUpper()
		if cu == nil {
			// Only in lower layers: hiding it is all.
			if err := mkWhiteout(mctx, du, name); err != nil {
				return err
			}
		} else {
			tmp := ""
			if lower {
				if tmp, err = d.fs.tempWhiteout(mctx, du); err != nil {
					return err
				}
			}
			for _, j := range junk {
				if err := cu.Unlink(mctx, j); err != nil && err != unix.ENOENT {
					return err
				}
			}
			if err := du.Rmdir(ctx, name); err != nil {
				if tmp != "" {
					du.Unlink(mctx, tmp)
				}
				return err
			}
			if tmp != "" {
				if err := du.Rename(mctx, tmp, du, name, 0); err != nil {
					du.Unlink(mctx, tmp)
					return err
				}
			}
		}
		c.dead = true
		c.snaps = nil
		d.removeLocked(c)
		return nil
	}()
	if err != nil {
		return err
	}
	d.decRef()
	return nil
}

// CreateTmpfile is O_TMPFILE: an unnamed file of the upper layer, made
// through the upper directory's own O_TMPFILE support.
func (d *inode) CreateTmpfile(ctx vfs.Context, mode uint32, flags int) (vfs.Inode, vfs.File, error) {
	if err := d.writable(""); err != nil {
		return nil, nil, err
	}
	if err := d.copyUp(ctx, -1); err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	dead := d.dead
	d.mu.Unlock()
	if dead {
		return nil, nil, unix.ENOENT
	}
	tc, ok := d.getUpper().(vfs.TmpfileCreator)
	if !ok {
		return nil, nil, unix.EOPNOTSUPP
	}
	up, f, err := tc.CreateTmpfile(ctx, mode, flags)
	if err != nil {
		return nil, nil, err
	}
	a, err := up.Stat(ctx)
	if err != nil {
		f.Release()
		release(up)
		return nil, nil, err
	}
	c := &inode{fs: d.fs, typ: a.Type(), ino: mixIno(a.Ino, 0)}
	c.setUpper(up)
	c.refs.Store(1)
	return c, f, nil
}

// lockDirs locks the two directories of a rename, descendant first as
// copy-up does (fs.renameMu held, so ancestry is stable and no other
// rename holds two directories).
func lockDirs(d, nd *inode) (unlock func()) {
	switch {
	case d == nd:
		d.mu.Lock()
		return d.mu.Unlock
	case isAncestor(d, nd):
		nd.mu.Lock()
		d.mu.Lock()
	default:
		d.mu.Lock()
		nd.mu.Lock()
	}
	return func() {
		d.mu.Unlock()
		nd.mu.Unlock()
	}
}

// Rename copies up what moves and renames in the upper layer, leaving a
// whiteout at the old name if a lower layer has it. Like Linux without
// redirect_dir, a directory with lower-layer content cannot move (EXDEV:
// mv then copies). RENAME_EXCHANGE works for whatever can be copied up.
func (d *inode) Rename(ctx vfs.Context, oldName string, newDir vfs.Inode, newName string, flags uint32) error {
	if err := d.writable(newName); err != nil {
		return err
	}
	nd, ok := newDir.(*inode)
	if !ok || nd.fs != d.fs {
		return unix.EXDEV
	}
	if !nd.isDir() {
		return unix.ENOTDIR
	}
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 ||
		flags == unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE {
		return unix.EINVAL
	}
	exchange := flags&unix.RENAME_EXCHANGE != 0
	fs := d.fs
	fs.renameMu.Lock()
	defer fs.renameMu.Unlock()

	src, err := d.getChild(ctx, oldName)
	if err != nil {
		return err
	}
	defer src.decRef()
	dst, err := nd.getChild(ctx, newName)
	switch {
	case err == unix.ENOENT:
		dst = nil
	case err != nil:
		return err
	default:
		defer dst.decRef()
	}
	if dst != nil {
		if flags&unix.RENAME_NOREPLACE != 0 {
			return unix.EEXIST
		}
		if dst == src {
			return nil
		}
		if su := src.getUpper(); su != nil && su == dst.getUpper() {
			return nil // two names of one file: Linux does nothing
		}
	} else if exchange {
		return unix.ENOENT
	}
	if src.isDir() {
		if len(src.lowers) > 0 {
			return unix.EXDEV
		}
		if isAncestor(src, nd) {
			return unix.EINVAL
		}
	}
	if dst != nil && exchange && dst.isDir() {
		if len(dst.lowers) > 0 {
			return unix.EXDEV
		}
		if isAncestor(dst, d) {
			return unix.EINVAL
		}
	}
	if dst != nil && !exchange {
		switch {
		case src.isDir() && !dst.isDir():
			return unix.ENOTDIR
		case !src.isDir() && dst.isDir():
			return unix.EISDIR
		case dst.isDir() && isAncestor(dst, d):
			return unix.ENOTEMPTY
		}
	}
	oldLower, err := d.lowerPositive(ctx, oldName)
	if err != nil {
		return err
	}
	newLower, err := nd.lowerPositive(ctx, newName)
	if err != nil {
		return err
	}
	for _, in := range []*inode{src, dst, d, nd} {
		if in == nil || in == dst && !exchange {
			continue
		}
		if err := in.copyUp(ctx, -1); err != nil {
			return err
		}
	}
	mctx := fs.mctx(ctx)
	// A directory arriving where a lower layer has the name must hide
	// what is there. It has no lower content of its own (or it could not
	// move), so being opaque changes nothing where it is now.
	if src.isDir() && newLower {
		if err := setFlag(mctx, src.getUpper(), xattrOpaque); err != nil {
			return err
		}
	}
	if exchange && dst.isDir() && oldLower {
		if err := setFlag(mctx, dst.getUpper(), xattrOpaque); err != nil {
			return err
		}
	}

	var dropOld, dropNew bool
	err = func() error {
		// The moving inodes (unrelated after the checks above) before
		// their directories, as copy-up locks.
		src.mu.Lock()
		defer src.mu.Unlock()
		if dst != nil {
			dst.mu.Lock()
			defer dst.mu.Unlock()
		}
		defer lockDirs(d, nd)()
		if d.children[oldName] != src || dst != nil && nd.children[newName] != dst || nd.dead {
			return unix.ENOENT
		}
		du, ndu := d.getUpper(), nd.getUpper()
		if exchange {
			if err := du.Rename(ctx, oldName, ndu, newName, unix.RENAME_EXCHANGE); err != nil {
				return err
			}
			d.children[oldName], nd.children[newName] = dst, src
			src.setParent(nd, newName)
			dst.setParent(d, oldName)
			if src.origin {
				setFlag(mctx, ndu, xattrImpure)
			}
			if dst.origin {
				setFlag(mctx, du, xattrImpure)
			}
			d.gen++
			nd.gen++
			return nil
		}
		if dst != nil && dst.isDir() {
			ents, junk, err := dst.readMerged(ctx)
			if err != nil {
				return err
			}
			if len(ents) > 0 {
				return unix.ENOTEMPTY
			}
			if dsu := dst.getUpper(); dsu != nil {
				for _, j := range junk {
					if err := dsu.Unlink(mctx, j); err != nil && err != unix.ENOENT {
						return err
					}
				}
			}
		}
		tmp := ""
		if oldLower {
			var err error
			if tmp, err = fs.tempWhiteout(mctx, du); err != nil {
				return err
			}
		}
		// A whiteout where the file goes: a file replaces it, but a
		// directory cannot replace a non-directory.
		removedWh := false
		if dst == nil && src.isDir() {
			wh, err := isWhiteoutAt(ctx, ndu, newName)
			if err == nil && wh {
				err = ndu.Unlink(mctx, newName)
				removedWh = err == nil
			}
			if err != nil {
				if tmp != "" {
					du.Unlink(mctx, tmp)
				}
				return err
			}
		}
		if err := du.Rename(ctx, oldName, ndu, newName, 0); err != nil {
			if removedWh {
				mkWhiteout(mctx, ndu, newName)
			}
			if tmp != "" {
				du.Unlink(mctx, tmp)
			}
			return err
		}
		if tmp != "" {
			if err := du.Rename(mctx, tmp, du, oldName, 0); err != nil {
				du.Unlink(mctx, tmp)
				return err
			}
		}
		if src.origin {
			setFlag(mctx, ndu, xattrImpure)
		}
		delete(d.children, oldName)
		if dst != nil {
			if dst.isDir() {
				dst.dead = true
				dst.snaps = nil
			}
			nd.removeLocked(dst)
			dropNew = true
		}
		nd.children[newName] = src
		src.setParent(nd, newName)
		if d != nd {
			nd.refs.Add(1)
			dropOld = true
		}
		d.gen++
		nd.gen++
		return nil
	}()
	if dropOld {
		d.decRef()
	}
	if dropNew {
		nd.decRef()
	}
	return err
}
