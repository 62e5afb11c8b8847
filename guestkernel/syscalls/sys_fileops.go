package syscalls

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/tmpfs"
	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/vfs"
	"github.com/ringfence/ringfence/logging"
)

func init() {
	full(unix.SYS_FSYNC, sysFsync, aFD)
	full(unix.SYS_FDATASYNC, sysFdatasync, aFD)
	full(unix.SYS_SYNCFS, sysSyncfs, aFD)
	full(unix.SYS_SYNC, sysSync)
	full(unix.SYS_SYNC_FILE_RANGE, sysSyncFileRange, aFD, aInt, aInt, aHex)
	full(unix.SYS_FALLOCATE, sysFallocate, aFD, aHex, aInt, aInt)
	full(unix.SYS_FADVISE64, sysFadvise64, aFD, aInt, aInt, aInt)
	full(unix.SYS_GETXATTR, sysGetxattr, aPath, aPath, aHex, aInt)
	full(unix.SYS_LGETXATTR, sysLgetxattr, aPath, aPath, aHex, aInt)
	full(unix.SYS_FGETXATTR, sysFgetxattr, aFD, aPath, aHex, aInt)
	full(unix.SYS_SETXATTR, sysSetxattr, aPath, aPath, aHex, aInt, aHex)
	full(unix.SYS_LSETXATTR, sysLsetxattr, aPath, aPath, aHex, aInt, aHex)
	full(unix.SYS_FSETXATTR, sysFsetxattr, aFD, aPath, aHex, aInt, aHex)
	full(unix.SYS_LISTXATTR, sysListxattr, aPath, aHex, aInt)
	full(unix.SYS_LLISTXATTR, sysLlistxattr, aPath, aHex, aInt)
	full(unix.SYS_FLISTXATTR, sysFlistxattr, aFD, aHex, aInt)
	full(unix.SYS_REMOVEXATTR, sysRemovexattr, aPath, aPath)
	full(unix.SYS_LREMOVEXATTR, sysLremovexattr, aPath, aPath)
	full(unix.SYS_FREMOVEXATTR, sysFremovexattr, aFD, aPath)
	partial(unix.SYS_MOUNT, "tmpfs, proc, sysfs, bind mounts and remounts; no propagation flags beyond accepting MS_PRIVATE/MS_SLAVE/MS_SHARED as no-ops", sysMount, aPath, aPath, aPath, aHex, aHex)
	full(unix.SYS_UMOUNT2, sysUmount2, aPath, aHex)
	partial(unix.SYS_PIVOT_ROOT, "the calling task's root and working directory move to the new root (other tasks' with the process issue)", sysPivotRoot, aPath, aPath)
	partial(unix.SYS_MEMFD_CREATE, "MFD_HUGETLB gives ordinary pages", sysMemfdCreate, aPath, aHex)
}

// fdSync is the common core of fsync, fdatasync and sync_file_range.
func fdSync(t *kernel.Task, fd uint64, dataOnly bool) (uint64, error) {
	d, err := getFile(t, fd)
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if d.StatusFlags()&unix.O_PATH != 0 {
		return 0, unix.EBADF
	}
	if s, ok := d.File.(vfs.Syncer); ok {
		return 0, s.Sync(t, dataOnly)
	}
	return 0, nil
}

func sysFsync(t *kernel.Task, a *[6]uint64) (uint64, error)     { return fdSync(t, a[0], false) }
func sysFdatasync(t *kernel.Task, a *[6]uint64) (uint64, error) { return fdSync(t, a[0], true) }

// sysSyncfs: the Sentry's own filesystems are memory; remote files are
// written through at once, so there is nothing more to flush than fsync
// does.
func sysSyncfs(t *kernel.Task, a *[6]uint64) (uint64, error) { return fdSync(t, a[0], false) }

func sysSync(t *kernel.Task, a *[6]uint64) (uint64, error) { return 0, nil }

func sysSyncFileRange(t *kernel.Task, a *[6]uint64) (uint64, error) {
	const valid = 1 | 2 | 4 // WAIT_BEFORE, WRITE, WAIT_AFTER
	if int64(a[1]) < 0 || int64(a[2]) < 0 || a[3]&^valid != 0 {
		return 0, unix.EINVAL
	}
	return fdSync(t, a[0], true)
}

