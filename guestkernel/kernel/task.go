package kernel

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/loader"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
	"github.com/ringfence/ringfence/logging"
)

// ThreadGroup is a process.
type ThreadGroup struct {
	k      *Kernel
	pid    int32
	leader *Task
	limits *Limits

	// Set at creation (exec will change them under mu).
	oomScoreAdj atomic.Int32
	itimer      realTimer // ITIMER_REAL
	exe         vfs.VirtualDentry
	name        string
	argv, envv  []string

	// exiting is read on every turn of the run loop; it is only ever set
	// (under mu, with status) and never cleared.
	exiting atomic.Bool

	mu       sync.Mutex
	actions  [numSignals]SigAction
	pending  sigSet
	info     [numSignals]SigInfo
	status   ExitStatus
	done     chan struct{}
	ctty     any // controlling terminal (a *devpts.Terminal), under mu
	doneOnce sync.Once
}

// PID is the process id inside the sandbox.
func (tg *ThreadGroup) PID() int32 { return tg.pid }

// Exe is the file the process runs (/proc/PID/exe).
func (tg *ThreadGroup) Exe() vfs.VirtualDentry { return tg.exe }

// Name is the process name (comm).
func (tg *ThreadGroup) Name() string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.name
}

// SetName changes comm (prctl PR_SET_NAME, /proc/PID/comm).
func (tg *ThreadGroup) SetName(n string) {
	if len(n) > 15 {
		n = n[:15]
	}
	tg.mu.Lock()
	tg.name = n
	tg.mu.Unlock()
}

// Argv and Envv are the arguments and environment the process started
// with (/proc/PID/cmdline, environ).
func (tg *ThreadGroup) Argv() []string { return tg.argv }
func (tg *ThreadGroup) Envv() []string { return tg.envv }

// Limits returns the process's resource limits.
func (tg *ThreadGroup) Limits() *Limits { return tg.limits }

// Exiting reports whether the process is going away.
func (tg *ThreadGroup) Exiting() bool { return tg.exiting.Load() }

// Exit ends the whole process with status; the first caller wins.
func (tg *ThreadGroup) Exit(status ExitStatus) {
	tg.mu.Lock()
	if tg.exiting.Load() {
		tg.mu.Unlock()
		return
	}
	tg.status = status
	tg.exiting.Store(true)
	tg.mu.Unlock()
	tg.leader.Interrupt()
}

// Task is one app thread.
type Task struct {
	k     *Kernel
	tg    *ThreadGroup
	tid   int32
	mm    *mm.MM
	fdt   *FDTable
	fs    *vfs.FSContext
	creds *Creds
	// fsCreds is creds as the VFS checks them, kept in step with creds.
	fsCreds vfs.Credentials

	regs platform.Registers
	fpu  *platform.FPState
	ctx  atomic.Pointer[platform.Context]
	auxv []loader.AuxEntry

	// Signal state private to the thread.
	sigMask        sigSet
	threadPending  sigSet
	signalsWaiting atomic.Bool // a fast check for the run loop
	altStack       SignalStack
	sigst          taskSigState

	clearChildTID uint64
	robustList    uint64

	interruptFD int
	appTime     time.Duration // wall time spent running app code
	startTime   time.Time

	// args holds the current system call's arguments; a field, not a local,
	// so passing it to the Dispatcher does not allocate.
	args [6]uint64

	// Scratch space reused by system calls to avoid allocating.
	IOVecScratch [][]byte
	ByteScratch  []byte
}

// Kernel returns the task's kernel.
func (t *Task) Kernel() *Kernel { return t.k }

// ThreadGroup returns the task's process.
func (t *Task) ThreadGroup() *ThreadGroup { return t.tg }

// TID is the thread id inside the sandbox.
func (t *Task) TID() int32 { return t.tid }

// MM is the task's address space.
func (t *Task) MM() *mm.MM { return t.mm }

// FDTable is the task's file descriptor table.
func (t *Task) FDTable() *FDTable { return t.fdt }

// Creds returns the task's credentials.
func (t *Task) Creds() *Creds { return t.creds }

// FSContext is the task's root, working directory and umask.
func (t *Task) FSContext() *vfs.FSContext { return t.fs }

// FSCredentials implements vfs.Context: the effective ids and, for root,
// every capability.
func (t *Task) FSCredentials() *vfs.Credentials { return &t.fsCreds }

// ControllingTTY, SetControllingTTY, SignalProcess and ProcessID
// implement devpts.Session: the one process is its own session leader and
// process group until the process issue. InstallFD implements
// devpts.FDInstaller (TIOCGPTPEER).
func (t *Task) ControllingTTY() any {
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return t.tg.ctty
}

