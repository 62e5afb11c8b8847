package goferfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

func TestLookupStatGetdents10000(t *testing.T) {
	e := newEnv(t, "", Options{})
	const n = 10000
	for i := range n {
		mustWrite(t, e.path(fmt.Sprintf("big/f%05d", i)), []byte(fmt.Sprint(i)))
	}
	dir := e.walk(t, "big")
	if a := stat(t, dir); !a.IsDir() {
		t.Fatalf("big: mode %o", a.Mode)
	}
	var names []string
	var last int64
	if err := dir.IterDir(root, 0, func(d vfs.Dirent) bool {
		if d.Type != unix.DT_REG || d.Ino == 0 {
			t.Errorf("dirent %+v", d)
		}
		names = append(names, d.Name)
		last = d.Next
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != n {
		t.Fatalf("%d entries, want %d", len(names), n)
	}
	sort.Strings(names)
	for i, nm := range names {
		if nm != fmt.Sprintf("f%05d", i) {
			t.Fatalf("entry %d is %q", i, nm)
		}
	}
	// Resuming at the last cookie yields nothing; stopping early works and
	// resuming mid-way yields the rest.
	cnt := 0
	dir.IterDir(root, last, func(vfs.Dirent) bool { cnt++; return true })
	if cnt != 0 {
		t.Fatalf("%d entries after the last cookie", cnt)
	}
	var mid int64
	cnt = 0
	dir.IterDir(root, 0, func(d vfs.Dirent) bool { cnt++; mid = d.Next; return cnt < 4321 })
	rest := 0
	dir.IterDir(root, mid, func(vfs.Dirent) bool { rest++; return true })
	if cnt != 4321 || rest != n-4321 {
		t.Fatalf("stop at %d, rest %d", cnt, rest)
	}

	// Every entry looks up and stats.
	for i := range n {
		c, err := dir.Lookup(root, fmt.Sprintf("f%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		if a := stat(t, c); a.Size != int64(len(fmt.Sprint(i))) || a.Ino == 0 {
			t.Fatalf("f%05d: %+v", i, a)
		}
		c.(*inode).Release()
	}
	f, err := dir.Lookup(root, "f01234")
	if err != nil {
		t.Fatal(err)
	}
	if a := stat(t, f); a.Size != 4 || a.Type() != unix.S_IFREG || a.Nlink != 1 || a.UID != 0 {
		t.Fatalf("stat %+v", a)
	}
	if _, err := dir.Lookup(root, "nope"); err != unix.ENOENT {
		t.Fatalf("lookup missing: %v", err)
	}
	if _, err := f.Lookup(root, "x"); err != unix.ENOTDIR {
		t.Fatalf("lookup in file: %v", err)
	}
	if err := f.IterDir(root, 0, func(vfs.Dirent) bool { return true }); err != unix.ENOTDIR {
		t.Fatalf("iterdir of file: %v", err)
	}
}

func TestLookupPath(t *testing.T) {
	e := newEnv(t, "", Options{})
	mustWrite(t, e.path("a/b/c/d/e"), []byte("deep"))
	os.Symlink("../x", e.path("a/b/ln"))
	res, err := e.fs.root.LookupPath(root, []string{"a", "b", "c", "d", "e"})
	if err != nil || len(res) != 5 {
		t.Fatalf("%d %v", len(res), err)
	}
	if a := stat(t, res[4]); a.Size != 4 {
		t.Fatalf("e size %d", a.Size)
	}
	// Looking up a live name again returns the same inode.
	again, err := res[1].Lookup(root, "c")
	if err != nil || again != res[2] {
		t.Fatalf("relookup: %p vs %p, %v", again, res[2], err)
	}
	again.(*inode).Release()
	// Cached prefix + walked rest.
	res2, err := e.fs.root.LookupPath(root, []string{"a", "b", "c", "d", "e"})
	if err != nil || len(res2) != 5 || res2[4] != res[4] {
		t.Fatalf("cached walk %v", err)
	}
	// Stops after a symlink.
	res3, err := e.fs.root.LookupPath(root, []string{"a", "b", "ln", "more"})
	if err != nil || len(res3) != 3 {
		t.Fatalf("symlink walk: %d %v", len(res3), err)
	}
	if tgt, err := res3[2].Readlink(root); err != nil || tgt != "../x" {
		t.Fatalf("readlink %q %v", tgt, err)
	}
	// Missing component: the prefix comes back with the error.
	res4, err := e.fs.root.LookupPath(root, []string{"a", "b", "zz", "q"})
	if err != unix.ENOENT || len(res4) != 2 {
		t.Fatalf("missing: %d %v", len(res4), err)
	}
	// Through a regular file.
	res5, err := e.fs.root.LookupPath(root, []string{"a", "b", "c", "d", "e", "f"})
	if err != unix.ENOTDIR || len(res5) != 5 {
		t.Fatalf("through a file: %d %v", len(res5), err)
	}
	for _, rs := range [][]vfs.Inode{res, res2, res3, res4, res5} {
		for _, r := range rs {
			r.(*inode).Release()
		}
	}
}

func TestCreateWriteRead(t *testing.T) {
	e := newEnv(t, "", Options{})
	ctx := &tctx{creds: vfs.Credentials{UID: 1234, GID: 5678}}
	ino, f, err := e.fs.root.Create(ctx, "new", 0o640, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	defer ino.(*inode).Release()
	a := stat(t, ino)
	if a.Mode != unix.S_IFREG|0o640 || a.UID != 1234 || a.GID != 5678 || a.Size != 0 {
		t.Fatalf("new file attr %+v", a)
	}
	var st unix.Stat_t
	unix.Stat(e.path("new"), &st)
	if st.Uid != 1234 || st.Gid != 5678 {
		t.Fatalf("host owner %d:%d", st.Uid, st.Gid)
	}
	writeAt(t, f, []byte("hello "), 0)
	// Several buffers in one write.
	if n, err := f.Write(root, [][]byte{[]byte("wor"), nil, []byte("ld")}, 6); n != 5 || err != nil {
		t.Fatalf("writev: %d %v", n, err)
	}
	if got := hostRead(t, e.path("new")); string(got) != "hello world" {
		t.Fatalf("host sees %q", got)
	}
	if got := readAt(t, f, 100, 0); string(got) != "hello world" {
		t.Fatalf("read %q", got)
	}
	if got := readAt(t, f, 3, 6); string(got) != "wor" {
		t.Fatalf("pread %q", got)
	}
	// Scatter read over more than 16 buffers.
	bufs := make([][]byte, 40)
	for i := range bufs {
		bufs[i] = make([]byte, 1)
	}
	if n, err := f.Read(root, bufs, 0); n != 11 || err != nil || bufs[10][0] != 'd' {
		t.Fatalf("readv: %d %v", n, err)
	}
	// The size grew locally, without asking the gofer.
	if a := stat(t, ino); a.Size != 11 {
		t.Fatalf("size after write %d", a.Size)
	}
	// O_APPEND writes (offset -1) go to the end.
	n, err := f.Write(root, [][]byte{[]byte("!")}, -1)
	if err != nil || n != 1 {
		t.Fatal(err)
	}
	if _, end, err := f.(vfs.Appender).Append(root, [][]byte{[]byte("?")}); err != nil || end != 13 {
		t.Fatalf("append end %d %v", end, err)
	}
	if got := hostRead(t, e.path("new")); string(got) != "hello world!?" {
		t.Fatalf("after append %q", got)
	}
	if err := f.(vfs.Syncer).Sync(root, false); err != nil {
		t.Fatal(err)
	}
	// A second open for reading sees the data.
	f2 := open(t, ino.(*inode), unix.O_RDONLY)
	defer f2.Release()
	if got := readAt(t, f2, 100, 0); string(got) != "hello world!?" {
		t.Fatalf("second open %q", got)
	}
	if _, err := f2.Write(root, [][]byte{[]byte("x")}, 0); err != unix.EBADF {
		t.Fatalf("write to a read-only open: %v", err)
	}
	if _, _, err := e.fs.root.Create(root, "new", 0o644, unix.O_RDWR); err != unix.EEXIST {
		t.Fatalf("create existing: %v", err)
	}
	// Mkdir under a set-group-ID directory inherits the group and the bit.
	d, err := e.fs.root.Mkdir(ctx, "sg", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetMode | vfs.SetGID, Mode: 0o2775, GID: 4242}); err != nil {
		t.Fatal(err)
	}
	sub, err := d.Mkdir(ctx, "sub", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if a := stat(t, sub); a.GID != 4242 || a.Mode&unix.S_ISGID == 0 || a.UID != 1234 {
		t.Fatalf("setgid inheritance %+v", a)
	}
	sub.(*inode).Release()
	d.(*inode).Release()
}

func TestRenameUnlink(t *testing.T) {
	e := newEnv(t, "", Options{})
	mustWrite(t, e.path("a/x"), []byte("xdata"))
	mustWrite(t, e.path("b/y"), []byte("ydata"))
	a, b := e.walk(t, "a"), e.walk(t, "b")
	x, err := a.Lookup(root, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Rename(root, "x", b, "z", 0); err != nil {
		t.Fatal(err)
	}
	if got := hostRead(t, e.path("b/z")); string(got) != "xdata" {
		t.Fatalf("renamed content %q", got)
	}
	// The live inode follows its new name and can still be opened.
	f := open(t, x.(*inode), unix.O_RDONLY)
	if got := readAt(t, f, 10, 0); string(got) != "xdata" {
		t.Fatalf("read after rename %q", got)
	}
	f.Release()
	if z, err := b.Lookup(root, "z"); err != nil || z != x {
		t.Fatalf("lookup new name: %v", err)
	} else {
		z.(*inode).Release()
	}
	if _, err := a.Lookup(root, "x"); err != unix.ENOENT {
		t.Fatalf("old name: %v", err)
	}
	// Replacing rename; RENAME_NOREPLACE; RENAME_EXCHANGE.
	y, _ := b.Lookup(root, "y")
	if err := b.Rename(root, "z", b, "y", unix.RENAME_NOREPLACE); err != unix.EEXIST {
		t.Fatalf("noreplace: %v", err)
	}
	if err := b.Rename(root, "z", a, "w", 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Rename(root, "w", b, "y", unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	if string(hostRead(t, e.path("a/w"))) != "ydata" || string(hostRead(t, e.path("b/y"))) != "xdata" {
		t.Fatal("exchange did not swap")
	}
	for _, c := range []struct {
		ino  vfs.Inode
		want string
	}{{x, "xdata"}, {y, "ydata"}} {
		f := open(t, c.ino.(*inode), unix.O_RDONLY)
		if got := readAt(t, f, 10, 0); string(got) != c.want {
			t.Fatalf("after exchange %q, want %q", got, c.want)
		}
		f.Release()
	}
	// Renaming onto another link of the same file changes nothing.
	os.Link(e.path("a/w"), e.path("a/w2"))
	w2, _ := a.Lookup(root, "w2")
	w, _ := a.Lookup(root, "w")
	if err := a.Rename(root, "w", a, "w2", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.path("a/w")); err != nil {
		t.Fatal("rename onto a hard link removed the old name")
	}
	if c, err := a.Lookup(root, "w"); err != nil || c != w {
		t.Fatalf("a/w after no-op rename: %v", err)
	} else {
		c.(*inode).Release()
	}
	if err := a.Unlink(root, "w2"); err != nil {
		t.Fatal(err)
	}
	w.(*inode).Release()
	w2.(*inode).Release()
	// Replace x (now b/y) by renaming a/w onto it.
	if err := a.Rename(root, "w", b, "y", 0); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, x); a.Nlink != 0 {
		t.Fatalf("replaced file nlink %d", a.Nlink)
	}
	// Unlink: the name goes, an open file stays readable.
	f = open(t, y.(*inode), unix.O_RDONLY)
	if err := b.Unlink(root, "y"); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, f, 10, 0); string(got) != "ydata" {
		t.Fatalf("read after unlink %q", got)
	}
	f.Release()
	if _, err := b.Lookup(root, "y"); err != unix.ENOENT {
		t.Fatalf("lookup unlinked: %v", err)
	}
	if a := stat(t, y); a.Nlink != 0 {
		t.Fatalf("unlinked nlink %d", a.Nlink)
	}
	if err := e.fs.root.Rmdir(root, "a"); err != nil {
		t.Fatal(err)
	}
	if err := e.fs.root.Rmdir(root, "b"); err != nil {
		t.Fatal(err)
	}
	if err := e.fs.root.Rmdir(root, "nope"); err != unix.ENOENT {
		t.Fatalf("rmdir missing: %v", err)
	}
	x.(*inode).Release()
	y.(*inode).Release()
	a.Release()
	b.Release()
}

func TestDirRenameKeepsChildren(t *testing.T) {
	e := newEnv(t, "", Options{})
	mustWrite(t, e.path("d1/f"), []byte("data"))
	os.Mkdir(e.path("other"), 0o755)
	os.Mkdir(e.path("d1/sub"), 0o755)
	f := e.walk(t, "d1/f")
	d1 := e.walk(t, "d1")
	other := e.walk(t, "other")
	if err := e.fs.root.Rename(root, "d1", e.fs.root, "d2", 0); err != nil {
		t.Fatal(err)
	}
	// Moving a directory that is not live still updates both parents'
	// link counts as Stat sees them.
	n1, n2 := stat(t, d1).Nlink, stat(t, other).Nlink
	if err := d1.Rename(root, "sub", other, "sub", 0); err != nil {
		t.Fatal(err)
	}
	if a, b := stat(t, d1).Nlink, stat(t, other).Nlink; a != n1-1 || b != n2+1 {
		t.Fatalf("nlink after moving a subdirectory: %d->%d, %d->%d", n1, a, n2, b)
	}
	other.Release()
	// Children of the moved directory still open, and the directory lists.
	fl := open(t, f, unix.O_RDONLY)
	if got := readAt(t, fl, 10, 0); string(got) != "data" {
		t.Fatalf("%q", got)
	}
	fl.Release()
	n := 0
	if err := d1.IterDir(root, 0, func(vfs.Dirent) bool { n++; return true }); err != nil || n != 1 {
		t.Fatalf("iterdir of moved dir: %d %v", n, err)
	}
	f.Release()
	d1.Release()
}

func TestSymlinkLinkMknod(t *testing.T) {
	e := newEnv(t, "", Options{})
	mustWrite(t, e.path("file"), []byte("abc"))
	sl, err := e.fs.root.Symlink(root, "ln", "file")
	if err != nil {
		t.Fatal(err)
	}
	if tgt, err := sl.Readlink(root); err != nil || tgt != "file" {
		t.Fatalf("readlink %q %v", tgt, err)
	}
	if tgt, _ := os.Readlink(e.path("ln")); tgt != "file" {
		t.Fatalf("host link %q", tgt)
	}
	if a := stat(t, sl); a.Type() != unix.S_IFLNK || a.Size != 4 {
		t.Fatalf("symlink attr %+v", a)
	}
	if _, err := sl.Open(root, unix.O_RDONLY); err != unix.ELOOP {
		t.Fatalf("open symlink: %v", err)
	}
	// Readlink of a looked-up symlink asks the gofer.
	sl2 := e.walk(t, "ln")
	if sl2 != sl {
		t.Fatal("live symlink looked up as a different inode")
	}
	file := e.walk(t, "file")
	if _, err := file.Readlink(root); err != unix.EINVAL {
		t.Fatalf("readlink of a file: %v", err)
	}
	if err := e.fs.root.Link(root, "hard", file); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, file); a.Nlink != 2 {
		t.Fatalf("nlink after link %d", a.Nlink)
	}
	hard := e.walk(t, "hard")
	if hard.d != file.d {
		t.Fatal("hard links do not share data")
	}
	fifo, err := e.fs.root.Mknod(root, "fifo", unix.S_IFIFO|0o644, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fs.root.Mknod(root, "null", unix.S_IFCHR|0o666, unix.Mkdev(1, 3)); err != unix.EPERM {
		t.Fatalf("mknod device: %v", err)
	}
	rd, err := fifo.Open(root, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	wr, err := fifo.Open(root, unix.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if !rd.Stream() {
		t.Fatal("fifo is not a stream")
	}
	if _, err := rd.Read(root, [][]byte{make([]byte, 4)}, -1); err != unix.EAGAIN {
		t.Fatalf("empty nonblocking fifo: %v", err)
	}
	done := make(chan string)
	rd.SetStatusFlags(unix.O_RDONLY) // now blocking: waits in WaitHostFD
	go func() {
		b := make([]byte, 4)
		n, err := rd.Read(root, [][]byte{b}, -1)
		done <- fmt.Sprint(string(b[:n]), err)
	}()
	time.Sleep(20 * time.Millisecond)
	if n, err := wr.Write(root, [][]byte{[]byte("pipe")}, -1); n != 4 || err != nil {
		t.Fatalf("fifo write %d %v", n, err)
	}
	if got := <-done; got != "pipe<nil>" {
		t.Fatalf("fifo read %q", got)
	}
	rd.Release()
	wr.Release()
	for _, i := range []vfs.Inode{sl, sl2, file, hard, fifo} {
		i.(*inode).Release()
	}
}

func TestSetAttr(t *testing.T) {
	e := newEnv(t, "", Options{})
	mustWrite(t, e.path("f"), []byte("0123456789"))
	f := e.walk(t, "f")
	if err := f.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, f); a.Mode != unix.S_IFREG|0o600 {
		t.Fatalf("mode %o", a.Mode)
	}
	if err := f.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetSize, Size: 4}); err != nil {
		t.Fatal(err)
	}
	if got := hostRead(t, e.path("f")); string(got) != "0123" {
		t.Fatalf("truncated %q", got)
	}
	at := unix.Timespec{Sec: 1000, Nsec: 5}
	mt := unix.Timespec{Sec: 2000, Nsec: 7}
	if err := f.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetAtime | vfs.SetMtime, Atime: at, Mtime: mt}); err != nil {
		t.Fatal(err)
	}
	a := stat(t, f)
	if a.Size != 4 || a.Atime != at || a.Mtime != mt {
		t.Fatalf("attr %+v", a)
	}
	var st unix.Stat_t
	unix.Stat(e.path("f"), &st)
	if st.Mode&0o7777 != 0o600 || st.Size != 4 || st.Mtim != mt || st.Atim != at {
		t.Fatalf("host stat %+v", st)
	}
	if err := f.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetUID | vfs.SetGID, UID: 77, GID: 88}); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, f); a.UID != 77 || a.GID != 88 {
		t.Fatalf("owner %d:%d", a.UID, a.GID)
	}
	if err := e.fs.root.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetSize, Size: 0}); err != unix.EISDIR {
		t.Fatalf("truncate dir: %v", err)
	}
	sfs, err := f.StatFS(root)
	if err != nil || sfs.Bsize == 0 || sfs.Namelen == 0 {
		t.Fatalf("statfs %+v %v", sfs, err)
	}
	if _, err := f.Getxattr(root, "user.x"); err != unix.ENOTSUP {
		t.Fatalf("getxattr: %v", err)
	}
	f.Release()
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "d/f"), []byte("ro"))
	e := newEnv(t, dir, Options{ReadOnly: true})
	d := e.walk(t, "d")
	f := e.walk(t, "d/f")
	rf := open(t, f, unix.O_RDONLY)
	if got := readAt(t, rf, 10, 0); string(got) != "ro" {
		t.Fatalf("read %q", got)
	}
	rf.Release()
	checks := map[string]error{}
	_, err := f.Open(root, unix.O_RDWR)
	checks["open rw"] = err
	_, _, err = d.Create(root, "n", 0o644, unix.O_RDWR)
	checks["create"] = err
	_, err = d.Mkdir(root, "n", 0o755)
	checks["mkdir"] = err
	_, err = d.Mknod(root, "n", unix.S_IFIFO|0o644, 0)
	checks["mknod"] = err
	_, err = d.Symlink(root, "n", "t")
	checks["symlink"] = err
	checks["link"] = d.Link(root, "n", f)
	checks["unlink"] = d.Unlink(root, "f")
	checks["rmdir"] = e.fs.root.Rmdir(root, "d")
	checks["rename"] = d.Rename(root, "f", d, "g", 0)
	checks["setattr"] = f.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0o777})
	for op, err := range checks {
		if err != unix.EROFS {
			t.Errorf("%s: %v, want EROFS", op, err)
		}
	}
	if s, err := f.StatFS(root); err != nil || s.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("statfs flags %#x %v", s.Flags, err)
	}
	if got := hostRead(t, filepath.Join(dir, "d/f")); string(got) != "ro" {
		t.Fatalf("host file changed: %q", got)
	}
	f.Release()
	d.Release()
}

