package syscalls

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
)

func init() {
	full(unix.SYS_RT_SIGACTION, sysRtSigaction, aSignal, aHex, aHex, aInt)
	full(unix.SYS_RT_SIGRETURN, sysRtSigreturn)
	full(unix.SYS_RT_SIGSUSPEND, sysRtSigsuspend, aHex, aInt)
	full(unix.SYS_PAUSE, sysPause)
	full(unix.SYS_RT_SIGPENDING, sysRtSigpending, aHex, aInt)
	partial(unix.SYS_ALARM, "ITIMER_REAL only", sysAlarm, aInt)
	partial(unix.SYS_SETITIMER, "ITIMER_REAL only; ITIMER_VIRTUAL and ITIMER_PROF return EINVAL", sysSetitimer, aInt, aHex, aHex)
	partial(unix.SYS_GETITIMER, "ITIMER_REAL only", sysGetitimer, aInt, aHex)
	full(unix.SYS_RT_SIGPROCMASK, sysRtSigprocmask, aInt, aHex, aHex, aInt)
	full(unix.SYS_SIGALTSTACK, sysSigaltstack, aHex, aHex)
	partial(unix.SYS_KILL, "the sandbox has one process, so only it can be signalled", sysKill, aInt, aSignal)
	full(unix.SYS_TGKILL, sysTgkill, aInt, aInt, aSignal)
	full(unix.SYS_TKILL, sysTkill, aInt, aSignal)
}

const sigsetSize = 8

