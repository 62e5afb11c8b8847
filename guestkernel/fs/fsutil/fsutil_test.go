package fsutil

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

type ctx struct{}

func (ctx) FSCredentials() *vfs.Credentials            { return &vfs.Credentials{} }
func (ctx) WaitHostFD(int, int16, time.Duration) error { return nil }
func (ctx) MM() *mm.MM                                 { return nil }

func TestDirListing(t *testing.T) {
	var inos Inos
	a := NewStaticFile(NewNode(inos.Next(), 0o444, ProcMagic), "a")
	b := NewSymlink(NewNode(inos.Next(), 0o777, ProcMagic), "a")
	c := NewDir(NewNode(inos.Next(), 0o555, ProcMagic), nil)
	d := NewDir(NewNode(inos.Next(), 0o555, ProcMagic), []Entry{{Name: "a", Inode: a}, {Name: "b", Inode: b}, {Name: "c", Inode: c}})
	var got []vfs.Dirent
	d.IterDir(ctx{}, 0, func(de vfs.Dirent) bool {
		got = append(got, de)
		return len(got) < 2
	})
	if len(got) != 2 || got[0] != (vfs.Dirent{Name: "a", Type: unix.DT_REG, Ino: 1, Next: 1}) ||
		got[1] != (vfs.Dirent{Name: "b", Type: unix.DT_LNK, Ino: 2, Next: 2}) {
		t.Fatalf("first entries %+v", got)
	}
	got = nil
	d.IterDir(ctx{}, 2, func(de vfs.Dirent) bool { got = append(got, de); return true })
	if len(got) != 1 || got[0] != (vfs.Dirent{Name: "c", Type: unix.DT_DIR, Ino: 3, Next: 3}) {
		t.Errorf("resumed entries %+v", got)
	}
	if ino, err := d.Lookup(ctx{}, "b"); err != nil || ino != b {
		t.Errorf("lookup b: %v, %v", ino, err)
	}
	if _, err := d.Lookup(ctx{}, "z"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("lookup z: %v", err)
	}
	if at, _ := d.Stat(ctx{}); at.Mode != unix.S_IFDIR|0o555 || at.Ino != 4 || at.Nlink != 2 {
		t.Errorf("dir stat %+v", at)
	}
	if _, err := d.Open(ctx{}, unix.O_RDONLY); !errors.Is(err, unix.EISDIR) {
		t.Errorf("open dir for I/O: %v", err)
	}
	if _, err := d.Mkdir(ctx{}, "x", 0o755); !errors.Is(err, unix.EACCES) {
		t.Errorf("mkdir: %v", err)
	}
	if st, _ := d.StatFS(ctx{}); st.Type != ProcMagic {
		t.Errorf("statfs type %#x", st.Type)
	}
}

// TestDynamicDir: keyed offsets keep a resumed listing in place when an
// earlier entry goes away; Find and Valid are used when set.
func TestDynamicDir(t *testing.T) {
	keys := []int64{10, 20, 30}
	node := NewNode(1, 0o555, 0)
	d := NewDynamicDir(node, func(vfs.Context) ([]Entry, error) {
		var out []Entry
		for _, k := range keys {
			out = append(out, Entry{Name: string(rune('a' + k/10)), Inode: NewStaticFile(NewNode(uint64(k), 0o444, 0), ""), Off: k})
		}
		return out, nil
	})
	var names []string
	d.IterDir(ctx{}, 0, func(de vfs.Dirent) bool { names = append(names, de.Name); return de.Next < 20 })
	keys = keys[1:] // "b" goes, having been listed
	d.IterDir(ctx{}, 20, func(de vfs.Dirent) bool { names = append(names, de.Name); return true })
	if got := names; len(got) != 3 || got[0] != "b" || got[1] != "c" || got[2] != "d" {
		t.Errorf("listing %v, want b c d", got)
	}
	found := 0
	d.Find = func(vfs.Context, string) (vfs.Inode, error) { found++; return nil, unix.ENOENT }
	d.Lookup(ctx{}, "c")
	if found != 1 {
		t.Error("Find not used")
	}
	if !d.Revalidate(ctx{}, "x", nil) {
		t.Error("a directory without Valid revalidates false")
	}
	d.Valid = func(vfs.Context, string, vfs.Inode) bool { return false }
	if d.Revalidate(ctx{}, "x", nil) {
		t.Error("Valid not used")
	}
}

