package server

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

func mustWrite(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNormalOperations(t *testing.T) {
	e := newEnv(t, Options{})
	mustWrite(t, filepath.Join(e.root, "a/b/c.txt"), "hello gofer")
	cc := e.connect(t)

	// Walk of a 3-level path in one request.
	w := cc.walk(0, "a", "b", "c.txt")
	if w.Errno != 0 || len(w.Handles) != 3 {
		t.Fatalf("walk: %+v", w)
	}
	if w.Stats[0].Mode&unix.S_IFMT != unix.S_IFDIR || w.Stats[2].Mode&unix.S_IFMT != unix.S_IFREG || w.Stats[2].Size != 11 {
		t.Fatalf("walk stats: %+v", w.Stats)
	}
	file := w.Handles[2]
	bDir := w.Handles[1]

	// Walk failing part way reports the handles walked and the errno.
	w2 := cc.walk(0, "a", "missing", "x")
	if w2.Errno != int32(unix.ENOENT) || len(w2.Handles) != 1 {
		t.Fatalf("partial walk: %+v", w2)
	}
	// Walking through a regular file.
	if w3 := cc.walk(bDir, "c.txt", "x"); w3.Errno != int32(unix.ENOTDIR) || len(w3.Handles) != 1 {
		t.Fatalf("walk through file: %+v", w3)
	}
	cc.wantErr(&proto.WalkReq{Dir: file, Names: []string{"x"}}, unix.ENOTDIR)

	// StatBatch, with one bad handle.
	sb := cc.call(&proto.StatBatchReq{Handles: []uint64{0, file, 999999}}).(*proto.StatBatchResp)
	if sb.Errnos[0] != 0 || sb.Errnos[1] != 0 || sb.Errnos[2] != int32(unix.EBADF) || sb.Stats[1].Size != 11 {
		t.Fatalf("statbatch: %+v", sb)
	}

	// Open for read; read the donated fd.
	r, fds := cc.callFDs(&proto.OpenReq{Handle: file, Flags: unix.O_RDONLY})
	if _, ok := r.(*proto.OpenResp); !ok || len(fds) != 1 {
		t.Fatalf("open: %#v %v", r, fds)
	}
	if got := readAllFD(t, fds[0]); got != "hello gofer" {
		t.Fatalf("read %q", got)
	}
	unix.Close(fds[0])
	cc.wantErr(&proto.OpenReq{Handle: file, Flags: unix.O_RDONLY | unix.O_CREAT}, unix.EINVAL)

	// Create + write.
	r, fds = cc.callFDs(&proto.CreateReq{Dir: bDir, Name: "new.txt", Flags: unix.O_RDWR, Mode: 0o640, UID: 1234, GID: 5678})
	cr, ok := r.(*proto.CreateResp)
	if !ok || len(fds) != 1 {
		t.Fatalf("create: %#v", r)
	}
	if _, err := unix.Write(fds[0], []byte("written")); err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[0])
	if b, _ := os.ReadFile(filepath.Join(e.root, "a/b/new.txt")); string(b) != "written" {
		t.Fatalf("created content %q", b)
	}
	if cr.Stat.Mode&0o7777 != 0o640 {
		t.Fatalf("create mode %o", cr.Stat.Mode)
	}
	if unix.Geteuid() == 0 && (cr.Stat.UID != 1234 || cr.Stat.GID != 5678) {
		t.Fatalf("create owner %d:%d", cr.Stat.UID, cr.Stat.GID)
	}
	cc.wantErr(&proto.CreateReq{Dir: bDir, Name: "new.txt", Flags: unix.O_RDWR, Mode: 0o644}, unix.EEXIST)

	// Mkdir.
	md := cc.call(&proto.MkdirReq{Dir: 0, Name: "d", Mode: 0o751}).(*proto.MkdirResp)
	if md.Stat.Mode != unix.S_IFDIR|0o751 {
		t.Fatalf("mkdir mode %o", md.Stat.Mode)
	}

	// Mknod: FIFO ok, device refused.
	mn := cc.call(&proto.MknodReq{Dir: md.Handle, Name: "fifo", Mode: unix.S_IFIFO | 0o600}).(*proto.MknodResp)
	if mn.Stat.Mode != unix.S_IFIFO|0o600 {
		t.Fatalf("mknod mode %o", mn.Stat.Mode)
	}
	cc.wantErr(&proto.MknodReq{Dir: md.Handle, Name: "null", Mode: unix.S_IFCHR | 0o666, RdevMajor: 1, RdevMinor: 3}, unix.EPERM)
	// Opening a FIFO does not hang the server.
	r, fds = cc.callFDs(&proto.OpenReq{Handle: mn.Handle, Flags: unix.O_RDONLY})
	if _, ok := r.(*proto.OpenResp); !ok {
		t.Fatalf("open fifo: %#v", r)
	}
	for _, fd := range fds {
		unix.Close(fd)
	}

	// Symlink + Readlink.
	sl := cc.call(&proto.SymlinkReq{Dir: md.Handle, Name: "ln", Target: "../a/b/c.txt"}).(*proto.SymlinkResp)
	if sl.Stat.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("symlink mode %o", sl.Stat.Mode)
	}
	rl := cc.call(&proto.ReadlinkReq{Handle: sl.Handle}).(*proto.ReadlinkResp)
	if rl.Target != "../a/b/c.txt" {
		t.Fatalf("readlink %q", rl.Target)
	}
	cc.wantErr(&proto.ReadlinkReq{Handle: file}, unix.EINVAL)

	// Link.
	lk := cc.call(&proto.LinkReq{Target: file, Dir: md.Handle, Name: "hard"}).(*proto.LinkResp)
	if lk.Stat.Nlink != 2 {
		t.Fatalf("link nlink %d", lk.Stat.Nlink)
	}

	// Rename, including RENAME_NOREPLACE.
	cc.call(&proto.RenameReq{OldDir: md.Handle, OldName: "hard", NewDir: 0, NewName: "hard2"})
	if _, err := os.Lstat(filepath.Join(e.root, "hard2")); err != nil {
		t.Fatal(err)
	}
	cc.wantErr(&proto.RenameReq{OldDir: 0, OldName: "hard2", NewDir: bDir, NewName: "c.txt", Flags: proto.RenameNoReplace}, unix.EEXIST)

	// Unlink, with and without AT_REMOVEDIR.
	cc.call(&proto.UnlinkReq{Dir: 0, Name: "hard2"})
	cc.wantErr(&proto.UnlinkReq{Dir: 0, Name: "hard2"}, unix.ENOENT)
	cc.call(&proto.MkdirReq{Dir: 0, Name: "empty", Mode: 0o755})
	cc.wantErr(&proto.UnlinkReq{Dir: 0, Name: "empty"}, unix.EISDIR)
	cc.call(&proto.UnlinkReq{Dir: 0, Name: "empty", Flags: proto.AtRemoveDir})

	// Setattr: mode, size, times.
	sa := cc.call(&proto.SetattrReq{Handle: file, Mask: proto.SetattrMode | proto.SetattrSize | proto.SetattrMtime,
		Mode: 0o600, Size: 5, Mtime: proto.Timespec{Sec: 12345}}).(*proto.SetattrResp)
	if sa.Stat.Mode != unix.S_IFREG|0o600 || sa.Stat.Size != 5 || sa.Stat.Mtime.Sec != 12345 {
		t.Fatalf("setattr: %+v", sa.Stat)
	}
	if b, _ := os.ReadFile(filepath.Join(e.root, "a/b/c.txt")); string(b) != "hello" {
		t.Fatalf("truncated content %q", b)
	}
	// Setattr times on the symlink itself.
	cc.call(&proto.SetattrReq{Handle: sl.Handle, Mask: proto.SetattrMtime, Mtime: proto.Timespec{Sec: 777}})

	// StatFS.
	sf := cc.call(&proto.StatFSReq{Handle: 0}).(*proto.StatFSResp)
	if sf.StatFS.Bsize == 0 || sf.StatFS.NameLen == 0 {
		t.Fatalf("statfs: %+v", sf.StatFS)
	}

	// Close, then the handle is gone.
	cc.call(&proto.CloseReq{Handles: []uint64{file, bDir}})
	cc.wantErr(&proto.StatFSReq{Handle: file}, unix.EBADF)
	cc.wantErr(&proto.CloseReq{Handles: []uint64{file}}, unix.EBADF)
}

