// Package vfs owns the Sentry's virtual file system: the contract every
// filesystem implements (Filesystem, Inode, File), mounts and mount
// namespaces, the dentry cache and path resolution (symlinks, "..", mount
// crossings, permission checks), open file descriptions with their offsets
// and status flags, and the per-task filesystem context (root, cwd, umask).
// Filesystems (tmpfs, goferfs, overlay, devfs, procfs, sysfs) live in their
// own packages beneath guestkernel/fs and know nothing of tasks: they see
// the caller only through Context.
package vfs

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
)

// Credentials are what permission checks and new files' owners use: the
// filesystem uid/gid, supplementary groups and the file capabilities.
type Credentials struct {
	UID, GID uint32
	Groups   []uint32
	// Caps are the effective capabilities that matter to files.
	Caps Caps
}

// Caps is a set of Linux capabilities (bit n = capability n).
type Caps uint64

// Capabilities the VFS checks.
const (
	CapChown          = 0
	CapDACOverride    = 1
	CapDACReadSearch  = 2
	CapFowner         = 3
	CapFsetid         = 4
	CapLinuxImmutable = 9
	CapSysChroot      = 18
	CapSysAdmin       = 21
	CapMknod          = 27
)

// Has reports whether c holds capability n.
func (c Caps) Has(n int) bool { return c&(1<<n) != 0 }

// AllCaps is root's full set.
const AllCaps Caps = 1<<41 - 1

// Context is what filesystem code may ask of the task calling it.
type Context interface {
	// FSCredentials are the caller's filesystem credentials.
	FSCredentials() *Credentials
	// WaitHostFD blocks until host fd has any of events, or fails with
	// EINTR if a signal comes first; timeout < 0 waits forever.
	WaitHostFD(fd int, events int16, timeout time.Duration) error
	// MM is the caller's address space (ioctl arguments, mmap).
	MM() *mm.MM
}

// Attr is an inode's attributes, as stat reports them.
type Attr struct {
	Mode    uint32 // file type and permission bits
	Nlink   uint64
	UID     uint32
	GID     uint32
	Rdev    uint64
	Size    int64
	Blocks  int64 // 512-byte units
	Blksize int64
	Ino     uint64
	Dev     uint64 // filled in by the VFS from the filesystem
	Atime   unix.Timespec
	Mtime   unix.Timespec
	Ctime   unix.Timespec
	Btime   unix.Timespec // zero if unknown
}

// Type is Mode's file type bits.
func (a *Attr) Type() uint32 { return a.Mode & unix.S_IFMT }

// IsDir reports a directory.
func (a *Attr) IsDir() bool { return a.Type() == unix.S_IFDIR }

// SetAttr says which attributes to change (Mask, of the Set* bits) and to
// what. The VFS has already checked permissions; the filesystem applies.
type SetAttr struct {
	Mask  uint32
	Mode  uint32 // permission bits only (07777)
	UID   uint32
	GID   uint32
	Size  int64
	Atime unix.Timespec // UTIME_NOW is resolved by the VFS before the call
	Mtime unix.Timespec
}

// SetAttr mask bits.
const (
	SetMode uint32 = 1 << iota
	SetUID
	SetGID
	SetSize
	SetAtime
	SetMtime
)

// Dirent is one directory entry as IterDir emits it.
type Dirent struct {
	Name string
	Type uint8 // DT_* (unix.DT_REG, ...)
	Ino  uint64
	// Next is the cookie that resumes iteration after this entry.
	Next int64
}

// Filesystem is one mounted instance of a filesystem type.
type Filesystem interface {
	// Type is the name /proc/mounts shows ("tmpfs", "proc", ...).
	Type() string
	// Root is the root directory's inode.
	Root() Inode
	// Release is called when the last mount of the filesystem goes away.
	Release()
}

