package vfs_test

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// tctx is a task: fixed credentials, and blocking on a channel (with a
// deadline, so a missed wake-up fails the test instead of hanging it).
type tctx struct{ creds vfs.Credentials }

func (c *tctx) FSCredentials() *vfs.Credentials            { return &c.creds }
func (c *tctx) WaitHostFD(int, int16, time.Duration) error { return nil }
func (c *tctx) MM() *mm.MM                                 { return nil }
func (c *tctx) Block(ch <-chan struct{}, _ time.Duration) error {
	select {
	case <-ch:
		return nil
	case <-time.After(10 * time.Second):
		return unix.EINTR
	}
}

// env is a VFS with a tmpfs root, seen by a root task.
type env struct {
	t    testing.TB
	v    *vfs.VFS
	root vfs.VirtualDentry
	ctx  *tctx
}

func newEnv(t testing.TB) *env {
	t.Helper()
	mf, err := memfile.New(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	v := vfs.New()
	ns := v.NewMountNamespace(v.NewSuperblock(tmpfs.New(mf, tmpfs.Options{Mode: 0o777})), "tmpfs", 0)
	return &env{t: t, v: v, root: ns.Root(), ctx: &tctx{vfs.Credentials{Caps: vfs.AllCaps}}}
}

func (e *env) walk(path string) *vfs.Walk {
	return &vfs.Walk{Root: e.root, Start: e.root, Path: path, FollowFinal: true}
}

func (e *env) ok(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func (e *env) resolve(path string) vfs.VirtualDentry {
	e.t.Helper()
	vd, err := e.v.Resolve(e.ctx, e.walk(path))
	e.ok("resolve "+path, err)
	return vd
}

func (e *env) mkdir(path string) {
	e.t.Helper()
	e.ok("mkdir "+path, e.v.Mkdir(e.ctx, e.walk(path), 0o755, 0))
}

func (e *env) open(path string, flags int) *vfs.FileDescription {
	e.t.Helper()
	d, err := e.v.Open(e.ctx, e.walk(path), vfs.OpenOptions{Flags: flags, Mode: 0o644})
	e.ok("open "+path, err)
	return d
}

// put creates or truncates path and writes s to it, as files_misc's put.
func (e *env) put(path, s string) {
	e.t.Helper()
	d := e.open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	_, err := d.Write(e.ctx, [][]byte{[]byte(s)}, -1)
	e.ok("write "+path, err)
	d.DecRef()
}

func (e *env) inotify() *vfs.Inotify {
	in := vfs.NewInotify(e.v, unix.O_NONBLOCK)
	e.t.Cleanup(in.Release)
	return in
}

func (e *env) watch(in *vfs.Inotify, path string, mask uint32) int32 {
	e.t.Helper()
	wd, err := in.AddWatch(e.resolve(path), mask)
	e.ok("watch "+path, err)
	return wd
}

func (e *env) chmod(path string, mode uint32) {
	e.t.Helper()
	e.ok("chmod "+path, e.v.SetAttrVD(e.ctx, e.resolve(path), &vfs.SetAttr{Mask: vfs.SetMode, Mode: mode}, false))
}

func (e *env) rename(from, to string, flags uint32) {
	e.t.Helper()
	e.ok("rename "+from, e.v.Rename(e.ctx, e.walk(from), e.walk(to), flags))
}

var maskNames = []struct {
	bit  uint32
	name string
}{
	{unix.IN_ACCESS, "ACCESS"}, {unix.IN_MODIFY, "MODIFY"}, {unix.IN_ATTRIB, "ATTRIB"},
	{unix.IN_CLOSE_WRITE, "CLOSE_WRITE"}, {unix.IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
	{unix.IN_OPEN, "OPEN"}, {unix.IN_MOVED_FROM, "MOVED_FROM"}, {unix.IN_MOVED_TO, "MOVED_TO"},
	{unix.IN_CREATE, "CREATE"}, {unix.IN_DELETE, "DELETE"}, {unix.IN_DELETE_SELF, "DELETE_SELF"},
	{unix.IN_MOVE_SELF, "MOVE_SELF"}, {unix.IN_Q_OVERFLOW, "Q_OVERFLOW"}, {unix.IN_IGNORED, "IGNORED"},
	{unix.IN_ISDIR, "ISDIR"},
}

type event struct {
	wd           int32
	mask, cookie uint32
	name         string
}

func (ev event) String() string {
	var parts []string
	for _, m := range maskNames {
		if ev.mask&m.bit != 0 {
			parts = append(parts, m.name)
		}
	}
	s := fmt.Sprintf("%d %s", ev.wd, strings.Join(parts, "|"))
	if ev.name != "" {
		s += " " + ev.name
	}
	return s
}

// parse decodes read(2)'s bytes, checking each name's NUL padding.
func parse(t testing.TB, b []byte) []event {
	t.Helper()
	var out []event
	for len(b) > 0 {
		if len(b) < 16 {
			t.Fatalf("%d bytes left over", len(b))
		}
		n := int(binary.LittleEndian.Uint32(b[12:]))
		if n%16 != 0 || 16+n > len(b) {
			t.Fatalf("name length %d", n)
		}
		name := b[16 : 16+n]
		end := strings.IndexByte(string(name), 0)
		if n > 0 && (end < 0 || strings.Trim(string(name[end:]), "\x00") != "" || n-end > 16) {
			t.Fatalf("name %q is not NUL-padded to the next 16 bytes", name)
		}
		if end < 0 {
			end = 0
		}
		out = append(out, event{wd: int32(binary.LittleEndian.Uint32(b[0:])), mask: binary.LittleEndian.Uint32(b[4:]),
			cookie: binary.LittleEndian.Uint32(b[8:]), name: string(name[:end])})
		b = b[16+n:]
	}
	return out
}

// drain reads every queued event.
func drain(t testing.TB, ctx vfs.Context, in *vfs.Inotify) []event {
	t.Helper()
	var out []event
	buf := make([]byte, 1<<16)
	for {
		n, err := in.Read(ctx, [][]byte{buf}, -1)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, parse(t, buf[:n])...)
	}
}

// expect drains in and compares the events' "wd MASK name" forms.
func (e *env) expect(in *vfs.Inotify, what string, want ...string) []event {
	e.t.Helper()
	evs := drain(e.t, e.ctx, in)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.String())
	}
	if !slices.Equal(got, want) {
		e.t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
	return evs
}

func TestInotifyDirectoryEvents(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.mkdir("/d")
	e.put("/d/f", "x")
	dw := e.watch(in, "/d", unix.IN_CREATE|unix.IN_DELETE)
	fw := e.watch(in, "/d/f", unix.IN_ATTRIB|unix.IN_DELETE_SELF)
	if dw != 1 || fw != 2 {
		t.Fatalf("watch descriptors %d %d, want 1 2", dw, fw)
	}
	e.put("/d/new", "")
	e.mkdir("/d/sub")
	e.ok("mknod", e.v.Mknod(e.ctx, e.walk("/d/fifo"), unix.S_IFIFO|0o644, 0, 0))
	e.ok("symlink", e.v.Symlink(e.ctx, "f", e.walk("/d/link")))
	e.ok("link", e.v.Link(e.ctx, e.resolve("/d/f"), e.walk("/d/hard")))
	e.ok("unlink", e.v.Unlink(e.ctx, e.walk("/d/new")))
	e.ok("rmdir", e.v.Rmdir(e.ctx, e.walk("/d/sub")))
	e.expect(in, "creations and removals",
		"1 CREATE new", "1 CREATE|ISDIR sub", "1 CREATE fifo", "1 CREATE link",
		"2 ATTRIB", "1 CREATE hard", // link: the link count, then the name
		"1 DELETE new", "1 DELETE|ISDIR sub")

	// Removing one of two links changes the count; the last ends the
	// watch before the directory hears of it.
	e.ok("unlink hard", e.v.Unlink(e.ctx, e.walk("/d/hard")))
	e.expect(in, "unlink of one link", "2 ATTRIB", "1 DELETE hard")
	e.ok("unlink f", e.v.Unlink(e.ctx, e.walk("/d/f")))
	e.expect(in, "unlink of the last link", "2 ATTRIB", "2 DELETE_SELF", "2 IGNORED", "1 DELETE f")
	if err := in.RmWatch(fw); !errors.Is(err, unix.EINVAL) {
		t.Errorf("rm_watch of the ended watch: %v, want EINVAL", err)
	}
}

func TestInotifySelfAndParent(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.mkdir("/d")
	e.put("/d/f", "hello")
	e.watch(in, "/d", unix.IN_ALL_EVENTS)
	e.watch(in, "/d/f", unix.IN_ALL_EVENTS)

	d := e.open("/d/f", unix.O_RDWR|unix.O_TRUNC)
	d.Write(e.ctx, [][]byte{[]byte("abc")}, -1)
	d.Read(e.ctx, [][]byte{make([]byte, 2)}, 0)
	d.Read(e.ctx, [][]byte{make([]byte, 2)}, 100) // at the end: no event
	d.Write(e.ctx, [][]byte{nil}, -1)             // nothing written: no event
	d.DecRef()
	e.expect(in, "open O_TRUNC, write, read, close",
		"1 OPEN f", "2 OPEN", "1 MODIFY f", "2 MODIFY", "1 MODIFY f", "2 MODIFY",
		"1 ACCESS f", "2 ACCESS", "1 CLOSE_WRITE f", "2 CLOSE_WRITE")

	e.open("/d/f", unix.O_RDONLY).DecRef()
	p := e.open("/d/f", unix.O_PATH)
	p.DecRef()
	e.expect(in, "read-only open, O_PATH open", "1 OPEN f", "2 OPEN", "1 CLOSE_NOWRITE f", "2 CLOSE_NOWRITE")

	vd := e.resolve("/d/f")
	set := func(req vfs.SetAttr) { e.ok("setattr", e.v.SetAttrVD(e.ctx, vd, &req, false)) }
	set(vfs.SetAttr{Mask: vfs.SetMode, Mode: 0o600})
	set(vfs.SetAttr{Mask: vfs.SetUID, UID: 0})
	set(vfs.SetAttr{Mask: vfs.SetSize, Size: 1})
	set(vfs.SetAttr{Mask: vfs.SetAtime})
	set(vfs.SetAttr{Mask: vfs.SetMtime})
	set(vfs.SetAttr{Mask: vfs.SetAtime | vfs.SetMtime})
	e.expect(in, "chmod chown truncate atime mtime utimes",
		"1 ATTRIB f", "2 ATTRIB", "1 ATTRIB f", "2 ATTRIB", "1 MODIFY f", "2 MODIFY",
		"1 ACCESS f", "2 ACCESS", "1 MODIFY f", "2 MODIFY", "1 ATTRIB f", "2 ATTRIB")

	e.v.Notify(e.ctx, vd, unix.IN_ATTRIB) // what setxattr reports
	e.expect(in, "Notify", "1 ATTRIB f", "2 ATTRIB")

	// A directory's own events: IN_ISDIR, and its parent (the root) is
	// not watched.
	dd := e.open("/d", unix.O_RDONLY|unix.O_DIRECTORY)
	dd.IterDirents(e.ctx, func(vfs.Dirent, int64) bool { return true })
	dd.DecRef()
	e.expect(in, "directory open, getdents, close", "1 OPEN|ISDIR", "1 ACCESS|ISDIR", "1 CLOSE_NOWRITE|ISDIR")
	e.mkdir("/d/sub")
	e.open("/d/sub", unix.O_RDONLY).DecRef()
	e.chmod("/d/sub", 0o700)
	e.expect(in, "subdirectory", "1 CREATE|ISDIR sub", "1 OPEN|ISDIR sub", "1 CLOSE_NOWRITE|ISDIR sub", "1 ATTRIB|ISDIR sub")
}

func TestInotifyRename(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.mkdir("/a")
	e.mkdir("/b")
	e.put("/a/f", "f")
	e.put("/a/g", "g")
	e.put("/b/victim", "v")
	aw := e.watch(in, "/a", unix.IN_MOVED_FROM|unix.IN_MOVED_TO)
	bw := e.watch(in, "/b", unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_DELETE)
	fw := e.watch(in, "/a/f", unix.IN_MOVE_SELF)
	vw := e.watch(in, "/b/victim", unix.IN_ALL_EVENTS)
	if aw != 1 || bw != 2 || fw != 3 || vw != 4 {
		t.Fatalf("watch descriptors %d %d %d %d", aw, bw, fw, vw)
	}

	e.rename("/a/f", "/a/f2", 0)
	e.rename("/a/f2", "/b/f3", 0)
	evs := e.expect(in, "renames", "1 MOVED_FROM f", "1 MOVED_TO f2", "3 MOVE_SELF",
		"1 MOVED_FROM f2", "2 MOVED_TO f3", "3 MOVE_SELF")
	if len(evs) == 6 {
		if evs[0].cookie == 0 || evs[0].cookie != evs[1].cookie || evs[3].cookie != evs[4].cookie || evs[0].cookie == evs[3].cookie {
			t.Errorf("cookies %d %d, %d %d: want pairs of equal non-zero, different per rename",
				evs[0].cookie, evs[1].cookie, evs[3].cookie, evs[4].cookie)
		}
		if evs[2].cookie != 0 {
			t.Errorf("IN_MOVE_SELF cookie %d", evs[2].cookie)
		}
	}

	// Over a watched file: its link count, the mover's MOVE_SELF, then
	// the victim's end; no IN_DELETE on the directory.
	e.rename("/b/f3", "/b/victim", 0)
	e.expect(in, "rename over a watched file", "2 MOVED_FROM f3", "2 MOVED_TO victim",
		"4 ATTRIB", "3 MOVE_SELF", "4 DELETE_SELF", "4 IGNORED")

	e.put("/a/x", "x")
	e.rename("/a/g", "/a/x", unix.RENAME_EXCHANGE)
	e.expect(in, "exchange", "1 MOVED_FROM g", "1 MOVED_TO x", "1 MOVED_FROM x", "1 MOVED_TO g")

	e.mkdir("/a/dir")
	e.watch(in, "/a/dir", unix.IN_MOVE_SELF)
	e.rename("/a/dir", "/b/dir", 0)
	e.expect(in, "a directory", "1 MOVED_FROM|ISDIR dir", "2 MOVED_TO|ISDIR dir", "5 MOVE_SELF")
}

func TestInotifyDeleteSelfWaitsForClose(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.mkdir("/d")
	e.put("/d/f", "f")
	e.watch(in, "/d", unix.IN_DELETE|unix.IN_CLOSE_WRITE|unix.IN_MODIFY)
	e.watch(in, "/d/f", unix.IN_ALL_EVENTS)
	d := e.open("/d/f", unix.O_WRONLY)
	e.ok("unlink", e.v.Unlink(e.ctx, e.walk("/d/f")))
	e.expect(in, "unlink while open", "2 OPEN", "2 ATTRIB", "1 DELETE f")
	d.Write(e.ctx, [][]byte{[]byte("x")}, -1)
	d.DecRef()
	// The directory still hears of its removed child, as on Linux.
	e.expect(in, "write and close", "1 MODIFY f", "2 MODIFY", "1 CLOSE_WRITE f", "2 CLOSE_WRITE",
		"2 DELETE_SELF", "2 IGNORED")

	e.mkdir("/d/sub")
	e.watch(in, "/d/sub", unix.IN_DELETE_SELF)
	e.ok("rmdir", e.v.Rmdir(e.ctx, e.walk("/d/sub")))
	e.expect(in, "rmdir of a watched directory", "3 DELETE_SELF", "3 IGNORED", "1 DELETE|ISDIR sub")
	if n := vfs.WatchedInodes(e.v); n != 1 {
		t.Errorf("%d watched inodes, want 1 (/d)", n)
	}
}

func TestInotifyExclUnlink(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.mkdir("/d")
	e.put("/d/f", "f")
	e.watch(in, "/d", unix.IN_ALL_EVENTS|unix.IN_EXCL_UNLINK)
	d := e.open("/d/f", unix.O_RDWR)
	e.ok("unlink", e.v.Unlink(e.ctx, e.walk("/d/f")))
	d.Write(e.ctx, [][]byte{[]byte("x")}, -1)
	d.DecRef()
	e.expect(in, "IN_EXCL_UNLINK", "1 OPEN f", "1 DELETE f")
}

func TestInotifyWatchFlags(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.mkdir("/d")
	wd := e.watch(in, "/d", unix.IN_CREATE|unix.IN_ONESHOT)
	e.put("/d/1", "")
	e.put("/d/2", "")
	e.expect(in, "IN_ONESHOT", "1 CREATE 1", "1 IGNORED")
	if n := vfs.WatchedInodes(e.v); n != 0 {
		t.Errorf("%d watched inodes after the one shot", n)
	}

	// Watch descriptors are not reused at once.
	wd2 := e.watch(in, "/d", unix.IN_CREATE)
	if wd2 != wd+1 {
		t.Errorf("new watch %d, want %d", wd2, wd+1)
	}
	if got := e.watch(in, "/d/.", unix.IN_DELETE|unix.IN_MASK_ADD); got != wd2 {
		t.Errorf("the same inode again: %d, want %d", got, wd2)
	}
	e.put("/d/3", "")
	e.ok("unlink", e.v.Unlink(e.ctx, e.walk("/d/3")))
	e.expect(in, "IN_MASK_ADD", "2 CREATE 3", "2 DELETE 3")
	e.watch(in, "/d", unix.IN_DELETE)
	e.put("/d/4", "")
	e.ok("unlink", e.v.Unlink(e.ctx, e.walk("/d/4")))
	e.expect(in, "mask replaced", "2 DELETE 4")
	if _, err := in.AddWatch(e.resolve("/d"), unix.IN_CREATE|unix.IN_MASK_CREATE); !errors.Is(err, unix.EEXIST) {
		t.Errorf("IN_MASK_CREATE on a watched inode: %v, want EEXIST", err)
	}

	// rm_watch: IN_IGNORED, then the number is unknown.
	e.ok("rm_watch", in.RmWatch(wd2))
	e.expect(in, "rm_watch", "2 IGNORED")
	if err := in.RmWatch(wd2); !errors.Is(err, unix.EINVAL) {
		t.Errorf("second rm_watch: %v, want EINVAL", err)
	}
	e.put("/d/5", "")
	e.expect(in, "after rm_watch")

	// A second instance has its own numbers and queue; closing one
	// drops its watches without events.
	in2 := vfs.NewInotify(e.v, unix.O_NONBLOCK)
	w1 := e.watch(in, "/d", unix.IN_CREATE)
	if w := e.watch(in2, "/d", unix.IN_CREATE); w != 1 {
		t.Errorf("second instance's first watch is %d", w)
	}
	e.put("/d/6", "")
	e.expect(in, "first instance", fmt.Sprintf("%d CREATE 6", w1))
	if got := drain(t, e.ctx, in2); len(got) != 1 || got[0].String() != "1 CREATE 6" {
		t.Errorf("second instance: %v", got)
	}
	in2.Release()
	in.Release()
	if n := vfs.WatchedInodes(e.v); n != 0 {
		t.Errorf("%d watched inodes after both instances closed", n)
	}
}

func TestInotifyCoalescing(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.put("/f", "")
	e.watch(in, "/f", unix.IN_MODIFY|unix.IN_ATTRIB)
	d := e.open("/f", unix.O_WRONLY)
	for range 5 {
		d.Write(e.ctx, [][]byte{[]byte("x")}, -1)
	}
	e.chmod("/f", 0o600)
	d.Write(e.ctx, [][]byte{[]byte("x")}, -1)
	d.DecRef()
	e.expect(in, "identical events in a row merge", "1 MODIFY", "1 ATTRIB", "1 MODIFY")
	// Merging looks only at the last queued event.
	d = e.open("/f", unix.O_WRONLY)
	d.Write(e.ctx, [][]byte{[]byte("x")}, -1)
	e.expect(in, "after a read", "1 MODIFY")
	d.Write(e.ctx, [][]byte{[]byte("x")}, -1)
	d.DecRef()
	e.expect(in, "not merged with what was read", "1 MODIFY")
}

func TestInotifyOverflow(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.put("/f", "")
	e.watch(in, "/f", unix.IN_ACCESS|unix.IN_ATTRIB)
	d := e.open("/f", unix.O_RDWR)
	defer d.DecRef()
	d.Write(e.ctx, [][]byte{[]byte("x")}, -1)
	// Alternate two events so nothing merges.
	for i := range vfs.InotifyMaxQueued + 10 {
		if i%2 == 0 {
			d.Read(e.ctx, [][]byte{make([]byte, 1)}, 0)
		} else {
			e.chmod("/f", 0o600)
		}
	}
	if got, want := in.Pending(), 16*(vfs.InotifyMaxQueued+1); got != want {
		t.Errorf("FIONREAD %d, want %d", got, want)
	}
	evs := drain(t, e.ctx, in)
	if len(evs) != vfs.InotifyMaxQueued+1 {
		t.Fatalf("%d events, want %d", len(evs), vfs.InotifyMaxQueued+1)
	}
	if last := evs[len(evs)-1]; last.wd != -1 || last.mask != unix.IN_Q_OVERFLOW || last.name != "" {
		t.Errorf("last event %+v, want wd -1 IN_Q_OVERFLOW", last)
	}
	for _, ev := range evs[:len(evs)-1] {
		if ev.mask&unix.IN_Q_OVERFLOW != 0 {
			t.Fatalf("overflow before the end")
		}
	}
	// Read out, the queue takes events again.
	e.chmod("/f", 0o644)
	e.expect(in, "after the overflow was read", "1 ATTRIB")
}

func TestInotifyRead(t *testing.T) {
	e := newEnv(t)
	in := e.inotify()
	e.mkdir("/d")
	e.watch(in, "/d", unix.IN_CREATE)
	buf := make([]byte, 256)
	if _, err := in.Read(e.ctx, [][]byte{buf}, -1); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("empty non-blocking read: %v, want EAGAIN", err)
	}
	if in.Readiness(unix.POLLIN|unix.POLLOUT) != 0 {
		t.Errorf("ready with no events")
	}
	name := strings.Repeat("a", 21) // 22 bytes with its NUL: padded to 32
	e.put("/d/"+name, "")
	e.put("/d/b", "")
	if got := in.Pending(); got != 48+32 {
		t.Errorf("FIONREAD %d, want 80", got)
	}
	if got := in.Readiness(unix.POLLIN | unix.POLLOUT); got != unix.POLLIN {
		t.Errorf("readiness %#x, want POLLIN", got)
	}
	if _, err := in.Read(e.ctx, [][]byte{buf[:47]}, -1); !errors.Is(err, unix.EINVAL) {
		t.Errorf("read into 47 bytes: %v, want EINVAL", err)
	}
	if _, err := in.Read(e.ctx, [][]byte{buf}, 0); !errors.Is(err, unix.ESPIPE) {
		t.Errorf("pread: %v, want ESPIPE", err)
	}
	// 48 bytes split across slices hold the first event exactly; the
	// second does not fit in what is left.
	n, err := in.Read(e.ctx, [][]byte{buf[:20], buf[100:130]}, -1)
	if n != 48 || err != nil {
		t.Fatalf("read: %d, %v; want 48", n, err)
	}
	got := parse(t, append(slices.Clone(buf[:20]), buf[100:128]...))
	if len(got) != 1 || got[0].name != name || got[0].mask != unix.IN_CREATE {
		t.Errorf("first event %v", got)
	}
	e.expect(in, "the rest", "1 CREATE b")

	// A blocking read waits for the next event.
	bl := vfs.NewInotify(e.v, 0)
	defer bl.Release()
	e.watch(bl, "/d", unix.IN_DELETE)
	done := make(chan []event)
	go func() {
		b := make([]byte, 256)
		n, err := bl.Read(e.ctx, [][]byte{b}, -1)
		if err != nil {
			t.Errorf("blocking read: %v", err)
		}
		done <- parse(t, b[:n])
	}()
	time.Sleep(10 * time.Millisecond)
	e.ok("unlink", e.v.Unlink(e.ctx, e.walk("/d/b")))
	select {
	case evs := <-done:
		if len(evs) != 1 || evs[0].String() != "1 DELETE b" {
			t.Errorf("blocking read got %v", evs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking read not woken")
	}
}

// BenchmarkFDWriteNoWatch is the hot path the hooks must not slow: a
// small pwrite through a FileDescription when no watch exists anywhere.
// BenchmarkFDWriteWatchElsewhere has a watch on another file;
// BenchmarkFDWriteWatched on the file itself (every write queues, and
// merges with, an IN_MODIFY).
func BenchmarkFDWriteNoWatch(b *testing.B)        { benchWrite(b, "") }
func BenchmarkFDWriteWatchElsewhere(b *testing.B) { benchWrite(b, "/other") }
func BenchmarkFDWriteWatched(b *testing.B)        { benchWrite(b, "/f") }

func benchWrite(b *testing.B, watch string) {
	e := newEnv(b)
	e.put("/f", "")
	e.put("/other", "")
	if watch != "" {
		e.watch(e.inotify(), watch, unix.IN_MODIFY)
	}
	d := e.open("/f", unix.O_WRONLY)
	defer d.DecRef()
	src := [][]byte{make([]byte, 64)}
	b.ReportAllocs()
	for b.Loop() {
		src[0] = src[0][:64]
		if _, err := d.Write(e.ctx, src, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFDReadNoWatch(b *testing.B) {
	e := newEnv(b)
	e.put("/f", strings.Repeat("x", 64))
	d := e.open("/f", unix.O_RDONLY)
	defer d.DecRef()
	dst := [][]byte{make([]byte, 64)}
	b.ReportAllocs()
	for b.Loop() {
		dst[0] = dst[0][:64]
		if _, err := d.Read(e.ctx, dst, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNotifyIOHookNoWatch is the hook's own cost on every read and
// write when no watch exists: a nil check and one atomic load.
func BenchmarkNotifyIOHookNoWatch(b *testing.B) {
	e := newEnv(b)
	e.put("/f", "")
	d := e.open("/f", unix.O_WRONLY)
	defer d.DecRef()
	for b.Loop() {
		vfs.NotifyIOHook(d)
	}
}
