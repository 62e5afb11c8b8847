package vfs

import "golang.org/x/sys/unix"

// NoOps answers every Inode method except Stat with the error Linux gives
// a non-directory that does not support it. Filesystems embed it and
// override what they implement; read-only directories embed DirNoOps.
type NoOps struct{}

func (NoOps) SetAttr(Context, *SetAttr) error       { return unix.EPERM }
func (NoOps) Open(Context, int) (File, error)       { return nil, unix.ENXIO }
func (NoOps) Lookup(Context, string) (Inode, error) { return nil, unix.ENOTDIR }
func (NoOps) IterDir(Context, int64, func(Dirent) bool) error {
	return unix.ENOTDIR
}
func (NoOps) Create(Context, string, uint32, int) (Inode, File, error) {
	return nil, nil, unix.ENOTDIR
}
func (NoOps) Mkdir(Context, string, uint32) (Inode, error)         { return nil, unix.ENOTDIR }
func (NoOps) Mknod(Context, string, uint32, uint64) (Inode, error) { return nil, unix.ENOTDIR }
func (NoOps) Symlink(Context, string, string) (Inode, error)       { return nil, unix.ENOTDIR }
func (NoOps) Link(Context, string, Inode) error                    { return unix.ENOTDIR }
func (NoOps) Unlink(Context, string) error                         { return unix.ENOTDIR }
func (NoOps) Rmdir(Context, string) error                          { return unix.ENOTDIR }
func (NoOps) Rename(Context, string, Inode, string, uint32) error  { return unix.ENOTDIR }
func (NoOps) Readlink(Context) (string, error)                     { return "", unix.EINVAL }
func (NoOps) Getxattr(Context, string) ([]byte, error)             { return nil, unix.ENOTSUP }
func (NoOps) Setxattr(Context, string, []byte, int) error          { return unix.ENOTSUP }
func (NoOps) Listxattr(Context) ([]string, error)                  { return nil, nil }
func (NoOps) Removexattr(Context, string) error                    { return unix.ENOTSUP }
func (NoOps) StatFS(Context) (unix.Statfs_t, error)                { return unix.Statfs_t{}, unix.ENOSYS }

// DirNoOps is NoOps for a read-only directory: it refuses changes with
// EPERM (procfs, sysfs) instead of ENOTDIR, and opening it for I/O with
// EISDIR. Lookup and IterDir remain the directory's to implement.
type DirNoOps struct{ NoOps }

func (DirNoOps) Open(Context, int) (File, error) { return nil, unix.EISDIR }
func (DirNoOps) Create(Context, string, uint32, int) (Inode, File, error) {
	return nil, nil, unix.EACCES
}
func (DirNoOps) Mkdir(Context, string, uint32) (Inode, error)         { return nil, unix.EACCES }
func (DirNoOps) Mknod(Context, string, uint32, uint64) (Inode, error) { return nil, unix.EACCES }
func (DirNoOps) Symlink(Context, string, string) (Inode, error)       { return nil, unix.EACCES }
func (DirNoOps) Link(Context, string, Inode) error                    { return unix.EACCES }
func (DirNoOps) Unlink(Context, string) error                         { return unix.EACCES }
func (DirNoOps) Rmdir(Context, string) error                          { return unix.EACCES }
func (DirNoOps) Rename(Context, string, Inode, string, uint32) error  { return unix.EACCES }
