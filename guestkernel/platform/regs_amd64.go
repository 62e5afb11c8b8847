package platform

// Registers are an x86-64 thread's general registers. The layout is Linux's
// struct user_regs_struct, so the ptrace platform moves it with one call.
type Registers struct {
	R15, R14, R13, R12, Rbp, Rbx, R11, R10 uint64
	R9, R8, Rax, Rcx, Rdx, Rsi, Rdi        uint64
	OrigRax                                uint64
	Rip, Cs, Eflags, Rsp, Ss               uint64
	FsBase, GsBase                         uint64
	Ds, Es, Fs, Gs                         uint64
}

// SyscallArgs returns the six system call arguments.
func (r *Registers) SyscallArgs() [6]uint64 {
	return [6]uint64{r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9}
}

// User segment selectors as Linux sets them for 64-bit processes.
const (
	UserCS = 0x33
	UserSS = 0x2b
	// EflagsInit is the value of RFLAGS a new process starts with (IF and
	// the always-one bit).
	EflagsInit = 0x202
)

// FPState is a thread's floating point and vector state in XSAVE layout
// (the first 512 bytes are the FXSAVE image).
type FPState struct {
	Data []byte
	// live names the context holding the authoritative copy; nil when Data
	// is current.
	live any
}

// FPStateSize is the size of the XSAVE image the host CPU needs.
var FPStateSize = hostXSaveSize()

// NewFPState returns the state of a freshly started thread: x87 control
// word 0x37f and MXCSR 0x1f80, everything else zero.
func NewFPState() *FPState {
	f := &FPState{Data: make([]byte, FPStateSize)}
	f.Data[0] = 0x7f // FCW
	f.Data[1] = 0x03
	f.Data[24] = 0x80 // MXCSR
	f.Data[25] = 0x1f
	f.Data[28] = 0xff // MXCSR_MASK 0xffff (a sensible default)
	f.Data[29] = 0xff
	return f
}

// Live returns the context that holds f live, or nil.
func (f *FPState) Live() any { return f.live }

// SetLive records which context holds f live (nil: Data is current).
// Only platforms call it.
func (f *FPState) SetLive(c any) { f.live = c }

func hostXSaveSize() int {
	_, ebx, _, _ := cpuid(0xd, 0)
	max, _, _, _ := cpuid(0, 0)
	if max < 0xd || ebx < 512 {
		return 512
	}
	return int(ebx)
}
