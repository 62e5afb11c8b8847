package tmpfs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// TestConcurrentData hammers one file with appends, positioned writes,
// reads, truncation, hole punching and mapping faults.
func TestConcurrentData(t *testing.T) {
	fs, mf := newFS(t, Options{})
	free0 := mf.FreeBytes()
	r, f := mustCreate(t, fs.Root(), "shared")
	const workers, iters = 8, 300
	var wg sync.WaitGroup
	// Appenders: each record must land whole, never interleaved.
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := bytes.Repeat([]byte{byte('A' + w)}, 100)
			for range iters {
				if n, err := f.Write(userCtx, [][]byte{rec[:50], rec[50:]}, -1); n != 100 || err != nil {
					t.Errorf("append %d %v", n, err)
					return
				}
			}
		}()
	}
	// Readers and a mapping faulting pages in.
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8192)
			for i := range iters {
				f.Read(userCtx, [][]byte{buf}, int64(i*100))
				r.Translate(uint64(i%8)*4096, 4096, i%2 == 0)
				f.Seek(0, unix.SEEK_HOLE)
				stat(t, r)
			}
		}()
	}
	wg.Wait()
	a := stat(t, r)
	if a.Size != workers*iters*100 {
		t.Fatalf("size %d after appends", a.Size)
	}
	data := mustRead(t, f, 0, int(a.Size))
	for i := 0; i < len(data); i += 100 {
		if !bytes.Equal(data[i:i+100], bytes.Repeat(data[i:i+1], 100)) {
			t.Fatalf("record at %d torn", i)
		}
	}

	// Now shrink, punch and write against each other, with a mapping.
	ms := &fakeMS{}
	r.IncRef()
	r.AddMapping(ms, 0x10000, 0, 64*4096, true)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			buf := make([]byte, 10000)
			for range iters {
				off := rng.Int64N(200000)
				switch rng.IntN(5) {
				case 0:
					r.SetAttr(userCtx, &vfs.SetAttr{Mask: vfs.SetSize, Size: off})
				case 1:
					f.(vfs.Allocator).Allocate(userCtx, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, 9000)
				case 2:
					f.Write(userCtx, [][]byte{buf[:rng.IntN(len(buf))]}, off)
				case 3:
					f.Read(userCtx, [][]byte{buf}, off)
				case 4:
					r.Translate(uint64(off)&^4095, 8192, true)
				}
			}
		}()
	}
	wg.Wait()
	r.RemoveMapping(ms, 0x10000, 0, 64*4096, true)
	r.DecRef()
	fs.Root().Unlink(userCtx, "shared")
	f.Release()
	if mf.FreeBytes() != free0 || fs.UsedBytes() != 0 {
		t.Fatalf("leaked %d bytes (used %d)", free0-mf.FreeBytes(), fs.UsedBytes())
	}
}

// TestConcurrentNamespace runs creates, links, renames (also of
// directories across each other's subtrees), removals and listings at
// once, then checks the tree is consistent. A lock-order bug deadlocks
// here; the watchdog turns that into a failure.
func TestConcurrentNamespace(t *testing.T) {
	fs, mf := newFS(t, Options{})
	free0 := mf.FreeBytes()
	root := rootDir(fs)
	var dirsMu sync.Mutex
	dirs := []*dir{root}
	for i := range 4 {
		dirs = append(dirs, mustMkdir(t, root, fmt.Sprintf("d%d", i)))
	}
	pick := func(rng *rand.Rand) *dir {
		dirsMu.Lock()
		defer dirsMu.Unlock()
		return dirs[rng.IntN(len(dirs))]
	}
	const workers, iters = 8, 1500
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for range iters {
				d := pick(rng)
				name := fmt.Sprintf("n%d", rng.IntN(6))
				switch rng.IntN(10) {
				case 0:
					if in, f, err := d.Create(userCtx, name, 0644, unix.O_RDWR); err == nil {
						f.Write(userCtx, [][]byte{[]byte("data")}, 0)
						if rng.IntN(2) == 0 {
							d.Unlink(userCtx, name)
						}
						f.Release()
						_ = in
					}
				case 1:
					if in, err := d.Mkdir(userCtx, name, 0755); err == nil {
						dirsMu.Lock()
						dirs = append(dirs, in.(*dir))
						dirsMu.Unlock()
					}
				case 2:
					d.Unlink(userCtx, name)
				case 3:
					d.Rmdir(userCtx, name)
				case 4, 5:
					nd := pick(rng)
					flags := []uint32{0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE}[rng.IntN(3)]
					d.Rename(userCtx, name, nd, fmt.Sprintf("n%d", rng.IntN(6)), flags)
				case 6:
					if in, err := d.Lookup(userCtx, name); err == nil {
						pick(rng).Link(userCtx, fmt.Sprintf("n%d", rng.IntN(6)), in)
					}
				case 7:
					d.IterDir(userCtx, 0, func(de vfs.Dirent) bool { return true })
				case 8:
					if rng.IntN(2) == 0 {
						d.Symlink(userCtx, name, "t")
					} else {
						d.Mknod(userCtx, name, unix.S_IFIFO|0600, 0)
					}
				case 9:
					if in, err := d.Lookup(userCtx, name); err == nil {
						in.Stat(userCtx)
						in.Setxattr(userCtx, "user.x", []byte("v"), 0)
					}
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("namespace operations deadlocked")
	}

	// Every live directory: nlink = 2 + subdirectories, parent pointers
	// agree with where it is named; every reachable inode once per name.
	links := map[*inode]uint64{}
	var walk func(d *dir)
	walk = func(d *dir) {
		var sub uint64
		for name, de := range d.names {
			if de.name != name || de.gone {
				t.Fatalf("bad entry %q", name)
			}
			links[de.child.base()]++
			if c, ok := de.child.(*dir); ok {
				sub++
				if c.parent != d {
					t.Fatalf("dir %q has the wrong parent", name)
				}
				walk(c)
			}
		}
		if d.nlink != 2+sub || d.dead {
			t.Fatalf("dir nlink %d with %d subdirs (dead %v)", d.nlink, sub, d.dead)
		}
	}
	walk(root)
	for in, n := range links {
		if in.ftype != unix.S_IFDIR && in.nlink != n {
			t.Fatalf("inode %d nlink %d, named %d times", in.ino, in.nlink, n)
		}
	}
	fs.Release()
	if mf.FreeBytes() != free0 || fs.UsedBytes() != 0 || fs.inodes.Load() != 0 {
		t.Fatalf("after release: leaked %d bytes, %d inodes", free0-mf.FreeBytes(), fs.inodes.Load())
	}
}
