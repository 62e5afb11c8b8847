package devpts

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Session is an optional vfs.Context interface: the calling process's
// side of terminal job control. The kernel's Task implements it. While
// the sandbox has one process, that process is its own session and
// process group, and is taken to be the session leader (as PID 1 of a
// container is), so:
//
//   - the first open of a slave without O_NOCTTY, for reading, by a
//     process without a controlling terminal makes the slave its
//     controlling terminal (TIOCSCTTY does it explicitly);
//   - the terminal's foreground process group is that process: VINTR,
//     VQUIT, VSUSP, TIOCSWINSZ and TIOCSIG signal it, and closing the
//     master sends it SIGHUP and SIGCONT and takes the terminal away.
//
// Contexts without it never acquire a controlling terminal; /dev/tty
// then fails with ENXIO.
type Session interface {
	// ControllingTTY is the process's controlling terminal (nil: none).
	ControllingTTY() any
	// SetControllingTTY gives the process tty (a *Terminal) as its
	// controlling terminal, or takes it away (nil).
	SetControllingTTY(tty any)
	// SignalProcess sends sig to the caller's process.
	SignalProcess(sig unix.Signal)
	// ProcessID is the caller's pid, which is also its process group
	// and session id.
	ProcessID() int32
}

// FDInstaller is an optional vfs.Context interface for TIOCGPTPEER,
// which returns a new descriptor: install d (the installer takes its own
// reference) at the lowest free fd.
type FDInstaller interface {
	InstallFD(d *vfs.FileDescription, cloexec bool) (int32, error)
}

// Terminal is one pseudo-terminal pair: the master (the opener of ptmx),
// the slave (/dev/pts/N) and the line discipline between them.
type Terminal struct {
	fs    *FS
	index uint32
	node  *node // /dev/pts/N

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change of state
	ld      ldisc
	winsize Winsize
	locked  bool // TIOCSPTLCK: slave opens fail with EIO
	slaves  int  // open slave files
	// otherClosed is Linux's TTY_OTHER_CLOSED on the master: the last
	// slave file closed (cleared by the next open). Master reads then
	// fail with EIO once drained, and poll reports POLLHUP.
	otherClosed bool
	// hungUp: the master closed. Slave reads give EOF, writes and
	// ioctls EIO, poll everything.
	hungUp bool

	// The session holding the slave as its controlling terminal, its id
	// and the foreground process group.
	session    Session
	sid, pgrp  int32
	signalHook func(sig unix.Signal) // see SignalForeground
}

// SignalForeground is the hook that signals the terminal's foreground
// process group; it is set when a process acquires the slave as its
// controlling terminal (to its Session's SignalProcess) and cleared when
// it loses it. Tests set it directly.
func (t *Terminal) SignalForeground(fn func(sig unix.Signal)) {
	t.mu.Lock()
	t.signalHook = fn
	t.mu.Unlock()
}

// Index is N of /dev/pts/N.
func (t *Terminal) Index() uint32 { return t.index }

func (t *Terminal) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// unlockAndSignal releases t.mu and then sends the signals the line
// discipline raised, so that no signal is sent under the lock.
func (t *Terminal) unlockAndSignal() {
	sigs, hook := t.ld.sigs, t.signalHook
	t.ld.sigs = 0
	t.mu.Unlock()
	if sigs == 0 || hook == nil {
		return
	}
	for s := unix.Signal(1); s < 64; s++ {
		if sigs&(1<<uint(s)) != 0 {
			hook(s)
		}
	}
}

// block waits for ch to close, a signal (EINTR) or timeout (ETIMEDOUT).
func block(ctx vfs.Context, ch <-chan struct{}, timeout time.Duration) error {
	b, ok := ctx.(vfs.Blocker)
	if !ok {
		return unix.EAGAIN
	}
	return b.Block(ch, timeout)
}

func totalLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// gather reads a list of buffers byte by byte.
type gather struct{ bufs [][]byte }

func (g *gather) empty() bool {
	for len(g.bufs) > 0 && len(g.bufs[0]) == 0 {
		g.bufs = g.bufs[1:]
	}
	return len(g.bufs) == 0
}

// peek returns the next byte; the caller has checked !empty().
func (g *gather) peek() byte { return g.bufs[0][0] }
func (g *gather) skip()      { g.bufs[0] = g.bufs[0][1:] }

