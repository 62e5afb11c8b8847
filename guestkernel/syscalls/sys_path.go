package syscalls

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

func init() {
	full(unix.SYS_OPEN, sysOpen, aPath, aHex, aOct)
	full(unix.SYS_OPENAT, sysOpenat, aFD, aPath, aHex, aOct)
	full(unix.SYS_OPENAT2, sysOpenat2, aFD, aPath, aHex, aInt)
	full(unix.SYS_CREAT, sysCreat, aPath, aOct)
	full(unix.SYS_STAT, sysStat, aPath, aHex)
	full(unix.SYS_LSTAT, sysLstat, aPath, aHex)
	full(unix.SYS_NEWFSTATAT, sysNewfstatat, aFD, aPath, aHex, aHex)
	full(unix.SYS_STATX, sysStatx, aFD, aPath, aHex, aHex, aHex)
	full(unix.SYS_ACCESS, sysAccess, aPath, aOct)
	full(unix.SYS_FACCESSAT, sysFaccessat, aFD, aPath, aOct)
	full(unix.SYS_FACCESSAT2, sysFaccessat2, aFD, aPath, aOct, aHex)
	full(unix.SYS_GETDENTS64, sysGetdents64, aFD, aHex, aInt)
	full(unix.SYS_GETDENTS, sysGetdents, aFD, aHex, aInt)
	full(unix.SYS_READLINK, sysReadlink, aPath, aHex, aInt)
	full(unix.SYS_READLINKAT, sysReadlinkat, aFD, aPath, aHex, aInt)
	full(unix.SYS_GETCWD, sysGetcwd, aHex, aInt)
	full(unix.SYS_CHDIR, sysChdir, aPath)
	full(unix.SYS_FCHDIR, sysFchdir, aFD)
	full(unix.SYS_CHROOT, sysChroot, aPath)
	full(unix.SYS_UMASK, sysUmask, aOct)
	full(unix.SYS_MKDIR, sysMkdir, aPath, aOct)
	full(unix.SYS_MKDIRAT, sysMkdirat, aFD, aPath, aOct)
	full(unix.SYS_MKNOD, sysMknod, aPath, aOct, aHex)
	full(unix.SYS_MKNODAT, sysMknodat, aFD, aPath, aOct, aHex)
	full(unix.SYS_UNLINK, sysUnlink, aPath)
	full(unix.SYS_UNLINKAT, sysUnlinkat, aFD, aPath, aHex)
	full(unix.SYS_RMDIR, sysRmdir, aPath)
	full(unix.SYS_RENAME, sysRename, aPath, aPath)
	full(unix.SYS_RENAMEAT, sysRenameat, aFD, aPath, aFD, aPath)
	partial(unix.SYS_RENAMEAT2, "RENAME_WHITEOUT is EINVAL", sysRenameat2, aFD, aPath, aFD, aPath, aHex)
	full(unix.SYS_LINK, sysLink, aPath, aPath)
	full(unix.SYS_LINKAT, sysLinkat, aFD, aPath, aFD, aPath, aHex)
	full(unix.SYS_SYMLINK, sysSymlink, aPath, aPath)
	full(unix.SYS_SYMLINKAT, sysSymlinkat, aPath, aFD, aPath)
	full(unix.SYS_CHMOD, sysChmod, aPath, aOct)
	full(unix.SYS_FCHMOD, sysFchmod, aFD, aOct)
	full(unix.SYS_FCHMODAT, sysFchmodat, aFD, aPath, aOct)
	full(unix.SYS_CHOWN, sysChown, aPath, aInt, aInt)
	full(unix.SYS_LCHOWN, sysLchown, aPath, aInt, aInt)
	full(unix.SYS_FCHOWN, sysFchown, aFD, aInt, aInt)
	full(unix.SYS_FCHOWNAT, sysFchownat, aFD, aPath, aInt, aInt, aHex)
	full(unix.SYS_UTIMENSAT, sysUtimensat, aFD, aPath, aHex, aHex)
	full(unix.SYS_UTIME, sysUtime, aPath, aHex)
	full(unix.SYS_UTIMES, sysUtimes, aPath, aHex)
	full(unix.SYS_FUTIMESAT, sysFutimesat, aFD, aPath, aHex)
	full(unix.SYS_TRUNCATE, sysTruncate, aPath, aInt)
	full(unix.SYS_FTRUNCATE, sysFtruncate, aFD, aInt)
	full(unix.SYS_STATFS, sysStatfs, aPath, aHex)
	full(unix.SYS_FSTATFS, sysFstatfs, aFD, aHex)
	full(unix.SYS_FLOCK, sysFlock, aFD, aHex)
}

