// Package devfs lays out /dev as a container sees it, in a directory of
// any writable filesystem (in practice a tmpfs mounted at /dev): the
// memory device nodes, /dev/tty, the pts and shm directories and the
// usual symlinks into /proc. The nodes are plain device nodes: opening
// one goes to whatever the VFS has registered for its numbers (package
// devices registers the memory devices). /dev/tty is made but, until the
// Sentry has terminals, nothing is registered for 5:0 here (devpts registers /dev/tty), so opening it fails
// with ENXIO as it does on Linux for a process without a controlling
// terminal.
package devfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Node is one entry of the layout.
type Node struct {
	Name string
	Mode uint32 // file type and permission bits
	Dev  uint64 // device number of a device node
	// Target is a symlink's target.
	Target string
}

// Layout is what Populate makes, in order.
var Layout = []Node{
	{Name: "null", Mode: unix.S_IFCHR | 0o666, Dev: unix.Mkdev(1, 3)},
	{Name: "zero", Mode: unix.S_IFCHR | 0o666, Dev: unix.Mkdev(1, 5)},
	{Name: "full", Mode: unix.S_IFCHR | 0o666, Dev: unix.Mkdev(1, 7)},
	{Name: "random", Mode: unix.S_IFCHR | 0o666, Dev: unix.Mkdev(1, 8)},
	{Name: "urandom", Mode: unix.S_IFCHR | 0o666, Dev: unix.Mkdev(1, 9)},
	{Name: "tty", Mode: unix.S_IFCHR | 0o666, Dev: unix.Mkdev(5, 0)},
	{Name: "pts", Mode: unix.S_IFDIR | 0o755},
	{Name: "shm", Mode: unix.S_IFDIR | 0o1777},
	{Name: "fd", Mode: unix.S_IFLNK | 0o777, Target: "/proc/self/fd"},
	{Name: "stdin", Mode: unix.S_IFLNK | 0o777, Target: "/proc/self/fd/0"},
	{Name: "stdout", Mode: unix.S_IFLNK | 0o777, Target: "/proc/self/fd/1"},
	{Name: "stderr", Mode: unix.S_IFLNK | 0o777, Target: "/proc/self/fd/2"},
	{Name: "ptmx", Mode: unix.S_IFLNK | 0o777, Target: "pts/ptmx"},
	{Name: "core", Mode: unix.S_IFLNK | 0o777, Target: "/proc/kcore"},
}

// Populate fills root, an empty writable directory, with Layout. Modes are
// set exactly (no umask): the caller acts as the container runtime does
// when it prepares /dev.
func Populate(ctx vfs.Context, root vfs.Inode) error {
	for _, n := range Layout {
		var err error
		switch n.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			var dir vfs.Inode
			if dir, err = root.Mkdir(ctx, n.Name, n.Mode&07777); err == nil {
				err = setMode(ctx, dir, n.Mode&07777)
			}
		case unix.S_IFLNK:
			_, err = root.Symlink(ctx, n.Name, n.Target)
		default:
			_, err = root.Mknod(ctx, n.Name, n.Mode, n.Dev)
		}
		if err != nil {
			return fmt.Errorf("devfs: making /dev/%s: %w", n.Name, err)
		}
	}
	return nil
}

// setMode makes sure of a directory's mode: a filesystem may keep only
// the permission bits of mkdir's mode, and shm needs its sticky bit.
func setMode(ctx vfs.Context, ino vfs.Inode, mode uint32) error {
	a, err := ino.Stat(ctx)
	if err != nil {
		return err
	}
	if a.Mode&07777 == mode {
		return nil
	}
	return ino.SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: mode})
}
