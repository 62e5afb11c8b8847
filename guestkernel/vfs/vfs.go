package vfs

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// DeviceOpener opens a character device node: whatever filesystem holds
// the node, the VFS sends opens of it to the device registered for its
// major:minor.
type DeviceOpener func(ctx Context, vd VirtualDentry, flags int) (File, error)

// MagicLink is an optional Inode interface for /proc's links to open
// files and directories (/proc/self/fd/N, exe, cwd, root): following one
// goes to the object itself, not to a path.
type MagicLink interface {
	Follow(ctx Context) (VirtualDentry, error)
}

// FilesystemType makes filesystems for mount(2) inside the sandbox.
type FilesystemType func(ctx Context, source string, flags uint64, data string) (Filesystem, error)

// VFS is one sandbox's virtual file system: device numbers, the device
// registry, filesystem types and the rename lock.
type VFS struct {
	// renameMu is held for writing by rename (which changes the tree's
	// shape) and for reading by path walks that climb with "..".
	renameMu sync.RWMutex

	nextMountID atomic.Int64
	nextDev     atomic.Uint64

	mu      sync.RWMutex
	devices map[uint64]DeviceOpener
	fsTypes map[string]FilesystemType

	locks fileLocks

	notify notifyState // inotify watches

	dcache    dentryCache
	evictions atomic.Int64

	// fifoOpen opens named pipes (set by the kernel's pipe support).
	fifoOpen DeviceOpener
}

// SetFIFOOpener makes opens of FIFO nodes go to open.
func (v *VFS) SetFIFOOpener(open DeviceOpener) { v.fifoOpen = open }

// New makes a VFS.
func New() *VFS {
	v := &VFS{devices: make(map[uint64]DeviceOpener), fsTypes: make(map[string]FilesystemType)}
	v.locks.init()
	v.dcache.limit = DefaultDentryCacheSize
	return v
}

// NewSuperblock registers fs with an anonymous device number (major 0, as
// Linux gives virtual filesystems).
func (v *VFS) NewSuperblock(fs Filesystem) *Superblock {
	sb := &Superblock{v: v, FS: fs, Dev: unix.Mkdev(0, uint32(v.nextDev.Add(1))+16)}
	sb.root = newDentry(sb, fs.Root(), "/", nil)
	return sb
}

// RegisterCharDevice makes opens of char device major:minor go to open.
func (v *VFS) RegisterCharDevice(major, minor uint32, open DeviceOpener) {
	v.mu.Lock()
	v.devices[unix.Mkdev(major, minor)] = open
	v.mu.Unlock()
}

func (v *VFS) device(rdev uint64) DeviceOpener {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.devices[rdev]
}

// RegisterFilesystemType lets mount(2) make filesystems of type name.
func (v *VFS) RegisterFilesystemType(name string, make FilesystemType) {
	v.mu.Lock()
	v.fsTypes[name] = make
	v.mu.Unlock()
}

func (v *VFS) filesystemType(name string) FilesystemType {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.fsTypes[name]
}

// FilesystemTypes lists the registered types, for /proc/filesystems.
func (v *VFS) FilesystemTypes() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for n := range v.fsTypes {
		out = append(out, n)
	}
	return out
}