// maxPath is the longest path string (PATH_MAX less the NUL).
const maxPath = vfs.PathMax - 1

func copyPath(t *kernel.Task, addr uint64) (string, error) {
	p, err := t.MM().CopyInString(addr, maxPath)
	if err == unix.ENAMETOOLONG {
		return "", err
	}
	if err != nil {
		return "", unix.EFAULT
	}
	return p, nil
}

// pathWalk builds the walk for (dirfd, path) as the *at calls take them.
// For an empty path with AT_EMPTY_PATH it returns the descriptor's own
// object in vd instead.
func pathWalk(t *kernel.Task, dirfd uint64, pathAddr uint64, atFlags uint64) (wk vfs.Walk, vd vfs.VirtualDentry, err error) {
	path, err := copyPath(t, pathAddr)
	if err != nil {
		return wk, vd, err
	}
	return walkFor(t, dirfd, path, atFlags)
}

func walkFor(t *kernel.Task, dirfd uint64, path string, atFlags uint64) (wk vfs.Walk, vd vfs.VirtualDentry, err error) {
	root, cwd := t.FSContext().RootAndCwd()
	wk = vfs.Walk{Root: root, Start: cwd, Path: path, FollowFinal: atFlags&unix.AT_SYMLINK_NOFOLLOW == 0}
	if path != "" && path[0] == '/' {
		return wk, vd, nil
	}
	if int32(dirfd) == unix.AT_FDCWD {
		if path == "" && atFlags&unix.AT_EMPTY_PATH != 0 {
			return wk, cwd, nil
		}
		return wk, vd, nil
	}
	d, err := getFile(t, dirfd)
	if err != nil {
		return wk, vd, err
	}
	defer d.DecRef()
	if path == "" {
		if atFlags&unix.AT_EMPTY_PATH == 0 {
			return wk, vd, unix.ENOENT
		}
		if !d.VirtualDentry().Ok() {
			return wk, vd, errNoPath
		}
		return wk, d.VirtualDentry(), nil
	}
	if !d.VirtualDentry().Ok() || !d.IsDir() && !isDirPath(t, d) {
		return wk, vd, unix.ENOTDIR
	}
	wk.Start = d.VirtualDentry()
	return wk, vd, nil
}

// errNoPath marks a descriptor without a path (pipe, host stdio) used
// with AT_EMPTY_PATH: the caller falls back to the file itself.
var errNoPath = unix.Errno(0x7fff)

func isDirPath(t *kernel.Task, d *kernel.FileDescription) bool {
	a, err := vfs.StatVD(t, d.VirtualDentry())
	return err == nil && a.IsDir()
}

// resolve walks (dirfd, path) to the object, honouring AT_EMPTY_PATH.
func resolveAt(t *kernel.Task, dirfd, pathAddr, atFlags uint64) (vfs.VirtualDentry, error) {
	wk, vd, err := pathWalk(t, dirfd, pathAddr, atFlags)
	if err != nil || vd.Ok() {
		return vd, err
	}
	return t.Kernel().VFS.Resolve(t, &wk)
}

func umask(t *kernel.Task) uint32 { return t.FSContext().Umask() }

func openFlagsValid(flags uint64) bool {
	return flags&unix.O_TMPFILE != unix.O_TMPFILE&^unix.O_DIRECTORY
}

func doOpen(t *kernel.Task, dirfd, pathAddr uint64, flags uint64, mode uint32, resolve uint64) (uint64, error) {
	if !openFlagsValid(flags) {
		return 0, unix.EINVAL
	}
	path, err := copyPath(t, pathAddr)
	if err != nil {
		return 0, err
	}
	if path == "" {
		return 0, unix.ENOENT
	}
	wk, _, err := walkFor(t, dirfd, path, 0)
	if err != nil {
		return 0, err
	}
	wk.Resolve = resolve
	if flags&unix.O_PATH != 0 {
		flags &= unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	}
	// O_LARGEFILE is implied on 64-bit; O_NOCTTY: the sandbox has no
	// controlling terminal to acquire.
	flags &^= unix.O_LARGEFILE
	d, err := t.Kernel().VFS.Open(t, &wk, vfs.OpenOptions{Flags: int(flags), Mode: mode, Umask: umask(t)})
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	fd, err := t.FDTable().Install(d, 0, flags&unix.O_CLOEXEC != 0, nofile(t))
	return uint64(fd), err
}

