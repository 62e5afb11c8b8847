package tmpfs

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

func seek(t *testing.T, f vfs.File, off int64, whence int) (int64, error) {
	t.Helper()
	return f.Seek(off, whence)
}

func TestReadWriteSparse(t *testing.T) {
	fs, _ := newFS(t, Options{})
	r, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	if got := mustRead(t, f, 0, 10); len(got) != 0 {
		t.Fatalf("read of empty file: %q", got)
	}
	// Vectored write across page boundaries.
	n, err := f.Write(userCtx, [][]byte{[]byte("ab"), nil, bytes.Repeat([]byte("c"), 5000), []byte("d")}, 4090)
	if n != 5003 || err != nil {
		t.Fatalf("vectored write %d %v", n, err)
	}
	a := stat(t, r)
	if a.Size != 4090+5003 || a.Blocks != 3*8 {
		t.Fatalf("size %d blocks %d", a.Size, a.Blocks)
	}
	got := mustRead(t, f, 0, 10000)
	if len(got) != 9093 || !bytes.Equal(got[:4090], make([]byte, 4090)) || string(got[4090:4092]) != "ab" ||
		got[4092] != 'c' || got[9091] != 'c' || got[9092] != 'd' {
		t.Fatal("read back differs")
	}
	// Vectored read.
	b1, b2 := make([]byte, 3), make([]byte, 4)
	if n, err := f.Read(userCtx, [][]byte{b1, {}, b2}, 4089); n != 7 || err != nil ||
		string(b1) != "\x00ab" || string(b2) != "cccc" {
		t.Fatalf("vectored read %d %v %q %q", n, err, b1, b2)
	}

	// A far write leaves a hole that reads as zeros and allocates nothing.
	const far = 100 << 20
	mustWrite(t, f, far, []byte("end"))
	a = stat(t, r)
	if a.Size != far+3 || a.Blocks != 4*8 {
		t.Fatalf("after far write size %d blocks %d", a.Size, a.Blocks)
	}
	if got := mustRead(t, f, far-5000, 5003); !bytes.Equal(got[:5000], make([]byte, 5000)) || string(got[5000:]) != "end" {
		t.Fatal("hole did not read as zeros")
	}
	if got := mustRead(t, f, far+1, 100); string(got) != "nd" {
		t.Fatalf("read at EOF got %q", got)
	}

	// SEEK_DATA / SEEK_HOLE.
	for _, c := range []struct {
		off    int64
		whence int
		want   int64
		err    error
	}{
		{0, unix.SEEK_DATA, 0, nil},
		{0, unix.SEEK_HOLE, 3 * 4096, nil},
		{5000, unix.SEEK_DATA, 5000, nil},
		{3 * 4096, unix.SEEK_DATA, far &^ 4095, nil},
		{3 * 4096, unix.SEEK_HOLE, 3 * 4096, nil},
		{20000, unix.SEEK_HOLE, 20000, nil},
		{far, unix.SEEK_HOLE, far + 3, nil},
		{far + 3, unix.SEEK_DATA, 0, unix.ENXIO},
		{-1, unix.SEEK_HOLE, 0, unix.ENXIO},
		{0, unix.SEEK_END, 0, unix.EINVAL},
	} {
		got, err := seek(t, f, c.off, c.whence)
		if got != c.want || !errors.Is(err, c.err) {
			t.Fatalf("seek(%d, %d) = %d, %v; want %d, %v", c.off, c.whence, got, err, c.want, c.err)
		}
	}
	_, f2 := mustCreate(t, fs.Root(), "g")
	defer f2.Release()
	mustWrite(t, f2, 2*4096, []byte("x"))
	f2.(vfs.Allocator).Allocate(userCtx, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 2*4096, 4096)
	if got, err := seek(t, f2, 0, unix.SEEK_DATA); !errors.Is(err, unix.ENXIO) {
		t.Fatalf("SEEK_DATA in an all-hole file: %d %v", got, err)
	}

	// Writes beyond the maximum file size.
	n, err = f.Write(userCtx, [][]byte{[]byte("x")}, maxFileSize)
	wantErr(t, "write at max size", err, unix.EFBIG)
	if n != 0 {
		t.Fatal("wrote at max size")
	}
	n, err = f.Write(userCtx, nil, 5)
	if n != 0 || err != nil || stat(t, r).Size != far+3 {
		t.Fatalf("empty write %d %v", n, err)
	}
}

