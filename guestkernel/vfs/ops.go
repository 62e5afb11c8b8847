package vfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// TmpfileCreator is an optional directory Inode interface for O_TMPFILE:
// an unnamed file that Link may later name (unless made with O_EXCL).
type TmpfileCreator interface {
	CreateTmpfile(ctx Context, mode uint32, flags int) (Inode, File, error)
}

// stat is an inode's attributes with the device filled in.
func stat(ctx Context, d *Dentry) (Attr, error) {
	a, err := d.inode.Stat(ctx)
	if err == nil {
		a.Dev = d.sb.Dev
	}
	return a, err
}

// Stat is stat/lstat/fstatat on a path.
func (v *VFS) Stat(ctx Context, wk *Walk) (Attr, error) {
	vd, err := v.Resolve(ctx, wk)
	if err != nil {
		return Attr{}, err
	}
	return stat(ctx, vd.Dentry)
}

// StatVD is stat of a resolved pair.
func StatVD(ctx Context, vd VirtualDentry) (Attr, error) { return stat(ctx, vd.Dentry) }

// OpenOptions are open(2)'s flags and mode, with the umask to apply.
type OpenOptions struct {
	Flags int
	Mode  uint32
	Umask uint32
}

// accessFor is the permission an open with flags needs.
func accessFor(flags int) int {
	may := 0
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		may = MayRead
	case unix.O_WRONLY:
		may = MayWrite
	case unix.O_RDWR:
		may = MayRead | MayWrite
	}
	if flags&unix.O_TRUNC != 0 {
		may |= MayWrite
	}
	return may
}

func wantsWrite(flags int) bool {
	return flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0
}

// Open is open/openat/openat2.
func (v *VFS) Open(ctx Context, wk *Walk, o OpenOptions) (*FileDescription, error) {
	flags := o.Flags
	if flags&unix.O_PATH != 0 {
		wk.FollowFinal = flags&unix.O_NOFOLLOW == 0
		vd, err := v.Resolve(ctx, wk)
		if err != nil {
			return nil, err
		}
		if flags&unix.O_DIRECTORY != 0 {
			if a, err := stat(ctx, vd.Dentry); err != nil || !a.IsDir() {
				return nil, unix.ENOTDIR
			}
		}
		f := &pathFile{}
		f.flags.Store(int32(flags & (unix.O_PATH | unix.O_NOFOLLOW | unix.O_DIRECTORY)))
		d := v.newPathDescription(vd, f, false)
		d.positioned = false
		return d, nil
	}
	if flags&unix.O_TMPFILE == unix.O_TMPFILE {
		return v.openTmpfile(ctx, wk, o)
	}
	if flags&unix.O_CREAT == 0 {
		wk.FollowFinal = flags&unix.O_NOFOLLOW == 0
		vd, err := v.Resolve(ctx, wk)
		if err != nil {
			return nil, err
		}
		return v.openExisting(ctx, vd, flags)
	}
	for tries := 0; ; tries++ {
		p, err := v.ResolveParent(ctx, wk)
		if err != nil {
			return nil, err
		}
		if p.Name == "." || p.Name == ".." || p.TrailingSlash {
			return nil, unix.EISDIR
		}
		d, retry, err := v.openCreate(ctx, p, o)
		if !retry {
			return d, err
		}
		if tries >= maxSymlinks || wk.Resolve&ResolveNoSymlinks != 0 {
			return nil, unix.ELOOP
		}
		// The name is a symlink: a creating open follows it, and creates
		// its target if that does not exist (as Linux does).
		link, err := v.lookup(ctx, p.Dir.Dentry, p.Name)
		if err != nil {
			return nil, err
		}
		if ml, ok := link.inode.(MagicLink); ok {
			if wk.Resolve&(ResolveNoMagiclinks|ResolveBeneath|ResolveInRoot) != 0 {
				return nil, unix.ELOOP
			}
			vd, err := ml.Follow(ctx)
			if err != nil {
				return nil, err
			}
			return v.openExisting(ctx, vd, flags&^unix.O_CREAT)
		}
		target, err := link.inode.Readlink(ctx)
		if err != nil {
			return nil, err
		}
		if target == "" {
			return nil, unix.ENOENT
		}
		if strings.HasPrefix(target, "/") && wk.Resolve&ResolveBeneath != 0 {
			return nil, unix.EXDEV
		}
		start := p.Dir
		if wk.Resolve&ResolveInRoot != 0 {
			start = wk.Start
		}
		wk = &Walk{Root: wk.Root, Start: start, Path: target, Resolve: wk.Resolve &^ ResolveInRoot}
		if wk.Resolve&ResolveInRoot == 0 && strings.HasPrefix(target, "/") {
			wk.Start = wk.Root
		}
	}
}

