package devpts

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Terminal ioctls (asm-generic/ioctls.h).
const (
	tcgets      = 0x5401
	tcsets      = 0x5402
	tcsetsw     = 0x5403
	tcsetsf     = 0x5404
	tcsbrk      = 0x5409
	tcxonc      = 0x540a
	tcflsh      = 0x540b
	tiocexcl    = 0x540c
	tiocnxcl    = 0x540d
	tiocsctty   = 0x540e
	tiocgpgrp   = 0x540f
	tiocspgrp   = 0x5410
	tiocoutq    = 0x5411
	tiocgwinsz  = 0x5413
	tiocswinsz  = 0x5414
	tiocinq     = 0x541b // FIONREAD
	tiocpkt     = 0x5420
	tiocnotty   = 0x5422
	tiocsetd    = 0x5423
	tiocgetd    = 0x5424
	tcsbrkp     = 0x5425
	tiocgsid    = 0x5429
	tcgets2     = 0x802c542a
	tcsets2     = 0x402c542b
	tcsetsw2    = 0x402c542c
	tcsetsf2    = 0x402c542d
	tiocgptn    = 0x80045430
	tiocsptlck  = 0x40045431
	tiocgdev    = 0x80045432
	tiocsig     = 0x40045436
	tiocgpkt    = 0x80045438
	tiocgptlck  = 0x80045439
	tiocgexcl   = 0x80045440
	tiocgptpeer = 0x5441
)

// tcflsh and tcxonc arguments.
const (
	tciflush  = 0
	tcoflush  = 1
	tcioflush = 2
	tcooff    = 0
	tcoon     = 1
	tcioff    = 2
	tcion     = 3
)

// userMemory is how ioctls reach the caller's memory: the MM of the
// task, or a test's stand-in (a Context that implements it itself).
type userMemory interface {
	CopyIn(addr uint64, dst []byte) (int, error)
	CopyOut(addr uint64, src []byte) (int, error)
}

func memOf(ctx vfs.Context) userMemory {
	if m, ok := ctx.(userMemory); ok {
		return m
	}
	return ctx.MM()
}

func copyOut(ctx vfs.Context, addr uint64, b []byte) error {
	if _, err := memOf(ctx).CopyOut(addr, b); err != nil {
		return unix.EFAULT
	}
	return nil
}

func copyIn(ctx vfs.Context, addr uint64, b []byte) error {
	if _, err := memOf(ctx).CopyIn(addr, b); err != nil {
		return unix.EFAULT
	}
	return nil
}

func putInt(ctx vfs.Context, addr uint64, v uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return copyOut(ctx, addr, b[:])
}

func getInt(ctx vfs.Context, addr uint64) (int32, error) {
	var b [4]byte
	if err := copyIn(ctx, addr, b[:]); err != nil {
		return 0, err
	}
	return int32(binary.LittleEndian.Uint32(b[:])), nil
}