func TestTruncateFreesAndZeroes(t *testing.T) {
	fs, mf := newFS(t, Options{})
	free0 := mf.FreeBytes()
	r, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	mustWrite(t, f, 0, bytes.Repeat([]byte("x"), 10*4096))
	if used := free0 - mf.FreeBytes(); used != 10*4096 {
		t.Fatalf("10 pages written, %d bytes used", used)
	}
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 4097}); err != nil {
		t.Fatal(err)
	}
	if used := free0 - mf.FreeBytes(); used != 2*4096 || stat(t, r).Blocks != 16 || fs.UsedBytes() != 2*4096 {
		t.Fatalf("after truncate to 4097: %d bytes used, blocks %d", used, stat(t, r).Blocks)
	}
	// Extending again exposes zeros, not the old data.
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 5 * 4096}); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, f, 0, 5*4096)
	if len(got) != 5*4096 || !bytes.Equal(got[:4097], bytes.Repeat([]byte("x"), 4097)) || !bytes.Equal(got[4097:], make([]byte, len(got)-4097)) {
		t.Fatal("extended file does not read zeros past the old end")
	}
	if free0-mf.FreeBytes() != 2*4096 {
		t.Fatal("extending allocated pages")
	}
	// A write past EOF in the same page exposes zeros in the gap.
	mustWrite(t, f, 0, bytes.Repeat([]byte("y"), 4096))
	r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 10})
	mustWrite(t, f, 20, []byte("z"))
	if got := mustRead(t, f, 0, 100); !bytes.Equal(got, append(append(bytes.Repeat([]byte("y"), 10), make([]byte, 10)...), 'z')) {
		t.Fatalf("gap after truncate+write: %q", got)
	}
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 0}); err != nil {
		t.Fatal(err)
	}
	if mf.FreeBytes() != free0 || fs.UsedBytes() != 0 {
		t.Fatal("truncate to 0 kept memory")
	}
	wantErr(t, "negative size", r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: -1}), unix.EINVAL)
}

func TestUnlinkedDataLifetime(t *testing.T) {
	fs, mf := newFS(t, Options{})
	free0 := mf.FreeBytes()
	root := fs.Root()

	// Open file survives unlink; freed at release.
	_, f := mustCreate(t, root, "f")
	mustWrite(t, f, 0, []byte("data"))
	if err := root.Unlink(userCtx, "f"); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, f, 0, 4); string(got) != "data" || mf.FreeBytes() == free0 {
		t.Fatal("unlinked open file lost its data")
	}
	mustWrite(t, f, 4096, []byte("more"))
	f.Release()
	f.Release() // idempotent
	if mf.FreeBytes() != free0 || fs.UsedBytes() != 0 {
		t.Fatalf("release of unlinked file did not free: %d", free0-mf.FreeBytes())
	}

	// A second open keeps it too; a mapping keeps it after all closes.
	r, f1 := mustCreate(t, root, "g")
	mustWrite(t, f1, 0, []byte("g"))
	f2, err := r.Open(userCtx, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	r.IncRef()
	root.Unlink(userCtx, "g")
	f1.Release()
	f2.Release()
	if mf.FreeBytes() == free0 {
		t.Fatal("mapped file freed")
	}
	if m, n, err := r.Translate(0, 4096, false); err != nil || n != 4096 || mf.Slice(m, 1)[0] != 'g' {
		t.Fatalf("translate of mapped unlinked file: %v", err)
	}
	r.DecRef()
	if mf.FreeBytes() != free0 {
		t.Fatal("last DecRef did not free")
	}
	_, err = r.Open(userCtx, unix.O_RDONLY)
	wantErr(t, "open of freed inode", err, unix.ENOENT)
	wantErr(t, "link of freed inode", root.Link(userCtx, "again", r), unix.ENOENT)

	// Closing a linked file frees nothing; neither does a name remaining.
	r, f = mustCreate(t, root, "h")
	mustWrite(t, f, 0, []byte("h"))
	root.Link(userCtx, "h2", r)
	f.Release()
	root.Unlink(userCtx, "h")
	if got := stat(t, r); got.Nlink != 1 || got.Blocks != 8 {
		t.Fatalf("linked file after close: %+v", got)
	}
	// Renaming over the last name frees it.
	_, f = mustCreate(t, root, "i")
	f.Release()
	root.Rename(userCtx, "i", root, "h2", 0)
	if mf.FreeBytes() != free0 {
		t.Fatal("rename over last name did not free")
	}
	root.Unlink(userCtx, "h2")
	if fs.inodes.Load() != 1 {
		t.Fatalf("inode count %d after all gone, want 1 (root)", fs.inodes.Load())
	}
}