// openCreate opens or creates p.Name. retry says the name is a symlink
// the caller must follow.
func (v *VFS) openCreate(ctx Context, p Parent, o OpenOptions) (*FileDescription, bool, error) {
	dir := p.Dir.Dentry
	if c, err := v.lookup(ctx, dir, p.Name); err == nil {
		if o.Flags&unix.O_EXCL != 0 {
			return nil, false, unix.EEXIST
		}
		vd := VirtualDentry{p.Dir.Mount, c}
		if m := p.Dir.Mount.ns; m != nil {
			w := walker{ns: m, cur: vd}
			w.crossMounts()
			vd = w.cur
		}
		a, err := stat(ctx, vd.Dentry)
		if err != nil {
			return nil, false, err
		}
		if a.Type() == unix.S_IFLNK {
			if o.Flags&unix.O_NOFOLLOW != 0 {
				return nil, false, unix.ELOOP
			}
			return nil, true, nil
		}
		if a.IsDir() {
			return nil, false, unix.EISDIR
		}
		d, err := v.openExisting(ctx, vd, o.Flags&^unix.O_CREAT)
		return d, false, err
	} else if err != unix.ENOENT {
		return nil, false, err
	}
	dir.dirMu.Lock()
	defer dir.dirMu.Unlock()
	if dir.Dead() {
		return nil, false, unix.ENOENT
	}
	if c := dir.cachedChild(p.Name); c != nil {
		// Created meanwhile: open it as it is now.
		if o.Flags&unix.O_EXCL != 0 {
			return nil, false, unix.EEXIST
		}
		dir.dirMu.Unlock()
		d, err := v.openExisting(ctx, VirtualDentry{p.Dir.Mount, c}, o.Flags&^unix.O_CREAT)
		dir.dirMu.Lock()
		return d, false, err
	}
	if err := v.mayCreate(ctx, p.Dir); err != nil {
		return nil, false, err
	}
	mode := unix.S_IFREG | (o.Mode &^ o.Umask & 0o7777)
	inode, f, err := dir.inode.Create(ctx, p.Name, mode, o.Flags)
	if err != nil {
		return nil, false, err
	}
	c := newDentry(dir.sb, inode, p.Name, dir)
	dir.addChild(c)
	v.notifyCreateOpen(dir, c)
	return v.newPathDescription(VirtualDentry{p.Dir.Mount, c}, f, false), false, nil
}

// mayCreate checks that the caller may add or remove names in dir.
func (v *VFS) mayCreate(ctx Context, dir VirtualDentry) error {
	if dir.Mount.ReadOnly() {
		return unix.EROFS
	}
	a, err := stat(ctx, dir.Dentry)
	if err != nil {
		return err
	}
	if !a.IsDir() {
		return unix.ENOTDIR
	}
	return CheckPermission(ctx.FSCredentials(), &a, MayWrite|MayExec)
}

