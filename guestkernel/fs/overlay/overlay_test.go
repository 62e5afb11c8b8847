package overlay

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

func TestLookupPrecedence(t *testing.T) {
	upper, lowers := layers(t, 2)
	l1, l2 := lowers[0], lowers[1]
	mkdirAll(t, l1, "etc", 0o755)
	mkdirAll(t, l2, "etc", 0o755)
	mkdirAll(t, upper, "etc", 0o755)
	writeFile(t, upper, "etc/both", "upper", 0o644)
	writeFile(t, l1, "etc/both", "l1", 0o644)
	writeFile(t, l2, "etc/both", "l2", 0o644)
	writeFile(t, l1, "etc/lowers", "l1", 0o644)
	writeFile(t, l2, "etc/lowers", "l2", 0o644)
	writeFile(t, l2, "etc/bottom", "l2", 0o644)
	// A file in a higher layer hides a directory below, and its content.
	writeFile(t, l1, "x", "file", 0o644)
	mkdirAll(t, l2, "x", 0o755)
	writeFile(t, l2, "x/inside", "hidden", 0o644)

	root := New(upper, lowers, Options{}).Root()
	for path, want := range map[string]string{
		"etc/both": "upper", "etc/lowers": "l1", "etc/bottom": "l2", "x": "file",
	} {
		if got := readPath(t, root, path); got != want {
			t.Errorf("%s reads %q, want %q", path, got, want)
		}
	}
	x := mustWalk(t, root, "x")
	if a := stat(t, x); a.Type() != unix.S_IFREG {
		t.Errorf("x has type %#o, want a regular file", a.Type())
	}
	_, err := x.Lookup(ctx, "inside")
	wantErr(t, "lookup under a file hiding a directory", err, unix.ENOTDIR)
	_, err = root.Lookup(ctx, "nothing")
	wantErr(t, "lookup of a missing name", err, unix.ENOENT)
	wantNames(t, mustWalk(t, root, "etc"), "both", "lowers", "bottom")
	if a := stat(t, mustWalk(t, root, "etc")); a.Nlink != 1 {
		t.Errorf("merged directory nlink %d, want 1", a.Nlink)
	}
	// One name is one inode, so that the VFS and copy-up agree.
	a1, _ := root.Lookup(ctx, "x")
	a2, _ := root.Lookup(ctx, "x")
	if a1 != a2 {
		t.Error("two lookups of one name gave two inodes")
	}
}