// TestCacheModes changes a file on the host behind the client's back.
func TestCacheModes(t *testing.T) {
	for _, mode := range []CacheMode{Exclusive, Shared} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			e := newEnv(t, "", Options{CacheMode: mode})
			mustWrite(t, e.path("f"), []byte("short"))
			mustWrite(t, e.path("g"), []byte("g1"))
			f := e.walk(t, "f")
			g := e.walk(t, "g")
			stat(t, f)
			mustWrite(t, e.path("f"), []byte("much longer now"))
			a := stat(t, f)
			if mode == Exclusive && a.Size != 5 {
				t.Fatalf("exclusive sees outside size change: %d", a.Size)
			}
			if mode == Shared && a.Size != 15 {
				t.Fatalf("shared misses outside size change: %d", a.Size)
			}
			// The VFS revalidates cached names first: Exclusive trusts
			// them; Shared walks and compares.
			if !e.fs.root.Revalidate(root, "g", g) {
				t.Fatal("unchanged name not revalidated")
			}
			if e.fs.root.Revalidate(root, "f", g) != (mode == Exclusive) {
				t.Fatal("revalidate of a name naming another file")
			}
			// Replace g on the host by a different file.
			os.Remove(e.path("g"))
			mustWrite(t, e.path("g"), []byte("a new file"))
			if e.fs.root.Revalidate(root, "g", g) != (mode == Exclusive) {
				t.Fatalf("revalidate after replacement on the host, mode %v", mode)
			}
			g2, err := e.fs.root.Lookup(root, "g")
			if err != nil {
				t.Fatal(err)
			}
			if mode == Exclusive && g2 != g {
				t.Fatal("exclusive looked up again")
			}
			if mode == Shared {
				if g2 == g {
					t.Fatal("shared returned the stale inode")
				}
				if a := stat(t, g2); a.Size != 10 {
					t.Fatalf("new g size %d", a.Size)
				}
			}
			// Data reads always come from the host.
			rf := open(t, f, unix.O_RDONLY)
			if got := readAt(t, rf, 100, 0); string(got) != "much longer now" {
				t.Fatalf("read %q", got)
			}
			rf.Release()
			g2.(*inode).Release()
			g.Release()
			f.Release()
		})
	}
}

