// Package overlay is the Sentry's union filesystem, the default root
// filesystem of every sandbox: one writable upper layer (in practice a
// tmpfs) over one or more read-only lower layers (in practice the
// container's root filesystem served by the gofer), so that everything
// the app writes stays in the sandbox. It follows Linux overlayfs
// (Documentation/filesystems/overlayfs.rst) and works on its layers only
// through vfs.Inode, so any filesystem can be a layer:
//
//   - A name resolves to the topmost layer that has it. A whiteout in a
//     higher layer (a character device 0:0) hides the name below; a
//     directory with the xattr trusted.overlay.opaque="y" hides the
//     directories below it; directories present in several layers merge;
//     a non-directory hides everything below it.
//   - Reads go to the topmost layer's file directly. Any change to a file
//     that is only in a lower layer first copies it up: its parents (as
//     needed), then the file itself (data, mode, owner, times, xattrs), so
//     the lower layers are never written.
//   - Removing a name that a lower layer has leaves a whiteout in the
//     upper layer; a directory made where a whiteout was is made opaque.
//   - Like Linux without redirect_dir, renaming a directory that has
//     lower-layer content fails with EXDEV, so mv falls back to copying.
//
// Inode numbers. A file keeps the inode number of the layer it came from,
// with the layer's index in the top bits so layers cannot collide: bits
// 0-55 are the layer's own number, bits 56-63 the layer (0 the upper
// layer, 1 the first lower layer, and so on). Directories that exist in a
// lower layer (merged or not) show the topmost lower one's number; a
// copied-up file keeps its lower number (recorded in the upper file's
// private xattr trusted.overlay.ringfence.ino, so it survives the overlay
// forgetting the file, if the upper layer stores trusted.* xattrs, as
// tmpfs does); other upper files show the upper number. (Linux's xino=on
// does much the same.)
//
// Locking. Every overlay inode has a mutex, mu, held while it is copied
// up and, for a directory, while its entries change; locks are taken
// child before parent (copy-up walks up the tree). Lookups take a
// directory's mu only briefly to consult the child cache, never across
// the layers' lookups. Renames are serialised by the filesystem's
// renameMu. Nothing global is taken on the read path.
//
// Private names. Names beginning with TempPrefix are the overlay's
// temporary files in the upper layer: they are hidden from lookups and
// listings, and creating one fails with EPERM. (Linux keeps such files in
// a separate work directory; New gets no place for one.)
package overlay

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// SuperMagic is statfs's f_type for an overlay (OVERLAYFS_SUPER_MAGIC).
const SuperMagic = 0x794c7630

// TempPrefix begins the names of the overlay's own temporary files in
// upper directories (copy-up without O_TMPFILE support, whiteouts about to
// replace a file). Such names are invisible through the overlay.
const TempPrefix = ".ringfence-overlay-tmp."

// Private xattrs, never shown to or settable by the app.
const (
	privatePrefix = "trusted.overlay."
	xattrOpaque   = "trusted.overlay.opaque"
	// xattrOrigin records, on a copied-up non-directory, the inode number
	// it showed before copy-up (decimal), so that it keeps it.
	xattrOrigin = "trusted.overlay.ringfence.ino"
	// xattrImpure marks an upper directory holding copied-up files, whose
	// listing must look up their recorded numbers.
	xattrImpure = "trusted.overlay.impure"
)

// Inode number layout: the layer index above the layer's own number.
const (
	layerShift = 56
	inoMask    = 1<<layerShift - 1
	maxLayers  = 1 << (64 - layerShift) // upper included
)

// mixIno is the overlay inode number of a file numbered ino in layer idx.
func mixIno(ino uint64, idx int) uint64 { return ino&inoMask | uint64(idx)<<layerShift }

// defaultChunk is the size of the reads and writes of a copy-up.
const defaultChunk = 1 << 20

// Options configure an overlay.
type Options struct {
	// Creds are the credentials of the overlay's own work in the upper
	// layer (copy-up, whiteouts, private xattrs), as Linux uses the
	// mounter's; nil means root with every capability. Files the app
	// creates are made with the app's credentials.
	Creds *vfs.Credentials
	// CopyUpChunk is the size of each read and write that copies file
	// data up; 0 means 1 MiB.
	CopyUpChunk int
}

// FS is one overlay. The lower layers are never written, whatever the
// app does; with no upper layer every change fails with EROFS.
type FS struct {
	upper  vfs.Inode   // root of the upper layer; nil: read-only overlay
	lowers []vfs.Inode // roots of the lower layers, top first
	creds  vfs.Credentials
	chunk  int
	root   *inode

	// renameMu serialises renames, so that the tree's shape (parent
	// pointers) is stable while one orders its locks by ancestry.
	renameMu sync.Mutex
	tmpSeq   atomic.Uint64
}