// ioctl serves both ends. As on Linux, termios, window size and job
// control ioctls on the master act on the slave; queue ioctls act on
// the end they are made on.
func (t *Terminal) ioctl(ctx vfs.Context, f vfs.File, master bool, cmd, arg uint64) (uint64, error) {
	if !master {
		t.mu.Lock()
		hung := t.hungUp
		t.mu.Unlock()
		if hung {
			if cmd == tiocspgrp {
				return 0, unix.ENOTTY
			}
			return 0, unix.EIO
		}
	}
	if master {
		switch cmd {
		case tiocgptn:
			return 0, putInt(ctx, arg, t.index)
		case tiocsptlck:
			v, err := getInt(ctx, arg)
			if err != nil {
				return 0, err
			}
			t.mu.Lock()
			t.locked = v != 0
			t.mu.Unlock()
			return 0, nil
		case tiocgptlck:
			t.mu.Lock()
			locked := t.locked
			t.mu.Unlock()
			var v uint32
			if locked {
				v = 1
			}
			return 0, putInt(ctx, arg, v)
		case tiocgptpeer:
			return t.openPeer(ctx, f.(*masterFile), int(arg))
		case tiocsig:
			sig := unix.Signal(arg)
			if sig < 1 || sig > 64 {
				return 0, unix.EINVAL
			}
			t.mu.Lock()
			if t.signalHook != nil {
				t.ld.sigs |= 1 << uint(sig)
			}
			t.unlockAndSignal()
			return 0, nil
		case tiocpkt:
			// Packet mode is not supported: turning it off is all that
			// works.
			v, err := getInt(ctx, arg)
			if err != nil {
				return 0, err
			}
			if v != 0 {
				return 0, unix.EINVAL
			}
			return 0, nil
		case tiocgpkt:
			return 0, putInt(ctx, arg, 0)
		}
	}
	switch cmd {
	case tcgets, tcgets2:
		n := termiosLen
		if cmd == tcgets2 {
			n = termios2Len
		}
		var b [termios2Len]byte
		tt := t.Termios()
		tt.marshal(b[:n])
		return 0, copyOut(ctx, arg, b[:n])
	case tcsets, tcsetsw, tcsetsf, tcsets2, tcsetsw2, tcsetsf2:
		n := termiosLen
		if cmd == tcsets2 || cmd == tcsetsw2 || cmd == tcsetsf2 {
			n = termios2Len
		}
		var b [termios2Len]byte
		if err := copyIn(ctx, arg, b[:n]); err != nil {
			return 0, err
		}
		tt := t.Termios()
		tt.unmarshal(b[:n])
		// TCSETSW waits for output to drain: a pty has no driver queue,
		// so there is nothing to wait for (as on Linux).
		t.SetTermios(tt, cmd == tcsetsf || cmd == tcsetsf2)
		return 0, nil
	case tiocgwinsz:
		var b [winsizeLen]byte
		w := t.Winsize()
		w.marshal(b[:])
		return 0, copyOut(ctx, arg, b[:])
	case tiocswinsz:
		var b [winsizeLen]byte
		if err := copyIn(ctx, arg, b[:]); err != nil {
			return 0, err
		}
		var w Winsize
		w.unmarshal(b[:])
		t.SetWinsize(w)
		return 0, nil
	case tcflsh:
		return 0, t.flush(master, arg)
	case tcxonc:
		return 0, t.flowControl(master, arg)
	case tcsbrk, tcsbrkp:
		// tcdrain and tcsendbreak: no queue to drain, no line to break.
		return 0, nil
	case tiocinq:
		t.mu.Lock()
		n := t.ld.out.n
		if !master {
			n = t.ld.inq()
		}
		t.mu.Unlock()
		return 0, putInt(ctx, arg, uint32(n))
	case tiocoutq:
		// Linux reports the driver's buffer, which a pty does not have.
		return 0, putInt(ctx, arg, 0)
	case tiocgpgrp:
		t.mu.Lock()
		pgrp := t.pgrp
		t.mu.Unlock()
		if !master && !t.isCTTY(ctx) {
			return 0, unix.ENOTTY
		}
		return 0, putInt(ctx, arg, uint32(pgrp))
	case tiocspgrp:
		return 0, t.setPgrp(ctx, arg)
	case tiocgsid:
		if !master && !t.isCTTY(ctx) {
			return 0, unix.ENOTTY
		}
		t.mu.Lock()
		sid := t.sid
		t.mu.Unlock()
		if sid == 0 {
			return 0, unix.ENOTTY
		}
		return 0, putInt(ctx, arg, uint32(sid))
	case tiocsctty:
		return 0, t.setCTTY(ctx, f.StatusFlags(), arg)
	case tiocnotty:
		if master || !t.isCTTY(ctx) {
			return 0, unix.ENOTTY
		}
		t.mu.Lock()
		s := t.clearSessionLocked()
		t.mu.Unlock()
		if s != nil {
			s.SetControllingTTY(nil)
		}
		return 0, nil
	case tiocgetd:
		return 0, putInt(ctx, arg, 0) // N_TTY
	case tiocsetd:
		v, err := getInt(ctx, arg)
		if err != nil {
			return 0, err
		}
		if v != 0 {
			return 0, unix.EINVAL
		}
		return 0, nil
	case tiocexcl, tiocnxcl:
		return 0, nil
	case tiocgexcl:
		return 0, putInt(ctx, arg, 0)
	case tiocgdev:
		// new_encode_dev of the slave's number.
		m := t.index
		return 0, putInt(ctx, arg, m&0xff|SlaveMajor<<8|(m&^0xff)<<12)
	}
	return 0, unix.ENOTTY
}