func TestSharedModeDropsStalePages(t *testing.T) {
	e := newEnv(t, "", Options{CacheMode: Shared})
	mustWrite(t, e.path("f"), bytes.Repeat([]byte("A"), 8192))
	f := e.walk(t, "f")
	rf := open(t, f, unix.O_RDONLY)
	defer rf.Release()
	m := mapFile(t, rf, false)
	mem, _, err := m.Translate(0, pageSize, false)
	if err != nil || e.mf.Slice(mem, 1)[0] != 'A' {
		t.Fatalf("translate %v", err)
	}
	ms := &fakeMS{}
	m.AddMapping(ms, 0x10000, 0, 8192, false)
	time.Sleep(10 * time.Millisecond) // a distinct mtime
	mustWrite(t, e.path("f"), bytes.Repeat([]byte("B"), 8192))
	stat(t, f)
	if len(ms.got()) == 0 {
		t.Fatal("mapping not invalidated after an outside change")
	}
	mem, _, err = m.Translate(0, pageSize, false)
	if err != nil || e.mf.Slice(mem, 1)[0] != 'B' {
		t.Fatalf("stale page after outside change: %q %v", e.mf.Slice(mem, 1), err)
	}
	m.RemoveMapping(ms, 0x10000, 0, 8192, false)
	m.DecRef()
	f.Release()
}

