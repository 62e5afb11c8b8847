package syscalls

import (
	"encoding/binary"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/vfs"
	"github.com/ringfence/ringfence/logging"
)

func init() {
	full(unix.SYS_READ, sysRead, aFD, aOutBuf, aInt)
	full(unix.SYS_WRITE, sysWrite, aFD, aInBuf, aInt)
	full(unix.SYS_READV, sysReadv, aFD, aHex, aInt)
	full(unix.SYS_WRITEV, sysWritev, aFD, aHex, aInt)
	full(unix.SYS_PREAD64, sysPread64, aFD, aOutBuf, aInt, aInt)
	full(unix.SYS_PWRITE64, sysPwrite64, aFD, aInBuf, aInt, aInt)
	full(unix.SYS_PREADV, sysPreadv, aFD, aHex, aInt, aInt, aInt)
	full(unix.SYS_PWRITEV, sysPwritev, aFD, aHex, aInt, aInt, aInt)
	partial(unix.SYS_PREADV2, "RWF_NOWAIT may wait on host streams (stdio)", sysPreadv2, aFD, aHex, aInt, aInt, aInt, aHex)
	partial(unix.SYS_PWRITEV2, "RWF_NOWAIT may wait on host streams (stdio)", sysPwritev2, aFD, aHex, aInt, aInt, aInt, aHex)
	full(unix.SYS_LSEEK, sysLseek, aFD, aInt, aInt)
	full(unix.SYS_CLOSE, sysClose, aFD)
	full(unix.SYS_CLOSE_RANGE, sysCloseRange, aFD, aFD, aHex)
	full(unix.SYS_DUP, sysDup, aFD)
	full(unix.SYS_DUP2, sysDup2, aFD, aFD)
	full(unix.SYS_DUP3, sysDup3, aFD, aFD, aHex)
	partial(unix.SYS_FCNTL, "leases (F_SETLEASE/F_GETLEASE), F_NOTIFY and F_SETOWN/F_GETOWN signals are EINVAL", sysFcntl, aFD, aInt, aHex)
	full(unix.SYS_FSTAT, sysFstat, aFD, aHex)
	partial(unix.SYS_IOCTL, "FIOCLEX, FIONCLEX, FIONBIO, FIONREAD, and TCGETS/TCSETS*/TIOCGWINSZ/TIOCSWINSZ on a host terminal", sysIoctl, aFD, aHex, aHex)
}

// maxRW is Linux's MAX_RW_COUNT: one call moves at most this much.
const maxRW = 0x7ffff000

// iovMax is IOV_MAX.
const iovMax = 1024

func getFile(t *kernel.Task, fd uint64) (*kernel.FileDescription, error) {
	d, ok := t.FDTable().Get(int32(fd))
	if !ok {
		return nil, unix.EBADF
	}
	return d, nil
}

func readable(d *kernel.FileDescription) bool {
	return d.StatusFlags()&unix.O_ACCMODE != unix.O_WRONLY
}

func writable(d *kernel.FileDescription) bool {
	return d.StatusFlags()&unix.O_ACCMODE != unix.O_RDONLY
}

// buffer returns the Sentry's views of one app buffer, reusing the task's
// scratch slice so the common path does not allocate.
func buffer(t *kernel.Task, addr, n uint64, forWrite bool) ([][]byte, error) {
	if n > maxRW {
		n = maxRW
	}
	iovs, err := t.MM().IOVecs(addr, int(n), forWrite, t.IOVecScratch[:0])
	t.IOVecScratch = iovs[:0]
	if err != nil {
		return nil, unix.EFAULT
	}
	return iovs, nil
}

// vectors reads an app iovec array and returns the Sentry's views.
func vectors(t *kernel.Task, addr, count uint64, forWrite bool) ([][]byte, error) {
	if count > iovMax {
		return nil, unix.EINVAL
	}
	if cap(t.ByteScratch) < int(16*count) {
		t.ByteScratch = make([]byte, 16*iovMax)
	}
	raw := t.ByteScratch[:16*count]
	if _, err := t.MM().CopyIn(addr, raw); err != nil {
		return nil, unix.EFAULT
	}
	var total uint64
	iovs := t.IOVecScratch[:0]
	for i := uint64(0); i < count; i++ {
		base := binary.LittleEndian.Uint64(raw[16*i:])
		n := binary.LittleEndian.Uint64(raw[16*i+8:])
		if int64(n) < 0 {
			return nil, unix.EINVAL
		}
		if total+n > maxRW {
			n = maxRW - total
		}
		total += n
		if n == 0 {
			continue
		}
		var err error
		if iovs, err = t.MM().IOVecs(base, int(n), forWrite, iovs); err != nil {
			t.IOVecScratch = iovs[:0]
			return nil, unix.EFAULT
		}
	}
	t.IOVecScratch = iovs[:0]
	return iovs, nil
}