func TestWhiteoutsAndOpaqueDirs(t *testing.T) {
	upper, lowers := layers(t, 2)
	l1, l2 := lowers[0], lowers[1]
	writeFile(t, l1, "gone", "x", 0o644)
	whiteout(t, upper, "gone")
	// A whiteout in a middle layer hides the layers below it.
	writeFile(t, l2, "midgone", "x", 0o644)
	whiteout(t, l1, "midgone")
	// Opaque upper directory: the lower one's entries do not show.
	mkdirAll(t, l1, "op", 0o755)
	writeFile(t, l1, "op/hidden", "x", 0o644)
	op := mkdirAll(t, upper, "op", 0o755)
	writeFile(t, upper, "op/mine", "x", 0o644)
	if err := op.Setxattr(ctx, xattrOpaque, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	// Opaque middle layer directory.
	mkdirAll(t, l1, "mid", 0o755)
	writeFile(t, l1, "mid/a", "x", 0o644)
	if err := mustWalk(t, l1, "mid").Setxattr(ctx, xattrOpaque, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	mkdirAll(t, l2, "mid", 0o755)
	writeFile(t, l2, "mid/b", "x", 0o644)
	// Merged, not opaque.
	mkdirAll(t, upper, "m", 0o755)
	mkdirAll(t, l2, "m", 0o755)
	writeFile(t, upper, "m/u", "x", 0o644)
	writeFile(t, l2, "m/l", "x", 0o644)

	root := New(upper, lowers, Options{}).Root()
	for _, p := range []string{"gone", "midgone", "op/hidden", "mid/b"} {
		_, err := walk(root, p)
		wantErr(t, "lookup of hidden "+p, err, unix.ENOENT)
	}
	wantNames(t, root, "op", "mid", "m")
	wantNames(t, mustWalk(t, root, "op"), "mine")
	wantNames(t, mustWalk(t, root, "mid"), "a")
	wantNames(t, mustWalk(t, root, "m"), "u", "l")
	// The private xattr is nobody's business.
	opo := mustWalk(t, root, "op")
	if _, err := opo.Getxattr(ctx, xattrOpaque); err != unix.ENODATA {
		t.Errorf("Getxattr of the opaque mark: %v, want ENODATA", err)
	}
	if names, _ := opo.Listxattr(ctx); len(names) != 0 {
		t.Errorf("Listxattr shows %q", names)
	}
	wantErr(t, "Setxattr trusted.overlay.*", opo.Setxattr(ctx, "trusted.overlay.opaque", []byte("n"), 0), unix.EPERM)
	wantErr(t, "Removexattr trusted.overlay.*", opo.Removexattr(ctx, "trusted.overlay.opaque"), unix.EPERM)
}

func TestIterDirMerged(t *testing.T) {
	upper, lowers := layers(t, 2)
	d := mkdirAll(t, upper, "d", 0o755)
	for _, l := range lowers {
		mkdirAll(t, l, "d", 0o755)
	}
	writeFile(t, upper, "d/a", "", 0o644)
	writeFile(t, upper, "d/dup", "", 0o644)
	whiteout(t, d, "wh")
	writeFile(t, lowers[0], "d/dup", "", 0o644)
	writeFile(t, lowers[0], "d/wh", "", 0o644)
	writeFile(t, lowers[0], "d/l1", "", 0o644)
	writeFile(t, lowers[1], "d/dup", "", 0o644)
	writeFile(t, lowers[1], "d/l1", "", 0o644)
	writeFile(t, lowers[1], "d/l2", "", 0o644)
	mkdirAll(t, upper, "d/sub", 0o755)
	mkdirAll(t, lowers[1], "d/sub", 0o755)

	dir := mustWalk(t, New(upper, lowers, Options{}).Root(), "d")
	got := names(t, dir)
	if !slices.Equal(got[:3], []string{"a", "dup", "sub"}) {
		t.Errorf("upper entries do not come first: %q", got)
	}
	wantNames(t, dir, "a", "dup", "sub", "l1", "l2")
	// Entry numbers are the ones Stat gives.
	for _, e := range list(t, dir) {
		c, err := dir.Lookup(ctx, e.Name)
		if err != nil {
			t.Fatal(err)
		}
		if a := stat(t, c); a.Ino != e.Ino {
			t.Errorf("%s: dirent ino %#x, stat ino %#x", e.Name, e.Ino, a.Ino)
		}
	}

	// Resuming from each cookie walks one listing, even when the
	// directory changes in between.
	var walked []string
	cookie := int64(0)
	for {
		var e *vfs.Dirent
		dir.IterDir(ctx, cookie, func(d vfs.Dirent) bool {
			e = &d
			return false
		})
		if e == nil {
			break
		}
		walked = append(walked, e.Name)
		cookie = e.Next
		if len(walked) == 2 {
			if err := dir.Unlink(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if _, f, err := dir.Create(ctx, "new", 0o644, unix.O_RDONLY); err != nil {
				t.Fatal(err)
			} else {
				f.Release()
			}
		}
	}
	if !slices.Equal(walked, got) {
		t.Errorf("resumed iteration gave %q, want the listing it started with, %q", walked, got)
	}
	// A new iteration sees the change.
	wantNames(t, dir, "new", "dup", "sub", "l1", "l2")
}

func TestCopyUpKeepsLowerUnchanged(t *testing.T) {
	upper, lowers := layers(t, 1)
	lower := lowers[0]
	mkdirAll(t, lower, "d", 0o755)
	for _, n := range []string{"write", "chmod", "trunc", "otrunc", "link", "xattr", "rmxattr"} {
		writeFile(t, lower, "d/"+n, "lower data", 0o644)
	}
	if err := mustWalk(t, lower, "d/xattr").Setxattr(ctx, "user.old", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	if err := mustWalk(t, lower, "d/rmxattr").Setxattr(ctx, "user.gone", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	lowerBefore := map[string]vfs.Attr{}
	for _, e := range list(t, mustWalk(t, lower, "d")) {
		lowerBefore[e.Name] = stat(t, mustWalk(t, lower, "d/"+e.Name))
	}

	root := New(upper, lowers, Options{}).Root()
	d := mustWalk(t, root, "d")
	// A read-only open, before any copy-up, keeps reading the lower file.
	early, err := mustWalk(t, root, "d/write").Open(ctx, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Release()

	writeAt(t, mustWalk(t, root, "d/write"), 0, "UPPER")
	if got := readPath(t, root, "d/write"); got != "UPPER data" {
		t.Errorf("after write: %q", got)
	}
	if got := readFile(t, early); got != "lower data" {
		t.Errorf("a file opened before copy-up reads %q, want the lower data", got)
	}
	if err := mustWalk(t, root, "d/chmod").SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, mustWalk(t, root, "d/chmod")); a.Mode&0o7777 != 0o600 {
		t.Errorf("chmod: mode %#o", a.Mode)
	}
	if err := mustWalk(t, root, "d/trunc").SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 5}); err != nil {
		t.Fatal(err)
	}
	if got := readPath(t, root, "d/trunc"); got != "lower" {
		t.Errorf("truncate: %q", got)
	}
	f, err := mustWalk(t, root, "d/otrunc").Open(ctx, unix.O_WRONLY|unix.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	f.Release()
	if got := readPath(t, root, "d/otrunc"); got != "" {
		t.Errorf("O_TRUNC: %q", got)
	}
	if err := d.Link(ctx, "linked", mustWalk(t, root, "d/link")); err != nil {
		t.Fatal(err)
	}
	writeAt(t, mustWalk(t, root, "d/linked"), 0, "LINKED")
	if got := readPath(t, root, "d/link"); got != "LINKEDdata" {
		t.Errorf("hard link does not share data: %q", got)
	}
	x := mustWalk(t, root, "d/xattr")
	if err := x.Setxattr(ctx, "user.new", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := x.Getxattr(ctx, "user.old"); err != nil || string(v) != "kept" {
		t.Errorf("copy-up lost user.old: %q, %v", v, err)
	}
	if got, _ := x.Listxattr(ctx); !slices.Equal(got, []string{"user.new", "user.old"}) {
		t.Errorf("Listxattr after copy-up: %q", got)
	}
	rx := mustWalk(t, root, "d/rmxattr")
	wantErr(t, "removing a missing xattr", rx.Removexattr(ctx, "user.none"), unix.ENODATA)
	if up := rx.(*inode).getUpper(); up != nil {
		t.Error("a failed removexattr copied up")
	}
	if err := rx.Removexattr(ctx, "user.gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := rx.Getxattr(ctx, "user.gone"); err != unix.ENODATA {
		t.Errorf("removed xattr: %v", err)
	}

	// The key property: the lower layer saw none of it.
	lowerDir := mustWalk(t, lower, "d")
	wantNames(t, lowerDir, "write", "chmod", "trunc", "otrunc", "link", "xattr", "rmxattr")
	for name, before := range lowerBefore {
		in := mustWalk(t, lower, "d/"+name)
		if got := readAll(t, in); got != "lower data" {
			t.Errorf("lower %s now reads %q", name, got)
		}
		if after := stat(t, in); after != before {
			t.Errorf("lower %s attributes changed: %+v -> %+v", name, before, after)
		}
	}
	if names, _ := mustWalk(t, lower, "d/xattr").Listxattr(ctx); !slices.Equal(names, []string{"user.old"}) {
		t.Errorf("lower xattrs now %q", names)
	}
	wantNames(t, mustWalk(t, upper, "d"), "write", "chmod", "trunc", "otrunc", "link", "linked", "xattr", "rmxattr")
}

func TestCopyUpParentsKeepAttributes(t *testing.T) {
	upper, lowers := layers(t, 1)
	lower := lowers[0]
	modes := []uint32{0o751, 0o2705, 0o700}
	mkdirAll(t, lower, "a/b/c", 0o755)
	f := writeFile(t, lower, "a/b/c/file", "deep", 0o640)
	if err := f.SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetUID | vfs.SetGID | vfs.SetMtime, UID: 7, GID: 8, Mtime: unix.Timespec{Sec: 42}}); err != nil {
		t.Fatal(err)
	}
	// Attributes after the tree is made, which moves directories' times.
	path := ""
	for i, n := range []string{"a", "b", "c"} {
		path += "/" + n
		in := mustWalk(t, lower, path)
		if err := in.Setxattr(ctx, "user.level", []byte(n), 0); err != nil {
			t.Fatal(err)
		}
		if err := in.SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetMode | vfs.SetUID | vfs.SetGID | vfs.SetMtime | vfs.SetAtime,
			Mode: modes[i], UID: uint32(100 + i), GID: uint32(200 + i),
			Mtime: unix.Timespec{Sec: int64(1000 + i)}, Atime: unix.Timespec{Sec: 5}}); err != nil {
			t.Fatal(err)
		}
	}
	before := stat(t, mustWalk(t, lower, "a/b/c/file"))

	root := New(upper, lowers, Options{}).Root()
	ino := stat(t, mustWalk(t, root, "a/b/c/file")).Ino
	if err := mustWalk(t, root, "a/b/c/file").SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetAtime, Atime: unix.Timespec{Sec: 9}}); err != nil {
		t.Fatal(err)
	}
	path = ""
	for i, n := range []string{"a", "b", "c"} {
		path += "/" + n
		a := stat(t, mustWalk(t, upper, path))
		if a.Mode&0o7777 != modes[i] || a.UID != uint32(100+i) || a.GID != uint32(200+i) || a.Mtime.Sec != int64(1000+i) {
			t.Errorf("upper %s: mode %#o owner %d:%d mtime %d, want %#o %d:%d %d", path,
				a.Mode&0o7777, a.UID, a.GID, a.Mtime.Sec, modes[i], 100+i, 200+i, 1000+i)
		}
		if v, err := mustWalk(t, upper, path).Getxattr(ctx, "user.level"); err != nil || string(v) != n {
			t.Errorf("upper %s lost its xattr: %q %v", path, v, err)
		}
	}
	a := stat(t, mustWalk(t, upper, "a/b/c/file"))
	if a.Mode != before.Mode || a.UID != 7 || a.GID != 8 || a.Mtime.Sec != 42 || a.Atime.Sec != 9 {
		t.Errorf("copied-up file: %+v", a)
	}
	if got := readPath(t, upper, "a/b/c/file"); got != "deep" {
		t.Errorf("copied-up data %q", got)
	}
	if got := stat(t, mustWalk(t, root, "a/b/c/file")).Ino; got != ino {
		t.Errorf("inode number changed on copy-up: %#x -> %#x", ino, got)
	}
	// The copy-up is no change the app made to the directory.
	if got := stat(t, mustWalk(t, root, "a/b/c")).Mtime.Sec; got != 1002 {
		t.Errorf("copy-up moved the parent's mtime to %d", got)
	}
}

