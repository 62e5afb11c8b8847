// Package tmpfs is the Sentry's memory filesystem: /tmp and /dev/shm
// mounts, the upper layer of the root overlay, the backing store of devfs,
// and memfd_create. It follows Linux tmpfs: regular file data lives in the
// sandbox's memory file page by page (so mmap of a tmpfs file maps those
// very pages), directories and symlinks live in Go memory, and size and
// inode limits fail with ENOSPC.
//
// Locking: every inode has its own mutex; a directory's entries are under
// the directory's. Locks are taken parent before child, and a rename,
// which may hold two directories, takes the filesystem's rename mutex
// first and then orders them ancestor first. Nothing global is taken on
// the read/write path except the memory file's allocator when a write
// fills a hole.
//
// Reads do not update atime (as if mounted noatime): it saves taking the
// inode lock exclusively on every read, and tmpfs has no disk to spare.
package tmpfs

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Optional interfaces of this package, for the VFS and system calls to
// find with type assertions.
type (
	// TmpfileCreator is implemented by directories: O_TMPFILE. The new
	// inode has no name (nlink 0) and is freed when its last file closes,
	// unless Link gives it one first; if flags include O_EXCL, Link
	// refuses it with ENOENT as Linux does.
	TmpfileCreator interface {
		CreateTmpfile(ctx vfs.Context, mode uint32, flags int) (vfs.Inode, vfs.File, error)
	}
	// Sealer is implemented by every File of a regular tmpfs file:
	// F_GET_SEALS and F_ADD_SEALS. Files not made by memfd_create with
	// MFD_ALLOW_SEALING start sealed with F_SEAL_SEAL, as on Linux.
	Sealer interface {
		Seals() uint32
		AddSeals(seals uint32) error
	}
	// Namer is implemented by regular files' inodes and Files: Name is
	// what /proc shows for a file that has no path ("memfd:NAME", to
	// which the VFS adds "/" and " (deleted)"), or "" for one that has.
	Namer interface {
		Name() string
	}
)

// Options configure a tmpfs instance, as mount options do.
type Options struct {
	// Mode is the root directory's permission bits (07777); 0 means
	// 01777, Linux's default.
	Mode uint32
	// UID and GID own the root directory.
	UID, GID uint32
	// Size limits the bytes of file data (rounded up to pages); 0 is
	// unlimited. Writes past it fail with ENOSPC.
	Size int64
	// NrInodes limits the number of inodes; 0 is unlimited.
	NrInodes int64
}

// FS is one tmpfs instance.
type FS struct {
	mf   *memfile.File
	root *dir
	dev  atomic.Uint64

	nextIno   atomic.Uint64
	maxPages  int64
	usedPages atomic.Int64
	maxInodes int64
	inodes    atomic.Int64

	// renameMu serialises renames, so that the ancestry of directories
	// (dir.parent) is stable while a rename orders its locks by it.
	renameMu sync.Mutex
	released atomic.Bool
}

var _ vfs.Filesystem = (*FS)(nil)

// New makes an empty tmpfs whose file data lives in mf.
func New(mf *memfile.File, opts Options) *FS {
	fs := &FS{
		mf:        mf,
		maxPages:  int64(pageUp(uint64(max(opts.Size, 0))) >> pageShift),
		maxInodes: max(opts.NrInodes, 0),
	}
	mode := opts.Mode & 07777
	if mode == 0 {
		mode = 01777
	}
	fs.inodes.Add(1)
	d := &dir{}
	fs.initInode(&d.inode, nil, nil, unix.S_IFDIR|mode)
	d.uid, d.gid = opts.UID, opts.GID
	d.nlink = 2
	d.names = make(map[string]*dentry)
	fs.root = d
	return fs
}

// Type is the name /proc/mounts shows.
func (fs *FS) Type() string { return "tmpfs" }

// Root is the root directory.
func (fs *FS) Root() vfs.Inode { return fs.root }

// SetDev records the device number the VFS gave this instance, for Stat
// and for mmap's /proc/PID/maps naming.
func (fs *FS) SetDev(dev uint64) { fs.dev.Store(dev) }

// Dev is the device number set by SetDev.
func (fs *FS) Dev() uint64 { return fs.dev.Load() }

// Release drops every name in the filesystem, as unmounting Linux tmpfs
// does: files nobody holds open or mapped are freed now, the others when
// their last file closes and their last mapping goes.
func (fs *FS) Release() {
	if !fs.released.CompareAndSwap(false, true) {
		return
	}
	fs.renameMu.Lock()
	defer fs.renameMu.Unlock()
	r := fs.root
	r.mu.Lock()
	r.releaseTreeLocked()
	r.nlink = 0
	r.dead = true
	r.unlinkedLocked()
	r.mu.Unlock()
}

// UsedBytes is how much file data the instance holds (for tests and df).
func (fs *FS) UsedBytes() int64 { return fs.usedPages.Load() << pageShift }

// charge reserves n pages against the size limit. With partial it grants
// what is left if that is less than n; it returns the pages granted.
func (fs *FS) charge(n int64, partial bool) int64 {
	if fs.maxPages == 0 {
		fs.usedPages.Add(n)
		return n
	}
	for {
		cur := fs.usedPages.Load()
		g := n
		if avail := fs.maxPages - cur; g > avail {
			if !partial || avail <= 0 {
				return 0
			}
			g = avail
		}
		if fs.usedPages.CompareAndSwap(cur, cur+g) {
			return g
		}
	}
}

func (fs *FS) uncharge(n int64) { fs.usedPages.Add(-n) }

// chargeInode reserves an inode against NrInodes.
func (fs *FS) chargeInode() error {
	if fs.maxInodes == 0 {
		fs.inodes.Add(1)
		return nil
	}
	for {
		cur := fs.inodes.Load()
		if cur >= fs.maxInodes {
			return unix.ENOSPC
		}
		if fs.inodes.CompareAndSwap(cur, cur+1) {
			return nil
		}
	}
}

// freeMem gives file data back to the memory file and the size limit.
func (fs *FS) freeMem(freed []memRange) {
	var pages uint64
	for _, r := range freed {
		fs.mf.Free(r.off, r.length)
		pages += r.length >> pageShift
	}
	if pages != 0 {
		fs.uncharge(int64(pages))
	}
}

// statfs answers statfs(2). Without a size limit, capacity is the memory
// file's offset space: Linux reports 0 blocks there, which makes some
// programs think the disk is full.
func (fs *FS) statfs() unix.Statfs_t {
	blocks := uint64(fs.maxPages)
	if blocks == 0 {
		blocks = fs.mf.Size() >> pageShift
	}
	used := uint64(max(fs.usedPages.Load(), 0))
	free := blocks - min(used, blocks)
	files := uint64(fs.maxInodes)
	if files == 0 {
		files = 1 << 32
	}
	nodes := uint64(max(fs.inodes.Load(), 0))
	return unix.Statfs_t{
		Type:    unix.TMPFS_MAGIC,
		Bsize:   pageSize,
		Frsize:  pageSize,
		Blocks:  blocks,
		Bfree:   free,
		Bavail:  free,
		Files:   files,
		Ffree:   files - min(nodes, files),
		Namelen: 255,
	}
}
