package devfs

import (
	"errors"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/devices"
	"github.com/ringfence/ringfence/guestkernel/fs/tmpfs"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

type ctx struct{}

func (ctx) FSCredentials() *vfs.Credentials            { return &vfs.Credentials{Caps: vfs.AllCaps} }
func (ctx) WaitHostFD(int, int16, time.Duration) error { return nil }
func (ctx) MM() *mm.MM                                 { return nil }

// fakeNode is a minimal writable filesystem: enough of tmpfs for Populate.
type fakeNode struct {
	vfs.NoOps
	attr     vfs.Attr
	target   string
	children map[string]*fakeNode
	// dropSticky mimics a filesystem whose mkdir keeps only rwx bits.
	dropSticky bool
}

var nextIno uint64

func newNode(mode uint32, dev uint64) *fakeNode {
	nextIno++
	n := &fakeNode{attr: vfs.Attr{Mode: mode, Rdev: dev, Nlink: 1, Ino: nextIno}}
	if mode&unix.S_IFMT == unix.S_IFDIR {
		n.children = make(map[string]*fakeNode)
	}
	return n
}

func (n *fakeNode) Stat(vfs.Context) (vfs.Attr, error) { return n.attr, nil }
func (n *fakeNode) SetAttr(_ vfs.Context, r *vfs.SetAttr) error {
	if r.Mask&vfs.SetMode != 0 {
		n.attr.Mode = n.attr.Mode&unix.S_IFMT | r.Mode
	}
	return nil
}
func (n *fakeNode) add(name string, c *fakeNode) (vfs.Inode, error) {
	if n.children == nil {
		return nil, unix.ENOTDIR
	}
	if _, ok := n.children[name]; ok {
		return nil, unix.EEXIST
	}
	n.children[name] = c
	return c, nil
}
func (n *fakeNode) Lookup(_ vfs.Context, name string) (vfs.Inode, error) {
	if c, ok := n.children[name]; ok {
		return c, nil
	}
	return nil, unix.ENOENT
}
func (n *fakeNode) IterDir(_ vfs.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	var names []string
	for k := range n.children {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		if int64(i) < cookie {
			continue
		}
		if !emit(vfs.Dirent{Name: k, Ino: n.children[k].attr.Ino, Next: int64(i) + 1}) {
			break
		}
	}
	return nil
}
func (n *fakeNode) Mkdir(_ vfs.Context, name string, mode uint32) (vfs.Inode, error) {
	if n.dropSticky {
		mode &= 0o777
	}
	return n.add(name, newNode(unix.S_IFDIR|mode, 0))
}
func (n *fakeNode) Mknod(_ vfs.Context, name string, mode uint32, dev uint64) (vfs.Inode, error) {
	return n.add(name, newNode(mode, dev))
}
func (n *fakeNode) Symlink(_ vfs.Context, name, target string) (vfs.Inode, error) {
	c := newNode(unix.S_IFLNK|0o777, 0)
	c.target = target
	return n.add(name, c)
}
func (n *fakeNode) Readlink(vfs.Context) (string, error) {
	if n.attr.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	return n.target, nil
}

type fakeFS struct{ root *fakeNode }

func (f fakeFS) Type() string    { return "tmpfs" }
func (f fakeFS) Root() vfs.Inode { return f.root }
func (f fakeFS) Release()        {}

func TestPopulateLayout(t *testing.T) {
	root := newNode(unix.S_IFDIR|0o755, 0)
	root.dropSticky = true
	if err := Populate(ctx{}, root); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		mode   uint32
		dev    uint64
		target string
	}{
		"null":    {unix.S_IFCHR | 0o666, unix.Mkdev(1, 3), ""},
		"zero":    {unix.S_IFCHR | 0o666, unix.Mkdev(1, 5), ""},
		"full":    {unix.S_IFCHR | 0o666, unix.Mkdev(1, 7), ""},
		"random":  {unix.S_IFCHR | 0o666, unix.Mkdev(1, 8), ""},
		"urandom": {unix.S_IFCHR | 0o666, unix.Mkdev(1, 9), ""},
		"tty":     {unix.S_IFCHR | 0o666, unix.Mkdev(5, 0), ""},
		"pts":     {unix.S_IFDIR | 0o755, 0, ""},
		"shm":     {unix.S_IFDIR | 0o1777, 0, ""},
		"fd":      {unix.S_IFLNK | 0o777, 0, "/proc/self/fd"},
		"stdin":   {unix.S_IFLNK | 0o777, 0, "/proc/self/fd/0"},
		"stdout":  {unix.S_IFLNK | 0o777, 0, "/proc/self/fd/1"},
		"stderr":  {unix.S_IFLNK | 0o777, 0, "/proc/self/fd/2"},
		"ptmx":    {unix.S_IFLNK | 0o777, 0, "pts/ptmx"},
		"core":    {unix.S_IFLNK | 0o777, 0, "/proc/kcore"},
	}
	if len(root.children) != len(want) {
		t.Errorf("%d entries, want %d", len(root.children), len(want))
	}
	for name, w := range want {
		n, ok := root.children[name]
		if !ok {
			t.Errorf("/dev/%s missing", name)
			continue
		}
		if n.attr.Mode != w.mode || n.attr.Rdev != w.dev || n.target != w.target {
			t.Errorf("/dev/%s: mode %#o dev %#x target %q; want %#o %#x %q",
				name, n.attr.Mode, n.attr.Rdev, n.target, w.mode, w.dev, w.target)
		}
	}
}

