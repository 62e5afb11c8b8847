package vfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// Limits of path resolution, as Linux's.
const (
	PathMax     = 4096 // including the NUL
	NameMax     = 255
	maxSymlinks = 40
)

// openat2 RESOLVE_* flags.
const (
	ResolveNoXdev       = 0x01
	ResolveNoMagiclinks = 0x02
	ResolveNoSymlinks   = 0x04
	ResolveBeneath      = 0x08
	ResolveInRoot       = 0x10
	ResolveCached       = 0x20
)

// Walk is one path resolution request.
type Walk struct {
	Root  VirtualDentry // the task's root: ".." stops here, "/" starts here
	Start VirtualDentry // where a relative path starts (cwd or dirfd)
	Path  string
	// FollowFinal follows a symlink in the last component.
	FollowFinal bool
	// Resolve are openat2's RESOLVE_* flags.
	Resolve uint64
}

// walker is the state of one resolution.
type walker struct {
	v        *VFS
	ctx      Context
	ns       *MountNamespace
	root     VirtualDentry
	start    VirtualDentry
	cur      VirtualDentry
	rest     string
	resolve  uint64
	symlinks int
}

func (w *walker) init(v *VFS, ctx Context, wk *Walk) error {
	if len(wk.Path) >= PathMax {
		return unix.ENAMETOOLONG
	}
	*w = walker{v: v, ctx: ctx, root: wk.Root, start: wk.Start, cur: wk.Start, rest: wk.Path, resolve: wk.Resolve}
	if w.resolve&ResolveInRoot != 0 {
		w.root = wk.Start
	}
	if w.root.Mount != nil {
		w.ns = w.root.Mount.ns
	}
	if strings.HasPrefix(w.rest, "/") {
		if w.resolve&ResolveBeneath != 0 {
			return unix.EXDEV
		}
		w.cur = w.root
	}
	return nil
}

// next pops the next component other than "." (which needs only search
// permission on the directory); "" when the path is used up.
func (w *walker) next() (string, error) {
	for {
		c := w.nextRaw()
		if c != "." {
			return c, nil
		}
		if err := w.search(); err != nil {
			return "", err
		}
	}
}

// last reports whether the path has no component after the one popped.
func (w *walker) last() bool { return strings.Trim(w.rest, "/") == "" }

func (w *walker) checkDir() error {
	a, err := w.cur.Dentry.inode.Stat(w.ctx)
	if err != nil {
		return err
	}
	if !a.IsDir() {
		return unix.ENOTDIR
	}
	return nil
}

// search checks that cur is a directory the caller may search.
func (w *walker) search() error {
	a, err := w.cur.Dentry.inode.Stat(w.ctx)
	if err != nil {
		return err
	}
	if !a.IsDir() {
		return unix.ENOTDIR
	}
	return CheckPermission(w.ctx.FSCredentials(), &a, MayExec)
}

// dotdot moves to the parent, crossing mounts upwards and never above the
// root.
func (w *walker) dotdot() error {
	if w.resolve&ResolveBeneath != 0 && w.cur == w.start {
		return unix.EXDEV
	}
	for {
		if w.cur == w.root {
			return nil
		}
		if w.cur.Dentry != w.cur.Mount.root {
			break
		}
		parent, ok := w.cur.Mount.Parent()
		if !ok {
			return nil // the namespace root
		}
		if w.resolve&ResolveNoXdev != 0 {
			return unix.EXDEV
		}
		w.cur = parent
	}
	w.v.renameMu.RLock()
	p := w.cur.Dentry.parent
	w.v.renameMu.RUnlock()
	if p != nil {
		w.cur.Dentry = p
	}
	w.crossMounts()
	return nil
}

// crossMounts goes down into whatever is mounted on cur.
func (w *walker) crossMounts() bool {
	crossed := false
	for w.ns != nil {
		m := w.ns.top(w.cur.Mount, w.cur.Dentry)
		if m == nil {
			break
		}
		w.cur = VirtualDentry{m, m.root}
		crossed = true
	}
	return crossed
}