func sysFallocate(t *kernel.Task, a *[6]uint64) (uint64, error) {
	mode, off, length := uint32(a[1]), int64(a[2]), int64(a[3])
	if off < 0 || length <= 0 {
		return 0, unix.EINVAL
	}
	d, err := getFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if !writable(d) || d.StatusFlags()&unix.O_PATH != 0 {
		return 0, unix.EBADF
	}
	attr, err := d.Attr()
	if err != nil {
		return 0, err
	}
	switch attr.Type() {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return 0, unix.EISDIR
	case unix.S_IFIFO:
		return 0, unix.ESPIPE
	default:
		return 0, unix.ENODEV
	}
	if off+length < 0 {
		return 0, unix.EFBIG
	}
	al, ok := d.File.(vfs.Allocator)
	if !ok {
		return 0, unix.EOPNOTSUPP
	}
	if err := al.Allocate(t, mode, off, length); err != nil {
		return 0, err
	}
	d.Notify(unix.IN_MODIFY)
	return 0, nil
}

func sysFadvise64(t *kernel.Task, a *[6]uint64) (uint64, error) {
	d, err := getFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if d.Stream() {
		return 0, unix.ESPIPE
	}
	if a[3] > 5 || int64(a[2]) < 0 {
		return 0, unix.EINVAL
	}
	return 0, nil // advice only: the Sentry's caches decide for themselves
}

// xattrTarget resolves the object of a path xattr call.
func xattrTarget(t *kernel.Task, pathAddr uint64, follow bool) (vfs.VirtualDentry, error) {
	var at uint64
	if !follow {
		at = unix.AT_SYMLINK_NOFOLLOW
	}
	return resolveAt(t, uint64(unix.AT_FDCWD&0xffffffff), pathAddr, at)
}

func xattrName(t *kernel.Task, addr uint64) (string, error) {
	name, err := t.MM().CopyInString(addr, 255)
	if err == unix.ENAMETOOLONG {
		return "", unix.ERANGE
	}
	if err != nil {
		return "", unix.EFAULT
	}
	if name == "" {
		return "", unix.ERANGE
	}
	if !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "trusted.") &&
		!strings.HasPrefix(name, "security.") && !strings.HasPrefix(name, "system.") {
		return "", unix.EOPNOTSUPP
	}
	return name, nil
}

// xattrAllowed applies Linux's namespace rules: trusted.* needs
// CAP_SYS_ADMIN; user.* exists only on regular files and directories.
func xattrAllowed(t *kernel.Task, vd vfs.VirtualDentry, name string, write bool) error {
	a, err := vfs.StatVD(t, vd)
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(name, "trusted."):
		if !t.FSCredentials().Caps.Has(vfs.CapSysAdmin) {
			if write {
				return unix.EPERM
			}
			return unix.ENODATA
		}
	case strings.HasPrefix(name, "user."):
		if a.Type() != unix.S_IFREG && !a.IsDir() {
			if write {
				return unix.EPERM
			}
			return unix.ENODATA
		}
		may := vfs.MayRead
		if write {
			may = vfs.MayWrite
		}
		if err := vfs.CheckPermission(t.FSCredentials(), &a, may); err != nil {
			return err
		}
	case strings.HasPrefix(name, "system."):
		return unix.EOPNOTSUPP // ACLs are not supported
	}
	if write && vd.Mount.ReadOnly() {
		return unix.EROFS
	}
	return nil
}

func getxattr(t *kernel.Task, vd vfs.VirtualDentry, nameAddr, buf, size uint64) (uint64, error) {
	name, err := xattrName(t, nameAddr)
	if err != nil {
		return 0, err
	}
	if err := xattrAllowed(t, vd, name, false); err != nil {
		return 0, err
	}
	val, err := vd.Inode().Getxattr(t, name)
	if err != nil {
		return 0, err
	}
	if size == 0 {
		return uint64(len(val)), nil
	}
	if uint64(len(val)) > size {
		return 0, unix.ERANGE
	}
	if _, err := t.MM().CopyOut(buf, val); err != nil {
		return 0, unix.EFAULT
	}
	return uint64(len(val)), nil
}

func sysGetxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := xattrTarget(t, a[0], true)
	if err != nil {
		return 0, err
	}
	return getxattr(t, vd, a[1], a[2], a[3])
}

func sysLgetxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := xattrTarget(t, a[0], false)
	if err != nil {
		return 0, err
	}
	return getxattr(t, vd, a[1], a[2], a[3])
}

func sysFgetxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := fdTarget(t, a[0])
	if err != nil {
		return 0, err
	}
	return getxattr(t, vd, a[1], a[2], a[3])
}

