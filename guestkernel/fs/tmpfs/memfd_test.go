package tmpfs

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

func TestMemfd(t *testing.T) {
	mf := newMF(t)
	free0 := mf.FreeBytes()
	in, f := NewMemfd(mf, "buf", unix.MFD_CLOEXEC)
	in2, f2 := NewMemfd(mf, "", 0)
	defer f2.Release()
	if in.(Namer).Name() != "memfd:buf" || f.(Namer).Name() != "memfd:buf" || in2.(Namer).Name() != "memfd:" {
		t.Fatal("memfd names")
	}
	a, a2 := stat(t, in), stat(t, in2)
	if a.Nlink != 0 || a.Mode != unix.S_IFREG|0777 || a.Ino == a2.Ino || f.StatusFlags()&unix.O_ACCMODE != unix.O_RDWR {
		t.Fatalf("memfd attrs %+v / %+v", a, a2)
	}
	if MemfdFS(mf) != MemfdFS(mf) {
		t.Fatal("MemfdFS is not one instance per memory file")
	}
	mustWrite(t, f, 0, []byte("hello"))
	opts := mm.MMapOpts{Length: 4096, Shared: true, Perms: platform.ReadWrite}
	if err := f.(vfs.MMapper).ConfigureMMap(userCtx, &opts); err != nil || opts.Name != "/memfd:buf (deleted)" || !opts.MaxPerms.Write {
		t.Fatalf("memfd mmap: %v %+v", err, opts)
	}
	// Without MFD_ALLOW_SEALING it is sealed shut.
	s := f.(Sealer)
	if s.Seals() != unix.F_SEAL_SEAL {
		t.Fatalf("seals %#x", s.Seals())
	}
	wantErr(t, "seal unsealable", s.AddSeals(unix.F_SEAL_WRITE), unix.EPERM)
	// Not linkable anywhere.
	fs, _ := newFS(t, Options{})
	wantErr(t, "link memfd", fs.Root().Link(userCtx, "m", in), unix.EXDEV)
	wantErr(t, "link memfd in its fs", MemfdFS(mf).Root().Link(userCtx, "m", in), unix.ENOENT)
	f.Release()
	if mf.FreeBytes() != free0 {
		t.Fatal("closed memfd not freed")
	}

	// Owner from ctx with FS.NewMemfd.
	in, f = MemfdFS(mf).NewMemfd(userCtx, "u", 0)
	if a := stat(t, in); a.UID != 1000 || a.GID != 1000 {
		t.Fatalf("owner %d:%d", a.UID, a.GID)
	}
	f.Release()
}

func TestSeals(t *testing.T) {
	mf := newMF(t)
	in, f := NewMemfd(mf, "s", unix.MFD_ALLOW_SEALING)
	defer f.Release()
	r := in.(*regular)
	s := f.(Sealer)
	if s.Seals() != 0 {
		t.Fatalf("initial seals %#x", s.Seals())
	}
	mustWrite(t, f, 0, make([]byte, 3*4096))
	wantErr(t, "unknown seal", s.AddSeals(0x100), unix.EINVAL)

	// F_SEAL_GROW: no writes past EOF (a write straddling it is short),
	// no extending truncate or fallocate.
	if err := s.AddSeals(unix.F_SEAL_GROW); err != nil {
		t.Fatal(err)
	}
	n, err := f.Write(userCtx, [][]byte{make([]byte, 100)}, 3*4096-10)
	if n != 10 || err != nil {
		t.Fatalf("straddling write with GROW: %d %v", n, err)
	}
	_, err = f.Write(userCtx, [][]byte{{1}}, 3*4096)
	wantErr(t, "write at EOF with GROW", err, unix.EPERM)
	_, err = f.Write(userCtx, [][]byte{{1}}, -1)
	wantErr(t, "append with GROW", err, unix.EPERM)
	wantErr(t, "grow with GROW", r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 4 * 4096}), unix.EPERM)
	wantErr(t, "fallocate with GROW", f.(vfs.Allocator).Allocate(userCtx, unix.FALLOC_FL_KEEP_SIZE, 0, 4*4096), unix.EPERM)
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 2 * 4096}); err != nil {
		t.Fatalf("shrink with GROW only: %v", err)
	}

	// F_SEAL_SHRINK.
	s.AddSeals(unix.F_SEAL_SHRINK)
	wantErr(t, "shrink with SHRINK", r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 4096}), unix.EPERM)
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 2 * 4096}); err != nil {
		t.Fatalf("same-size truncate: %v", err)
	}

	// F_SEAL_WRITE fails while a shared writable mapping exists.
	ms := &fakeMS{}
	r.AddMapping(ms, 0x1000, 0, 4096, true)
	r.AddMapping(ms, 0x9000, 0, 4096, false)
	wantErr(t, "WRITE with writable mapping", s.AddSeals(unix.F_SEAL_WRITE), unix.EBUSY)
	r.RemoveMapping(ms, 0x1000, 0, 4096, true)
	if err := s.AddSeals(unix.F_SEAL_WRITE); err != nil {
		t.Fatalf("WRITE with only a read-only mapping: %v", err)
	}
	_, err = f.Write(userCtx, [][]byte{{1}}, 0)
	wantErr(t, "write with WRITE", err, unix.EPERM)
	wantErr(t, "punch with WRITE", f.(vfs.Allocator).Allocate(userCtx, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096), unix.EPERM)
	opts := mm.MMapOpts{Length: 4096, Shared: true, Perms: platform.ReadWrite}
	wantErr(t, "shared writable mmap with WRITE", f.(vfs.MMapper).ConfigureMMap(userCtx, &opts), unix.EPERM)
	opts = mm.MMapOpts{Length: 4096, Shared: true, Perms: platform.Read}
	if err := f.(vfs.MMapper).ConfigureMMap(userCtx, &opts); err != nil || opts.MaxPerms.Write {
		t.Fatalf("shared read-only mmap with WRITE: %v, max %v", err, opts.MaxPerms)
	}
	opts = mm.MMapOpts{Length: 4096, Perms: platform.ReadWrite}
	if err := f.(vfs.MMapper).ConfigureMMap(userCtx, &opts); err != nil || !opts.MaxPerms.Write {
		t.Fatalf("private writable mmap with WRITE: %v", err)
	}
	if got := mustRead(t, f, 0, 1); len(got) != 1 {
		t.Fatal("read with WRITE seal failed")
	}

	// F_SEAL_SEAL ends sealing; seals need a writable file.
	ro, err := r.Open(userCtx, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "seal through read-only file", ro.(Sealer).AddSeals(unix.F_SEAL_SEAL), unix.EPERM)
	ro.Release()
	if err := s.AddSeals(unix.F_SEAL_SEAL); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "seal after SEAL", s.AddSeals(unix.F_SEAL_SHRINK), unix.EPERM)
	want := uint32(unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL)
	if s.Seals() != want {
		t.Fatalf("seals %#x want %#x", s.Seals(), want)
	}
}