func TestCopyUpSpecialFiles(t *testing.T) {
	upper, lowers := layers(t, 1)
	lower := lowers[0]
	if _, err := lower.Symlink(ctx, "link", "some/target"); err != nil {
		t.Fatal(err)
	}
	if _, err := lower.Mknod(ctx, "fifo", unix.S_IFIFO|0o644, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := lower.Mknod(ctx, "null", unix.S_IFCHR|0o666, unix.Mkdev(1, 3)); err != nil {
		t.Fatal(err)
	}
	// A sparse file: 4 MiB hole then data.
	sp := writeFile(t, lower, "sparse", "", 0o644)
	writeAt(t, sp, 4<<20, "tail")

	root := New(upper, lowers, Options{CopyUpChunk: 64 << 10}).Root()
	for _, n := range []string{"link", "fifo", "null", "sparse"} {
		if err := mustWalk(t, root, n).SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetUID, UID: 5}); err != nil {
			t.Fatalf("chown %s: %v", n, err)
		}
		if a := stat(t, mustWalk(t, upper, n)); a.UID != 5 {
			t.Errorf("%s not copied up", n)
		}
	}
	if target, err := mustWalk(t, upper, "link").Readlink(ctx); err != nil || target != "some/target" {
		t.Errorf("copied-up symlink: %q %v", target, err)
	}
	if a := stat(t, mustWalk(t, upper, "fifo")); a.Type() != unix.S_IFIFO || a.Mode&0o777 != 0o644 {
		t.Errorf("copied-up fifo mode %#o", a.Mode)
	}
	if a := stat(t, mustWalk(t, upper, "null")); a.Type() != unix.S_IFCHR || a.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("copied-up device %#o %#x", a.Mode, a.Rdev)
	}
	a := stat(t, mustWalk(t, upper, "sparse"))
	if a.Size != 4<<20+4 || a.Blocks > 64 {
		t.Errorf("copied-up sparse file: size %d, %d blocks", a.Size, a.Blocks)
	}
	if got := readPath(t, root, "sparse"); got != strings.Repeat("\x00", 4<<20)+"tail" {
		t.Error("copied-up sparse file reads wrong")
	}
}