func setxattr(t *kernel.Task, vd vfs.VirtualDentry, nameAddr, valAddr, size, flags uint64) (uint64, error) {
	if flags&^uint64(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return 0, unix.EINVAL
	}
	name, err := xattrName(t, nameAddr)
	if err != nil {
		return 0, err
	}
	if size > 65536 {
		return 0, unix.E2BIG
	}
	val := make([]byte, size)
	if _, err := t.MM().CopyIn(valAddr, val); err != nil {
		return 0, unix.EFAULT
	}
	if err := xattrAllowed(t, vd, name, true); err != nil {
		return 0, err
	}
	if err := vd.Inode().Setxattr(t, name, val, int(flags)); err != nil {
		return 0, err
	}
	t.Kernel().VFS.Notify(t, vd, unix.IN_ATTRIB)
	return 0, nil
}

func sysSetxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := xattrTarget(t, a[0], true)
	if err != nil {
		return 0, err
	}
	return setxattr(t, vd, a[1], a[2], a[3], a[4])
}

func sysLsetxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := xattrTarget(t, a[0], false)
	if err != nil {
		return 0, err
	}
	return setxattr(t, vd, a[1], a[2], a[3], a[4])
}

func sysFsetxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := fdTarget(t, a[0])
	if err != nil {
		return 0, err
	}
	return setxattr(t, vd, a[1], a[2], a[3], a[4])
}

func listxattr(t *kernel.Task, vd vfs.VirtualDentry, buf, size uint64) (uint64, error) {
	names, err := vd.Inode().Listxattr(t)
	if err != nil {
		return 0, err
	}
	privileged := t.FSCredentials().Caps.Has(vfs.CapSysAdmin)
	var out []byte
	for _, n := range names {
		if strings.HasPrefix(n, "trusted.") && !privileged {
			continue
		}
		out = append(append(out, n...), 0)
	}
	if size == 0 {
		return uint64(len(out)), nil
	}
	if uint64(len(out)) > size {
		return 0, unix.ERANGE
	}
	if _, err := t.MM().CopyOut(buf, out); err != nil {
		return 0, unix.EFAULT
	}
	return uint64(len(out)), nil
}

func sysListxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := xattrTarget(t, a[0], true)
	if err != nil {
		return 0, err
	}
	return listxattr(t, vd, a[1], a[2])
}

func sysLlistxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := xattrTarget(t, a[0], false)
	if err != nil {
		return 0, err
	}
	return listxattr(t, vd, a[1], a[2])
}

func sysFlistxattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := fdTarget(t, a[0])
	if err != nil {
		return 0, err
	}
	return listxattr(t, vd, a[1], a[2])
}

func removexattr(t *kernel.Task, vd vfs.VirtualDentry, nameAddr uint64) (uint64, error) {
	name, err := xattrName(t, nameAddr)
	if err != nil {
		return 0, err
	}
	if err := xattrAllowed(t, vd, name, true); err != nil {
		return 0, err
	}
	if err := vd.Inode().Removexattr(t, name); err != nil {
		return 0, err
	}
	t.Kernel().VFS.Notify(t, vd, unix.IN_ATTRIB)
	return 0, nil
}

func sysRemovexattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := xattrTarget(t, a[0], true)
	if err != nil {
		return 0, err
	}
	return removexattr(t, vd, a[1])
}

func sysLremovexattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := xattrTarget(t, a[0], false)
	if err != nil {
		return 0, err
	}
	return removexattr(t, vd, a[1])
}

func sysFremovexattr(t *kernel.Task, a *[6]uint64) (uint64, error) {
	vd, err := fdTarget(t, a[0])
	if err != nil {
		return 0, err
	}
	return removexattr(t, vd, a[1])
}

// mount(2) flags the Sentry understands.
const (
	msRemount     = unix.MS_REMOUNT
	msBind        = unix.MS_BIND
	msRec         = unix.MS_REC
	msPropagation = unix.MS_SHARED | unix.MS_PRIVATE | unix.MS_SLAVE | unix.MS_UNBINDABLE
	msPerMount    = vfs.MountReadOnly | vfs.MountNoSuid | vfs.MountNoDev | vfs.MountNoExec | vfs.MountNoAtime
	msIgnored     = unix.MS_SILENT | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME | unix.MS_LAZYTIME | unix.MS_MGC_VAL
)