// mapFile configures a mapping of f and takes a mapping reference.
func mapFile(t testing.TB, f *regularFile, shared bool) mm.Mappable {
	t.Helper()
	opts := mm.MMapOpts{Length: 1 << 20, Shared: shared}
	opts.Perms.Read = true
	opts.Perms.Write = shared
	if err := f.ConfigureMMap(root, &opts); err != nil {
		t.Fatalf("configure mmap: %v", err)
	}
	if opts.Mappable == nil || !opts.MaxPerms.Read || opts.Ino == 0 {
		t.Fatalf("mmap opts %+v", opts)
	}
	opts.Mappable.IncRef()
	return opts.Mappable
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

func TestPageCache(t *testing.T) {
	e := newEnv(t, "", Options{})
	data := pattern(3*pageSize + 100) // last page partial
	mustWrite(t, e.path("f"), data)
	f := e.walk(t, "f")
	rw := open(t, f, unix.O_RDWR)
	defer rw.Release()
	m := mapFile(t, rw, true)

	// Translate reads the right bytes; the tail of the last page is zero.
	mem, n, err := m.Translate(0, 4*pageSize, false)
	if err != nil || n != 4*pageSize {
		t.Fatalf("translate: %d %v", n, err)
	}
	got := e.mf.Slice(mem, n)
	if !bytes.Equal(got[:len(data)], data) || !bytes.Equal(got[len(data):], make([]byte, int(n)-len(data))) {
		t.Fatal("cached pages differ from the file")
	}
	// A miss with a long length fills only the aligned 64 KiB window.
	mustWrite(t, e.path("long"), pattern(1<<20))
	long := e.walk(t, "long")
	lf := open(t, long, unix.O_RDONLY)
	lm := mapFile(t, lf, false)
	if _, n, err := lm.Translate(8*pageSize, 1<<20-8*pageSize, false); err != nil || n != fillWindow-8*pageSize {
		t.Fatalf("long translate: %d %v", n, err)
	}
	lm.DecRef()
	lf.Release()
	long.Release()
	// A hit returns the same memory; a page past EOF fails.
	if mem2, _, err := m.Translate(pageSize, pageSize, false); err != nil || mem2 != mem+pageSize {
		t.Fatalf("hit: %#x vs %#x %v", mem2, mem+pageSize, err)
	}
	if _, _, err := m.Translate(4*pageSize, pageSize, false); !errors.Is(err, mm.ErrPastEOF) {
		t.Fatalf("past EOF: %v", err)
	}

	// write(2) after Translate shows in the cached page.
	writeAt(t, rw, []byte("WRITTEN"), pageSize+10)
	if string(e.mf.Slice(mem+pageSize+10, 7)) != "WRITTEN" {
		t.Fatal("write not visible in the page cache")
	}
	if string(hostRead(t, e.path("f"))[pageSize+10:pageSize+17]) != "WRITTEN" {
		t.Fatal("write did not reach the host")
	}

	// A shared writable mapping writes: read(2) sees the dirty page, the
	// host only after Sync.
	ms := &fakeMS{}
	m.AddMapping(ms, 0x400000, 0, 4*pageSize, true)
	wmem, _, err := m.Translate(2*pageSize, pageSize, true)
	if err != nil {
		t.Fatal(err)
	}
	copy(e.mf.Slice(wmem+5, 6), "MAPPED")
	if got := readAt(t, rw, 6, 2*pageSize+5); string(got) != "MAPPED" {
		t.Fatalf("read misses dirty mapped data: %q", got)
	}
	if bytes.Contains(hostRead(t, e.path("f")), []byte("MAPPED")) {
		t.Fatal("dirty page on the host before Sync")
	}
	if err := rw.Sync(root, false); err != nil {
		t.Fatal(err)
	}
	host := hostRead(t, e.path("f"))
	if string(host[2*pageSize+5:2*pageSize+11]) != "MAPPED" || len(host) != len(data) {
		t.Fatalf("after sync: len %d", len(host))
	}
	// msync of a range writes back only that range.
	copy(e.mf.Slice(wmem+30, 5), "RANGE")
	if err := m.(mm.MappableSyncer).SyncRange(0, pageSize); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(hostRead(t, e.path("f")), []byte("RANGE")) {
		t.Fatal("msync of page 0 wrote page 2")
	}
	if err := m.(mm.MappableSyncer).SyncRange(2*pageSize, pageSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(hostRead(t, e.path("f")), []byte("RANGE")) {
		t.Fatal("msync of page 2 did not write it")
	}
	// Dirty again, then the last writable mapping goes: written back.
	copy(e.mf.Slice(wmem+20, 5), "AGAIN")
	m.RemoveMapping(ms, 0x400000, 0, 4*pageSize, true)
	if host := hostRead(t, e.path("f")); string(host[2*pageSize+20:2*pageSize+25]) != "AGAIN" {
		t.Fatal("not written back when the writable mapping went")
	}

	// Truncation drops pages past the end and invalidates their mappings.
	// Records may overlap (a VMA being split): removing one leaves the
	// other whole.
	m.AddMapping(ms, 0x800000, 0, 4*pageSize, false)
	m.AddMapping(ms, 0x800000, 0, 2*pageSize, false)
	m.RemoveMapping(ms, 0x800000, 0, 2*pageSize, false)
	if err := f.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetSize, Size: pageSize + 5}); err != nil {
		t.Fatal(err)
	}
	inv := ms.got()
	if len(inv) != 1 || inv[0] != [2]uint64{0x800000 + 2*pageSize, 2 * pageSize} {
		t.Fatalf("invalidations %v", inv)
	}
	if _, _, err := m.Translate(2*pageSize, pageSize, false); !errors.Is(err, mm.ErrPastEOF) {
		t.Fatalf("translate past new EOF: %v", err)
	}
	// The new last page reads zeros past the end, also after growing again.
	if err := f.SetAttr(root, &vfs.SetAttr{Mask: vfs.SetSize, Size: 2 * pageSize}); err != nil {
		t.Fatal(err)
	}
	if got := e.mf.Slice(mem+pageSize+5, pageSize-5); !bytes.Equal(got, make([]byte, pageSize-5)) {
		t.Fatal("stale bytes past the truncation point")
	}
	if got := readAt(t, rw, 2*pageSize, 0); len(got) != 2*pageSize || !bytes.Equal(got[pageSize+5:], make([]byte, pageSize-5)) {
		t.Fatalf("read after truncate+grow: %d", len(got))
	}
	m.RemoveMapping(ms, 0x800000, 0, 4*pageSize, false)
	m.DecRef()
	f.Release()
}

