package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
	"github.com/ringfence/ringfence/gofer/server"
)

// connPair returns two connected proto.Conns.
func connPair(t testing.TB) (*proto.Conn, *proto.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return wrap(t, fds[0]), wrap(t, fds[1])
}

func wrap(t testing.TB, fd int) *proto.Conn {
	t.Helper()
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

// serve starts a gofer server on a fresh temp root and returns a connected
// client and the root path.
func serve(t testing.TB, opts server.Options) (*Client, string) {
	t.Helper()
	root := t.TempDir()
	srv, err := server.New(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	cl, sv := connPair(t)
	done := make(chan struct{})
	go func() {
		if err := srv.Serve(sv); err != nil {
			t.Logf("server: %v", err)
		}
		sv.Close()
		close(done)
	}()
	c, err := New(cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Shutdown()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
		srv.Close()
	})
	return c, root
}

func write(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFD(t testing.TB, fd int) string {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestOperations(t *testing.T) {
	c, root := serve(t, server.Options{})
	write(t, filepath.Join(root, "a/b/c.txt"), "hello")

	hs, sts, err := c.Walk(RootHandle, []string{"a", "b", "c.txt"})
	if err != nil || len(hs) != 3 || sts[2].Size != 5 {
		t.Fatalf("walk: %v %v %v", hs, sts, err)
	}
	file, bdir := hs[2], hs[1]

	// A partial walk returns what was walked and the errno.
	hs2, _, err := c.Walk(RootHandle, []string{"a", "nope"})
	if !errors.Is(err, unix.ENOENT) || len(hs2) != 1 {
		t.Fatalf("partial walk: %v %v", hs2, err)
	}
	var en unix.Errno
	if !errors.As(err, &en) || en != unix.ENOENT {
		t.Fatalf("errno type: %T", err)
	}

	st, err := c.Stat(file)
	if err != nil || st.Size != 5 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("stat: %+v %v", st, err)
	}
	if _, err := c.Stat(987654); err != unix.EBADF {
		t.Fatalf("stat of bad handle: %v", err)
	}
	stats, errnos, err := c.StatBatch([]uint64{RootHandle, file, 987654})
	if err != nil || errnos[0] != 0 || errnos[1] != 0 || errnos[2] != int32(unix.EBADF) || stats[1].Size != 5 {
		t.Fatalf("statbatch: %v %v %v", stats, errnos, err)
	}

	fd, err := c.Open(file, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFD(t, fd); got != "hello" {
		t.Fatalf("read %q", got)
	}
	unix.Close(fd)

	e, fd, err := c.Create(bdir, "new", unix.O_RDWR, 0o640, 1000, 1001)
	if err != nil {
		t.Fatal(err)
	}
	unix.Pwrite(fd, []byte("xyz"), 0)
	unix.Close(fd)
	if b, _ := os.ReadFile(filepath.Join(root, "a/b/new")); string(b) != "xyz" {
		t.Fatalf("created content %q", b)
	}
	if e.Stat.Mode&0o7777 != 0o640 || (unix.Geteuid() == 0 && (e.Stat.UID != 1000 || e.Stat.GID != 1001)) {
		t.Fatalf("create stat %+v", e.Stat)
	}
	if _, _, err := c.Create(bdir, "new", unix.O_RDWR, 0o640, 0, 0); err != unix.EEXIST {
		t.Fatalf("create existing: %v", err)
	}

	d, err := c.Mkdir(RootHandle, "d", 0o750, 0, 0)
	if err != nil || d.Stat.Mode != unix.S_IFDIR|0o750 {
		t.Fatalf("mkdir %+v %v", d, err)
	}
	fifo, err := c.Mknod(d.Handle, "fifo", unix.S_IFIFO|0o600, 0, 0, 0, 0)
	if err != nil || fifo.Stat.Mode != unix.S_IFIFO|0o600 {
		t.Fatalf("mknod %+v %v", fifo, err)
	}
	sl, err := c.Symlink(d.Handle, "ln", "../a/b/c.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tgt, err := c.Readlink(sl.Handle); err != nil || tgt != "../a/b/c.txt" {
		t.Fatalf("readlink %q %v", tgt, err)
	}
	// A walk stops after a symlink without error.
	hs3, sts3, err := c.Walk(RootHandle, []string{"d", "ln", "x"})
	if err != nil || len(hs3) != 2 || sts3[1].Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("walk to symlink: %v %v", hs3, err)
	}
	ln, err := c.Link(file, d.Handle, "hard")
	if err != nil || ln.Stat.Nlink != 2 {
		t.Fatalf("link %+v %v", ln, err)
	}
	if err := c.Rename(d.Handle, "hard", RootHandle, "moved", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(RootHandle, "moved", RootHandle, "d", proto.RenameNoReplace); err != unix.EEXIST {
		t.Fatalf("rename noreplace: %v", err)
	}
	if err := c.Unlink(RootHandle, "moved", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Unlink(RootHandle, "d", proto.AtRemoveDir); err != unix.ENOTEMPTY {
		t.Fatalf("rmdir non-empty: %v", err)
	}

	ents, eof, err := c.Getdents(d.Handle, 0, 1<<20)
	if err != nil || !eof || len(ents) != 2 {
		t.Fatalf("getdents %+v %v %v", ents, eof, err)
	}

	st, err = c.Setattr(proto.SetattrReq{Handle: file, Mask: proto.SetattrSize | proto.SetattrMode, Size: 2, Mode: 0o600})
	if err != nil || st.Size != 2 || st.Mode&0o7777 != 0o600 {
		t.Fatalf("setattr %+v %v", st, err)
	}
	fs, err := c.StatFS(RootHandle)
	if err != nil || fs.Bsize == 0 {
		t.Fatalf("statfs %+v %v", fs, err)
	}
	if err := c.Close(file, bdir, e.Handle, d.Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(file); err != unix.EBADF {
		t.Fatalf("stat after close: %v", err)
	}
	if err := c.Close(file); err != unix.EBADF {
		t.Fatalf("double close: %v", err)
	}
}

// TestBatchesSplit checks that requests larger than one message are split.
func TestBatchesSplit(t *testing.T) {
	c, root := serve(t, server.Options{})
	// A 300-deep path needs two Walk round trips (MaxWalkNames is 255).
	names := make([]string, 300)
	p := root
	for i := range names {
		names[i] = "d"
		p = filepath.Join(p, "d")
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	hs, sts, err := c.Walk(RootHandle, names)
	if err != nil || len(hs) != 300 || len(sts) != 300 {
		t.Fatalf("deep walk: %d %v", len(hs), err)
	}
	// A regular file as the last name of a full chunk, with names left,
	// is ENOTDIR; a symlink there ends the walk without error.
	p = root
	for range proto.MaxWalkNames - 1 {
		p = filepath.Join(p, "e")
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(p, "f"), "x")
	os.Symlink("f", filepath.Join(p, "l"))
	enames := make([]string, proto.MaxWalkNames+1)
	for i := range enames {
		enames[i] = "e"
	}
	enames[proto.MaxWalkNames-1], enames[proto.MaxWalkNames] = "f", "x"
	eh, _, err := c.Walk(RootHandle, enames)
	if err != unix.ENOTDIR || len(eh) != proto.MaxWalkNames {
		t.Fatalf("file at a chunk boundary: %d %v", len(eh), err)
	}
	enames[proto.MaxWalkNames-1] = "l"
	lh, lst, err := c.Walk(RootHandle, enames)
	if err != nil || len(lh) != proto.MaxWalkNames || lst[len(lst)-1].Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("symlink at a chunk boundary: %d %v", len(lh), err)
	}
	c.Close(eh...)
	c.Close(lh...)

	// 20000 handles do not fit one StatBatch response.
	many := make([]uint64, 20000)
	for i := range many {
		many[i] = hs[i%len(hs)]
	}
	stats, errnos, err := c.StatBatch(many)
	if err != nil || len(stats) != len(many) || len(errnos) != len(many) {
		t.Fatalf("big statbatch: %d %v", len(stats), err)
	}
	for i := range errnos {
		if errnos[i] != 0 || stats[i].Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Fatalf("entry %d: %d %o", i, errnos[i], stats[i].Mode)
		}
	}
	if err := c.Close(hs...); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent issues many requests at once; each Open must get its own
// file's descriptor.
func TestConcurrent(t *testing.T) {
	c, root := serve(t, server.Options{})
	const files = 16
	for i := range files {
		write(t, filepath.Join(root, "dir", fmt.Sprintf("f%d", i)), fmt.Sprintf("content %d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range 100 {
				i := (g + it) % files
				name := fmt.Sprintf("f%d", i)
				hs, _, err := c.Walk(RootHandle, []string{"dir", name})
				if err != nil {
					errs <- err
					return
				}
				fd, err := c.Open(hs[1], unix.O_RDONLY)
				if err != nil {
					errs <- err
					return
				}
				buf := make([]byte, 64)
				n, _ := unix.Pread(fd, buf, 0)
				unix.Close(fd)
				if want := fmt.Sprintf("content %d", i); string(buf[:n]) != want {
					errs <- fmt.Errorf("got %q for %s", buf[:n], name)
					return
				}
				if st, err := c.Stat(hs[1]); err != nil || st.Size != uint64(len(fmt.Sprintf("content %d", i))) {
					errs <- fmt.Errorf("stat %s: %+v %v", name, st, err)
					return
				}
				if err := c.Close(hs...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// fakeServer answers Hello and then hands every request to handle.
func fakeServer(t *testing.T, handle func(sv *proto.Conn, tag uint32, m proto.Message)) (*Client, *proto.Conn) {
	t.Helper()
	cl, sv := connPair(t)
	go func() {
		for {
			tag, m, fds, err := sv.Recv()
			if err != nil {
				return
			}
			for _, fd := range fds {
				unix.Close(fd)
			}
			if _, ok := m.(*proto.HelloReq); ok {
				sv.Send(tag, &proto.HelloResp{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: proto.MaxMessageSize}}, nil)
				continue
			}
			handle(sv, tag, m)
		}
	}()
	c, err := New(cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(); sv.Close() })
	return c, sv
}

// TestBrokenConnection: a dead gofer fails every waiter and later call with
// EIO.
func TestBrokenConnection(t *testing.T) {
	got := make(chan struct{}, 16)
	c, sv := fakeServer(t, func(sv *proto.Conn, tag uint32, m proto.Message) { got <- struct{}{} })
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Stat(1)
			errs <- err
		}()
	}
	for range n {
		<-got // every request reached the server and is waiting
	}
	sv.Close()
	for range n {
		select {
		case err := <-errs:
			var ce *ConnError
			if !errors.Is(err, unix.EIO) || !errors.As(err, &ce) {
				t.Fatalf("waiter got %v", err)
			}
			var en unix.Errno
			if !errors.As(err, &en) || en != unix.EIO {
				t.Fatalf("errno of %v: %v", err, en)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("waiter not woken")
		}
	}
	if _, _, err := c.Walk(RootHandle, []string{"x"}); !errors.Is(err, unix.EIO) {
		t.Fatalf("later call: %v", err)
	}
	if c.Err() == nil {
		t.Fatal("Err is nil after the connection broke")
	}
}

func TestShutdownFailsCalls(t *testing.T) {
	c, _ := fakeServer(t, func(*proto.Conn, uint32, proto.Message) {})
	done := make(chan error, 1)
	go func() { _, err := c.Readlink(3); done <- err }()
	time.Sleep(10 * time.Millisecond)
	c.Shutdown()
	if err := <-done; !errors.Is(err, ErrClosed) || !errors.Is(err, unix.EIO) {
		t.Fatalf("after shutdown: %v", err)
	}
}

func TestHelloVersionMismatch(t *testing.T) {
	cl, sv := connPair(t)
	defer sv.Close()
	go func() {
		tag, _, _, err := sv.Recv()
		if err == nil {
			sv.Send(tag, &proto.HelloResp{Hello: proto.Hello{Version: 99, MaxMessageSize: proto.MaxMessageSize}}, nil)
		}
	}()
	if _, err := New(cl); !errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Fatalf("New: %v", err)
	}
	cl2, sv2 := connPair(t)
	defer sv2.Close()
	go func() {
		tag, _, _, err := sv2.Recv()
		if err == nil {
			sv2.Send(tag, &proto.ErrorResp{Errno: int32(unix.EPROTONOSUPPORT)}, nil)
		}
	}()
	if _, err := New(cl2); !errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Fatalf("New with refused hello: %v", err)
	}
}

// TestProtocolErrors: a response of the wrong type or without its
// descriptor fails that call with EIO and leaves the connection usable; a
// response to no request breaks the connection.
func TestProtocolErrors(t *testing.T) {
	c, _ := fakeServer(t, func(sv *proto.Conn, tag uint32, m proto.Message) {
		switch m := m.(type) {
		case *proto.ReadlinkReq:
			if m.Handle == 1 {
				sv.Send(tag, &proto.CloseResp{}, nil) // wrong type
			} else {
				sv.Send(tag, &proto.ReadlinkResp{Target: "t"}, nil)
			}
		case *proto.OpenReq:
			sv.Send(tag, &proto.OpenResp{}, nil) // no descriptor
		case *proto.StatFSReq:
			sv.Send(tag+1000, &proto.StatFSResp{}, nil) // unknown tag
		}
	})
	if _, err := c.Readlink(1); !errors.Is(err, unix.EIO) {
		t.Fatalf("wrong type: %v", err)
	}
	if _, err := c.Open(1, 0); !errors.Is(err, unix.EIO) {
		t.Fatalf("missing fd: %v", err)
	}
	if tgt, err := c.Readlink(2); err != nil || tgt != "t" {
		t.Fatalf("connection unusable after protocol error: %q %v", tgt, err)
	}
	if _, err := c.StatFS(0); !errors.Is(err, unix.EIO) {
		t.Fatalf("unknown tag: %v", err)
	}
	if c.Err() == nil {
		t.Fatal("connection still up after a response to nothing")
	}
}

// rawStatServer answers every request on fd with a canned StatBatchResp of
// one entry, using raw syscalls so that it allocates nothing itself.
func rawStatServer(fd int) {
	hello, _ := proto.AppendMessage(nil, 0, &proto.HelloResp{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: proto.MaxMessageSize}})
	stat, _ := proto.AppendMessage(nil, 0, &proto.StatBatchResp{Stats: []proto.Stat{{Size: 42}}, Errnos: []int32{0}})
	buf := make([]byte, 1<<16)
	readFull := func(p []byte) bool {
		for len(p) > 0 {
			n, err := unix.Read(fd, p)
			if n <= 0 || err != nil {
				return false
			}
			p = p[n:]
		}
		return true
	}
	for {
		if !readFull(buf[:proto.HeaderSize]) {
			return
		}
		length := binary.LittleEndian.Uint32(buf)
		typ := proto.MsgType(binary.LittleEndian.Uint16(buf[4:]))
		tag := binary.LittleEndian.Uint32(buf[8:])
		if !readFull(buf[proto.HeaderSize:length]) {
			return
		}
		out := stat
		if typ == proto.MsgHelloReq {
			out = hello
		}
		binary.LittleEndian.PutUint32(out[8:], tag)
		if _, err := unix.Write(fd, out); err != nil {
			return
		}
	}
}

// TestAllocs: a request allocates only what proto's decoder does (the
// response message and its slices), not waiter state.
func TestAllocs(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	go rawStatServer(fds[1])
	defer unix.Close(fds[1])
	c, err := New(wrap(t, fds[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	for range 10 {
		c.Stat(1)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if st, err := c.Stat(1); err != nil || st.Size != 42 {
			t.Fatalf("stat %+v %v", st, err)
		}
	})
	// StatBatchResp, its Stats and its Errnos.
	if allocs > 3 {
		t.Fatalf("Stat allocates %v times per call, want <= 3 (proto's decode)", allocs)
	}
	t.Logf("allocs per Stat: %v", allocs)
}

func BenchmarkStat(b *testing.B) {
	c, root := serve(b, server.Options{})
	write(b, filepath.Join(root, "f"), "x")
	hs, _, err := c.Walk(RootHandle, []string{"f"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Stat(hs[0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStatParallel(b *testing.B) {
	c, root := serve(b, server.Options{})
	write(b, filepath.Join(root, "f"), "x")
	hs, _, err := c.Walk(RootHandle, []string{"f"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Stat(hs[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
