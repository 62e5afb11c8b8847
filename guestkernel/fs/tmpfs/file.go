package tmpfs

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// fileIO is one open file's view of a regular inode: the OffsetIO that
// vfs.NewRegularFile wraps, with the optional interfaces. It is per open
// because mmap permissions and sealing depend on the open mode, and its
// Release must drop exactly one open reference.
type fileIO struct {
	r        *regular
	flags    int
	released atomic.Bool
}

var (
	_ vfs.OffsetIO      = (*fileIO)(nil)
	_ vfs.Appender      = (*fileIO)(nil)
	_ vfs.Allocator     = (*fileIO)(nil)
	_ vfs.SeekDataHoler = (*fileIO)(nil)
	_ vfs.Syncer        = (*fileIO)(nil)
	_ vfs.MMapper       = (*fileIO)(nil)
	_ Sealer            = (*fileIO)(nil)
)

func (f *fileIO) ReadAt(ctx vfs.Context, dst [][]byte, offset int64) (int, error) {
	return f.r.read(dst, offset)
}

func (f *fileIO) WriteAt(ctx vfs.Context, src [][]byte, offset int64) (int, error) {
	n, _, err := f.r.write(ctx, src, offset, false)
	return n, err
}

// Append writes at the end under the inode lock, so concurrent appends
// never interleave or overwrite each other.
func (f *fileIO) Append(ctx vfs.Context, src [][]byte) (int, int64, error) {
	return f.r.write(ctx, src, 0, true)
}

func (f *fileIO) Size(ctx vfs.Context) (int64, error) {
	f.r.mu.RLock()
	defer f.r.mu.RUnlock()
	return f.r.size, nil
}

func (f *fileIO) Allocate(ctx vfs.Context, mode uint32, offset, length int64) error {
	return f.r.fallocate(ctx, mode, offset, length)
}

func (f *fileIO) SeekDataHole(offset int64, whence int) (int64, error) {
	return f.r.seekDataHole(offset, whence)
}

// Sync has nothing to do: the data is already where it lives.
func (f *fileIO) Sync(ctx vfs.Context, dataOnly bool) error { return nil }

// Release drops the open reference; the last one of an unlinked file
// frees its data unless it is still mapped.
func (f *fileIO) Release() {
	if !f.released.CompareAndSwap(false, true) {
		return
	}
	r := f.r
	r.mu.Lock()
	r.opens--
	r.maybeEvictLocked()
	r.mu.Unlock()
}

// ConfigureMMap backs the mapping with the inode. Reading and executing
// are always allowed (noexec mounts are the VFS's); a shared mapping may
// be writable only through an O_RDWR file that is not write-sealed.
// MaxPerms, if the caller filled it in already, is only narrowed; Dev and
// Ino are set only where the caller left them zero (the VFS knows the
// mount's device number, SetDev may not have been called).
func (f *fileIO) ConfigureMMap(ctx vfs.Context, opts *mm.MMapOpts) error {
	acc := f.flags & unix.O_ACCMODE
	if acc == unix.O_WRONLY {
		return unix.EACCES
	}
	if opts.Shared && opts.Perms.Write && acc != unix.O_RDWR {
		return unix.EACCES
	}
	sealed := f.r.getSeals()&writeSeals != 0
	if opts.Shared && sealed && opts.Perms.Write {
		return unix.EPERM
	}
	mine := platform.AccessType{
		Read:    true,
		Write:   acc == unix.O_RDWR && !(opts.Shared && sealed),
		Execute: true,
	}
	if opts.MaxPerms.Any() {
		mine.Read = mine.Read && opts.MaxPerms.Read
		mine.Write = mine.Write && opts.MaxPerms.Write
		mine.Execute = mine.Execute && opts.MaxPerms.Execute
	}
	opts.MaxPerms = mine
	opts.Mappable = f.r
	if opts.Ino == 0 {
		opts.Ino = f.r.ino
	}
	if opts.Dev == 0 {
		opts.Dev = f.r.fs.Dev()
	}
	if f.r.memfd && opts.Name == "" {
		// What Linux shows in /proc/PID/maps for a memfd.
		opts.Name = "/" + f.r.Name() + " (deleted)"
	}
	return nil
}

