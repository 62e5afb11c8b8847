package ptrace_fallback

import (
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// interruptSignal is the host signal Interrupt sends to a running stub. The
// tracer sees it as a signal-delivery stop and suppresses it, so the stub
// never actually stops or dies of it.
const interruptSignal = unix.SIGSTOP

// The legacy vsyscall page, whose calls the host kernel emulates.
const (
	vsyscallBase = 0xffffffffff600000
	vsyscallSize = 0x1000
)

// Host siginfo codes the platform tells apart.
const (
	segvMapErr = 1
	segvAccErr = 2
)

// context is one tracer thread.
type context struct {
	p   *Platform
	tid int

	interrupt atomic.Bool
	running   atomic.Pointer[stub]
	checked   bool // the calling thread was verified

	// fpStub is the stub thread holding the FP state of the last fpu this
	// context switched with.
	fpStub *stub
	si     siginfo
}

// Switch implements platform.Context.
func (c *context) Switch(asI platform.AddressSpace, regs *platform.Registers, fpu *platform.FPState) (platform.Event, error) {
	as := asI.(*addressSpace)
	// The thread check costs a host syscall, so it is made once: a context
	// is only ever used by the task goroutine that created it, which stays
	// locked to its thread.
	if !c.checked {
		if unix.Gettid() != c.tid {
			return platform.Event{}, errWrongThread
		}
		c.checked = true
	}
	as.mu.Lock()
	s := as.stub
	as.mu.Unlock()
	if s == nil {
		var err error
		if s, err = c.p.spawnStub(); err != nil {
			return platform.Event{}, err
		}
		as.mu.Lock()
		as.stub = s
		as.mu.Unlock()
	}
	if s.dead {
		return platform.Event{}, platform.ErrContextKilled
	}
	if s.tracer != c.tid {
		return platform.Event{}, fmt.Errorf("ptrace: address space in use by another thread: shared address spaces are not supported yet")
	}
	if err := as.flush(s); err != nil {
		return platform.Event{}, err
	}
	if err := c.loadFP(s, fpu); err != nil {
		return platform.Event{}, err
	}
	if err := c.loadRegs(s, regs); err != nil {
		return platform.Event{}, err
	}

	c.running.Store(s)
	if c.interrupt.Swap(false) {
		c.running.Store(nil)
		return platform.Event{Kind: platform.EventInterrupted}, nil
	}
	if err := ptrace(unix.PTRACE_SYSEMU, s.pid, 0, 0); err != nil {
		c.running.Store(nil)
		return platform.Event{}, fmt.Errorf("ptrace: PTRACE_SYSEMU: %w", err)
	}
	ws, err := s.wait()
	c.running.Store(nil)
	if err != nil {
		return platform.Event{}, err
	}
	if err := getRegs(s.pid, &s.cached); err != nil {
		return platform.Event{}, err
	}
	*regs = s.cached

	sig := ws.StopSignal()
	if sig == unix.SIGTRAP|0x80 {
		return platform.Event{Kind: platform.EventSyscall}, nil
	}
	if sig == unix.SIGTRAP && ws.TrapCause() == unix.PTRACE_EVENT_SECCOMP {
		// Only the host's vsyscall emulation reaches the filter's trace
		// action; the Sentry serves it as the system call it stands for.
		if regs.Rip&^(vsyscallSize-1) != vsyscallBase {
			s.kill()
			return platform.Event{}, fmt.Errorf("ptrace: stub made an unexpected host system call %d at %#x; stub killed: %w",
				regs.OrigRax, regs.Rip, platform.ErrContextKilled)
		}
		s.inSeccompStop = true
		return platform.Event{Kind: platform.EventSyscall}, nil
	}
	if sig == interruptSignal {
		c.interrupt.Store(false)
		return platform.Event{Kind: platform.EventInterrupted}, nil
	}
	if err := getSiginfo(s.pid, &c.si); err != nil {
		return platform.Event{}, err
	}
	info := platform.SignalInfo{Signo: c.si.Signo, Code: c.si.Code, Addr: c.si.Addr}
	if sig == unix.SIGSEGV && (c.si.Code == segvMapErr || c.si.Code == segvAccErr) {
		return platform.Event{Kind: platform.EventFault, FaultAddr: c.si.Addr, Signal: info}, nil
	}
	switch sig {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE, unix.SIGTRAP:
		return platform.Event{Kind: platform.EventSignal, Signal: info}, nil
	}
	// Any other host signal is not the app's business: the stub ignores it
	// (it is suppressed on resume) and the Sentry re-checks its state.
	return platform.Event{Kind: platform.EventInterrupted}, nil
}

// loadRegs makes the stub's registers equal regs, moving as little as it
// can: nothing, rax alone (the common case after a syscall), or all.
func (c *context) loadRegs(s *stub, regs *platform.Registers) error {
	want := *regs
	if s.inSeccompStop {
		// orig_rax -1 tells the host's vsyscall emulation the call was
		// handled: it returns rax to the caller and emulates the ret.
		s.inSeccompStop = false
		want.OrigRax = ^uint64(0)
		if err := setRegs(s.pid, &want); err != nil {
			return err
		}
		s.cached = want
		return nil
	}
	have := s.cached
	if want == have {
		return nil
	}
	have.Rax = want.Rax
	if want == have {
		if err := pokeRax(s.pid, want.Rax); err != nil {
			return err
		}
		s.cached.Rax = want.Rax
		return nil
	}
	if err := setRegs(s.pid, &want); err != nil {
		return err
	}
	s.cached = want
	return nil
}

// loadFP makes fpu live in s. The FP state stays in the stub thread between
// switches; it moves only when the task changes stub (exec) or the Sentry
// took it out with SaveFPState.
func (c *context) loadFP(s *stub, fpu *platform.FPState) error {
	if live := fpu.Live(); live == c && c.fpStub == s {
		return nil
	} else if live == c {
		if err := c.SaveFPState(fpu); err != nil {
			return err
		}
	} else if live != nil {
		return fmt.Errorf("ptrace: FP state is live in another context; call SaveFPState there first")
	}
	if err := xstate(unix.PTRACE_SETREGSET, s.pid, fpu.Data); err != nil {
		return err
	}
	fpu.SetLive(c)
	c.fpStub = s
	return nil
}

// SaveFPState implements platform.Context.
func (c *context) SaveFPState(fpu *platform.FPState) error {
	if fpu.Live() != c {
		return nil
	}
	if c.fpStub == nil || c.fpStub.dead {
		return fmt.Errorf("ptrace: FP state lost with its stub: %w", platform.ErrContextKilled)
	}
	if unix.Gettid() != c.tid {
		return errWrongThread
	}
	if err := xstate(unix.PTRACE_GETREGSET, c.fpStub.pid, fpu.Data); err != nil {
		return err
	}
	fpu.SetLive(nil)
	return nil
}

// Interrupt implements platform.Context.
func (c *context) Interrupt() {
	c.interrupt.Store(true)
	if s := c.running.Load(); s != nil {
		unix.Tgkill(s.pid, s.pid, interruptSignal)
	}
}

// Release implements platform.Context.
func (c *context) Release() {
	c.fpStub = nil
}
