package syscalls

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/pipe"
)

func init() {
	full(unix.SYS_PIPE, sysPipe, aHex)
	full(unix.SYS_PIPE2, sysPipe2, aHex, aHex)
}

func doPipe(t *kernel.Task, addr uint64, flags uint64) (uint64, error) {
	if flags&^(unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_DIRECT) != 0 {
		return 0, unix.EINVAL
	}
	p := pipe.New()
	st := int(flags & (unix.O_NONBLOCK | unix.O_DIRECT))
	r := kernel.NewFileDescription(p.Open(unix.O_RDONLY | st))
	w := kernel.NewFileDescription(p.Open(unix.O_WRONLY | st))
	defer r.DecRef()
	defer w.DecRef()
	cloexec := flags&unix.O_CLOEXEC != 0
	rfd, err := t.FDTable().Install(r, 0, cloexec, nofile(t))
	if err != nil {
		return 0, err
	}
	wfd, err := t.FDTable().Install(w, 0, cloexec, nofile(t))
	if err != nil {
		t.FDTable().Remove(rfd)
		return 0, err
	}
	var b [8]byte
	binary.LittleEndian.PutUint32(b[0:], uint32(rfd))
	binary.LittleEndian.PutUint32(b[4:], uint32(wfd))
	if _, err := t.MM().CopyOut(addr, b[:]); err != nil {
		t.FDTable().Remove(rfd)
		t.FDTable().Remove(wfd)
		return 0, unix.EFAULT
	}
	return 0, nil
}

func sysPipe(t *kernel.Task, a *[6]uint64) (uint64, error)  { return doPipe(t, a[0], 0) }
func sysPipe2(t *kernel.Task, a *[6]uint64) (uint64, error) { return doPipe(t, a[0], a[1]) }

// pipeOf returns the pipe behind d, if it is one.
func pipeOf(d *kernel.FileDescription) (*pipe.End, bool) {
	switch f := d.File.(type) {
	case *pipe.End:
		return f, true
	case interface{ PipeEnd() *pipe.End }:
		return f.PipeEnd(), true
	}
	return nil, false
}

func fcntlPipeSize(t *kernel.Task, d *kernel.FileDescription, cmd int, arg uint64) (uint64, error) {
	e, ok := pipeOf(d)
	if !ok {
		return 0, unix.EBADF
	}
	if cmd == unix.F_GETPIPE_SZ {
		return uint64(e.Pipe().Size()), nil
	}
	n, err := e.Pipe().SetSize(int(int32(arg)))
	return uint64(n), err
}
