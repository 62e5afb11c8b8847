package syscalls

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/pipe"
)

// Data movement between descriptors inside the Sentry: sendfile,
// copy_file_range, splice, tee and vmsplice. Pipe sides move bytes straight
// to or from the pipe's buffer; file-to-file copies go through one pooled
// chunk at a time, never the whole count at once.

func init() {
	full(unix.SYS_SENDFILE, sysSendfile, aFD, aFD, aHex, aInt)
	full(unix.SYS_COPY_FILE_RANGE, sysCopyFileRange, aFD, aHex, aFD, aHex, aInt, aHex)
	full(unix.SYS_SPLICE, sysSplice, aFD, aHex, aFD, aHex, aInt, aHex)
	partial(unix.SYS_TEE, "between the Sentry's own pipes: a host pipe (stdio, a FIFO through the gofer) is EINVAL", sysTee, aFD, aFD, aInt, aHex)
	full(unix.SYS_VMSPLICE, sysVmsplice, aFD, aHex, aInt, aHex)
}

const spliceAll = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MORE | unix.SPLICE_F_GIFT

// chunkSize bounds each step of a file-to-file copy.
const chunkSize = 64 << 10

var chunks = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// ioFile is getFile for data movement: O_PATH descriptors are EBADF, as
// Linux's fdget refuses them.
func ioFile(t *kernel.Task, fd uint64) (*kernel.FileDescription, error) {
	d, err := getFile(t, fd)
	if err != nil {
		return nil, err
	}
	if d.StatusFlags()&unix.O_PATH != 0 {
		d.DecRef()
		return nil, unix.EBADF
	}
	return d, nil
}

func copyInOffset(t *kernel.Task, addr uint64) (int64, error) {
	var b [8]byte
	if _, err := t.MM().CopyIn(addr, b[:]); err != nil {
		return 0, unix.EFAULT
	}
	return int64(binary.LittleEndian.Uint64(b[:])), nil
}

func copyOutOffset(t *kernel.Task, addr uint64, off int64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(off))
	if _, err := t.MM().CopyOut(addr, b[:]); err != nil {
		return unix.EFAULT
	}
	return nil
}

// position is the description's file position (0 for streams, as Linux's
// f_pos of a pipe or socket).
func position(d *kernel.FileDescription) int64 {
	if d.Stream() {
		return 0
	}
	pos, err := d.Seek(0, unix.SEEK_CUR)
	if err != nil {
		return 0
	}
	return pos
}

// verifyArea is Linux's rw_verify_area for a transfer of count bytes at
// pos.
func verifyArea(pos int64, count uint64) error {
	if int64(count) < 0 || pos < 0 || pos+int64(count) < 0 {
		return unix.EINVAL
	}
	return nil
}

// isFIFO reports a pipe the Sentry does not own (a host FIFO through the
// gofer): Linux treats it as a pipe, the Sentry as a stream.
func isFIFO(d *kernel.FileDescription) bool {
	attr, err := d.Attr()
	return err == nil && attr.Type() == unix.S_IFIFO
}

func nonblocking(d *kernel.FileDescription) bool {
	return d.StatusFlags()&unix.O_NONBLOCK != 0
}

// sigpipe raises SIGPIPE for a call that failed with EPIPE, as Linux's
// pipe and splice code does.
func sigpipe(t *kernel.Task, err error) error {
	if err == unix.EPIPE {
		t.SendThreadSignal(unix.SIGPIPE, kernel.SigInfo{Signo: int32(unix.SIGPIPE)})
	}
	return err
}

// copyChunks copies up to count bytes from in (at inPos, or its own
// position if inPos < 0) to out (likewise at outPos) through one pooled
// chunk at a time. It stops at EOF, at an error or at a short write, and
// reports the bytes written: an error after some progress is dropped, as
// Linux's do_splice_direct drops it. Bytes read but not written are not
// consumed when inPos >= 0 (the caller advances by the count).
func copyChunks(t *kernel.Task, in *kernel.FileDescription, inPos int64, out *kernel.FileDescription, outPos int64, count int64) (int64, error) {
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	iov := make([][]byte, 1)
	var done int64
	for done < count {
		iov[0] = (*bp)[:min(count-done, chunkSize)]
		n, err := in.Read(t, iov, advance(inPos, done))
		if n == 0 {
			if done == 0 {
				return 0, err
			}
			break
		}
		iov[0] = (*bp)[:n]
		w, werr := out.Write(t, iov, advance(outPos, done))
		done += int64(w)
		if werr != nil || w < n || err != nil {
			if done == 0 {
				if werr == nil {
					werr = err
				}
				return 0, werr
			}
			break
		}
	}
	return done, nil
}