func TestTranslateAndInvalidate(t *testing.T) {
	fs, mf := newFS(t, Options{})
	r, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	mustWrite(t, f, 0, bytes.Repeat([]byte("a"), 8*4096))
	mustWrite(t, f, 16*4096, []byte("tail")) // pages 8..15 a hole

	mem, n, err := r.Translate(0, 32*4096, false)
	if err != nil || n != 8*4096 || mf.Slice(mem, 1)[0] != 'a' {
		t.Fatalf("translate data: %d %v", n, err)
	}
	if _, n, _ := r.Translate(4096, 4096, false); n != 4096 {
		t.Fatalf("translate is bounded by length: %d", n)
	}
	// A hole is allocated on demand, one page, zeroed.
	blocks := stat(t, r).Blocks
	mem, n, err = r.Translate(10*4096, 4*4096, true)
	if err != nil || n != 4096 || !bytes.Equal(mf.Slice(mem, 4096), make([]byte, 4096)) || stat(t, r).Blocks != blocks+8 {
		t.Fatalf("translate hole: n %d err %v", n, err)
	}
	copy(mf.Slice(mem, 2), "mm") // a write through the mapping
	if got := mustRead(t, f, 10*4096, 2); string(got) != "mm" {
		t.Fatalf("read after mapped write: %q", got)
	}
	// The last, partial page is mappable; beyond it is not.
	if _, n, err = r.Translate(16*4096, 8*4096, false); err != nil || n != 4096 {
		t.Fatalf("translate last page: %d %v", n, err)
	}
	if _, _, err = r.Translate(17*4096, 4096, false); !errors.Is(err, mm.ErrPastEOF) {
		t.Fatalf("translate past EOF: %v", err)
	}

	// Two mappings; truncation invalidates what lies past the new end,
	// before the pages are freed.
	ms1, ms2 := &fakeMS{}, &fakeMS{}
	freeBefore := mf.FreeBytes()
	ms1.check = func() {
		if mf.FreeBytes() != freeBefore {
			t.Error("pages freed before Invalidate")
		}
	}
	ms2.check = ms1.check
	r.AddMapping(ms1, 0x100000, 0, 17*4096, true)
	r.AddMapping(ms2, 0x200000, 8*4096, 4*4096, false)
	r.IncRef()
	r.IncRef()
	if err := r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 5*4096 + 1}); err != nil {
		t.Fatal(err)
	}
	if len(ms1.inv) != 1 || ms1.inv[0] != [2]uint64{0x100000 + 6*4096, 11 * 4096} {
		t.Fatalf("ms1 invalidations %x", ms1.inv)
	}
	if len(ms2.inv) != 1 || ms2.inv[0] != [2]uint64{0x200000, 4 * 4096} {
		t.Fatalf("ms2 invalidations %x", ms2.inv)
	}
	if mf.FreeBytes() != freeBefore+4*4096 {
		t.Fatalf("freed %d bytes, want pages 6, 7, 10 and 16", mf.FreeBytes()-freeBefore)
	}
	freeBefore = mf.FreeBytes()
	if _, _, err = r.Translate(6*4096, 4096, false); !errors.Is(err, mm.ErrPastEOF) {
		t.Fatalf("translate past new EOF: %v", err)
	}
	// Partial munmap of ms1 leaves two pieces; punching a hole then
	// invalidates only inside the remaining pieces.
	r.RemoveMapping(ms1, 0x100000+2*4096, 2*4096, 2*4096, true)
	if len(r.maps) != 3 {
		t.Fatalf("maps after partial unmap: %+v", r.maps)
	}
	ms1.inv = nil
	if err := f.(vfs.Allocator).Allocate(userCtx, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1000, 5*4096); err != nil {
		t.Fatal(err)
	}
	if len(ms1.inv) != 2 || ms1.inv[0] != [2]uint64{0x100000 + 4096, 4096} || ms1.inv[1] != [2]uint64{0x100000 + 4*4096, 4096} {
		t.Fatalf("punch invalidations %x", ms1.inv)
	}
	r.RemoveMapping(ms1, 0x100000, 0, 17*4096, true)
	r.RemoveMapping(ms2, 0x200000, 8*4096, 4*4096, false)
	if len(r.maps) != 0 {
		t.Fatalf("maps left: %+v", r.maps)
	}

	// The MM splits a VMA by adding the pieces' records, then removing
	// the whole one: the pieces must stay.
	ms3 := &fakeMS{}
	r.AddMapping(ms3, 0x300000, 0, 4*4096, true)
	r.AddMapping(ms3, 0x300000, 0, 4096, true)
	r.AddMapping(ms3, 0x301000, 4096, 3*4096, false)
	r.RemoveMapping(ms3, 0x300000, 0, 4*4096, true)
	if len(r.maps) != 2 {
		t.Fatalf("split records: %+v", r.maps)
	}
	r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 0})
	if len(ms3.inv) != 2 || ms3.inv[0] != [2]uint64{0x300000, 4096} || ms3.inv[1] != [2]uint64{0x301000, 3 * 4096} {
		t.Fatalf("invalidations after split %x", ms3.inv)
	}
	r.RemoveMapping(ms3, 0x300000, 0, 4096, true)
	r.RemoveMapping(ms3, 0x301000, 4096, 3*4096, false)
	if len(r.maps) != 0 {
		t.Fatalf("maps left: %+v", r.maps)
	}
	r.DecRef()
	r.DecRef()
}