func sysOpen(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doOpen(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], a[1], uint32(a[2]), 0)
}

func sysOpenat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doOpen(t, a[0], a[1], a[2], uint32(a[3]), 0)
}

func sysCreat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doOpen(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, uint32(a[1]), 0)
}

func sysOpenat2(t *kernel.Task, a *[6]uint64) (uint64, error) {
	size := a[3]
	if size < 24 {
		return 0, unix.EINVAL
	}
	if size > 4096 {
		return 0, unix.E2BIG
	}
	buf := make([]byte, size)
	if _, err := t.MM().CopyIn(a[2], buf); err != nil {
		return 0, unix.EFAULT
	}
	for _, b := range buf[24:] {
		if b != 0 {
			return 0, unix.E2BIG
		}
	}
	flags := binary.LittleEndian.Uint64(buf[0:])
	mode := binary.LittleEndian.Uint64(buf[8:])
	resolve := binary.LittleEndian.Uint64(buf[16:])
	// openat2 is strict where openat is lenient.
	if flags&^uint64(0x3fffff|unix.O_TMPFILE|unix.O_PATH) != 0 || flags>>32 != 0 {
		return 0, unix.EINVAL
	}
	if mode&^0o7777 != 0 || (mode != 0 && flags&(unix.O_CREAT) == 0 && flags&unix.O_TMPFILE != unix.O_TMPFILE) {
		return 0, unix.EINVAL
	}
	if resolve&^0x3f != 0 || resolve&vfs.ResolveBeneath != 0 && resolve&vfs.ResolveInRoot != 0 {
		return 0, unix.EINVAL
	}
	if resolve&vfs.ResolveCached != 0 {
		return 0, unix.EAGAIN
	}
	return doOpen(t, a[0], a[1], flags, uint32(mode), resolve)
}

// statAt is the stat family's common core.
func statAt(t *kernel.Task, dirfd, pathAddr, atFlags uint64) (vfs.Attr, error) {
	wk, vd, err := pathWalk(t, dirfd, pathAddr, atFlags)
	if err == errNoPath {
		d, gerr := getFile(t, dirfd)
		if gerr != nil {
			return vfs.Attr{}, gerr
		}
		defer d.DecRef()
		return d.Attr()
	}
	if err != nil {
		return vfs.Attr{}, err
	}
	if vd.Ok() {
		return vfs.StatVD(t, vd)
	}
	return t.Kernel().VFS.Stat(t, &wk)
}

func copyOutStat(t *kernel.Task, addr uint64, a *vfs.Attr) error {
	st := a.ToStat()
	if _, err := t.MM().CopyOut(addr, unsafeBytes(&st)); err != nil {
		return unix.EFAULT
	}
	return nil
}

func sysStat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	attr, err := statAt(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
	if err != nil {
		return 0, err
	}
	return 0, copyOutStat(t, a[1], &attr)
}

func sysLstat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	attr, err := statAt(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return 0, err
	}
	return 0, copyOutStat(t, a[1], &attr)
}

func sysNewfstatat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[3]&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT) != 0 {
		return 0, unix.EINVAL
	}
	attr, err := statAt(t, a[0], a[1], a[3])
	if err != nil {
		return 0, err
	}
	return 0, copyOutStat(t, a[2], &attr)
}

func sysStatx(t *kernel.Task, a *[6]uint64) (uint64, error) {
	dirfd, pathAddr, flags, mask, buf := a[0], a[1], a[2], uint32(a[3]), a[4]
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT|atStatxSyncType) != 0 ||
		flags&atStatxSyncType == atStatxSyncType || mask&unix.STATX__RESERVED != 0 {
		return 0, unix.EINVAL
	}
	attr, err := statAt(t, dirfd, pathAddr, flags)
	if err != nil {
		return 0, err
	}
	sx := unix.Statx_t{
		Mask:    unix.STATX_BASIC_STATS,
		Blksize: uint32(attr.Blksize), Nlink: uint32(attr.Nlink), Uid: attr.UID, Gid: attr.GID,
		Mode: uint16(attr.Mode), Ino: attr.Ino, Size: uint64(attr.Size), Blocks: uint64(attr.Blocks),
		Atime: statxTime(attr.Atime), Mtime: statxTime(attr.Mtime), Ctime: statxTime(attr.Ctime),
		Rdev_major: unix.Major(attr.Rdev), Rdev_minor: unix.Minor(attr.Rdev),
		Dev_major: unix.Major(attr.Dev), Dev_minor: unix.Minor(attr.Dev),
	}
	if attr.Btime.Sec != 0 || attr.Btime.Nsec != 0 {
		sx.Mask |= unix.STATX_BTIME
		sx.Btime = statxTime(attr.Btime)
	}
	b := unsafeBytes(&sx)
	if _, err := t.MM().CopyOut(buf, b); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

