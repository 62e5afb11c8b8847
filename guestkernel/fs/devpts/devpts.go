// Package devpts implements the Sentry's pseudo-terminals: the devpts
// filesystem mounted at /dev/pts, the pty master that opening ptmx (char
// 5:2) creates, the slave /dev/pts/N (char 136:N), /dev/tty (char 5:0)
// for the caller's controlling terminal, and the N_TTY line discipline
// between master and slave (termios input and output processing,
// canonical editing, echo, VMIN/VTIME, signal characters, window size).
//
// As on Linux: a new pty starts locked (slave opens fail with EIO until
// TIOCSPTLCK unlocks it); /dev/pts/N appears when ptmx is opened and
// disappears when the master is closed, which also hangs the slave up
// (reads give EOF, writes EIO); when every slave file is closed, master
// reads fail with EIO once drained. The filesystem is one instance per
// sandbox, like Docker's mount with gid=5,mode=620,ptmxmode=666: /dev/ptmx
// is devfs's symlink to pts/ptmx, so ptmx must be usable by everyone.
//
// Left out: packet mode (TIOCPKT), TIOCSTI, TIOCVHANGUP, job control
// stops (SIGTTIN/SIGTTOU for background access: there is one process),
// the master's own termios (the master side is always raw), and holding
// echoes back while output is stopped.
package devpts

