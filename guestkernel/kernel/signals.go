package kernel

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/logging"
)

// numSignals is Linux's _NSIG: signals are 1..64.
const numSignals = 64

// Handler values with special meaning.
const (
	SigDfl = 0
	SigIgn = 1
)

// siginfo si_code values for signals sent by a process.
const (
	SiUser  = 0  // kill
	SiTkill = -6 // tkill, tgkill
)

// SigAction is the kernel's struct sigaction (x86-64 layout).
type SigAction struct {
	Handler  uint64
	Flags    uint64
	Restorer uint64
	Mask     uint64
}

// SigInfo is what the kernel knows of one pending signal.
type SigInfo struct {
	Signo int32
	Code  int32
	Addr  uint64
	PID   int32
	UID   uint32
}

// SignalStack is the kernel's stack_t.
type SignalStack struct {
	Sp    uint64
	Flags int32
	_     int32
	Size  uint64
}

// sigSet is a set of signals, bit n-1 for signal n.
type sigSet uint64

func bit(sig unix.Signal) sigSet { return 1 << (uint(sig) - 1) }

// unblockable signals can never be masked.
const unblockable = sigSet(1<<(unix.SIGKILL-1) | 1<<(unix.SIGSTOP-1))

type defaultAction int

const (
	actTerminate defaultAction = iota
	actCore
	actIgnore
	actStop
)

func defaultActionOf(sig unix.Signal) defaultAction {
	switch sig {
	case unix.SIGCHLD, unix.SIGCONT, unix.SIGURG, unix.SIGWINCH:
		return actIgnore
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return actStop
	case unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS, unix.SIGFPE,
		unix.SIGSEGV, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGSYS:
		return actCore
	}
	return actTerminate
}

// ValidSignal reports whether sig is a signal number (1..64).
func ValidSignal(sig int) bool { return sig >= 1 && sig <= numSignals }

// ignored reports whether sending sig now would be discarded at once.
func (tg *ThreadGroup) ignoredLocked(sig unix.Signal) bool {
	a := tg.actions[sig-1]
	return a.Handler == SigIgn || (a.Handler == SigDfl && defaultActionOf(sig) == actIgnore)
}

// SendSignal makes sig pending for the process.
func (tg *ThreadGroup) SendSignal(sig unix.Signal, info SigInfo) {
	tg.mu.Lock()
	if tg.exiting.Load() || (sig != unix.SIGKILL && tg.ignoredLocked(sig)) {
		tg.mu.Unlock()
		return
	}
	if tg.pending&bit(sig) == 0 {
		tg.info[sig-1] = info
	}
	tg.pending |= bit(sig)
	tg.mu.Unlock()
	t := tg.leader
	t.signalsWaiting.Store(true)
	t.Interrupt()
}

// SendThreadSignal makes sig pending for this thread (tgkill, tkill).
func (t *Task) SendThreadSignal(sig unix.Signal, info SigInfo) {
	tg := t.tg
	tg.mu.Lock()
	if tg.exiting.Load() || (sig != unix.SIGKILL && tg.ignoredLocked(sig)) {
		tg.mu.Unlock()
		return
	}
	if t.threadPending&bit(sig) == 0 {
		tg.info[sig-1] = info
	}
	t.threadPending |= bit(sig)
	tg.mu.Unlock()
	t.signalsWaiting.Store(true)
	t.Interrupt()
}

// hasDeliverableSignal reports whether a pending signal is not blocked.
func (t *Task) hasDeliverableSignal() bool {
	if !t.signalsWaiting.Load() {
		return false
	}
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return (t.tg.pending|t.threadPending)&^t.sigMask != 0
}

// handleSignals acts on every deliverable pending signal.
func (t *Task) handleSignals() {
	tg := t.tg
	for {
		tg.mu.Lock()
		ready := (tg.pending | t.threadPending) &^ t.sigMask
		if ready == 0 {
			t.signalsWaiting.Store((tg.pending | t.threadPending) != 0)
			tg.mu.Unlock()
			return
		}
		var sig unix.Signal
		for s := unix.Signal(1); s <= numSignals; s++ {
			if ready&bit(s) != 0 {
				sig = s
				break
			}
		}
		t.threadPending &^= bit(sig)
		tg.pending &^= bit(sig)
		action := tg.actions[sig-1]
		tg.mu.Unlock()
		t.act(sig, action)
	}
}

// act carries out sig's action.
func (t *Task) act(sig unix.Signal, a SigAction) {
	switch {
	case sig == unix.SIGKILL:
		t.tg.Exit(ExitStatus{Signal: sig})
	case a.Handler == SigIgn:
	case a.Handler == SigDfl:
		switch defaultActionOf(sig) {
		case actIgnore:
		case actStop:
			logging.WarnOnce(fmt.Sprintf("stop-%d", sig), "signal %v: job-control stop is not supported yet; ignored", sig)
		default:
			t.tg.Exit(ExitStatus{Signal: sig})
		}
	default:
		logging.WarnOnce(fmt.Sprintf("handler-%d", sig),
			"signal %v has a handler, but delivery to app handlers is not implemented yet; the signal is discarded", sig)
	}
}

// forceSignal delivers a synchronous signal the app caused (a fault). As
// on Linux a blocked or ignored one takes its default action; since app
// handlers cannot run yet, a handled one does too.
func (t *Task) forceSignal(info SigInfo) {
	sig := unix.Signal(info.Signo)
	t.tg.mu.Lock()
	a := t.tg.actions[sig-1]
	t.tg.mu.Unlock()
	if a.Handler != SigDfl && a.Handler != SigIgn {
		logging.WarnOnce(fmt.Sprintf("fault-handler-%d", sig),
			"app has a %v handler, but delivery to app handlers is not implemented yet; the default action applies", sig)
	}
	logging.Debugf("task %d: %v (code %d, addr %#x) at rip %#x", t.tid, sig, info.Code, info.Addr, t.regs.Rip)
	t.tg.Exit(ExitStatus{Signal: sig})
}

// SigAction returns and optionally replaces sig's action.
func (t *Task) SigAction(sig unix.Signal, act *SigAction) (SigAction, error) {
	if !ValidSignal(int(sig)) {
		return SigAction{}, unix.EINVAL
	}
	tg := t.tg
	tg.mu.Lock()
	defer tg.mu.Unlock()
	old := tg.actions[sig-1]
	if act != nil {
		if sig == unix.SIGKILL || sig == unix.SIGSTOP {
			return SigAction{}, unix.EINVAL
		}
		a := *act
		a.Mask &^= uint64(unblockable)
		tg.actions[sig-1] = a
		// Setting a signal to be ignored discards it if pending.
		if tg.ignoredLocked(sig) {
			tg.pending &^= bit(sig)
			t.threadPending &^= bit(sig)
		}
	}
	return old, nil
}

// SigMask returns the blocked set.
func (t *Task) SigMask() uint64 {
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return uint64(t.sigMask)
}

// SetSigMask replaces the blocked set (SIGKILL and SIGSTOP stay open).
func (t *Task) SetSigMask(mask uint64) {
	t.tg.mu.Lock()
	t.sigMask = sigSet(mask) &^ unblockable
	pending := (t.tg.pending | t.threadPending) &^ t.sigMask
	t.tg.mu.Unlock()
	if pending != 0 {
		t.signalsWaiting.Store(true)
	}
}

// AltStack returns the signal stack.
func (t *Task) AltStack() SignalStack { return t.altStack }

// SetAltStack replaces the signal stack.
func (t *Task) SetAltStack(s SignalStack) { t.altStack = s }
