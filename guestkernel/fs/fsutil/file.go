package fsutil

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// File is a regular file whose content is generated when it is opened: each
// open file reads one snapshot, so a program reading it in pieces sees
// consistent text, and a fresh open sees fresh state.
type File struct {
	vfs.NoOps
	Node
	// Data generates the content.
	Data func(ctx vfs.Context) ([]byte, error)
	// Write, if set, receives each write(2)'s data whole, whatever the
	// offset, as procfs's writable files do. If nil the file is
	// read-only: opening it for writing fails with EACCES, even for root
	// (as sysfs refuses a file without a store method).
	Write func(ctx vfs.Context, data []byte) error
}

// NewFile makes a generated file.
func NewFile(n Node, data func(ctx vfs.Context) ([]byte, error)) *File {
	f := &File{Node: n, Data: data}
	f.Mode = unix.S_IFREG | n.Mode&07777
	return f
}

// NewStaticFile makes a file with fixed content.
func NewStaticFile(n Node, content string) *File {
	return NewFile(n, func(vfs.Context) ([]byte, error) { return []byte(content), nil })
}

// Stat implements vfs.Inode.
func (f *File) Stat(vfs.Context) (vfs.Attr, error) { return f.attr(1), nil }

// SetAttr implements vfs.Inode.
func (f *File) SetAttr(_ vfs.Context, req *vfs.SetAttr) error {
	return f.setAttr(req, f.Write != nil)
}

// StatFS implements vfs.Inode.
func (f *File) StatFS(vfs.Context) (unix.Statfs_t, error) { return f.statFS() }

// Open implements vfs.Inode.
func (f *File) Open(ctx vfs.Context, flags int) (vfs.File, error) {
	acc := flags & unix.O_ACCMODE
	if acc != unix.O_RDONLY && f.Write == nil {
		return nil, unix.EACCES
	}
	s := &snapshot{write: f.Write}
	if acc != unix.O_WRONLY {
		data, err := f.Data(ctx)
		if err != nil {
			return nil, err
		}
		s.data = data
	}
	return vfs.NewRegularFile(f, s, flags), nil
}

// snapshot is the data of one open generated file.
type snapshot struct {
	data  []byte
	write func(ctx vfs.Context, data []byte) error
}

func (s *snapshot) ReadAt(_ vfs.Context, dst [][]byte, offset int64) (int, error) {
	if offset >= int64(len(s.data)) {
		return 0, nil
	}
	src := s.data[offset:]
	n := 0
	for _, b := range dst {
		c := copy(b, src)
		n += c
		src = src[c:]
		if len(src) == 0 {
			break
		}
	}
	return n, nil
}

func (s *snapshot) WriteAt(ctx vfs.Context, src [][]byte, _ int64) (int, error) {
	if s.write == nil {
		return 0, unix.EBADF
	}
	var data []byte
	if len(src) == 1 {
		data = src[0]
	} else {
		for _, b := range src {
			data = append(data, b...)
		}
	}
	if err := s.write(ctx, data); err != nil {
		return 0, err
	}
	return len(data), nil
}

func (s *snapshot) Size(vfs.Context) (int64, error) { return int64(len(s.data)), nil }

// Symlink is a symbolic link whose target is computed at each readlink
// (/proc/self names the caller).
type Symlink struct {
	vfs.NoOps
	Node
	Target func(ctx vfs.Context) (string, error)
}

// NewSymlink makes a symlink with a fixed target.
func NewSymlink(n Node, target string) *Symlink {
	return NewDynamicSymlink(n, func(vfs.Context) (string, error) { return target, nil })
}

// NewDynamicSymlink makes a symlink whose target target computes.
func NewDynamicSymlink(n Node, target func(ctx vfs.Context) (string, error)) *Symlink {
	l := &Symlink{Node: n, Target: target}
	l.Mode = unix.S_IFLNK | n.Mode&07777
	return l
}

// Stat implements vfs.Inode.
func (l *Symlink) Stat(vfs.Context) (vfs.Attr, error) { return l.attr(1), nil }

// SetAttr implements vfs.Inode.
func (l *Symlink) SetAttr(_ vfs.Context, req *vfs.SetAttr) error { return l.setAttr(req, false) }

// StatFS implements vfs.Inode.
func (l *Symlink) StatFS(vfs.Context) (unix.Statfs_t, error) { return l.statFS() }

// Readlink implements vfs.Inode.
func (l *Symlink) Readlink(ctx vfs.Context) (string, error) { return l.Target(ctx) }

// MagicLink is a /proc link to an object rather than a path: readlink
// shows Target's text, but following it goes to what Resolve returns
// (vfs.MagicLink), even if the text names nothing reachable.
type MagicLink struct {
	vfs.NoOps
	Node
	Target  func(ctx vfs.Context) (string, error)
	Resolve func(ctx vfs.Context) (vfs.VirtualDentry, error)
}

// NewMagicLink makes a magic link.
func NewMagicLink(n Node, text func(ctx vfs.Context) (string, error), resolve func(ctx vfs.Context) (vfs.VirtualDentry, error)) *MagicLink {
	l := &MagicLink{Node: n, Target: text, Resolve: resolve}
	l.Mode = unix.S_IFLNK | n.Mode&07777
	return l
}

// Stat implements vfs.Inode.
func (l *MagicLink) Stat(vfs.Context) (vfs.Attr, error) { return l.attr(1), nil }

// SetAttr implements vfs.Inode.
func (l *MagicLink) SetAttr(_ vfs.Context, req *vfs.SetAttr) error { return l.setAttr(req, false) }

// StatFS implements vfs.Inode.
func (l *MagicLink) StatFS(vfs.Context) (unix.Statfs_t, error) { return l.statFS() }

// Readlink implements vfs.Inode.
func (l *MagicLink) Readlink(ctx vfs.Context) (string, error) { return l.Target(ctx) }

// Follow implements vfs.MagicLink.
func (l *MagicLink) Follow(ctx vfs.Context) (vfs.VirtualDentry, error) { return l.Resolve(ctx) }
