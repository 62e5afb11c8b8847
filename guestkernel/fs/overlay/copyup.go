package overlay

import (
	"io"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// copyUp gives i a file in the upper layer, copying its parents first.
// At most limit bytes of a regular file's data are copied (-1: all), for
// a truncation that would discard the rest. Concurrent callers wait on
// i.mu and find the copy made.
func (i *inode) copyUp(ctx vfs.Context, limit int64) error {
	if i.getUpper() != nil {
		return nil
	}
	if i.fs.upper == nil {
		return unix.EROFS
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.getUpper() != nil {
		return nil
	}
	// i.mu keeps renames (which lock the inode they move) away, so the
	// parent and name stay put; a removed file has no parent.
	p, name := i.parentName()
	if p == nil {
		return unix.ENOENT
	}
	if err := p.copyUp(ctx, -1); err != nil {
		return err
	}
	return p.copyUpChild(ctx, i, name, limit)
}

// copyUpChild copies c, named name in d, into d's upper directory (c.mu
// held, d copied up, d.mu not held). Directories, symlinks and special
// files are made in place under d.mu: a single creation, invisible
// through the overlay until c's upper file is set, since c is the only
// inode of the name. Regular files are filled unnamed (O_TMPFILE) or
// under a private name with d.mu released, then linked or renamed into
// place, so a large copy holds up nothing else in d.
func (d *inode) copyUpChild(ctx vfs.Context, c *inode, name string, limit int64) error {
	fs := d.fs
	mctx := fs.mctx(ctx)
	src := c.lowers[0].in
	a, err := src.Stat(mctx)
	if err != nil {
		return err
	}
	if a.Type() == unix.S_IFREG {
		return d.copyUpRegular(mctx, c, name, src, &a, limit)
	}
	du := d.getUpper()
	var target string
	if a.Type() == unix.S_IFLNK {
		if target, err = src.Readlink(mctx); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	da, daErr := du.Stat(mctx)
	var up vfs.Inode
	switch a.Type() {
	case unix.S_IFDIR:
		up, err = du.Mkdir(mctx, name, unix.S_IFDIR|0o700)
	case unix.S_IFLNK:
		up, err = du.Symlink(mctx, name, target)
	default:
		up, err = du.Mknod(mctx, name, a.Type()|0o600, a.Rdev)
	}
	if err != nil {
		return err
	}
	if err := fs.copyMeta(mctx, c, src, up, &a); err != nil {
		if a.Type() == unix.S_IFDIR {
			du.Rmdir(mctx, name)
		} else {
			du.Unlink(mctx, name)
		}
		release(up)
		return err
	}
	fs.finishInDir(mctx, du, &da, daErr, c)
	c.setUpper(up)
	return nil
}

// copyUpRegular copies a regular file's data and attributes (c.mu held,
// d.mu not held).
func (d *inode) copyUpRegular(mctx vfs.Context, c *inode, name string, src vfs.Inode, a *vfs.Attr, limit int64) error {
	fs := d.fs
	du := d.getUpper()
	size := a.Size
	if limit >= 0 && limit < size {
		size = limit
	}
	var up vfs.Inode
	var f vfs.File
	var err error
	tmp := ""
	if tc, ok := du.(vfs.TmpfileCreator); ok {
		up, f, err = tc.CreateTmpfile(mctx, unix.S_IFREG|0o600, unix.O_RDWR)
		if err != nil && err != unix.EOPNOTSUPP && err != unix.ENOTSUP {
			return err
		}
	}
	if up == nil {
		tmp = fs.tempName()
		d.mu.Lock()
		up, f, err = du.Create(mctx, tmp, unix.S_IFREG|0o600, unix.O_RDWR)
		d.mu.Unlock()
		if err != nil {
			return err
		}
	}
	fail := func(err error) error {
		f.Release()
		if tmp != "" {
			d.mu.Lock()
			du.Unlink(mctx, tmp)
			d.mu.Unlock()
		}
		release(up)
		return err
	}
	if size > 0 {
		if err := fs.copyData(mctx, src, f, size); err != nil {
			return fail(err)
		}
	}
	// The size, whatever trailing hole the copy skipped or limit cut.
	if err := up.SetAttr(mctx, &vfs.SetAttr{Mask: vfs.SetSize, Size: size}); err != nil {
		return fail(err)
	}
	if err := fs.copyMeta(mctx, c, src, up, a); err != nil {
		return fail(err)
	}
	d.mu.Lock()
	da, daErr := du.Stat(mctx)
	if tmp == "" {
		err = du.Link(mctx, name, up)
	} else {
		err = du.Rename(mctx, tmp, du, name, 0)
	}
	if err != nil {
		d.mu.Unlock()
		return fail(err)
	}
	fs.finishInDir(mctx, du, &da, daErr, c)
	c.setUpper(up)
	d.mu.Unlock()
	// Only now: an unnamed file would be freed with its last open.
	f.Release()
	return nil
}

// finishInDir ends a copy-up into the upper directory du (d.mu held):
// du gets back the times it had (copy-up is no change the app made, as
// on Linux), and is marked impure if the file keeps a lower inode number.
func (fs *FS) finishInDir(mctx vfs.Context, du vfs.Inode, da *vfs.Attr, daErr error, c *inode) {
	if c.origin {
		setFlag(mctx, du, xattrImpure)
	}
	if daErr == nil {
		du.SetAttr(mctx, &vfs.SetAttr{Mask: vfs.SetAtime | vfs.SetMtime, Atime: da.Atime, Mtime: da.Mtime})
	}
}

// copyMeta gives the copy up the lower file's xattrs (but the overlay's
// private ones), owner, mode and times, and records the inode number a
// non-directory keeps.
func (fs *FS) copyMeta(mctx vfs.Context, c *inode, src, up vfs.Inode, a *vfs.Attr) error {
	names, err := src.Listxattr(mctx)
	if err != nil {
		names = nil // a layer without xattrs has none to copy
	}
	for _, n := range names {
		if isPrivateXattr(n) {
			continue
		}
		v, err := src.Getxattr(mctx, n)
		if err != nil {
			continue // gone or unreadable: nothing to copy
		}
		if err := up.Setxattr(mctx, n, v, 0); err != nil && !xattrUnsupported(err) {
			return err
		}
	}
	if c.origin {
		if err := up.Setxattr(mctx, xattrOrigin, []byte(strconv.FormatUint(c.ino, 10)), 0); err != nil && !xattrUnsupported(err) {
			return err
		}
	}
	if err := up.SetAttr(mctx, &vfs.SetAttr{Mask: vfs.SetUID | vfs.SetGID, UID: a.UID, GID: a.GID}); err != nil {
		return err
	}
	// Mode after owner, so a chown's clearing of set-id bits cannot undo
	// it; times last, so nothing above moves them.
	req := vfs.SetAttr{Mask: vfs.SetAtime | vfs.SetMtime, Atime: a.Atime, Mtime: a.Mtime}
	if a.Type() != unix.S_IFLNK {
		req.Mask |= vfs.SetMode
		req.Mode = a.Mode & 0o7777
	}
	return up.SetAttr(mctx, &req)
}

// xattrUnsupported reports an upper layer that cannot hold an xattr
// (a namespace it lacks, or user.* on a special file): skipped, as Linux
// skips what the upper filesystem does not support.
func xattrUnsupported(err error) bool {
	return err == unix.ENOTSUP || err == unix.EOPNOTSUPP || err == unix.EPERM
}

// copyData copies size bytes of src into dst in chunks, skipping holes
// where the source can tell them (SEEK_DATA) and leaving all-zero chunks
// unwritten, so sparse files stay sparse.
func (fs *FS) copyData(mctx vfs.Context, src vfs.Inode, dst vfs.File, size int64) error {
	in, err := src.Open(mctx, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer in.Release()
	buf := make([]byte, min(int64(fs.chunk), size))
	sh := seekDataHoler(in)
	off := int64(0)
	for off < size {
		end := size
		if sh != nil {
			data, err := sh.SeekDataHole(off, unix.SEEK_DATA)
			if err == unix.ENXIO {
				return nil // only a hole is left
			}
			if err != nil {
				sh = nil
			} else {
				if off = data; off >= size {
					return nil
				}
				if hole, err := sh.SeekDataHole(off, unix.SEEK_HOLE); err == nil && hole > off && hole < end {
					end = hole
				}
			}
		}
		for off < end {
			n, err := in.Read(mctx, [][]byte{buf[:min(int64(len(buf)), end-off)]}, off)
			if n > 0 {
				if err := writeAllAt(mctx, dst, buf[:n], off); err != nil {
					return err
				}
				off += int64(n)
			}
			if err == io.EOF || err == nil && n == 0 {
				return nil // shorter than it said: copy what there is
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// writeAllAt writes b at off, unless it is all zeros (a hole reads so).
func writeAllAt(ctx vfs.Context, f vfs.File, b []byte, off int64) error {
	if allZero(b) {
		return nil
	}
	for len(b) > 0 {
		n, err := f.Write(ctx, [][]byte{b}, off)
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.EIO
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// seekDataHoler finds the hole map of an open file, if it has one.
func seekDataHoler(f vfs.File) vfs.SeekDataHoler {
	if s, ok := f.(vfs.SeekDataHoler); ok {
		return s
	}
	if o, ok := f.(interface{ OffsetIO() vfs.OffsetIO }); ok {
		if s, ok := o.OffsetIO().(vfs.SeekDataHoler); ok {
			return s
		}
	}
	return nil
}