// openMaster makes the master's file.
func (t *Terminal) openMaster(mnt *vfs.Mount, flags int) *masterFile {
	f := &masterFile{t: t, mnt: mnt}
	f.SetStatusFlags(flags &^ openOnlyFlags)
	return f
}

// openOnlyFlags are open(2) flags that are not status flags.
const openOnlyFlags = unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY | unix.O_TRUNC | unix.O_CLOEXEC

// openSlave opens the slave (pty_open): EIO while locked or once the
// master is gone. acquire is false for /dev/tty, which never makes a
// terminal controlling.
func (t *Terminal) openSlave(ctx vfs.Context, flags int, acquire bool) (*slaveFile, error) {
	t.mu.Lock()
	if t.hungUp || t.locked {
		t.mu.Unlock()
		return nil, unix.EIO
	}
	t.slaves++
	t.otherClosed = false
	t.notifyLocked()
	if acquire && flags&unix.O_NOCTTY == 0 && flags&unix.O_ACCMODE != unix.O_WRONLY && t.session == nil {
		if s, ok := ctx.(Session); ok && s.ControllingTTY() == nil {
			t.setSessionLocked(s)
		}
	}
	t.mu.Unlock()
	f := &slaveFile{t: t}
	f.SetStatusFlags(flags &^ openOnlyFlags)
	return f, nil
}

// setSessionLocked makes the slave s's controlling terminal, with s's
// process as the foreground process group (proc_set_tty).
func (t *Terminal) setSessionLocked(s Session) {
	t.session = s
	t.sid = s.ProcessID()
	t.pgrp = t.sid
	t.signalHook = s.SignalProcess
	s.SetControllingTTY(t)
}

// clearSessionLocked ends the association with the session and returns
// it.
func (t *Terminal) clearSessionLocked() Session {
	s := t.session
	t.session, t.sid, t.pgrp, t.signalHook = nil, 0, 0, nil
	return s
}

// isCTTY reports whether the slave is the caller's controlling terminal.
func (t *Terminal) isCTTY(ctx vfs.Context) bool {
	s, ok := ctx.(Session)
	return ok && s.ControllingTTY() == t
}

// releaseMaster is the master's close: the slave hangs up, its node
// goes away, and the controlling process gets SIGHUP and SIGCONT.
func (t *Terminal) releaseMaster() {
	t.mu.Lock()
	t.hungUp = true
	s := t.clearSessionLocked()
	t.ld.flushInput()
	t.notifyLocked()
	t.mu.Unlock()
	t.fs.masterClosed(t)
	if s != nil {
		if s.ControllingTTY() == t {
			s.SetControllingTTY(nil)
		}
		s.SignalProcess(unix.SIGHUP)
		s.SignalProcess(unix.SIGCONT)
	}
}

func (t *Terminal) releaseSlave() {
	t.mu.Lock()
	t.slaves--
	last := t.slaves == 0
	if last {
		t.otherClosed = true
	}
	gone := last && t.hungUp
	t.notifyLocked()
	t.mu.Unlock()
	if gone {
		t.fs.freeIndex(t)
	}
}

// Master and slave I/O.

// masterRead is n_tty_read on the master's side: raw, at least one byte.
func (t *Terminal) masterRead(ctx vfs.Context, dst [][]byte, nonblock bool) (int, error) {
	want := totalLen(dst)
	if want == 0 {
		return 0, nil
	}
	sc := scatter{bufs: dst}
	for {
		t.mu.Lock()
		if t.ld.out.n > 0 {
			n := t.ld.out.take(&sc, want)
			t.notifyLocked()
			t.mu.Unlock()
			return n, nil
		}
		if t.otherClosed {
			t.mu.Unlock()
			return 0, unix.EIO
		}
		ch := t.changed
		t.mu.Unlock()
		if nonblock {
			return 0, unix.EAGAIN
		}
		if err := block(ctx, ch, -1); err != nil {
			return 0, err
		}
	}
}

// masterWrite feeds the bytes to the slave's input processing. It waits
// while the input queue is full, so a blocking write always completes.
func (t *Terminal) masterWrite(ctx vfs.Context, src [][]byte, nonblock bool) (int, error) {
	g := gather{bufs: src}
	done := 0
	for {
		t.mu.Lock()
		n := 0
		for !g.empty() && t.ld.inputRoom(true) {
			t.ld.receive(g.peek())
			g.skip()
			n++
		}
		done += n
		if n > 0 {
			t.notifyLocked()
		}
		ch := t.changed
		t.unlockAndSignal()
		if g.empty() {
			return done, nil
		}
		if nonblock {
			if done > 0 {
				return done, nil
			}
			return 0, unix.EAGAIN
		}
		if err := block(ctx, ch, -1); err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, err
		}
	}
}

