package mm

import "errors"

// ErrPastEOF is what Translate returns for a page wholly past the end of
// a file: the app gets SIGBUS, as on Linux.
var ErrPastEOF = errors.New("mapping past the end of the file")

// Mappable is file data that can back a VMA: tmpfs files (whose data lives
// in the memory file already) and cached remote files (whose pages a page
// cache fills from the host). It is implemented by filesystems and knows
// nothing of VMAs. It must be comparable (a pointer): VMAs of the same
// Mappable at contiguous offsets merge.
//
// Locking: the memory manager may call any method with its own lock held,
// so a Mappable must not call into the MM (other than Invalidate) from
// them. Invalidate is safe with the Mappable's locks held.
type Mappable interface {
	// Translate returns the memory-file offset backing file offset off
	// (page aligned) and how many bytes from there are contiguous (at
	// least one page, at most length). forWrite says a shared writable
	// mapping is about to write: the pages returned become dirty and are
	// written back by the file's own flushing. Pages past the end of the
	// file fail with ErrPastEOF; any other error gives the app SIGBUS too.
	//
	// The memory manager may pass a long length (up to the rest of the
	// VMA) to learn how much it can install at once: a Mappable should
	// provide the first page and report what follows it contiguously
	// already, not fill all of length. (A fault then translates the rest
	// of its 64 KiB window; with forWrite it asks only within that
	// window.)
	Translate(off, length uint64, forWrite bool) (memOff uint64, n uint64, err error)
	// AddMapping records that ms maps file range [off, off+length) at
	// addr, so that truncation can take the pages away again. writable
	// means a shared mapping that may write the file (whatever its current
	// protection); private mappings are never writable here.
	//
	// The records of one ms mirror its VMAs: a VMA that is split, merged,
	// grown or moved has its new ranges added before its old one is
	// removed, so a truncation never misses a mapped range. Records may
	// therefore overlap for a moment (invalidating twice is harmless), and
	// two may share an addr with different lengths.
	AddMapping(ms MappingSpace, addr, off, length uint64, writable bool)
	// RemoveMapping undoes the AddMapping with exactly these arguments.
	RemoveMapping(ms MappingSpace, addr, off, length uint64, writable bool)
	// IncRef and DecRef keep the file alive while a VMA maps it (one
	// reference per VMA).
	IncRef()
	DecRef()
}

// MappingSpace is an address space that maps a Mappable; *MM is one.
type MappingSpace interface {
	// Invalidate drops the platform mappings of [addr, addr+length), so
	// the next access faults and translates again (after truncation, or
	// when a page cache evicts a page). Call it after Translate would no
	// longer return the old pages and before reusing them; it may be
	// called from any goroutine with the Mappable's locks held (it takes
	// only a leaf lock of the MM). Private copies of the pages survive.
	Invalidate(addr, length uint64)
}

// MappableSyncer is an optional interface of a Mappable that can write
// back a range of its data: msync(MS_SYNC) of a shared mapping calls it,
// without the MM's lock held.
type MappableSyncer interface {
	SyncRange(off, length uint64) error
}