// TestPageCacheShared: all inodes and opens of a file share its pages,
// and a private read-only open cannot write pages.
func TestPageCacheShared(t *testing.T) {
	e := newEnv(t, "", Options{})
	mustWrite(t, e.path("lib.so"), pattern(5*pageSize))
	os.Link(e.path("lib.so"), e.path("alias.so"))
	a := e.walk(t, "lib.so")
	ra := open(t, a, unix.O_RDONLY)
	ma := mapFile(t, ra, false)
	mem, _, err := ma.Translate(0, pageSize, false)
	if err != nil {
		t.Fatal(err)
	}
	ra.Release()
	a.Release() // the mapping keeps the cache
	b := e.walk(t, "alias.so")
	rb := open(t, b, unix.O_RDONLY)
	mb := mapFile(t, rb, false)
	if mb != ma {
		t.Fatal("different Mappables for one file")
	}
	if mem2, _, err := mb.Translate(0, pageSize, false); err != nil || mem2 != mem {
		t.Fatalf("pages not shared: %#x vs %#x %v", mem2, mem, err)
	}
	if _, _, err := mb.Translate(0, pageSize, true); err != unix.EACCES {
		t.Fatalf("write translate without a writable open: %v", err)
	}
	opts := mm.MMapOpts{Length: pageSize, Shared: true}
	opts.Perms.Write = true
	if err := rb.ConfigureMMap(root, &opts); err != unix.EACCES {
		t.Fatalf("shared writable map of a read-only open: %v", err)
	}
	rb.Release()
	ma.DecRef()
	mb.DecRef()
	b.Release()
}