// advance is pos moved on by n, keeping -1 ("at the own position").
func advance(pos, n int64) int64 {
	if pos < 0 {
		return -1
	}
	return pos + n
}

// fileToPipe reads up to count bytes of in, at pos (ignored for streams,
// which read at their own position), into dst's buffer.
func fileToPipe(t *kernel.Task, in *kernel.FileDescription, pos int64, dst *pipe.End, count int, nonblock bool) (int64, error) {
	if _, ok := pipeOf(in); ok || in.IsDir() {
		return 0, unix.EINVAL // Linux: no splice_read for pipes or directories
	}
	if in.Stream() {
		return streamToPipe(t, in, dst, count, nonblock)
	}
	// A file that is not a stream never waits for data: read straight
	// into the pipe's buffer under its lock.
	var rerr error
	var done int64
	iov := make([][]byte, 1)
	n, err := dst.WriteSome(t, count, func(b []byte) int {
		iov[0] = b
		c, err := in.Read(t, iov, pos+done)
		done += int64(c)
		if err != nil {
			rerr = err
		}
		return c
	}, nonblock)
	if err != nil {
		return 0, err
	}
	if n == 0 && rerr != nil {
		return 0, rerr
	}
	return int64(n), nil
}

// streamToPipe moves from a stream whose read may block (host stdio, a
// host FIFO): it waits for room first, as Linux does, then reads outside
// the pipe's lock and writes what it read.
func streamToPipe(t *kernel.Task, in *kernel.FileDescription, dst *pipe.End, count int, nonblock bool) (int64, error) {
	free, err := dst.WaitSpace(t, nonblock)
	if err != nil {
		return 0, err
	}
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	buf := (*bp)[:min(count, free, chunkSize)]
	n, err := in.Read(t, [][]byte{buf}, -1)
	if n == 0 {
		return 0, err
	}
	// The room may have gone to another writer meanwhile: wait for it
	// rather than drop what the stream gave us.
	done := 0
	fill := pipe.Gather([][]byte{buf[:n]})
	for done < n {
		w, err := dst.WriteSome(t, n-done, fill, false)
		done += w
		if err != nil {
			break
		}
	}
	return int64(done), nil
}

// pipeToFile writes up to count bytes from src's buffer to out at pos
// (ignored for streams, which write at their own position).
func pipeToFile(t *kernel.Task, src *pipe.End, out *kernel.FileDescription, pos int64, count int, nonblock bool) (int64, error) {
	if out.Stream() {
		return pipeToStream(t, src, out, count, nonblock)
	}
	var werr error
	var done int64
	iov := make([][]byte, 1)
	n, err := src.ReadSome(t, count, func(b []byte) int {
		if werr != nil {
			return 0
		}
		iov[0] = b
		w, err := out.Write(t, iov, pos+done)
		done += int64(w)
		if err != nil {
			werr = err
		}
		return w
	}, true, nonblock)
	if err != nil {
		return 0, err
	}
	if n == 0 && werr != nil {
		return 0, werr
	}
	return int64(n), nil
}

// pipeToStream moves to a stream whose write may block: it copies the
// bytes out without consuming them, writes outside the pipe's lock, then
// consumes what was written, so a short write leaves the rest buffered.
// (Unlike Linux, which holds the pipe's mutex throughout, a reader racing
// on the same pipe could also get those bytes.)
func pipeToStream(t *kernel.Task, src *pipe.End, out *kernel.FileDescription, count int, nonblock bool) (int64, error) {
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	buf := (*bp)[:min(count, chunkSize)]
	n, err := src.ReadSome(t, len(buf), pipe.Scatter([][]byte{buf}), false, nonblock)
	if n == 0 {
		return 0, err
	}
	w, err := out.Write(t, [][]byte{buf[:n]}, -1)
	if w == 0 {
		return 0, err
	}
	src.ReadSome(t, w, func(b []byte) int { return len(b) }, true, true)
	return int64(w), nil
}

