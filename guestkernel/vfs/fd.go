package vfs

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// FileDescription is an open file description: the File, the path it was
// opened by (if any), its position, and its references from FD tables.
// dup'd descriptors share one.
type FileDescription struct {
	File
	refs atomic.Int64

	v          *VFS
	vd         VirtualDentry // zero for files not opened by path
	positioned bool          // the description owns the position
	isDir      bool

	mu  sync.Mutex // pos and directory iteration
	pos int64
	// Directory iteration: stage 0 emits ".", 1 "..", 2 the filesystem's
	// entries from cookie.
	dirStage  int
	dirCookie int64

	// locked records that the description may hold flock, OFD or POSIX
	// locks, so Release knows to drop them.
	locked atomic.Bool
}

// NewFileDescription wraps a File not opened by path (host stdio, pipes,
// sockets) with one reference. The File keeps its own position.
func NewFileDescription(f File) *FileDescription {
	d := &FileDescription{File: f}
	d.refs.Store(1)
	return d
}

func (v *VFS) newPathDescription(vd VirtualDentry, f File, isDir bool) *FileDescription {
	d := &FileDescription{File: f, v: v, vd: vd, positioned: !f.Stream(), isDir: isDir}
	d.refs.Store(1)
	vd.Mount.openFiles.Add(1)
	vd.Dentry.IncRef()
	vd.Dentry.opens.Add(1)
	return d
}

// IncRef takes a reference.
func (d *FileDescription) IncRef() { d.refs.Add(1) }

// DecRef drops a reference, releasing the file on the last.
func (d *FileDescription) DecRef() {
	if d.refs.Add(-1) == 0 {
		if d.locked.Load() && d.v != nil {
			d.v.locks.releaseDescription(d)
		}
		d.notifyClose()
		d.File.Release()
		if d.vd.Mount != nil {
			d.vd.Mount.openFiles.Add(-1)
			d.vd.Dentry.DecRef()
		}
	}
}

// MayHoldLocks reports whether a lock was ever taken through d.
func (d *FileDescription) MayHoldLocks() bool { return d.locked.Load() }

// VirtualDentry is the path the file was opened by (Ok() false if none).
func (d *FileDescription) VirtualDentry() VirtualDentry { return d.vd }

// IsDir reports an open directory.
func (d *FileDescription) IsDir() bool { return d.isDir }

// Read reads at offset, or at the description's position if offset < 0.
func (d *FileDescription) Read(ctx Context, dst [][]byte, offset int64) (int, error) {
	n, err := d.read(ctx, dst, offset)
	if n > 0 {
		d.notifyIO(unix.IN_ACCESS)
	}
	return n, err
}

func (d *FileDescription) read(ctx Context, dst [][]byte, offset int64) (int, error) {
	if d.isDir {
		return 0, unix.EISDIR
	}
	if !d.positioned || offset >= 0 {
		return d.File.Read(ctx, dst, offset)
	}
	d.mu.Lock()
	n, err := d.File.Read(ctx, dst, d.pos)
	d.pos += int64(n)
	d.mu.Unlock()
	return n, err
}

// Write writes at offset, or at the position (the end for O_APPEND) if
// offset < 0.
func (d *FileDescription) Write(ctx Context, src [][]byte, offset int64) (int, error) {
	n, err := d.write(ctx, src, offset)
	if n > 0 {
		d.notifyIO(unix.IN_MODIFY)
	}
	return n, err
}