// doIO reads into or writes from iovs on fd, at offset (< 0: the file's
// position). A partial transfer reports its count, not the error that
// stopped it, as Linux does.
func doIO(t *kernel.Task, fd uint64, iovs [][]byte, offset int64, write bool) (uint64, error) {
	d, err := getFile(t, fd)
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if offset >= 0 && d.Stream() {
		return 0, unix.ESPIPE
	}
	if (write && !writable(d)) || (!write && !readable(d)) {
		return 0, unix.EBADF
	}
	if len(iovs) == 0 {
		return 0, nil
	}
	var n int
	if write {
		n, err = d.Write(t, iovs, offset)
		if err == unix.EPIPE {
			t.SendThreadSignal(unix.SIGPIPE, kernel.SigInfo{Signo: int32(unix.SIGPIPE)})
		}
	} else {
		n, err = d.Read(t, iovs, offset)
	}
	if n > 0 {
		return uint64(n), nil
	}
	return 0, err
}

func doRead(t *kernel.Task, fd uint64, iovs [][]byte, offset int64) (uint64, error) {
	return doIO(t, fd, iovs, offset, false)
}

func doWrite(t *kernel.Task, fd uint64, iovs [][]byte, offset int64) (uint64, error) {
	return doIO(t, fd, iovs, offset, true)
}

func sysRead(t *kernel.Task, a *[6]uint64) (uint64, error) {
	iovs, err := buffer(t, a[1], a[2], true)
	if err != nil {
		return 0, err
	}
	return doRead(t, a[0], iovs, -1)
}

func sysWrite(t *kernel.Task, a *[6]uint64) (uint64, error) {
	iovs, err := buffer(t, a[1], a[2], false)
	if err != nil {
		return 0, err
	}
	return doWrite(t, a[0], iovs, -1)
}

func sysReadv(t *kernel.Task, a *[6]uint64) (uint64, error) {
	iovs, err := vectors(t, a[1], a[2], true)
	if err != nil {
		return 0, err
	}
	return doRead(t, a[0], iovs, -1)
}

func sysWritev(t *kernel.Task, a *[6]uint64) (uint64, error) {
	iovs, err := vectors(t, a[1], a[2], false)
	if err != nil {
		return 0, err
	}
	return doWrite(t, a[0], iovs, -1)
}

// The p*v calls split the offset into pos_l and pos_h; on x86-64 Linux's
// pos_from_hilo shifts pos_h out entirely, so pos_l (a[3]) is the offset.

func sysPreadv(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if int64(a[3]) < 0 {
		return 0, unix.EINVAL
	}
	return doIOv2(t, a, int64(a[3]), 0, false)
}

func sysPwritev(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if int64(a[3]) < 0 {
		return 0, unix.EINVAL
	}
	return doIOv2(t, a, int64(a[3]), 0, true)
}

// preadv2 and pwritev2 take offset -1 for "at the file position".

func sysPreadv2(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if int64(a[3]) < -1 {
		return 0, unix.EINVAL
	}
	return doIOv2(t, a, int64(a[3]), a[5], false)
}

func sysPwritev2(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if int64(a[3]) < -1 {
		return 0, unix.EINVAL
	}
	return doIOv2(t, a, int64(a[3]), a[5], true)
}

// rwfKnown are the RWF_* flags the Sentry honours. RWF_ATOMIC and
// RWF_DONTCACHE are EOPNOTSUPP, as on Linux for files (tmpfs, pipes) that
// cannot do them.
const rwfKnown = unix.RWF_HIPRI | unix.RWF_DSYNC | unix.RWF_SYNC | unix.RWF_NOWAIT |
	unix.RWF_APPEND | unix.RWF_NOAPPEND | unix.RWF_NOSIGNAL