// flush is TCFLSH. On the slave, input is what the slave reads and
// output what it wrote; on the master, input is what the slave wrote,
// and the master's output has already reached the slave's line
// discipline, which the master's flush does not touch (as on Linux).
func (t *Terminal) flush(master bool, arg uint64) error {
	if arg > tcioflush {
		return unix.EINVAL
	}
	in := arg == tciflush || arg == tcioflush
	out := arg == tcoflush || arg == tcioflush
	t.mu.Lock()
	if master {
		if in {
			t.ld.flushOutput()
		}
	} else {
		if in {
			t.ld.flushInput()
		}
		if out {
			t.ld.flushOutput()
		}
	}
	t.notifyLocked()
	t.mu.Unlock()
	return nil
}

// flowControl is TCXONC. On the slave TCOOFF/TCOON stop and restart its
// output and TCIOFF/TCION send VSTOP/VSTART to the master; on the master
// they are accepted and do nothing.
func (t *Terminal) flowControl(master bool, arg uint64) error {
	if arg > tcion {
		return unix.EINVAL
	}
	if master {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch arg {
	case tcooff:
		t.ld.stopped, t.ld.tcoStopped = true, true
	case tcoon:
		t.ld.stopped, t.ld.tcoStopped = false, false
	case tcioff, tcion:
		c := t.ld.cc(VSTOP)
		if arg == tcion {
			c = t.ld.cc(VSTART)
		}
		if c != 0 && t.ld.out.free() > 0 {
			t.ld.out.put(c)
		}
	}
	t.notifyLocked()
	return nil
}

// setPgrp is TIOCSPGRP: only the controlling process may, and the only
// process group is its own.
func (t *Terminal) setPgrp(ctx vfs.Context, arg uint64) error {
	if !t.isCTTY(ctx) {
		return unix.ENOTTY
	}
	pgrp, err := getInt(ctx, arg)
	if err != nil {
		return err
	}
	if pgrp < 0 {
		return unix.EINVAL
	}
	if pgrp != ctx.(Session).ProcessID() {
		return unix.ESRCH
	}
	t.mu.Lock()
	t.pgrp = pgrp
	t.mu.Unlock()
	return nil
}

// setCTTY is TIOCSCTTY (tiocsctty), the caller being a session leader.
func (t *Terminal) setCTTY(ctx vfs.Context, flags int, arg uint64) error {
	s, ok := ctx.(Session)
	if !ok {
		return unix.EPERM
	}
	if s.ControllingTTY() == t {
		return nil
	}
	if s.ControllingTTY() != nil {
		return unix.EPERM
	}
	admin := ctx.FSCredentials().Caps.Has(vfs.CapSysAdmin)
	t.mu.Lock()
	var old Session
	if t.session != nil {
		if arg != 1 || !admin {
			t.mu.Unlock()
			return unix.EPERM
		}
		old = t.clearSessionLocked()
	}
	if flags&unix.O_ACCMODE == unix.O_WRONLY && !admin {
		t.mu.Unlock()
		return unix.EPERM
	}
	t.setSessionLocked(s)
	t.mu.Unlock()
	if old != nil && old.ControllingTTY() == t {
		old.SetControllingTTY(nil)
	}
	return nil
}

// openPeer is TIOCGPTPEER: open the slave as if by its path on the
// devpts mount the master came from, and return a new descriptor.
func (t *Terminal) openPeer(ctx vfs.Context, f *masterFile, flags int) (uint64, error) {
	// Linux hands the flags to dentry_open; only these mean anything for
	// a terminal.
	flags &= unix.O_ACCMODE | unix.O_NOCTTY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_APPEND
	inst, ok := ctx.(FDInstaller)
	if !ok {
		return 0, unix.ENOTTY
	}
	var d *vfs.FileDescription
	if m := f.mnt; m != nil && m.Superblock().FS == vfs.Filesystem(t.fs) {
		root := m.Root()
		vd, err := t.fs.v.Resolve(ctx, &vfs.Walk{Root: root, Start: root, Path: t.node.name})
		if err != nil {
			return 0, err
		}
		if d, err = t.fs.v.OpenVD(ctx, vd, flags); err != nil {
			return 0, err
		}
	} else {
		// ptmx came from outside devpts: a descriptor without a path.
		sf, err := t.openSlave(ctx, flags, true)
		if err != nil {
			return 0, err
		}
		d = vfs.NewFileDescription(sf)
	}
	defer d.DecRef()
	fd, err := inst.InstallFD(d, flags&unix.O_CLOEXEC != 0)
	if err != nil {
		return 0, err
	}
	return uint64(fd), nil
}