func (d *FileDescription) write(ctx Context, src [][]byte, offset int64) (int, error) {
	if !d.positioned {
		return d.File.Write(ctx, src, offset)
	}
	if offset >= 0 {
		if d.File.StatusFlags()&unix.O_APPEND != 0 {
			// Linux appends even for pwrite on an O_APPEND file.
			if a, ok := d.appender(); ok {
				n, _, err := a.Append(ctx, src)
				return n, err
			}
			return d.File.Write(ctx, src, -1)
		}
		return d.File.Write(ctx, src, offset)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.File.StatusFlags()&unix.O_APPEND != 0 {
		if a, ok := d.appender(); ok {
			n, end, err := a.Append(ctx, src)
			d.pos = end
			return n, err
		}
		n, err := d.File.Write(ctx, src, -1)
		if a, serr := d.inodeStat(); serr == nil {
			d.pos = a.Size
		}
		return n, err
	}
	n, err := d.File.Write(ctx, src, d.pos)
	d.pos += int64(n)
	return n, err
}

func (d *FileDescription) appender() (Appender, bool) {
	if a, ok := d.File.(Appender); ok {
		return a, true
	}
	if o, ok := d.File.(interface{ OffsetIO() OffsetIO }); ok {
		a, ok := o.OffsetIO().(Appender)
		return a, ok
	}
	return nil, false
}

func (d *FileDescription) inodeStat() (Attr, error) {
	a, err := d.vd.Dentry.inode.Stat(nil)
	if err == nil {
		a.Dev = d.vd.Dentry.sb.Dev
	}
	return a, err
}

// Seek implements lseek.
func (d *FileDescription) Seek(offset int64, whence int) (int64, error) {
	if !d.positioned {
		return d.File.Seek(offset, whence)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.isDir {
		return d.seekDir(offset, whence)
	}
	var base int64
	switch whence {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		base = d.pos
	case unix.SEEK_END:
		a, err := d.inodeStat()
		if err != nil {
			return 0, err
		}
		base = a.Size
	case unix.SEEK_DATA, unix.SEEK_HOLE:
		a, err := d.inodeStat()
		if err != nil {
			return 0, err
		}
		if offset < 0 || offset >= a.Size {
			return 0, unix.ENXIO
		}
		pos, err := d.File.Seek(offset, whence)
		if err == unix.EINVAL {
			// No hole map: the whole file is data, as Linux's default.
			pos, err = offset, nil
			if whence == unix.SEEK_HOLE {
				pos = a.Size
			}
		}
		if err != nil {
			return 0, err
		}
		d.pos = pos
		return pos, nil
	default:
		return 0, unix.EINVAL
	}
	pos := base + offset
	if (offset > 0 && pos < base) || pos < 0 {
		return 0, unix.EINVAL
	}
	d.pos = pos
	return pos, nil
}

func (d *FileDescription) seekDir(offset int64, whence int) (int64, error) {
	switch whence {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		if offset != 0 {
			return 0, unix.EINVAL
		}
		return d.pos, nil
	default:
		return 0, unix.EINVAL
	}
	if offset < 0 {
		return 0, unix.EINVAL
	}
	switch {
	case offset == 0:
		d.dirStage, d.dirCookie = 0, 0
	case offset == 1:
		d.dirStage, d.dirCookie = 1, 0
	default:
		d.dirStage, d.dirCookie = 2, offset-2
	}
	d.pos = offset
	return offset, nil
}

// Stat is fstat: the inode's attributes for a file opened by path.
func (d *FileDescription) Stat() (unix.Stat_t, error) {
	if !d.vd.Ok() {
		return d.File.Stat()
	}
	a, err := d.inodeStat()
	if err != nil {
		return unix.Stat_t{}, err
	}
	return a.ToStat(), nil
}

// Attr is the inode's attributes with the device filled in.
func (d *FileDescription) Attr() (Attr, error) {
	if !d.vd.Ok() {
		st, err := d.File.Stat()
		if err != nil {
			return Attr{}, err
		}
		return attrFromStat(&st), nil
	}
	return d.inodeStat()
}

func attrFromStat(st *unix.Stat_t) Attr {
	return Attr{Mode: st.Mode, Nlink: st.Nlink, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev, Size: st.Size,
		Blocks: st.Blocks, Blksize: st.Blksize, Ino: st.Ino, Dev: st.Dev, Atime: st.Atim, Mtime: st.Mtim, Ctime: st.Ctim}
}

// IterDirents emits the directory's entries from the description's
// position, "." and ".." first, advancing the position past each entry
// emit accepts. off in the Dirent passed to emit is the position after it.
func (d *FileDescription) IterDirents(ctx Context, emit func(de Dirent, off int64) bool) error {
	if !d.isDir {
		return unix.ENOTDIR
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vd.Dentry.Dead() {
		return nil // an rmdir'd directory reads as empty
	}
	d.notifyIO(unix.IN_ACCESS)
	for d.dirStage < 2 {
		var de Dirent
		if d.dirStage == 0 {
			a, err := d.inodeStat()
			if err != nil {
				return err
			}
			de = Dirent{Name: ".", Type: unix.DT_DIR, Ino: a.Ino}
		} else {
			de = Dirent{Name: "..", Type: unix.DT_DIR, Ino: d.parentIno(ctx)}
		}
		if !emit(de, int64(d.dirStage)+1) {
			return nil
		}
		d.dirStage++
		d.pos = int64(d.dirStage)
	}
	return d.vd.Dentry.inode.IterDir(ctx, d.dirCookie, func(de Dirent) bool {
		if !emit(de, de.Next+2) {
			return false
		}
		d.dirCookie = de.Next
		d.pos = de.Next + 2
		return true
	})
}

// parentIno is what the filesystem holds as ".." (a filesystem root is
// its own parent, whatever it is mounted on, as on Linux).
func (d *FileDescription) parentIno(ctx Context) uint64 {
	d.v.renameMu.RLock()
	p := d.vd.Dentry
	if p.parent != nil {
		p = p.parent
	}
	d.v.renameMu.RUnlock()
	a, err := p.inode.Stat(ctx)
	if err != nil {
		return 0
	}
	return a.Ino
}

// dirFile is the File of an open directory: the VFS does its I/O.
type dirFile struct {
	flags atomic.Int32
}

func (f *dirFile) Read(Context, [][]byte, int64) (int, error)  { return 0, unix.EISDIR }
func (f *dirFile) Write(Context, [][]byte, int64) (int, error) { return 0, unix.EBADF }
func (f *dirFile) Seek(int64, int) (int64, error)              { return 0, unix.EINVAL }
func (f *dirFile) Stat() (unix.Stat_t, error)                  { return unix.Stat_t{}, unix.EBADF }
func (f *dirFile) Ioctl(Context, uint64, uint64) (uint64, error) {
	return 0, unix.ENOTTY
}
func (f *dirFile) Stream() bool             { return false }
func (f *dirFile) StatusFlags() int         { return int(f.flags.Load()) }
func (f *dirFile) SetStatusFlags(flags int) { f.flags.Store(int32(flags)) }
func (f *dirFile) Release()                 {}

// pathFile is the File of an O_PATH descriptor: it names a file and does
// no I/O.
type pathFile struct{ dirFile }

func (f *pathFile) Read(Context, [][]byte, int64) (int, error) { return 0, unix.EBADF }
func (f *pathFile) Seek(int64, int) (int64, error)             { return 0, unix.EBADF }
func (f *pathFile) Ioctl(Context, uint64, uint64) (uint64, error) {
	return 0, unix.EBADF
}
