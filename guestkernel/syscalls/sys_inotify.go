package syscalls

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

func init() {
	full(unix.SYS_INOTIFY_INIT, sysInotifyInit)
	full(unix.SYS_INOTIFY_INIT1, sysInotifyInit1, aHex)
	full(unix.SYS_INOTIFY_ADD_WATCH, sysInotifyAddWatch, aFD, aPath, aHex)
	full(unix.SYS_INOTIFY_RM_WATCH, sysInotifyRmWatch, aFD, aInt)
}

// allInotifyBits are the mask bits inotify_add_watch knows (Linux's
// ALL_INOTIFY_BITS): a mask with none of them is EINVAL.
const allInotifyBits = unix.IN_ALL_EVENTS | unix.IN_UNMOUNT | unix.IN_Q_OVERFLOW | unix.IN_IGNORED |
	unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK | unix.IN_MASK_CREATE |
	unix.IN_MASK_ADD | unix.IN_ISDIR | unix.IN_ONESHOT

func doInotifyInit(t *kernel.Task, flags uint64) (uint64, error) {
	if flags&^(unix.IN_CLOEXEC|unix.IN_NONBLOCK) != 0 {
		return 0, unix.EINVAL
	}
	d := kernel.NewFileDescription(vfs.NewInotify(t.Kernel().VFS, int(flags&unix.IN_NONBLOCK)))
	defer d.DecRef()
	fd, err := t.FDTable().Install(d, 0, flags&unix.IN_CLOEXEC != 0, nofile(t))
	if err != nil {
		return 0, err
	}
	return uint64(fd), nil
}

func sysInotifyInit(t *kernel.Task, a *[6]uint64) (uint64, error) { return doInotifyInit(t, 0) }

func sysInotifyInit1(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doInotifyInit(t, a[0])
}

// inotifyOf returns the instance behind fd: EBADF for no file, EINVAL
// for a file that is not an inotify instance.
func inotifyOf(t *kernel.Task, fd uint64) (*vfs.Inotify, func(), error) {
	d, err := getFile(t, fd)
	if err != nil {
		return nil, nil, err
	}
	in, ok := d.File.(*vfs.Inotify)
	if !ok {
		d.DecRef()
		return nil, nil, unix.EINVAL
	}
	return in, d.DecRef, nil
}

func sysInotifyAddWatch(t *kernel.Task, a *[6]uint64) (uint64, error) {
	mask := uint32(a[2])
	if mask&allInotifyBits == 0 || mask&unix.IN_MASK_ADD != 0 && mask&unix.IN_MASK_CREATE != 0 {
		return 0, unix.EINVAL
	}
	in, done, err := inotifyOf(t, a[0])
	if err != nil {
		return 0, err
	}
	defer done()
	var atFlags uint64
	if mask&unix.IN_DONT_FOLLOW != 0 {
		atFlags = unix.AT_SYMLINK_NOFOLLOW
	}
	vd, err := resolveAt(t, uint64(unix.AT_FDCWD&0xffffffff), a[1], atFlags)
	if err != nil {
		return 0, err
	}
	attr, err := vfs.StatVD(t, vd)
	if err != nil {
		return 0, err
	}
	if mask&unix.IN_ONLYDIR != 0 && !attr.IsDir() {
		return 0, unix.ENOTDIR
	}
	// Watching needs read permission on the file, as on Linux.
	if err := vfs.CheckPermission(t.FSCredentials(), &attr, vfs.MayRead); err != nil {
		return 0, err
	}
	wd, err := in.AddWatch(vd, mask)
	return uint64(wd), err
}

func sysInotifyRmWatch(t *kernel.Task, a *[6]uint64) (uint64, error) {
	in, done, err := inotifyOf(t, a[0])
	if err != nil {
		return 0, err
	}
	defer done()
	return 0, in.RmWatch(int32(a[1]))
}