func (v *VFS) openExisting(ctx Context, vd VirtualDentry, flags int) (*FileDescription, error) {
	a, err := stat(ctx, vd.Dentry)
	if err != nil {
		return nil, err
	}
	typ := a.Type()
	if typ == unix.S_IFLNK {
		return nil, unix.ELOOP
	}
	if flags&unix.O_DIRECTORY != 0 && typ != unix.S_IFDIR {
		return nil, unix.ENOTDIR
	}
	if typ == unix.S_IFDIR {
		if flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_CREAT != 0 {
			return nil, unix.EISDIR
		}
	}
	if err := CheckPermission(ctx.FSCredentials(), &a, accessFor(flags)); err != nil {
		return nil, err
	}
	if wantsWrite(flags) && vd.Mount.ReadOnly() && (typ == unix.S_IFREG || typ == unix.S_IFDIR) {
		return nil, unix.EROFS
	}
	switch typ {
	case unix.S_IFDIR:
		f := &dirFile{}
		f.flags.Store(int32(flags &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_CLOEXEC)))
		v.notifyOpen(vd, flags, typ)
		return v.newPathDescription(vd, f, true), nil
	case unix.S_IFCHR:
		if vd.Mount.Flags()&MountNoDev != 0 {
			return nil, unix.EACCES
		}
		open := v.device(a.Rdev)
		if open == nil {
			return nil, unix.ENXIO
		}
		f, err := open(ctx, vd, flags)
		if err != nil {
			return nil, err
		}
		d := v.newPathDescription(vd, f, false)
		v.notifyOpen(vd, flags, typ)
		return d, nil
	case unix.S_IFIFO:
		if v.fifoOpen == nil {
			return nil, unix.ENXIO
		}
		f, err := v.fifoOpen(ctx, vd, flags&^(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC|unix.O_CLOEXEC|unix.O_NOCTTY))
		if err != nil {
			return nil, err
		}
		v.notifyOpen(vd, flags, typ)
		return v.newPathDescription(vd, f, false), nil
	case unix.S_IFSOCK:
		return nil, unix.ENXIO
	case unix.S_IFREG:
		if flags&unix.O_TRUNC != 0 && flags&unix.O_ACCMODE != unix.O_RDONLY {
			if err := v.truncate(ctx, vd, 0); err != nil {
				return nil, err
			}
		}
	}
	f, err := vd.Dentry.inode.Open(ctx, flags&^(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC|unix.O_CLOEXEC|unix.O_NOCTTY))
	if err != nil {
		return nil, err
	}
	v.notifyOpen(vd, flags, typ)
	return v.newPathDescription(vd, f, false), nil
}

func (v *VFS) openTmpfile(ctx Context, wk *Walk, o OpenOptions) (*FileDescription, error) {
	if o.Flags&unix.O_ACCMODE == unix.O_RDONLY {
		return nil, unix.EINVAL
	}
	wk.FollowFinal = true
	vd, err := v.Resolve(ctx, wk)
	if err != nil {
		return nil, err
	}
	if err := v.mayCreate(ctx, vd); err != nil {
		return nil, err
	}
	tc, ok := vd.Dentry.inode.(TmpfileCreator)
	if !ok {
		return nil, unix.EOPNOTSUPP
	}
	mode := unix.S_IFREG | (o.Mode &^ o.Umask & 0o7777)
	inode, f, err := tc.CreateTmpfile(ctx, mode, o.Flags&^unix.O_TMPFILE)
	if err != nil {
		return nil, err
	}
	c := newDentry(vd.Dentry.sb, inode, "#tmpfile", vd.Dentry)
	c.dead.Store(true) // unnamed until linkat
	v.notifyOpenNew(ctx, VirtualDentry{vd.Mount, c})
	return v.newPathDescription(VirtualDentry{vd.Mount, c}, f, false), nil
}

// OpenVD opens an already resolved file (execve, /proc links).
func (v *VFS) OpenVD(ctx Context, vd VirtualDentry, flags int) (*FileDescription, error) {
	return v.openExisting(ctx, vd, flags)
}

