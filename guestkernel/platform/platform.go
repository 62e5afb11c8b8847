// Package platform owns the contract between the Sentry and the mechanisms
// that run application code: address spaces that map ranges of the sandbox's
// memory file at app virtual addresses, and contexts whose Switch runs user
// code until a system call, a fault or an interruption. The KVM and ptrace
// platforms implement it; the Sentry sees nothing else of them.
package platform

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// AccessType is a set of memory permissions.
type AccessType struct {
	Read, Write, Execute bool
}

// Common access types.
var (
	NoAccess  = AccessType{}
	Read      = AccessType{Read: true}
	ReadWrite = AccessType{Read: true, Write: true}
	ReadExec  = AccessType{Read: true, Execute: true}
	AnyAccess = AccessType{Read: true, Write: true, Execute: true}
)

// Any reports whether at permits any access at all.
func (at AccessType) Any() bool { return at.Read || at.Write || at.Execute }

// SupersetOf reports whether at permits everything other permits.
func (at AccessType) SupersetOf(other AccessType) bool {
	return (at.Read || !other.Read) && (at.Write || !other.Write) && (at.Execute || !other.Execute)
}

func (at AccessType) String() string {
	b := []byte("---")
	if at.Read {
		b[0] = 'r'
	}
	if at.Write {
		b[1] = 'w'
	}
	if at.Execute {
		b[2] = 'x'
	}
	return string(b)
}

// EventKind says why Switch returned.
type EventKind int

const (
	// EventSyscall: the app executed a system call instruction. The number
	// is in Registers.OrigRax, the arguments in the usual registers, and
	// Rip already points past the instruction. The Sentry writes the result
	// into Rax before the next Switch.
	EventSyscall EventKind = iota + 1
	// EventFault: a memory access faulted. Event.FaultAddr and
	// Event.FaultAccess describe it; the Sentry maps the page or delivers
	// SIGSEGV/SIGBUS. Rip points at the faulting instruction.
	EventFault
	// EventSignal: the app raised a synchronous signal other than a page
	// fault (SIGILL, SIGFPE, SIGTRAP, SIGBUS, a general protection SIGSEGV).
	// Event.Signal carries the host's siginfo fields.
	EventSignal
	// EventInterrupted: Context.Interrupt was called, or the platform
	// preempted the app. Nothing happened to the app; the Sentry checks its
	// own state and switches again.
	EventInterrupted
)

