package vfs

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Mount flags (the per-mount ones of mount(2)).
const (
	MountReadOnly = unix.MS_RDONLY
	MountNoSuid   = unix.MS_NOSUID
	MountNoDev    = unix.MS_NODEV
	MountNoExec   = unix.MS_NOEXEC
	MountNoAtime  = unix.MS_NOATIME
)

// Mount is one filesystem (or a subtree of one, for bind mounts) attached
// at a mount point.
type Mount struct {
	ID     int
	sb     *Superblock
	root   *Dentry
	flags  atomic.Uint64
	Source string // what /proc/mounts shows in the first column
	Data   string // filesystem options for /proc/mounts

	// openFiles counts open descriptions through the mount: umount of a
	// busy mount fails with EBUSY unless lazy.
	openFiles atomic.Int64

	// Set while attached, under the namespace lock.
	ns     *MountNamespace
	parent *Mount
	point  *Dentry
}

// Namespace is the namespace m is attached in (nil once detached).
func (m *Mount) Namespace() *MountNamespace { return m.ns }

// ReadOnly reports a read-only mount.
func (m *Mount) ReadOnly() bool { return m.flags.Load()&MountReadOnly != 0 }

// Flags are the mount's flags.
func (m *Mount) Flags() uint64 { return m.flags.Load() }

// Root is the mount's root.
func (m *Mount) Root() VirtualDentry { return VirtualDentry{m, m.root} }

// Superblock is the mounted filesystem.
func (m *Mount) Superblock() *Superblock { return m.sb }

type mountKey struct {
	parent *Mount
	point  *Dentry
}

// MountNamespace is a tree of mounts. Tasks share one until unshare or
// clone(CLONE_NEWNS) copies it.
type MountNamespace struct {
	v    *VFS
	mu   sync.RWMutex
	root *Mount
	// children maps a mount point to the mounts stacked on it, last on top.
	children map[mountKey][]*Mount
}

// Root is the namespace's root mount.
func (ns *MountNamespace) Root() VirtualDentry {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.root.Root()
}

// NewMountNamespace makes a namespace whose root is fs.
func (v *VFS) NewMountNamespace(sb *Superblock, source string, flags uint64) *MountNamespace {
	ns := &MountNamespace{v: v, children: make(map[mountKey][]*Mount)}
	ns.root = v.newMount(sb, sb.root, source, flags)
	ns.root.ns = ns
	return ns
}

func (v *VFS) newMount(sb *Superblock, root *Dentry, source string, flags uint64) *Mount {
	sb.refs.Add(1)
	m := &Mount{ID: int(v.nextMountID.Add(1)), sb: sb, root: root, Source: source}
	m.flags.Store(flags)
	return m
}

// top returns the mount stacked on (parent, point), if any.
func (ns *MountNamespace) top(parent *Mount, point *Dentry) *Mount {
	if point.mounts.Load() == 0 {
		return nil
	}
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	stack := ns.children[mountKey{parent, point}]
	if len(stack) == 0 {
		return nil
	}
	return stack[len(stack)-1]
}

// Attach mounts sb's subtree root at vd.
func (ns *MountNamespace) Attach(vd VirtualDentry, sb *Superblock, root *Dentry, source string, flags uint64) (*Mount, error) {
	if vd.Dentry.Dead() {
		return nil, unix.ENOENT
	}
	m := ns.v.newMount(sb, root, source, flags)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	m.ns, m.parent, m.point = ns, vd.Mount, vd.Dentry
	k := mountKey{vd.Mount, vd.Dentry}
	ns.children[k] = append(ns.children[k], m)
	vd.Dentry.mounts.Add(1)
	return m, nil
}

// Detach unmounts m. Without lazy, a mount with mounts beneath it is busy.
func (ns *MountNamespace) Detach(m *Mount, lazy bool) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if m.ns != ns || m.parent == nil {
		return unix.EINVAL
	}
	if !lazy {
		if m.openFiles.Load() > 0 {
			return unix.EBUSY
		}
		for k, stack := range ns.children {
			if k.parent == m && len(stack) > 0 {
				return unix.EBUSY
			}
		}
	}
	ns.detachLocked(m)
	return nil
}

func (ns *MountNamespace) detachLocked(m *Mount) {
	for k, stack := range ns.children {
		if k.parent == m {
			for _, c := range stack {
				ns.detachLocked(c)
			}
		}
	}
	k := mountKey{m.parent, m.point}
	stack := ns.children[k]
	for i, c := range stack {
		if c == m {
			ns.children[k] = append(stack[:i:i], stack[i+1:]...)
			break
		}
	}
	if len(ns.children[k]) == 0 {
		delete(ns.children, k)
	}
	m.point.mounts.Add(-1)
	m.ns = nil
	if m.sb.refs.Add(-1) == 0 {
		m.sb.FS.Release()
	}
}

