package goferfs

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIovecs is how many buffers one vectored system call takes. The iovec
// array lives on the stack, so I/O with any number of buffers allocates
// nothing; more than maxIovecs buffers cost one system call per group.
const maxIovecs = 16

// fillIovecs loads up to maxIovecs non-empty buffers from bufs into iov. It
// returns the count, their total length and how many entries of bufs were
// consumed.
func fillIovecs(iov *[maxIovecs]unix.Iovec, bufs [][]byte) (cnt, total, used int) {
	for used < len(bufs) && cnt < maxIovecs {
		b := bufs[used]
		used++
		if len(b) == 0 {
			continue
		}
		iov[cnt].Base = &b[0]
		iov[cnt].SetLen(len(b))
		total += len(b)
		cnt++
	}
	return cnt, total, used
}

// vectored runs the vectored system call nr (preadv, pwritev, readv or
// writev) over bufs, from offset off when positioned. It stops at the first
// short transfer (end of file, a full pipe) and returns the bytes moved;
// an error is returned only if nothing was moved.
func vectored(nr uintptr, fd int, bufs [][]byte, off int64, positioned bool) (int, error) {
	var iov [maxIovecs]unix.Iovec
	done := 0
	for len(bufs) > 0 {
		cnt, want, used := fillIovecs(&iov, bufs)
		bufs = bufs[used:]
		if cnt == 0 {
			break
		}
		var r uintptr
		var e syscall.Errno
		for {
			if positioned {
				// The high word of the offset is unused on 64-bit.
				r, _, e = syscall.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt), uintptr(off), 0, 0)
			} else {
				r, _, e = syscall.Syscall(nr, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
			}
			if e != unix.EINTR {
				break
			}
		}
		if e != 0 {
			if done > 0 {
				return done, nil
			}
			return 0, e
		}
		done += int(r)
		off += int64(r)
		if int(r) < want {
			break
		}
	}
	return done, nil
}

func preadv(fd int, bufs [][]byte, off int64) (int, error) {
	return vectored(unix.SYS_PREADV, fd, bufs, off, true)
}

func pwritev(fd int, bufs [][]byte, off int64) (int, error) {
	return vectored(unix.SYS_PWRITEV, fd, bufs, off, true)
}

func readv(fd int, bufs [][]byte) (int, error) {
	return vectored(unix.SYS_READV, fd, bufs, 0, false)
}

func writev(fd int, bufs [][]byte) (int, error) {
	return vectored(unix.SYS_WRITEV, fd, bufs, 0, false)
}

// preadFull reads into p at off until p is full or end of file.
func preadFull(fd int, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// pwriteFull writes all of p at off.
func pwriteFull(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		m, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if m == 0 {
			return unix.EIO
		}
		p, off = p[m:], off+int64(m)
	}
	return nil
}

// cursor walks a list of buffers as one byte stream.
type cursor struct {
	bufs [][]byte
	i    int // current buffer
	off  int // offset in it
}

// next returns the next contiguous piece of at most max bytes (nil at the
// end) and advances past it.
func (c *cursor) next(max int) []byte {
	for c.i < len(c.bufs) && c.off == len(c.bufs[c.i]) {
		c.i++
		c.off = 0
	}
	if c.i == len(c.bufs) || max <= 0 {
		return nil
	}
	b := c.bufs[c.i][c.off:]
	if len(b) > max {
		b = b[:max]
	}
	c.off += len(b)
	return b
}

// skip advances n bytes.
func (c *cursor) skip(n int) {
	for n > 0 {
		b := c.next(n)
		if b == nil {
			return
		}
		n -= len(b)
	}
}

func totalLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}