func statxTime(ts unix.Timespec) unix.StatxTimestamp {
	return unix.StatxTimestamp{Sec: ts.Sec, Nsec: uint32(ts.Nsec)}
}

func doAccess(t *kernel.Task, dirfd, pathAddr, mode, flags uint64) (uint64, error) {
	if mode&^7 != 0 || flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EACCESS|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	wk, vd, err := pathWalk(t, dirfd, pathAddr, flags)
	if err != nil && err != errNoPath {
		return 0, err
	}
	// access() checks with the real ids unless AT_EACCESS.
	c := *t.FSCredentials()
	if flags&unix.AT_EACCESS == 0 {
		cr := t.Creds()
		c.UID, c.GID = cr.UID, cr.GID
		if cr.UID != 0 {
			c.Caps = 0
		} else {
			c.Caps = vfs.AllCaps
		}
	}
	if err == errNoPath || vd.Ok() {
		if mode == 0 {
			return 0, nil
		}
		var attr vfs.Attr
		if vd.Ok() {
			attr, err = vfs.StatVD(t, vd)
		} else {
			d, gerr := getFile(t, dirfd)
			if gerr != nil {
				return 0, gerr
			}
			attr, err = d.Attr()
			d.DecRef()
		}
		if err != nil {
			return 0, err
		}
		return 0, vfs.CheckPermission(&c, &attr, int(mode))
	}
	return 0, t.Kernel().VFS.Access(t, &wk, int(mode), &c)
}

func sysAccess(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doAccess(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], a[1], 0)
}

func sysFaccessat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doAccess(t, a[0], a[1], a[2], 0)
}

func sysFaccessat2(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doAccess(t, a[0], a[1], a[2], a[3])
}

// getdents fills the app buffer with linux_dirent64 (or the old
// linux_dirent) records.
func doGetdents(t *kernel.Task, fd, addr, size uint64, old bool) (uint64, error) {
	d, err := getFile(t, fd)
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if !d.VirtualDentry().Ok() || !d.IsDir() {
		return 0, unix.ENOTDIR
	}
	if size > 1<<20 {
		size = 1 << 20
	}
	buf := make([]byte, size)
	n := 0
	tooSmall := false
	err = d.IterDirents(t, func(de vfs.Dirent, off int64) bool {
		var rec int
		if old {
			rec = (8 + 8 + 2 + len(de.Name) + 2 + 7) &^ 7
		} else {
			rec = (8 + 8 + 2 + 1 + len(de.Name) + 1 + 7) &^ 7
		}
		if n+rec > len(buf) {
			tooSmall = n == 0
			return false
		}
		b := buf[n : n+rec]
		clear(b)
		binary.LittleEndian.PutUint64(b[0:], de.Ino)
		binary.LittleEndian.PutUint64(b[8:], uint64(off))
		binary.LittleEndian.PutUint16(b[16:], uint16(rec))
		if old {
			copy(b[18:], de.Name)
			b[rec-1] = de.Type
		} else {
			b[18] = de.Type
			copy(b[19:], de.Name)
		}
		n += rec
		return true
	})
	if err != nil && n == 0 {
		return 0, err
	}
	if tooSmall {
		return 0, unix.EINVAL
	}
	if _, err := t.MM().CopyOut(addr, buf[:n]); err != nil {
		return 0, unix.EFAULT
	}
	return uint64(n), nil
}

func sysGetdents64(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doGetdents(t, a[0], a[1], a[2], false)
}

func sysGetdents(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doGetdents(t, a[0], a[1], a[2], true)
}