// SetControllingTTY records the process's controlling terminal.
func (t *Task) SetControllingTTY(tty any) {
	t.tg.mu.Lock()
	t.tg.ctty = tty
	t.tg.mu.Unlock()
}

// SignalProcess sends sig from the terminal, as kill_pgrp does (SI_KERNEL).
func (t *Task) SignalProcess(sig unix.Signal) {
	t.tg.SendSignal(sig, SigInfo{Signo: int32(sig), Code: 0x80})
}

// ProcessID is the process's pid.
func (t *Task) ProcessID() int32 { return t.tg.pid }

// InstallFD installs d at the lowest free descriptor.
func (t *Task) InstallFD(d *vfs.FileDescription, cloexec bool) (int32, error) {
	return t.fdt.Install(d, 0, cloexec, t.tg.limits.Get(unix.RLIMIT_NOFILE).Cur)
}

func (t *Task) updateFSCreds() {
	c := t.creds
	t.fsCreds = vfs.Credentials{UID: c.EUID, GID: c.EGID, Groups: c.Groups}
	if c.EUID == 0 {
		t.fsCreds.Caps = vfs.AllCaps
	}
}

// Block implements vfs.Blocker: wait for ch to close, interruptibly.
func (t *Task) Block(ch <-chan struct{}, timeout time.Duration) error {
	select {
	case <-ch:
		return nil
	default:
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ch:
			var one = [8]byte{1}
			unix.Write(t.interruptFD, one[:])
		case <-stop:
		}
	}()
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		select {
		case <-ch:
			return nil
		default:
		}
		if t.interrupted() {
			return ErrInterrupted
		}
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return unix.ETIMEDOUT
			}
			ms = int(left/time.Millisecond) + 1
		}
		fds := []unix.PollFd{{Fd: int32(t.interruptFD), Events: unix.POLLIN}}
		unix.Poll(fds, ms)
	}
}

// Regs are the task's registers; system call handlers may change them.
func (t *Task) Regs() *platform.Registers { return &t.regs }

// Auxv is the auxiliary vector the task was started with.
func (t *Task) Auxv() []loader.AuxEntry { return t.auxv }

// AppTime is how long the task has run app code.
func (t *Task) AppTime() time.Duration { return t.appTime }

// SetClearChildTID records set_tid_address's pointer.
func (t *Task) SetClearChildTID(addr uint64) { t.clearChildTID = addr }

// SetRobustList records set_robust_list's head.
func (t *Task) SetRobustList(addr uint64) { t.robustList = addr }

// Interrupt makes the task notice a change: it leaves app code or a
// blocking wait and rechecks its state.
func (t *Task) Interrupt() {
	if c := t.ctx.Load(); c != nil {
		(*c).Interrupt()
	}
	var one = [8]byte{1}
	unix.Write(t.interruptFD, one[:])
}

// run is the task goroutine: switch into the app, serve what comes back.
func (t *Task) run() {
	// A ptrace tracer is an OS thread: the goroutine keeps its thread for
	// life, and the thread dies with it (taking its stubs along).
	runtime.LockOSThread()
	t.startTime = time.Now()
	status := t.safeLoop()
	t.release()
	t.tg.finish(status)
}

// safeLoop runs the task; a panic in the Sentry (a bug: no app input may
// cause one) kills this sandbox's process with SIGKILL and is reported
// once with its stack in the debug log, rather than taking runsc down
// with a Go crash dump.
func (t *Task) safeLoop() (status ExitStatus) {
	defer func() {
		if r := recover(); r != nil {
			logging.Warningf("Sentry bug: task %d panicked: %v; the process is killed\n%s", t.tid, r, debug.Stack())
			fmt.Fprintf(os.Stderr, "runsc: internal error in the sandbox kernel (task %d: %v); the program was killed. Please report this with the debug log (--debug-log).\n", t.tid, r)
			status = ExitStatus{Signal: unix.SIGKILL}
		}
	}()
	return t.loop()
}