// doIOv2 is the vectored positioned I/O of preadv, pwritev, preadv2 and
// pwritev2 (args fd, iov, iovcnt), with Linux's order of checks: EBADF,
// ESPIPE, access mode, the iovecs, then (only for a non-empty transfer)
// the flags.
func doIOv2(t *kernel.Task, a *[6]uint64, offset int64, flags uint64, write bool) (uint64, error) {
	d, err := getFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if offset >= 0 && d.Stream() {
		return 0, unix.ESPIPE
	}
	if (write && !writable(d)) || (!write && !readable(d)) {
		return 0, unix.EBADF
	}
	iovs, err := vectors(t, a[1], a[2], !write)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, b := range iovs {
		total += int64(len(b))
	}
	if total == 0 {
		return 0, nil
	}
	if offset+total < 0 {
		return 0, unix.EINVAL
	}
	if flags&^rwfKnown != 0 {
		return 0, unix.EOPNOTSUPP
	}
	if flags&unix.RWF_APPEND != 0 && flags&unix.RWF_NOAPPEND != 0 {
		return 0, unix.EINVAL
	}
	var n int
	if write {
		n, err = writev2(t, d, iovs, offset, flags)
		if err == unix.EPIPE && flags&unix.RWF_NOSIGNAL == 0 {
			t.SendThreadSignal(unix.SIGPIPE, kernel.SigInfo{Signo: int32(unix.SIGPIPE)})
		}
		if n > 0 && flags&(unix.RWF_DSYNC|unix.RWF_SYNC) != 0 {
			// The data is in; a failed flush is the call's error, as
			// Linux's generic_write_sync makes it.
			if _, serr := fdSync(t, a[0], flags&unix.RWF_SYNC == 0); serr != nil {
				return 0, serr
			}
		}
	} else if e, ok := pipeOf(d); ok && flags&unix.RWF_NOWAIT != 0 {
		n, err = e.ReadNowait(t, iovs)
	} else {
		n, err = d.Read(t, iovs, offset)
	}
	if n > 0 {
		return uint64(n), nil
	}
	return 0, err
}

// writev2 writes with pwritev2's per-call flags: RWF_NOWAIT on a pipe,
// RWF_APPEND (append this once; at offset -1 the position moves to the
// new end) and RWF_NOAPPEND (ignore O_APPEND this once).
func writev2(t *kernel.Task, d *kernel.FileDescription, iovs [][]byte, offset int64, flags uint64) (int, error) {
	if e, ok := pipeOf(d); ok {
		if flags&unix.RWF_NOWAIT != 0 {
			return e.WriteNowait(t, iovs)
		}
		return d.Write(t, iovs, -1)
	}
	if d.Stream() {
		return d.Write(t, iovs, -1)
	}
	appending := d.StatusFlags()&unix.O_APPEND != 0
	switch {
	case flags&unix.RWF_APPEND != 0 && !appending:
		return appendOnce(t, d, iovs, offset < 0)
	case flags&unix.RWF_NOAPPEND != 0 && appending && d.VirtualDentry().Ok():
		// Past the description's O_APPEND handling: straight to the File.
		pos := offset
		if pos < 0 {
			pos, _ = d.Seek(0, unix.SEEK_CUR)
		}
		n, err := d.File.Write(t, iovs, pos)
		if n > 0 && offset < 0 {
			d.Seek(pos+int64(n), unix.SEEK_SET)
		}
		return n, err
	}
	return d.Write(t, iovs, offset)
}

// appendOnce writes iovs at the end of d, for RWF_APPEND on a description
// without O_APPEND; with advance (offset -1) the position then moves to
// the new end, as on Linux.
func appendOnce(t *kernel.Task, d *kernel.FileDescription, iovs [][]byte, advance bool) (int, error) {
	var n int
	var end int64
	var err error
	ap, ok := appenderOf(d)
	switch {
	case ok && d.VirtualDentry().Ok():
		n, end, err = ap.Append(t, iovs)
	case d.VirtualDentry().Ok():
		// A path-opened File appends when given offset -1 (vfs.File's
		// contract), without reporting where the end now is.
		n, err = d.File.Write(t, iovs, -1)
		attr, aerr := d.Attr()
		if aerr != nil {
			advance = false
		}
		end = attr.Size
	default:
		// A host file owns its position: write at its current size.
		attr, aerr := d.Attr()
		if aerr != nil {
			return 0, aerr
		}
		n, err = d.Write(t, iovs, attr.Size)
		end = attr.Size + int64(n)
	}
	if advance && n > 0 {
		d.Seek(end, unix.SEEK_SET)
	}
	return n, err
}