func doReadlink(t *kernel.Task, dirfd, pathAddr, buf, size uint64) (uint64, error) {
	if int64(size) <= 0 {
		return 0, unix.EINVAL
	}
	wk, vd, err := pathWalk(t, dirfd, pathAddr, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH)
	if err == errNoPath {
		return 0, unix.EINVAL
	}
	if err != nil {
		return 0, err
	}
	var target string
	if vd.Ok() {
		// readlinkat(fd, "") reads an O_PATH|O_NOFOLLOW descriptor's link.
		a, err := vfs.StatVD(t, vd)
		if err != nil {
			return 0, err
		}
		if a.Type() != unix.S_IFLNK {
			return 0, unix.ENOENT
		}
		target, err = vd.Inode().Readlink(t)
		if err != nil {
			return 0, err
		}
	} else if target, err = t.Kernel().VFS.Readlink(t, &wk); err != nil {
		return 0, err
	}
	b := []byte(target)
	if uint64(len(b)) > size {
		b = b[:size]
	}
	if _, err := t.MM().CopyOut(buf, b); err != nil {
		return 0, unix.EFAULT
	}
	return uint64(len(b)), nil
}

func sysReadlink(t *kernel.Task, a *[6]uint64) (uint64, error) {
	path, err := copyPath(t, a[0])
	if err != nil {
		return 0, err
	}
	if path == "" {
		return 0, unix.ENOENT
	}
	return doReadlink(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], a[1], a[2])
}

func sysReadlinkat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doReadlink(t, a[0], a[1], a[2], a[3])
}

func sysGetcwd(t *kernel.Task, a *[6]uint64) (uint64, error) {
	root, cwd := t.FSContext().RootAndCwd()
	s := t.Kernel().VFS.PathOf(root, cwd)
	if cwd.Dentry.Dead() {
		return 0, unix.ENOENT
	}
	if !t.Kernel().VFS.IsUnder(root, cwd) {
		s = "(unreachable)" + s
	}
	b := append([]byte(s), 0)
	if uint64(len(b)) > a[1] {
		return 0, unix.ERANGE
	}
	if _, err := t.MM().CopyOut(a[0], b); err != nil {
		return 0, unix.EFAULT
	}
	return uint64(len(b)), nil
}

func sysChdir(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := resolveAt(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
	if err != nil {
		return 0, err
	}
	if err := t.Kernel().VFS.CheckChdir(t, vd); err != nil {
		return 0, err
	}
	t.FSContext().SetCwd(vd)
	return 0, nil
}

func sysFchdir(t *kernel.Task, a *[6]uint64) (uint64, error) {
	d, err := getFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	vd := d.VirtualDentry()
	if !vd.Ok() {
		return 0, unix.ENOTDIR
	}
	if err := t.Kernel().VFS.CheckChdir(t, vd); err != nil {
		return 0, err
	}
	t.FSContext().SetCwd(vd)
	return 0, nil
}

func sysChroot(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if !t.FSCredentials().Caps.Has(vfs.CapSysChroot) {
		return 0, unix.EPERM
	}
	vd, err := resolveAt(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
	if err != nil {
		return 0, err
	}
	if err := t.Kernel().VFS.CheckChdir(t, vd); err != nil {
		return 0, err
	}
	t.FSContext().SetRoot(vd)
	return 0, nil
}

func sysUmask(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return uint64(t.FSContext().SwapUmask(uint32(a[0]))), nil
}

func doMkdir(t *kernel.Task, dirfd, pathAddr, mode uint64) (uint64, error) {
	wk, _, err := pathWalk(t, dirfd, pathAddr, 0)
	if err != nil {
		return 0, err
	}
	return 0, t.Kernel().VFS.Mkdir(t, &wk, uint32(mode), umask(t))
}

func sysMkdir(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doMkdir(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], a[1])
}

func sysMkdirat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doMkdir(t, a[0], a[1], a[2])
}

func doMknod(t *kernel.Task, dirfd, pathAddr, mode, dev uint64) (uint64, error) {
	wk, _, err := pathWalk(t, dirfd, pathAddr, 0)
	if err != nil {
		return 0, err
	}
	return 0, t.Kernel().VFS.Mknod(t, &wk, uint32(mode), umask(t), dev)
}

func sysMknod(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doMknod(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], a[1], a[2])
}

func sysMknodat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doMknod(t, a[0], a[1], a[2], a[3])
}

func doUnlink(t *kernel.Task, dirfd, pathAddr, flags uint64) (uint64, error) {
	if flags&^unix.AT_REMOVEDIR != 0 {
		return 0, unix.EINVAL
	}
	wk, _, err := pathWalk(t, dirfd, pathAddr, 0)
	if err != nil {
		return 0, err
	}
	if flags&unix.AT_REMOVEDIR != 0 {
		return 0, t.Kernel().VFS.Rmdir(t, &wk)
	}
	return 0, t.Kernel().VFS.Unlink(t, &wk)
}

