package syscalls

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

func init() {
	partial(unix.SYS_POLL, pollNote, sysPoll, aHex, aInt, aInt)
	partial(unix.SYS_PPOLL, pollNote, sysPpoll, aHex, aInt, aHex, aHex, aInt)
	partial(unix.SYS_SELECT, pollNote, sysSelect, aInt, aHex, aHex, aHex, aHex)
	partial(unix.SYS_PSELECT6, pollNote, sysPselect6, aInt, aHex, aHex, aHex, aHex, aHex)
}

const pollNote = "files of the Sentry (pipes) are rechecked with a backoff of up to 10 ms while waiting; host descriptors wake at once"

// hostFDer is a file backed by a host descriptor (stdio).
type hostFDer interface{ HostFD() int }

// readiness is one descriptor's ready events among mask, without
// waiting; hostFD >= 0 means the answer must come from the host.
func readiness(d *kernel.FileDescription, mask int16) (ready int16, hostFD int) {
	if h, ok := d.File.(hostFDer); ok {
		return 0, h.HostFD()
	}
	if p, ok := d.File.(vfs.Poller); ok {
		return p.Readiness(mask), -1
	}
	// Regular files and directories are always ready, as on Linux.
	return mask & (unix.POLLIN | unix.POLLOUT | pollRdNorm | pollWrNorm), -1
}

const (
	pollRdNorm = 0x40
	pollWrNorm = 0x100
	pollNval   = 0x20
)

type pollEntry struct {
	fd      int32
	events  int16
	revents int16
}

// doPoll waits until some entry is ready, timeout passes (< 0: forever)
// or a signal comes, and returns how many entries have revents.
func doPoll(t *kernel.Task, ents []pollEntry, timeout time.Duration) (int, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	backoff := 100 * time.Microsecond
	for {
		n := 0
		var host []unix.PollFd
		var hostIdx []int
		sentryWaits := false
		for i := range ents {
			e := &ents[i]
			e.revents = 0
			if e.fd < 0 {
				continue
			}
			d, ok := t.FDTable().Get(e.fd)
			if !ok {
				e.revents = pollNval
				n++
				continue
			}
			mask := e.events | unix.POLLERR | unix.POLLHUP
			r, hfd := readiness(d, mask)
			d.DecRef()
			if hfd >= 0 {
				host = append(host, unix.PollFd{Fd: int32(hfd), Events: e.events})
				hostIdx = append(hostIdx, i)
				continue
			}
			e.revents = r & mask
			if e.revents != 0 {
				n++
			} else {
				sentryWaits = true
			}
		}
		if len(host) > 0 {
			if _, err := unix.Poll(host, 0); err == nil {
				for k, p := range host {
					if p.Revents != 0 {
						ents[hostIdx[k]].revents = p.Revents
						n++
					}
				}
			}
		}
		if n > 0 || timeout == 0 {
			return n, nil
		}
		wait := time.Duration(-1)
		if timeout > 0 {
			wait = time.Until(deadline)
			if wait <= 0 {
				return 0, nil
			}
		}
		if sentryWaits && (wait < 0 || wait > backoff) {
			wait = backoff
			backoff = min(backoff*2, 10*time.Millisecond)
		}
		for i := range host {
			host[i].Revents = 0
		}
		err := t.WaitHostFDs(host, wait)
		if err == kernel.ErrInterrupted {
			return 0, unix.EINTR
		}
	}
}

// pollTimeout converts poll's milliseconds.
func pollTimeout(ms int32) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

func readPollFDs(t *kernel.Task, addr uint64, n uint64) ([]pollEntry, error) {
	if n > nofile(t) || n > 1<<20 {
		return nil, unix.EINVAL
	}
	buf := make([]byte, 8*n)
	if _, err := t.MM().CopyIn(addr, buf); err != nil {
		return nil, unix.EFAULT
	}
	ents := make([]pollEntry, n)
	for i := range ents {
		ents[i].fd = int32(binary.LittleEndian.Uint32(buf[8*i:]))
		ents[i].events = int16(binary.LittleEndian.Uint16(buf[8*i+4:]))
	}
	return ents, nil
}

func writePollFDs(t *kernel.Task, addr uint64, ents []pollEntry) error {
	for i, e := range ents {
		var b [2]byte
		binary.LittleEndian.PutUint16(b[:], uint16(e.revents))
		if _, err := t.MM().CopyOut(addr+uint64(8*i)+6, b[:]); err != nil {
			return unix.EFAULT
		}
	}
	return nil
}

func pollCommon(t *kernel.Task, addr, n uint64, timeout time.Duration) (uint64, error) {
	ents, err := readPollFDs(t, addr, n)
	if err != nil {
		return 0, err
	}
	k, err := doPoll(t, ents, timeout)
	if err != nil {
		return 0, err
	}
	return uint64(k), writePollFDs(t, addr, ents)
}

func sysPoll(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return pollCommon(t, a[0], a[1], pollTimeout(int32(a[2])))
}

// timespecTimeout reads a struct timespec (NULL: forever).
func timespecTimeout(t *kernel.Task, addr uint64) (time.Duration, error) {
	if addr == 0 {
		return -1, nil
	}
	var b [16]byte
	if _, err := t.MM().CopyIn(addr, b[:]); err != nil {
		return 0, unix.EFAULT
	}
	sec, nsec := int64(binary.LittleEndian.Uint64(b[:])), int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return 0, unix.EINVAL
	}
	return time.Duration(sec)*time.Second + time.Duration(nsec), nil
}

