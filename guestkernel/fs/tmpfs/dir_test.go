package tmpfs

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

func TestRootAndStatFS(t *testing.T) {
	fs, mf := newFS(t, Options{UID: 5, GID: 6})
	if fs.Type() != "tmpfs" {
		t.Fatalf("Type %q", fs.Type())
	}
	fs.SetDev(77)
	a := stat(t, fs.Root())
	if a.Ino != 1 || a.Mode != unix.S_IFDIR|01777 || a.Nlink != 2 || a.UID != 5 || a.GID != 6 ||
		a.Size != 40 || a.Blksize != 4096 || a.Dev != 77 {
		t.Fatalf("root attr %+v", a)
	}
	sf, err := fs.Root().StatFS(userCtx)
	if err != nil {
		t.Fatal(err)
	}
	if sf.Type != 0x01021994 || sf.Bsize != 4096 || sf.Namelen != 255 || sf.Blocks != mf.Size()/4096 || sf.Bfree != sf.Blocks {
		t.Fatalf("unlimited statfs %+v", sf)
	}

	fs2, _ := newFS(t, Options{Size: 10*4096 + 1, NrInodes: 5, Mode: 0755})
	if m := stat(t, fs2.Root()).Mode; m != unix.S_IFDIR|0755 {
		t.Fatalf("root mode %o", m)
	}
	_, f := mustCreate(t, fs2.Root(), "f")
	mustWrite(t, f, 0, make([]byte, 3*4096))
	sf, _ = fs2.Root().StatFS(userCtx)
	if sf.Blocks != 11 || sf.Bfree != 8 || sf.Bavail != 8 || sf.Files != 5 || sf.Ffree != 3 {
		t.Fatalf("limited statfs %+v", sf)
	}
}