func sysUnlink(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doUnlink(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
}

func sysUnlinkat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doUnlink(t, a[0], a[1], a[2])
}

func sysRmdir(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doUnlink(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], unix.AT_REMOVEDIR)
}

func doRename(t *kernel.Task, olddir, oldAddr, newdir, newAddr, flags uint64) (uint64, error) {
	ow, _, err := pathWalk(t, olddir, oldAddr, 0)
	if err != nil {
		return 0, err
	}
	nw, _, err := pathWalk(t, newdir, newAddr, 0)
	if err != nil {
		return 0, err
	}
	if ow.Path == "" || nw.Path == "" {
		return 0, unix.ENOENT
	}
	return 0, t.Kernel().VFS.Rename(t, &ow, &nw, uint32(flags))
}

func sysRename(t *kernel.Task, a *[6]uint64) (uint64, error) {
	cwd := uint64(unix.AT_FDCWD & 0xffffffff)
	return doRename(t, cwd, a[0], cwd, a[1], 0)
}

func sysRenameat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doRename(t, a[0], a[1], a[2], a[3], 0)
}

func sysRenameat2(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doRename(t, a[0], a[1], a[2], a[3], a[4])
}

func doLink(t *kernel.Task, olddir, oldAddr, newdir, newAddr, flags uint64) (uint64, error) {
	if flags&^(unix.AT_SYMLINK_FOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	at := uint64(unix.AT_SYMLINK_NOFOLLOW)
	if flags&unix.AT_SYMLINK_FOLLOW != 0 {
		at = 0
	}
	if flags&unix.AT_EMPTY_PATH != 0 {
		if !t.FSCredentials().Caps.Has(vfs.CapDACReadSearch) {
			return 0, unix.ENOENT
		}
		at |= unix.AT_EMPTY_PATH
	}
	old, err := resolveAt(t, olddir, oldAddr, at)
	if err == errNoPath {
		return 0, unix.ENOENT
	}
	if err != nil {
		return 0, err
	}
	nw, _, err := pathWalk(t, newdir, newAddr, 0)
	if err != nil {
		return 0, err
	}
	if nw.Path == "" {
		return 0, unix.ENOENT
	}
	return 0, t.Kernel().VFS.Link(t, old, &nw)
}

func sysLink(t *kernel.Task, a *[6]uint64) (uint64, error) {
	cwd := uint64(unix.AT_FDCWD & 0xffffffff)
	return doLink(t, cwd, a[0], cwd, a[1], 0)
}

func sysLinkat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doLink(t, a[0], a[1], a[2], a[3], a[4])
}

func doSymlink(t *kernel.Task, targetAddr, dirfd, pathAddr uint64) (uint64, error) {
	target, err := copyPath(t, targetAddr)
	if err != nil {
		return 0, err
	}
	wk, _, err := pathWalk(t, dirfd, pathAddr, 0)
	if err != nil {
		return 0, err
	}
	if wk.Path == "" {
		return 0, unix.ENOENT
	}
	return 0, t.Kernel().VFS.Symlink(t, target, &wk)
}

func sysSymlink(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doSymlink(t, a[0], uint64(unix.AT_FDCWD&0xffffffff), a[1])
}

func sysSymlinkat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doSymlink(t, a[0], a[1], a[2])
}

// setattrFD or path: the object the *at call names, honouring
// AT_EMPTY_PATH and AT_SYMLINK_NOFOLLOW.
func setattrTarget(t *kernel.Task, dirfd, pathAddr, atFlags uint64) (vfs.VirtualDentry, error) {
	vd, err := resolveAt(t, dirfd, pathAddr, atFlags)
	if err == errNoPath {
		return vd, unix.EBADF
	}
	return vd, err
}

func fdTarget(t *kernel.Task, fd uint64) (vfs.VirtualDentry, error) {
	d, err := getFile(t, fd)
	if err != nil {
		return vfs.VirtualDentry{}, err
	}
	defer d.DecRef()
	if !d.VirtualDentry().Ok() {
		return vfs.VirtualDentry{}, unix.EBADF
	}
	if d.StatusFlags()&unix.O_PATH != 0 {
		return vfs.VirtualDentry{}, unix.EBADF
	}
	return d.VirtualDentry(), nil
}

func chmod(t *kernel.Task, vd vfs.VirtualDentry, mode uint64) (uint64, error) {
	return 0, t.Kernel().VFS.SetAttrVD(t, vd, &vfs.SetAttr{Mask: vfs.SetMode, Mode: uint32(mode) & 0o7777}, false)
}