func TestGetdents(t *testing.T) {
	e := newEnv(t, Options{})
	dir := filepath.Join(e.root, "big")
	const n = 1000
	want := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("entry-%04d-%s", i, "padpadpadpad")
		mustWrite(t, filepath.Join(dir, name), "")
		want[name] = true
	}
	cc := e.connect(t)
	h, _ := cc.walkOK(0, "big")
	seen := map[string]int{}
	var cookie uint64
	calls := 0
	for {
		calls++
		if calls > 1000 {
			t.Fatal("getdents does not terminate")
		}
		r := cc.call(&proto.GetdentsReq{Handle: h, Cookie: cookie, MaxBytes: 2048}).(*proto.GetdentsResp)
		for _, d := range r.Entries {
			seen[d.Name]++
			if d.Type != unix.DT_REG {
				t.Fatalf("type of %s: %d", d.Name, d.Type)
			}
			cookie = d.Off
		}
		if r.EOF {
			break
		}
		if len(r.Entries) == 0 {
			t.Fatal("no progress without EOF")
		}
	}
	if calls < 10 {
		t.Fatalf("expected chunking, got %d calls", calls)
	}
	if len(seen) != n {
		t.Fatalf("saw %d names, want %d", len(seen), n)
	}
	for name, c := range seen {
		if !want[name] || c != 1 {
			t.Fatalf("name %q seen %d times", name, c)
		}
	}
	// Getdents of a non-directory.
	mustWrite(t, filepath.Join(e.root, "f"), "x")
	f, _ := cc.walkOK(0, "f")
	cc.wantErr(&proto.GetdentsReq{Handle: f, MaxBytes: 4096}, unix.ENOTDIR)
}

