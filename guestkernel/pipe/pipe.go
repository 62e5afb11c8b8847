// Package pipe owns the Sentry's pipes: anonymous pipes (pipe, pipe2) and
// the FIFOs that named pipe nodes open, with Linux's semantics for
// blocking, O_NONBLOCK, PIPE_BUF atomicity, EOF and EPIPE, FIONREAD and
// F_GETPIPE_SZ/F_SETPIPE_SZ. Data stays in the Sentry: no host pipe is
// involved.
package pipe

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Linux's pipe limits.
const (
	// Atomic is PIPE_BUF: writes up to this size are never interleaved.
	Atomic = 4096
	// DefaultSize is a new pipe's capacity (16 pages).
	DefaultSize = 65536
	// MaxSize is /proc/sys/fs/pipe-max-size's default.
	MaxSize = 1 << 20
)

var nextIno atomic.Uint64

// Pipe is one pipe's buffer and its ends' counts.
type Pipe struct {
	ino uint64

	mu       sync.Mutex
	buf      []byte // ring of capacity len(buf)
	head     int    // index of the first unread byte
	n        int    // bytes buffered
	readers  int
	writers  int
	everW    bool          // a writer has existed (POLLHUP needs one)
	rOpens   uint64        // read-end opens ever (FIFO open waits)
	wOpens   uint64        // write-end opens ever
	changed  chan struct{} // closed and replaced on every state change
	openedAt time.Time
}

// New makes an empty pipe.
func New() *Pipe {
	return &Pipe{ino: nextIno.Add(1), buf: make([]byte, DefaultSize), changed: make(chan struct{}), openedAt: time.Now()}
}

// Ino is the pipe's inode number (pipe:[ino]).
func (p *Pipe) Ino() uint64 { return p.ino }

func (p *Pipe) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// block waits for a change of state, or a signal.
func block(ctx vfs.Context, ch <-chan struct{}) error {
	b, ok := ctx.(vfs.Blocker)
	if !ok {
		return unix.EAGAIN
	}
	return b.Block(ch, -1)
}

// Open makes a File for one end (or both, for O_RDWR), counting it.
func (p *Pipe) Open(flags int) *End {
	e := &End{p: p}
	e.SetStatusFlags(flags)
	acc := flags & unix.O_ACCMODE
	p.mu.Lock()
	if acc != unix.O_WRONLY {
		p.rOpens++
		p.readers++
		e.reads = true
	}
	if acc != unix.O_RDONLY {
		p.writers++
		p.wOpens++
		p.everW = true
		e.writes = true
	}
	p.notifyLocked()
	p.mu.Unlock()
	return e
}

// OpenFIFO opens a named pipe end with open(2)'s FIFO rules: a read-only
// open waits for a writer (unless O_NONBLOCK), a write-only open waits for
// a reader (ENXIO with O_NONBLOCK), O_RDWR never waits.
func (p *Pipe) OpenFIFO(ctx vfs.Context, flags int) (*End, error) {
	acc := flags & unix.O_ACCMODE
	e := p.Open(flags)
	if acc == unix.O_RDWR {
		return e, nil
	}
	p.mu.Lock()
	startR, startW := p.rOpens, p.wOpens
	p.mu.Unlock()
	for {
		// As Linux: wait for a partner to be open, or to have opened
		// since we started waiting (even if it closed again).
		p.mu.Lock()
		ok := acc == unix.O_RDONLY && (p.writers > 0 || p.wOpens != startW) ||
			acc == unix.O_WRONLY && (p.readers > 0 || p.rOpens != startR)
		ch := p.changed
		p.mu.Unlock()
		if ok {
			return e, nil
		}
		if flags&unix.O_NONBLOCK != 0 {
			if acc == unix.O_RDONLY {
				return e, nil
			}
			e.Release()
			return nil, unix.ENXIO
		}
		if err := block(ctx, ch); err != nil {
			e.Release()
			return nil, err
		}
	}
}

// End is an open end of a pipe: a vfs.File.
type End struct {
	p      *Pipe
	reads  bool
	writes bool
	vfs.StreamStatus
}

// Pipe is the pipe the end belongs to.
func (e *End) Pipe() *Pipe { return e.p }

// Read implements vfs.File: it waits for data unless the pipe has no
// writers (EOF) or the end is non-blocking (EAGAIN).
func (e *End) Read(ctx vfs.Context, dst [][]byte, _ int64) (int, error) {
	return e.readv(ctx, dst, e.Nonblocking())
}

// ReadNowait is Read as if the end were O_NONBLOCK (preadv2's RWF_NOWAIT).
func (e *End) ReadNowait(ctx vfs.Context, dst [][]byte) (int, error) {
	return e.readv(ctx, dst, true)
}