func sysChmod(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := setattrTarget(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
	if err != nil {
		return 0, err
	}
	return chmod(t, vd, a[1])
}

func sysFchmod(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := fdTarget(t, a[0])
	if err != nil {
		return 0, err
	}
	return chmod(t, vd, a[1])
}

func sysFchmodat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := setattrTarget(t, a[0], a[1], 0)
	if err != nil {
		return 0, err
	}
	return chmod(t, vd, a[2])
}

func chown(t *kernel.Task, vd vfs.VirtualDentry, uid, gid uint64) (uint64, error) {
	req := &vfs.SetAttr{}
	if uint32(uid) != ^uint32(0) {
		req.Mask |= vfs.SetUID
		req.UID = uint32(uid)
	}
	if uint32(gid) != ^uint32(0) {
		req.Mask |= vfs.SetGID
		req.GID = uint32(gid)
	}
	if req.Mask == 0 {
		return 0, nil
	}
	return 0, t.Kernel().VFS.SetAttrVD(t, vd, req, false)
}

func sysChown(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := setattrTarget(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
	if err != nil {
		return 0, err
	}
	return chown(t, vd, a[1], a[2])
}

func sysLchown(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := setattrTarget(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return 0, err
	}
	return chown(t, vd, a[1], a[2])
}

func sysFchown(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := fdTarget(t, a[0])
	if err != nil {
		return 0, err
	}
	return chown(t, vd, a[1], a[2])
}

func sysFchownat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[4]&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	vd, err := setattrTarget(t, a[0], a[1], a[4])
	if err != nil {
		return 0, err
	}
	return chown(t, vd, a[2], a[3])
}

// setTimes applies utimensat's two timespecs (UTIME_NOW / UTIME_OMIT
// resolved here).
func setTimes(t *kernel.Task, vd vfs.VirtualDentry, ts *[2]unix.Timespec) (uint64, error) {
	req := &vfs.SetAttr{}
	now := unix.NsecToTimespec(time.Now().UnixNano())
	allNow := true
	for i, tm := range ts {
		switch tm.Nsec {
		case unix.UTIME_OMIT:
			continue
		case unix.UTIME_NOW:
			tm = now
		default:
			allNow = false
			if tm.Nsec < 0 || tm.Nsec >= 1e9 {
				return 0, unix.EINVAL
			}
		}
		if i == 0 {
			req.Mask |= vfs.SetAtime
			req.Atime = tm
		} else {
			req.Mask |= vfs.SetMtime
			req.Mtime = tm
		}
	}
	if req.Mask == 0 {
		return 0, nil
	}
	return 0, t.Kernel().VFS.SetAttrVD(t, vd, req, allNow)
}

func nowTimes() [2]unix.Timespec {
	return [2]unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}
}

func sysUtimensat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	dirfd, pathAddr, tsAddr, flags := a[0], a[1], a[2], a[3]
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	ts := nowTimes()
	if tsAddr != 0 {
		var b [32]byte
		if _, err := t.MM().CopyIn(tsAddr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		for i := range ts {
			ts[i] = unix.Timespec{Sec: int64(binary.LittleEndian.Uint64(b[16*i:])), Nsec: int64(binary.LittleEndian.Uint64(b[16*i+8:]))}
		}
	}
	var vd vfs.VirtualDentry
	var err error
	if pathAddr == 0 {
		// utimensat(fd, NULL, ...) is futimens.
		vd, err = fdTarget(t, dirfd)
	} else {
		vd, err = setattrTarget(t, dirfd, pathAddr, flags)
	}
	if err != nil {
		return 0, err
	}
	return setTimes(t, vd, &ts)
}

// timevals reads utimes' two timevals (NULL: now).
func timevals(t *kernel.Task, addr uint64) ([2]unix.Timespec, error) {
	ts := nowTimes()
	if addr == 0 {
		return ts, nil
	}
	var b [32]byte
	if _, err := t.MM().CopyIn(addr, b[:]); err != nil {
		return ts, unix.EFAULT
	}
	for i := range ts {
		usec := int64(binary.LittleEndian.Uint64(b[16*i+8:]))
		if usec < 0 || usec >= 1e6 {
			return ts, unix.EINVAL
		}
		ts[i] = unix.Timespec{Sec: int64(binary.LittleEndian.Uint64(b[16*i:])), Nsec: usec * 1000}
	}
	return ts, nil
}

