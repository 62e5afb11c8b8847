package goferfs

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// regularFile is an open regular file: a host descriptor the gofer
// donated, read and written directly. It is a vfs.File and also a
// vfs.OffsetIO with the optional Syncer, Allocator, MMapper, Appender,
// SeekDataHoler and Poller interfaces.
type regularFile struct {
	ino   *inode
	d     *fileData
	fd    int
	flags atomic.Int32
}

var (
	_ vfs.File          = (*regularFile)(nil)
	_ vfs.OffsetIO      = (*regularFile)(nil)
	_ vfs.Syncer        = (*regularFile)(nil)
	_ vfs.Allocator     = (*regularFile)(nil)
	_ vfs.MMapper       = (*regularFile)(nil)
	_ vfs.Appender      = (*regularFile)(nil)
	_ vfs.SeekDataHoler = (*regularFile)(nil)
	_ vfs.Poller        = (*regularFile)(nil)
)

func newRegularFile(i *inode, fd, flags int) *regularFile {
	i.incRef()
	f := &regularFile{ino: i, d: i.d, fd: fd}
	f.flags.Store(int32(flags))
	return f
}

// HostFD is the file's host descriptor (for tests and benchmarks).
func (f *regularFile) HostFD() int { return f.fd }

// OffsetIO returns f itself, mirroring the VFS's regular files, for code
// that looks for optional interfaces there.
func (f *regularFile) OffsetIO() vfs.OffsetIO { return f }

// Read implements vfs.File.
func (f *regularFile) Read(ctx vfs.Context, dst [][]byte, offset int64) (int, error) {
	return f.ReadAt(ctx, dst, offset)
}

// Write implements vfs.File; offset -1 is an O_APPEND write.
func (f *regularFile) Write(ctx vfs.Context, src [][]byte, offset int64) (int, error) {
	if offset < 0 {
		n, _, err := f.Append(ctx, src)
		return n, err
	}
	return f.WriteAt(ctx, src, offset)
}

// ReadAt implements vfs.OffsetIO. Without cached pages (the common case)
// it is one preadv on the host descriptor.
func (f *regularFile) ReadAt(_ vfs.Context, dst [][]byte, offset int64) (int, error) {
	if offset < 0 {
		return 0, unix.EINVAL
	}
	if f.flags.Load()&unix.O_ACCMODE == unix.O_WRONLY {
		return 0, unix.EBADF
	}
	d := f.d
	d.mu.RLock()
	var n int
	var err error
	if !d.hasPages() {
		n, err = preadv(f.fd, dst, offset)
	} else {
		n, err = d.readCached(f.fd, dst, offset)
	}
	d.mu.RUnlock()
	return n, err
}

// WriteAt implements vfs.OffsetIO: a pwritev on the host descriptor, and
// when the file has cached pages, the same bytes copied into them.
func (f *regularFile) WriteAt(_ vfs.Context, src [][]byte, offset int64) (int, error) {
	if offset < 0 {
		return 0, unix.EINVAL
	}
	if !f.writable() {
		return 0, unix.EBADF
	}
	d := f.d
	d.mu.RLock()
	if !d.hasPages() {
		n, err := pwritev(f.fd, src, offset)
		d.mu.RUnlock()
		d.noteWrite(offset, n)
		return n, err
	}
	d.mu.RUnlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	return f.writeLocked(src, offset)
}

// writable checks the open's access mode itself: a read-only open may
// share a read-write host descriptor with the page cache.
func (f *regularFile) writable() bool {
	return f.flags.Load()&unix.O_ACCMODE != unix.O_RDONLY
}

// writeLocked writes through to the host and into cached pages; d.mu is
// held for writing.
func (f *regularFile) writeLocked(src [][]byte, offset int64) (int, error) {
	d := f.d
	old := d.size()
	n, err := pwritev(f.fd, src, offset)
	if n > 0 && d.hasPages() {
		if end := offset + int64(n); offset > old && end > old {
			// A hole between the old end and offset reads as zeros.
			d.zeroCachedLocked(uint64(old), uint64(offset))
		}
		d.updateCachedLocked(src, offset, n)
	}
	d.noteWrite(offset, n)
	return n, err
}