func TestCreateOwnership(t *testing.T) {
	fs, _ := newFS(t, Options{})
	r, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	a := stat(t, r)
	if a.UID != 1000 || a.GID != 1000 || a.Mode != unix.S_IFREG|0644 || a.Nlink != 1 || a.Ino == 1 {
		t.Fatalf("new file %+v", a)
	}
	if !(a.Atime == a.Mtime && a.Mtime == a.Ctime && a.Ctime == a.Btime) {
		t.Fatalf("creation times differ: %+v", a)
	}
	if _, _, err := fs.Root().Create(userCtx, "f", 0644, unix.O_RDWR); err == nil {
		t.Fatal("Create of an existing name succeeded")
	}

	// A set-group-ID directory gives its group, and S_ISGID to subdirs.
	sg := mustMkdir(t, fs.Root(), "sg")
	if err := sg.SetAttr(rootCtx, &vfs.SetAttr{Mask: vfs.SetMode | vfs.SetGID, Mode: 02775, GID: 50}); err != nil {
		t.Fatal(err)
	}
	sub := mustMkdir(t, sg, "sub")
	if a := stat(t, sub); a.GID != 50 || a.Mode != unix.S_IFDIR|02755 || a.UID != 1000 {
		t.Fatalf("subdir of setgid dir: %+v mode %o", a, a.Mode)
	}
	in, f2, err := sg.Create(userCtx, "x", 02755, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	f2.Release()
	// userCtx is not in group 50: S_ISGID is stripped from the file.
	if a := stat(t, in); a.GID != 50 || a.Mode != unix.S_IFREG|0755 {
		t.Fatalf("file in setgid dir: gid %d mode %o", a.GID, a.Mode)
	}
	in, f2, _ = sg.Create(rootCtx, "y", 02755, unix.O_RDWR)
	f2.Release()
	if a := stat(t, in); a.Mode != unix.S_IFREG|02755 {
		t.Fatalf("CAP_FSETID creator lost S_ISGID: %o", a.Mode)
	}
	ln, err := sg.Symlink(userCtx, "l", "target")
	if err != nil {
		t.Fatal(err)
	}
	if a := stat(t, ln); a.GID != 50 {
		t.Fatalf("symlink gid %d", a.GID)
	}
}

func TestNlinkAndDirSize(t *testing.T) {
	fs, _ := newFS(t, Options{})
	root := fs.Root()
	a := mustMkdir(t, root, "a")
	b := mustMkdir(t, root, "b")
	mustMkdir(t, a, "c")
	if n := stat(t, root).Nlink; n != 4 {
		t.Fatalf("root nlink %d, want 4", n)
	}
	if a := stat(t, a); a.Nlink != 3 || a.Size != 60 {
		t.Fatalf("a: nlink %d size %d", a.Nlink, a.Size)
	}
	r, f := mustCreate(t, a, "f")
	f.Release()
	if err := b.Link(userCtx, "f2", r); err != nil {
		t.Fatal(err)
	}
	if err := root.Link(userCtx, "f3", r); err != nil {
		t.Fatal(err)
	}
	if n := stat(t, r).Nlink; n != 3 {
		t.Fatalf("file nlink %d, want 3", n)
	}
	if n := stat(t, root).Nlink; n != 4 {
		t.Fatalf("links to files changed root nlink to %d", n)
	}
	wantErr(t, "link a dir", root.Link(userCtx, "x", a), unix.EPERM)
	wantErr(t, "link over existing", root.Link(userCtx, "a", r), unix.EEXIST)
	other, _ := newFS(t, Options{})
	wantErr(t, "link across filesystems", other.Root().Link(userCtx, "x", r), unix.EXDEV)

	wantErr(t, "unlink dir", root.Unlink(userCtx, "a"), unix.EISDIR)
	wantErr(t, "rmdir file", root.Rmdir(userCtx, "f3"), unix.ENOTDIR)
	wantErr(t, "rmdir non-empty", root.Rmdir(userCtx, "a"), unix.ENOTEMPTY)
	wantErr(t, "unlink missing", root.Unlink(userCtx, "zz"), unix.ENOENT)
	wantErr(t, "rmdir missing", root.Rmdir(userCtx, "zz"), unix.ENOENT)
	for _, p := range []struct {
		d    vfs.Inode
		name string
	}{{a, "f"}, {b, "f2"}} {
		if err := p.d.Unlink(userCtx, p.name); err != nil {
			t.Fatal(err)
		}
	}
	if n := stat(t, r).Nlink; n != 1 {
		t.Fatalf("file nlink %d, want 1", n)
	}
	c, _ := a.Lookup(userCtx, "c")
	if err := a.Rmdir(userCtx, "c"); err != nil {
		t.Fatal(err)
	}
	if n := stat(t, c).Nlink; n != 0 {
		t.Fatalf("removed dir nlink %d", n)
	}
	if n := stat(t, a).Nlink; n != 2 {
		t.Fatalf("a nlink after rmdir %d", n)
	}
	// A removed directory takes no new entries.
	_, err := c.Mkdir(userCtx, "x", 0755)
	wantErr(t, "mkdir in removed dir", err, unix.ENOENT)
	_, _, err = c.(*dir).CreateTmpfile(userCtx, 0600, unix.O_RDWR)
	wantErr(t, "tmpfile in removed dir", err, unix.ENOENT)
	if err := root.Rmdir(userCtx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := stat(t, root).Nlink; n != 3 {
		t.Fatalf("root nlink %d, want 3", n)
	}
}

func TestTimestamps(t *testing.T) {
	fs, _ := newFS(t, Options{})
	root := fs.Root()
	d := mustMkdir(t, root, "d")
	r, f := mustCreate(t, d, "f")
	defer f.Release()
	a0 := stat(t, r)
	d0 := stat(t, d)

	tick()
	mustWrite(t, f, 0, []byte("hello"))
	a1 := stat(t, r)
	if !tsLess(a0.Mtime, a1.Mtime) || !tsLess(a0.Ctime, a1.Ctime) || a1.Atime != a0.Atime {
		t.Fatalf("write: before %+v after %+v", a0, a1)
	}
	tick()
	mustRead(t, f, 0, 5)
	if a := stat(t, r); a.Atime != a0.Atime {
		t.Fatal("read changed atime (reads are noatime)")
	}
	tick()
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0600}); err != nil {
		t.Fatal(err)
	}
	a2 := stat(t, r)
	if !tsLess(a1.Ctime, a2.Ctime) || a2.Mtime != a1.Mtime || a2.Mode != unix.S_IFREG|0600 {
		t.Fatalf("chmod: %+v", a2)
	}
	tick()
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 2}); err != nil {
		t.Fatal(err)
	}
	a3 := stat(t, r)
	if !tsLess(a2.Mtime, a3.Mtime) || !tsLess(a2.Ctime, a3.Ctime) || a3.Size != 2 {
		t.Fatalf("truncate: %+v", a3)
	}
	set := unix.Timespec{Sec: 1000, Nsec: 5}
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetAtime | vfs.SetMtime, Atime: set, Mtime: set}); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, r); a.Atime != set || a.Mtime != set {
		t.Fatalf("utimes: %+v", a)
	}

	tick()
	if err := root.Link(userCtx, "ln", r); err != nil {
		t.Fatal(err)
	}
	a4 := stat(t, r)
	rt := stat(t, root)
	if !tsLess(a3.Ctime, a4.Ctime) || !tsLess(d0.Mtime, rt.Mtime) || rt.Mtime != rt.Ctime {
		t.Fatalf("link: file %+v root %+v", a4, rt)
	}
	tick()
	if err := d.Unlink(userCtx, "f"); err != nil {
		t.Fatal(err)
	}
	a5 := stat(t, r)
	d1 := stat(t, d)
	if !tsLess(a4.Ctime, a5.Ctime) || !tsLess(d0.Mtime, d1.Mtime) || !tsLess(d0.Ctime, d1.Ctime) {
		t.Fatalf("unlink: file %+v dir %+v", a5, d1)
	}
	tick()
	if err := root.Rename(userCtx, "ln", d, "moved", 0); err != nil {
		t.Fatal(err)
	}
	a6 := stat(t, r)
	if !tsLess(a5.Ctime, a6.Ctime) || !tsLess(d1.Mtime, stat(t, d).Mtime) {
		t.Fatalf("rename: file %+v", a6)
	}
}