func TestFallocate(t *testing.T) {
	fs, mf := newFS(t, Options{})
	r, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	al := f.(vfs.Allocator)
	if err := al.Allocate(userCtx, 0, 100, 3*4096); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, r); a.Size != 100+3*4096 || a.Blocks != 4*8 {
		t.Fatalf("fallocate 0: %+v", a)
	}
	if err := al.Allocate(userCtx, unix.FALLOC_FL_KEEP_SIZE, 8*4096, 4096); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, r); a.Size != 100+3*4096 || a.Blocks != 5*8 {
		t.Fatalf("fallocate KEEP_SIZE: %+v", a)
	}
	if got := mustRead(t, f, 0, 20000); len(got) != 100+3*4096 || !bytes.Equal(got, make([]byte, len(got))) {
		t.Fatal("fallocated range not zero")
	}
	// Truncation frees preallocated pages beyond EOF too.
	r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 4096})
	if a := stat(t, r); a.Blocks != 8 {
		t.Fatalf("blocks after truncate: %d", a.Blocks)
	}
	// Punch a hole: edges zeroed, whole pages freed.
	mustWrite(t, f, 0, bytes.Repeat([]byte("p"), 4*4096))
	free := mf.FreeBytes()
	if err := al.Allocate(userCtx, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 10, 3*4096); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, f, 0, 4*4096)
	want := bytes.Repeat([]byte("p"), 4*4096)
	clear(want[10 : 10+3*4096])
	if !bytes.Equal(got, want) || mf.FreeBytes() != free+2*4096 || stat(t, r).Size != 4*4096 {
		t.Fatalf("punch: freed %d", mf.FreeBytes()-free)
	}
	wantErr(t, "punch without keep", al.Allocate(userCtx, unix.FALLOC_FL_PUNCH_HOLE, 0, 1), unix.EOPNOTSUPP)
	// Zero range: zeroes, allocates, extends.
	mustWrite(t, f, 0, bytes.Repeat([]byte("z"), 4*4096))
	if err := al.Allocate(userCtx, unix.FALLOC_FL_ZERO_RANGE, 5, 5*4096); err != nil {
		t.Fatal(err)
	}
	got = mustRead(t, f, 0, 10*4096)
	if len(got) != 5+5*4096 || string(got[:5]) != "zzzzz" || !bytes.Equal(got[5:], make([]byte, 5*4096)) || stat(t, r).Blocks != 6*8 {
		t.Fatalf("zero range: len %d blocks %d", len(got), stat(t, r).Blocks)
	}
	if err := al.Allocate(userCtx, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 0, 100*4096); err != nil || stat(t, r).Size != 5+5*4096 {
		t.Fatalf("zero range keep size: %v", err)
	}
	for _, m := range []uint32{unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE, unix.FALLOC_FL_UNSHARE_RANGE} {
		wantErr(t, "unsupported mode", al.Allocate(userCtx, m, 0, 4096), unix.EOPNOTSUPP)
	}
	wantErr(t, "zero length", al.Allocate(userCtx, 0, 0, 0), unix.EINVAL)
	wantErr(t, "overflow", al.Allocate(userCtx, 0, maxFileSize, 2), unix.EFBIG)
}

