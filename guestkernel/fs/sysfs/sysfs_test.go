package sysfs

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

type ctx struct{}

func (ctx) FSCredentials() *vfs.Credentials            { return &vfs.Credentials{Caps: vfs.AllCaps} }
func (ctx) WaitHostFD(int, int16, time.Duration) error { return nil }
func (ctx) MM() *mm.MM                                 { return nil }

func walk(t *testing.T, fs vfs.Filesystem, path string) vfs.Inode {
	t.Helper()
	ino := fs.Root()
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		if name == "" {
			continue
		}
		var err error
		if ino, err = ino.Lookup(ctx{}, name); err != nil {
			t.Fatalf("lookup %s in %s: %v", name, path, err)
		}
	}
	return ino
}

func read(t *testing.T, fs vfs.Filesystem, path string) string {
	t.Helper()
	f, err := walk(t, fs, path).Open(ctx{}, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	var sb strings.Builder
	buf := make([]byte, 3) // small reads: content must continue across them
	for off := int64(0); ; {
		n, err := f.Read(ctx{}, [][]byte{buf}, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		sb.Write(buf[:n])
		off += int64(n)
	}
	return sb.String()
}

func list(t *testing.T, fs vfs.Filesystem, path string) []string {
	t.Helper()
	var names []string
	err := walk(t, fs, path).IterDir(ctx{}, 0, func(d vfs.Dirent) bool {
		names = append(names, d.Name)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestCPUFiles(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{1, "0\n"}, {2, "0-1\n"}, {8, "0-7\n"}, {0, "0\n"}} {
		fs := New(tc.n)
		for _, f := range []string{"online", "possible", "present"} {
			if got := read(t, fs, "/devices/system/cpu/"+f); got != tc.want {
				t.Errorf("%d CPUs: %s = %q, want %q", tc.n, f, got, tc.want)
			}
		}
	}
	got := strings.Join(list(t, New(3), "/devices/system/cpu"), " ")
	if got != "online possible present cpu0 cpu1 cpu2" {
		t.Errorf("cpu dir lists %q", got)
	}
	a, _ := walk(t, New(3), "/devices/system/cpu/cpu2").Stat(ctx{})
	if a.Mode != unix.S_IFDIR|0o755 {
		t.Errorf("cpu2 mode %#o", a.Mode)
	}
}

func TestTree(t *testing.T) {
	fs := New(2)
	if fs.Type() != "sysfs" {
		t.Errorf("type %q", fs.Type())
	}
	if got := read(t, fs, "/kernel/mm/transparent_hugepage/enabled"); got != "always [madvise] never\n" {
		t.Errorf("THP enabled = %q", got)
	}
	if got := list(t, fs, "/fs/cgroup"); len(got) != 0 {
		t.Errorf("/sys/fs/cgroup lists %v, want empty", got)
	}
	if got := strings.Join(list(t, fs, "/"), " "); got != "devices fs kernel" {
		t.Errorf("/sys lists %q", got)
	}
	a, _ := fs.Root().Stat(ctx{})
	if a.Mode != unix.S_IFDIR|0o555 {
		t.Errorf("root mode %#o", a.Mode)
	}
	a, _ = walk(t, fs, "/devices/system/cpu/online").Stat(ctx{})
	if a.Mode != unix.S_IFREG|0o444 || a.Size != 4096 {
		t.Errorf("online: mode %#o size %d, want 0444 and 4096", a.Mode, a.Size)
	}
	st, err := fs.Root().StatFS(ctx{})
	if err != nil || st.Type != 0x62656572 {
		t.Errorf("statfs type %#x, %v", st.Type, err)
	}
}

func TestReadOnly(t *testing.T) {
	fs := New(2)
	for _, flags := range []int{unix.O_WRONLY, unix.O_RDWR} {
		if _, err := walk(t, fs, "/devices/system/cpu/online").Open(ctx{}, flags); !errors.Is(err, unix.EACCES) {
			t.Errorf("open for writing (%#x): %v, want EACCES", flags, err)
		}
	}
	if err := walk(t, fs, "/kernel/mm/transparent_hugepage/enabled").SetAttr(ctx{}, &vfs.SetAttr{Mask: vfs.SetSize}); !errors.Is(err, unix.EACCES) {
		t.Errorf("truncate: %v, want EACCES", err)
	}
	if _, err := fs.Root().Mkdir(ctx{}, "x", 0o755); !errors.Is(err, unix.EACCES) {
		t.Errorf("mkdir: %v, want EACCES", err)
	}
	if _, _, err := walk(t, fs, "/fs/cgroup").Create(ctx{}, "x", 0o644, unix.O_RDWR); !errors.Is(err, unix.EACCES) {
		t.Errorf("create: %v, want EACCES", err)
	}
	if _, err := fs.Root().Lookup(ctx{}, "nope"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("lookup of a missing name: %v", err)
	}
}