// slaveRead is n_tty_read: one line in canonical mode; otherwise as
// VMIN and VTIME say (VMIN bytes, VTIME tenths of a second between bytes
// once one came, or for the first if VMIN is 0).
func (t *Terminal) slaveRead(ctx vfs.Context, dst [][]byte, nonblock bool) (int, error) {
	want := totalLen(dst)
	if want == 0 {
		return 0, nil
	}
	sc := scatter{bufs: dst}
	l := &t.ld
	t.mu.Lock()
	minimum, interByte, timeout := 0, time.Duration(0), time.Duration(-1)
	if !l.icanon {
		vmin, vtime := int(l.cc(VMIN)), time.Duration(l.cc(VTIME))*100*time.Millisecond
		if vmin > 0 {
			minimum, interByte = vmin, vtime
		} else {
			minimum, timeout = 1, vtime
		}
	}
	t.mu.Unlock()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	copied := 0
	for {
		t.mu.Lock()
		if t.hungUp {
			t.mu.Unlock()
			return copied, nil
		}
		if !l.readable(1) {
			ch := t.changed
			t.mu.Unlock()
			if timeout == 0 {
				return copied, nil
			}
			if nonblock {
				if copied > 0 {
					return copied, nil
				}
				return 0, unix.EAGAIN
			}
			wait := time.Duration(-1)
			if timeout > 0 {
				if wait = time.Until(deadline); wait <= 0 {
					return copied, nil
				}
			}
			err := block(ctx, ch, wait)
			if err == unix.ETIMEDOUT {
				timeout = 0
				continue
			}
			if err != nil {
				if copied > 0 {
					return copied, nil
				}
				return 0, err
			}
			continue
		}
		if l.icanon {
			copied += l.readCanon(&sc)
			t.notifyLocked()
			t.mu.Unlock()
			return copied, nil
		}
		copied += l.readRaw(&sc, want-copied)
		t.notifyLocked()
		t.mu.Unlock()
		if copied >= minimum || copied >= want {
			return copied, nil
		}
		if interByte > 0 {
			timeout, deadline = interByte, time.Now().Add(interByte)
		}
	}
}

// slaveWrite is n_tty_write: output processing into the master's queue,
// waiting while it is full or output is stopped (VSTOP, TCOOFF).
func (t *Terminal) slaveWrite(ctx vfs.Context, src [][]byte, nonblock bool) (int, error) {
	g := gather{bufs: src}
	done := 0
	for {
		t.mu.Lock()
		if t.hungUp {
			t.mu.Unlock()
			if done > 0 {
				return done, nil
			}
			return 0, unix.EIO
		}
		n := 0
		if !t.ld.stopped {
			for !g.empty() && t.ld.outputChar(g.peek()) {
				g.skip()
				n++
			}
		}
		done += n
		if n > 0 {
			t.notifyLocked()
		}
		ch := t.changed
		t.mu.Unlock()
		if g.empty() {
			return done, nil
		}
		if nonblock {
			if done > 0 {
				return done, nil
			}
			return 0, unix.EAGAIN
		}
		if err := block(ctx, ch, -1); err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, err
		}
	}
}

// Poll bits x/sys/unix lacks.
const (
	pollRdNorm = 0x40
	pollWrNorm = 0x100
)

func (t *Terminal) masterReadiness(mask int16) int16 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var r int16
	if t.ld.out.n > 0 {
		r |= unix.POLLIN | pollRdNorm
	}
	if t.otherClosed {
		r |= unix.POLLHUP
	}
	if t.ld.inputRoom(false) {
		r |= unix.POLLOUT | pollWrNorm
	}
	return r & (mask | unix.POLLHUP | unix.POLLERR)
}