func TestSizeLimit(t *testing.T) {
	fs, mf := newFS(t, Options{Size: 4 * 4096, NrInodes: 3})
	free0 := mf.FreeBytes()
	r, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	// A write beyond the limit is short, then fails.
	n, err := f.Write(userCtx, [][]byte{make([]byte, 5*4096)}, 0)
	if n != 4*4096 || err != nil {
		t.Fatalf("write over limit: %d %v", n, err)
	}
	n, err = f.Write(userCtx, [][]byte{[]byte("x")}, 4*4096)
	wantErr(t, "write when full", err, unix.ENOSPC)
	if n != 0 || stat(t, r).Size != 4*4096 {
		t.Fatal("failed write changed the file")
	}
	// Overwriting allocated pages still works; holes do not.
	mustWrite(t, f, 100, []byte("ok"))
	_, _, err = r.Translate(20*4096, 4096, false)
	wantErr(t, "translate when full", err, mm.ErrPastEOF)
	r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: 8 * 4096})
	_, _, err = r.Translate(6*4096, 4096, false)
	wantErr(t, "translate hole when full", err, unix.ENOSPC)
	wantErr(t, "fallocate when full", f.(vfs.Allocator).Allocate(userCtx, 0, 0, 8*4096), unix.ENOSPC)
	if stat(t, r).Blocks != 4*8 {
		t.Fatal("failed fallocate kept pages")
	}
	// Freeing makes room again.
	f.(vfs.Allocator).Allocate(userCtx, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
	mustWrite(t, f, 7*4096, []byte("y"))
	_, err = fs.Root().Symlink(userCtx, "long", string(bytes.Repeat([]byte("l"), 300)))
	wantErr(t, "long symlink when full", err, unix.ENOSPC)

	// Inode limit: root + f + one more.
	if _, err := fs.Root().Mkdir(userCtx, "d", 0755); err != nil {
		t.Fatal(err)
	}
	_, err = fs.Root().Mknod(userCtx, "n", unix.S_IFIFO|0600, 0)
	wantErr(t, "mknod over inode limit", err, unix.ENOSPC)
	_, _, err = fs.Root().(*dir).CreateTmpfile(userCtx, 0600, unix.O_RDWR)
	wantErr(t, "tmpfile over inode limit", err, unix.ENOSPC)
	fs.Root().Rmdir(userCtx, "d")
	if _, err := fs.Root().Mknod(userCtx, "n", unix.S_IFIFO|0600, 0); err != nil {
		t.Fatalf("mknod after rmdir: %v", err)
	}
	fs.Root().Unlink(userCtx, "f")
	f.Release()
	if mf.FreeBytes() != free0 || fs.UsedBytes() != 0 {
		t.Fatal("space not returned")
	}
}

