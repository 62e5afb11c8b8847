package fsutil

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Entry is one child of a generated directory.
type Entry struct {
	Name  string
	Inode vfs.Inode
	// Off is the entry's position for IterDir cookies; entries must come
	// in increasing Off. 0 means its index in the list plus one. Lists
	// that change (pids, fds) use a key of the entry, so that an entry
	// going away between two getdents calls does not make the next one be
	// skipped.
	Off int64
}

// Dir is a read-only directory whose entries come from a function. Changes
// to it are refused (EACCES, as procfs and sysfs do).
type Dir struct {
	vfs.DirNoOps
	Node
	// Entries lists the children in listing order. It is called for
	// IterDir and, if Find is nil, for Lookup.
	Entries func(ctx vfs.Context) ([]Entry, error)
	// Find, if set, looks one child up (ENOENT if absent) without listing
	// them all.
	Find func(ctx vfs.Context, name string) (vfs.Inode, error)
	// Valid, if set, tells the VFS whether a cached child is still
	// name's (vfs.Revalidator): children that come and go (processes,
	// fds) must not be answered from the dentry cache once gone.
	Valid func(ctx vfs.Context, name string, child vfs.Inode) bool
}

// NewDir makes a directory with a fixed list of entries.
func NewDir(n Node, entries []Entry) *Dir {
	d := &Dir{Node: n}
	d.Mode = unix.S_IFDIR | n.Mode&07777
	d.Entries = func(vfs.Context) ([]Entry, error) { return entries, nil }
	return d
}

// NewLazyDir makes a directory with a fixed list of entries that build
// makes on first use: listing /proc makes a directory per process, most of
// which are never entered.
func NewLazyDir(n Node, build func() []Entry) *Dir {
	var once sync.Once
	var entries []Entry
	return NewDynamicDir(n, func(vfs.Context) ([]Entry, error) {
		once.Do(func() { entries = build() })
		return entries, nil
	})
}

// NewDynamicDir makes a directory whose entries list computes.
func NewDynamicDir(n Node, list func(ctx vfs.Context) ([]Entry, error)) *Dir {
	d := &Dir{Node: n, Entries: list}
	d.Mode = unix.S_IFDIR | n.Mode&07777
	return d
}

// Stat implements vfs.Inode.
func (d *Dir) Stat(vfs.Context) (vfs.Attr, error) { return d.attr(2), nil }

// SetAttr implements vfs.Inode.
func (d *Dir) SetAttr(_ vfs.Context, req *vfs.SetAttr) error { return d.setAttr(req, false) }

// StatFS implements vfs.Inode.
func (d *Dir) StatFS(vfs.Context) (unix.Statfs_t, error) { return d.statFS() }

// Lookup implements vfs.Inode.
func (d *Dir) Lookup(ctx vfs.Context, name string) (vfs.Inode, error) {
	if d.Find != nil {
		return d.Find(ctx, name)
	}
	entries, err := d.Entries(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Name == name {
			return e.Inode, nil
		}
	}
	return nil, unix.ENOENT
}

// IterDir implements vfs.Inode.
func (d *Dir) IterDir(ctx vfs.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	entries, err := d.Entries(ctx)
	if err != nil {
		return err
	}
	for i, e := range entries {
		off := e.Off
		if off == 0 {
			off = int64(i) + 1
		}
		if off <= cookie {
			continue
		}
		a, err := e.Inode.Stat(ctx)
		if err != nil {
			continue // gone while listing
		}
		if !emit(vfs.Dirent{Name: e.Name, Type: DirentType(a.Mode), Ino: a.Ino, Next: off}) {
			return nil
		}
	}
	return nil
}

// Revalidate implements vfs.Revalidator.
func (d *Dir) Revalidate(ctx vfs.Context, name string, child vfs.Inode) bool {
	return d.Valid == nil || d.Valid(ctx, name, child)
}