// Append implements vfs.Appender: the write goes at the current end,
// atomically with respect to other writes in the sandbox.
func (f *regularFile) Append(_ vfs.Context, src [][]byte) (int, int64, error) {
	if !f.writable() {
		return 0, 0, unix.EBADF
	}
	d := f.d
	d.mu.Lock()
	defer d.mu.Unlock()
	end, err := f.hostSize()
	if err != nil {
		return 0, 0, err
	}
	n, err := f.writeLocked(src, end)
	return n, end + int64(n), err
}

// hostSize is the file size: cached in Exclusive mode, asked of the host
// descriptor in Shared mode.
func (f *regularFile) hostSize() (int64, error) {
	if f.ino.fs.opts.CacheMode == Exclusive {
		return f.d.size(), nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// Size implements vfs.OffsetIO.
func (f *regularFile) Size(vfs.Context) (int64, error) { return f.hostSize() }

// Seek implements vfs.File: the VFS keeps the position, so only SEEK_DATA
// and SEEK_HOLE arrive here.
func (f *regularFile) Seek(offset int64, whence int) (int64, error) {
	return f.SeekDataHole(offset, whence)
}

// SeekDataHole implements vfs.SeekDataHoler on the host descriptor.
func (f *regularFile) SeekDataHole(offset int64, whence int) (int64, error) {
	if whence != unix.SEEK_DATA && whence != unix.SEEK_HOLE {
		return 0, unix.EINVAL
	}
	return unix.Seek(f.fd, offset, whence)
}

// Stat implements vfs.File.
func (f *regularFile) Stat() (unix.Stat_t, error) {
	a, err := f.ino.Stat(nil)
	if err != nil {
		return unix.Stat_t{}, err
	}
	return a.ToStat(), nil
}

// Ioctl implements vfs.File.
func (f *regularFile) Ioctl(vfs.Context, uint64, uint64) (uint64, error) { return 0, unix.ENOTTY }

// Stream implements vfs.File.
func (f *regularFile) Stream() bool { return false }

// StatusFlags implements vfs.File.
func (f *regularFile) StatusFlags() int { return int(f.flags.Load()) }

// SetStatusFlags implements vfs.File.
func (f *regularFile) SetStatusFlags(flags int) { f.flags.Store(int32(flags)) }

// Readiness implements vfs.Poller: regular files are always ready.
func (f *regularFile) Readiness(mask int16) int16 {
	const pollRdNorm, pollWrNorm = 0x40, 0x100 // POLLRDNORM, POLLWRNORM
	return mask & (unix.POLLIN | unix.POLLOUT | pollRdNorm | pollWrNorm)
}

// Release implements vfs.File.
func (f *regularFile) Release() {
	unix.Close(f.fd)
	f.ino.Release()
}

// Sync implements vfs.Syncer: dirty mapped pages go to the host first.
func (f *regularFile) Sync(_ vfs.Context, dataOnly bool) error {
	err := f.d.sync()
	var serr error
	if dataOnly {
		serr = unix.Fdatasync(f.fd)
	} else {
		serr = unix.Fsync(f.fd)
	}
	if err == nil {
		err = serr
	}
	return err
}

// Allocate implements vfs.Allocator with fallocate on the host
// descriptor; cached pages of a punched or zeroed range are zeroed.
func (f *regularFile) Allocate(_ vfs.Context, mode uint32, offset, length int64) error {
	if err := f.ino.readOnly(); err != nil {
		return err
	}
	if !f.writable() {
		return unix.EBADF
	}
	if mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0 {
		// Shifting data would have to shift the page cache too.
		return unix.EOPNOTSUPP
	}
	d := f.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := unix.Fallocate(f.fd, mode, offset, length); err != nil {
		return err
	}
	if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 {
		d.zeroCachedLocked(uint64(offset), uint64(offset+length))
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 && offset+length > d.size() {
		d.noteSize(offset + length)
	}
	return nil
}

// ConfigureMMap implements vfs.MMapper: the mapping is backed by the
// file's page cache. The cache gets its own duplicates of this file's
// host descriptor (to read pages with, and for a shared writable mapping
// to write them back with), so mapping costs no gofer round trip.
func (f *regularFile) ConfigureMMap(_ vfs.Context, opts *mm.MMapOpts) error {
	acc := int(f.flags.Load()) & unix.O_ACCMODE
	if acc == unix.O_WRONLY {
		return unix.EACCES
	}
	canWrite := acc == unix.O_RDWR && !f.ino.fs.opts.ReadOnly
	if opts.Shared && opts.Perms.Write && !canWrite {
		return unix.EACCES
	}
	if err := f.d.ensureFDs(f.fd, opts.Shared && canWrite); err != nil {
		return err
	}
	opts.Mappable = f.d
	opts.MaxPerms = platform.AccessType{Read: true, Execute: true, Write: !opts.Shared || canWrite}
	if a, ok := f.d.cachedAttr(); ok {
		opts.Ino = a.Ino
	} else {
		opts.Ino = f.d.key.ino
	}
	if dev := f.ino.fs.opts.Dev; dev != 0 {
		opts.Dev = dev
	}
	return nil
}

// pipeFile is an open FIFO: a non-blocking host descriptor, with blocking
// emulated through Context.WaitHostFD so signals interrupt it.
type pipeFile struct {
	ino   *inode
	fd    int
	flags atomic.Int32
}

var (
	_ vfs.File   = (*pipeFile)(nil)
	_ vfs.Poller = (*pipeFile)(nil)
)

func newPipeFile(i *inode, fd, flags int) *pipeFile {
	i.incRef()
	f := &pipeFile{ino: i, fd: fd}
	f.flags.Store(int32(flags))
	return f
}

func (f *pipeFile) io(ctx vfs.Context, bufs [][]byte, events int16, op func(int, [][]byte) (int, error)) (int, error) {
	for {
		n, err := op(f.fd, bufs)
		if err != unix.EAGAIN || f.flags.Load()&unix.O_NONBLOCK != 0 || ctx == nil {
			return n, err
		}
		if err := ctx.WaitHostFD(f.fd, events, -1); err != nil {
			return 0, err
		}
	}
}

// Read implements vfs.File.
func (f *pipeFile) Read(ctx vfs.Context, dst [][]byte, offset int64) (int, error) {
	if offset >= 0 {
		return 0, unix.ESPIPE
	}
	return f.io(ctx, dst, unix.POLLIN, readv)
}

// Write implements vfs.File.
func (f *pipeFile) Write(ctx vfs.Context, src [][]byte, offset int64) (int, error) {
	if offset >= 0 {
		return 0, unix.ESPIPE
	}
	return f.io(ctx, src, unix.POLLOUT, writev)
}

// Seek implements vfs.File.
func (f *pipeFile) Seek(int64, int) (int64, error) { return 0, unix.ESPIPE }

// Stat implements vfs.File.
func (f *pipeFile) Stat() (unix.Stat_t, error) {
	a, err := f.ino.Stat(nil)
	if err != nil {
		return unix.Stat_t{}, err
	}
	return a.ToStat(), nil
}

// Ioctl implements vfs.File.
func (f *pipeFile) Ioctl(vfs.Context, uint64, uint64) (uint64, error) { return 0, unix.ENOTTY }

// Stream implements vfs.File.
func (f *pipeFile) Stream() bool { return true }

// StatusFlags implements vfs.File.
func (f *pipeFile) StatusFlags() int { return int(f.flags.Load()) }

// SetStatusFlags implements vfs.File.
func (f *pipeFile) SetStatusFlags(flags int) { f.flags.Store(int32(flags)) }

// Readiness implements vfs.Poller with a zero-timeout poll of the host
// descriptor.
func (f *pipeFile) Readiness(mask int16) int16 {
	fds := [1]unix.PollFd{{Fd: int32(f.fd), Events: mask}}
	if n, err := unix.Poll(fds[:], 0); err != nil || n == 0 {
		return 0
	}
	return fds[0].Revents & (mask | unix.POLLERR | unix.POLLHUP)
}

// Release implements vfs.File.
func (f *pipeFile) Release() {
	unix.Close(f.fd)
	f.ino.Release()
}