// OpenForExec opens a regular file for the loader, without the read
// permission check (execute-only programs run on Linux).
func (v *VFS) OpenForExec(ctx Context, vd VirtualDentry) (*FileDescription, error) {
	f, err := vd.Dentry.inode.Open(ctx, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	v.notifyOpenNew(ctx, vd)
	return v.newPathDescription(vd, f, false), nil
}

func (v *VFS) truncate(ctx Context, vd VirtualDentry, size int64) error {
	return vd.Dentry.inode.SetAttr(ctx, &SetAttr{Mask: SetSize, Size: size})
}

// locked runs fn with p's directory locked, after the usual checks for
// making a new name there; fn gets an error if the name exists.
func (v *VFS) makeNode(ctx Context, p Parent, fn func(dir Inode) (Inode, error)) error {
	if p.Name == "." || p.Name == ".." {
		return unix.EEXIST
	}
	dir := p.Dir.Dentry
	dir.dirMu.Lock()
	defer dir.dirMu.Unlock()
	if dir.Dead() {
		return unix.ENOENT
	}
	if _, err := v.lookupLocked(ctx, dir, p.Name); err == nil {
		return unix.EEXIST
	} else if err != unix.ENOENT {
		return err
	}
	if err := v.mayCreate(ctx, p.Dir); err != nil {
		return err
	}
	inode, err := fn(dir.inode)
	if err != nil {
		return err
	}
	dir.addChild(newDentry(dir.sb, inode, p.Name, dir))
	v.notifyCreate(ctx, dir, p.Name, inode)
	return nil
}

// lookupLocked is lookup for a caller holding dir.dirMu.
func (v *VFS) lookupLocked(ctx Context, dir *Dentry, name string) (*Dentry, error) {
	if c := dir.cachedChild(name); c != nil {
		if rv, ok := dir.inode.(Revalidator); !ok || rv.Revalidate(ctx, name, c.inode) {
			return c, nil
		}
		v.dropChild(dir, name)
	}
	inode, err := dir.inode.Lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	c := newDentry(dir.sb, inode, name, dir)
	dir.addChild(c)
	return c, nil
}

// Mkdir is mkdir/mkdirat.
func (v *VFS) Mkdir(ctx Context, wk *Walk, mode, umask uint32) error {
	p, err := v.ResolveParent(ctx, wk)
	if err != nil {
		return err
	}
	return v.makeNode(ctx, p, func(dir Inode) (Inode, error) {
		return dir.Mkdir(ctx, p.Name, unix.S_IFDIR|(mode&^umask&0o7777))
	})
}

// Mknod is mknod/mknodat for FIFOs, sockets and device nodes.
func (v *VFS) Mknod(ctx Context, wk *Walk, mode, umask uint32, dev uint64) error {
	p, err := v.ResolveParent(ctx, wk)
	if err != nil {
		return err
	}
	if p.TrailingSlash {
		return unix.ENOENT
	}
	typ := mode & unix.S_IFMT
	switch typ {
	case 0:
		typ = unix.S_IFREG
	case unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK:
	case unix.S_IFCHR, unix.S_IFBLK:
		if !ctx.FSCredentials().Caps.Has(CapMknod) {
			return unix.EPERM
		}
	case unix.S_IFDIR:
		return unix.EPERM
	default:
		return unix.EINVAL
	}
	perm := mode &^ umask & 0o7777
	return v.makeNode(ctx, p, func(dir Inode) (Inode, error) {
		if typ == unix.S_IFREG {
			in, f, err := dir.Create(ctx, p.Name, typ|perm, unix.O_RDONLY)
			if err == nil && f != nil {
				f.Release()
			}
			return in, err
		}
		return dir.Mknod(ctx, p.Name, typ|perm, dev)
	})
}

// Symlink is symlink/symlinkat.
func (v *VFS) Symlink(ctx Context, target string, wk *Walk) error {
	if target == "" {
		return unix.ENOENT
	}
	if len(target) >= PathMax {
		return unix.ENAMETOOLONG
	}
	p, err := v.ResolveParent(ctx, wk)
	if err != nil {
		return err
	}
	if p.TrailingSlash {
		return unix.ENOENT
	}
	return v.makeNode(ctx, p, func(dir Inode) (Inode, error) {
		return dir.Symlink(ctx, p.Name, target)
	})
}

// Link is link/linkat: old is already resolved.
func (v *VFS) Link(ctx Context, old VirtualDentry, wk *Walk) error {
	p, err := v.ResolveParent(ctx, wk)
	if err != nil {
		return err
	}
	if p.TrailingSlash {
		return unix.ENOENT
	}
	if old.Mount != p.Dir.Mount {
		return unix.EXDEV
	}
	a, err := stat(ctx, old.Dentry)
	if err != nil {
		return err
	}
	if a.IsDir() {
		return unix.EPERM
	}
	if old.Dentry.Dead() && a.Nlink == 0 && old.Dentry.name != "#tmpfile" {
		return unix.ENOENT
	}
	return v.makeNode(ctx, p, func(dir Inode) (Inode, error) {
		if err := dir.Link(ctx, p.Name, old.Dentry.inode); err != nil {
			return nil, err
		}
		v.notifyLinkCount(old.Dentry.inode)
		return old.Dentry.inode, nil
	})
}

// removeChecks finds name in p for unlink/rmdir/rename with the dir
// locked: the child, its attributes, after permission, sticky and busy
// checks.
func (v *VFS) removeChecks(ctx Context, p VirtualDentry, name string) (*Dentry, Attr, error) {
	c, err := v.lookupLocked(ctx, p.Dentry, name)
	if err != nil {
		return nil, Attr{}, err
	}
	if err := v.mayCreate(ctx, p); err != nil {
		return nil, Attr{}, err
	}
	ca, err := stat(ctx, c)
	if err != nil {
		return nil, Attr{}, err
	}
	da, err := stat(ctx, p.Dentry)
	if err != nil {
		return nil, Attr{}, err
	}
	if err := checkSticky(ctx.FSCredentials(), &da, &ca); err != nil {
		return nil, Attr{}, err
	}
	if c.mounts.Load() > 0 {
		return nil, Attr{}, unix.EBUSY
	}
	return c, ca, nil
}

// Unlink is unlink/unlinkat without AT_REMOVEDIR.
func (v *VFS) Unlink(ctx Context, wk *Walk) error {
	p, err := v.ResolveParent(ctx, wk)
	if err != nil {
		return err
	}
	if p.Name == "." || p.Name == ".." {
		return unix.EISDIR
	}
	dir := p.Dir.Dentry
	dir.dirMu.Lock()
	defer dir.dirMu.Unlock()
	c, a, err := v.removeChecks(ctx, p.Dir, p.Name)
	if err != nil {
		return err
	}
	if a.IsDir() {
		return unix.EISDIR
	}
	if p.TrailingSlash {
		return unix.ENOTDIR
	}
	if err := dir.inode.Unlink(ctx, p.Name); err != nil {
		return err
	}
	c.dead.Store(true)
	v.notifyRemove(ctx, dir, p.Name, c, false)
	v.dropChild(dir, p.Name)
	return nil
}

// Rmdir is rmdir/unlinkat(AT_REMOVEDIR).
func (v *VFS) Rmdir(ctx Context, wk *Walk) error {
	p, err := v.ResolveParent(ctx, wk)
	if err != nil {
		return err
	}
	switch p.Name {
	case ".":
		return unix.EINVAL
	case "..":
		return unix.ENOTEMPTY
	}
	dir := p.Dir.Dentry
	dir.dirMu.Lock()
	defer dir.dirMu.Unlock()
	c, a, err := v.removeChecks(ctx, p.Dir, p.Name)
	if err != nil {
		return err
	}
	if !a.IsDir() {
		return unix.ENOTDIR
	}
	if c == p.Dir.Mount.root {
		return unix.EBUSY
	}
	c.dirMu.Lock()
	err = dir.inode.Rmdir(ctx, p.Name)
	if err == nil {
		c.dead.Store(true)
	}
	c.dirMu.Unlock()
	if err != nil {
		return err
	}
	v.notifyRemove(ctx, dir, p.Name, c, true)
	v.dropChild(dir, p.Name)
	return nil
}

// Rename is rename/renameat/renameat2.
func (v *VFS) Rename(ctx Context, oldWk, newWk *Walk, flags uint32) error {
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 ||
		flags&unix.RENAME_NOREPLACE != 0 && flags&unix.RENAME_EXCHANGE != 0 {
		return unix.EINVAL
	}
	op, err := v.ResolveParent(ctx, oldWk)
	if err != nil {
		return err
	}
	np, err := v.ResolveParent(ctx, newWk)
	if err != nil {
		return err
	}
	for _, n := range []string{op.Name, np.Name} {
		if n == "." || n == ".." {
			return unix.EBUSY
		}
	}
	if op.Dir.Mount != np.Dir.Mount {
		return unix.EXDEV
	}
	v.renameMu.Lock()
	defer v.renameMu.Unlock()
	od, nd := op.Dir.Dentry, np.Dir.Dentry
	od.dirMu.Lock()
	defer od.dirMu.Unlock()
	if nd != od {
		nd.dirMu.Lock()
		defer nd.dirMu.Unlock()
	}
	if od.Dead() || nd.Dead() {
		return unix.ENOENT
	}
	src, sa, err := v.removeChecks(ctx, op.Dir, op.Name)
	if err != nil {
		return err
	}
	if (op.TrailingSlash || np.TrailingSlash) && !sa.IsDir() {
		return unix.ENOTDIR
	}
	if err := v.mayCreate(ctx, np.Dir); err != nil {
		return err
	}
	dst, derr := v.lookupLocked(ctx, nd, np.Name)
	if derr != nil && derr != unix.ENOENT {
		return derr
	}
	if dst != nil {
		if flags&unix.RENAME_NOREPLACE != 0 {
			return unix.EEXIST
		}
		if dst == src {
			return nil
		}
		if dst.mounts.Load() > 0 {
			return unix.EBUSY
		}
		da, err := stat(ctx, dst)
		if err != nil {
			return err
		}
		dira, err := stat(ctx, nd)
		if err != nil {
			return err
		}
		if err := checkSticky(ctx.FSCredentials(), &dira, &da); err != nil {
			return err
		}
		if flags&unix.RENAME_EXCHANGE == 0 {
			if sa.IsDir() && !da.IsDir() {
				return unix.ENOTDIR
			}
			if !sa.IsDir() && da.IsDir() {
				return unix.EISDIR
			}
		}
	} else if flags&unix.RENAME_EXCHANGE != 0 {
		return unix.ENOENT
	}
	// A directory may not move into its own subtree.
	if sa.IsDir() && v.isAncestorLocked(src, nd) {
		return unix.EINVAL
	}
	if flags&unix.RENAME_EXCHANGE != 0 && dst != nil && v.isAncestorLocked(dst, od) {
		return unix.EINVAL
	}
	if err := od.inode.Rename(ctx, op.Name, nd.inode, np.Name, flags); err != nil {
		return err
	}
	od.removeChild(op.Name)
	nd.removeChild(np.Name)
	if dst != nil && flags&unix.RENAME_EXCHANGE != 0 {
		dst.name, dst.parent = op.Name, od
		od.addChild(dst)
	} else if dst != nil {
		dst.dead.Store(true)
		if r, ok := dst.inode.(Releaser); ok {
			r.Release()
		}
	}
	src.name, src.parent = np.Name, nd
	nd.addChild(src)
	v.notifyRename(ctx, od, op.Name, nd, np.Name, src, dst, flags)
	return nil
}

// Readlink is readlink/readlinkat.
func (v *VFS) Readlink(ctx Context, wk *Walk) (string, error) {
	wk.FollowFinal = false
	vd, err := v.Resolve(ctx, wk)
	if err != nil {
		return "", err
	}
	a, err := stat(ctx, vd.Dentry)
	if err != nil {
		return "", err
	}
	if a.Type() != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	return vd.Dentry.inode.Readlink(ctx)
}

// Access is access/faccessat/faccessat2 with mode already checked; creds
// are the ones to check with (real or effective ids).
func (v *VFS) Access(ctx Context, wk *Walk, mode int, creds *Credentials) error {
	vd, err := v.Resolve(ctx, wk)
	if err != nil {
		return err
	}
	if mode == unix.F_OK {
		return nil
	}
	a, err := stat(ctx, vd.Dentry)
	if err != nil {
		return err
	}
	if mode&unix.W_OK != 0 && vd.Mount.ReadOnly() && (a.Type() == unix.S_IFREG || a.IsDir() || a.Type() == unix.S_IFLNK) {
		return unix.EROFS
	}
	return CheckPermission(creds, &a, mode&7)
}

// SetAttrVD applies req to vd after Linux's permission rules for chmod,
// chown, truncate and utimes. timesNow says utimensat asked for the
// current time (which needs only write access).
func (v *VFS) SetAttrVD(ctx Context, vd VirtualDentry, req *SetAttr, timesNow bool) error {
	c := ctx.FSCredentials()
	a, err := stat(ctx, vd.Dentry)
	if err != nil {
		return err
	}
	if vd.Mount.ReadOnly() {
		return unix.EROFS
	}
	if req.Mask&SetSize != 0 {
		if a.IsDir() {
			return unix.EISDIR
		}
		if a.Type() != unix.S_IFREG {
			return unix.EINVAL
		}
		if req.Size < 0 {
			return unix.EINVAL
		}
		if err := CheckPermission(c, &a, MayWrite); err != nil {
			return err
		}
	}
	if req.Mask&(SetMode) != 0 {
		if !IsOwnerOrCapable(c, &a) {
			return unix.EPERM
		}
		// A non-member without CAP_FSETID loses setgid on chmod.
		if req.Mode&unix.S_ISGID != 0 && !c.InGroup(a.GID) && !c.Caps.Has(CapFsetid) {
			req.Mode &^= unix.S_ISGID
		}
	}
	if req.Mask&(SetUID|SetGID) != 0 {
		uidChange := req.Mask&SetUID != 0 && req.UID != a.UID
		gidChange := req.Mask&SetGID != 0 && req.GID != a.GID
		if !c.Caps.Has(CapChown) {
			if uidChange {
				return unix.EPERM
			}
			if gidChange && (c.UID != a.UID || !c.InGroup(req.GID)) {
				return unix.EPERM
			}
		}
		// chown clears setuid, and setgid if group-executable, for
		// non-directories.
		if !a.IsDir() && a.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			keep := a.Mode & 0o7777 &^ unix.S_ISUID
			if a.Mode&unix.S_IXGRP != 0 {
				keep &^= unix.S_ISGID
			}
			if keep != a.Mode&0o7777 {
				req.Mask |= SetMode
				req.Mode = keep
			}
		}
	}
	if req.Mask&(SetAtime|SetMtime) != 0 {
		if timesNow {
			if !IsOwnerOrCapable(c, &a) && CheckPermission(c, &a, MayWrite) != nil {
				return unix.EACCES
			}
		} else if !IsOwnerOrCapable(c, &a) {
			return unix.EPERM
		}
	}
	if err := vd.Dentry.inode.SetAttr(ctx, req); err != nil {
		return err
	}
	v.notifySetAttr(ctx, vd, req.Mask)
	return nil
}

