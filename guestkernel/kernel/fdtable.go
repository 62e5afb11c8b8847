package kernel

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// File is an open file as system calls see it (the VFS's contract).
type File = vfs.File

// FileDescription is a reference-counted open file, shared by dup'd fds.
type FileDescription = vfs.FileDescription

// NewFileDescription wraps f with one reference.
func NewFileDescription(f File) *FileDescription { return vfs.NewFileDescription(f) }

type fdEntry struct {
	d       *FileDescription
	cloexec bool
}

// FDTable maps descriptors to open files.
type FDTable struct {
	mu      sync.Mutex
	entries []fdEntry
}

// NewFDTable makes an empty table.
func NewFDTable() *FDTable { return &FDTable{} }

// Get returns fd's file with a reference the caller must DecRef.
func (ft *FDTable) Get(fd int32) (*FileDescription, bool) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if fd < 0 || int(fd) >= len(ft.entries) || ft.entries[fd].d == nil {
		return nil, false
	}
	d := ft.entries[fd].d
	d.IncRef()
	return d, true
}

// Install puts d at the lowest free fd >= min, below limit. It takes its
// own reference.
func (ft *FDTable) Install(d *FileDescription, min int32, cloexec bool, limit uint64) (int32, error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	fd := min
	for int(fd) < len(ft.entries) && ft.entries[fd].d != nil {
		fd++
	}
	if uint64(fd) >= limit {
		return -1, unix.EMFILE
	}
	ft.setLocked(fd, d, cloexec)
	return fd, nil
}

// InstallAt puts d at fd, closing what was there (dup2). It takes its own
// reference on d; the caller keeps its own.
func (ft *FDTable) InstallAt(fd int32, d *FileDescription, cloexec bool) (int32, error) {
	if fd < 0 {
		return -1, unix.EBADF
	}
	ft.mu.Lock()
	old := ft.setLocked(fd, d, cloexec)
	ft.mu.Unlock()
	if old != nil {
		old.DecRef()
	}
	return fd, nil
}

func (ft *FDTable) setLocked(fd int32, d *FileDescription, cloexec bool) *FileDescription {
	for int(fd) >= len(ft.entries) {
		ft.entries = append(ft.entries, fdEntry{})
	}
	d.IncRef()
	old := ft.entries[fd].d
	ft.entries[fd] = fdEntry{d: d, cloexec: cloexec}
	return old
}

// Remove closes fd.
func (ft *FDTable) Remove(fd int32) error {
	d, err := ft.Take(fd)
	if err == nil {
		d.DecRef()
	}
	return err
}

// Take removes fd from the table and hands its reference to the caller.
func (ft *FDTable) Take(fd int32) (*FileDescription, error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if fd < 0 || int(fd) >= len(ft.entries) || ft.entries[fd].d == nil {
		return nil, unix.EBADF
	}
	d := ft.entries[fd].d
	ft.entries[fd] = fdEntry{}
	return d, nil
}

// CloseRange closes fds in [first, last].
func (ft *FDTable) CloseRange(first, last uint32) {
	ft.mu.Lock()
	var closing []*FileDescription
	for fd := uint64(first); fd <= uint64(last) && fd < uint64(len(ft.entries)); fd++ {
		if d := ft.entries[fd].d; d != nil {
			closing = append(closing, d)
			ft.entries[fd] = fdEntry{}
		}
	}
	ft.mu.Unlock()
	for _, d := range closing {
		d.DecRef()
	}
}

// CloseAll closes everything (process exit).
func (ft *FDTable) CloseAll() { ft.CloseRange(0, ^uint32(0)) }

// Cloexec reports fd's close-on-exec flag.
func (ft *FDTable) Cloexec(fd int32) (bool, error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if fd < 0 || int(fd) >= len(ft.entries) || ft.entries[fd].d == nil {
		return false, unix.EBADF
	}
	return ft.entries[fd].cloexec, nil
}

// SetCloexec sets fd's close-on-exec flag.
func (ft *FDTable) SetCloexec(fd int32, v bool) error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if fd < 0 || int(fd) >= len(ft.entries) || ft.entries[fd].d == nil {
		return unix.EBADF
	}
	ft.entries[fd].cloexec = v
	return nil
}

// FDInfo is one open descriptor, as /proc/PID/fd lists it.
type FDInfo struct {
	FD      int32
	File    *FileDescription // with a reference the caller must DecRef
	Cloexec bool
}

// Snapshot lists the open descriptors in increasing order.
func (ft *FDTable) Snapshot() []FDInfo {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var out []FDInfo
	for i, e := range ft.entries {
		if e.d != nil {
			e.d.IncRef()
			out = append(out, FDInfo{FD: int32(i), File: e.d, Cloexec: e.cloexec})
		}
	}
	return out
}