func TestHandlesReleased(t *testing.T) {
	e := newEnv(t, "", Options{})
	var handles []uint64
	for i := range 100 {
		mustWrite(t, e.path(fmt.Sprintf("d/f%d", i)), nil)
	}
	d := e.walk(t, "d")
	var inos []*inode
	for i := range 100 {
		c, err := d.Lookup(root, fmt.Sprintf("f%d", i))
		if err != nil {
			t.Fatal(err)
		}
		inos = append(inos, c.(*inode))
		handles = append(handles, c.(*inode).handle.Load())
	}
	dh := d.handle.Load()
	for _, i := range inos {
		i.Release()
	}
	d.Release()
	if err := e.fs.FlushHandles(); err != nil {
		t.Fatal(err)
	}
	for _, h := range append(handles, dh) {
		if e.liveHandle(h) {
			t.Fatalf("handle %d still open after release", h)
		}
	}
	// An open File keeps its inode's handle after the VFS lets go.
	mustWrite(t, e.path("kept"), []byte("kept"))
	k := e.walk(t, "kept")
	kf := open(t, k, unix.O_RDONLY)
	kh := k.handle.Load()
	k.Release()
	e.fs.FlushHandles()
	if st, err := kf.Stat(); err != nil || st.Size != 4 || !e.liveHandle(kh) {
		t.Fatalf("fstat after the inode was released: %+v %v", st, err)
	}
	kf.Release()
	e.fs.FlushHandles()
	if e.liveHandle(kh) {
		t.Fatal("handle still open after the last File went")
	}
	if len(e.fs.root.children) != 0 || len(e.fs.datas) != 1 {
		t.Fatalf("leftovers: %d children, %d data", len(e.fs.root.children), len(e.fs.datas))
	}
}

