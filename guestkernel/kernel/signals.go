package kernel

import (
	"fmt"
	"sync"
	"time"

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
// Blocking waits call it (through interrupted); a true answer means the
// current syscall is being cut short, which handleSignals needs to know
// for its restart rules.
func (t *Task) hasDeliverableSignal() bool {
	if !t.signalsWaiting.Load() {
		return false
	}
	t.tg.mu.Lock()
	ok := (t.tg.pending|t.threadPending)&^t.sigMask != 0
	t.tg.mu.Unlock()
	if ok {
		t.noteInterrupted()
	}
	return ok
}

// handleSignals acts on every deliverable pending signal at the return to
// user mode: default actions, or a frame for the app's handler (frames of
// several signals nest, the last one's handler running first). A syscall
// that a signal interrupted with EINTR is restarted or not as on Linux.
func (t *Task) handleSignals() {
	tg := t.tg
	nr, interrupted := t.takeInterrupted()
	for {
		tg.mu.Lock()
		ready := (tg.pending | t.threadPending) &^ t.sigMask
		if ready == 0 {
			t.signalsWaiting.Store((tg.pending | t.threadPending) != 0)
			tg.mu.Unlock()
			break
		}
		var sig unix.Signal
		for s := unix.Signal(1); s <= numSignals; s++ {
			if ready&bit(s) != 0 {
				sig = s
				break
			}
		}
		info := tg.info[sig-1]
		t.threadPending &^= bit(sig)
		tg.pending &^= bit(sig)
		action := tg.actions[sig-1]
		hasHandler := sig != unix.SIGKILL && action.Handler != SigDfl && action.Handler != SigIgn
		if hasHandler && action.Flags&saResetHand != 0 {
			tg.actions[sig-1].Handler = SigDfl
			tg.actions[sig-1].Flags &^= saSiginfo
		}
		tg.mu.Unlock()
		if !hasHandler {
			t.act(sig, action)
			if t.tg.Exiting() {
				return
			}
			continue
		}
		if info.Signo == 0 {
			info = SigInfo{Signo: int32(sig), Code: 0x80}
		}
		if interrupted {
			interrupted = false
			if action.Flags&saRestart != 0 && restartKindOf(nr) == restartSys {
				t.restartSyscall(nr)
			}
		}
		t.deliver(&info, action)
		if t.tg.Exiting() {
			return
		}
	}
	if interrupted && restartKindOf(nr) != restartNever {
		// No handler ran (the signal was ignored): Linux restarts.
		t.restartSyscall(nr)
	}
	// sigsuspend's mask comes back once no handler will restore it.
	if st := &t.sigst; st.hasSavedMask {
		st.hasSavedMask = false
		t.SetSigMask(uint64(st.savedMask))
		if t.hasPendingUnblocked() {
			t.handleSignals()
		}
	}
}

// hasPendingUnblocked is hasDeliverableSignal without the side effect.
func (t *Task) hasPendingUnblocked() bool {
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return (t.tg.pending|t.threadPending)&^t.sigMask != 0
}

// deliver runs sig's handler: it builds the frame and blocks sa_mask and
// (without SA_NODEFER) the signal itself. If the frame cannot be written
// the process dies of SIGSEGV, as Linux's force_sigsegv would leave it.
func (t *Task) deliver(info *SigInfo, a SigAction) {
	old := sigSet(t.SigMask())
	st := t.sigState()
	frameMask := old
	if st.hasSavedMask {
		frameMask = st.savedMask
		st.hasSavedMask = false
	}
	if !t.setupFrame(info, a, frameMask) {
		logging.Debugf("task %d: cannot write the frame for signal %d; killed by SIGSEGV", t.tid, info.Signo)
		t.tg.Exit(ExitStatus{Signal: unix.SIGSEGV})
		return
	}
	mask := old | sigSet(a.Mask)
	if a.Flags&saNoDefer == 0 {
		mask |= bit(unix.Signal(info.Signo))
	}
	t.SetSigMask(uint64(mask))
}

// act carries out sig's default or ignore action.
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
	}
}