// lookup finds name in cur, from the cache or the filesystem.
func (v *VFS) lookup(ctx Context, dir *Dentry, name string) (*Dentry, error) {
	if len(name) > NameMax {
		return nil, unix.ENAMETOOLONG
	}
	if c := dir.cachedChild(name); c != nil {
		if rv, ok := dir.inode.(Revalidator); !ok || rv.Revalidate(ctx, name, c.inode) {
			return c, nil
		}
		v.dropChild(dir, name)
	}
	dir.dirMu.Lock()
	defer dir.dirMu.Unlock()
	if c := dir.cachedChild(name); c != nil {
		return c, nil
	}
	if dir.Dead() {
		return nil, unix.ENOENT
	}
	inode, err := dir.inode.Lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	c := newDentry(dir.sb, inode, name, dir)
	dir.addChild(c)
	return c, nil
}

func (v *VFS) dropChild(dir *Dentry, name string) {
	if c := dir.removeChild(name); c != nil && c.mounts.Load() == 0 {
		if r, ok := c.inode.(Releaser); ok {
			r.Release()
		}
	}
}

// step resolves one component (not "." or "..") and follows a symlink if
// follow says so. It returns with w.cur at the result.
func (w *walker) step(name string, follow bool) error {
	if err := w.search(); err != nil {
		return err
	}
	child, err := w.v.lookup(w.ctx, w.cur.Dentry, name)
	if err != nil {
		return err
	}
	next := VirtualDentry{w.cur.Mount, child}
	saved := w.cur
	w.cur = next
	if w.crossMounts() && w.resolve&ResolveNoXdev != 0 {
		return unix.EXDEV
	}
	if !follow {
		return nil
	}
	a, err := w.cur.Dentry.inode.Stat(w.ctx)
	if err != nil {
		return err
	}
	if a.Type() != unix.S_IFLNK {
		return nil
	}
	return w.followLink(saved)
}

// followLink replaces cur (a symlink found in dir) with its target.
func (w *walker) followLink(dir VirtualDentry) error {
	if w.resolve&ResolveNoSymlinks != 0 {
		return unix.ELOOP
	}
	w.symlinks++
	if w.symlinks > maxSymlinks {
		return unix.ELOOP
	}
	if ml, ok := w.cur.Dentry.inode.(MagicLink); ok {
		if w.resolve&(ResolveNoMagiclinks|ResolveBeneath|ResolveInRoot) != 0 {
			return unix.ELOOP
		}
		target, err := ml.Follow(w.ctx)
		if err != nil {
			return err
		}
		w.cur = target
		return nil
	}
	target, err := w.cur.Dentry.inode.Readlink(w.ctx)
	if err != nil {
		return err
	}
	if target == "" {
		return unix.ENOENT
	}
	if len(target)+len(w.rest) >= PathMax {
		return unix.ENAMETOOLONG
	}
	w.rest = target + "/" + w.rest
	if strings.HasPrefix(target, "/") {
		if w.resolve&ResolveBeneath != 0 {
			return unix.EXDEV
		}
		w.cur = w.root
		return nil
	}
	w.cur = dir
	return nil
}

// Resolve walks wk.Path to the object it names.
func (v *VFS) Resolve(ctx Context, wk *Walk) (VirtualDentry, error) {
	var w walker
	if err := w.init(v, ctx, wk); err != nil {
		return VirtualDentry{}, err
	}
	if wk.Path == "" {
		return VirtualDentry{}, unix.ENOENT
	}
	mustDir := strings.HasSuffix(wk.Path, "/")
	for {
		name, err := w.next()
		if err != nil {
			return VirtualDentry{}, err
		}
		if name == "" {
			break
		}
		if name == ".." {
			if err := w.search(); err != nil {
				return VirtualDentry{}, err
			}
			if err := w.dotdot(); err != nil {
				return VirtualDentry{}, err
			}
			continue
		}
		follow := !w.last() || wk.FollowFinal || mustDir
		if err := w.step(name, follow); err != nil {
			return VirtualDentry{}, err
		}
	}
	if mustDir {
		if err := w.checkDir(); err != nil {
			return VirtualDentry{}, err
		}
	}
	return w.cur, nil
}

