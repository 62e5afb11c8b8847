// Package memfile owns the sandbox's memory file: one memfd that backs all
// app memory, mapped once into the Sentry so that copy-in and copy-out are
// plain memory copies, and an allocator of its (sparse) offset space.
//
// The file is large and sparse: offsets are reserved cheaply and host
// memory is committed only when a page is first touched; Free and Decommit
// punch holes to give the memory back.
package memfile

import (
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// PageSize is the host and app page size.
const PageSize = 4096

// DefaultSize is the offset space of a sandbox's memory file. It costs no
// memory until used.
const DefaultSize = 1 << 40

// File is one memory file.
type File struct {
	fd      int
	size    uint64
	mapping []byte

	mu   sync.Mutex
	free []extent // sorted, non-adjacent free offset ranges
}

type extent struct{ start, end uint64 }

// New creates a memory file of size bytes and maps it into the Sentry.
func New(size uint64) (*File, error) {
	fd, err := unix.MemfdCreate("ringfence-memory", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memory file: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("memory file: sizing to %d bytes: %w", size, err)
	}
	m, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("memory file: mapping into the Sentry: %w", err)
	}
	return &File{fd: fd, size: size, mapping: m, free: []extent{{0, size}}}, nil
}

// FD is the memfd; platforms map ranges of it.
func (f *File) FD() int { return f.fd }

// Size is the file's offset space.
func (f *File) Size() uint64 { return f.size }

// Close unmaps and closes the file.
func (f *File) Close() error {
	unix.Munmap(f.mapping)
	return unix.Close(f.fd)
}

// Allocate reserves length bytes (page aligned) of offsets, first fit.
func (f *File) Allocate(length uint64) (uint64, error) {
	length = roundUp(length)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range f.free {
		if e.end-e.start >= length {
			off := e.start
			if e.end-e.start == length {
				f.free = append(f.free[:i], f.free[i+1:]...)
			} else {
				f.free[i].start += length
			}
			return off, nil
		}
	}
	return 0, fmt.Errorf("memory file: no room for %d bytes: %w", length, unix.ENOMEM)
}

// AllocateAt reserves exactly [off, off+length) if it is free.
func (f *File) AllocateAt(off, length uint64) bool {
	length = roundUp(length)
	end := off + length
	f.mu.Lock()
	defer f.mu.Unlock()
	i := sort.Search(len(f.free), func(i int) bool { return f.free[i].end > off })
	if i == len(f.free) || f.free[i].start > off || f.free[i].end < end {
		return false
	}
	e := f.free[i]
	switch {
	case e.start == off && e.end == end:
		f.free = append(f.free[:i], f.free[i+1:]...)
	case e.start == off:
		f.free[i].start = end
	case e.end == end:
		f.free[i].end = off
	default:
		f.free = append(f.free, extent{})
		copy(f.free[i+2:], f.free[i+1:])
		f.free[i] = extent{e.start, off}
		f.free[i+1] = extent{end, e.end}
	}
	return true
}

// Free returns [off, off+length) to the allocator and releases its memory.
func (f *File) Free(off, length uint64) {
	length = roundUp(length)
	if length == 0 {
		return
	}
	f.Decommit(off, length)
	end := off + length
	f.mu.Lock()
	defer f.mu.Unlock()
	i := sort.Search(len(f.free), func(i int) bool { return f.free[i].start >= off })
	// Merge with the previous and next extents where adjacent.
	mergePrev := i > 0 && f.free[i-1].end == off
	mergeNext := i < len(f.free) && f.free[i].start == end
	switch {
	case mergePrev && mergeNext:
		f.free[i-1].end = f.free[i].end
		f.free = append(f.free[:i], f.free[i+1:]...)
	case mergePrev:
		f.free[i-1].end = end
	case mergeNext:
		f.free[i].start = off
	default:
		f.free = append(f.free, extent{})
		copy(f.free[i+1:], f.free[i:])
		f.free[i] = extent{off, end}
	}
}

// Decommit releases the memory behind [off, off+length) without freeing
// the offsets: the range reads as zeros afterwards.
func (f *File) Decommit(off, length uint64) {
	unix.Fallocate(f.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(length))
}

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14).
const madvPopulateWrite = 23

// Populate commits and maps [off, off+length) in the Sentry's view in one
// call, for memory about to be written: one fault per page costs far more
// (each is an exit on a virtualised host). Best effort: older kernels
// simply fault later.
func (f *File) Populate(off, length uint64) {
	unix.Madvise(f.mapping[off:off+length:off+length], madvPopulateWrite)
}

// Slice returns the Sentry's view of [off, off+length).
func (f *File) Slice(off, length uint64) []byte {
	return f.mapping[off : off+length : off+length]
}

// FreeBytes reports how much offset space is unreserved (for tests).
func (f *File) FreeBytes() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n uint64
	for _, e := range f.free {
		n += e.end - e.start
	}
	return n
}

func roundUp(n uint64) uint64 { return (n + PageSize - 1) &^ (PageSize - 1) }