func (e *End) readv(ctx vfs.Context, dst [][]byte, nonblock bool) (int, error) {
	want := 0
	for _, b := range dst {
		want += len(b)
	}
	if want == 0 {
		return 0, nil
	}
	return e.ReadSome(ctx, want, Scatter(dst), true, nonblock)
}

// Scatter returns a consume function for ReadWith that copies into dst,
// advancing through it across calls.
func Scatter(dst [][]byte) func([]byte) int {
	return func(b []byte) int {
		n := 0
		for len(b) > 0 && len(dst) > 0 {
			c := copy(dst[0], b)
			b, n = b[c:], n+c
			if dst[0] = dst[0][c:]; len(dst[0]) == 0 {
				dst = dst[1:]
			}
		}
		return n
	}
}

// Gather returns a fill function for WriteWith that copies from src,
// advancing through it across calls.
func Gather(src [][]byte) func([]byte) int {
	return func(dst []byte) int {
		n := 0
		for len(dst) > 0 && len(src) > 0 {
			c := copy(dst, src[0])
			dst, n = dst[c:], n+c
			if src[0] = src[0][c:]; len(src[0]) == 0 {
				src = src[1:]
			}
		}
		return n
	}
}

// ReadWith takes up to max buffered bytes, in at most two contiguous
// pieces, through consume (which returns how many it took). With consume
// false in drain, the bytes stay buffered (tee). It blocks as Read does.
func (e *End) ReadWith(ctx vfs.Context, max int, consume func([]byte) int, drain bool) (int, error) {
	return e.ReadSome(ctx, max, consume, drain, e.Nonblocking())
}

// ReadSome is ReadWith with the end's O_NONBLOCK overridden for this call
// (splice's SPLICE_F_NONBLOCK, which may also be set on a blocking end).
func (e *End) ReadSome(ctx vfs.Context, max int, consume func([]byte) int, drain, nonblock bool) (int, error) {
	p := e.p
	for {
		p.mu.Lock()
		if p.n > 0 {
			total := 0
			head, n := p.head, p.n
			for max > 0 && n > 0 {
				chunk := min(n, len(p.buf)-head, max)
				c := consume(p.buf[head : head+chunk])
				total += c
				head = (head + c) % len(p.buf)
				n -= c
				max -= c
				if c < chunk {
					break
				}
			}
			if drain {
				p.head, p.n = head, n
				if p.n == 0 {
					p.head = 0
				}
				p.notifyLocked()
			}
			p.mu.Unlock()
			return total, nil
		}
		if p.writers == 0 {
			p.mu.Unlock()
			return 0, nil
		}
		ch := p.changed
		p.mu.Unlock()
		if nonblock {
			return 0, unix.EAGAIN
		}
		if err := block(ctx, ch); err != nil {
			return 0, err
		}
	}
}

// Write implements vfs.File: writes of at most PIPE_BUF are atomic; larger
// ones may be split; EPIPE when no reader is left (the caller raises
// SIGPIPE).
func (e *End) Write(ctx vfs.Context, src [][]byte, _ int64) (int, error) {
	return e.writev(ctx, src, e.Nonblocking())
}

// WriteNowait is Write as if the end were O_NONBLOCK (pwritev2's
// RWF_NOWAIT).
func (e *End) WriteNowait(ctx vfs.Context, src [][]byte) (int, error) {
	return e.writev(ctx, src, true)
}

func (e *End) writev(ctx vfs.Context, src [][]byte, nonblock bool) (int, error) {
	total := 0
	for _, b := range src {
		total += len(b)
	}
	return e.writeWith(ctx, total, Gather(src), nonblock)
}

// WriteWith puts total bytes into the pipe through fill, which copies
// into the free space it is given and returns how much it copied.
func (e *End) WriteWith(ctx vfs.Context, total int, fill func([]byte) int) (int, error) {
	return e.writeWith(ctx, total, fill, e.Nonblocking())
}

func (e *End) writeWith(ctx vfs.Context, total int, fill func([]byte) int, nonblock bool) (int, error) {
	p := e.p
	done := 0
	for done < total || total == 0 {
		p.mu.Lock()
		if p.readers == 0 {
			p.mu.Unlock()
			if done > 0 {
				return done, nil
			}
			return 0, unix.EPIPE
		}
		if total == 0 {
			p.mu.Unlock()
			return 0, nil
		}
		free := len(p.buf) - p.n
		left := total - done
		// A write of at most PIPE_BUF goes in whole or waits.
		if free > 0 && (left > Atomic || free >= left) {
			for free > 0 && done < total {
				tail := (p.head + p.n) % len(p.buf)
				chunk := min(free, len(p.buf)-tail, total-done)
				c := fill(p.buf[tail : tail+chunk])
				p.n += c
				free -= c
				done += c
				if c < chunk {
					total = done // the source ran dry
					break
				}
			}
			p.notifyLocked()
			p.mu.Unlock()
			continue
		}
		ch := p.changed
		p.mu.Unlock()
		if nonblock {
			if done > 0 {
				return done, nil
			}
			return 0, unix.EAGAIN
		}
		if err := block(ctx, ch); err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, err
		}
	}
	return done, nil
}

