package server

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

const canaryData = "CANARY: must never be read or changed\n"

// env is a root directory with a canary directory next to it.
type env struct {
	dir     string // parent of root and outside
	root    string
	outside string
	canary  string
	snap    string
	srv     *Server
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	d := t.TempDir()
	e := &env{dir: d, root: filepath.Join(d, "root"), outside: filepath.Join(d, "outside")}
	e.canary = filepath.Join(e.outside, "canary")
	for _, p := range []string{e.root, e.outside} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(e.canary, []byte(canaryData), 0o644); err != nil {
		t.Fatal(err)
	}
	// Make the canary's atime distinguishable from a read.
	old := time.Unix(1000000000, 0)
	if err := os.Chtimes(e.canary, old, old); err != nil {
		t.Fatal(err)
	}
	e.snap = snapshot(t, e.outside)
	srv, err := New(e.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(func() {
		srv.Close()
		e.finalCheck(t)
	})
	return e
}

// snapshot describes every entry under dir by its lstat identity. It never
// reads file contents, so the canary's atime is part of the snapshot and a
// read through the server would show up (directory atimes are left out:
// listing the directory here updates them).
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		atime := fmt.Sprintf("%d.%d", st.Atim.Sec, st.Atim.Nsec)
		if fi.IsDir() {
			atime = "-"
		}
		lines = append(lines, fmt.Sprintf("%s ino=%d mode=%o nlink=%d uid=%d gid=%d size=%d atime=%s mtime=%d.%d ctime=%d.%d",
			p, st.Ino, st.Mode, st.Nlink, st.Uid, st.Gid, st.Size, atime,
			st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// checkCanary asserts the outside directory is unchanged (identity, times,
// link counts, no new or missing entries) and the canary holds its data.
func (e *env) checkCanary(t *testing.T) {
	t.Helper()
	if got := snapshot(t, e.outside); got != e.snap {
		t.Fatalf("outside directory changed:\nbefore:\n%s\nafter:\n%s", e.snap, got)
	}
}

// finalCheck also compares the canary's bytes (reading it, so only once).
func (e *env) finalCheck(t *testing.T) {
	t.Helper()
	e.checkCanary(t)
	b, err := os.ReadFile(e.canary)
	if err != nil || string(b) != canaryData {
		t.Fatalf("canary content: %q, %v", b, err)
	}
}

// sockPair returns two connected proto.Conns.
func sockPair(t *testing.T) (*proto.Conn, *proto.Conn, int) {
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
	// Keep a raw duplicate of the client end for adversarial writes.
	raw, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return mk(fds[0]), mk(fds[1]), raw
}

// client is a test client connected to a running Serve.
type client struct {
	t    *testing.T
	c    *proto.Conn
	raw  int
	tag  uint32
	done chan error
}

func (e *env) connect(t *testing.T) *client {
	t.Helper()
	cc := e.connectNoHello(t)
	r := cc.call(&proto.HelloReq{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: proto.MaxMessageSize}})
	if _, ok := r.(*proto.HelloResp); !ok {
		t.Fatalf("hello: %#v", r)
	}
	return cc
}

func (e *env) connectNoHello(t *testing.T) *client {
	t.Helper()
	cl, sv, raw := sockPair(t)
	cc := &client{t: t, c: cl, raw: raw, done: make(chan error, 1)}
	go func() {
		err := e.srv.Serve(sv)
		sv.Close()
		cc.done <- err
	}()
	t.Cleanup(func() {
		cl.Close()
		unix.Close(raw)
		select {
		case <-cc.done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after the client closed")
		}
	})
	return cc
}

// callFDs sends m and returns the response and any donated descriptors.
func (cc *client) callFDs(m proto.Message) (proto.Message, []int) {
	cc.t.Helper()
	cc.tag++
	if err := cc.c.Send(cc.tag, m, nil); err != nil {
		cc.t.Fatalf("send %T: %v", m, err)
	}
	tag, r, fds, err := cc.c.Recv()
	if err != nil {
		cc.t.Fatalf("recv for %T: %v", m, err)
	}
	if tag != cc.tag {
		cc.t.Fatalf("tag %d, want %d", tag, cc.tag)
	}
	return r, fds
}

func (cc *client) call(m proto.Message) proto.Message {
	cc.t.Helper()
	r, fds := cc.callFDs(m)
	for _, fd := range fds {
		unix.Close(fd)
	}
	return r
}

// errno returns the errno of an ErrorResp, or 0.
func errno(r proto.Message) unix.Errno {
	if e, ok := r.(*proto.ErrorResp); ok {
		return unix.Errno(e.Errno)
	}
	return 0
}

func (cc *client) wantErr(m proto.Message, want unix.Errno) {
	cc.t.Helper()
	r := cc.call(m)
	if got := errno(r); got != want {
		cc.t.Fatalf("%T: got %#v (%v), want %v", m, r, got, want)
	}
}

func (cc *client) walk(dir uint64, names ...string) *proto.WalkResp {
	cc.t.Helper()
	r := cc.call(&proto.WalkReq{Dir: dir, Names: names})
	w, ok := r.(*proto.WalkResp)
	if !ok {
		cc.t.Fatalf("walk %v: %#v", names, r)
	}
	return w
}

// walkOK walks names and returns the last handle, failing on any error.
func (cc *client) walkOK(dir uint64, names ...string) (uint64, proto.Stat) {
	cc.t.Helper()
	w := cc.walk(dir, names...)
	if w.Errno != 0 || len(w.Handles) != len(names) {
		cc.t.Fatalf("walk %v: errno %v, %d handles", names, unix.Errno(w.Errno), len(w.Handles))
	}
	return w.Handles[len(names)-1], w.Stats[len(names)-1]
}

func readAllFD(t *testing.T, fd int) string {
	t.Helper()
	var b bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := unix.Pread(fd, buf, int64(b.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return b.String()
		}
		b.Write(buf[:n])
	}
}

var _ = errors.Is