// Parent is the result of resolving all but the last component.
type Parent struct {
	Dir  VirtualDentry
	Name string // the last component; "." or ".." if the path ends so
	// TrailingSlash: the path ended in "/" (the name must be a directory).
	TrailingSlash bool
}

// ResolveParent walks to the directory holding the path's last
// component. A path of "/" (or one that ends in "." or "..") gives that
// component as Name; callers creating or removing refuse those.
func (v *VFS) ResolveParent(ctx Context, wk *Walk) (Parent, error) {
	var w walker
	if err := w.init(v, ctx, wk); err != nil {
		return Parent{}, err
	}
	if wk.Path == "" {
		return Parent{}, unix.ENOENT
	}
	p := Parent{TrailingSlash: strings.HasSuffix(wk.Path, "/")}
	for {
		name := w.nextRaw()
		if name == "" {
			// The path was "/" or only slashes.
			p.Dir, p.Name = w.cur, "."
			return p, nil
		}
		if w.last() {
			if err := w.search(); err != nil {
				return Parent{}, err
			}
			if len(name) > NameMax {
				return Parent{}, unix.ENAMETOOLONG
			}
			p.Dir, p.Name = w.cur, name
			return p, nil
		}
		switch name {
		case ".":
			if err := w.search(); err != nil {
				return Parent{}, err
			}
		case "..":
			if err := w.search(); err != nil {
				return Parent{}, err
			}
			if err := w.dotdot(); err != nil {
				return Parent{}, err
			}
		default:
			if err := w.step(name, true); err != nil {
				return Parent{}, err
			}
		}
	}
}

// nextRaw pops the next component, "." included.
func (w *walker) nextRaw() string {
	w.rest = strings.TrimLeft(w.rest, "/")
	if w.rest == "" {
		return ""
	}
	i := strings.IndexByte(w.rest, '/')
	if i < 0 {
		c := w.rest
		w.rest = ""
		return c
	}
	c := w.rest[:i]
	w.rest = w.rest[i:]
	return c
}

// PathOf renders vd as an absolute path seen from root, as getcwd and
// /proc/PID/fd links do. A dentry whose name was removed gets Linux's
// " (deleted)" suffix; one outside root's tree is rendered from its own
// mount namespace root.
func (v *VFS) PathOf(root, vd VirtualDentry) string {
	v.renameMu.RLock()
	defer v.renameMu.RUnlock()
	var parts []string
	cur := vd
	for cur != root {
		if cur.Dentry == cur.Mount.root {
			parent, ok := cur.Mount.Parent()
			if !ok {
				break
			}
			cur = parent
			continue
		}
		if cur.Dentry.parent == nil {
			break
		}
		parts = append(parts, cur.Dentry.name)
		cur.Dentry = cur.Dentry.parent
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	s := b.String()
	if s == "" {
		s = "/"
	}
	if vd.Dentry.Dead() {
		s += " (deleted)"
	}
	return s
}

// IsUnder reports whether vd lies within root's tree.
func (v *VFS) IsUnder(root, vd VirtualDentry) bool {
	v.renameMu.RLock()
	defer v.renameMu.RUnlock()
	cur := vd
	for {
		if cur == root {
			return true
		}
		if cur.Dentry == cur.Mount.root {
			parent, ok := cur.Mount.Parent()
			if !ok {
				return false
			}
			cur = parent
			continue
		}
		if cur.Dentry.parent == nil {
			return false
		}
		cur.Dentry = cur.Dentry.parent
	}
}

// IsAncestor reports whether a is b or one of b's ancestors in the same
// filesystem (rename must not move a directory into itself).
func (v *VFS) isAncestorLocked(a, b *Dentry) bool {
	for d := b; d != nil; d = d.parent {
		if d == a {
			return true
		}
	}
	return false
}