// Inode is one file of a filesystem. Methods that do not apply to the
// file's type fail (ENOTDIR for directory operations on a non-directory,
// EINVAL for Readlink on a non-symlink, and so on); embed NoOps to get
// those answers for free. The VFS serialises directory-changing calls on
// one directory and checks permissions before calling; names are single
// components, never "." or "..", at most 255 bytes.
type Inode interface {
	// Stat may be called with a nil Context (fstat of an open file).
	Stat(ctx Context) (Attr, error)
	SetAttr(ctx Context, req *SetAttr) error

	// Open opens a non-directory for I/O. flags are the open(2) flags
	// (O_ACCMODE, O_APPEND, O_NONBLOCK, O_DIRECT, O_TRUNC has been
	// applied through SetAttr already).
	Open(ctx Context, flags int) (File, error)

	// Directory operations.
	Lookup(ctx Context, name string) (Inode, error)
	// IterDir emits the entries after cookie (0: from the start) other
	// than "." and "..", which the VFS adds. emit returns false to stop.
	IterDir(ctx Context, cookie int64, emit func(Dirent) bool) error
	// Create makes a regular file and opens it with flags: a creating
	// open succeeds whatever mode the new file has.
	Create(ctx Context, name string, mode uint32, flags int) (Inode, File, error)
	Mkdir(ctx Context, name string, mode uint32) (Inode, error)
	// Mknod makes a FIFO, socket, character or block device node.
	Mknod(ctx Context, name string, mode uint32, dev uint64) (Inode, error)
	Symlink(ctx Context, name, target string) (Inode, error)
	Link(ctx Context, name string, target Inode) error
	Unlink(ctx Context, name string) error
	Rmdir(ctx Context, name string) error
	// Rename moves oldName in this directory to newName in newDir (an
	// inode of the same filesystem); flags are RENAME_NOREPLACE or
	// RENAME_EXCHANGE (RENAME_WHITEOUT is refused by the VFS).
	Rename(ctx Context, oldName string, newDir Inode, newName string, flags uint32) error

	Readlink(ctx Context) (string, error)

	Getxattr(ctx Context, name string) ([]byte, error)
	Setxattr(ctx Context, name string, value []byte, flags int) error
	Listxattr(ctx Context) ([]string, error)
	Removexattr(ctx Context, name string) error

	StatFS(ctx Context) (unix.Statfs_t, error)
}

// File is an open file as system calls see it. A File opened through the
// VFS from a path (Inode.Open, Inode.Create) is wrapped in a
// FileDescription that owns the file position: such a File sees explicit
// offsets >= 0 only, except that an O_APPEND write arrives with offset -1
// and must go atomically to the end (see Appender). Files made outside the
// VFS (host stdio, pipes) get offset -1 for "at your own position".
type File interface {
	Read(ctx Context, dst [][]byte, offset int64) (int, error)
	Write(ctx Context, src [][]byte, offset int64) (int, error)
	Seek(offset int64, whence int) (int64, error)
	Stat() (unix.Stat_t, error)
	Ioctl(ctx Context, cmd, arg uint64) (uint64, error)
	// Stream reports a file without positions (pipe, socket, terminal):
	// pread, pwrite and lseek fail on it with ESPIPE.
	Stream() bool
	// StatusFlags are the open file description's flags (O_ACCMODE,
	// O_APPEND, O_NONBLOCK, ...).
	StatusFlags() int
	// SetStatusFlags changes the settable flags (F_SETFL).
	SetStatusFlags(flags int)
	// Release frees the file when its last descriptor closes.
	Release()
}

// Optional interfaces a File may implement.
type (
	// Syncer flushes a file's data (fsync, fdatasync).
	Syncer interface {
		Sync(ctx Context, dataOnly bool) error
	}
	// Allocator reserves space (fallocate).
	Allocator interface {
		Allocate(ctx Context, mode uint32, offset, length int64) error
	}
	// MMapper lets a file be mapped: it fills in opts.Mappable (and may
	// adjust opts) for the range the app asked for.
	MMapper interface {
		ConfigureMMap(ctx Context, opts *mm.MMapOpts) error
	}
	// Appender writes at the end of the file atomically and reports the
	// new end (O_APPEND). Files without it get Size() then WriteAt.
	Appender interface {
		Append(ctx Context, src [][]byte) (n int, end int64, err error)
	}
	// SeekDataHoler answers SEEK_DATA and SEEK_HOLE.
	SeekDataHoler interface {
		SeekDataHole(offset int64, whence int) (int64, error)
	}
	// Poller reports readiness for poll/epoll/select (POLLIN, POLLOUT...).
	Poller interface {
		Readiness(mask int16) int16
	}
)

// OffsetIO is the I/O of a positioned regular file: explicit offsets
// only. NewRegularFile turns one into a File.
type OffsetIO interface {
	ReadAt(ctx Context, dst [][]byte, offset int64) (int, error)
	WriteAt(ctx Context, src [][]byte, offset int64) (int, error)
	// Size is the file's current size (SEEK_END, O_APPEND).
	Size(ctx Context) (int64, error)
}