func sysRtSigaction(t *kernel.Task, a *[6]uint64) (uint64, error) {
	sig, actAddr, oldAddr, size := int(a[0]), a[1], a[2], a[3]
	if size != sigsetSize || !kernel.ValidSignal(sig) {
		return 0, unix.EINVAL
	}
	var act *kernel.SigAction
	if actAddr != 0 {
		var b [32]byte
		if _, err := t.MM().CopyIn(actAddr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		act = &kernel.SigAction{
			Handler:  binary.LittleEndian.Uint64(b[0:]),
			Flags:    binary.LittleEndian.Uint64(b[8:]),
			Restorer: binary.LittleEndian.Uint64(b[16:]),
			Mask:     binary.LittleEndian.Uint64(b[24:]),
		}
	}
	old, err := t.SigAction(unix.Signal(sig), act)
	if err != nil {
		return 0, err
	}
	if oldAddr != 0 {
		var b [32]byte
		binary.LittleEndian.PutUint64(b[0:], old.Handler)
		binary.LittleEndian.PutUint64(b[8:], old.Flags)
		binary.LittleEndian.PutUint64(b[16:], old.Restorer)
		binary.LittleEndian.PutUint64(b[24:], old.Mask)
		if _, err := t.MM().CopyOut(oldAddr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func sysRtSigprocmask(t *kernel.Task, a *[6]uint64) (uint64, error) {
	how, setAddr, oldAddr, size := a[0], a[1], a[2], a[3]
	if size != sigsetSize {
		return 0, unix.EINVAL
	}
	old := t.SigMask()
	if setAddr != 0 {
		var b [8]byte
		if _, err := t.MM().CopyIn(setAddr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		set := binary.LittleEndian.Uint64(b[:])
		switch how {
		case unix.SIG_BLOCK:
			t.SetSigMask(old | set)
		case unix.SIG_UNBLOCK:
			t.SetSigMask(old &^ set)
		case unix.SIG_SETMASK:
			t.SetSigMask(set)
		default:
			return 0, unix.EINVAL
		}
	}
	if oldAddr != 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], old)
		if _, err := t.MM().CopyOut(oldAddr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func sysSigaltstack(t *kernel.Task, a *[6]uint64) (uint64, error) {
	old := t.AltStackState()
	if a[0] != 0 {
		var b [24]byte
		if _, err := t.MM().CopyIn(a[0], b[:]); err != nil {
			return 0, unix.EFAULT
		}
		ns := kernel.SignalStack{
			Sp:    binary.LittleEndian.Uint64(b[0:]),
			Flags: int32(binary.LittleEndian.Uint32(b[8:])),
			Size:  binary.LittleEndian.Uint64(b[16:]),
		}
		if err := t.SetAltStackChecked(ns); err != nil {
			return 0, err
		}
	}
	if a[1] != 0 {
		var b [24]byte
		binary.LittleEndian.PutUint64(b[0:], old.Sp)
		binary.LittleEndian.PutUint32(b[8:], uint32(old.Flags))
		binary.LittleEndian.PutUint64(b[16:], old.Size)
		if _, err := t.MM().CopyOut(a[1], b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

// sysRtSigreturn returns the rax the frame restores, so the run loop's
// write of the result leaves the interrupted code's rax intact.
func sysRtSigreturn(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return t.SigReturn(), nil
}

func sysRtSigsuspend(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[1] != sigsetSize {
		return 0, unix.EINVAL
	}
	var b [8]byte
	if _, err := t.MM().CopyIn(a[0], b[:]); err != nil {
		return 0, unix.EFAULT
	}
	return 0, t.SigSuspend(binary.LittleEndian.Uint64(b[:]))
}

func sysPause(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return 0, t.SigSuspend(t.SigMask())
}

func sysRtSigpending(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[1] > sigsetSize {
		return 0, unix.EINVAL
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], t.PendingSignals())
	if _, err := t.MM().CopyOut(a[0], b[:a[1]]); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

func sysAlarm(t *kernel.Task, a *[6]uint64) (uint64, error) {
	left, _ := t.SetRealTimer(time.Duration(uint32(a[0]))*time.Second, 0)
	// alarm rounds the old remaining time to the nearest second, at least 1.
	secs := uint64((left + time.Second/2) / time.Second)
	if left > 0 && secs == 0 {
		secs = 1
	}
	return secs, nil
}

// timevalDuration decodes a struct timeval, EINVAL when malformed.
func timevalDuration(b []byte) (time.Duration, error) {
	sec := int64(binary.LittleEndian.Uint64(b[0:]))
	usec := int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || usec < 0 || usec >= 1000000 {
		return 0, unix.EINVAL
	}
	return time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond, nil
}

func putItimerval(b []byte, value, interval time.Duration) {
	put := func(o []byte, d time.Duration) {
		binary.LittleEndian.PutUint64(o[0:], uint64(d/time.Second))
		binary.LittleEndian.PutUint64(o[8:], uint64((d%time.Second+time.Microsecond-1)/time.Microsecond))
	}
	put(b[0:], interval)
	put(b[16:], value)
}

func sysSetitimer(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[0] != unix.ITIMER_REAL {
		return 0, unix.EINVAL
	}
	var value, interval time.Duration
	if a[1] != 0 {
		var b [32]byte
		if _, err := t.MM().CopyIn(a[1], b[:]); err != nil {
			return 0, unix.EFAULT
		}
		var err error
		if interval, err = timevalDuration(b[0:]); err != nil {
			return 0, err
		}
		if value, err = timevalDuration(b[16:]); err != nil {
			return 0, err
		}
	}
	oldValue, oldInterval := t.SetRealTimer(value, interval)
	if a[2] != 0 {
		var b [32]byte
		putItimerval(b[:], oldValue, oldInterval)
		if _, err := t.MM().CopyOut(a[2], b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func sysGetitimer(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[0] != unix.ITIMER_REAL {
		return 0, unix.EINVAL
	}
	value, interval := t.RealTimer()
	var b [32]byte
	putItimerval(b[:], value, interval)
	if _, err := t.MM().CopyOut(a[1], b[:]); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

func senderInfo(t *kernel.Task, sig int, code int32) kernel.SigInfo {
	return kernel.SigInfo{Signo: int32(sig), Code: code, PID: t.ThreadGroup().PID(), UID: t.Creds().UID}
}

func sysKill(t *kernel.Task, a *[6]uint64) (uint64, error) {
	pid, sig := int32(a[0]), int(a[1])
	if sig != 0 && !kernel.ValidSignal(sig) {
		return 0, unix.EINVAL
	}
	if pid != 0 && pid != -1 && pid != t.ThreadGroup().PID() && pid != -t.ThreadGroup().PID() {
		return 0, unix.ESRCH
	}
	if sig != 0 {
		t.ThreadGroup().SendSignal(unix.Signal(sig), senderInfo(t, sig, kernel.SiUser))
	}
	return 0, nil
}

func sysTgkill(t *kernel.Task, a *[6]uint64) (uint64, error) {
	tgid, tid, sig := int32(a[0]), int32(a[1]), int(a[2])
	if tgid <= 0 || tid <= 0 || (sig != 0 && !kernel.ValidSignal(sig)) {
		return 0, unix.EINVAL
	}
	if tgid != t.ThreadGroup().PID() || tid != t.TID() {
		return 0, unix.ESRCH
	}
	if sig != 0 {
		t.SendThreadSignal(unix.Signal(sig), senderInfo(t, sig, kernel.SiTkill))
	}
	return 0, nil
}

func sysTkill(t *kernel.Task, a *[6]uint64) (uint64, error) {
	tid, sig := int32(a[0]), int(a[1])
	if tid <= 0 || (sig != 0 && !kernel.ValidSignal(sig)) {
		return 0, unix.EINVAL
	}
	if tid != t.TID() {
		return 0, unix.ESRCH
	}
	if sig != 0 {
		t.SendThreadSignal(unix.Signal(sig), senderInfo(t, sig, kernel.SiTkill))
	}
	return 0, nil
}