// withSigmask runs fn with the task's signal mask temporarily replaced by
// the one at maskAddr (ppoll, pselect6), if given.
func withSigmask(t *kernel.Task, maskAddr, size uint64, fn func() (uint64, error)) (uint64, error) {
	if maskAddr == 0 {
		return fn()
	}
	if size != 8 {
		return 0, unix.EINVAL
	}
	var b [8]byte
	if _, err := t.MM().CopyIn(maskAddr, b[:]); err != nil {
		return 0, unix.EFAULT
	}
	old := t.SigMask()
	t.SetSigMask(binary.LittleEndian.Uint64(b[:]))
	defer t.SetSigMask(old)
	return fn()
}

func sysPpoll(t *kernel.Task, a *[6]uint64) (uint64, error) {
	timeout, err := timespecTimeout(t, a[2])
	if err != nil {
		return 0, err
	}
	return withSigmask(t, a[3], a[4], func() (uint64, error) {
		return pollCommon(t, a[0], a[1], timeout)
	})
}

// doSelect implements select over fd_set bitmaps via poll.
func doSelect(t *kernel.Task, nfds uint64, rAddr, wAddr, eAddr uint64, timeout time.Duration) (uint64, error) {
	if int64(nfds) < 0 || nfds > nofile(t) {
		return 0, unix.EINVAL
	}
	words := (nfds + 63) / 64
	read := func(addr uint64) ([]uint64, error) {
		set := make([]uint64, words)
		if addr == 0 || words == 0 {
			return set, nil
		}
		b := make([]byte, 8*words)
		if _, err := t.MM().CopyIn(addr, b); err != nil {
			return nil, unix.EFAULT
		}
		for i := range set {
			set[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		return set, nil
	}
	rs, err := read(rAddr)
	if err != nil {
		return 0, err
	}
	ws, err := read(wAddr)
	if err != nil {
		return 0, err
	}
	es, err := read(eAddr)
	if err != nil {
		return 0, err
	}
	var ents []pollEntry
	for fd := uint64(0); fd < nfds; fd++ {
		bit := uint64(1) << (fd % 64)
		var ev int16
		if rs[fd/64]&bit != 0 {
			ev |= unix.POLLIN
		}
		if ws[fd/64]&bit != 0 {
			ev |= unix.POLLOUT
		}
		if es[fd/64]&bit != 0 {
			ev |= unix.POLLPRI
		}
		if ev != 0 {
			d, ok := t.FDTable().Get(int32(fd))
			if !ok {
				return 0, unix.EBADF
			}
			d.DecRef()
			ents = append(ents, pollEntry{fd: int32(fd), events: ev})
		}
	}
	if _, err := doPoll(t, ents, timeout); err != nil {
		return 0, err
	}
	clear(rs)
	clear(ws)
	clear(es)
	n := uint64(0)
	for _, e := range ents {
		bit := uint64(1) << (uint64(e.fd) % 64)
		w := e.fd / 64
		if e.revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 && e.events&unix.POLLIN != 0 {
			rs[w] |= bit
			n++
		}
		if e.revents&(unix.POLLOUT|unix.POLLERR) != 0 && e.events&unix.POLLOUT != 0 {
			ws[w] |= bit
			n++
		}
		if e.revents&unix.POLLPRI != 0 && e.events&unix.POLLPRI != 0 {
			es[w] |= bit
			n++
		}
	}
	write := func(addr uint64, set []uint64) error {
		if addr == 0 || words == 0 {
			return nil
		}
		b := make([]byte, 8*words)
		for i, v := range set {
			binary.LittleEndian.PutUint64(b[8*i:], v)
		}
		if _, err := t.MM().CopyOut(addr, b); err != nil {
			return unix.EFAULT
		}
		return nil
	}
	for _, x := range []struct {
		addr uint64
		set  []uint64
	}{{rAddr, rs}, {wAddr, ws}, {eAddr, es}} {
		if err := write(x.addr, x.set); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func sysSelect(t *kernel.Task, a *[6]uint64) (uint64, error) {
	timeout := time.Duration(-1)
	if a[4] != 0 {
		var b [16]byte
		if _, err := t.MM().CopyIn(a[4], b[:]); err != nil {
			return 0, unix.EFAULT
		}
		sec, usec := int64(binary.LittleEndian.Uint64(b[:])), int64(binary.LittleEndian.Uint64(b[8:]))
		if sec < 0 || usec < 0 {
			return 0, unix.EINVAL
		}
		timeout = time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond
	}
	return doSelect(t, a[0], a[1], a[2], a[3], timeout)
}

func sysPselect6(t *kernel.Task, a *[6]uint64) (uint64, error) {
	timeout, err := timespecTimeout(t, a[4])
	if err != nil {
		return 0, err
	}
	// The sixth argument points at {const sigset_t *ss; size_t ss_len}.
	var maskAddr, size uint64
	if a[5] != 0 {
		var b [16]byte
		if _, err := t.MM().CopyIn(a[5], b[:]); err != nil {
			return 0, unix.EFAULT
		}
		maskAddr, size = binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])
	}
	return withSigmask(t, maskAddr, size, func() (uint64, error) {
		return doSelect(t, a[0], a[1], a[2], a[3], timeout)
	})
}