// waitRoom returns with p.mu held once the pipe has free space, or fails
// with EPIPE when no reader is left, or EAGAIN if nonblock.
func (e *End) waitRoom(ctx vfs.Context, nonblock bool) error {
	p := e.p
	for {
		p.mu.Lock()
		if p.readers == 0 {
			p.mu.Unlock()
			return unix.EPIPE
		}
		if p.n < len(p.buf) {
			return nil
		}
		ch := p.changed
		p.mu.Unlock()
		if nonblock {
			return unix.EAGAIN
		}
		if err := block(ctx, ch); err != nil {
			return err
		}
	}
}

// WriteSome is splice's and vmsplice's write: it waits (unless nonblock)
// for any free space, fills up to max bytes of what is free at once
// through fill, and returns without waiting for more. There is no
// PIPE_BUF guarantee, as on Linux.
func (e *End) WriteSome(ctx vfs.Context, max int, fill func([]byte) int, nonblock bool) (int, error) {
	if err := e.waitRoom(ctx, nonblock); err != nil {
		return 0, err
	}
	p := e.p
	done := 0
	for free := len(p.buf) - p.n; free > 0 && done < max; {
		tail := (p.head + p.n) % len(p.buf)
		chunk := min(free, len(p.buf)-tail, max-done)
		c := fill(p.buf[tail : tail+chunk])
		p.n += c
		free -= c
		done += c
		if c < chunk {
			break
		}
	}
	if done > 0 {
		p.notifyLocked()
	}
	p.mu.Unlock()
	return done, nil
}

// WaitSpace waits as WriteSome does and returns how much is free then,
// for sources that must be read outside the pipe's lock (a read that can
// block must not hold it).
func (e *End) WaitSpace(ctx vfs.Context, nonblock bool) (int, error) {
	if err := e.waitRoom(ctx, nonblock); err != nil {
		return 0, err
	}
	free := len(e.p.buf) - e.p.n
	e.p.mu.Unlock()
	return free, nil
}

// Splice moves up to max bytes from src's pipe to dst's without an
// intermediate copy.
func Splice(ctx vfs.Context, src, dst *End, max int, nonblock bool) (int, error) {
	return transfer(ctx, src.p, dst.p, max, nonblock, true)
}

// Tee copies up to max bytes from src's pipe to dst's, leaving them
// buffered in src.
func Tee(ctx vfs.Context, src, dst *End, max int, nonblock bool) (int, error) {
	return transfer(ctx, src.p, dst.p, max, nonblock, false)
}

// transfer is Linux's splice_pipe_to_pipe and link_pipe: wait for data in
// a (EOF: 0), then for room in b (EPIPE without readers), move one batch
// and return. The pipes are locked in inode order so that transfers in
// opposite directions cannot deadlock.
func transfer(ctx vfs.Context, a, b *Pipe, max int, nonblock, drain bool) (int, error) {
	if a == b {
		return 0, unix.EINVAL
	}
	first, second := a, b
	if b.ino < a.ino {
		first, second = b, a
	}
	for {
		first.mu.Lock()
		second.mu.Lock()
		var wait <-chan struct{}
		switch {
		case a.n == 0 && a.writers > 0:
			wait = a.changed
		case b.readers == 0:
			second.mu.Unlock()
			first.mu.Unlock()
			return 0, unix.EPIPE
		case a.n == 0:
			second.mu.Unlock()
			first.mu.Unlock()
			return 0, nil
		case b.n == len(b.buf):
			wait = b.changed
		}
		if wait != nil {
			second.mu.Unlock()
			first.mu.Unlock()
			if nonblock {
				return 0, unix.EAGAIN
			}
			if err := block(ctx, wait); err != nil {
				return 0, err
			}
			continue
		}
		n := min(a.n, len(b.buf)-b.n, max)
		for done := 0; done < n; {
			from := (a.head + done) % len(a.buf)
			to := (b.head + b.n) % len(b.buf)
			c := copy(b.buf[to:min(len(b.buf), to+n-done)], a.buf[from:min(len(a.buf), from+n-done)])
			b.n += c
			done += c
		}
		b.notifyLocked()
		if drain {
			a.head, a.n = (a.head+n)%len(a.buf), a.n-n
			if a.n == 0 {
				a.head = 0
			}
			a.notifyLocked()
		}
		second.mu.Unlock()
		first.mu.Unlock()
		return n, nil
	}
}

