package ptrace_fallback

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// stub is one stub process (one thread for now) and what the tracer knows
// of its registers.
type stub struct {
	pid    int
	tracer int // host tid of the tracing thread
	// cached is the register file the stub thread holds now, so Switch
	// writes only what the Sentry changed.
	cached platform.Registers
	// template is a valid register file for injected syscalls.
	template platform.Registers
	dead     bool
	// inSeccompStop is set while the stub is stopped in a seccomp trace
	// event (a vsyscall-page call the Sentry is serving).
	inSeccompStop bool
}

// spawnStub starts a stub traced by the calling (locked) thread and waits
// until it has cleared its address space.
func (p *Platform) spawnStub() (*stub, error) {
	memFD := p.memFD
	if memFD < 0 {
		memFD = int(p.stubFile.Fd())
	}
	attr := &syscall.ProcAttr{
		Env:   []string{},
		Files: []uintptr{uintptr(memFD), p.stubFile.Fd()},
		Sys: &syscall.SysProcAttr{
			Ptrace:    true,
			Pdeathsig: syscall.SIGKILL,
			Setpgid:   true, // keep terminal signals away from the stub
		},
	}
	pid, err := syscall.ForkExec("/proc/self/fd/1", []string{"ringfence-stub"}, attr)
	if err != nil {
		return nil, fmt.Errorf("ptrace: starting stub process: %w", err)
	}
	s := &stub{pid: pid, tracer: unix.Gettid()}
	fail := func(err error) (*stub, error) {
		s.kill()
		return nil, err
	}
	// The exec stops with SIGTRAP.
	if err := s.waitTrap(); err != nil {
		return fail(fmt.Errorf("ptrace: stub exec: %w", err))
	}
	if err := ptrace(unix.PTRACE_SETOPTIONS, pid, 0,
		unix.PTRACE_O_TRACESYSGOOD|unix.PTRACE_O_EXITKILL|unix.PTRACE_O_TRACESECCOMP); err != nil {
		return fail(fmt.Errorf("ptrace: PTRACE_SETOPTIONS: %w (is ptrace allowed here? seccomp or yama may forbid it)", err))
	}
	if err := ptrace(unix.PTRACE_CONT, pid, 0, 0); err != nil {
		return fail(fmt.Errorf("ptrace: PTRACE_CONT: %w", err))
	}
	// The stub runs its start-up code and stops at int3.
	if err := s.waitTrap(); err != nil {
		return fail(fmt.Errorf("ptrace: stub start-up: %w", err))
	}
	if err := getRegs(pid, &s.cached); err != nil {
		return fail(err)
	}
	if s.cached.Rip != stubSyscallSite {
		return fail(fmt.Errorf("ptrace: stub stopped at %#x, want %#x (start-up syscalls failed: rax=%#x)",
			s.cached.Rip, stubSyscallSite, s.cached.Rax))
	}
	if s.cached.Rax != 0 {
		return fail(fmt.Errorf("ptrace: installing the stub's seccomp filter: %w", unix.Errno(-s.cached.Rax)))
	}
	s.template = s.cached
	return s, nil
}

// waitTrap waits for the stub's next stop, which must be a SIGTRAP;
// interrupt stops (SIGSTOP) on the way are swallowed.
func (s *stub) waitTrap() error {
	for {
		ws, err := s.wait()
		if err != nil {
			return err
		}
		if ws.StopSignal() == unix.SIGTRAP {
			return nil
		}
		if ws.StopSignal() == interruptSignal {
			if err := ptrace(unix.PTRACE_CONT, s.pid, 0, 0); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("stub stopped by unexpected signal %v", ws.StopSignal())
	}
}

// wait waits for the stub to stop; exit or death is an error.
func (s *stub) wait() (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(s.pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ws, fmt.Errorf("wait4 stub %d: %w", s.pid, err)
		}
		break
	}
	if ws.Exited() || ws.Signaled() {
		s.dead = true
		return ws, fmt.Errorf("stub %d died (%s): %w", s.pid, describeWait(ws), platform.ErrContextKilled)
	}
	if !ws.Stopped() {
		return ws, fmt.Errorf("stub %d: unexpected wait status %#x", s.pid, uint32(ws))
	}
	return ws, nil
}

