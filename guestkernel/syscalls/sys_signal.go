package syscalls

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
)

func init() {
	partial(unix.SYS_RT_SIGACTION, "actions are kept and SIG_IGN/SIG_DFL honoured; running app handlers comes with the process issue", sysRtSigaction, aSignal, aHex, aHex, aInt)
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

// sigaltstack flags and minimum size.
const (
	ssOnStack     = 1
	ssDisable     = 2
	ssAutoDisarm  = 1 << 31
	minSigStkSize = 2048
)

func sysSigaltstack(t *kernel.Task, a *[6]uint64) (uint64, error) {
	old := t.AltStack()
	if old.Flags == 0 && old.Size == 0 && old.Sp == 0 {
		old.Flags = ssDisable
	}
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
		mode := uint32(ns.Flags) &^ ssAutoDisarm
		switch {
		case mode == ssDisable:
			ns = kernel.SignalStack{Flags: ssDisable}
		case mode == 0 || mode == ssOnStack:
			if ns.Size < minSigStkSize {
				return 0, unix.ENOMEM
			}
			ns.Flags &^= ssOnStack
		default:
			return 0, unix.EINVAL
		}
		t.SetAltStack(ns)
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