// appenderOf finds the atomic append of a path-opened file, as the VFS
// does for O_APPEND.
func appenderOf(d *kernel.FileDescription) (vfs.Appender, bool) {
	if ap, ok := d.File.(vfs.Appender); ok {
		return ap, true
	}
	if o, ok := d.File.(interface{ OffsetIO() vfs.OffsetIO }); ok {
		ap, ok := o.OffsetIO().(vfs.Appender)
		return ap, ok
	}
	return nil, false
}

func sysPread64(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if int64(a[3]) < 0 {
		return 0, unix.EINVAL
	}
	iovs, err := buffer(t, a[1], a[2], true)
	if err != nil {
		return 0, err
	}
	return doRead(t, a[0], iovs, int64(a[3]))
}

func sysPwrite64(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if int64(a[3]) < 0 {
		return 0, unix.EINVAL
	}
	iovs, err := buffer(t, a[1], a[2], false)
	if err != nil {
		return 0, err
	}
	return doWrite(t, a[0], iovs, int64(a[3]))
}

func sysLseek(t *kernel.Task, a *[6]uint64) (uint64, error) {
	d, err := getFile(t, a[0])
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if d.Stream() {
		return 0, unix.ESPIPE
	}
	if a[2] > unix.SEEK_HOLE {
		return 0, unix.EINVAL
	}
	off, err := d.Seek(int64(a[1]), int(a[2]))
	return uint64(off), err
}

func sysClose(t *kernel.Task, a *[6]uint64) (uint64, error) {
	d, err := t.FDTable().Take(int32(a[0]))
	if err != nil {
		return 0, err
	}
	releasePOSIXLocks(t, d)
	d.DecRef()
	return 0, nil
}

const (
	closeRangeUnshare = 2
	closeRangeCloexec = 4
)

func sysCloseRange(t *kernel.Task, a *[6]uint64) (uint64, error) {
	first, last, flags := uint32(a[0]), uint32(a[1]), a[2]
	if flags&^(closeRangeUnshare|closeRangeCloexec) != 0 || first > last {
		return 0, unix.EINVAL
	}
	if flags&closeRangeCloexec != 0 {
		for fd := uint64(first); fd <= uint64(last) && fd < nofile(t); fd++ {
			t.FDTable().SetCloexec(int32(fd), true)
		}
		return 0, nil
	}
	t.FDTable().CloseRange(first, last)
	return 0, nil
}

func nofile(t *kernel.Task) uint64 {
	return t.ThreadGroup().Limits().Get(unix.RLIMIT_NOFILE).Cur
}

func dupFrom(t *kernel.Task, fd uint64, min int32, cloexec bool) (uint64, error) {
	d, err := getFile(t, fd)
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	nfd, err := t.FDTable().Install(d, min, cloexec, nofile(t))
	return uint64(nfd), err
}

func sysDup(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return dupFrom(t, a[0], 0, false)
}

func dupTo(t *kernel.Task, oldfd, newfd uint64, cloexec bool) (uint64, error) {
	d, err := getFile(t, oldfd)
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	if int32(newfd) < 0 || uint64(int32(newfd)) >= nofile(t) || newfd > 1<<31 {
		return 0, unix.EBADF
	}
	nfd, err := t.FDTable().InstallAt(int32(newfd), d, cloexec)
	return uint64(nfd), err
}

func sysDup2(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[0] == a[1] {
		d, err := getFile(t, a[0])
		if err != nil {
			return 0, err
		}
		d.DecRef()
		return a[1], nil
	}
	return dupTo(t, a[0], a[1], false)
}

func sysDup3(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[2]&^unix.O_CLOEXEC != 0 || a[0] == a[1] {
		return 0, unix.EINVAL
	}
	return dupTo(t, a[0], a[1], a[2]&unix.O_CLOEXEC != 0)
}