func (k EventKind) String() string {
	switch k {
	case EventSyscall:
		return "syscall"
	case EventFault:
		return "fault"
	case EventSignal:
		return "signal"
	case EventInterrupted:
		return "interrupted"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// SignalInfo is the part of a host siginfo the Sentry needs to build the
// app's own.
type SignalInfo struct {
	Signo int32
	Code  int32
	Addr  uint64
}

// Event is what Switch reports.
type Event struct {
	Kind EventKind
	// FaultAddr is the faulting address for EventFault.
	FaultAddr uint64
	// FaultAccess is the attempted access for EventFault. A platform that
	// cannot tell (ptrace) reports NoAccess; the Sentry then maps with the
	// mapping's full permissions and treats a repeat fault on a mapped page
	// as a protection violation.
	FaultAccess AccessType
	// Signal describes EventSignal (and, for EventFault, the host's view).
	Signal SignalInfo
}

// ErrContextKilled is returned by Switch when the context can no longer run
// app code (the platform's host resources died).
var ErrContextKilled = errors.New("platform: context killed")

// AddressSpace is one application address space. All methods are safe to
// call from any goroutine, but the Sentry serialises changes to one address
// space (the memory manager's lock).
type AddressSpace interface {
	// MapFile maps length bytes of the memory file at offset to app virtual
	// address addr with permissions at, replacing whatever was there. addr,
	// offset and length are page aligned.
	MapFile(addr uint64, offset int64, length uint64, at AccessType) error
	// Unmap removes any mapping in [addr, addr+length). Later accesses fault.
	Unmap(addr, length uint64)
	// Release frees the address space's host resources. It must not be in
	// use by any Switch.
	Release()
}

// Context runs app threads. One goroutine uses a context at a time; the
// Sentry keeps one per task goroutine.
type Context interface {
	// Switch runs user code in as with regs and fpu until the thread makes
	// a system call, faults or is interrupted; regs are updated. fpu may be
	// left live inside the context (its Data stale) until SaveFPState.
	Switch(as AddressSpace, regs *Registers, fpu *FPState) (Event, error)
	// Interrupt makes a running or the next Switch return EventInterrupted
	// promptly. Safe from any goroutine.
	Interrupt()
	// SaveFPState makes fpu.Data current if this context holds it live.
	SaveFPState(fpu *FPState) error
	// Release frees the context's host resources.
	Release()
}

// Platform creates address spaces and contexts.
type Platform interface {
	// Name is the platform's name as --platform spells it.
	Name() string
	// MinUserAddress and MaxUserAddress bound the app's usable virtual
	// addresses [min, max).
	MinUserAddress() uint64
	MaxUserAddress() uint64
	NewAddressSpace() (AddressSpace, error)
	// NewContext makes a context. The calling goroutine must stay locked to
	// its OS thread for the context's life if the platform says
	// NeedsLockedThread.
	NewContext() (Context, error)
	// NeedsLockedThread reports whether contexts are bound to the OS thread
	// that created them (ptrace: the tracer is a thread).
	NeedsLockedThread() bool
	// Close releases everything the platform holds.
	Close() error
}

// Options configure a platform.
type Options struct {
	// MemoryFD is the sandbox's memory file. Every AddressSpace.MapFile
	// offset refers to it.
	MemoryFD int
	// Logf, when set, receives the platform's debug messages.
	Logf func(format string, args ...any)
	// StateDir is runsc's state directory (--root); platforms may cache
	// host facts there (the kvm probe, per boot).
	StateDir string
	// NumVCPUs bounds a virtual machine's vCPUs (--num-vcpus); 0 means the
	// host's CPU count. Platforms without vCPUs ignore it.
	NumVCPUs int
	// Auto is set when --platform=auto is choosing: a platform that works
	// here but would be slower than the fallback declines, saying why.
	Auto bool
}

// Constructor makes a platform; it fails with a clear error when the host
// cannot support it.
type Constructor func(Options) (Platform, error)

var (
	registryMu sync.Mutex
	registry   = map[string]Constructor{}
	preference = map[string]int{}
)

// Register makes a platform available under name. Higher preference wins
// when --platform=auto finds several usable.
func Register(name string, pref int, c Constructor) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[name] = c
	preference[name] = pref
}

// Names lists registered platforms, best first.
func Names() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var names []string
	for n := range registry {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if preference[names[i]] != preference[names[j]] {
			return preference[names[i]] > preference[names[j]]
		}
		return names[i] < names[j]
	})
	return names
}

// New makes the named platform, or with name "auto" the most preferred one
// that works here. The error for auto lists why each candidate failed.
func New(name string, opts Options) (Platform, error) {
	if name != "auto" {
		registryMu.Lock()
		c, ok := registry[name]
		registryMu.Unlock()
		if !ok {
			return nil, fmt.Errorf("unknown platform %q (valid: auto, %s)", name, strings.Join(Names(), ", "))
		}
		return c(opts)
	}
	var errs []error
	opts.Auto = true
	for _, n := range Names() {
		registryMu.Lock()
		c := registry[n]
		registryMu.Unlock()
		p, err := c(opts)
		if err == nil {
			if opts.Logf != nil {
				opts.Logf("platform auto: chose %s", n)
			}
			return p, nil
		}
		if opts.Logf != nil {
			opts.Logf("platform auto: %s unusable: %v", n, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", n, err))
	}
	return nil, fmt.Errorf("no platform works on this host: %w", errors.Join(errs...))
}