func TestUnlinkAndRmdirLeaveWhiteouts(t *testing.T) {
	upper, lowers := layers(t, 1)
	lower := lowers[0]
	writeFile(t, lower, "lowerfile", "x", 0o644)
	mkdirAll(t, lower, "emptydir", 0o755)
	mkdirAll(t, lower, "full", 0o755)
	writeFile(t, lower, "full/f", "x", 0o644)
	mkdirAll(t, lower, "merged", 0o755)
	writeFile(t, lower, "merged/f", "x", 0o644)
	writeFile(t, lower, "copied", "x", 0o644)
	mkdirAll(t, upper, "merged", 0o755)
	writeFile(t, upper, "merged/u", "x", 0o644)

	root := New(upper, lowers, Options{})
	r := root.Root()
	writeFile(t, r, "upperfile", "x", 0o644)
	writeAt(t, mustWalk(t, r, "copied"), 0, "y")

	for _, n := range []string{"lowerfile", "upperfile", "copied"} {
		if err := r.Unlink(ctx, n); err != nil {
			t.Fatalf("unlink %s: %v", n, err)
		}
		_, err := r.Lookup(ctx, n)
		wantErr(t, "lookup after unlink", err, unix.ENOENT)
	}
	if !isWhiteoutIn(t, upper, "lowerfile") || !isWhiteoutIn(t, upper, "copied") {
		t.Error("unlink of a lower name left no whiteout")
	}
	if _, err := upper.Lookup(ctx, "upperfile"); err != unix.ENOENT {
		t.Errorf("unlink of an upper-only file left %v", err)
	}
	wantErr(t, "unlink of a directory", r.Unlink(ctx, "emptydir"), unix.EISDIR)
	wantErr(t, "rmdir of a file", mustWalk(t, r, "full").Rmdir(ctx, "f"), unix.ENOTDIR)

	if err := r.Rmdir(ctx, "emptydir"); err != nil {
		t.Fatal(err)
	}
	if !isWhiteoutIn(t, upper, "emptydir") {
		t.Error("rmdir of a lower directory left no whiteout")
	}
	wantErr(t, "rmdir of a non-empty lower dir", r.Rmdir(ctx, "full"), unix.ENOTEMPTY)
	wantErr(t, "rmdir of a non-empty merged dir", r.Rmdir(ctx, "merged"), unix.ENOTEMPTY)
	m := mustWalk(t, r, "merged")
	for _, n := range []string{"f", "u"} {
		if err := m.Unlink(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	wantNames(t, m)
	if !isWhiteoutIn(t, mustWalk(t, upper, "merged"), "f") {
		t.Error("no whiteout inside the merged dir")
	}
	if err := r.Rmdir(ctx, "merged"); err != nil {
		t.Fatalf("rmdir of a merged dir emptied: %v", err)
	}
	if !isWhiteoutIn(t, upper, "merged") {
		t.Error("rmdir of a merged dir left no whiteout")
	}
	_, err := r.Lookup(ctx, "merged")
	wantErr(t, "lookup after rmdir", err, unix.ENOENT)
	wantNames(t, r, "full")
	wantNames(t, lower, "lowerfile", "emptydir", "full", "merged", "copied")
	wantNames(t, mustWalk(t, lower, "merged"), "f")
}

func TestCreateOverWhiteout(t *testing.T) {
	upper, lowers := layers(t, 1)
	lower := lowers[0]
	writeFile(t, lower, "f", "old", 0o644)
	mkdirAll(t, lower, "d", 0o755)
	writeFile(t, lower, "d/old", "x", 0o644)
	writeFile(t, lower, "s", "x", 0o644)

	r := New(upper, lowers, Options{}).Root()
	for _, n := range []string{"f", "s"} {
		if err := r.Unlink(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "rmdir of a non-empty lower dir", r.Rmdir(ctx, "d"), unix.ENOTEMPTY)
	if err := mustWalk(t, r, "d").Unlink(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if err := r.Rmdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}

	in, f, err := r.Create(userCtx, "f", 0o600, unix.O_RDWR)
	if err != nil {
		t.Fatalf("create over a whiteout: %v", err)
	}
	f.Write(ctx, [][]byte{[]byte("new")}, 0)
	f.Release()
	if got := readAll(t, in); got != "new" {
		t.Errorf("new file reads %q", got)
	}
	if a := stat(t, in); a.UID != 1000 {
		t.Errorf("new file owned by %d, want the creator", a.UID)
	}
	if _, _, err := r.Create(ctx, "f", 0o600, unix.O_RDWR); err != unix.EEXIST {
		t.Errorf("create of an existing name: %v", err)
	}
	if _, err := r.Symlink(ctx, "s", "target"); err != nil {
		t.Fatalf("symlink over a whiteout: %v", err)
	}
	d, err := r.Mkdir(ctx, "d", 0o755)
	if err != nil {
		t.Fatalf("mkdir over a whiteout: %v", err)
	}
	wantNames(t, d)
	_, err = d.Lookup(ctx, "old")
	wantErr(t, "old lower content under a new dir", err, unix.ENOENT)
	if !hasFlag(ctx, mustWalk(t, upper, "d"), xattrOpaque) {
		t.Error("a directory made over a whiteout is not opaque")
	}
	// And after the overlay forgets everything, it still is.
	r2 := New(upper, lowers, Options{}).Root()
	wantNames(t, mustWalk(t, r2, "d"))
	if got := readPath(t, r2, "f"); got != "new" {
		t.Errorf("fresh overlay reads %q", got)
	}
	_, err = r.Mknod(ctx, "wh", unix.S_IFCHR|0o600, 0)
	wantErr(t, "mknod of a whiteout device", err, unix.EPERM)
}

func TestRename(t *testing.T) {
	upper, lowers := layers(t, 1)
	lower := lowers[0]
	mkdirAll(t, lower, "a", 0o755)
	mkdirAll(t, lower, "b", 0o755)
	writeFile(t, lower, "a/f", "moved", 0o644)
	writeFile(t, lower, "a/g", "g", 0o644)
	writeFile(t, lower, "b/target", "replaced", 0o644)
	mkdirAll(t, lower, "ldir", 0o755)

	r := New(upper, lowers, Options{}).Root()
	a, b := mustWalk(t, r, "a"), mustWalk(t, r, "b")
	f := mustWalk(t, r, "a/f")
	ino := stat(t, f).Ino
	if err := a.Rename(ctx, "f", b, "h", 0); err != nil {
		t.Fatalf("rename of a lower file across dirs: %v", err)
	}
	_, err := a.Lookup(ctx, "f")
	wantErr(t, "old name after rename", err, unix.ENOENT)
	if got := readPath(t, r, "b/h"); got != "moved" {
		t.Errorf("renamed file reads %q", got)
	}
	if h := mustWalk(t, r, "b/h"); h != f || stat(t, h).Ino != ino {
		t.Error("the renamed file is another inode")
	}
	if !isWhiteoutIn(t, mustWalk(t, upper, "a"), "f") {
		t.Error("no whiteout at the old name")
	}
	wantNames(t, a, "g")
	wantNames(t, b, "target", "h")

	// Over an existing (lower) file.
	if err := a.Rename(ctx, "g", b, "target", 0); err != nil {
		t.Fatal(err)
	}
	if got := readPath(t, r, "b/target"); got != "g" {
		t.Errorf("replaced file reads %q", got)
	}
	wantErr(t, "RENAME_NOREPLACE", b.Rename(ctx, "h", b, "target", unix.RENAME_NOREPLACE), unix.EEXIST)
	if err := b.Rename(ctx, "h", a, "back", unix.RENAME_NOREPLACE); err != nil {
		t.Fatalf("RENAME_NOREPLACE to a free name: %v", err)
	}
	// Back onto the name that has a whiteout now.
	if err := a.Rename(ctx, "back", a, "f", 0); err != nil {
		t.Fatal(err)
	}
	if got := readPath(t, r, "a/f"); got != "moved" {
		t.Errorf("file renamed over a whiteout reads %q", got)
	}

	wantErr(t, "rename of a lower dir", r.Rename(ctx, "ldir", r, "ldir2", 0), unix.EXDEV)
	wantErr(t, "rename of a merged dir", r.Rename(ctx, "a", r, "a2", 0), unix.EXDEV)

	// Upper-only directories move, also onto a lower directory's name,
	// whose contents must not show through.
	nd, err := r.Mkdir(ctx, "newdir", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, r, "newdir/x", "x", 0o644)
	if err := r.Rename(ctx, "newdir", b, "nd", 0); err != nil {
		t.Fatalf("rename of an upper dir: %v", err)
	}
	if mustWalk(t, r, "b/nd") != nd {
		t.Error("renamed dir is another inode")
	}
	wantNames(t, mustWalk(t, r, "b/nd"), "x")
	mkdirAll(t, lower, "ldir/inside", 0o755) // lower layers may not change, but this shows what would leak
	wantErr(t, "rename onto a non-empty dir", b.Rename(ctx, "nd", r, "ldir", 0), unix.ENOTEMPTY)
	if err := mustWalk(t, r, "ldir").Rmdir(ctx, "inside"); err != nil {
		t.Fatal(err)
	}
	if err := b.Rename(ctx, "nd", r, "ldir", 0); err != nil {
		t.Fatalf("rename of an upper dir over an empty lower dir: %v", err)
	}
	wantNames(t, mustWalk(t, New(upper, lowers, Options{}).Root(), "ldir"), "x")

	// RENAME_EXCHANGE, of upper and of copied-up files.
	writeFile(t, r, "e1", "one", 0o644)
	writeFile(t, lower, "e2", "two", 0o644)
	if err := r.Rename(ctx, "e1", r, "e2", unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("RENAME_EXCHANGE: %v", err)
	}
	if readPath(t, r, "e1") != "two" || readPath(t, r, "e2") != "one" {
		t.Error("RENAME_EXCHANGE did not swap")
	}
	wantErr(t, "RENAME_EXCHANGE with a lower dir", r.Rename(ctx, "e1", r, "a", unix.RENAME_EXCHANGE), unix.EXDEV)
	wantErr(t, "RENAME_EXCHANGE with nothing", r.Rename(ctx, "e1", r, "none", unix.RENAME_EXCHANGE), unix.ENOENT)

	if got := readAll(t, mustWalk(t, lower, "a/f")); got != "moved" {
		t.Errorf("lower a/f changed: %q", got)
	}
	wantNames(t, mustWalk(t, lower, "a"), "f", "g")
}

func TestInodeNumbers(t *testing.T) {
	upper, lowers := layers(t, 1)
	lower := lowers[0]
	mkdirAll(t, lower, "d", 0o755)
	writeFile(t, lower, "d/f", "x", 0o644)
	ov := New(upper, lowers, Options{})
	r := ov.Root()
	// tmpfs numbers from 1 in each instance, so upper and lower numbers
	// collide unless the layer is mixed in.
	u := writeFile(t, r, "d/u", "x", 0o644)
	seen := map[uint64]string{}
	for _, p := range []string{"", "d", "d/f", "d/u"} {
		ino := stat(t, mustWalk(t, r, p)).Ino
		if other, ok := seen[ino]; ok {
			t.Errorf("%q and %q share inode number %#x", p, other, ino)
		}
		seen[ino] = p
	}
	if got, want := stat(t, u).Ino, stat(t, mustWalk(t, upper, "d/u")).Ino; got != want {
		t.Errorf("upper-only file number %#x, want the upper's %#x", got, want)
	}
	dIno, fIno := stat(t, mustWalk(t, r, "d")).Ino, stat(t, mustWalk(t, r, "d/f")).Ino
	if want := mixIno(stat(t, mustWalk(t, lower, "d/f")).Ino, 1); fIno != want {
		t.Errorf("lower file number %#x, want %#x", fIno, want)
	}
	writeAt(t, mustWalk(t, r, "d/f"), 0, "y")
	for _, root := range []vfs.Inode{r, New(upper, lowers, Options{}).Root()} {
		if got := stat(t, mustWalk(t, root, "d/f")).Ino; got != fIno {
			t.Errorf("file number after copy-up %#x, want %#x", got, fIno)
		}
		if got := stat(t, mustWalk(t, root, "d")).Ino; got != dIno {
			t.Errorf("dir number after copy-up %#x, want %#x", got, dIno)
		}
		for _, e := range list(t, mustWalk(t, root, "d")) {
			if e.Name == "f" && e.Ino != fIno {
				t.Errorf("dirent number of the copied-up file %#x, want %#x", e.Ino, fIno)
			}
		}
	}
}

func TestReadOnlyOverlay(t *testing.T) {
	_, lowers := layers(t, 2)
	writeFile(t, lowers[0], "f", "top", 0o644)
	writeFile(t, lowers[1], "f", "bottom", 0o644)
	mkdirAll(t, lowers[1], "d", 0o755)
	ov := New(nil, lowers, Options{})
	r := ov.Root()
	if got := readPath(t, r, "f"); got != "top" {
		t.Errorf("read-only overlay reads %q", got)
	}
	f := mustWalk(t, r, "f")
	_, err := f.Open(ctx, unix.O_RDWR)
	wantErr(t, "open for write", err, unix.EROFS)
	wantErr(t, "chmod", f.SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0o600}), unix.EROFS)
	wantErr(t, "setxattr", f.Setxattr(ctx, "user.x", nil, 0), unix.EROFS)
	_, _, err = r.Create(ctx, "new", 0o644, unix.O_RDWR)
	wantErr(t, "create", err, unix.EROFS)
	_, err = r.Mkdir(ctx, "new", 0o755)
	wantErr(t, "mkdir", err, unix.EROFS)
	wantErr(t, "unlink", r.Unlink(ctx, "f"), unix.EROFS)
	wantErr(t, "rmdir", r.Rmdir(ctx, "d"), unix.EROFS)
	wantErr(t, "rename", r.Rename(ctx, "f", r, "g", 0), unix.EROFS)
	wantErr(t, "link", r.Link(ctx, "g", f), unix.EROFS)
	_, _, err = r.(*inode).CreateTmpfile(ctx, 0o600, unix.O_RDWR)
	wantErr(t, "O_TMPFILE", err, unix.EROFS)
	if st, err := r.StatFS(ctx); err != nil || st.Type != SuperMagic {
		t.Errorf("statfs: %#x %v", st.Type, err)
	}
	wantNames(t, r, "f", "d")
}

func TestStatFSAndTmpfile(t *testing.T) {
	upper, lowers := layers(t, 1)
	mkdirAll(t, lowers[0], "d", 0o755)
	r := New(upper, lowers, Options{}).Root()
	st, err := mustWalk(t, r, "d").StatFS(ctx)
	if err != nil || st.Type != SuperMagic {
		t.Fatalf("statfs: %#x %v", st.Type, err)
	}
	d := mustWalk(t, r, "d").(*inode)
	in, f, err := d.CreateTmpfile(ctx, unix.S_IFREG|0o600, unix.O_RDWR)
	if err != nil {
		t.Fatalf("O_TMPFILE: %v", err)
	}
	f.Write(ctx, [][]byte{[]byte("tmp")}, 0)
	if err := d.Link(ctx, "named", in); err != nil {
		t.Fatalf("linking an O_TMPFILE file: %v", err)
	}
	f.Release()
	if got := readPath(t, r, "d/named"); got != "tmp" {
		t.Errorf("linked tmpfile reads %q", got)
	}
	wantNames(t, mustWalk(t, lowers[0], "d"))
}

// noTmpfile hides the upper root's O_TMPFILE support, to exercise
// copy-up through a private name.
type noTmpfile struct{ vfs.Inode }

// Rename unwraps the directory the upper layer gets back as newDir.
func (n noTmpfile) Rename(ctx vfs.Context, oldName string, newDir vfs.Inode, newName string, flags uint32) error {
	if w, ok := newDir.(noTmpfile); ok {
		newDir = w.Inode
	}
	return n.Inode.Rename(ctx, oldName, newDir, newName, flags)
}

func TestCopyUpWithoutTmpfile(t *testing.T) {
	upper, lowers := layers(t, 1)
	writeFile(t, lowers[0], "f", "data", 0o644)
	r := New(noTmpfile{upper}, lowers, Options{}).Root()
	writeAt(t, mustWalk(t, r, "f"), 4, "+more")
	if got := readPath(t, r, "f"); got != "data+more" {
		t.Errorf("reads %q", got)
	}
	wantNames(t, upper, "f")
	wantNames(t, r, "f")
	_, _, err := r.Create(ctx, TempPrefix+"x", 0o644, unix.O_RDWR)
	wantErr(t, "creating a private name", err, unix.EPERM)
}

func TestConcurrentCopyUp(t *testing.T) {
	upper, lowers := layers(t, 1)
	mkdirAll(t, lowers[0], "dir/sub", 0o755)
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16+7) // several chunks
	big := writeFile(t, lowers[0], "dir/sub/big", "", 0o644)
	writeAt(t, big, 0, string(data))

	ov := New(upper, lowers, Options{CopyUpChunk: 256 << 10})
	r := ov.Root()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			in, err := walk(r, "dir/sub/big")
			if err != nil {
				errs <- err
				return
			}
			f, err := in.Open(ctx, unix.O_RDWR)
			if err != nil {
				errs <- err
				return
			}
			defer f.Release()
			// Each writes its own byte: a second copy-up would lose some.
			if _, err := f.Write(ctx, [][]byte{{byte('A' + i)}}, int64(i)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := slices.Clone(data)
	for i := range n {
		want[i] = byte('A' + i)
	}
	if got := readPath(t, r, "dir/sub/big"); got != string(want) {
		t.Errorf("after concurrent copy-ups the file differs (len %d, want %d; starts %q)", len(got), len(want), got[:min(len(got), 16)])
	}
	wantNames(t, mustWalk(t, upper, "dir/sub"), "big")
	if got := readAll(t, mustWalk(t, upper, "dir/sub/big")); got != string(want) {
		t.Error("the upper file differs")
	}
	if got := readAll(t, big); got != string(data) {
		t.Error("the lower file changed")
	}
}

func TestConcurrentMixed(t *testing.T) {
	upper, lowers := layers(t, 1)
	for i := range 4 {
		mkdirAll(t, lowers[0], fmt.Sprintf("d%d", i), 0o755)
		for j := range 8 {
			writeFile(t, lowers[0], fmt.Sprintf("d%d/f%d", i, j), "x", 0o644)
		}
	}
	r := New(upper, lowers, Options{}).Root()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			d := mustWalk(t, r, fmt.Sprintf("d%d", g%4))
			for j := range 8 {
				name := fmt.Sprintf("f%d", j)
				switch (g + j) % 4 {
				case 0:
					if in, err := d.Lookup(ctx, name); err == nil {
						in.SetAttr(ctx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0o600})
					}
				case 1:
					d.Unlink(ctx, name)
				case 2:
					names(t, d)
				case 3:
					d.Rename(ctx, name, r, fmt.Sprintf("g%d-%d", g, j), 0)
				}
			}
		})
	}
	wg.Wait()
	// Whatever happened, the lower layer is as it was.
	for i := range 4 {
		wantNames(t, mustWalk(t, lowers[0], fmt.Sprintf("d%d", i)), "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7")
	}
}