func sysFcntl(t *kernel.Task, a *[6]uint64) (uint64, error) {
	fd, cmd, arg := a[0], int(int32(a[1])), a[2]
	switch cmd {
	case unix.F_DUPFD, unix.F_DUPFD_CLOEXEC:
		if int32(arg) < 0 || uint64(int32(arg)) >= nofile(t) {
			return 0, unix.EINVAL
		}
		return dupFrom(t, fd, int32(arg), cmd == unix.F_DUPFD_CLOEXEC)
	case unix.F_GETFD:
		c, err := t.FDTable().Cloexec(int32(fd))
		if err != nil {
			return 0, err
		}
		if c {
			return unix.FD_CLOEXEC, nil
		}
		return 0, nil
	case unix.F_SETFD:
		return 0, t.FDTable().SetCloexec(int32(fd), arg&unix.FD_CLOEXEC != 0)
	}
	d, err := getFile(t, fd)
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	switch cmd {
	case unix.F_GETFL:
		return uint64(d.StatusFlags()), nil
	case unix.F_SETFL:
		if d.StatusFlags()&unix.O_PATH != 0 {
			return 0, unix.EBADF
		}
		const settable = unix.O_APPEND | unix.O_NONBLOCK | unix.O_ASYNC | unix.O_DIRECT | unix.O_NOATIME
		d.SetStatusFlags(d.StatusFlags()&^settable | int(arg)&settable)
		return 0, nil
	case unix.F_GETLK, unix.F_SETLK, unix.F_SETLKW, unix.F_OFD_GETLK, unix.F_OFD_SETLK, unix.F_OFD_SETLKW:
		return fcntlLock(t, d, cmd, arg)
	case unix.F_ADD_SEALS, unix.F_GET_SEALS:
		return fcntlSeals(t, d, cmd, arg)
	case unix.F_GETPIPE_SZ, unix.F_SETPIPE_SZ:
		return fcntlPipeSize(t, d, cmd, arg)
	}
	logging.WarnOnce("fcntl-"+strconv.Itoa(cmd), "fcntl command %d is not supported yet; returning EINVAL", cmd)
	return 0, unix.EINVAL
}

// unsafeBytes views a plain struct as the bytes the app sees.
func unsafeBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

func doFstat(t *kernel.Task, fd, addr uint64) (uint64, error) {
	d, err := getFile(t, fd)
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	st, err := d.Stat()
	if err != nil {
		return 0, err
	}
	if _, err := t.MM().CopyOut(addr, unsafeBytes(&st)); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

func sysFstat(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return doFstat(t, a[0], a[1])
}

// Descriptor-level ioctls every file accepts.
const (
	fionbio  = 0x5421
	fionread = 0x541b
	fioclex  = 0x5451
	fionclex = 0x5450
)

func sysIoctl(t *kernel.Task, a *[6]uint64) (uint64, error) {
	fd, cmd, arg := a[0], uint32(a[1]), a[2]
	d, err := getFile(t, fd)
	if err != nil {
		return 0, err
	}
	defer d.DecRef()
	switch cmd {
	case fioclex, fionclex:
		return 0, t.FDTable().SetCloexec(int32(fd), cmd == fioclex)
	case fionbio:
		var b [4]byte
		if _, err := t.MM().CopyIn(arg, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		fl := d.StatusFlags() &^ unix.O_NONBLOCK
		if binary.LittleEndian.Uint32(b[:]) != 0 {
			fl |= unix.O_NONBLOCK
		}
		d.SetStatusFlags(fl)
		return 0, nil
	}
	if cmd == fionread && d.VirtualDentry().Ok() && !d.Stream() && !d.IsDir() {
		// A regular file: the bytes between the position and the end.
		attr, err := d.Attr()
		if err != nil {
			return 0, err
		}
		if attr.Type() == unix.S_IFREG {
			pos, _ := d.Seek(0, unix.SEEK_CUR)
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], uint32(max(attr.Size-pos, 0)))
			if _, err := t.MM().CopyOut(arg, b[:]); err != nil {
				return 0, unix.EFAULT
			}
			return 0, nil
		}
	}
	return d.Ioctl(t, uint64(cmd), arg)
}