func TestBrokenConnection(t *testing.T) {
	e := newEnv(t, "", Options{CacheMode: Shared})
	mustWrite(t, e.path("f"), []byte("x"))
	f := e.walk(t, "f")
	rf := open(t, f, unix.O_RDONLY)
	e.c.Shutdown()
	if _, err := f.Stat(root); !errors.Is(err, unix.EIO) {
		t.Fatalf("stat on a dead connection: %v", err)
	}
	if _, err := e.fs.root.Lookup(root, "f"); !errors.Is(err, unix.EIO) {
		t.Fatalf("lookup on a dead connection: %v", err)
	}
	// Open files keep working: their data is a host descriptor.
	if got := readAt(t, rf, 1, 0); string(got) != "x" {
		t.Fatalf("read %q", got)
	}
	rf.Release()
}

// TestConcurrent runs lookups, stats, reads, page cache faults and writes
// at once (run it with -race).
func TestConcurrent(t *testing.T) {
	for _, mode := range []CacheMode{Exclusive, Shared} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			e := newEnv(t, "", Options{CacheMode: mode})
			const files = 8
			for i := range files {
				mustWrite(t, e.path(fmt.Sprintf("a/b/f%d", i)), pattern(3*pageSize+i))
			}
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for it := range 50 {
						name := fmt.Sprintf("f%d", (g+it)%files)
						res, err := e.fs.root.LookupPath(root, []string{"a", "b", name})
						if err != nil {
							errs <- err
							return
						}
						f := res[2].(*inode)
						if _, err := f.Stat(root); err != nil {
							errs <- err
						}
						rf, err := f.Open(root, unix.O_RDWR)
						if err != nil {
							errs <- err
							return
						}
						want := pattern(3*pageSize + (g+it)%files)
						got := make([]byte, len(want)+10)
						n, err := rf.Read(root, [][]byte{got}, 0)
						if err != nil || !bytes.Equal(got[:n], want) {
							errs <- fmt.Errorf("%s: read %d %v", name, n, err)
						}
						if g%4 == 0 {
							m := mapFile(t, rf.(*regularFile), false)
							if _, _, err := m.Translate(pageSize, 2*pageSize, false); err != nil {
								errs <- err
							}
							m.DecRef()
							// Rewrite the same bytes: content stays, paths race.
							if _, err := rf.Write(root, [][]byte{want[100:200]}, 100); err != nil {
								errs <- err
							}
						}
						rf.Release()
						for _, r := range res {
							r.(*inode).Release()
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
