// Package hostfile owns files the Sentry serves from host file descriptors
// it was given (runsc's stdin, stdout and stderr today; donated gofer FDs
// later). Blocking reads and writes wait in the Sentry, interruptibly, so a
// signal to the app is never stuck behind a host read.
package hostfile

import (
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
	"github.com/ringfence/ringfence/logging"
)

// File is a host fd the Sentry owns.
type File struct {
	fd      int
	regular bool // regular files never block; skip the readiness poll
	stream  bool // no positions: pipe, socket, terminal
	isTTY   bool
	flags   atomic.Int32
}

// settableFlags are the status flags F_SETFL may change.
const settableFlags = unix.O_APPEND | unix.O_NONBLOCK | unix.O_ASYNC | unix.O_DIRECT | unix.O_NOATIME

// Import takes a duplicate of host fd for the sandbox. The duplicate
// shares the host's open file description, so offsets and the terminal
// behave as they would for a child process.
func Import(hostFD int) (*File, error) {
	fd, err := unix.FcntlInt(uintptr(hostFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := &File{fd: fd}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil {
		f.regular = st.Mode&unix.S_IFMT == unix.S_IFREG
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFIFO, unix.S_IFSOCK:
			f.stream = true
		}
	}
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		f.isTTY, f.stream = true, true
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		fl = unix.O_RDWR
	}
	// The host description may be non-blocking for reasons of runsc's;
	// the app sees what it would have inherited, minus O_NONBLOCK, which
	// the Sentry emulates itself.
	f.flags.Store(int32(fl &^ unix.O_NONBLOCK))
	return f, nil
}

// HostFD exposes the fd (for tests).
func (f *File) HostFD() int { return f.fd }

func (f *File) nonblocking() bool { return f.flags.Load()&unix.O_NONBLOCK != 0 }

// wait blocks until the fd is ready for events, honouring O_NONBLOCK.
func (f *File) wait(t vfs.Context, events int16) error {
	if f.regular {
		return nil
	}
	if f.nonblocking() {
		fds := []unix.PollFd{{Fd: int32(f.fd), Events: events}}
		n, err := unix.Poll(fds, 0)
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.EAGAIN
		}
		return nil
	}
	return t.WaitHostFD(f.fd, events, -1)
}

// Read implements vfs.File.
func (f *File) Read(t vfs.Context, dst [][]byte, offset int64) (int, error) {
	if offset < 0 {
		if err := f.wait(t, unix.POLLIN); err != nil {
			return 0, err
		}
		return retryEINTR(func() (int, error) { return unix.Readv(f.fd, dst) })
	}
	return retryEINTR(func() (int, error) { return unix.Preadv(f.fd, dst, offset) })
}

// Write implements vfs.File.
func (f *File) Write(t vfs.Context, src [][]byte, offset int64) (int, error) {
	if offset < 0 {
		if err := f.wait(t, unix.POLLOUT); err != nil {
			return 0, err
		}
		return retryEINTR(func() (int, error) { return unix.Writev(f.fd, src) })
	}
	return retryEINTR(func() (int, error) { return unix.Pwritev(f.fd, src, offset) })
}

func retryEINTR(op func() (int, error)) (int, error) {
	for {
		n, err := op()
		if err != unix.EINTR {
			if n < 0 {
				n = 0
			}
			return n, err
		}
	}
}

// Stream implements vfs.File.
func (f *File) Stream() bool { return f.stream }

// Seek implements vfs.File.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	return unix.Seek(f.fd, offset, whence)
}

// Stat implements vfs.File.
func (f *File) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstat(f.fd, &st)
	return st, err
}

// Terminal ioctls passed through to a host tty.
const (
	tcgets     = 0x5401
	tcsets     = 0x5402
	tcsetsw    = 0x5403
	tcsetsf    = 0x5404
	tiocgwinsz = 0x5413
	tiocswinsz = 0x5414
	fionread   = 0x541b
	termiosLen = 36 // struct termios (kernel's, not glibc's)
	winsizeLen = 8
)

// Ioctl implements vfs.File.
func (f *File) Ioctl(t vfs.Context, cmd, arg uint64) (uint64, error) {
	switch cmd {
	case tcgets, tiocgwinsz:
		if !f.isTTY {
			return 0, unix.ENOTTY
		}
		n := termiosLen
		if cmd == tiocgwinsz {
			n = winsizeLen
		}
		var buf [termiosLen]byte
		if err := hostIoctl(f.fd, cmd, unsafe.Pointer(&buf[0])); err != nil {
			return 0, err
		}
		if _, err := t.MM().CopyOut(arg, buf[:n]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	case tcsets, tcsetsw, tcsetsf, tiocswinsz:
		if !f.isTTY {
			return 0, unix.ENOTTY
		}
		n := termiosLen
		if cmd == tiocswinsz {
			n = winsizeLen
		}
		var buf [termiosLen]byte
		if _, err := t.MM().CopyIn(arg, buf[:n]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, hostIoctl(f.fd, cmd, unsafe.Pointer(&buf[0]))
	case fionread:
		var n int32
		if err := hostIoctl(f.fd, cmd, unsafe.Pointer(&n)); err != nil {
			return 0, err
		}
		var b [4]byte
		*(*int32)(unsafe.Pointer(&b[0])) = n
		if _, err := t.MM().CopyOut(arg, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	}
	logging.WarnOnce("hostioctl-"+strconv.FormatUint(cmd, 16), "ioctl %#x on a host file is not supported; returning ENOTTY", cmd)
	return 0, unix.ENOTTY
}

func hostIoctl(fd int, cmd uint64, p unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(cmd), uintptr(p))
	if e != 0 {
		return e
	}
	return nil
}

// StatusFlags implements vfs.File.
func (f *File) StatusFlags() int { return int(f.flags.Load()) }

// SetStatusFlags implements vfs.File.
func (f *File) SetStatusFlags(flags int) {
	old := int(f.flags.Load())
	f.flags.Store(int32(old&^settableFlags | flags&settableFlags))
}

// Release implements vfs.File.
func (f *File) Release() { unix.Close(f.fd) }

var _ vfs.File = (*File)(nil)