func sysMount(t *kernel.Task, a *[6]uint64) (uint64, error) {
	srcAddr, targetAddr, typeAddr, flags, dataAddr := a[0], a[1], a[2], a[3], a[4]
	if flags&0xffff0000 == unix.MS_MGC_VAL {
		flags &^= 0xffff0000
	}
	if !t.FSCredentials().Caps.Has(vfs.CapSysAdmin) {
		return 0, unix.EPERM
	}
	target, err := resolveAt(t, uint64(unix.AT_FDCWD&0xffffffff), targetAddr, 0)
	if err != nil {
		return 0, err
	}
	v := t.Kernel().VFS
	switch {
	case flags&msRemount != 0:
		return 0, v.Remount(t, target, flags&msPerMount)
	case flags&msBind != 0:
		src, err := resolveAt(t, uint64(unix.AT_FDCWD&0xffffffff), srcAddr, 0)
		if err != nil {
			return 0, err
		}
		return 0, v.BindMount(t, src, target, flags&msPerMount)
	case flags&msPropagation != 0:
		return 0, nil // one mount namespace, no peers: nothing propagates
	}
	if flags&^(msPerMount|msIgnored|msRec) != 0 {
		logging.WarnOnce("mount-flags-"+strconv.FormatUint(flags, 16), "mount: flags %#x not supported", flags)
		return 0, unix.EINVAL
	}
	fsType, err := t.MM().CopyInString(typeAddr, 255)
	if err != nil {
		return 0, unix.EFAULT
	}
	var source, data string
	if srcAddr != 0 {
		if source, err = t.MM().CopyInString(srcAddr, maxPath); err != nil {
			return 0, unix.EFAULT
		}
	}
	if dataAddr != 0 {
		if data, err = t.MM().CopyInString(dataAddr, 4095); err != nil {
			return 0, unix.EFAULT
		}
	}
	if a, err := vfs.StatVD(t, target); err != nil || !a.IsDir() {
		return 0, unix.ENOTDIR
	}
	return 0, v.Mount(t, target, source, fsType, flags&msPerMount, data)
}

func sysUmount2(t *kernel.Task, a *[6]uint64) (uint64, error) {
	const (
		mntForce  = 1
		mntDetach = 2
		mntExpire = 4
		noFollow  = 8
	)
	flags := a[1]
	if flags&^(mntForce|mntDetach|mntExpire|noFollow) != 0 || flags&mntExpire != 0 && flags&(mntForce|mntDetach) != 0 {
		return 0, unix.EINVAL
	}
	if !t.FSCredentials().Caps.Has(vfs.CapSysAdmin) {
		return 0, unix.EPERM
	}
	var at uint64
	if flags&noFollow != 0 {
		at = unix.AT_SYMLINK_NOFOLLOW
	}
	vd, err := resolveAt(t, uint64(unix.AT_FDCWD&0xffffffff), a[0], at)
	if err != nil {
		return 0, err
	}
	return 0, t.Kernel().VFS.Unmount(t, vd, flags&mntDetach != 0)
}

// fcntl record locks: struct flock on x86-64.
type flock struct {
	Type   int16
	Whence int16
	_      int32
	Start  int64
	Len    int64
	PID    int32
	_      int32
}

// lockRange turns a struct flock into an absolute range for d.
func lockRange(t *kernel.Task, d *kernel.FileDescription, fl *flock) (vfs.LockRange, error) {
	var base int64
	switch int(fl.Whence) {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		pos, err := d.Seek(0, unix.SEEK_CUR)
		if err != nil {
			return vfs.LockRange{}, err
		}
		base = pos
	case unix.SEEK_END:
		a, err := d.Attr()
		if err != nil {
			return vfs.LockRange{}, err
		}
		base = a.Size
	default:
		return vfs.LockRange{}, unix.EINVAL
	}
	start := base + fl.Start
	r := vfs.LockRange{Type: fl.Type}
	switch {
	case fl.Len > 0:
		r.Start, r.End = start, start+fl.Len
	case fl.Len == 0:
		r.Start, r.End = start, vfs.ToEOF
	default:
		r.Start, r.End = start+fl.Len, start
	}
	if r.Start < 0 {
		return r, unix.EINVAL
	}
	if r.End < r.Start {
		return r, unix.EOVERFLOW
	}
	return r, nil
}

