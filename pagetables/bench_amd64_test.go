package pagetables

import "testing"

// benchMapUnmap maps and unmaps [virt, virt+length) repeatedly. If
// neighbour is non-zero, a page mapped there keeps the tables it shares
// with the range alive.
func benchMapUnmap(b *testing.B, opts Options, virt, phys, length, neighbour uint64) {
	a := newTestAlloc(b, 64)
	pt := newTestPT(b, a, opts)
	if neighbour != 0 {
		if _, err := pt.Map(neighbour, 0x1000, PageSize, rw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pt.Map(virt, phys, length, rwu); err != nil {
			b.Fatal(err)
		}
		if flush, err := pt.Unmap(virt, length); err != nil || !flush {
			b.Fatal(flush, err)
		}
	}
}

// BenchmarkMapUnmap4K maps and unmaps one 4 KiB page, with its PT (and
// the tables above) kept alive by a neighbouring page (warm), or with
// PDPT, PD and PT allocated, zeroed and freed every time (cold).
func BenchmarkMapUnmap4K(b *testing.B) {
	b.Run("warm", func(b *testing.B) { benchMapUnmap(b, Options{}, 0x40_0000, 0x10_0000, PageSize, 0x40_1000) })
	b.Run("cold", func(b *testing.B) { benchMapUnmap(b, Options{}, 0x40_0000, 0x10_0000, PageSize, 0) })
}

// BenchmarkMapUnmap2M maps and unmaps a 2 MiB aligned range as one PDE
// leaf (large) or as 512 PTEs (4K-pages, which also allocates and frees
// the PT); a page 4 MiB away keeps the PD alive.
func BenchmarkMapUnmap2M(b *testing.B) {
	b.Run("large", func(b *testing.B) {
		benchMapUnmap(b, Options{LargePages: true}, 0x40_0000, 0x20_0000, 2*mib, 0x80_0000)
	})
	b.Run("4K-pages", func(b *testing.B) { benchMapUnmap(b, Options{}, 0x40_0000, 0x20_0000, 2*mib, 0x80_0000) })
}