func TestTmpfile(t *testing.T) {
	fs, mf := newFS(t, Options{})
	free0 := mf.FreeBytes()
	root := fs.Root()
	tc, ok := root.(TmpfileCreator)
	if !ok {
		t.Fatal("directory is not a TmpfileCreator")
	}
	in, f, err := tc.CreateTmpfile(userCtx, 0600, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if a := stat(t, in); a.Nlink != 0 || a.Mode != unix.S_IFREG|0600 || a.UID != 1000 {
		t.Fatalf("tmpfile %+v", a)
	}
	if len(names(t, root)) != 0 {
		t.Fatal("tmpfile appears in its directory")
	}
	mustWrite(t, f, 0, []byte("tmp"))
	if err := root.Link(userCtx, "named", in); err != nil {
		t.Fatal(err)
	}
	if a := stat(t, in); a.Nlink != 1 {
		t.Fatalf("nlink after link %d", a.Nlink)
	}
	// Once named and unnamed again, it cannot be linked again.
	root.Unlink(userCtx, "named")
	wantErr(t, "relink", root.Link(userCtx, "again", in), unix.ENOENT)
	f.Release()

	// O_EXCL: never linkable.
	in, f, _ = tc.CreateTmpfile(userCtx, 0600, unix.O_RDWR|unix.O_EXCL)
	wantErr(t, "link O_EXCL tmpfile", root.Link(userCtx, "x", in), unix.ENOENT)
	mustWrite(t, f, 0, []byte("gone"))
	f.Release()
	if mf.FreeBytes() != free0 {
		t.Fatal("unlinked tmpfile not freed on release")
	}
	// An ordinarily unlinked file is not linkable either.
	r, f := mustCreate(t, root, "u")
	root.Unlink(userCtx, "u")
	wantErr(t, "link unlinked file", root.Link(userCtx, "u2", r), unix.ENOENT)
	f.Release()
}

func TestConfigureMMap(t *testing.T) {
	fs, _ := newFS(t, Options{})
	r, f := mustCreate(t, fs.Root(), "f")
	f.Release()
	fs.SetDev(9)
	for _, c := range []struct {
		flags    int
		shared   bool
		perms    platform.AccessType
		err      error
		maxWrite bool
	}{
		{unix.O_RDONLY, true, platform.Read, nil, false},
		{unix.O_RDONLY, true, platform.ReadWrite, unix.EACCES, false},
		{unix.O_RDONLY, false, platform.ReadWrite, nil, false},
		{unix.O_RDWR, true, platform.ReadWrite, nil, true},
		{unix.O_WRONLY, true, platform.Read, unix.EACCES, false},
	} {
		of, err := r.Open(userCtx, c.flags)
		if err != nil {
			t.Fatal(err)
		}
		opts := mm.MMapOpts{Length: 4096, Shared: c.shared, Perms: c.perms}
		err = of.(vfs.MMapper).ConfigureMMap(userCtx, &opts)
		if c.err != nil {
			wantErr(t, "ConfigureMMap", err, c.err)
		} else if err != nil || opts.Mappable != r || opts.Ino != r.ino || opts.Dev != 9 ||
			!opts.MaxPerms.Read || !opts.MaxPerms.Execute || opts.MaxPerms.Write != c.maxWrite {
			t.Fatalf("%+v: %v %+v", c, err, opts)
		}
		// What the caller filled in is narrowed, not widened or lost.
		opts = mm.MMapOpts{Length: 4096, Shared: c.shared, Perms: platform.Read,
			MaxPerms: platform.Read, Dev: 42, Ino: 43}
		if err := of.(vfs.MMapper).ConfigureMMap(userCtx, &opts); c.flags != unix.O_WRONLY &&
			(err != nil || opts.MaxPerms != platform.Read || opts.Dev != 42 || opts.Ino != 43 || opts.Name != "") {
			t.Fatalf("preset opts: %v %+v", err, opts)
		}
		// The VFS may also look through OffsetIO.
		if _, ok := of.(interface{ OffsetIO() vfs.OffsetIO }).OffsetIO().(vfs.MMapper); !ok {
			t.Fatal("OffsetIO is not an MMapper")
		}
		of.Release()
	}
}

func TestAppendAndSuid(t *testing.T) {
	fs, _ := newFS(t, Options{})
	r, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	mustWrite(t, f, 0, []byte("abc"))
	n, err := f.Write(userCtx, [][]byte{[]byte("de")}, -1)
	if n != 2 || err != nil {
		t.Fatal(err)
	}
	_, end, err := f.(interface{ OffsetIO() vfs.OffsetIO }).OffsetIO().(vfs.Appender).Append(userCtx, [][]byte{[]byte("f")})
	if end != 6 || err != nil || string(mustRead(t, f, 0, 10)) != "abcdef" {
		t.Fatalf("append end %d %v", end, err)
	}
	// Writing drops set-user-ID and set-group-ID (with group exec).
	r.SetAttr(rootCtx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 06755})
	mustWrite(t, f, 0, []byte("x"))
	if m := stat(t, r).Mode; m != unix.S_IFREG|0755 {
		t.Fatalf("mode after write %o", m)
	}
	r.SetAttr(rootCtx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 06745})
	mustWrite(t, f, 0, []byte("x"))
	if m := stat(t, r).Mode; m != unix.S_IFREG|02745 {
		t.Fatalf("mode after write %o (setgid without group exec is a lock flag)", m)
	}
	r.SetAttr(rootCtx, &vfs.SetAttr{Mask: vfs.SetMode, Mode: 04755})
	if _, err := f.Write(rootCtx, [][]byte{[]byte("x")}, 0); err != nil {
		t.Fatal(err)
	}
	if m := stat(t, r).Mode; m != unix.S_IFREG|04755 {
		t.Fatalf("CAP_FSETID writer dropped suid: %o", m)
	}
	oio := f.(interface{ OffsetIO() vfs.OffsetIO }).OffsetIO()
	if sz, err := oio.Size(userCtx); sz != 6 || err != nil || oio.(vfs.Syncer).Sync(userCtx, true) != nil {
		t.Fatalf("Size %d %v", sz, err)
	}
	if err := f.(vfs.Syncer).Sync(userCtx, false); err != nil {
		t.Fatal(err)
	}
	if a, err := f.Stat(); err != nil || a.Ino != r.ino || a.Size != 6 {
		t.Fatalf("fstat %+v %v", a, err)
	}
}