func TestFileSnapshot(t *testing.T) {
	gen := 0
	f := NewFile(NewNode(1, 0o444, 0), func(vfs.Context) ([]byte, error) {
		gen++
		return []byte("hello, world " + string(rune('0'+gen))), nil
	})
	a, err := f.Open(ctx{}, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	b1, b2 := make([]byte, 3), make([]byte, 4)
	if n, err := a.Read(ctx{}, [][]byte{b1, b2}, 5); n != 7 || err != nil || string(b1)+string(b2) != ", world" {
		t.Errorf("read at 5: %d %v %q%q", n, err, b1, b2)
	}
	f.Open(ctx{}, unix.O_RDONLY) // a second open generates anew
	buf := make([]byte, 10)
	if n, _ := a.Read(ctx{}, [][]byte{buf}, 13); string(buf[:n]) != "1" {
		t.Errorf("the first open's snapshot changed: %q", buf[:n])
	}
	if n, err := a.Read(ctx{}, [][]byte{buf}, 100); n != 0 || err != nil {
		t.Errorf("read past the end: %d %v", n, err)
	}
	if at, _ := f.Stat(nil); at.Size != 0 || at.Mode != unix.S_IFREG|0o444 || at.Nlink != 1 {
		t.Errorf("stat %+v", at)
	}
	for _, flags := range []int{unix.O_WRONLY, unix.O_RDWR} {
		if _, err := f.Open(ctx{}, flags); !errors.Is(err, unix.EACCES) {
			t.Errorf("open read-only file with %#x: %v", flags, err)
		}
	}
	if err := f.SetAttr(ctx{}, &vfs.SetAttr{Mask: vfs.SetSize}); !errors.Is(err, unix.EACCES) {
		t.Errorf("truncate read-only file: %v", err)
	}
	if err := f.SetAttr(ctx{}, &vfs.SetAttr{Mask: vfs.SetMode}); !errors.Is(err, unix.EPERM) {
		t.Errorf("chmod: %v", err)
	}
	genErr := NewFile(NewNode(2, 0o444, 0), func(vfs.Context) ([]byte, error) { return nil, unix.ESRCH })
	if _, err := genErr.Open(ctx{}, unix.O_RDONLY); !errors.Is(err, unix.ESRCH) {
		t.Errorf("generator error: %v", err)
	}
}

func TestFileWrite(t *testing.T) {
	var got []string
	f := NewStaticFile(NewNode(1, 0o644, 0), "x\n")
	f.Write = func(_ vfs.Context, data []byte) error {
		if string(data) == "bad" {
			return unix.EINVAL
		}
		got = append(got, string(data))
		return nil
	}
	if err := f.SetAttr(ctx{}, &vfs.SetAttr{Mask: vfs.SetSize | vfs.SetMtime}); err != nil {
		t.Errorf("O_TRUNC of a writable file: %v", err)
	}
	w, err := f.Open(ctx{}, unix.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(ctx{}, [][]byte{[]byte("ab"), []byte("cd")}, 0); n != 4 || err != nil {
		t.Errorf("write: %d %v", n, err)
	}
	if n, err := w.Write(ctx{}, [][]byte{[]byte("bad")}, 7); n != 0 || !errors.Is(err, unix.EINVAL) {
		t.Errorf("refused write: %d %v", n, err)
	}
	if len(got) != 1 || got[0] != "abcd" {
		t.Errorf("writes seen %q", got)
	}
}

func TestLinks(t *testing.T) {
	owner := NewNode(1, 0o777, 0)
	owner.Owner = func() (uint32, uint32) { return 5, 6 }
	owner.Size = func() int64 { return 64 }
	l := NewDynamicSymlink(owner, func(vfs.Context) (string, error) { return "42", nil })
	if s, err := l.Readlink(ctx{}); s != "42" || err != nil {
		t.Errorf("readlink %q %v", s, err)
	}
	if a, _ := l.Stat(ctx{}); a.Mode != unix.S_IFLNK|0o777 || a.UID != 5 || a.GID != 6 || a.Size != 64 {
		t.Errorf("symlink stat %+v", a)
	}
	if _, err := l.Lookup(ctx{}, "x"); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("lookup in a symlink: %v", err)
	}
	if _, ok := any(l).(vfs.MagicLink); ok {
		t.Error("a plain symlink is a magic link")
	}
	target := vfs.VirtualDentry{}
	ml := NewMagicLink(NewNode(2, 0o700, 0), func(vfs.Context) (string, error) { return "pipe:[3]", nil },
		func(vfs.Context) (vfs.VirtualDentry, error) { return target, unix.ENXIO })
	var ino vfs.Inode = ml
	if s, _ := ino.Readlink(ctx{}); s != "pipe:[3]" {
		t.Errorf("magic link text %q", s)
	}
	if _, err := ino.(vfs.MagicLink).Follow(ctx{}); !errors.Is(err, unix.ENXIO) {
		t.Errorf("follow: %v", err)
	}
	if a, _ := ino.Stat(ctx{}); a.Mode != unix.S_IFLNK|0o700 {
		t.Errorf("magic link mode %#o", a.Mode)
	}
}