func sysUtimes(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return sysFutimesatAt(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], a[1])
}

func sysFutimesat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return sysFutimesatAt(t, a[0], a[1], a[2])
}

func sysFutimesatAt(t *kernel.Task, dirfd, pathAddr, tvAddr uint64) (uint64, error) {
	ts, err := timevals(t, tvAddr)
	if err != nil {
		return 0, err
	}
	vd, err := setattrTarget(t, dirfd, pathAddr, 0)
	if err != nil {
		return 0, err
	}
	return setTimes(t, vd, &ts)
}

func sysUtime(t *kernel.Task, a *[6]uint64) (uint64, error) {
	ts := nowTimes()
	if a[1] != 0 {
		var b [16]byte
		if _, err := t.MM().CopyIn(a[1], b[:]); err != nil {
			return 0, unix.EFAULT
		}
		ts[0] = unix.Timespec{Sec: int64(binary.LittleEndian.Uint64(b[0:]))}
		ts[1] = unix.Timespec{Sec: int64(binary.LittleEndian.Uint64(b[8:]))}
	}
	vd, err := setattrTarget(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
	if err != nil {
		return 0, err
	}
	return setTimes(t, vd, &ts)
}

func truncate(t *kernel.Task, vd vfs.VirtualDentry, size int64) (uint64, error) {
	if size < 0 {
		return 0, unix.EINVAL
	}
	if uint64(size) > t.ThreadGroup().Limits().Get(unix.RLIMIT_FSIZE).Cur {
		t.SendThreadSignal(unix.SIGXFSZ, kernel.SigInfo{Signo: int32(unix.SIGXFSZ)})
		return 0, unix.EFBIG
	}
	return 0, t.Kernel().VFS.SetAttrVD(t, vd, &vfs.SetAttr{Mask: vfs.SetSize, Size: size}, false)
}

func sysTruncate(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := setattrTarget(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
	if err != nil {
		return 0, err
	}
	return truncate(t, vd, int64(a[1]))
}

func sysFtruncate(t *kernel.Task, a *[6]uint64) (uint64, error) {
	d, err := getFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if !d.VirtualDentry().Ok() || !writable(d) {
		return 0, unix.EINVAL
	}
	if d.StatusFlags()&unix.O_PATH != 0 {
		return 0, unix.EBADF
	}
	attr, err := d.Attr()
	if err != nil {
		return 0, err
	}
	if attr.Type() != unix.S_IFREG {
		return 0, unix.EINVAL
	}
	size := int64(a[1])
	if size < 0 {
		return 0, unix.EINVAL
	}
	// An open for writing already passed the permission check.
	if err := d.VirtualDentry().Inode().SetAttr(t, &vfs.SetAttr{Mask: vfs.SetSize, Size: size}); err != nil {
		return 0, err
	}
	d.Notify(unix.IN_MODIFY)
	return 0, nil
}

func copyOutStatfs(t *kernel.Task, addr uint64, st *unix.Statfs_t) (uint64, error) {
	if _, err := t.MM().CopyOut(addr, unsafeBytes(st)); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

func sysStatfs(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := resolveAt(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], 0)
	if err != nil {
		return 0, err
	}
	st, err := t.Kernel().VFS.StatFS(t, vd)
	if err != nil {
		return 0, err
	}
	return copyOutStatfs(t, a[1], &st)
}

func sysFstatfs(t *kernel.Task, a *[6]uint64) (uint64, error) {
	d, err := getFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if !d.VirtualDentry().Ok() {
		// Pipes, sockets and host stdio: report the host's answer shape
		// for an anonymous filesystem.
		return copyOutStatfs(t, a[1], &unix.Statfs_t{Type: 0x50495045, Bsize: 4096, Namelen: 255, Frsize: 4096})
	}
	st, err := t.Kernel().VFS.StatFS(t, d.VirtualDentry())
	if err != nil {
		return 0, err
	}
	return copyOutStatfs(t, a[1], &st)
}

func sysFlock(t *kernel.Task, a *[6]uint64) (uint64, error) {
	d, err := getFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if d.StatusFlags()&unix.O_PATH != 0 {
		return 0, unix.EBADF
	}
	return 0, t.Kernel().VFS.Flock(t, d, int(a[1]))
}

// atStatxSyncType is AT_STATX_SYNC_TYPE (FORCE_SYNC | DONT_SYNC).
const atStatxSyncType = 0x6000