func TestMknodSymlink(t *testing.T) {
	fs, _ := newFS(t, Options{})
	root := fs.Root()
	for _, c := range []struct {
		name string
		mode uint32
		dev  uint64
		dt   uint8
	}{
		{"fifo", unix.S_IFIFO | 0644, 0, unix.DT_FIFO},
		{"sock", unix.S_IFSOCK | 0755, 0, unix.DT_SOCK},
		{"null", unix.S_IFCHR | 0666, unix.Mkdev(1, 3), unix.DT_CHR},
		{"sda", unix.S_IFBLK | 0660, unix.Mkdev(8, 0), unix.DT_BLK},
		{"whiteout", unix.S_IFCHR, 0, unix.DT_CHR},
	} {
		in, err := root.Mknod(userCtx, c.name, c.mode, c.dev)
		if err != nil {
			t.Fatalf("mknod %s: %v", c.name, err)
		}
		a := stat(t, in)
		if a.Mode != c.mode || a.Rdev != c.dev || a.Nlink != 1 || a.Size != 0 {
			t.Fatalf("%s: %+v", c.name, a)
		}
		_, err = in.Open(userCtx, unix.O_RDONLY)
		wantErr(t, "open "+c.name, err, unix.ENXIO)
		var dt uint8
		root.IterDir(userCtx, 0, func(de vfs.Dirent) bool {
			if de.Name == c.name {
				dt = de.Type
			}
			return true
		})
		if dt != c.dt {
			t.Fatalf("%s: DT %d want %d", c.name, dt, c.dt)
		}
	}
	nodes := fs.inodes.Load()
	if err := root.Unlink(userCtx, "fifo"); err != nil || fs.inodes.Load() != nodes-1 {
		t.Fatalf("unlink fifo: %v, inodes %d -> %d", err, nodes, fs.inodes.Load())
	}
	_, err := root.Mknod(userCtx, "d", unix.S_IFDIR|0755, 0)
	wantErr(t, "mknod dir", err, unix.EPERM)
	in, err := root.Mknod(userCtx, "reg", unix.S_IFREG|0600, 0)
	if err != nil || stat(t, in).Mode != unix.S_IFREG|0600 {
		t.Fatalf("mknod regular: %v", err)
	}
	// A regular file made by mknod is not held open.
	if r := in.(*regular); r.opens != 0 {
		t.Fatalf("mknod left %d opens", r.opens)
	}

	ln, err := root.Symlink(userCtx, "ln", "../some/where")
	if err != nil {
		t.Fatal(err)
	}
	a := stat(t, ln)
	if a.Mode != unix.S_IFLNK|0777 || a.Size != 13 || a.Blocks != 0 {
		t.Fatalf("symlink %+v", a)
	}
	if s, err := ln.Readlink(userCtx); s != "../some/where" || err != nil {
		t.Fatalf("readlink %q %v", s, err)
	}
	_, err = ln.Open(userCtx, unix.O_RDONLY)
	wantErr(t, "open symlink", err, unix.ELOOP)
	_, err = fs.Root().Readlink(userCtx)
	wantErr(t, "readlink dir", err, unix.EINVAL)
	_, err = in.Readlink(userCtx)
	wantErr(t, "readlink file", err, unix.EINVAL)
	_, err = root.Symlink(userCtx, "e", "")
	wantErr(t, "empty symlink", err, unix.ENOENT)
	_, err = root.Symlink(userCtx, "e", strings.Repeat("x", 4096))
	wantErr(t, "long symlink", err, unix.ENAMETOOLONG)
	long, err := root.Symlink(userCtx, "long", strings.Repeat("x", 200))
	if err != nil || stat(t, long).Blocks != 8 || fs.UsedBytes() != 4096 {
		t.Fatalf("long symlink: %v blocks %d used %d", err, stat(t, long).Blocks, fs.UsedBytes())
	}
	if err := root.Unlink(userCtx, "long"); err != nil || fs.UsedBytes() != 0 {
		t.Fatalf("unlink long symlink: %v used %d", err, fs.UsedBytes())
	}
	// Non-directories refuse directory operations.
	_, err = ln.Lookup(userCtx, "x")
	wantErr(t, "lookup in symlink", err, unix.ENOTDIR)
	_, err = in.Mkdir(userCtx, "x", 0)
	wantErr(t, "mkdir in file", err, unix.ENOTDIR)
	_, err = fs.Root().Open(userCtx, unix.O_RDONLY)
	wantErr(t, "open dir", err, unix.EISDIR)
	wantErr(t, "truncate dir", fs.Root().SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize}), unix.EISDIR)
	wantErr(t, "truncate symlink", ln.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize}), unix.EINVAL)
}

