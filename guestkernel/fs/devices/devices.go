// Package devices implements the memory character devices of Linux's
// major 1 (/dev/null, zero, full, random, urandom) and registers them with
// the VFS, which sends opens of any node with their numbers here whatever
// filesystem holds the node.
package devices

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// MemMajor is the major number of the memory devices.
const MemMajor = 1

// Minor numbers of the memory devices.
const (
	NullMinor    = 3
	ZeroMinor    = 5
	FullMinor    = 7
	RandomMinor  = 8
	URandomMinor = 9
)

// random(4) ioctls (_IOR/_IOW('R', n, ...)).
const (
	rndGetEntCnt   = 0x80045200
	rndAddToEntCnt = 0x40045201
	rndAddEntropy  = 0x40085203
	rndZapEntCnt   = 0x5204
	rndClearPool   = 0x5206
	rndReseedCRNG  = 0x5207
)

// entropyCount is what RNDGETENTCNT and /proc/sys/kernel/random/
// entropy_avail report: a full pool, as Linux 5.18 and later always do.
const entropyCount = 256

type kind int

const (
	null kind = iota
	zero
	full
	random
)

// Register makes the VFS open the memory devices here.
func Register(v *vfs.VFS) {
	for _, minor := range []uint32{NullMinor, ZeroMinor, FullMinor, RandomMinor, URandomMinor} {
		v.RegisterCharDevice(MemMajor, minor, func(_ vfs.Context, vd vfs.VirtualDentry, flags int) (vfs.File, error) {
			return Open(minor, vd, flags)
		})
	}
}

// Open opens memory device minor (one of the *Minor constants) as the node
// vd with flags. It is what Register installs, exported for device nodes
// made outside the VFS.
func Open(minor uint32, vd vfs.VirtualDentry, flags int) (vfs.File, error) {
	f := &file{vd: vd, minor: minor}
	switch minor {
	case NullMinor:
		f.kind = null
	case ZeroMinor:
		f.kind = zero
	case FullMinor:
		f.kind = full
	case RandomMinor, URandomMinor:
		// random no longer blocks once the pool is initialised (Linux
		// 5.6), and the Sentry's source, getrandom, is by then.
		f.kind = random
	default:
		return nil, unix.ENXIO
	}
	f.flags.Store(int32(flags))
	if f.kind == zero {
		return zeroFile{f}, nil
	}
	return f, nil
}

// file is an open memory device.
type file struct {
	kind  kind
	minor uint32
	vd    vfs.VirtualDentry
	flags atomic.Int32
}

// Read fills dst without allocating.
func (f *file) Read(_ vfs.Context, dst [][]byte, _ int64) (int, error) {
	n := 0
	switch f.kind {
	case null:
		return 0, nil
	case zero, full:
		for _, b := range dst {
			clear(b)
			n += len(b)
		}
	case random:
		for _, b := range dst {
			// crypto/rand reads the host's getrandom, which never fails
			// or blocks once the host is booted.
			rand.Read(b)
			n += len(b)
		}
	}
	return n, nil
}

// Write discards the data, except that /dev/full is always full.
func (f *file) Write(_ vfs.Context, src [][]byte, _ int64) (int, error) {
	if f.kind == full {
		return 0, unix.ENOSPC
	}
	n := 0
	for _, b := range src {
		n += len(b)
	}
	return n, nil
}

// Seek: positions mean nothing to these devices; the VFS keeps one for
// them and only SEEK_DATA/SEEK_HOLE arrive here.
func (f *file) Seek(int64, int) (int64, error) { return 0, unix.EINVAL }

// Stat is the node's; the VFS answers fstat from the node itself, this is
// for callers holding only the File.
func (f *file) Stat() (unix.Stat_t, error) {
	if !f.vd.Ok() {
		return unix.Stat_t{Mode: unix.S_IFCHR | 0o666, Rdev: unix.Mkdev(MemMajor, f.minor), Nlink: 1}, nil
	}
	a, err := f.vd.Inode().Stat(nil)
	if err != nil {
		return unix.Stat_t{}, err
	}
	a.Dev = f.vd.Dentry.Superblock().Dev
	return a.ToStat(), nil
}

// Ioctl answers random(4)'s ioctls; the others have none.
func (f *file) Ioctl(ctx vfs.Context, cmd, arg uint64) (uint64, error) {
	if f.kind != random {
		return 0, unix.ENOTTY
	}
	switch cmd {
	case rndGetEntCnt:
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], entropyCount)
		if _, err := ctx.MM().CopyOut(arg, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	case rndAddToEntCnt, rndAddEntropy, rndZapEntCnt, rndClearPool, rndReseedCRNG:
		// Feeding or resetting the pool is a privileged no-op here:
		// entropy comes from the host.
		if c := ctx.FSCredentials(); c == nil || !c.Caps.Has(vfs.CapSysAdmin) {
			return 0, unix.EPERM
		}
		return 0, nil
	}
	return 0, unix.EINVAL // random_ioctl's default
}

func (f *file) Stream() bool             { return false }
func (f *file) StatusFlags() int         { return int(f.flags.Load()) }
func (f *file) SetStatusFlags(flags int) { f.flags.Store(int32(flags)) }
func (f *file) Release()                 {}

// Readiness: the memory devices never block.
func (f *file) Readiness(mask int16) int16 {
	return mask & (unix.POLLIN | unix.POLLOUT | pollRdNorm | pollWrNorm)
}

// zeroFile is /dev/zero, the only one of them that can be mapped.
type zeroFile struct{ *file }

// ConfigureMMap leaves opts.Mappable nil, making the mapping anonymous
// memory: a private map of /dev/zero is exactly MAP_ANONYMOUS, and a
// shared one is Linux's shared anonymous memory (shmem_zero_setup), which
// the memory manager makes for a shared mapping with no Mappable.
func (f zeroFile) ConfigureMMap(_ vfs.Context, opts *mm.MMapOpts) error {
	opts.Mappable = nil
	opts.Offset = 0
	return nil
}

var (
	_ vfs.File    = (*file)(nil)
	_ vfs.Poller  = (*file)(nil)
	_ vfs.MMapper = zeroFile{}
)

// poll(2) bits x/sys/unix lacks on linux/amd64.
const (
	pollRdNorm = 0x40
	pollWrNorm = 0x100
)