func (t *Task) loop() ExitStatus {
	ctx, err := t.k.Platform.NewContext()
	if err != nil {
		logging.Warningf("task %d: creating platform context: %v", t.tid, err)
		return ExitStatus{Signal: unix.SIGKILL}
	}
	t.ctx.Store(&ctx)
	defer func() {
		t.ctx.Store(nil)
		ctx.Release()
	}()
	as := t.mm.AddressSpace()
	for {
		if t.tg.Exiting() {
			return t.tg.exitStatus()
		}
		start := time.Now()
		ev, err := ctx.Switch(as, &t.regs, t.fpu)
		t.appTime += time.Since(start)
		if err != nil {
			if errors.Is(err, platform.ErrContextKilled) && t.tg.Exiting() {
				return t.tg.exitStatus()
			}
			logging.Warningf("task %d: platform failed, killing the process: %v", t.tid, err)
			t.tg.Exit(ExitStatus{Signal: unix.SIGKILL})
			continue
		}
		switch ev.Kind {
		case platform.EventSyscall:
			t.args = t.regs.SyscallArgs()
			t.regs.Rax = t.k.Dispatcher.Dispatch(t, t.regs.OrigRax, &t.args)
		case platform.EventFault:
			if err := t.mm.HandleFault(ev.FaultAddr, ev.FaultAccess); err != nil {
				var fe *mm.FaultError
				signo, code := int32(unix.SIGSEGV), int32(mm.SegvMapErr)
				if errors.As(err, &fe) {
					signo, code = fe.Signo, fe.Code
				}
				t.forceSignal(SigInfo{Signo: signo, Code: code, Addr: ev.FaultAddr})
			}
		case platform.EventSignal:
			t.forceSignal(SigInfo{Signo: ev.Signal.Signo, Code: ev.Signal.Code, Addr: ev.Signal.Addr})
		case platform.EventInterrupted:
		}
		if t.signalsWaiting.Load() {
			t.handleSignals()
		}
	}
}

func (t *Task) release() {
	t.fdt.CloseAll()
	t.mm.Release()
	unix.Close(t.interruptFD)
}

func (tg *ThreadGroup) exitStatus() ExitStatus {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.status
}

func (tg *ThreadGroup) finish(status ExitStatus) {
	tg.itimer.stop()
	tg.mu.Lock()
	tg.status = status
	tg.exiting.Store(true)
	tg.mu.Unlock()
	tg.doneOnce.Do(func() { close(tg.done) })
}

// ErrInterrupted is returned by blocking waits that a signal cut short;
// system calls turn it into EINTR.
var ErrInterrupted = unix.EINTR

// interrupted drains the interrupt eventfd and reports whether the task
// must stop waiting: it is exiting or has a signal to handle.
func (t *Task) interrupted() bool {
	var buf [8]byte
	unix.Read(t.interruptFD, buf[:])
	return t.tg.Exiting() || t.hasDeliverableSignal()
}

// WaitHostFD blocks until host fd has any of events, or returns
// ErrInterrupted if a signal or exit comes first. timeout < 0 waits
// forever; on timeout it returns unix.ETIMEDOUT.
func (t *Task) WaitHostFD(fd int, events int16, timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(t.interruptFD), Events: unix.POLLIN}}
	return t.block(fds, timeout)
}

// WaitHostFDs blocks until any of fds is ready (their Revents are set),
// a signal comes (EINTR) or timeout passes (ETIMEDOUT; < 0 waits
// forever).
func (t *Task) WaitHostFDs(fds []unix.PollFd, timeout time.Duration) error {
	all := append(fds, unix.PollFd{Fd: int32(t.interruptFD), Events: unix.POLLIN})
	err := t.block(all, timeout)
	copy(fds, all)
	return err
}

// Sleep blocks for d; it returns the time left and ErrInterrupted if a
// signal cut it short.
func (t *Task) Sleep(d time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(d)
	fds := []unix.PollFd{{Fd: int32(t.interruptFD), Events: unix.POLLIN}}
	err := t.block(fds, d)
	if err == unix.ETIMEDOUT {
		return 0, nil
	}
	left := time.Until(deadline)
	if left < 0 {
		left = 0
	}
	return left, err
}

// block polls fds (the last being the interrupt eventfd) until one of the
// others is ready, the task is interrupted, or timeout passes.
func (t *Task) block(fds []unix.PollFd, timeout time.Duration) error {
	if t.interrupted() {
		return ErrInterrupted
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	last := len(fds) - 1
	for {
		var ts *unix.Timespec
		if timeout >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return unix.ETIMEDOUT
			}
			v := unix.NsecToTimespec(left.Nanoseconds())
			ts = &v
		}
		for i := range fds {
			fds[i].Revents = 0
		}
		n, err := unix.Ppoll(fds, ts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			continue // the deadline check above ends the loop
		}
		if fds[last].Revents != 0 && t.interrupted() {
			return ErrInterrupted
		}
		for _, p := range fds[:last] {
			if p.Revents != 0 {
				return nil
			}
		}
	}
}
