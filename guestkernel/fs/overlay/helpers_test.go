package overlay

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/tmpfs"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// fakeCtx is a task with fixed credentials.
type fakeCtx struct{ creds vfs.Credentials }

func (c *fakeCtx) FSCredentials() *vfs.Credentials                    { return &c.creds }
func (c *fakeCtx) WaitHostFD(fd int, ev int16, d time.Duration) error { return nil }
func (c *fakeCtx) MM() *mm.MM                                         { return nil }

var (
	ctx     = &fakeCtx{vfs.Credentials{Caps: vfs.AllCaps}}
	userCtx = &fakeCtx{vfs.Credentials{UID: 1000, GID: 1000}}
)

func newMF(t testing.TB) *memfile.File {
	t.Helper()
	mf, err := memfile.New(1 << 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	return mf
}

// layers makes an upper tmpfs and n lower ones in one memory file.
func layers(t testing.TB, n int) (upper vfs.Inode, lowers []vfs.Inode) {
	mf := newMF(t)
	upper = tmpfs.New(mf, tmpfs.Options{Mode: 0o755}).Root()
	for range n {
		lowers = append(lowers, tmpfs.New(mf, tmpfs.Options{Mode: 0o755}).Root())
	}
	return upper, lowers
}

func split(path string) []string {
	return strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
}

// walk resolves path from root (no symlinks).
func walk(root vfs.Inode, path string) (vfs.Inode, error) {
	cur := root
	for _, n := range split(path) {
		next, err := cur.Lookup(ctx, n)
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

func mustWalk(t testing.TB, root vfs.Inode, path string) vfs.Inode {
	t.Helper()
	in, err := walk(root, path)
	if err != nil {
		t.Fatalf("walk %q: %v", path, err)
	}
	return in
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// mkdirAll makes the directories of path in a layer.
func mkdirAll(t testing.TB, root vfs.Inode, path string, mode uint32) vfs.Inode {
	t.Helper()
	cur := root
	for _, n := range split(path) {
		next, err := cur.Lookup(ctx, n)
		if err == unix.ENOENT {
			next, err = cur.Mkdir(ctx, n, unix.S_IFDIR|mode)
		}
		if err != nil {
			t.Fatalf("mkdir %q in %q: %v", n, path, err)
		}
		cur = next
	}
	return cur
}

// parent resolves all but the last component of path.
func parent(t testing.TB, root vfs.Inode, path string) (vfs.Inode, string) {
	t.Helper()
	parts := split(path)
	return mustWalk(t, root, strings.Join(parts[:len(parts)-1], "/")), parts[len(parts)-1]
}

// writeFile creates path (its directory must exist) with data.
func writeFile(t testing.TB, root vfs.Inode, path, data string, mode uint32) vfs.Inode {
	t.Helper()
	dir, name := parent(t, root, path)
	in, f, err := dir.Create(ctx, name, unix.S_IFREG|mode, unix.O_RDWR)
	if err != nil {
		t.Fatalf("create %q: %v", path, err)
	}
	defer f.Release()
	if data != "" {
		if _, err := f.Write(ctx, [][]byte{[]byte(data)}, 0); err != nil {
			t.Fatalf("write %q: %v", path, err)
		}
	}
	return in
}

// readAll reads an inode's whole contents.
func readAll(t testing.TB, in vfs.Inode) string {
	t.Helper()
	f, err := in.Open(ctx, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("open for read: %v", err)
	}
	defer f.Release()
	return readFile(t, f)
}

func readFile(t testing.TB, f vfs.File) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(ctx, [][]byte{buf}, int64(len(out)))
		out = append(out, buf[:n]...)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n == 0 {
			return string(out)
		}
	}
}

func readPath(t testing.TB, root vfs.Inode, path string) string {
	t.Helper()
	return readAll(t, mustWalk(t, root, path))
}

// writeAt writes data at off through an open for writing.
func writeAt(t testing.TB, in vfs.Inode, off int64, data string) {
	t.Helper()
	f, err := in.Open(ctx, unix.O_RDWR)
	if err != nil {
		t.Fatalf("open for write: %v", err)
	}
	defer f.Release()
	if _, err := f.Write(ctx, [][]byte{[]byte(data)}, off); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func stat(t testing.TB, in vfs.Inode) vfs.Attr {
	t.Helper()
	a, err := in.Stat(ctx)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	return a
}

// list is a directory's entries, in IterDir order.
func list(t testing.TB, dir vfs.Inode) []vfs.Dirent {
	t.Helper()
	var out []vfs.Dirent
	if err := dir.IterDir(ctx, 0, func(e vfs.Dirent) bool {
		out = append(out, e)
		return true
	}); err != nil {
		t.Fatalf("IterDir: %v", err)
	}
	return out
}

func names(t testing.TB, dir vfs.Inode) []string {
	t.Helper()
	var out []string
	for _, e := range list(t, dir) {
		out = append(out, e.Name)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func wantNames(t testing.TB, dir vfs.Inode, want ...string) {
	t.Helper()
	if got := sorted(names(t, dir)); !slices.Equal(got, sorted(want)) {
		t.Fatalf("entries %q, want %q", got, sorted(want))
	}
}

// isWhiteoutIn reports whether name in a layer directory is a whiteout.
func isWhiteoutIn(t testing.TB, dir vfs.Inode, name string) bool {
	t.Helper()
	wh, err := isWhiteoutAt(ctx, dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

func whiteout(t testing.TB, dir vfs.Inode, name string) {
	t.Helper()
	if _, err := dir.Mknod(ctx, name, unix.S_IFCHR, 0); err != nil {
		t.Fatalf("whiteout %q: %v", name, err)
	}
}
