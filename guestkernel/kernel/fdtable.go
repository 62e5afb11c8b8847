package kernel

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// File is an open file as system calls see it. Offsets < 0 mean "at the
// file's own position".
type File interface {
	Read(t *Task, dst [][]byte, offset int64) (int, error)
	Write(t *Task, src [][]byte, offset int64) (int, error)
	Seek(offset int64, whence int) (int64, error)
	Stat() (unix.Stat_t, error)
	Ioctl(t *Task, cmd, arg uint64) (uint64, error)
	// Stream reports a file without positions (pipe, socket, terminal):
	// pread, pwrite and lseek fail on it with ESPIPE.
	Stream() bool
	// StatusFlags are the open file description's flags (O_ACCMODE,
	// O_APPEND, O_NONBLOCK, ...).
	StatusFlags() int
	// SetStatusFlags changes the settable flags (F_SETFL).
	SetStatusFlags(flags int)
	// Release frees the file when its last descriptor closes.
	Release()
}

// FileDescription is a reference-counted open file, shared by dup'd fds.
type FileDescription struct {
	File
	refs atomic.Int64
}

// NewFileDescription wraps f with one reference.
func NewFileDescription(f File) *FileDescription {
	d := &FileDescription{File: f}
	d.refs.Store(1)
	return d
}

// IncRef takes a reference.
func (d *FileDescription) IncRef() { d.refs.Add(1) }

// DecRef drops a reference, releasing the file on the last.
func (d *FileDescription) DecRef() {
	if d.refs.Add(-1) == 0 {
		d.File.Release()
	}
}

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
	ft.mu.Lock()
	if fd < 0 || int(fd) >= len(ft.entries) || ft.entries[fd].d == nil {
		ft.mu.Unlock()
		return unix.EBADF
	}
	d := ft.entries[fd].d
	ft.entries[fd] = fdEntry{}
	ft.mu.Unlock()
	d.DecRef()
	return nil
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