// Chdir checks that vd is a searchable directory.
func (v *VFS) CheckChdir(ctx Context, vd VirtualDentry) error {
	a, err := stat(ctx, vd.Dentry)
	if err != nil {
		return err
	}
	if !a.IsDir() {
		return unix.ENOTDIR
	}
	return CheckPermission(ctx.FSCredentials(), &a, MayExec)
}

// StatFS is statfs of the filesystem holding vd.
func (v *VFS) StatFS(ctx Context, vd VirtualDentry) (unix.Statfs_t, error) {
	st, err := vd.Dentry.inode.StatFS(ctx)
	if err != nil {
		return st, err
	}
	st.Flags = int64(vd.Mount.Flags()) | 0x20 // ST_VALID
	return st, nil
}

// Mount attaches a new filesystem of type fsType at target (mount(2)).
func (v *VFS) Mount(ctx Context, target VirtualDentry, source, fsType string, flags uint64, data string) error {
	if !ctx.FSCredentials().Caps.Has(CapSysAdmin) {
		return unix.EPERM
	}
	mk := v.filesystemType(fsType)
	if mk == nil {
		return unix.ENODEV
	}
	fs, err := mk(ctx, source, flags, data)
	if err != nil {
		return err
	}
	sb := v.NewSuperblock(fs)
	if target.Mount.ns == nil {
		return unix.EINVAL
	}
	m, err := target.Mount.ns.Attach(target, sb, sb.root, source, flags&(MountReadOnly|MountNoSuid|MountNoDev|MountNoExec|MountNoAtime))
	if err == nil {
		m.Data = data
	}
	return err
}