// fcntlLock serves F_GETLK/F_SETLK/F_SETLKW and their OFD forms.
func fcntlLock(t *kernel.Task, d *kernel.FileDescription, cmd int, arg uint64) (uint64, error) {
	if !d.VirtualDentry().Ok() || d.StatusFlags()&unix.O_PATH != 0 {
		return 0, unix.EBADF
	}
	var fl flock
	if _, err := t.MM().CopyIn(arg, unsafeBytes(&fl)); err != nil {
		return 0, unix.EFAULT
	}
	ofd := cmd == unix.F_OFD_GETLK || cmd == unix.F_OFD_SETLK || cmd == unix.F_OFD_SETLKW
	if ofd && fl.PID != 0 {
		return 0, unix.EINVAL
	}
	switch fl.Type {
	case unix.F_RDLCK, unix.F_WRLCK, unix.F_UNLCK:
	default:
		return 0, unix.EINVAL
	}
	r, err := lockRange(t, d, &fl)
	if err != nil {
		return 0, err
	}
	var owner any = t.ThreadGroup()
	r.PID = t.ThreadGroup().PID()
	if ofd {
		owner, r.PID = d, -1
	}
	v := t.Kernel().VFS
	switch cmd {
	case unix.F_GETLK, unix.F_OFD_GETLK:
		if fl.Type == unix.F_UNLCK {
			return 0, unix.EINVAL
		}
		got := v.TestLock(d.VirtualDentry().Inode(), owner, r)
		fl.Type = got.Type
		if got.Type != unix.F_UNLCK {
			fl.Whence = unix.SEEK_SET
			fl.Start = got.Start
			fl.Len = 0
			if got.End != vfs.ToEOF {
				fl.Len = got.End - got.Start
			}
			fl.PID = got.PID
		}
		if _, err := t.MM().CopyOut(arg, unsafeBytes(&fl)); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	}
	if (fl.Type == unix.F_RDLCK && !readable(d)) || (fl.Type == unix.F_WRLCK && !writable(d)) {
		return 0, unix.EBADF
	}
	wait := cmd == unix.F_SETLKW || cmd == unix.F_OFD_SETLKW
	return 0, v.SetLock(t, d, owner, r, wait)
}

// releasePOSIXLocks drops the process's record locks on the file fd
// named before close: POSIX says any close of the file drops them all.
func releasePOSIXLocks(t *kernel.Task, d *kernel.FileDescription) {
	if d.VirtualDentry().Ok() {
		t.Kernel().VFS.ReleasePOSIX(d.VirtualDentry().Inode(), t.ThreadGroup())
	}
}

// sealer is what memfd files offer for F_ADD_SEALS / F_GET_SEALS.
type sealer interface {
	Seals() uint32
	AddSeals(s uint32) error
}

func fcntlSeals(t *kernel.Task, d *kernel.FileDescription, cmd int, arg uint64) (uint64, error) {
	s, ok := d.File.(sealer)
	if !ok {
		return 0, unix.EINVAL
	}
	if cmd == unix.F_GET_SEALS {
		return uint64(s.Seals()), nil
	}
	if !writable(d) {
		return 0, unix.EPERM
	}
	return 0, s.AddSeals(uint32(arg))
}

func sysMemfdCreate(t *kernel.Task, a *[6]uint64) (uint64, error) {
	const (
		mfdNameMax = 249 // NAME_MAX less the "memfd:" prefix
		mfdHugeTLB = 0x4
		mfdValid   = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING | mfdHugeTLB | unix.MFD_NOEXEC_SEAL | unix.MFD_EXEC
	)
	flags := a[1]
	if flags&^(mfdValid|uint64(0x3f)<<26) != 0 || flags&unix.MFD_NOEXEC_SEAL != 0 && flags&unix.MFD_EXEC != 0 {
		return 0, unix.EINVAL
	}
	name, err := t.MM().CopyInString(a[0], mfdNameMax)
	if err == unix.ENAMETOOLONG {
		return 0, unix.EINVAL
	}
	if err != nil {
		return 0, unix.EFAULT
	}
	k := t.Kernel()
	m := k.MemfdMount()
	inode, f := tmpfs.MemfdFS(k.MemFile).NewMemfd(t, name, uint(flags))
	d := k.VFS.NewUnnamedFile(m, inode, "memfd:"+name, f)
	defer d.DecRef()
	fd, err := t.FDTable().Install(d, 0, flags&unix.MFD_CLOEXEC != 0, nofile(t))
	return uint64(fd), err
}

func sysPivotRoot(t *kernel.Task, a *[6]uint64) (uint64, error) {
	cwd := uint64(unix.AT_FDCWD & 0xffffffff)
	newRoot, err := resolveAt(t, cwd, a[0], 0)
	if err != nil {
		return 0, err
	}
	putOld, err := resolveAt(t, cwd, a[1], 0)
	if err != nil {
		return 0, err
	}
	fsc := t.FSContext()
	root, wd := fsc.RootAndCwd()
	if err := t.Kernel().VFS.PivotRoot(t, root, newRoot, putOld); err != nil {
		return 0, err
	}
	// As Linux does for every task: a root or cwd at the old root moves
	// to the new one.
	if root == root.Mount.Root() {
		fsc.SetRoot(newRoot)
	}
	if wd == root {
		fsc.SetCwd(newRoot)
	}
	return 0, nil
}