// forceSignal delivers a synchronous signal the app caused (a fault) at
// once. As with Linux's force_sig, a handler runs only if the signal is
// neither blocked nor ignored; otherwise the default action applies.
func (t *Task) forceSignal(info SigInfo) {
	sig := unix.Signal(info.Signo)
	t.tg.mu.Lock()
	a := t.tg.actions[sig-1]
	blocked := t.sigMask&bit(sig) != 0
	handled := !blocked && a.Handler != SigDfl && a.Handler != SigIgn
	if handled && a.Flags&saResetHand != 0 {
		t.tg.actions[sig-1].Handler = SigDfl
		t.tg.actions[sig-1].Flags &^= saSiginfo
	}
	t.tg.mu.Unlock()
	logging.Debugf("task %d: %v (code %d, addr %#x) at rip %#x", t.tid, sig, info.Code, info.Addr, t.regs.Rip)
	if handled {
		t.deliver(&info, a)
		return
	}
	t.tg.Exit(ExitStatus{Signal: sig})
}

// SigSuspend replaces the mask with mask until a signal arrives (pause
// passes the current mask). It always ends with EINTR; the old mask comes
// back after the handler (it is the frame's uc_sigmask) or at once when
// none runs.
func (t *Task) SigSuspend(mask uint64) error {
	st := t.sigState()
	st.savedMask = sigSet(t.SigMask())
	st.hasSavedMask = true
	t.SetSigMask(mask)
	for !t.tg.Exiting() {
		if err := t.Block(nil, -1); err == ErrInterrupted {
			break
		}
	}
	return unix.EINTR
}

// PendingSignals is the set of signals pending for the thread or process
// (rt_sigpending).
func (t *Task) PendingSignals() uint64 {
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return uint64(t.tg.pending | t.threadPending)
}

// realTimer is a process's ITIMER_REAL: SIGALRM when it fires.
type realTimer struct {
	mu       sync.Mutex
	tg       *ThreadGroup
	timer    *time.Timer
	deadline time.Time
	interval time.Duration
	stopped  bool // the process exited
}

// SetRealTimer arms (value > 0) or disarms ITIMER_REAL, which sends SIGALRM
// to the process, and returns the previous remaining time and interval.
func (t *Task) SetRealTimer(value, interval time.Duration) (time.Duration, time.Duration) {
	rt := &t.tg.itimer
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.tg = t.tg
	oldLeft, oldInterval := rt.remainingLocked(), rt.interval
	if rt.timer != nil {
		rt.timer.Stop()
		rt.timer = nil
	}
	rt.interval = interval
	if value > 0 && !rt.stopped {
		rt.armLocked(value)
	}
	return oldLeft, oldInterval
}

// RealTimer returns ITIMER_REAL's remaining time and interval.
func (t *Task) RealTimer() (time.Duration, time.Duration) {
	rt := &t.tg.itimer
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.remainingLocked(), rt.interval
}

// stop disarms the timer for good (the process exited).
func (rt *realTimer) stop() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.stopped = true
	if rt.timer != nil {
		rt.timer.Stop()
		rt.timer = nil
	}
}

func (rt *realTimer) remainingLocked() time.Duration {
	if rt.timer == nil {
		return 0
	}
	return max(time.Until(rt.deadline), time.Microsecond)
}

func (rt *realTimer) armLocked(d time.Duration) {
	rt.deadline = time.Now().Add(d)
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		rt.mu.Lock()
		if rt.timer != tm || rt.stopped {
			rt.mu.Unlock()
			return
		}
		rt.timer = nil
		if rt.interval > 0 {
			rt.armLocked(rt.interval)
		}
		tg := rt.tg
		rt.mu.Unlock()
		tg.SendSignal(unix.SIGALRM, SigInfo{Signo: int32(unix.SIGALRM), Code: 0x80})
	})
	rt.timer = tm
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