func TestPopulateNotEmpty(t *testing.T) {
	root := newNode(unix.S_IFDIR|0o755, 0)
	root.Mknod(ctx{}, "zero", unix.S_IFREG|0o644, 0)
	err := Populate(ctx{}, root)
	if !errors.Is(err, unix.EEXIST) {
		t.Errorf("Populate over an existing name: %v, want EEXIST", err)
	}
}

// TestOpenThroughVFS opens the populated nodes as an app would: the memory
// devices work, /dev/tty (unregistered) fails with ENXIO.
func TestOpenThroughVFS(t *testing.T) {
	root := newNode(unix.S_IFDIR|0o755, 0)
	if err := Populate(ctx{}, root); err != nil {
		t.Fatal(err)
	}
	v := vfs.New()
	devices.Register(v)
	ns := v.NewMountNamespace(v.NewSuperblock(fakeFS{root}), "tmpfs", 0)
	open := func(path string) (*vfs.FileDescription, error) {
		return v.Open(ctx{}, &vfs.Walk{Root: ns.Root(), Start: ns.Root(), Path: path}, vfs.OpenOptions{Flags: unix.O_RDWR})
	}
	fd, err := open("/zero")
	if err != nil {
		t.Fatalf("open /dev/zero: %v", err)
	}
	b := []byte{1, 2, 3}
	if n, err := fd.Read(ctx{}, [][]byte{b}, -1); n != 3 || err != nil || b[0]|b[1]|b[2] != 0 {
		t.Errorf("read /dev/zero: %d %v %v", n, err, b)
	}
	fd.DecRef()
	if _, err := open("/tty"); !errors.Is(err, unix.ENXIO) {
		t.Errorf("open /dev/tty: %v, want ENXIO", err)
	}
}

// TestPopulateTmpfs fills a real tmpfs, as the Sentry does for /dev, and
// checks the result through the VFS.
func TestPopulateTmpfs(t *testing.T) {
	mf, err := memfile.New(1 << 24)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	fs := tmpfs.New(mf, tmpfs.Options{Mode: 0o755})
	if err := Populate(ctx{}, fs.Root()); err != nil {
		t.Fatal(err)
	}
	v := vfs.New()
	devices.Register(v)
	ns := v.NewMountNamespace(v.NewSuperblock(fs), "tmpfs", 0)
	walk := func(path string, follow bool) *vfs.Walk {
		return &vfs.Walk{Root: ns.Root(), Start: ns.Root(), Path: path, FollowFinal: follow}
	}
	for _, n := range Layout {
		a, err := v.Stat(ctx{}, walk("/"+n.Name, false))
		if err != nil || a.Mode != n.Mode || a.Rdev != n.Dev {
			t.Errorf("/dev/%s: mode %#o rdev %#x, %v; want %#o %#x", n.Name, a.Mode, a.Rdev, err, n.Mode, n.Dev)
		}
		if n.Target != "" {
			if got, err := v.Readlink(ctx{}, walk("/"+n.Name, false)); got != n.Target || err != nil {
				t.Errorf("readlink /dev/%s = %q, %v", n.Name, got, err)
			}
		}
	}
	fd, err := v.Open(ctx{}, walk("/urandom", true), vfs.OpenOptions{Flags: unix.O_RDONLY})
	if err != nil {
		t.Fatalf("open /dev/urandom: %v", err)
	}
	defer fd.DecRef()
	b := make([]byte, 32)
	if n, err := fd.Read(ctx{}, [][]byte{b}, -1); n != 32 || err != nil {
		t.Errorf("read /dev/urandom: %d, %v", n, err)
	}
	if _, err := v.Open(ctx{}, walk("/tty", true), vfs.OpenOptions{Flags: unix.O_RDWR}); !errors.Is(err, unix.ENXIO) {
		t.Errorf("open /dev/tty: %v, want ENXIO", err)
	}
}