import (
	"fmt"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/fsutil"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Device numbers.
const (
	TTYAuxMajor = 5   // /dev/tty is 5:0, ptmx 5:2
	SlaveMajor  = 136 // UNIX98_PTY_SLAVE_MAJOR: /dev/pts/N is 136:N
	ttyMinor    = 0
	ptmxMinor   = 2
)

// superMagic is DEVPTS_SUPER_MAGIC, statfs's f_type.
const superMagic = 0x1cd1

// Options are the devpts mount options that matter.
type Options struct {
	// Mode is a new slave node's permission bits (mode=).
	Mode uint32
	// GID, if SetGID, is a new slave node's group (gid=); otherwise it
	// is the opener's.
	GID    uint32
	SetGID bool
	// PtmxMode is ptmx's permission bits (ptmxmode=).
	PtmxMode uint32
	// Max is the most ptys open at once (/proc/sys/kernel/pty/max).
	Max int
}

// DefaultOptions are what Docker mounts /dev/pts with
// (gid=5,mode=620,ptmxmode=666), with Linux's default pty limit.
func DefaultOptions() Options {
	return Options{Mode: 0o620, GID: 5, SetGID: true, PtmxMode: 0o666, Max: 4096}
}

// FS is the devpts filesystem: the directory, ptmx, and the slave node
// of every pty whose master is open.
type FS struct {
	v    *vfs.VFS
	opts Options
	root *rootDir
	ptmx *node

	mu sync.Mutex
	// ptys are the ptys by index, from ptmx's open until both ends are
	// closed (the index is not reused before).
	ptys map[uint32]*Terminal
	// visible are the ptys whose node is in the directory: until the
	// master closes.
	visible map[uint32]*Terminal
	// registered is how many slave minors (0..registered-1) have an
	// opener in the VFS's device registry.
	registered uint32
}

// New makes a devpts filesystem whose slave device openers are
// registered in v as ptys are made.
func New(v *vfs.VFS, opts Options) *FS {
	now := fsutil.Now()
	fs := &FS{v: v, opts: opts, ptys: make(map[uint32]*Terminal), visible: make(map[uint32]*Terminal)}
	fs.root = &rootDir{fs: fs, attr: vfs.Attr{Mode: unix.S_IFDIR | 0o755, Nlink: 2, Ino: 1, Blksize: 1024, Atime: now, Mtime: now, Ctime: now}}
	fs.ptmx = &node{fs: fs, name: "ptmx", attr: vfs.Attr{Mode: unix.S_IFCHR | opts.PtmxMode&0o7777, Nlink: 1, Ino: 2,
		Rdev: unix.Mkdev(TTYAuxMajor, ptmxMinor), Blksize: 1024, Atime: now, Mtime: now, Ctime: now}}
	return fs
}

// Register makes the pseudo-terminal devices work in v: ptmx (5:2),
// /dev/tty (5:0) and the slaves (136:N), and mount(2)'s "devpts" type,
// which mounts the same instance. It returns the filesystem for the
// caller to mount at /dev/pts.
func Register(v *vfs.VFS, opts Options) (vfs.Filesystem, error) {
	if opts.Max <= 0 || opts.Max > 1<<20 {
		return nil, fmt.Errorf("devpts: pty limit %d out of range", opts.Max)
	}
	fs := New(v, opts)
	v.RegisterCharDevice(TTYAuxMajor, ptmxMinor, fs.openPtmx)
	v.RegisterCharDevice(TTYAuxMajor, ttyMinor, fs.openTTY)
	v.RegisterFilesystemType("devpts", func(vfs.Context, string, uint64, string) (vfs.Filesystem, error) {
		return fs, nil
	})
	return fs, nil
}

// Type implements vfs.Filesystem.
func (fs *FS) Type() string { return "devpts" }

// Root implements vfs.Filesystem.
func (fs *FS) Root() vfs.Inode { return fs.root }

// Release implements vfs.Filesystem: the ptys outlive mounts (the
// device registry still reaches them).
func (fs *FS) Release() {}

// openPtmx is ptmx's opener: a new pair, of which the caller gets the
// master.
func (fs *FS) openPtmx(ctx vfs.Context, vd vfs.VirtualDentry, flags int) (vfs.File, error) {
	t, err := fs.newTerminal(ctx)
	if err != nil {
		return nil, err
	}
	return t.openMaster(vd.Mount, flags), nil
}

// openTTY is /dev/tty's opener: the caller's controlling terminal.
func (fs *FS) openTTY(ctx vfs.Context, _ vfs.VirtualDentry, flags int) (vfs.File, error) {
	s, ok := ctx.(Session)
	if !ok {
		return nil, unix.ENXIO
	}
	t, _ := s.ControllingTTY().(*Terminal)
	if t == nil {
		return nil, unix.ENXIO
	}
	return t.openSlave(ctx, flags, false)
}

// openSlaveIndex opens /dev/pts/N (or any node 136:N).
func (fs *FS) openSlaveIndex(ctx vfs.Context, index uint32, flags int) (vfs.File, error) {
	fs.mu.Lock()
	t := fs.ptys[index]
	fs.mu.Unlock()
	if t == nil {
		return nil, unix.EIO
	}
	return t.openSlave(ctx, flags, true)
}

// newTerminal makes a pair at the lowest free index, with its node
// owned by the caller.
func (fs *FS) newTerminal(ctx vfs.Context) (*Terminal, error) {
	creds := ctx.FSCredentials()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var index uint32
	for ; int(index) < fs.opts.Max; index++ {
		if fs.ptys[index] == nil {
			break
		}
	}
	if int(index) >= fs.opts.Max {
		return nil, unix.ENOSPC
	}
	for ; fs.registered <= index; fs.registered++ {
		minor := fs.registered
		fs.v.RegisterCharDevice(SlaveMajor, minor, func(ctx vfs.Context, _ vfs.VirtualDentry, flags int) (vfs.File, error) {
			return fs.openSlaveIndex(ctx, minor, flags)
		})
	}
	gid := creds.GID
	if fs.opts.SetGID {
		gid = fs.opts.GID
	}
	now := fsutil.Now()
	t := &Terminal{fs: fs, index: index, changed: make(chan struct{}), locked: true}
	t.ld.setTermios(DefaultTermios(), true)
	t.node = &node{fs: fs, name: strconv.FormatUint(uint64(index), 10), attr: vfs.Attr{
		Mode: unix.S_IFCHR | fs.opts.Mode&0o7777, Nlink: 1, UID: creds.UID, GID: gid, Ino: uint64(index) + 3,
		Rdev: unix.Mkdev(SlaveMajor, index), Blksize: 1024, Atime: now, Mtime: now, Ctime: now,
	}}
	fs.ptys[index] = t
	fs.visible[index] = t
	return t, nil
}

// masterClosed takes the pty's node out of the directory, and frees its
// index if no slave is open either.
func (fs *FS) masterClosed(t *Terminal) {
	t.mu.Lock()
	free := t.slaves == 0
	t.mu.Unlock()
	fs.mu.Lock()
	if fs.visible[t.index] == t {
		delete(fs.visible, t.index)
	}
	fs.mu.Unlock()
	if free {
		fs.freeIndex(t)
	}
}

func (fs *FS) freeIndex(t *Terminal) {
	fs.mu.Lock()
	if fs.ptys[t.index] == t {
		delete(fs.ptys, t.index)
	}
	fs.mu.Unlock()
}

// Lookup finds the live pty N (tests and the kernel's diagnostics).
func (fs *FS) Lookup(index uint32) *Terminal {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.visible[index]
}

// lookup is the directory's Lookup.
func (fs *FS) lookup(name string) (vfs.Inode, error) {
	if name == "ptmx" {
		return fs.ptmx, nil
	}
	n, err := strconv.ParseUint(name, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != name {
		return nil, unix.ENOENT
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if t := fs.visible[uint32(n)]; t != nil {
		return t.node, nil
	}
	return nil, unix.ENOENT
}

// attrs of the directory and its nodes, under fs.mu.

func (fs *FS) stat(a *vfs.Attr) vfs.Attr {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return *a
}

// setAttr applies what the VFS has allowed: mode, owner and times.
func (fs *FS) setAttr(a *vfs.Attr, req *vfs.SetAttr) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if req.Mask&vfs.SetMode != 0 {
		a.Mode = a.Mode&unix.S_IFMT | req.Mode&0o7777
	}
	if req.Mask&vfs.SetUID != 0 {
		a.UID = req.UID
	}
	if req.Mask&vfs.SetGID != 0 {
		a.GID = req.GID
	}
	if req.Mask&vfs.SetAtime != 0 {
		a.Atime = req.Atime
	}
	if req.Mask&vfs.SetMtime != 0 {
		a.Mtime = req.Mtime
	}
	a.Ctime = fsutil.Now()
	return nil
}

func statFS() (unix.Statfs_t, error) {
	return unix.Statfs_t{Type: superMagic, Bsize: 4096, Frsize: 4096, Namelen: 255}, nil
}

// rootDir is /dev/pts.
type rootDir struct {
	vfs.DirNoOps
	fs   *FS
	attr vfs.Attr
}

// Stat implements vfs.Inode.
func (d *rootDir) Stat(vfs.Context) (vfs.Attr, error) { return d.fs.stat(&d.attr), nil }

// SetAttr implements vfs.Inode.
func (d *rootDir) SetAttr(_ vfs.Context, req *vfs.SetAttr) error { return d.fs.setAttr(&d.attr, req) }

// StatFS implements vfs.Inode.
func (d *rootDir) StatFS(vfs.Context) (unix.Statfs_t, error) { return statFS() }

// Lookup implements vfs.Inode.
func (d *rootDir) Lookup(_ vfs.Context, name string) (vfs.Inode, error) { return d.fs.lookup(name) }

// Revalidate implements vfs.Revalidator: a pty's node is gone once its
// master closes, and N may then name a new pty.
func (d *rootDir) Revalidate(_ vfs.Context, name string, child vfs.Inode) bool {
	in, err := d.fs.lookup(name)
	return err == nil && in == child
}

// IterDir implements vfs.Inode: ptmx, then the ptys in index order.
func (d *rootDir) IterDir(ctx vfs.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	fs := d.fs
	fs.mu.Lock()
	nodes := make([]*node, 0, len(fs.visible)+1)
	for _, t := range fs.visible {
		nodes = append(nodes, t.node)
	}
	fs.mu.Unlock()
	slices.SortFunc(nodes, func(a, b *node) int { return int(a.attr.Ino) - int(b.attr.Ino) })
	nodes = append([]*node{fs.ptmx}, nodes...)
	for _, n := range nodes {
		// Cookies are inode numbers: stable while others come and go.
		off := int64(n.attr.Ino)
		if off <= cookie {
			continue
		}
		if !emit(vfs.Dirent{Name: n.name, Type: unix.DT_CHR, Ino: n.attr.Ino, Next: off}) {
			return nil
		}
	}
	return nil
}

// Directory changes are refused with EPERM, as devpts does.

// Create implements vfs.Inode.
func (d *rootDir) Create(vfs.Context, string, uint32, int) (vfs.Inode, vfs.File, error) {
	return nil, nil, unix.EPERM
}

// Mkdir implements vfs.Inode.
func (d *rootDir) Mkdir(vfs.Context, string, uint32) (vfs.Inode, error) { return nil, unix.EPERM }

// Mknod implements vfs.Inode.
func (d *rootDir) Mknod(vfs.Context, string, uint32, uint64) (vfs.Inode, error) {
	return nil, unix.EPERM
}

// Symlink implements vfs.Inode.
func (d *rootDir) Symlink(vfs.Context, string, string) (vfs.Inode, error) { return nil, unix.EPERM }

// Link implements vfs.Inode.
func (d *rootDir) Link(vfs.Context, string, vfs.Inode) error { return unix.EPERM }

// Unlink implements vfs.Inode.
func (d *rootDir) Unlink(vfs.Context, string) error { return unix.EPERM }

// Rmdir implements vfs.Inode.
func (d *rootDir) Rmdir(vfs.Context, string) error { return unix.EPERM }

// Rename implements vfs.Inode.
func (d *rootDir) Rename(vfs.Context, string, vfs.Inode, string, uint32) error { return unix.EPERM }

// node is ptmx or a slave's device node. Opening it goes through the
// VFS's device registry, not through the inode.
type node struct {
	vfs.NoOps
	fs   *FS
	name string
	attr vfs.Attr // under fs.mu
}

// Stat implements vfs.Inode.
func (n *node) Stat(vfs.Context) (vfs.Attr, error) { return n.fs.stat(&n.attr), nil }

// SetAttr implements vfs.Inode.
func (n *node) SetAttr(_ vfs.Context, req *vfs.SetAttr) error { return n.fs.setAttr(&n.attr, req) }

// StatFS implements vfs.Inode.
func (n *node) StatFS(vfs.Context) (unix.Statfs_t, error) { return statFS() }

var (
	_ vfs.Filesystem  = (*FS)(nil)
	_ vfs.Inode       = (*rootDir)(nil)
	_ vfs.Revalidator = (*rootDir)(nil)
	_ vfs.Inode       = (*node)(nil)
)
