package vfs

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// regularFile turns an OffsetIO into a File for a positioned file opened
// through the VFS.
type regularFile struct {
	io    OffsetIO
	inode Inode
	flags atomic.Int32
}

// NewRegularFile makes the File of a regular file opened with flags, whose
// data io reads and writes at explicit offsets. If io also implements
// Syncer, Allocator, MMapper, Appender or SeekDataHoler, so does the File.
func NewRegularFile(inode Inode, io OffsetIO, flags int) File {
	f := &regularFile{io: io, inode: inode}
	f.flags.Store(int32(flags))
	return f
}

func (f *regularFile) Read(ctx Context, dst [][]byte, offset int64) (int, error) {
	return f.io.ReadAt(ctx, dst, offset)
}

func (f *regularFile) Write(ctx Context, src [][]byte, offset int64) (int, error) {
	if offset >= 0 {
		return f.io.WriteAt(ctx, src, offset)
	}
	if a, ok := f.io.(Appender); ok {
		n, _, err := a.Append(ctx, src)
		return n, err
	}
	size, err := f.io.Size(ctx)
	if err != nil {
		return 0, err
	}
	return f.io.WriteAt(ctx, src, size)
}

// Seek is the VFS's business for positioned files; only SEEK_DATA and
// SEEK_HOLE reach here.
func (f *regularFile) Seek(offset int64, whence int) (int64, error) {
	if sh, ok := f.io.(SeekDataHoler); ok {
		return sh.SeekDataHole(offset, whence)
	}
	return 0, unix.EINVAL
}

func (f *regularFile) Stat() (unix.Stat_t, error) {
	a, err := f.inode.Stat(nil)
	if err != nil {
		return unix.Stat_t{}, err
	}
	return a.ToStat(), nil
}

func (f *regularFile) Ioctl(ctx Context, cmd, arg uint64) (uint64, error) {
	return 0, unix.ENOTTY
}

func (f *regularFile) Stream() bool             { return false }
func (f *regularFile) StatusFlags() int         { return int(f.flags.Load()) }
func (f *regularFile) SetStatusFlags(flags int) { f.flags.Store(int32(flags)) }

func (f *regularFile) Release() {
	if r, ok := f.io.(interface{ Release() }); ok {
		r.Release()
	}
}

// Optional interfaces pass through to io.

func (f *regularFile) Sync(ctx Context, dataOnly bool) error {
	if s, ok := f.io.(Syncer); ok {
		return s.Sync(ctx, dataOnly)
	}
	return nil
}

func (f *regularFile) Allocate(ctx Context, mode uint32, offset, length int64) error {
	if a, ok := f.io.(Allocator); ok {
		return a.Allocate(ctx, mode, offset, length)
	}
	return unix.EOPNOTSUPP
}

// OffsetIO returns the underlying data, for optional interfaces such as
// MMapper that the VFS looks for.
func (f *regularFile) OffsetIO() OffsetIO { return f.io }

// ToStat converts a to the stat(2) structure.
func (a *Attr) ToStat() unix.Stat_t {
	return unix.Stat_t{
		Dev: a.Dev, Ino: a.Ino, Nlink: a.Nlink, Mode: a.Mode, Uid: a.UID, Gid: a.GID,
		Rdev: a.Rdev, Size: a.Size, Blksize: a.Blksize, Blocks: a.Blocks,
		Atim: a.Atime, Mtim: a.Mtime, Ctim: a.Ctime,
	}
}
