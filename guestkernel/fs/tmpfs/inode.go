package tmpfs

import (
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// inode is what all tmpfs files share. The concrete types (dir, regular,
// symlink, special) embed it; vfs.NoOps supplies the "not supported by
// this type" answers they do not override.
type inode struct {
	vfs.NoOps
	fs    *FS
	ino   uint64
	ftype uint32 // S_IFMT bits; never change, so read without mu

	mu     sync.RWMutex
	mode   uint32 // ftype | permission bits
	nlink  uint64
	uid    uint32
	gid    uint32
	rdev   uint64
	atime  unix.Timespec
	mtime  unix.Timespec
	ctime  unix.Timespec
	btime  unix.Timespec
	xattrs map[string][]byte
}

// node is a tmpfs inode of any type.
type node interface {
	vfs.Inode
	base() *inode
	// unlinkedLocked is called, with mu held, when nlink drops to zero.
	unlinkedLocked()
}

func (i *inode) base() *inode { return i }

func now() unix.Timespec { return unix.NsecToTimespec(time.Now().UnixNano()) }

func credsOf(ctx vfs.Context) *vfs.Credentials {
	if ctx == nil {
		return nil
	}
	return ctx.FSCredentials()
}

func hasCap(ctx vfs.Context, c int) bool {
	cr := credsOf(ctx)
	return cr != nil && cr.Caps.Has(c)
}

func inGroup(cr *vfs.Credentials, gid uint32) bool {
	return cr != nil && (cr.GID == gid || slices.Contains(cr.Groups, gid))
}

// initInode fills in a new inode of mode (type and permissions) made by
// ctx in parent (nil for the root and memfds; parent's mu held). The
// owner is the caller's fsuid and fsgid, except that a set-group-ID
// parent gives its group, and its S_ISGID to subdirectories. A new
// non-directory keeps S_ISGID only if its creator could have set it on a
// file of that group (Linux's mode_strip_sgid).
func (fs *FS) initInode(i *inode, ctx vfs.Context, parent *dir, mode uint32) {
	cr := credsOf(ctx)
	if cr != nil {
		i.uid, i.gid = cr.UID, cr.GID
	}
	if parent != nil && parent.mode&unix.S_ISGID != 0 {
		i.gid = parent.gid
		if mode&unix.S_IFMT == unix.S_IFDIR {
			mode |= unix.S_ISGID
		} else if mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP &&
			!inGroup(cr, parent.gid) && !hasCap(ctx, vfs.CapFsetid) {
			mode &^= unix.S_ISGID
		}
	}
	i.fs = fs
	i.ino = fs.nextIno.Add(1)
	i.ftype = mode & unix.S_IFMT
	i.mode = mode
	t := now()
	i.atime, i.mtime, i.ctime, i.btime = t, t, t, t
}

// attrLocked is the type-independent part of Stat.
func (i *inode) attrLocked() vfs.Attr {
	return vfs.Attr{
		Mode: i.mode, Nlink: i.nlink, UID: i.uid, GID: i.gid, Rdev: i.rdev,
		Blksize: pageSize, Ino: i.ino, Dev: i.fs.Dev(),
		Atime: i.atime, Mtime: i.mtime, Ctime: i.ctime, Btime: i.btime,
	}
}

// setAttrLocked applies everything in req but the size, and sets ctime.
func (i *inode) setAttrLocked(req *vfs.SetAttr, t unix.Timespec) {
	if req.Mask&vfs.SetMode != 0 {
		i.mode = i.ftype | req.Mode&07777
	}
	if req.Mask&vfs.SetUID != 0 {
		i.uid = req.UID
	}
	if req.Mask&vfs.SetGID != 0 {
		i.gid = req.GID
	}
	if req.Mask&vfs.SetAtime != 0 {
		i.atime = req.Atime
	}
	if req.Mask&vfs.SetMtime != 0 {
		i.mtime = req.Mtime
	}
	i.ctime = t
}

// SetAttr changes the attributes of a non-regular file: only regular
// files have a size to set.
func (i *inode) SetAttr(ctx vfs.Context, req *vfs.SetAttr) error {
	if req.Mask&vfs.SetSize != 0 {
		if i.ftype == unix.S_IFDIR {
			return unix.EISDIR
		}
		return unix.EINVAL
	}
	i.mu.Lock()
	i.setAttrLocked(req, now())
	i.mu.Unlock()
	return nil
}

// StatFS answers statfs(2) for any file of the filesystem.
func (i *inode) StatFS(ctx vfs.Context) (unix.Statfs_t, error) { return i.fs.statfs(), nil }

// Extended attributes. Linux limits: names of at most 255 bytes (ERANGE),
// values of at most 64 KiB (E2BIG).
const (
	xattrNameMax = 255
	xattrSizeMax = 64 << 10
)

// checkXattrName accepts the namespaces Linux tmpfs stores: user.,
// trusted. and security. (system.posix_acl_* would need ACL semantics).
func checkXattrName(name string) error {
	if len(name) > xattrNameMax {
		return unix.ERANGE
	}
	for _, p := range [...]string{"user.", "trusted.", "security."} {
		if suffix, ok := strings.CutPrefix(name, p); ok {
			if suffix == "" {
				return unix.EINVAL
			}
			return nil
		}
	}
	return unix.EOPNOTSUPP
}

// userXattrOK reports whether the file may carry user.* attributes: as
// on Linux, only regular files and directories (other types' permission
// bits do not say who may write them).
func (i *inode) userXattrOK(name string) bool {
	return !strings.HasPrefix(name, "user.") || i.ftype == unix.S_IFREG || i.ftype == unix.S_IFDIR
}

func (i *inode) Getxattr(ctx vfs.Context, name string) ([]byte, error) {
	if err := checkXattrName(name); err != nil {
		return nil, err
	}
	if !i.userXattrOK(name) {
		return nil, unix.ENODATA
	}
	i.mu.RLock()
	defer i.mu.RUnlock()
	v, ok := i.xattrs[name]
	if !ok {
		return nil, unix.ENODATA
	}
	return slices.Clone(v), nil
}

func (i *inode) Setxattr(ctx vfs.Context, name string, value []byte, flags int) error {
	if err := checkXattrName(name); err != nil {
		return err
	}
	if len(value) > xattrSizeMax {
		return unix.E2BIG
	}
	if flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return unix.EINVAL
	}
	if !i.userXattrOK(name) {
		return unix.EPERM
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	_, exists := i.xattrs[name]
	if exists && flags&unix.XATTR_CREATE != 0 {
		return unix.EEXIST
	}
	if !exists && flags&unix.XATTR_REPLACE != 0 {
		return unix.ENODATA
	}
	if i.xattrs == nil {
		i.xattrs = make(map[string][]byte)
	}
	i.xattrs[name] = append(make([]byte, 0, len(value)), value...)
	i.ctime = now()
	return nil
}

// Listxattr lists names in order. trusted.* is shown only to callers with
// CAP_SYS_ADMIN, as Linux's simple_xattr_list does (a nil ctx is the
// Sentry itself and sees all).
func (i *inode) Listxattr(ctx vfs.Context) ([]string, error) {
	hideTrusted := ctx != nil && !hasCap(ctx, vfs.CapSysAdmin)
	i.mu.RLock()
	names := make([]string, 0, len(i.xattrs))
	for n := range i.xattrs {
		if hideTrusted && strings.HasPrefix(n, "trusted.") {
			continue
		}
		names = append(names, n)
	}
	i.mu.RUnlock()
	slices.Sort(names)
	return names, nil
}

func (i *inode) Removexattr(ctx vfs.Context, name string) error {
	if err := checkXattrName(name); err != nil {
		return err
	}
	if !i.userXattrOK(name) {
		return unix.ENODATA
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.xattrs[name]; !ok {
		return unix.ENODATA
	}
	delete(i.xattrs, name)
	i.ctime = now()
	return nil
}

// symlink is a symbolic link; its target lives in Go memory. Like Linux,
// a target too long to store inline in the inode (128 bytes) is charged
// a page against the size limit.
type symlink struct {
	inode
	target  string
	charged bool
}

const shortSymlinkLen = 128

func (s *symlink) Stat(ctx vfs.Context) (vfs.Attr, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := s.attrLocked()
	a.Size = int64(len(s.target))
	if s.charged {
		a.Blocks = pageSize / 512
	}
	return a, nil
}

func (s *symlink) Readlink(ctx vfs.Context) (string, error) { return s.target, nil }

// Open of a symlink only happens if the VFS did not follow it (O_NOFOLLOW).
func (s *symlink) Open(ctx vfs.Context, flags int) (vfs.File, error) { return nil, unix.ELOOP }

func (s *symlink) unlinkedLocked() {
	if s.charged {
		s.charged = false
		s.fs.uncharge(1)
	}
	s.fs.inodes.Add(-1)
}

// special is a FIFO, socket or device node. It holds attributes only:
// the VFS opens FIFOs and devices by type and Rdev (Open here answers
// ENXIO, which is what Linux gives for sockets). A whiteout is the
// character device 0:0 and needs nothing more.
type special struct{ inode }

func (s *special) Stat(ctx vfs.Context) (vfs.Attr, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.attrLocked(), nil
}

func (s *special) unlinkedLocked() { s.fs.inodes.Add(-1) }