// Buffered is how many bytes wait to be read (FIONREAD).
func (p *Pipe) Buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Size is the pipe's capacity (F_GETPIPE_SZ).
func (p *Pipe) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buf)
}

// SetSize changes the capacity (F_SETPIPE_SZ), rounded up to a power of
// two pages; EBUSY if the data would not fit.
func (p *Pipe) SetSize(n int) (int, error) {
	if n <= 0 || n > MaxSize {
		return 0, unix.EINVAL
	}
	size := 4096
	for size < n {
		size *= 2
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n > size {
		return 0, unix.EBUSY
	}
	nb := make([]byte, size)
	for i := 0; i < p.n; i++ {
		nb[i] = p.buf[(p.head+i)%len(p.buf)]
	}
	p.buf, p.head = nb, 0
	p.notifyLocked()
	return size, nil
}

// Stat implements vfs.File.
func (e *End) Stat() (unix.Stat_t, error) {
	p := e.p
	ts := unix.NsecToTimespec(p.openedAt.UnixNano())
	return unix.Stat_t{Ino: p.ino, Nlink: 1, Mode: unix.S_IFIFO | 0o600, Blksize: 4096,
		Uid: uint32(unix.Geteuid()), Gid: uint32(unix.Getegid()), Atim: ts, Mtim: ts, Ctim: ts}, nil
}

// Ioctl implements vfs.File: FIONREAD.
func (e *End) Ioctl(ctx vfs.Context, cmd, arg uint64) (uint64, error) {
	if cmd == fionread {
		var b [4]byte
		n := uint32(e.p.Buffered())
		b[0], b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
		if _, err := ctx.MM().CopyOut(arg, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	}
	return 0, unix.ENOTTY
}

// Readiness implements vfs.Poller.
func (e *End) Readiness(mask int16) int16 {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	var r int16
	if e.reads {
		if p.n > 0 {
			r |= unix.POLLIN | pollRdNorm
		}
		if p.writers == 0 && p.everW {
			r |= unix.POLLHUP
		}
	}
	if e.writes {
		if len(p.buf)-p.n >= Atomic {
			r |= unix.POLLOUT | pollWrNorm
		}
		if p.readers == 0 {
			r |= unix.POLLERR
		}
	}
	return r & (mask | unix.POLLHUP | unix.POLLERR)
}

// Release implements vfs.File: the end closes.
func (e *End) Release() {
	p := e.p
	p.mu.Lock()
	if e.reads {
		p.readers--
	}
	if e.writes {
		p.writers--
	}
	p.notifyLocked()
	p.mu.Unlock()
}

// FIFOs maps named pipe inodes to their pipes: every open of one FIFO
// node shares one pipe while any end is open; when the last end closes,
// its data is discarded, as on Linux.
type FIFOs struct {
	mu    sync.Mutex
	pipes map[vfs.Inode]*Pipe
}

// Open opens the FIFO node vd (a vfs.DeviceOpener-shaped hook).
func (f *FIFOs) Open(ctx vfs.Context, vd vfs.VirtualDentry, flags int) (vfs.File, error) {
	in := vd.Inode()
	f.mu.Lock()
	if f.pipes == nil {
		f.pipes = make(map[vfs.Inode]*Pipe)
	}
	p := f.pipes[in]
	if p == nil {
		p = New()
		f.pipes[in] = p
	}
	f.mu.Unlock()
	e, err := p.OpenFIFO(ctx, flags)
	if err != nil {
		f.forget(in, p)
		return nil, err
	}
	return &fifoEnd{End: e, fifos: f, inode: in}, nil
}

func (f *FIFOs) forget(in vfs.Inode, p *Pipe) {
	f.mu.Lock()
	p.mu.Lock()
	if p.readers == 0 && p.writers == 0 && f.pipes[in] == p {
		delete(f.pipes, in)
	}
	p.mu.Unlock()
	f.mu.Unlock()
}

type fifoEnd struct {
	*End
	fifos *FIFOs
	inode vfs.Inode
}

// PipeEnd is the end itself, for splice and F_GETPIPE_SZ.
func (e *fifoEnd) PipeEnd() *End { return e.End }

func (e *fifoEnd) Release() {
	e.End.Release()
	e.fifos.forget(e.inode, e.p)
}

// Constants x/sys/unix lacks.
const (
	fionread   = 0x541b
	pollRdNorm = 0x40
	pollWrNorm = 0x100
)
