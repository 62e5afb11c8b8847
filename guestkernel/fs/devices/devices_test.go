package devices

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/fsutil"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

type fakeAS struct{}

func (fakeAS) MapFile(uint64, int64, uint64, platform.AccessType) error { return nil }
func (fakeAS) Unmap(uint64, uint64)                                     {}
func (fakeAS) Release()                                                 {}

type ctx struct {
	creds vfs.Credentials
	mm    *mm.MM
}

func (c *ctx) FSCredentials() *vfs.Credentials            { return &c.creds }
func (c *ctx) WaitHostFD(int, int16, time.Duration) error { return nil }
func (c *ctx) MM() *mm.MM                                 { return c.mm }
func newCtx(t *testing.T, caps vfs.Caps) *ctx {
	mf, err := memfile.New(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	m := mm.New(mf, fakeAS{}, 0x10000, 0x7f0000000000)
	m.SetMmapBase(0x7e0000000000)
	return &ctx{creds: vfs.Credentials{Caps: caps}, mm: m}
}

// charNode is a device node as any filesystem would hold it.
type charNode struct {
	vfs.NoOps
	rdev uint64
}

func (n *charNode) Stat(vfs.Context) (vfs.Attr, error) {
	return vfs.Attr{Mode: unix.S_IFCHR | 0o666, Nlink: 1, Rdev: n.rdev, Ino: n.rdev}, nil
}

// openByPath opens /name in a filesystem of the memory device nodes
// through the VFS, as open(2) would.
func openByPath(t *testing.T, c vfs.Context, name string, flags int) *vfs.FileDescription {
	t.Helper()
	v := vfs.New()
	Register(v)
	var entries []fsutil.Entry
	for n, minor := range map[string]uint32{"null": 3, "zero": 5, "full": 7, "random": 8, "urandom": 9, "mem": 1} {
		entries = append(entries, fsutil.Entry{Name: n, Inode: &charNode{rdev: unix.Mkdev(1, minor)}})
	}
	root := fsutil.NewDir(fsutil.NewNode(1, 0o755, 0), entries)
	ns := v.NewMountNamespace(v.NewSuperblock(&fsutil.Filesystem{Name: "fake", Tree: root}), "none", 0)
	fd, err := v.Open(c, &vfs.Walk{Root: ns.Root(), Start: ns.Root(), Path: "/" + name}, vfs.OpenOptions{Flags: flags})
	if err != nil {
		t.Fatalf("open /%s: %v", name, err)
	}
	t.Cleanup(fd.DecRef)
	return fd
}

func TestNull(t *testing.T) {
	c := newCtx(t, 0)
	fd := openByPath(t, c, "null", unix.O_RDWR)
	buf := make([]byte, 16)
	if n, err := fd.Read(c, [][]byte{buf}, -1); n != 0 || err != nil {
		t.Errorf("read = %d, %v; want EOF", n, err)
	}
	if n, err := fd.Write(c, [][]byte{buf, buf[:3]}, -1); n != 19 || err != nil {
		t.Errorf("write = %d, %v; want 19", n, err)
	}
	st, err := fd.Stat()
	if err != nil || st.Rdev != unix.Mkdev(1, 3) || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("fstat = %+v, %v; want the node's", st, err)
	}
}

func TestZeroAndFull(t *testing.T) {
	c := newCtx(t, 0)
	for _, name := range []string{"zero", "full"} {
		fd := openByPath(t, c, name, unix.O_RDWR)
		a, b := bytes.Repeat([]byte{1}, 10), bytes.Repeat([]byte{2}, 5000)
		if n, err := fd.Read(c, [][]byte{a, b}, -1); n != 5010 || err != nil {
			t.Errorf("%s: read = %d, %v", name, n, err)
		}
		if !bytes.Equal(a, make([]byte, 10)) || !bytes.Equal(b, make([]byte, 5000)) {
			t.Errorf("%s: read non-zero bytes", name)
		}
		n, err := fd.Write(c, [][]byte{a}, -1)
		if name == "zero" && (n != 10 || err != nil) {
			t.Errorf("zero: write = %d, %v", n, err)
		}
		if name == "full" && !errors.Is(err, unix.ENOSPC) {
			t.Errorf("full: write = %d, %v; want ENOSPC", n, err)
		}
	}
}

func TestRandom(t *testing.T) {
	c := newCtx(t, 0)
	for _, name := range []string{"random", "urandom"} {
		fd := openByPath(t, c, name, unix.O_RDONLY)
		a, b := make([]byte, 64), make([]byte, 64)
		if n, err := fd.Read(c, [][]byte{a, b}, -1); n != 128 || err != nil {
			t.Fatalf("%s: read = %d, %v", name, n, err)
		}
		if bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 64)) {
			t.Errorf("%s: read does not look random", name)
		}
	}
}

