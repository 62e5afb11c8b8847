package server

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

// setupEvil populates root with symlinks that point outside.
func setupEvil(t *testing.T, e *env) {
	t.Helper()
	mustWrite(t, filepath.Join(e.root, "d/x"), "inside")
	for name, target := range map[string]string{
		"evil":   "/",
		"up":     "../..",
		"canary": "../outside/canary",
		"out":    "../outside",
		"self":   "/proc/self/root",
	} {
		if err := os.Symlink(target, filepath.Join(e.root, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSymlinksNeverFollowed(t *testing.T) {
	e := newEnv(t, Options{})
	setupEvil(t, e)
	cc := e.connect(t)
	for _, link := range []string{"evil", "up", "canary", "out", "self"} {
		w := cc.walk(0, link, "outside", "canary")
		if w.Errno != 0 || len(w.Handles) != 1 || w.Stats[0].Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Fatalf("walk through %s did not stop at the symlink: %+v", link, w)
		}
		h := w.Handles[0]
		cc.wantErr(&proto.WalkReq{Dir: h, Names: []string{"outside"}}, unix.ENOTDIR)
		cc.wantErr(&proto.OpenReq{Handle: h, Flags: unix.O_RDONLY}, unix.ELOOP)
		cc.wantErr(&proto.OpenReq{Handle: h, Flags: unix.O_RDONLY | unix.O_DIRECTORY}, unix.ELOOP)
		cc.wantErr(&proto.GetdentsReq{Handle: h, MaxBytes: 4096}, unix.ENOTDIR)
		cc.wantErr(&proto.CreateReq{Dir: h, Name: "canary", Flags: unix.O_RDWR, Mode: 0o644}, unix.ENOTDIR)
		cc.wantErr(&proto.UnlinkReq{Dir: h, Name: "canary"}, unix.ENOTDIR)
		cc.wantErr(&proto.RenameReq{OldDir: h, OldName: "canary", NewDir: 0, NewName: "stolen"}, unix.ENOTDIR)
		cc.wantErr(&proto.SetattrReq{Handle: h, Mask: proto.SetattrMode, Mode: 0o777}, unix.EOPNOTSUPP)
		cc.wantErr(&proto.SetattrReq{Handle: h, Mask: proto.SetattrSize, Size: 0}, unix.EINVAL)
		// Times and ownership apply to the link itself.
		cc.call(&proto.SetattrReq{Handle: h, Mask: proto.SetattrMtime | proto.SetattrAtime | proto.SetattrUID, UID: 4242,
			Mtime: proto.Timespec{Nsec: proto.UtimeNow}, Atime: proto.Timespec{Sec: 1}})
		// A hard link of the symlink is another symlink, not the target.
		lr := cc.call(&proto.LinkReq{Target: h, Dir: 0, Name: "hl-" + link})
		if l, ok := lr.(*proto.LinkResp); !ok || l.Stat.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Fatalf("link of %s: %#v", link, lr)
		}
		// StatFS of the link's handle is the root's filesystem.
		cc.call(&proto.StatFSReq{Handle: h})
		e.checkCanary(t)
	}
}

func TestSymlinkSwappedForDirectory(t *testing.T) {
	e := newEnv(t, Options{})
	mustWrite(t, filepath.Join(e.root, "d/x"), "inside")
	cc := e.connect(t)
	d, _ := cc.walkOK(0, "d")

	// The host (or another connection) swaps a symlink to the outside in
	// place of "d" between two requests.
	if err := os.Rename(filepath.Join(e.root, "d"), filepath.Join(e.root, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(e.root, "d")); err != nil {
		t.Fatal(err)
	}
	// The old handle still names the original directory (inside root).
	x, st := cc.walkOK(d, "x")
	if st.Size != uint64(len("inside")) {
		t.Fatalf("child of swapped dir: %+v", st)
	}
	// Nothing reaches the canary by name through the old handle.
	if w := cc.walk(d, "canary"); w.Errno != int32(unix.ENOENT) {
		t.Fatalf("walk canary via swapped handle: %+v", w)
	}
	// Re-opening the old handle by (parent, name) meets the symlink.
	r := cc.call(&proto.GetdentsReq{Handle: d, MaxBytes: 4096})
	if got := errno(r); got != unix.ELOOP && got != unix.ESTALE && got != unix.ENOTDIR {
		t.Fatalf("getdents of swapped dir: %#v", r)
	}
	r = cc.call(&proto.OpenReq{Handle: d, Flags: unix.O_RDONLY | unix.O_DIRECTORY})
	if got := errno(r); got != unix.ELOOP && got != unix.ESTALE && got != unix.ENOTDIR {
		t.Fatalf("open of swapped dir: %#v", r)
	}
	// Replace the symlink with a different directory: ESTALE, not a
	// silent open of another file.
	os.Remove(filepath.Join(e.root, "d"))
	os.Mkdir(filepath.Join(e.root, "d"), 0o755)
	cc.wantErr(&proto.OpenReq{Handle: d, Flags: unix.O_RDONLY | unix.O_DIRECTORY}, unix.ESTALE)
	// Same for a file swapped for a symlink to the canary.
	if err := os.Rename(filepath.Join(e.root, "moved/x"), filepath.Join(e.root, "moved/y")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../outside/canary", filepath.Join(e.root, "moved/x")); err != nil {
		t.Fatal(err)
	}
	r = cc.call(&proto.OpenReq{Handle: x, Flags: unix.O_RDWR | unix.O_TRUNC})
	if got := errno(r); got != unix.ELOOP && got != unix.ESTALE {
		t.Fatalf("open of swapped file: %#v", r)
	}
	r = cc.call(&proto.SetattrReq{Handle: x, Mask: proto.SetattrSize, Size: 0})
	if got := errno(r); got != unix.ELOOP && got != unix.ESTALE {
		t.Fatalf("truncate of swapped file: %#v", r)
	}
	// chmod/times act on the handle's own inode (the moved file).
	cc.call(&proto.SetattrReq{Handle: x, Mask: proto.SetattrMode | proto.SetattrMtime, Mode: 0o600, Mtime: proto.Timespec{Sec: 5}})
	var st2 unix.Stat_t
	if err := unix.Lstat(filepath.Join(e.root, "moved/y"), &st2); err != nil || st2.Mode&0o7777 != 0o600 || st2.Mtim.Sec != 5 {
		t.Fatalf("setattr did not hit the handle's inode: %+v %v", st2, err)
	}
	e.checkCanary(t)
}

// TestNoHandleEscapes drives a connection's request handler directly (so
// the decoder's name checks are bypassed) with hostile names, then checks
// every descriptor in the handle table lies inside the root.
func TestNoHandleEscapes(t *testing.T) {
	e := newEnv(t, Options{})
	setupEvil(t, e)
	cn := &conn{s: e.srv, handles: map[uint64]*handle{}, next: 1}
	defer cn.closeAll()
	do := func(m proto.Message) proto.Message {
		r, fds := cn.handle(m)
		for _, fd := range fds {
			unix.Close(fd)
		}
		return r
	}
	do(&proto.HelloReq{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: 4096}})
	bad := []string{"..", ".", "a/b", "../outside", "/", "/etc", "x\x00y", "", strings.Repeat("a", 256),
		"../outside/canary", "d/../../outside"}
	for _, name := range bad {
		if w := do(&proto.WalkReq{Dir: 0, Names: []string{"d", name}}).(*proto.WalkResp); w.Errno != int32(unix.EINVAL) || len(w.Handles) != 1 {
			t.Fatalf("walk %q: %+v", name, w)
		}
		for _, m := range []proto.Message{
			&proto.CreateReq{Dir: 0, Name: name, Flags: unix.O_RDWR, Mode: 0o644},
			&proto.MkdirReq{Dir: 0, Name: name, Mode: 0o755},
			&proto.MknodReq{Dir: 0, Name: name, Mode: unix.S_IFREG | 0o644},
			&proto.SymlinkReq{Dir: 0, Name: name, Target: "x"},
			&proto.LinkReq{Target: 1, Dir: 0, Name: name},
			&proto.UnlinkReq{Dir: 0, Name: name},
			&proto.UnlinkReq{Dir: 0, Name: name, Flags: proto.AtRemoveDir},
			&proto.RenameReq{OldDir: 0, OldName: name, NewDir: 0, NewName: "stolen"},
			&proto.RenameReq{OldDir: 0, OldName: "d", NewDir: 0, NewName: name},
		} {
			if got := errno(do(m)); got != unix.EINVAL {
				t.Fatalf("%T with name %q: errno %v, want EINVAL", m, name, got)
			}
		}
	}
	// Walk through every link and try to go on.
	for _, link := range []string{"evil", "up", "canary", "out", "self"} {
		do(&proto.WalkReq{Dir: 0, Names: []string{link, "outside", "canary"}})
		do(&proto.WalkReq{Dir: 0, Names: []string{link, "etc"}})
	}
	// Exhaust: unknown handles are EBADF, never a wild descriptor.
	for _, h := range []uint64{1 << 40, ^uint64(0), 12345} {
		if got := errno(do(&proto.OpenReq{Handle: h})); got != unix.EBADF {
			t.Fatalf("open of handle %d: %v", h, got)
		}
	}

	var canary, outside, root unix.Stat_t
	unix.Stat(e.canary, &canary)
	unix.Stat(e.outside, &outside)
	unix.Stat(e.root, &root)
	realRoot, _ := filepath.EvalSymlinks(e.root)
	if len(cn.handles) < 2 {
		t.Fatalf("expected some handles, got %d", len(cn.handles))
	}
	for id, h := range cn.handles {
		for _, fd := range []int{h.fd, h.parent} {
			if fd < 0 {
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				t.Fatal(err)
			}
			if st.Ino == canary.Ino && st.Dev == canary.Dev || st.Ino == outside.Ino && st.Dev == outside.Dev {
				t.Fatalf("handle %d refers outside the root", id)
			}
			p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
			if err != nil {
				t.Fatal(err)
			}
			if p != realRoot && !strings.HasPrefix(p, realRoot+"/") {
				t.Fatalf("handle %d is %s, outside %s", id, p, realRoot)
			}
		}
	}
	e.checkCanary(t)
}

// TestHandleLimit checks the handle table bound without opening a million
// descriptors: the table is pre-filled with placeholder entries.
func TestHandleLimit(t *testing.T) {
	e := newEnv(t, Options{})
	mustWrite(t, filepath.Join(e.root, "f"), "x")
	cn := &conn{s: e.srv, handles: map[uint64]*handle{}, next: 1}
	cn.handle(&proto.HelloReq{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: 4096}})
	root := cn.handles[0]
	for i := uint64(1); len(cn.handles) < MaxHandles; i++ {
		cn.handles[1<<32+i] = root
	}
	r, _ := cn.handle(&proto.WalkReq{Dir: 0, Names: []string{"f"}})
	if w := r.(*proto.WalkResp); w.Errno != int32(unix.ENFILE) {
		t.Fatalf("walk beyond limit: %+v", w)
	}
	r, fds := cn.handle(&proto.CreateReq{Dir: 0, Name: "g", Flags: unix.O_RDWR, Mode: 0o644})
	if errno(r) != unix.ENFILE || len(fds) != 0 {
		t.Fatalf("create beyond limit: %#v", r)
	}
	root.close()
}

func frame(typ proto.MsgType, tag uint32, length uint32, payload []byte) []byte {
	b := make([]byte, proto.HeaderSize, proto.HeaderSize+len(payload))
	binary.LittleEndian.PutUint32(b[0:], length)
	binary.LittleEndian.PutUint16(b[4:], uint16(typ))
	binary.LittleEndian.PutUint32(b[8:], tag)
	return append(b, payload...)
}

func waitServe(t *testing.T, cc *client) {
	t.Helper()
	select {
	case <-cc.done:
		cc.done <- nil // let the cleanup see it too
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestRawFrames(t *testing.T) {
	e := newEnv(t, Options{})
	setupEvil(t, e)

	// Undecodable frames with valid headers are answered with an error
	// under their own tag; the connection keeps serving.
	cc := e.connect(t)
	walkDotDot, err := proto.AppendMessage(nil, 77, &proto.WalkReq{Dir: 0, Names: []string{".."}})
	if err != nil {
		t.Fatal(err)
	}
	walkSlash, _ := proto.AppendMessage(nil, 78, &proto.WalkReq{Dir: 0, Names: []string{"out/canary"}})
	walkNUL, _ := proto.AppendMessage(nil, 79, &proto.WalkReq{Dir: 0, Names: []string{"a\x00"}})
	for _, b := range [][]byte{
		walkDotDot, walkSlash, walkNUL,
		frame(999, 80, proto.HeaderSize, nil),                              // unknown type
		frame(proto.MsgStatFSReq, 81, proto.HeaderSize+3, []byte{1, 2, 3}), // short payload
		frame(proto.MsgCloseReq, 82, proto.HeaderSize+4, []byte{0xff, 0xff, 0xff, 0x7f}),
	} {
		if _, err := unix.Write(cc.raw, b); err != nil {
			t.Fatal(err)
		}
	}
	for want := uint32(77); want <= 82; want++ {
		tag, m, _, err := cc.c.Recv()
		if err != nil {
			t.Fatalf("reply to bad frame %d: %v", want, err)
		}
		er, ok := m.(*proto.ErrorResp)
		wantErrno := int32(unix.EBADMSG)
		if want <= 79 {
			wantErrno = int32(unix.EINVAL) // bad names
		}
		if tag != want || !ok || er.Errno != wantErrno {
			t.Fatalf("reply to bad frame %d: tag %d, %#v; want an error %d", want, tag, m, wantErrno)
		}
	}
	// The next good request is answered with its own tag (call checks).
	if w := cc.walk(0, "d", "x"); w.Errno != 0 {
		t.Fatalf("walk after bad frames: %+v", w)
	}

	// Oversized frame: the stream is unusable, Serve ends.
	big := e.connect(t)
	unix.Write(big.raw, frame(proto.MsgWalkReq, 1, 1<<30, nil))
	waitServe(t, big)

	// Truncated frame then disconnect (client dies mid-request).
	tr := e.connect(t)
	unix.Write(tr.raw, frame(proto.MsgWalkReq, 1, 100, []byte{0, 0, 0}))
	tr.c.Close()
	unix.Close(tr.raw)
	tr.raw = -1
	waitServe(t, tr)

	// Header shorter than HeaderSize, then disconnect.
	sh := e.connect(t)
	unix.Write(sh.raw, []byte{1, 2, 3})
	sh.c.Close()
	unix.Shutdown(sh.raw, unix.SHUT_RDWR)
	waitServe(t, sh)

	// Request sent, client gone before the reply.
	gone := e.connect(t)
	gone.c.Send(1, &proto.GetdentsReq{Handle: 0, MaxBytes: 1 << 16}, nil)
	gone.c.Close()
	unix.Shutdown(gone.raw, unix.SHUT_RDWR)
	waitServe(t, gone)

	// The first connection and a fresh one still work.
	if w := cc.walk(0, "d", "x"); w.Errno != 0 {
		t.Fatalf("old connection broken: %+v", w)
	}
	c2 := e.connect(t)
	if w := c2.walk(0, "d", "x"); w.Errno != 0 {
		t.Fatalf("second connection: %+v", w)
	}
	e.checkCanary(t)
}

func TestConcurrentConnections(t *testing.T) {
	e := newEnv(t, Options{})
	mustWrite(t, filepath.Join(e.root, "a/b/c"), "data")
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			cc := e.connect(t)
			for j := range 50 {
				h, _ := cc.walkOK(0, "a", "b", "c")
				r, fds := cc.callFDs(&proto.OpenReq{Handle: h, Flags: unix.O_RDONLY})
				if _, ok := r.(*proto.OpenResp); !ok {
					t.Errorf("conn %d iter %d: %#v", i, j, r)
					return
				}
				unix.Close(fds[0])
				cc.call(&proto.CloseReq{Handles: []uint64{h}})
			}
		}()
	}
	for range 8 {
		<-done
	}
}
