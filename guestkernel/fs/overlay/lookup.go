package overlay

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// stack is what one name resolves to across a directory's layers.
type stack struct {
	upper  vfs.Inode
	lowers []layer
	attr   vfs.Attr // the topmost file's
	ino    uint64
	origin bool
}

func (s *stack) release() {
	release(s.upper)
	for _, l := range s.lowers {
		release(l.in)
	}
}

// lookupStack resolves name in a directory whose upper directory is
// dirUpper (nil if none) and whose merged lower directories are
// dirLowers: the upper entry wins; a whiteout hides everything below; a
// non-directory ends the stack; directories merge down to the first
// opaque one.
func (fs *FS) lookupStack(ctx vfs.Context, dirUpper vfs.Inode, dirLowers []layer, name string) (stack, error) {
	mctx := fs.mctx(ctx)
	var st stack
	found := false
	if dirUpper != nil {
		c, err := dirUpper.Lookup(ctx, name)
		if err != nil && err != unix.ENOENT {
			return stack{}, err
		}
		if err == nil {
			a, err := c.Stat(ctx)
			if err != nil {
				release(c)
				return stack{}, err
			}
			if isWhiteout(&a) {
				release(c)
				return stack{}, unix.ENOENT
			}
			st.upper, st.attr, st.ino, found = c, a, mixIno(a.Ino, 0), true
			if !a.IsDir() {
				if ino, ok := originIno(mctx, c); ok {
					st.ino, st.origin = ino, true
				}
				return st, nil
			}
			if len(dirLowers) == 0 || hasFlag(mctx, c, xattrOpaque) {
				return st, nil
			}
		}
	}
	for k, l := range dirLowers {
		c, err := l.in.Lookup(ctx, name)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			st.release()
			return stack{}, err
		}
		a, err := c.Stat(ctx)
		if err != nil {
			release(c)
			st.release()
			return stack{}, err
		}
		if isWhiteout(&a) || found && !a.IsDir() {
			// Removed here, or a non-directory beneath a directory:
			// nothing further down shows.
			release(c)
			break
		}
		if !found {
			st.attr, found = a, true
		}
		if len(st.lowers) == 0 {
			st.ino, st.origin = mixIno(a.Ino, l.idx), true
		}
		st.lowers = append(st.lowers, layer{c, l.idx})
		if !a.IsDir() || k < len(dirLowers)-1 && hasFlag(mctx, c, xattrOpaque) {
			break
		}
	}
	if !found {
		return stack{}, unix.ENOENT
	}
	return st, nil
}

// newChild makes the inode of st, named name in d.
func (d *inode) newChild(name string, st stack) *inode {
	c := &inode{fs: d.fs, typ: st.attr.Type(), ino: st.ino, origin: st.origin && st.attr.Type() != unix.S_IFDIR, lowers: st.lowers}
	if st.upper != nil {
		c.setUpper(st.upper)
	}
	c.parent, c.name = d, name
	if c.isDir() {
		c.children = make(map[string]*inode)
	}
	return c
}

// insertLocked caches c, holding one reference (d.mu held).
func (d *inode) insertLocked(c *inode) {
	c.refs.Store(1)
	d.children[c.name] = c
	d.refs.Add(1)
}

// removeLocked forgets c, a child being removed or replaced (d.mu held).
// The caller drops d's reference for it with decRef once unlocked.
func (d *inode) removeLocked(c *inode) {
	if d.children[c.name] == c {
		delete(d.children, c.name)
	}
	c.setParent(nil, "")
	d.gen++
}

// Lookup finds name in the merged directory.
func (d *inode) Lookup(ctx vfs.Context, name string) (vfs.Inode, error) {
	c, err := d.getChild(ctx, name)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// getChild returns the inode of name with a reference the caller must
// drop (the VFS, by Release; the overlay itself, by decRef). The layers
// are looked up without d.mu held; a change of d meanwhile (gen) means
// looking again.
func (d *inode) getChild(ctx vfs.Context, name string) (*inode, error) {
	if !d.isDir() {
		return nil, unix.ENOTDIR
	}
	if isPrivateName(name) {
		return nil, unix.ENOENT
	}
	for {
		d.mu.Lock()
		if d.dead {
			d.mu.Unlock()
			return nil, unix.ENOENT
		}
		if c := d.children[name]; c != nil {
			c.refs.Add(1)
			d.mu.Unlock()
			return c, nil
		}
		gen, up := d.gen, d.getUpper()
		d.mu.Unlock()

		st, err := d.fs.lookupStack(ctx, up, d.lowers, name)

		d.mu.Lock()
		if d.gen != gen || d.getUpper() != up || d.children[name] != nil {
			d.mu.Unlock()
			if err == nil {
				st.release()
			}
			continue
		}
		if err != nil {
			d.mu.Unlock()
			return nil, err
		}
		c := d.newChild(name, st)
		d.insertLocked(c)
		d.mu.Unlock()
		return c, nil
	}
}

// lowerPositive reports whether a lower layer of d shows name (so that
// removing it from the upper layer needs a whiteout).
func (d *inode) lowerPositive(ctx vfs.Context, name string) (bool, error) {
	for _, l := range d.lowers {
		c, err := l.in.Lookup(ctx, name)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return false, err
		}
		a, err := c.Stat(ctx)
		release(c)
		if err != nil {
			return false, err
		}
		return !isWhiteout(&a), nil
	}
	return false, nil
}

// isWhiteoutAt reports whether name in dir is a whiteout.
func isWhiteoutAt(ctx vfs.Context, dir vfs.Inode, name string) (bool, error) {
	c, err := dir.Lookup(ctx, name)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	a, err := c.Stat(ctx)
	release(c)
	if err != nil {
		return false, err
	}
	return isWhiteout(&a), nil
}

// isAncestor reports whether a is x or above it (fs.renameMu held, so
// no directory moves meanwhile).
func isAncestor(a, x *inode) bool {
	for p := x; p != nil; p, _ = p.parentName() {
		if p == a {
			return true
		}
	}
	return false
}