func TestUnknownMinor(t *testing.T) {
	c := newCtx(t, 0)
	v := vfs.New()
	Register(v)
	root := fsutil.NewDir(fsutil.NewNode(1, 0o755, 0), []fsutil.Entry{{Name: "mem", Inode: &charNode{rdev: unix.Mkdev(1, 1)}}})
	ns := v.NewMountNamespace(v.NewSuperblock(&fsutil.Filesystem{Name: "fake", Tree: root}), "none", 0)
	_, err := v.Open(c, &vfs.Walk{Root: ns.Root(), Start: ns.Root(), Path: "/mem"}, vfs.OpenOptions{Flags: unix.O_RDONLY})
	if !errors.Is(err, unix.ENXIO) {
		t.Errorf("open /dev/mem: %v, want ENXIO (not registered)", err)
	}
}

func TestNoAllocation(t *testing.T) {
	c := newCtx(t, 0)
	buf := make([]byte, 4096)
	dst := [][]byte{buf}
	for _, minor := range []uint32{NullMinor, ZeroMinor, FullMinor, RandomMinor, URandomMinor} {
		f, err := Open(minor, vfs.VirtualDentry{}, unix.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			f.Read(c, dst, 0)
			f.Write(c, dst, 0)
		})
		if allocs != 0 {
			t.Errorf("minor %d: %v allocations per read+write", minor, allocs)
		}
	}
}

func TestRandomIoctl(t *testing.T) {
	c := newCtx(t, 0)
	addr, err := c.mm.MMap(mm.MMapOpts{Length: mm.PageSize, Perms: platform.ReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := Open(URandomMinor, vfs.VirtualDentry{}, unix.O_RDONLY)
	if _, err := f.Ioctl(c, rndGetEntCnt, addr); err != nil {
		t.Fatalf("RNDGETENTCNT: %v", err)
	}
	var b [4]byte
	if _, err := c.mm.CopyIn(addr, b[:]); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(b[:]); got != 256 {
		t.Errorf("RNDGETENTCNT = %d, want 256", got)
	}
	if _, err := f.Ioctl(c, rndAddToEntCnt, addr); !errors.Is(err, unix.EPERM) {
		t.Errorf("RNDADDTOENTCNT unprivileged: %v, want EPERM", err)
	}
	if _, err := f.Ioctl(newCtx(t, vfs.AllCaps), rndAddToEntCnt, addr); err != nil {
		t.Errorf("RNDADDTOENTCNT as root: %v", err)
	}
	if _, err := f.Ioctl(c, 0x5401, addr); !errors.Is(err, unix.EINVAL) {
		t.Errorf("TCGETS on urandom: %v, want EINVAL", err)
	}
	z, _ := Open(ZeroMinor, vfs.VirtualDentry{}, unix.O_RDONLY)
	if _, err := z.Ioctl(c, rndGetEntCnt, addr); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("ioctl on zero: %v, want ENOTTY", err)
	}
}

func TestMMap(t *testing.T) {
	c := newCtx(t, 0)
	z, _ := Open(ZeroMinor, vfs.VirtualDentry{}, unix.O_RDWR)
	mapper, ok := z.(vfs.MMapper)
	if !ok {
		t.Fatal("/dev/zero is not mappable")
	}
	opts := mm.MMapOpts{Length: 2 * mm.PageSize, Perms: platform.ReadWrite, Offset: 4096}
	if err := mapper.ConfigureMMap(c, &opts); err != nil || opts.Mappable != nil {
		t.Fatalf("ConfigureMMap: %v, Mappable %v; want anonymous", err, opts.Mappable)
	}
	addr, err := c.mm.MMap(opts)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	if _, err := c.mm.CopyIn(addr, b); err != nil || !bytes.Equal(b, make([]byte, 8)) {
		t.Errorf("mapped /dev/zero reads %v, %v", b, err)
	}
	for _, minor := range []uint32{NullMinor, FullMinor, URandomMinor} {
		f, _ := Open(minor, vfs.VirtualDentry{}, unix.O_RDWR)
		if _, ok := f.(vfs.MMapper); ok {
			t.Errorf("minor %d is mappable; Linux gives ENODEV", minor)
		}
	}
}

func TestReadiness(t *testing.T) {
	f, _ := Open(NullMinor, vfs.VirtualDentry{}, unix.O_RDWR)
	if got := f.(vfs.Poller).Readiness(unix.POLLIN | unix.POLLOUT | unix.POLLPRI); got != unix.POLLIN|unix.POLLOUT {
		t.Errorf("readiness = %#x", got)
	}
}