var _ vfs.Filesystem = (*FS)(nil)

// New makes an overlay of upper (the root directory of the writable
// layer, or nil for a read-only overlay) over lowers (root directories of
// the read-only layers, topmost first). The layers must not change except
// through the overlay (as Linux requires). The layer roots stay the
// caller's: Release does not release them or their filesystems. New
// panics if there is no layer at all or more than 255 lower layers, which
// are programming errors.
func New(upper vfs.Inode, lowers []vfs.Inode, opts Options) *FS {
	if upper == nil && len(lowers) == 0 {
		panic("overlay: no layers")
	}
	if len(lowers) >= maxLayers {
		panic("overlay: too many lower layers")
	}
	fs := &FS{upper: upper, lowers: append([]vfs.Inode(nil), lowers...), chunk: opts.CopyUpChunk}
	if opts.Creds != nil {
		fs.creds = *opts.Creds
		fs.creds.Groups = append([]uint32(nil), opts.Creds.Groups...)
	} else {
		fs.creds = vfs.Credentials{Caps: vfs.AllCaps}
	}
	if fs.chunk <= 0 {
		fs.chunk = defaultChunk
	}
	fs.root = fs.newRoot()
	return fs
}

// newRoot stacks the layers' roots as a lookup stacks directories.
func (fs *FS) newRoot() *inode {
	mctx := fs.mctx(nil)
	r := &inode{fs: fs, typ: unix.S_IFDIR, isRoot: true, children: make(map[string]*inode)}
	if fs.upper != nil {
		r.setUpper(fs.upper)
		if a, err := fs.upper.Stat(nil); err == nil {
			r.ino = mixIno(a.Ino, 0)
		}
		if len(fs.lowers) > 0 && hasFlag(mctx, fs.upper, xattrOpaque) {
			return r
		}
	}
	for i, l := range fs.lowers {
		if i == 0 {
			if a, err := l.Stat(nil); err == nil {
				r.ino = mixIno(a.Ino, 1)
			}
		}
		r.lowers = append(r.lowers, layer{l, i + 1})
		if i < len(fs.lowers)-1 && hasFlag(mctx, l, xattrOpaque) {
			break
		}
	}
	return r
}

// Type is the name /proc/mounts shows.
func (fs *FS) Type() string { return "overlay" }

// Root is the merged root directory.
func (fs *FS) Root() vfs.Inode { return fs.root }

// Release has nothing to free: the layers belong to whoever made them,
// and the inodes the overlay looked up in them are released as the VFS
// releases the overlay's.
func (fs *FS) Release() {}

// ReadOnly reports an overlay without an upper layer.
func (fs *FS) ReadOnly() bool { return fs.upper == nil }

// tempName is a fresh private name for a temporary file.
func (fs *FS) tempName() string {
	return TempPrefix + strconv.FormatUint(fs.tmpSeq.Add(1), 36)
}

// isPrivateName reports a name the overlay keeps for itself.
func isPrivateName(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// isPrivateXattr reports an xattr the app may neither see nor set.
func isPrivateXattr(name string) bool { return strings.HasPrefix(name, privatePrefix) }

// isWhiteout reports the character device 0:0 that marks a removed name.
func isWhiteout(a *vfs.Attr) bool { return a.Type() == unix.S_IFCHR && a.Rdev == 0 }

// release gives back a layer inode the overlay looked up or made, as the
// VFS would when dropping its dentry (remote layers free their handles).
func release(in vfs.Inode) {
	if r, ok := in.(vfs.Releaser); ok {
		r.Release()
	}
}

// mounterCtx is the context of the overlay's own work in the layers: the
// overlay's credentials, with the app's context for everything else.
type mounterCtx struct {
	app   vfs.Context
	creds *vfs.Credentials
}

func (fs *FS) mctx(app vfs.Context) vfs.Context {
	if m, ok := app.(*mounterCtx); ok {
		return m
	}
	return &mounterCtx{app: app, creds: &fs.creds}
}

func (m *mounterCtx) FSCredentials() *vfs.Credentials { return m.creds }

func (m *mounterCtx) WaitHostFD(fd int, events int16, timeout time.Duration) error {
	if m.app != nil {
		return m.app.WaitHostFD(fd, events, timeout)
	}
	// No task to interrupt (the overlay's set-up): wait on the host.
	ms := -1
	if timeout >= 0 {
		ms = int(timeout / time.Millisecond)
	}
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: events}}, ms)
		if err != unix.EINTR {
			return err
		}
	}
}

func (m *mounterCtx) MM() *mm.MM {
	if m.app == nil {
		return nil
	}
	return m.app.MM()
}