func TestReleaseFS(t *testing.T) {
	fs, mf := newFS(t, Options{})
	free0 := mf.FreeBytes()
	d := mustMkdir(t, fs.Root(), "d")
	r, f := mustCreate(t, d, "open")
	mustWrite(t, f, 0, []byte("keep"))
	_, g := mustCreate(t, fs.Root(), "closed")
	mustWrite(t, g, 0, []byte("drop"))
	g.Release()
	fs.Root().Link(userCtx, "hard", r)
	fs.Release()
	fs.Release()
	if mf.FreeBytes() != free0-4096 {
		t.Fatalf("after release %d bytes used, want the open file's page", free0-mf.FreeBytes())
	}
	if string(mustRead(t, f, 0, 4)) != "keep" || stat(t, r).Nlink != 0 || stat(t, d).Nlink != 0 {
		t.Fatal("open file broken by release")
	}
	f.Release()
	if mf.FreeBytes() != free0 || fs.inodes.Load() != 0 {
		t.Fatalf("after last close: used %d inodes %d", free0-mf.FreeBytes(), fs.inodes.Load())
	}
}

// TestNoAllocs checks the steady read/write path allocates nothing.
func TestNoAllocs(t *testing.T) {
	fs, _ := newFS(t, Options{})
	_, f := mustCreate(t, fs.Root(), "f")
	defer f.Release()
	buf := [][]byte{make([]byte, 64<<10)}
	mustWrite(t, f, 0, make([]byte, 1<<20))
	var off int64
	if a := testing.AllocsPerRun(100, func() {
		f.Write(userCtx, buf, off)
		f.Read(userCtx, buf, off)
		off = (off + 64<<10) % (1 << 20)
	}); a != 0 {
		t.Fatalf("%v allocations per read+write", a)
	}
}
