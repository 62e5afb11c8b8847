package goferfs

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/client"
	"github.com/ringfence/ringfence/gofer/proto"
	"github.com/ringfence/ringfence/gofer/server"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// tctx is a vfs.Context for tests.
type tctx struct{ creds vfs.Credentials }

func (c *tctx) FSCredentials() *vfs.Credentials { return &c.creds }
func (c *tctx) MM() *mm.MM                      { return nil }
func (c *tctx) WaitHostFD(fd int, events int16, timeout time.Duration) error {
	ms := -1
	if timeout >= 0 {
		ms = int(timeout / time.Millisecond)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		// EINTR here is the Go runtime's preemption signal, not the app's.
		if _, err := unix.Poll(fds, ms); err != unix.EINTR {
			return err
		}
	}
}

var root = &tctx{creds: vfs.Credentials{Caps: vfs.AllCaps}}

// fakeMS is a MappingSpace that records invalidations.
type fakeMS struct {
	mu     sync.Mutex
	invals [][2]uint64
}

func (m *fakeMS) Invalidate(addr, length uint64) {
	m.mu.Lock()
	m.invals = append(m.invals, [2]uint64{addr, length})
	m.mu.Unlock()
}

func (m *fakeMS) got() [][2]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][2]uint64(nil), m.invals...)
}

// env is a gofer server over a temp dir with a goferfs on top.
type env struct {
	dir string
	c   *client.Client
	mf  *memfile.File
	fs  *FS
}

func connPair(t testing.TB) (*proto.Conn, *proto.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(fd int) *proto.Conn {
		f := os.NewFile(uintptr(fd), "sock")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		c, err := proto.NewConn(nc.(*net.UnixConn))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return mk(fds[0]), mk(fds[1])
}

// newEnv serves dir (a new temp dir if "") and mounts it.
func newEnv(t testing.TB, dir string, opts Options) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	srv, err := server.New(dir, server.Options{ReadOnly: opts.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	cl, sv := connPair(t)
	done := make(chan struct{})
	go func() {
		srv.Serve(sv)
		sv.Close()
		close(done)
	}()
	c, err := client.New(cl)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := memfile.New(1 << 34)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := New(c, mf, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fs.Release()
		c.Shutdown()
		<-done
		srv.Close()
		mf.Close()
	})
	return &env{dir: dir, c: c, mf: mf, fs: fs}
}

func (e *env) path(p string) string { return filepath.Join(e.dir, p) }

func mustWrite(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func hostRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// walk looks up a slash-separated path from the root.
func (e *env) walk(t testing.TB, p string) *inode {
	t.Helper()
	var names []string
	for _, n := range bytes.Split([]byte(p), []byte("/")) {
		if len(n) > 0 {
			names = append(names, string(n))
		}
	}
	res, err := e.fs.root.LookupPath(root, names)
	if err != nil || len(res) != len(names) {
		t.Fatalf("walk %s: %d of %d, %v", p, len(res), len(names), err)
	}
	for _, r := range res[:len(res)-1] {
		r.(*inode).Release()
	}
	return res[len(res)-1].(*inode)
}

func open(t testing.TB, i *inode, flags int) *regularFile {
	t.Helper()
	f, err := i.Open(root, flags)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return f.(*regularFile)
}

func readAt(t testing.TB, f vfs.File, n int, off int64) []byte {
	t.Helper()
	b := make([]byte, n)
	got, err := f.Read(root, [][]byte{b}, off)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b[:got]
}

func writeAt(t testing.TB, f vfs.File, data []byte, off int64) {
	t.Helper()
	n, err := f.Write(root, [][]byte{data}, off)
	if err != nil || n != len(data) {
		t.Fatalf("write: %d %v", n, err)
	}
}

func stat(t testing.TB, i vfs.Inode) vfs.Attr {
	t.Helper()
	a, err := i.Stat(root)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	return a
}

// liveHandle reports whether the gofer still knows handle h.
func (e *env) liveHandle(h uint64) bool {
	_, err := e.c.Stat(h)
	return err == nil
}
