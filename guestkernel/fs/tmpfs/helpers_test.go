package tmpfs

import (
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	rootCtx = &fakeCtx{vfs.Credentials{Caps: vfs.AllCaps}}
	userCtx = &fakeCtx{vfs.Credentials{UID: 1000, GID: 1000, Groups: []uint32{1000, 20}}}
)

// fakeMS is a MappingSpace that records invalidations and runs check at
// each, to see the state of things at that moment.
type fakeMS struct {
	mu    sync.Mutex
	inv   [][2]uint64
	check func()
}

func (m *fakeMS) Invalidate(addr, length uint64) {
	if m.check != nil {
		m.check()
	}
	m.mu.Lock()
	m.inv = append(m.inv, [2]uint64{addr, length})
	m.mu.Unlock()
}

func newMF(t testing.TB) *memfile.File {
	t.Helper()
	mf, err := memfile.New(1 << 32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	return mf
}

func newFS(t testing.TB, opts Options) (*FS, *memfile.File) {
	mf := newMF(t)
	return New(mf, opts), mf
}

func rootDir(fs *FS) *dir { return fs.Root().(*dir) }

func mustCreate(t testing.TB, d vfs.Inode, name string) (*regular, vfs.File) {
	t.Helper()
	in, f, err := d.Create(userCtx, name, 0644, unix.O_RDWR)
	if err != nil {
		t.Fatalf("Create %q: %v", name, err)
	}
	return in.(*regular), f
}

func mustMkdir(t testing.TB, d vfs.Inode, name string) *dir {
	t.Helper()
	in, err := d.Mkdir(userCtx, name, 0755)
	if err != nil {
		t.Fatalf("Mkdir %q: %v", name, err)
	}
	return in.(*dir)
}

func mustWrite(t testing.TB, f vfs.File, off int64, data []byte) {
	t.Helper()
	n, err := f.Write(userCtx, [][]byte{data}, off)
	if err != nil || n != len(data) {
		t.Fatalf("Write %d bytes at %d: %d, %v", len(data), off, n, err)
	}
}

func mustRead(t testing.TB, f vfs.File, off int64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	got, err := f.Read(userCtx, [][]byte{b}, off)
	if err != nil {
		t.Fatalf("Read %d at %d: %v", n, off, err)
	}
	return b[:got]
}

func stat(t testing.TB, in vfs.Inode) vfs.Attr {
	t.Helper()
	a, err := in.Stat(nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func tsLess(a, b unix.Timespec) bool {
	return a.Sec < b.Sec || a.Sec == b.Sec && a.Nsec < b.Nsec
}

// tick makes sure the clock moves on before the next change.
func tick() { time.Sleep(2 * time.Millisecond) }

func names(t testing.TB, d vfs.Inode) []string {
	t.Helper()
	var out []string
	if err := d.IterDir(userCtx, 0, func(de vfs.Dirent) bool {
		out = append(out, de.Name)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
