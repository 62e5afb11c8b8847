package tmpfs

import (
	"testing"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

const (
	benchChunk = 64 << 10
	benchFile  = 16 << 20
)

// benchFileOf makes a fully allocated file, so that the loop measures the
// steady path (no allocation of pages).
func benchFileOf(b *testing.B) vfs.File {
	fs, _ := newFS(b, Options{})
	_, f := mustCreate(b, fs.Root(), "bench")
	b.Cleanup(f.Release)
	mustWrite(b, f, 0, make([]byte, benchFile))
	return f
}

func BenchmarkWrite64K(b *testing.B) {
	f := benchFileOf(b)
	src := [][]byte{make([]byte, benchChunk)}
	b.ReportAllocs()
	b.SetBytes(benchChunk)
	var off int64
	for b.Loop() {
		if _, err := f.Write(userCtx, src, off); err != nil {
			b.Fatal(err)
		}
		off = (off + benchChunk) % benchFile
	}
}

func BenchmarkRead64K(b *testing.B) {
	f := benchFileOf(b)
	dst := [][]byte{make([]byte, benchChunk)}
	b.ReportAllocs()
	b.SetBytes(benchChunk)
	var off int64
	for b.Loop() {
		if _, err := f.Read(userCtx, dst, off); err != nil {
			b.Fatal(err)
		}
		off = (off + benchChunk) % benchFile
	}
}

// BenchmarkRead64KParallel shows reads of one file do not serialise.
func BenchmarkRead64KParallel(b *testing.B) {
	f := benchFileOf(b)
	b.ReportAllocs()
	b.SetBytes(benchChunk)
	b.RunParallel(func(pb *testing.PB) {
		dst := [][]byte{make([]byte, benchChunk)}
		var off int64
		for pb.Next() {
			f.Read(userCtx, dst, off)
			off = (off + benchChunk) % benchFile
		}
	})
}

// BenchmarkAppend4K measures the allocating path: appends fill new pages.
func BenchmarkAppend4K(b *testing.B) {
	fs, _ := newFS(b, Options{})
	r, f := mustCreate(b, fs.Root(), "append")
	defer f.Release()
	src := [][]byte{make([]byte, 4096)}
	b.ReportAllocs()
	b.SetBytes(4096)
	for i := 0; b.Loop(); i++ {
		if i%4096 == 0 {
			b.StopTimer()
			r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize})
			b.StartTimer()
		}
		if _, err := f.Write(userCtx, src, -1); err != nil {
			b.Fatal(err)
		}
	}
}