func TestSealFutureWriteAndExec(t *testing.T) {
	mf := newMF(t)
	in, f := NewMemfd(mf, "fw", unix.MFD_ALLOW_SEALING)
	defer f.Release()
	r := in.(*regular)
	mustWrite(t, f, 0, []byte("x"))
	// FUTURE_WRITE does not care about existing writable mappings.
	r.AddMapping(&fakeMS{}, 0, 0, 4096, true)
	if err := f.(Sealer).AddSeals(unix.F_SEAL_FUTURE_WRITE); err != nil {
		t.Fatal(err)
	}
	_, err := f.Write(userCtx, [][]byte{{1}}, 0)
	wantErr(t, "write with FUTURE_WRITE", err, unix.EPERM)
	opts := mm.MMapOpts{Length: 4096, Shared: true, Perms: platform.ReadWrite}
	wantErr(t, "new shared writable mmap", f.(vfs.MMapper).ConfigureMMap(userCtx, &opts), unix.EPERM)
	// Existing mappings keep writing through Translate.
	if _, _, err := r.Translate(0, 4096, true); err != nil {
		t.Fatal(err)
	}

	// MFD_NOEXEC_SEAL: 0666 and F_SEAL_EXEC; chmod +x refused.
	in, f2 := NewMemfd(mf, "nx", unix.MFD_NOEXEC_SEAL)
	defer f2.Release()
	if a := stat(t, in); a.Mode != unix.S_IFREG|0666 || f2.(Sealer).Seals() != unix.F_SEAL_EXEC {
		t.Fatalf("noexec memfd mode %o seals %#x", a.Mode, f2.(Sealer).Seals())
	}
	wantErr(t, "chmod +x", in.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0755}), unix.EPERM)
	if err := in.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 0600}); err != nil {
		t.Fatalf("chmod without exec change: %v", err)
	}

	// F_SEAL_EXEC on an executable memfd implies the write seals.
	_, f3 := NewMemfd(mf, "x", unix.MFD_ALLOW_SEALING)
	defer f3.Release()
	if err := f3.(Sealer).AddSeals(unix.F_SEAL_EXEC); err != nil {
		t.Fatal(err)
	}
	want := uint32(unix.F_SEAL_EXEC | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_FUTURE_WRITE)
	if got := f3.(Sealer).Seals(); got != want {
		t.Fatalf("seals %#x want %#x", got, want)
	}

	// Ordinary tmpfs files answer F_GET_SEALS with F_SEAL_SEAL.
	fs, _ := newFS(t, Options{})
	_, f4 := mustCreate(t, fs.Root(), "plain")
	defer f4.Release()
	if f4.(Sealer).Seals() != unix.F_SEAL_SEAL {
		t.Fatal("plain file seals")
	}
	wantErr(t, "seal plain file", f4.(Sealer).AddSeals(unix.F_SEAL_GROW), unix.EPERM)
}