// TestRenameMatrix sets up a tree, renames, and checks the tree after.
func TestRenameMatrix(t *testing.T) {
	type tree struct {
		fs   *FS
		root vfs.Inode
		a, b *dir
	}
	setup := func(t *testing.T) tree {
		fs, _ := newFS(t, Options{})
		root := fs.Root()
		a := mustMkdir(t, root, "a")
		b := mustMkdir(t, root, "b")
		for _, n := range []string{"f", "g"} {
			_, f := mustCreate(t, a, n)
			f.Release()
		}
		_, f := mustCreate(t, b, "h")
		f.Release()
		mustMkdir(t, a, "d")
		mustMkdir(t, b, "e")
		full := mustMkdir(t, b, "full")
		mustMkdir(t, full, "x")
		return tree{fs, root, a, b}
	}
	look := func(d vfs.Inode, n string) vfs.Inode {
		in, _ := d.Lookup(userCtx, n)
		return in
	}
	for _, c := range []struct {
		name             string
		from, to         string // "a/f" style
		flags            uint32
		err              error
		check            func(t *testing.T, tr tree, src, dst vfs.Inode)
		rootNlinkChanged bool
	}{
		{name: "file to new name same dir", from: "a/f", to: "a/new", check: func(t *testing.T, tr tree, src, dst vfs.Inode) {
			if look(tr.a, "f") != nil || look(tr.a, "new") != src {
				t.Fatal("not moved")
			}
		}},
		{name: "file over file across dirs", from: "a/f", to: "b/h", check: func(t *testing.T, tr tree, src, dst vfs.Inode) {
			if look(tr.b, "h") != src || stat(t, dst).Nlink != 0 || look(tr.a, "f") != nil {
				t.Fatal("not replaced")
			}
		}},
		{name: "dir across dirs", from: "a/d", to: "b/d2", check: func(t *testing.T, tr tree, src, dst vfs.Inode) {
			if stat(t, tr.a).Nlink != 2 || stat(t, tr.b).Nlink != 5 || src.(*dir).parent != tr.b {
				t.Fatalf("nlink a %d b %d", stat(t, tr.a).Nlink, stat(t, tr.b).Nlink)
			}
		}},
		{name: "dir over empty dir", from: "a/d", to: "b/e", check: func(t *testing.T, tr tree, src, dst vfs.Inode) {
			if stat(t, tr.a).Nlink != 2 || stat(t, tr.b).Nlink != 4 || stat(t, dst).Nlink != 0 || look(tr.b, "e") != src {
				t.Fatal("wrong")
			}
			_, err := dst.Mkdir(userCtx, "x", 0)
			wantErr(t, "mkdir in replaced dir", err, unix.ENOENT)
		}},
		{name: "dir over non-empty dir", from: "a/d", to: "b/full", err: unix.ENOTEMPTY},
		{name: "file over dir", from: "a/f", to: "b/e", err: unix.EISDIR},
		{name: "dir over file", from: "a/d", to: "b/h", err: unix.ENOTDIR},
		{name: "missing source", from: "a/zz", to: "b/q", err: unix.ENOENT},
		{name: "noreplace existing", from: "a/f", to: "b/h", flags: unix.RENAME_NOREPLACE, err: unix.EEXIST},
		{name: "noreplace new", from: "a/f", to: "b/q", flags: unix.RENAME_NOREPLACE},
		{name: "noreplace same name", from: "a/f", to: "a/f", flags: unix.RENAME_NOREPLACE, err: unix.EEXIST},
		{name: "same name", from: "a/f", to: "a/f", check: func(t *testing.T, tr tree, src, dst vfs.Inode) {
			if look(tr.a, "f") != src || stat(t, src).Nlink != 1 {
				t.Fatal("same-name rename changed something")
			}
		}},
		{name: "exchange missing target", from: "a/f", to: "b/q", flags: unix.RENAME_EXCHANGE, err: unix.ENOENT},
		{name: "exchange file and dir", from: "a/f", to: "b/e", flags: unix.RENAME_EXCHANGE, check: func(t *testing.T, tr tree, src, dst vfs.Inode) {
			if look(tr.a, "f") != dst || look(tr.b, "e") != src {
				t.Fatal("not exchanged")
			}
			if stat(t, tr.a).Nlink != 4 || stat(t, tr.b).Nlink != 3 || dst.(*dir).parent != tr.a {
				t.Fatalf("nlink a %d b %d", stat(t, tr.a).Nlink, stat(t, tr.b).Nlink)
			}
		}},
		{name: "exchange dirs", from: "a/d", to: "b/full", flags: unix.RENAME_EXCHANGE, check: func(t *testing.T, tr tree, src, dst vfs.Inode) {
			if look(tr.a, "d") != dst || look(tr.b, "full") != src || stat(t, tr.a).Nlink != 3 || stat(t, tr.b).Nlink != 4 {
				t.Fatal("dirs not exchanged")
			}
		}},
		{name: "bad flags", from: "a/f", to: "b/h", flags: unix.RENAME_EXCHANGE | unix.RENAME_NOREPLACE, err: unix.EINVAL},
		{name: "whiteout flag", from: "a/f", to: "b/q", flags: unix.RENAME_WHITEOUT, err: unix.EINVAL},
		{name: "dir into itself", from: "root/a", to: "a/sub", err: unix.EINVAL},
		{name: "over ancestor", from: "a/d", to: "root/a", err: unix.ENOTEMPTY},
		{name: "exchange with ancestor", from: "a/d", to: "root/a", flags: unix.RENAME_EXCHANGE, err: unix.EINVAL},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := setup(t)
			dirOf := func(s string) (vfs.Inode, string) {
				d, n, _ := strings.Cut(s, "/")
				switch d {
				case "a":
					return tr.a, n
				case "b":
					return tr.b, n
				}
				return tr.root, n
			}
			fd, fn := dirOf(c.from)
			td, tn := dirOf(c.to)
			src, dst := look(fd, fn), look(td, tn)
			err := fd.Rename(userCtx, fn, td, tn, c.flags)
			if c.err != nil {
				wantErr(t, "rename", err, c.err)
				if look(fd, fn) != src || look(td, tn) != dst {
					t.Fatal("failed rename changed the tree")
				}
				return
			}
			if err != nil {
				t.Fatalf("rename: %v", err)
			}
			if c.check != nil {
				c.check(t, tr, src, dst)
			}
		})
	}
	t.Run("exdev", func(t *testing.T) {
		fs, _ := newFS(t, Options{})
		other, _ := newFS(t, Options{})
		_, f := mustCreate(t, fs.Root(), "f")
		f.Release()
		wantErr(t, "cross-fs rename", fs.Root().Rename(userCtx, "f", other.Root(), "f", 0), unix.EXDEV)
	})
	t.Run("hard links same inode", func(t *testing.T) {
		fs, _ := newFS(t, Options{})
		r, f := mustCreate(t, fs.Root(), "f")
		f.Release()
		fs.Root().Link(userCtx, "g", r)
		if err := fs.Root().Rename(userCtx, "f", fs.Root(), "g", 0); err != nil {
			t.Fatal(err)
		}
		if got := names(t, fs.Root()); !slices.Equal(got, []string{"f", "g"}) || stat(t, r).Nlink != 2 {
			t.Fatalf("rename between links of one inode changed things: %v", got)
		}
	})
}