func TestReadOnly(t *testing.T) {
	e := newEnv(t, Options{ReadOnly: true})
	mustWrite(t, filepath.Join(e.root, "f"), "data")
	if err := os.Symlink("f", filepath.Join(e.root, "l")); err != nil {
		t.Fatal(err)
	}
	cc := e.connect(t)
	f, _ := cc.walkOK(0, "f")
	l, _ := cc.walkOK(0, "l")
	for _, m := range []proto.Message{
		&proto.CreateReq{Dir: 0, Name: "n", Flags: unix.O_RDWR, Mode: 0o644},
		&proto.MkdirReq{Dir: 0, Name: "n", Mode: 0o755},
		&proto.MknodReq{Dir: 0, Name: "n", Mode: unix.S_IFIFO | 0o644},
		&proto.SymlinkReq{Dir: 0, Name: "n", Target: "f"},
		&proto.LinkReq{Target: f, Dir: 0, Name: "n"},
		&proto.UnlinkReq{Dir: 0, Name: "f"},
		&proto.RenameReq{OldDir: 0, OldName: "f", NewDir: 0, NewName: "n"},
		&proto.SetattrReq{Handle: f, Mask: proto.SetattrMode, Mode: 0o777},
		&proto.SetattrReq{Handle: f, Mask: proto.SetattrSize},
		&proto.OpenReq{Handle: f, Flags: unix.O_WRONLY},
		&proto.OpenReq{Handle: f, Flags: unix.O_RDWR},
		&proto.OpenReq{Handle: f, Flags: unix.O_RDONLY | unix.O_TRUNC},
	} {
		cc.wantErr(m, unix.EROFS)
	}
	// Reads still work.
	r, fds := cc.callFDs(&proto.OpenReq{Handle: f, Flags: unix.O_RDONLY})
	if _, ok := r.(*proto.OpenResp); !ok || len(fds) != 1 {
		t.Fatalf("open: %#v", r)
	}
	if got := readAllFD(t, fds[0]); got != "data" {
		t.Fatalf("read %q", got)
	}
	unix.Close(fds[0])
	if rl := cc.call(&proto.ReadlinkReq{Handle: l}).(*proto.ReadlinkResp); rl.Target != "f" {
		t.Fatalf("readlink %q", rl.Target)
	}
	ents, _ := os.ReadDir(e.root)
	if len(ents) != 2 {
		t.Fatalf("root changed: %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(e.root, "f")); string(b) != "data" {
		t.Fatal("file changed")
	}
}

func TestHandshakeRequired(t *testing.T) {
	e := newEnv(t, Options{})
	cc := e.connectNoHello(t)
	cc.wantErr(&proto.StatFSReq{Handle: 0}, unix.EPROTO)
	cc.wantErr(&proto.HelloReq{Hello: proto.Hello{Version: 99, MaxMessageSize: 4096}}, unix.EPROTONOSUPPORT)
	r := cc.call(&proto.HelloReq{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: 4096}}).(*proto.HelloResp)
	if r.MaxMessageSize != 4096 || r.Version != proto.Version {
		t.Fatalf("hello: %+v", r)
	}
	cc.wantErr(&proto.HelloReq{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: 4096}}, unix.EPROTO)
	// A response type sent as a request.
	cc.wantErr(&proto.CloseResp{}, unix.EBADMSG)
}
