// Package fsutil holds the inode plumbing shared by the Sentry's generated
// filesystems (procfs, sysfs): directories whose entries come from a
// function, files whose content is generated when they are opened,
// symlinks with computed targets, and magic links. The filesystems build
// their trees out of these and supply only the content.
package fsutil

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Filesystem magic numbers statfs reports.
const (
	ProcMagic  = 0x9fa0
	SysfsMagic = 0x62656572
)

// Node is what every generated inode carries: identity, type and mode,
// owner and time.
type Node struct {
	Ino  uint64
	Mode uint32 // permission bits; constructors add the file type
	UID  uint32
	GID  uint32
	// Owner, if set, gives the owner at each Stat instead of UID and GID
	// (procfs: the process's effective ids, which setuid changes).
	Owner func() (uid, gid uint32)
	// Time is the atime, mtime and ctime stat reports.
	Time unix.Timespec
	// Magic is statfs's f_type.
	Magic int64
	// Size is what stat reports as st_size (0 for generated files, as on
	// Linux; some directories report their entry count).
	Size func() int64
}

// NewNode returns a Node with the current time.
func NewNode(ino uint64, mode uint32, magic int64) Node {
	return Node{Ino: ino, Mode: mode, Magic: magic, Time: Now()}
}

// Now is the current time as a Timespec.
func Now() unix.Timespec { return unix.NsecToTimespec(time.Now().UnixNano()) }

// attr renders the node's attributes.
func (n *Node) attr(nlink uint64) vfs.Attr {
	a := vfs.Attr{
		Mode: n.Mode, Nlink: nlink, UID: n.UID, GID: n.GID, Ino: n.Ino,
		Blksize: 1024, Atime: n.Time, Mtime: n.Time, Ctime: n.Time,
	}
	if n.Owner != nil {
		a.UID, a.GID = n.Owner()
	}
	if n.Size != nil {
		a.Size = n.Size()
	}
	return a
}

func (n *Node) statFS() (unix.Statfs_t, error) {
	return unix.Statfs_t{Type: n.Magic, Bsize: 4096, Frsize: 4096, Namelen: 255}, nil
}

// setAttr is what generated inodes allow: size and time changes (from
// O_TRUNC, touch) succeed and change nothing, as on procfs; ownership and
// mode changes are refused.
func (n *Node) setAttr(req *vfs.SetAttr, writable bool) error {
	if req.Mask&(vfs.SetMode|vfs.SetUID|vfs.SetGID) != 0 {
		return unix.EPERM
	}
	if req.Mask&vfs.SetSize != 0 && !writable {
		return unix.EACCES
	}
	return nil
}

// Inos hands out inode numbers.
type Inos struct{ n atomic.Uint64 }

// Next returns a fresh inode number.
func (i *Inos) Next() uint64 { return i.n.Add(1) }

// DirentType is the DT_* of a mode.
func DirentType(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFLNK:
		return unix.DT_LNK
	case unix.S_IFCHR:
		return unix.DT_CHR
	case unix.S_IFBLK:
		return unix.DT_BLK
	case unix.S_IFIFO:
		return unix.DT_FIFO
	case unix.S_IFSOCK:
		return unix.DT_SOCK
	}
	return unix.DT_UNKNOWN
}

// Filesystem is a vfs.Filesystem around a generated tree.
type Filesystem struct {
	Name string
	Tree vfs.Inode
}

// Type implements vfs.Filesystem.
func (fs *Filesystem) Type() string { return fs.Name }

// Root implements vfs.Filesystem.
func (fs *Filesystem) Root() vfs.Inode { return fs.Tree }

// Release implements vfs.Filesystem: generated trees hold nothing.
func (fs *Filesystem) Release() {}

// The types implement the VFS interfaces they are meant to.
var (
	_ vfs.Inode       = (*Dir)(nil)
	_ vfs.Revalidator = (*Dir)(nil)
	_ vfs.Inode       = (*File)(nil)
	_ vfs.Inode       = (*Symlink)(nil)
	_ vfs.Inode       = (*MagicLink)(nil)
	_ vfs.MagicLink   = (*MagicLink)(nil)
	_ vfs.Filesystem  = (*Filesystem)(nil)
)