func TestIterDirStableUnderDeletion(t *testing.T) {
	fs, _ := newFS(t, Options{})
	root := fs.Root()
	const n = 300
	for i := range n {
		_, f := mustCreate(t, root, fmt.Sprintf("f%03d", i))
		f.Release()
	}
	// Iterate in small steps by cookie; between steps, delete entries
	// both before and after the position and add new ones.
	seen := map[string]int{}
	deleted := map[string]bool{}
	var cookie int64
	step := 0
	for {
		got := 0
		err := root.IterDir(userCtx, cookie, func(de vfs.Dirent) bool {
			seen[de.Name]++
			if deleted[de.Name] {
				t.Fatalf("deleted %s emitted", de.Name)
			}
			cookie = de.Next
			got++
			// Deleting from inside emit is allowed: the lock is not held.
			if got == 3 {
				victim := fmt.Sprintf("f%03d", (step*7+150)%n)
				if root.Unlink(userCtx, victim) == nil && seen[victim] == 0 {
					deleted[victim] = true
				}
			}
			return got < 5
		})
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			break
		}
		// Delete everything already seen so far in this batch range and
		// some ahead, to force compaction.
		for i := range 4 {
			victim := fmt.Sprintf("f%03d", (step*4+i)%n)
			if root.Unlink(userCtx, victim) == nil && seen[victim] == 0 {
				deleted[victim] = true
			}
		}
		step++
	}
	for i := range n {
		name := fmt.Sprintf("f%03d", i)
		switch {
		case deleted[name] && seen[name] != 0:
			t.Fatalf("%s deleted before being reached yet seen", name)
		case !deleted[name] && seen[name] != 1:
			t.Fatalf("%s seen %d times", name, seen[name])
		}
	}
	if len(deleted) == 0 {
		t.Fatal("test deleted nothing ahead of the cursor")
	}
	// Entries created during iteration come after existing ones.
	d := mustMkdir(t, root, "d")
	for _, s := range []string{"x", "y"} {
		_, f := mustCreate(t, d, s)
		f.Release()
	}
	var order []string
	d.IterDir(userCtx, 0, func(de vfs.Dirent) bool {
		order = append(order, de.Name)
		if de.Name == "x" {
			_, f := mustCreate(t, d, "z")
			f.Release()
		}
		return true
	})
	if !slices.Equal(order, []string{"x", "y", "z"}) {
		t.Fatalf("order %v", order)
	}
	// Cookies are increasing and resume exactly after the entry.
	var cookies []int64
	d.IterDir(userCtx, 0, func(de vfs.Dirent) bool { cookies = append(cookies, de.Next); return true })
	if !slices.IsSorted(cookies) || cookies[0] < 1 {
		t.Fatalf("cookies %v", cookies)
	}
	var rest []string
	d.IterDir(userCtx, cookies[0], func(de vfs.Dirent) bool { rest = append(rest, de.Name); return true })
	if !slices.Equal(rest, []string{"y", "z"}) {
		t.Fatalf("resume after x: %v", rest)
	}
	r, f := mustCreate(t, d, "w")
	f.Release()
	wantErr(t, "IterDir of a file", r.IterDir(userCtx, 0, nil), unix.ENOTDIR)
}

