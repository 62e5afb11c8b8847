package vfs_test

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// TestDentryCacheBound: unpinned names beyond the bound are evicted (their
// inodes released), pinned ones (open files, working directories) and
// ancestors of cached names stay, and evicted names still resolve.
func TestDentryCacheBound(t *testing.T) {
	e := newEnv(t)
	e.v.SetDentryCacheSize(100)
	e.mkdir("/d")
	for i := 0; i < 1000; i++ {
		d, err := e.v.Open(e.ctx, e.walk(fmt.Sprintf("/d/f%04d", i)), vfs.OpenOptions{Flags: unix.O_CREAT | unix.O_WRONLY, Mode: 0o644})
		e.ok("create", err)
		if i == 0 {
			defer d.DecRef() // f0000 stays open: pinned
		} else {
			d.DecRef()
		}
	}
	if n := e.v.CachedDentries(); n > 100+1 {
		t.Errorf("%d names cached, want at most the bound (100)", n)
	}
	// Every name still resolves (from the filesystem again if evicted).
	for i := 0; i < 1000; i += 97 {
		e.resolve(fmt.Sprintf("/d/f%04d", i))
	}
	// The pinned file keeps its dentry: resolving it gives the same one.
	a := e.resolve("/d/f0000")
	for i := 0; i < 1000; i++ {
		e.resolve(fmt.Sprintf("/d/f%04d", i))
	}
	if b := e.resolve("/d/f0000"); a.Dentry != b.Dentry {
		t.Errorf("an open file's name was evicted")
	}
	// A working directory is pinned too.
	e.mkdir("/d/sub")
	fsc := vfs.NewFSContext(e.root, e.resolve("/d/sub"))
	defer fsc.Release()
	for i := 0; i < 1000; i++ {
		e.resolve(fmt.Sprintf("/d/f%04d", i))
	}
	if e.resolve("/d/sub").Dentry != fsc.Cwd().Dentry {
		t.Errorf("a working directory's name was evicted")
	}
}

// TestResolveSemantics: symlink loops, ENAMETOOLONG, "..", trailing
// slashes and openat2's RESOLVE_BENEATH / RESOLVE_IN_ROOT.
func TestResolveSemantics(t *testing.T) {
	e := newEnv(t)
	e.mkdir("/a")
	e.mkdir("/a/b")
	e.ok("symlink", e.v.Symlink(e.ctx, "loop2", e.walk("/a/loop1")))
	e.ok("symlink", e.v.Symlink(e.ctx, "loop1", e.walk("/a/loop2")))
	e.ok("symlink", e.v.Symlink(e.ctx, "/a/b", e.walk("/a/abs")))
	e.ok("symlink", e.v.Symlink(e.ctx, "../..", e.walk("/a/b/up")))
	check := func(path string, resolve uint64, start vfs.VirtualDentry, want error) {
		t.Helper()
		_, err := e.v.Resolve(e.ctx, &vfs.Walk{Root: e.root, Start: start, Path: path, FollowFinal: true, Resolve: resolve})
		if err != want {
			t.Errorf("resolve %q (resolve %#x): %v, want %v", path, resolve, err, want)
		}
	}
	a := e.resolve("/a")
	check("/a/loop1", 0, e.root, unix.ELOOP)
	check("/a/b/../b/./", 0, e.root, nil)
	check("/../../a", 0, e.root, nil) // ".." stops at the root
	check("/a/b/missing/x", 0, e.root, unix.ENOENT)
	long := "/"
	for len(long) < 5000 {
		long += "aaaaaaaaaa/"
	}
	check(long, 0, e.root, unix.ENAMETOOLONG)
	name := make([]byte, 256)
	for i := range name {
		name[i] = 'n'
	}
	check("/a/"+string(name), 0, e.root, unix.ENAMETOOLONG)
	check("b", vfs.ResolveBeneath, a, nil)
	check("../a", vfs.ResolveBeneath, a, unix.EXDEV)
	check("abs", vfs.ResolveBeneath, a, unix.EXDEV)
	check("abs", vfs.ResolveNoSymlinks, a, unix.ELOOP)
	// In RESOLVE_IN_ROOT, ".." and absolute links stay inside a.
	check("b/up/b", vfs.ResolveInRoot, a, nil)
	// A file with a trailing slash is not a directory.
	f, err := e.v.Open(e.ctx, e.walk("/a/file"), vfs.OpenOptions{Flags: unix.O_CREAT | unix.O_WRONLY, Mode: 0o644})
	e.ok("create", err)
	f.DecRef()
	check("/a/file/", 0, e.root, unix.ENOTDIR)
}

// TestPermissions: search permission on directories and the owner, group
// and other bits for an unprivileged caller; root's overrides.
func TestPermissions(t *testing.T) {
	e := newEnv(t)
	e.mkdir("/p")
	user := &tctx{vfs.Credentials{UID: 1000, GID: 1000}}
	f, err := e.v.Open(e.ctx, e.walk("/p/secret"), vfs.OpenOptions{Flags: unix.O_CREAT | unix.O_WRONLY, Mode: 0o600})
	e.ok("create", err)
	f.DecRef()
	if _, err := e.v.Open(user, e.walk("/p/secret"), vfs.OpenOptions{Flags: unix.O_RDONLY}); err != unix.EACCES {
		t.Errorf("user opening a 0600 root file: %v, want EACCES", err)
	}
	e.ok("chmod", e.v.SetAttrVD(e.ctx, e.resolve("/p"), &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0o700}, false))
	if _, err := e.v.Stat(user, e.walk("/p/secret")); err != unix.EACCES {
		t.Errorf("user walking through a 0700 root directory: %v, want EACCES", err)
	}
	if _, err := e.v.Stat(e.ctx, e.walk("/p/secret")); err != nil {
		t.Errorf("root walking through a 0700 directory: %v", err)
	}
	if err := e.v.Mkdir(user, e.walk("/p/x"), 0o755, 0); err != unix.EACCES {
		t.Errorf("user mkdir in a 0700 root directory: %v, want EACCES", err)
	}
}