func describeWait(ws unix.WaitStatus) string {
	if ws.Exited() {
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	}
	return fmt.Sprintf("signal %v", ws.Signal())
}

// inject runs one host system call in the stub and returns its result.
// It clobbers the stub's registers; the caller restores the app's.
func (s *stub) inject(nr uintptr, a0, a1, a2, a3, a4, a5 uint64) (uint64, error) {
	r := s.template
	r.Rax, r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = uint64(nr), a0, a1, a2, a3, a4, a5
	r.OrigRax = ^uint64(0)
	r.Rip = stubSyscallSite
	if err := setRegs(s.pid, &r); err != nil {
		return 0, err
	}
	s.cached = r
	if err := ptrace(unix.PTRACE_CONT, s.pid, 0, 0); err != nil {
		return 0, fmt.Errorf("ptrace: PTRACE_CONT for injected syscall: %w", err)
	}
	if err := s.waitTrap(); err != nil {
		return 0, fmt.Errorf("ptrace: injected syscall %d: %w", nr, err)
	}
	if err := getRegs(s.pid, &s.cached); err != nil {
		return 0, err
	}
	ret := s.cached.Rax
	if ret > ^uint64(4095) {
		return 0, fmt.Errorf("ptrace: injected syscall %d(%#x, %#x, %#x, %#x, %#x, %#x): %w",
			nr, a0, a1, a2, a3, a4, a5, unix.Errno(-ret))
	}
	return ret, nil
}

// kill ends the stub and reaps it.
func (s *stub) kill() {
	if s.dead {
		return
	}
	s.dead = true
	unix.Kill(s.pid, unix.SIGKILL)
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(s.pid, &ws, unix.WALL, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// Raw ptrace helpers. They never block, so they skip the Go scheduler
// hooks of Syscall.

func ptrace(req int, pid int, addr, data uintptr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getRegs(pid int, r *platform.Registers) error {
	if err := ptrace(unix.PTRACE_GETREGS, pid, 0, uintptr(unsafe.Pointer(r))); err != nil {
		return fmt.Errorf("ptrace: PTRACE_GETREGS: %w", err)
	}
	return nil
}

func setRegs(pid int, r *platform.Registers) error {
	if err := ptrace(unix.PTRACE_SETREGS, pid, 0, uintptr(unsafe.Pointer(r))); err != nil {
		return fmt.Errorf("ptrace: PTRACE_SETREGS: %w", err)
	}
	return nil
}

// raxOffset is the offset of rax in struct user (user_regs_struct first).
const raxOffset = 10 * 8

func pokeRax(pid int, v uint64) error {
	if err := ptrace(unix.PTRACE_POKEUSR, pid, raxOffset, uintptr(v)); err != nil {
		return fmt.Errorf("ptrace: PTRACE_POKEUSER rax: %w", err)
	}
	return nil
}

const ntX86XState = 0x202

func xstate(req int, pid int, data []byte) error {
	iov := unix.Iovec{Base: &data[0]}
	iov.SetLen(len(data))
	if err := ptrace(req, pid, ntX86XState, uintptr(unsafe.Pointer(&iov))); err != nil {
		return fmt.Errorf("ptrace: regset NT_X86_XSTATE: %w", err)
	}
	return nil
}

// siginfo is the prefix of the host's siginfo_t the platform reads.
type siginfo struct {
	Signo int32
	Errno int32
	Code  int32
	_     int32
	Addr  uint64 // si_addr for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP
	_     [112]byte
}

func getSiginfo(pid int, si *siginfo) error {
	if err := ptrace(unix.PTRACE_GETSIGINFO, pid, 0, uintptr(unsafe.Pointer(si))); err != nil {
		return fmt.Errorf("ptrace: PTRACE_GETSIGINFO: %w", err)
	}
	return nil
}

var errWrongThread = errors.New("ptrace: context used from a thread other than the one that made it (lock the goroutine to its OS thread)")
