package goferfs

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

const benchFileSize = 64 << 20

// benchFile makes a 64 MiB host file and opens it through goferfs.
func benchFile(b *testing.B) (*env, *inode, *regularFile) {
	e := newEnv(b, "", Options{})
	f, err := os.Create(e.path("big"))
	if err != nil {
		b.Fatal(err)
	}
	chunk := pattern(1 << 20)
	for range benchFileSize >> 20 {
		f.Write(chunk)
	}
	f.Close()
	ino := e.walk(b, "big")
	rf := open(b, ino, unix.O_RDONLY)
	b.Cleanup(func() { rf.Release(); ino.Release() })
	return e, ino, rf
}

// BenchmarkRead64K reads a 64 MiB file sequentially in 64 KiB reads
// through the File (the vfs.File interface the VFS calls).
func BenchmarkRead64K(b *testing.B) {
	_, _, rf := benchFile(b)
	var f vfs.File = rf
	buf := make([]byte, 64<<10)
	dst := [][]byte{buf}
	off := int64(0)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := f.Read(nil, dst, off)
		if err != nil || n != len(buf) {
			b.Fatalf("read %d %v", n, err)
		}
		if off += int64(n); off >= benchFileSize {
			off = 0
		}
	}
}

// BenchmarkRead64KNative is the baseline: unix.Pread on the same host
// descriptor.
func BenchmarkRead64KNative(b *testing.B) {
	_, _, rf := benchFile(b)
	fd := rf.HostFD()
	buf := make([]byte, 64<<10)
	off := int64(0)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := unix.Pread(fd, buf, off)
		if err != nil || n != len(buf) {
			b.Fatalf("read %d %v", n, err)
		}
		if off += int64(n); off >= benchFileSize {
			off = 0
		}
	}
}

// BenchmarkRead64KCached is BenchmarkRead64K on a file with cached pages
// (mapped), where reads are served from the page cache.
func BenchmarkRead64KCached(b *testing.B) {
	_, _, rf := benchFile(b)
	m := mapFile(b, rf, false)
	defer m.DecRef()
	for off := uint64(0); off < benchFileSize; {
		_, n, err := m.Translate(off, benchFileSize-off, false)
		if err != nil {
			b.Fatal(err)
		}
		off += n
	}
	buf := make([]byte, 64<<10)
	dst := [][]byte{buf}
	off := int64(0)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := rf.Read(nil, dst, off)
		if err != nil || n != len(buf) {
			b.Fatalf("read %d %v", n, err)
		}
		if off += int64(n); off >= benchFileSize {
			off = 0
		}
	}
}

func benchTree(b *testing.B, mode CacheMode) *env {
	e := newEnv(b, "", Options{CacheMode: mode})
	mustWrite(b, e.path("usr/lib/x86_64-linux-gnu/gconv/libc.so"), []byte("x"))
	return e
}

var benchPath = []string{"usr", "lib", "x86_64-linux-gnu", "gconv", "libc.so"}

// BenchmarkWalk resolves one 5-component path in one round trip (the
// inodes are released each time, so nothing is cached).
func BenchmarkWalk(b *testing.B) {
	e := benchTree(b, Exclusive)
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.fs.root.LookupPath(nil, benchPath)
		if err != nil || len(res) != 5 {
			b.Fatal(err)
		}
		for _, r := range res {
			r.(*inode).Release()
		}
	}
}

// BenchmarkWalkCached is BenchmarkWalk while the VFS holds the inodes
// (Exclusive mode: no round trip).
func BenchmarkWalkCached(b *testing.B) {
	e := benchTree(b, Exclusive)
	held, err := e.fs.root.LookupPath(nil, benchPath)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.fs.root.LookupPath(nil, benchPath)
		if err != nil || len(res) != 5 {
			b.Fatal(err)
		}
		for _, r := range res {
			r.(*inode).Release()
		}
	}
	for _, r := range held {
		r.(*inode).Release()
	}
}

// BenchmarkStat stats a file: from the attribute cache in Exclusive mode,
// with a gofer round trip in Shared mode.
func BenchmarkStat(b *testing.B) {
	for _, mode := range []CacheMode{Exclusive, Shared} {
		b.Run(fmt.Sprint(mode), func(b *testing.B) {
			e := benchTree(b, mode)
			f := e.walk(b, "usr/lib/x86_64-linux-gnu/gconv/libc.so")
			defer f.Release()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Stat(nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