func sysSendfile(t *kernel.Task, a *[6]uint64) (uint64, error) {
	outFD, inFD, offAddr, count := a[0], a[1], a[2], a[3]
	if offAddr == 0 {
		return doSendfile(t, outFD, inFD, nil, count)
	}
	off, err := copyInOffset(t, offAddr)
	if err != nil {
		return 0, err
	}
	n, err := doSendfile(t, outFD, inFD, &off, count)
	// Linux writes the offset back whatever the outcome.
	if cerr := copyOutOffset(t, offAddr, off); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// doSendfile is Linux's do_sendfile: in at *off (updated) or at its
// position (advanced), out at its position; through the pipe's buffer when
// out is a pipe, else in chunks, which needs a seekable in.
func doSendfile(t *kernel.Task, outFD, inFD uint64, off *int64, count uint64) (uint64, error) {
	in, err := ioFile(t, inFD)
	if err != nil {
		return 0, err
	}
	defer in.DecRef()
	if !readable(in) {
		return 0, unix.EBADF
	}
	pos := position(in)
	if off != nil {
		if in.Stream() {
			return 0, unix.ESPIPE
		}
		pos = *off
	}
	if err := verifyArea(pos, count); err != nil {
		return 0, err
	}
	count = min(count, maxRW)
	out, err := ioFile(t, outFD)
	if err != nil {
		return 0, err
	}
	defer out.DecRef()
	if !writable(out) {
		return 0, unix.EBADF
	}
	var n int64
	if dst, ok := pipeOf(out); ok {
		if in.Stream() && isFIFO(in) {
			return 0, unix.EINVAL // a host pipe: pipes have no splice_read
		}
		n, err = fileToPipe(t, in, pos, dst, int(count), nonblocking(out))
	} else {
		if out.StatusFlags()&unix.O_APPEND != 0 {
			return 0, unix.EINVAL
		}
		// Linux copies through a private pipe here and wants a seekable
		// in, so no data is dropped if the write falls short.
		if in.Stream() || in.IsDir() {
			return 0, unix.EINVAL
		}
		n, err = copyChunks(t, in, pos, out, -1, int64(count))
	}
	if n > 0 {
		switch {
		case off != nil:
			*off = pos + n
		case !in.Stream():
			in.Seek(pos+n, unix.SEEK_SET)
		}
		return uint64(n), nil
	}
	return 0, sigpipe(t, err)
}

func sysCopyFileRange(t *kernel.Task, a *[6]uint64) (uint64, error) {
	inAddr, outAddr, count, flags := a[1], a[3], a[4], a[5]
	in, err := ioFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer in.DecRef()
	out, err := ioFile(t, a[2])
	if err != nil {
		return 0, err
	}
	defer out.DecRef()
	posIn, posOut := position(in), position(out)
	if inAddr != 0 {
		if posIn, err = copyInOffset(t, inAddr); err != nil {
			return 0, err
		}
	}
	if outAddr != 0 {
		if posOut, err = copyInOffset(t, outAddr); err != nil {
			return 0, err
		}
	}
	if uint32(flags) != 0 {
		return 0, unix.EINVAL
	}
	// Linux's generic_copy_file_checks, in its order.
	ai, err := in.Attr()
	if err != nil {
		return 0, err
	}
	ao, err := out.Attr()
	if err != nil {
		return 0, err
	}
	if ai.IsDir() || ao.IsDir() {
		return 0, unix.EISDIR
	}
	if ai.Type() != unix.S_IFREG || ao.Type() != unix.S_IFREG {
		return 0, unix.EINVAL
	}
	if !readable(in) || !writable(out) || out.StatusFlags()&unix.O_APPEND != 0 {
		return 0, unix.EBADF
	}
	if uint64(posIn)+count < uint64(posIn) || uint64(posOut)+count < uint64(posOut) {
		return 0, unix.EOVERFLOW
	}
	if posIn >= ai.Size {
		count = 0
	} else {
		count = min(count, uint64(ai.Size-posIn))
	}
	if ai.Dev == ao.Dev && ai.Ino == ao.Ino && posOut+int64(count) > posIn && posOut < posIn+int64(count) {
		return 0, unix.EINVAL
	}
	if err := verifyArea(posIn, count); err != nil {
		return 0, err
	}
	if err := verifyArea(posOut, count); err != nil {
		return 0, err
	}
	if count == 0 {
		return 0, nil
	}
	// No EXDEV: the Sentry copies between any two filesystems itself.
	n, err := copyChunks(t, in, posIn, out, posOut, int64(min(count, maxRW)))
	if n == 0 {
		return 0, err
	}
	if inAddr != 0 {
		if err := copyOutOffset(t, inAddr, posIn+n); err != nil {
			return 0, err
		}
	} else {
		in.Seek(posIn+n, unix.SEEK_SET)
	}
	if outAddr != 0 {
		if err := copyOutOffset(t, outAddr, posOut+n); err != nil {
			return 0, err
		}
	} else {
		out.Seek(posOut+n, unix.SEEK_SET)
	}
	return uint64(n), nil
}

func sysSplice(t *kernel.Task, a *[6]uint64) (uint64, error) {
	inAddr, outAddr, count, flags := a[1], a[3], a[4], uint32(a[5])
	if count == 0 {
		return 0, nil
	}
	if flags&^spliceAll != 0 {
		return 0, unix.EINVAL
	}
	in, err := ioFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer in.DecRef()
	out, err := ioFile(t, a[2])
	if err != nil {
		return 0, err
	}
	defer out.DecRef()
	src, inPipe := pipeOf(in)
	dst, outPipe := pipeOf(out)
	inFIFO := inPipe || in.Stream() && isFIFO(in)
	outFIFO := outPipe || out.Stream() && isFIFO(out)
	if (inAddr != 0 && inFIFO) || (outAddr != 0 && outFIFO) {
		return 0, unix.ESPIPE
	}
	var inOff, outOff int64
	if inAddr != 0 {
		if inOff, err = copyInOffset(t, inAddr); err != nil {
			return 0, err
		}
	}
	if outAddr != 0 {
		if outOff, err = copyInOffset(t, outAddr); err != nil {
			return 0, err
		}
	}
	if !readable(in) || !writable(out) {
		return 0, unix.EBADF
	}
	// The file side's offset: the pointer's, else the description's
	// position; a stream has none and reads or writes at its own.
	sideOffset := func(d *kernel.FileDescription, addr uint64, off int64) (int64, error) {
		if addr == 0 {
			return position(d), nil
		}
		if d.Stream() {
			return 0, unix.EINVAL // no pread/pwrite on it
		}
		return off, nil
	}
	nonblock := flags&unix.SPLICE_F_NONBLOCK != 0
	count = min(count, maxRW)
	var n int64
	switch {
	case inPipe && outPipe:
		if src.Pipe() == dst.Pipe() {
			return 0, unix.EINVAL
		}
		var c int
		c, err = pipe.Splice(t, src, dst, int(count), nonblock || nonblocking(in) || nonblocking(out))
		n = int64(c)
	case inPipe:
		pos, err := sideOffset(out, outAddr, outOff)
		if err != nil {
			return 0, err
		}
		if out.StatusFlags()&unix.O_APPEND != 0 {
			return 0, unix.EINVAL
		}
		if err := verifyArea(pos, count); err != nil {
			return 0, err
		}
		if n, err = pipeToFile(t, src, out, pos, int(count), nonblock || nonblocking(in)); err != nil {
			return 0, sigpipe(t, err)
		}
		return spliceDone(t, out, outAddr, pos, n)
	case outPipe:
		pos, err := sideOffset(in, inAddr, inOff)
		if err != nil {
			return 0, err
		}
		if err := verifyArea(pos, count); err != nil {
			return 0, err
		}
		if n, err = fileToPipe(t, in, pos, dst, int(count), nonblock || nonblocking(out)); err != nil {
			return 0, sigpipe(t, err)
		}
		return spliceDone(t, in, inAddr, pos, n)
	case inFIFO || outFIFO:
		// A host FIFO on one side: one chunk through the Sentry.
		inPos, outPos := int64(-1), int64(-1)
		if !inFIFO {
			if inPos, err = sideOffset(in, inAddr, inOff); err != nil {
				return 0, err
			}
		}
		if !outFIFO {
			if outPos, err = sideOffset(out, outAddr, outOff); err != nil {
				return 0, err
			}
			if out.StatusFlags()&unix.O_APPEND != 0 {
				return 0, unix.EINVAL
			}
		}
		if n, err = copyChunks(t, in, inPos, out, outPos, int64(min(count, chunkSize))); err != nil {
			return 0, sigpipe(t, err)
		}
		if !inFIFO {
			if _, err := spliceDone(t, in, inAddr, inPos, n); err != nil {
				return 0, err
			}
		}
		if !outFIFO {
			return spliceDone(t, out, outAddr, outPos, n)
		}
		return uint64(n), nil
	default:
		return 0, unix.EINVAL // neither side is a pipe
	}
	if err != nil {
		return 0, sigpipe(t, err)
	}
	return uint64(n), nil
}

// spliceDone records n bytes moved at pos on the file side d: through the
// offset pointer at addr, or by moving d's position.
func spliceDone(t *kernel.Task, d *kernel.FileDescription, addr uint64, pos, n int64) (uint64, error) {
	switch {
	case addr != 0:
		if err := copyOutOffset(t, addr, pos+n); err != nil {
			return 0, err
		}
	case n > 0 && !d.Stream():
		d.Seek(pos+n, unix.SEEK_SET)
	}
	return uint64(n), nil
}

func sysTee(t *kernel.Task, a *[6]uint64) (uint64, error) {
	count, flags := a[2], uint32(a[3])
	if flags&^spliceAll != 0 {
		return 0, unix.EINVAL
	}
	if count == 0 {
		return 0, nil
	}
	in, err := ioFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer in.DecRef()
	out, err := ioFile(t, a[1])
	if err != nil {
		return 0, err
	}
	defer out.DecRef()
	if !readable(in) || !writable(out) {
		return 0, unix.EBADF
	}
	src, ok1 := pipeOf(in)
	dst, ok2 := pipeOf(out)
	if !ok1 || !ok2 || src.Pipe() == dst.Pipe() {
		return 0, unix.EINVAL
	}
	nonblock := flags&unix.SPLICE_F_NONBLOCK != 0 || nonblocking(in) || nonblocking(out)
	n, err := pipe.Tee(t, src, dst, int(min(count, maxRW)), nonblock)
	if err != nil {
		return 0, sigpipe(t, err)
	}
	return uint64(n), nil
}

// sysVmsplice moves between app memory and a pipe: into it for a
// writable descriptor, out of it for a read-only one. As on Linux, only
// SPLICE_F_NONBLOCK (not the descriptor's O_NONBLOCK) keeps it from
// waiting.
func sysVmsplice(t *kernel.Task, a *[6]uint64) (uint64, error) {
	flags := uint32(a[3])
	if flags&^spliceAll != 0 {
		return 0, unix.EINVAL
	}
	d, err := ioFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	toPipe := writable(d)
	if !toPipe && !readable(d) {
		return 0, unix.EBADF
	}
	iovs, err := vectors(t, a[1], a[2], !toPipe)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, b := range iovs {
		total += len(b)
	}
	if total == 0 {
		return 0, nil
	}
	e, ok := pipeOf(d)
	if !ok {
		if !isFIFO(d) {
			return 0, unix.EBADF
		}
		// A host FIFO: plain vectored I/O on it.
		return doIO(t, a[0], iovs, -1, toPipe)
	}
	nonblock := flags&unix.SPLICE_F_NONBLOCK != 0
	var n int
	if toPipe {
		n, err = e.WriteSome(t, total, pipe.Gather(iovs), nonblock)
	} else {
		n, err = e.ReadSome(t, total, pipe.Scatter(iovs), true, nonblock)
	}
	if n > 0 {
		return uint64(n), nil
	}
	return 0, sigpipe(t, err)
}