func (t *Terminal) slaveReadiness(mask int16) int16 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hungUp {
		return (unix.POLLIN | unix.POLLOUT | unix.POLLERR | unix.POLLHUP | pollRdNorm | pollWrNorm) & (mask | unix.POLLHUP | unix.POLLERR)
	}
	var r int16
	if t.ld.readable(t.ld.pollMin()) {
		r |= unix.POLLIN | pollRdNorm
	}
	if !t.ld.stopped && t.ld.out.free() > 0 {
		r |= unix.POLLOUT | pollWrNorm
	}
	return r & (mask | unix.POLLHUP | unix.POLLERR)
}

// Termios returns the slave's termios.
func (t *Terminal) Termios() Termios {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ld.termios
}

// SetTermios is TCSETS (TCSETSF if flush).
func (t *Terminal) SetTermios(tt Termios, flush bool) {
	t.mu.Lock()
	if flush {
		t.ld.flushInput()
	}
	t.ld.setTermios(tt, false)
	t.notifyLocked()
	t.mu.Unlock()
}

// SetWinsize is TIOCSWINSZ: a change signals SIGWINCH to the foreground.
func (t *Terminal) SetWinsize(w Winsize) {
	t.mu.Lock()
	changed := t.winsize != w
	t.winsize = w
	if changed {
		t.ld.sigs |= 1 << uint(unix.SIGWINCH)
	}
	t.unlockAndSignal()
}

// Winsize is TIOCGWINSZ.
func (t *Terminal) Winsize() Winsize {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.winsize
}

// masterFile is the master's open file.
type masterFile struct {
	t   *Terminal
	mnt *vfs.Mount // the devpts mount ptmx was opened on, for TIOCGPTPEER
	vfs.StreamStatus
}

// Terminal is the pair the file belongs to.
func (f *masterFile) Terminal() *Terminal { return f.t }

// Read implements vfs.File.
func (f *masterFile) Read(ctx vfs.Context, dst [][]byte, _ int64) (int, error) {
	return f.t.masterRead(ctx, dst, f.Nonblocking())
}

// Write implements vfs.File.
func (f *masterFile) Write(ctx vfs.Context, src [][]byte, _ int64) (int, error) {
	return f.t.masterWrite(ctx, src, f.Nonblocking())
}

// Stat implements vfs.File: ptmx's attributes.
func (f *masterFile) Stat() (unix.Stat_t, error) {
	a, err := f.t.fs.ptmx.Stat(nil)
	return a.ToStat(), err
}

// Ioctl implements vfs.File.
func (f *masterFile) Ioctl(ctx vfs.Context, cmd, arg uint64) (uint64, error) {
	return f.t.ioctl(ctx, f, true, cmd, arg)
}

// Readiness implements vfs.Poller.
func (f *masterFile) Readiness(mask int16) int16 { return f.t.masterReadiness(mask) }

// Release implements vfs.File.
func (f *masterFile) Release() { f.t.releaseMaster() }

// slaveFile is an open file of the slave (/dev/pts/N, /dev/tty,
// TIOCGPTPEER).
type slaveFile struct {
	t *Terminal
	vfs.StreamStatus
}

// Terminal is the pair the file belongs to.
func (f *slaveFile) Terminal() *Terminal { return f.t }

// Read implements vfs.File.
func (f *slaveFile) Read(ctx vfs.Context, dst [][]byte, _ int64) (int, error) {
	return f.t.slaveRead(ctx, dst, f.Nonblocking())
}

// Write implements vfs.File.
func (f *slaveFile) Write(ctx vfs.Context, src [][]byte, _ int64) (int, error) {
	return f.t.slaveWrite(ctx, src, f.Nonblocking())
}

// Stat implements vfs.File: the node's attributes.
func (f *slaveFile) Stat() (unix.Stat_t, error) {
	a, err := f.t.node.Stat(nil)
	return a.ToStat(), err
}

// Ioctl implements vfs.File.
func (f *slaveFile) Ioctl(ctx vfs.Context, cmd, arg uint64) (uint64, error) {
	return f.t.ioctl(ctx, f, false, cmd, arg)
}

// Readiness implements vfs.Poller.
func (f *slaveFile) Readiness(mask int16) int16 { return f.t.slaveReadiness(mask) }

// Release implements vfs.File.
func (f *slaveFile) Release() { f.t.releaseSlave() }

var (
	_ vfs.File   = (*masterFile)(nil)
	_ vfs.Poller = (*masterFile)(nil)
	_ vfs.File   = (*slaveFile)(nil)
	_ vfs.Poller = (*slaveFile)(nil)
)
