package proto

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrTooManyFDs is returned when more than MaxFDs descriptors would be
// attached to (or arrive with) one message.
var ErrTooManyFDs = errors.New("proto: too many file descriptors")

// Conn sends and receives framed messages, with attached file descriptors,
// over a connected AF_UNIX socket.
//
// Concurrency: Send and Recv each take their own mutex, so one goroutine
// may send while another receives, and concurrent calls of the same method
// are serialized (whole messages never interleave). Close may be called at
// any time and unblocks pending calls.
//
// Errors from Recv that leave the stream out of sync (I/O errors, EOF, a
// header with an invalid length) are sticky: every later Recv returns the
// same error. A message with a valid header but an undecodable payload is
// consumed, its descriptors closed and the error returned; the connection
// remains usable.
type Conn struct {
	uc *net.UnixConn
	rc syscall.RawConn

	sendMu sync.Mutex
	sbuf   []byte
	enc    Buffer
	// State for sendFn, preallocated so Send does not allocate a closure.
	sendFn func(fd uintptr) bool
	sp     []byte
	soob   []byte
	sn     int
	serr   error

	recvMu sync.Mutex
	rbuf   []byte
	dec    Reader
	rmsg   unix.Msghdr
	riov   unix.Iovec
	oob    []byte
	rerr   error
	// State for recvFn, preallocated so Recv does not allocate a closure.
	recvFn func(fd uintptr) bool
	rp     []byte
	rn     int
	roobn  int
	rflags int
	rerrno error
}

// NewConn wraps uc. The Conn owns uc from now on.
func NewConn(uc *net.UnixConn) (*Conn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &Conn{
		uc:   uc,
		rc:   rc,
		rbuf: make([]byte, HeaderSize, 4096),
		oob:  make([]byte, unix.CmsgSpace(MaxFDs*4)),
	}
	c.sendFn = func(fd uintptr) bool {
		c.sn, c.serr = unix.SendmsgN(int(fd), c.sp, c.soob, nil, unix.MSG_NOSIGNAL)
		return c.serr != unix.EAGAIN
	}
	c.recvFn = func(fd uintptr) bool {
		// A hand-rolled recvmsg with the msghdr kept in the Conn, so the
		// steady-state receive path does not allocate.
		c.riov.Base = &c.rp[0]
		c.riov.SetLen(len(c.rp))
		c.rmsg = unix.Msghdr{Iov: &c.riov, Control: &c.oob[0]}
		c.rmsg.SetIovlen(1)
		c.rmsg.SetControllen(len(c.oob))
		n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.rmsg)), unix.MSG_CMSG_CLOEXEC)
		c.rerrno = nil
		if e != 0 {
			c.rerrno = e
		}
		c.rn, c.roobn, c.rflags = int(n), int(c.rmsg.Controllen), int(c.rmsg.Flags)
		c.riov.Base, c.rmsg.Iov, c.rmsg.Control = nil, nil, nil
		return e != unix.EAGAIN
	}
	return c, nil
}

// Close closes the underlying socket.
func (c *Conn) Close() error { return c.uc.Close() }

// Send encodes m with tag and writes it, attaching fds (at most MaxFDs) via
// SCM_RIGHTS. The caller keeps ownership of fds and may close them once
// Send returns.
func (c *Conn) Send(tag uint32, m Message, fds []int) error {
	if len(fds) > MaxFDs {
		return ErrTooManyFDs
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	b, err := c.enc.appendMessage(c.sbuf[:0], tag, m)
	if err != nil {
		return err
	}
	c.sbuf = b
	c.soob = nil
	if len(fds) > 0 {
		c.soob = unix.UnixRights(fds...)
	}
	defer func() { c.sp, c.soob = nil, nil }()
	for len(b) > 0 {
		c.sp = b
		if err := c.rc.Write(c.sendFn); err != nil {
			return err
		}
		if c.serr == unix.EINTR {
			continue
		}
		if c.serr != nil {
			return c.serr
		}
		// Descriptors travel with the first chunk only.
		b = b[c.sn:]
		c.soob = nil
	}
	return nil
}

// Recv reads the next message. It returns the tag, the decoded message
// and any descriptors that arrived with it (close-on-exec, owned by the
// caller). On error no descriptors are returned: any received are closed.
// When a whole frame arrived but its payload did not decode, the error is
// not sticky and Recv still returns the frame's tag, so the receiver can
// answer that request with an error.
func (c *Conn) Recv() (tag uint32, m Message, fds []int, err error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.rerr != nil {
		return 0, nil, nil, c.rerr
	}
	fail := func(err error, sticky bool) (uint32, Message, []int, error) {
		closeFDs(fds)
		if sticky {
			c.rerr = err
		}
		return 0, nil, nil, err
	}
	// Read exactly one message's bytes so that descriptors sent with the
	// next message cannot be picked up by this one.
	if err := c.readFull(c.rbuf[:HeaderSize], &fds, true); err != nil {
		return fail(err, true)
	}
	h, err := ParseHeader(c.rbuf[:HeaderSize])
	if err != nil {
		return fail(err, true)
	}
	if cap(c.rbuf) < int(h.Length) {
		nb := make([]byte, h.Length)
		copy(nb, c.rbuf[:HeaderSize])
		c.rbuf = nb
	}
	c.rbuf = c.rbuf[:h.Length]
	if err := c.readFull(c.rbuf[HeaderSize:], &fds, false); err != nil {
		return fail(err, true)
	}
	tag, m, _, err = c.dec.decodeMessage(c.rbuf)
	if err != nil {
		_, _, _, err = fail(err, false)
		return h.Tag, nil, nil, err
	}
	return tag, m, fds, nil
}

// readFull fills p, collecting descriptors into *fds.
func (c *Conn) readFull(p []byte, fds *[]int, atStart bool) error {
	got := 0
	for got < len(p) {
		c.rp = p[got:]
		err := c.rc.Read(c.recvFn)
		c.rp = nil
		if err != nil {
			return err
		}
		n, oobn, flags, rerr := c.rn, c.roobn, c.rflags, c.rerrno
		if rerr == unix.EINTR {
			continue
		}
		if rerr != nil {
			return rerr
		}
		if oobn > 0 {
			if err := parseRights(c.oob[:oobn], fds); err != nil {
				return err
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			return ErrTooManyFDs
		}
		if len(*fds) > MaxFDs {
			return ErrTooManyFDs
		}
		if n == 0 {
			if atStart && got == 0 {
				return io.EOF
			}
			return io.ErrUnexpectedEOF
		}
		got += n
	}
	return nil
}

// parseRights appends SCM_RIGHTS descriptors in oob to *fds. Descriptors
// are collected even when an error is returned so the caller can close them.
func parseRights(oob []byte, fds *[]int) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return ErrBadMessage
	}
	var bad error
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			bad = ErrBadMessage
			continue
		}
		rights, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			bad = ErrBadMessage
			continue
		}
		*fds = append(*fds, rights...)
	}
	return bad
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