// Mounts lists the namespace's mounts, parents before children, for
// /proc/PID/mounts and mountinfo.
func (ns *MountNamespace) Mounts() []*Mount {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	var out []*Mount
	var walk func(m *Mount)
	walk = func(m *Mount) {
		out = append(out, m)
		var kids []*Mount
		for k, stack := range ns.children {
			if k.parent == m {
				kids = append(kids, stack...)
			}
		}
		sort.Slice(kids, func(i, j int) bool { return kids[i].ID < kids[j].ID })
		for _, c := range kids {
			walk(c)
		}
	}
	walk(ns.root)
	return out
}

// Parent returns where m is attached (its parent mount and mount point),
// or false for the namespace root.
func (m *Mount) Parent() (VirtualDentry, bool) {
	if m.parent == nil {
		return VirtualDentry{}, false
	}
	return VirtualDentry{m.parent, m.point}, true
}

// FlagString renders flags as /proc/mounts does ("rw,nosuid,...").
func FlagString(flags uint64) string {
	var s []string
	if flags&MountReadOnly != 0 {
		s = append(s, "ro")
	} else {
		s = append(s, "rw")
	}
	for _, f := range []struct {
		bit  uint64
		name string
	}{{MountNoSuid, "nosuid"}, {MountNoDev, "nodev"}, {MountNoExec, "noexec"}, {MountNoAtime, "noatime"}} {
		if flags&f.bit != 0 {
			s = append(s, f.name)
		}
	}
	return strings.Join(s, ",")
}

// NewDetachedMount makes a mount of sb attached nowhere: the home of files
// with no path (memfds), so that they have a VirtualDentry like any file.
func (v *VFS) NewDetachedMount(sb *Superblock, source string) *Mount {
	return v.newMount(sb, sb.root, source, 0)
}

// NewUnnamedFile wraps f, opened from inode, in a description whose path
// is name under m's root, marked deleted (it has no name anyone can walk
// to): /proc/PID/fd shows "/NAME (deleted)" as for a Linux memfd.
func (v *VFS) NewUnnamedFile(m *Mount, inode Inode, name string, f File) *FileDescription {
	d := newDentry(m.sb, inode, name, m.root)
	d.dead.Store(true)
	return v.newPathDescription(VirtualDentry{m, d}, f, false)
}

// PivotRoot is pivot_root(2): newRoot (the root of a mount other than the
// namespace root) becomes the namespace's root, and the old root mount is
// attached at putOld, which must be at or under newRoot.
func (v *VFS) PivotRoot(ctx Context, root, newRoot, putOld VirtualDentry) error {
	if !ctx.FSCredentials().Caps.Has(CapSysAdmin) {
		return unix.EPERM
	}
	ns := root.Mount.ns
	if ns == nil || newRoot.Mount.ns != ns || putOld.Mount.ns != ns {
		return unix.EINVAL
	}
	for _, vd := range []VirtualDentry{newRoot, putOld} {
		a, err := stat(ctx, vd.Dentry)
		if err != nil {
			return err
		}
		if !a.IsDir() {
			return unix.ENOTDIR
		}
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	old := ns.root
	nm := newRoot.Mount
	if root.Dentry != old.root || root.Mount != old || newRoot.Dentry != nm.root || nm == old || nm.parent == nil {
		return unix.EINVAL
	}
	// putOld must be reachable from newRoot.
	v.renameMu.RLock()
	under := false
	for cur := putOld; ; {
		if cur.Mount == nm && v.isAncestorLocked(nm.root, cur.Dentry) {
			under = true
			break
		}
		if cur.Mount.parent == nil {
			break
		}
		cur = VirtualDentry{cur.Mount.parent, cur.Mount.point}
	}
	v.renameMu.RUnlock()
	if !under {
		return unix.EINVAL
	}
	// Detach the new root from where it hangs...
	k := mountKey{nm.parent, nm.point}
	stack := ns.children[k]
	for i, c := range stack {
		if c == nm {
			ns.children[k] = append(stack[:i:i], stack[i+1:]...)
			break
		}
	}
	if len(ns.children[k]) == 0 {
		delete(ns.children, k)
	}
	nm.point.mounts.Add(-1)
	nm.parent, nm.point = nil, nil
	ns.root = nm
	// ...and hang the old root at putOld.
	old.parent, old.point = putOld.Mount, putOld.Dentry
	pk := mountKey{putOld.Mount, putOld.Dentry}
	ns.children[pk] = append(ns.children[pk], old)
	putOld.Dentry.mounts.Add(1)
	return nil
}