// BindMount attaches src's subtree at target (MS_BIND).
func (v *VFS) BindMount(ctx Context, src, target VirtualDentry, flags uint64) error {
	if !ctx.FSCredentials().Caps.Has(CapSysAdmin) {
		return unix.EPERM
	}
	if target.Mount.ns == nil {
		return unix.EINVAL
	}
	_, err := target.Mount.ns.Attach(target, src.Dentry.sb, src.Dentry, src.Mount.Source, flags&(MountReadOnly|MountNoSuid|MountNoDev|MountNoExec|MountNoAtime))
	return err
}

// Unmount detaches the mount whose root vd is (umount2).
func (v *VFS) Unmount(ctx Context, vd VirtualDentry, lazy bool) error {
	if !ctx.FSCredentials().Caps.Has(CapSysAdmin) {
		return unix.EPERM
	}
	if vd.Dentry != vd.Mount.root {
		return unix.EINVAL
	}
	if vd.Mount.ns == nil {
		return unix.EINVAL
	}
	return vd.Mount.ns.Detach(vd.Mount, lazy)
}

// Remount changes an existing mount's flags (MS_REMOUNT).
func (v *VFS) Remount(ctx Context, vd VirtualDentry, flags uint64) error {
	if !ctx.FSCredentials().Caps.Has(CapSysAdmin) {
		return unix.EPERM
	}
	if vd.Dentry != vd.Mount.root {
		return unix.EINVAL
	}
	vd.Mount.flags.Store(flags & (MountReadOnly | MountNoSuid | MountNoDev | MountNoExec | MountNoAtime))
	return nil
}