func TestReleaseEvicts(t *testing.T) {
	upper, lowers := layers(t, 1)
	mkdirAll(t, lowers[0], "d", 0o755)
	writeFile(t, lowers[0], "d/f", "x", 0o644)
	r := New(upper, lowers, Options{}).Root().(*inode)
	d, _ := r.Lookup(ctx, "d")
	f, _ := d.Lookup(ctx, "f")
	f.(*inode).Release()
	d.(*inode).Release()
	r.mu.Lock()
	n := len(r.children)
	r.mu.Unlock()
	if n != 0 {
		t.Errorf("released inodes stay cached: %d", n)
	}
	// And come back on the next lookup.
	if got := readPath(t, r, "d/f"); got != "x" {
		t.Errorf("reads %q", got)
	}
}

func TestRenameDirOverWhiteout(t *testing.T) {
	upper, lowers := layers(t, 1)
	mkdirAll(t, lowers[0], "old", 0o755)
	writeFile(t, lowers[0], "old/lowerfile", "x", 0o644)
	if _, err := lowers[0].Symlink(ctx, "sym", "old/lowerfile"); err != nil {
		t.Fatal(err)
	}
	ov := New(upper, lowers, Options{})
	r := ov.Root()
	if ov.Type() != "overlay" || ov.ReadOnly() {
		t.Errorf("Type %q, ReadOnly %v", ov.Type(), ov.ReadOnly())
	}
	if target, err := mustWalk(t, r, "sym").Readlink(ctx); err != nil || target != "old/lowerfile" {
		t.Errorf("Readlink: %q %v", target, err)
	}
	if err := mustWalk(t, r, "old").Unlink(ctx, "lowerfile"); err != nil {
		t.Fatal(err)
	}
	if err := r.Rmdir(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	u, err := r.Mkdir(ctx, "u", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Mknod(ctx, "fifo", unix.S_IFIFO|0o600, 0); err != nil {
		t.Fatalf("mknod of a FIFO: %v", err)
	}
	if err := r.Rename(ctx, "u", r, "old", 0); err != nil {
		t.Fatalf("rename of a dir onto a whiteout: %v", err)
	}
	wantNames(t, mustWalk(t, r, "old"), "fifo")
	wantNames(t, mustWalk(t, New(upper, lowers, Options{}).Root(), "old"), "fifo")
	if !hasFlag(ctx, mustWalk(t, upper, "old"), xattrOpaque) {
		t.Error("a dir moved over a whiteout is not opaque")
	}
}