func (f *fileIO) Seals() uint32 { return f.r.getSeals() }

// AddSeals needs a writable file, as on Linux.
func (f *fileIO) AddSeals(seals uint32) error {
	acc := f.flags & unix.O_ACCMODE
	return f.r.addSeals(seals, acc == unix.O_WRONLY || acc == unix.O_RDWR)
}

func (f *fileIO) Name() string { return f.r.Name() }

// file is the vfs.File of a regular file: vfs.NewRegularFile's, plus the
// optional interfaces it does not pass through itself, so that the VFS
// finds them on the File directly. OffsetIO gives the fileIO, as
// NewRegularFile's File does.
type file struct {
	vfs.File
	io *fileIO
}

var (
	_ vfs.File      = (*file)(nil)
	_ vfs.MMapper   = (*file)(nil)
	_ vfs.Allocator = (*file)(nil)
	_ vfs.Syncer    = (*file)(nil)
	_ Sealer        = (*file)(nil)
	_ Namer         = (*file)(nil)
)

func newFile(r *regular, flags int) *file {
	io := &fileIO{r: r, flags: flags}
	return &file{File: vfs.NewRegularFile(r, io, flags), io: io}
}

func (f *file) OffsetIO() vfs.OffsetIO { return f.io }
func (f *file) ConfigureMMap(ctx vfs.Context, opts *mm.MMapOpts) error {
	return f.io.ConfigureMMap(ctx, opts)
}
func (f *file) Allocate(ctx vfs.Context, mode uint32, offset, length int64) error {
	return f.io.Allocate(ctx, mode, offset, length)
}
func (f *file) Sync(ctx vfs.Context, dataOnly bool) error { return nil }
func (f *file) Seals() uint32                             { return f.io.Seals() }
func (f *file) AddSeals(seals uint32) error               { return f.io.AddSeals(seals) }
func (f *file) Name() string                              { return f.io.Name() }

// memfdFSes holds the internal instance memfds of each memory file live
// on, as Linux's shm_mnt: one inode-number space for all memfds.
var memfdFSes sync.Map // *memfile.File -> *FS

// MemfdFS is the internal tmpfs instance that NewMemfd uses for mf.
func MemfdFS(mf *memfile.File) *FS {
	if v, ok := memfdFSes.Load(mf); ok {
		return v.(*FS)
	}
	v, _ := memfdFSes.LoadOrStore(mf, New(mf, Options{}))
	return v.(*FS)
}

// NewMemfd implements memfd_create(2) on MemfdFS(mf). The caller checks
// flags and the name's length; the file is owned by root (see
// FS.NewMemfd for one owned by the caller).
func NewMemfd(mf *memfile.File, name string, flags uint) (vfs.Inode, vfs.File) {
	return MemfdFS(mf).NewMemfd(nil, name, flags)
}

// NewMemfd makes a memfd in fs owned by ctx's fsuid and fsgid: an unnamed
// (nlink 0) regular file, open O_RDWR, freed when its last file closes
// and its last mapping goes. MFD_ALLOW_SEALING leaves it unsealed (else
// it is F_SEAL_SEAL); MFD_NOEXEC_SEAL makes it 0666 sealed F_SEAL_EXEC.
func (fs *FS) NewMemfd(ctx vfs.Context, name string, flags uint) (vfs.Inode, vfs.File) {
	mode := uint32(0777)
	seals := uint32(unix.F_SEAL_SEAL)
	if flags&unix.MFD_ALLOW_SEALING != 0 {
		seals = 0
	}
	if flags&unix.MFD_NOEXEC_SEAL != 0 {
		mode, seals = 0666, unix.F_SEAL_EXEC
	}
	fs.inodes.Add(1) // memfd_create has no ENOSPC for inodes
	r := &regular{seals: seals, opens: 1, memfd: true, memfdName: name}
	fs.initInode(&r.inode, ctx, nil, unix.S_IFREG|mode)
	return r, newFile(r, unix.O_RDWR)
}