func TestXattrs(t *testing.T) {
	fs, _ := newFS(t, Options{})
	r, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	wantErr(t, "get missing", func() error { _, err := r.Getxattr(userCtx, "user.a"); return err }(), unix.ENODATA)
	if err := r.Setxattr(userCtx, "user.a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "create existing", r.Setxattr(userCtx, "user.a", []byte("2"), unix.XATTR_CREATE), unix.EEXIST)
	wantErr(t, "replace missing", r.Setxattr(userCtx, "user.b", []byte("2"), unix.XATTR_REPLACE), unix.ENODATA)
	if err := r.Setxattr(userCtx, "user.a", []byte("22"), unix.XATTR_REPLACE); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Getxattr(userCtx, "user.a"); string(v) != "22" || err != nil {
		t.Fatalf("get %q %v", v, err)
	}
	for _, n := range []string{"trusted.overlay.opaque", "security.selinux", "user.empty"} {
		if err := r.Setxattr(rootCtx, n, nil, 0); err != nil {
			t.Fatalf("set %s: %v", n, err)
		}
	}
	if v, err := r.Getxattr(userCtx, "user.empty"); v == nil || len(v) != 0 || err != nil {
		t.Fatalf("empty value: %v %v", v, err)
	}
	all, _ := r.Listxattr(rootCtx)
	if !slices.Equal(all, []string{"security.selinux", "trusted.overlay.opaque", "user.a", "user.empty"}) {
		t.Fatalf("list as root %v", all)
	}
	mine, _ := r.Listxattr(userCtx)
	if slices.Contains(mine, "trusted.overlay.opaque") || len(mine) != 3 {
		t.Fatalf("list as user %v", mine)
	}
	wantErr(t, "name too long", r.Setxattr(userCtx, "user."+strings.Repeat("n", 251), nil, 0), unix.ERANGE)
	if err := r.Setxattr(userCtx, "user."+strings.Repeat("n", 250), nil, 0); err != nil {
		t.Fatalf("255-byte name: %v", err)
	}
	wantErr(t, "value too big", r.Setxattr(userCtx, "user.big", make([]byte, 64<<10+1), 0), unix.E2BIG)
	if err := r.Setxattr(userCtx, "user.big", make([]byte, 64<<10), 0); err != nil {
		t.Fatalf("64 KiB value: %v", err)
	}
	wantErr(t, "unknown namespace", r.Setxattr(userCtx, "os2.x", nil, 0), unix.EOPNOTSUPP)
	wantErr(t, "system namespace", r.Setxattr(userCtx, "system.posix_acl_access", nil, 0), unix.EOPNOTSUPP)
	wantErr(t, "empty suffix", r.Setxattr(userCtx, "user.", nil, 0), unix.EINVAL)
	wantErr(t, "bad flags", r.Setxattr(userCtx, "user.q", nil, 4), unix.EINVAL)
	tick()
	c0 := stat(t, r).Ctime
	if err := r.Removexattr(userCtx, "user.a"); err != nil {
		t.Fatal(err)
	}
	if !tsLess(c0, stat(t, r).Ctime) {
		t.Fatal("removexattr kept ctime")
	}
	wantErr(t, "remove missing", r.Removexattr(userCtx, "user.a"), unix.ENODATA)
	// The value returned is a copy.
	v, _ := r.Getxattr(userCtx, "user.empty")
	_ = append(v, 'x')
	if v2, _ := r.Getxattr(userCtx, "user.empty"); len(v2) != 0 {
		t.Fatal("Getxattr returned shared storage")
	}
	// user.* only on regular files and directories.
	ln, _ := fs.Root().Symlink(userCtx, "ln", "f")
	wantErr(t, "user xattr on symlink", ln.Setxattr(userCtx, "user.a", nil, 0), unix.EPERM)
	if err := ln.Setxattr(rootCtx, "trusted.a", []byte("v"), 0); err != nil {
		t.Fatalf("trusted xattr on symlink: %v", err)
	}
	if err := fs.Root().Setxattr(userCtx, "user.d", []byte("v"), 0); err != nil {
		t.Fatalf("user xattr on dir: %v", err)
	}
}
