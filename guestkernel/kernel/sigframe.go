package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/logging"
)

// sigaction flags (x86-64).
const (
	saSiginfo   = 0x4
	saOnStack   = 0x08000000
	saRestart   = 0x10000000
	saNoDefer   = 0x40000000
	saResetHand = 0x80000000
	saRestorer  = 0x04000000
)

// Alternate stack flags.
const (
	ssOnStack    = 1
	ssDisable    = 2
	ssAutoDisarm = -1 << 31 // as an int32 flag word
	// MinSigStkSize is MINSIGSTKSZ.
	MinSigStkSize = 2048
)

// uc_flags as Linux sets them for a 64-bit frame.
const (
	ucFPXState         = 0x1
	ucSigcontextSS     = 0x2
	ucStrictRestoreSS  = 0x4
	fpXStateMagic1     = 0x46505853
	fpXStateMagic2     = 0x46505845
	fpXStateMagic2Size = 4
)

// Layout of struct rt_sigframe: pretcode, then struct ucontext (uc_flags,
// uc_link, uc_stack, uc_mcontext, uc_sigmask), then siginfo. The FP state
// sits above it, 64-byte aligned.
const (
	frameUC       = 8
	frameStack    = frameUC + 16
	frameMcontext = frameUC + 40
	frameSigmask  = frameUC + 296
	frameInfo     = frameUC + 304
	frameSize     = frameInfo + 128 // 440
	redZone       = 128
)

// sigcontext offsets within uc_mcontext.
const (
	scR8 = iota * 8
	scR9
	scR10
	scR11
	scR12
	scR13
	scR14
	scR15
	scRdi
	scRsi
	scRbp
	scRbx
	scRdx
	scRax
	scRcx
	scRsp
	scRip
	scEflags
	scSegs // cs, gs, fs, ss as u16
	scErr
	scTrapno
	scOldmask
	scCr2
	scFPState
)

// Eflags bits.
const (
	eflagsCF = 1 << 0
	eflagsPF = 1 << 2
	eflagsAF = 1 << 4
	eflagsZF = 1 << 6
	eflagsSF = 1 << 7
	eflagsTF = 1 << 8
	eflagsDF = 1 << 10
	eflagsOF = 1 << 11
	eflagsAC = 1 << 18
	eflagsRF = 1 << 16
	// fixEflags are the bits rt_sigreturn takes from the frame (Linux's
	// FIX_EFLAGS); the rest keep the kernel's values.
	fixEflags = eflagsAC | eflagsOF | eflagsDF | eflagsTF | eflagsSF | eflagsZF |
		eflagsAF | eflagsPF | eflagsCF | eflagsRF
)

// taskSigState is the task's signal bookkeeping between a syscall's EINTR
// and the signal that caused it, and sigsuspend's saved mask. Only the
// task's own goroutine touches it.
type taskSigState struct {
	// intrRip is Rip after the syscall a deliverable signal interrupted
	// (0: none); intrNr is its number.
	intrRip, intrNr uint64
	// savedMask is the mask to restore after a sigsuspend's signal.
	savedMask    sigSet
	hasSavedMask bool
}

func (t *Task) sigState() *taskSigState { return &t.sigst }

// noteInterrupted records that the current syscall is being cut short by
// a deliverable signal, so that handleSignals can apply restart rules.
func (t *Task) noteInterrupted() {
	s := t.sigState()
	s.intrRip, s.intrNr = t.regs.Rip, t.regs.OrigRax
}

// takeInterrupted returns the interrupted syscall's number if the run loop
// is returning from it with EINTR, and forgets it either way.
func (t *Task) takeInterrupted() (uint64, bool) {
	s := &t.sigst
	rip, nr := s.intrRip, s.intrNr
	s.intrRip = 0
	if rip == 0 || rip != t.regs.Rip || int64(t.regs.Rax) != -int64(unix.EINTR) {
		return 0, false
	}
	return nr, true
}

// restartKind says how Linux treats a syscall a signal interrupted.
type restartKind int

const (
	restartNever  restartKind = iota // EINTR always (nanosleep: restart_syscall not done)
	restartSys                       // ERESTARTSYS: restart without a handler or with SA_RESTART
	restartNoHand                    // ERESTARTNOHAND: restart only without a handler
)

func restartKindOf(nr uint64) restartKind {
	switch nr {
	case unix.SYS_READ, unix.SYS_WRITE, unix.SYS_READV, unix.SYS_WRITEV,
		unix.SYS_PREAD64, unix.SYS_PWRITE64, unix.SYS_PREADV, unix.SYS_PWRITEV,
		unix.SYS_PREADV2, unix.SYS_PWRITEV2, unix.SYS_IOCTL, unix.SYS_WAIT4,
		unix.SYS_WAITID, unix.SYS_OPEN, unix.SYS_OPENAT, unix.SYS_FLOCK,
		unix.SYS_FCNTL, unix.SYS_FUTEX, unix.SYS_ACCEPT, unix.SYS_ACCEPT4,
		unix.SYS_CONNECT, unix.SYS_RECVFROM, unix.SYS_RECVMSG, unix.SYS_SENDTO,
		unix.SYS_SENDMSG, unix.SYS_SPLICE, unix.SYS_TEE, unix.SYS_SENDFILE:
		return restartSys
	case unix.SYS_PAUSE, unix.SYS_RT_SIGSUSPEND, unix.SYS_POLL, unix.SYS_PPOLL,
		unix.SYS_SELECT, unix.SYS_PSELECT6:
		return restartNoHand
	}
	return restartNever
}

// restartSyscall rewinds the task to reissue the syscall it just left.
func (t *Task) restartSyscall(nr uint64) {
	t.regs.Rax = nr
	t.regs.Rip -= 2 // syscall is 0f 05
}

// fpFeatures is the xfeatures mask Linux writes into fpx_sw_bytes: the
// XSAVE components whose area fits the host's XSAVE size (the enabled ones).
var fpFeatures = func() uint64 {
	size := platform.FPStateSize
	if size <= 512 {
		return 3
	}
	eax, _, _, edx := platform.CPUID(0xd, 0)
	supported := uint64(eax) | uint64(edx)<<32
	mask := uint64(3)
	for i := uint32(2); i < 64; i++ {
		if supported&(1<<i) == 0 {
			continue
		}
		sz, off, _, _ := platform.CPUID(0xd, i)
		if sz != 0 && int(off+sz) <= size {
			mask |= 1 << i
		}
	}
	return mask
}()

// saveFP makes t.fpu.Data current (the platform may hold it live).
func (t *Task) saveFP() error {
	if c := t.ctx.Load(); c != nil {
		return (*c).SaveFPState(t.fpu)
	}
	return nil
}

// sasFlags is Linux's sas_ss_flags: the altstack state as seen from sp.
func (t *Task) sasFlags(sp uint64) int32 {
	s := t.altStack
	if s.Size == 0 || s.Flags&ssDisable != 0 {
		return ssDisable
	}
	if sp > s.Sp && sp-s.Sp <= s.Size {
		return ssOnStack
	}
	return 0
}

// AltStackState returns the signal stack as sigaltstack reports it (with
// SS_ONSTACK when the app runs on it).
func (t *Task) AltStackState() SignalStack {
	s := t.altStack
	f := t.sasFlags(t.regs.Rsp)
	if f == ssDisable {
		return SignalStack{Flags: ssDisable}
	}
	s.Flags = s.Flags&ssAutoDisarm | f
	return s
}

// SetAltStackChecked is sigaltstack's change with Linux's checks: EPERM
// while running on the stack, EINVAL for unknown flags, ENOMEM when small.
func (t *Task) SetAltStackChecked(ns SignalStack) error {
	if t.sasFlags(t.regs.Rsp) == ssOnStack {
		return unix.EPERM
	}
	mode := ns.Flags &^ ssAutoDisarm
	switch mode {
	case ssDisable:
		t.altStack = SignalStack{Flags: ssDisable}
		return nil
	case 0, ssOnStack:
		if ns.Size < MinSigStkSize {
			return unix.ENOMEM
		}
		ns.Flags &^= ssOnStack
		t.altStack = ns
		return nil
	}
	return unix.EINVAL
}

// trapOf guesses the x86 trap number and error code Linux would record in
// sigcontext for a synchronous signal.
func trapOf(info *SigInfo) (trapno, errcode uint64) {
	if info.Code <= 0 {
		return 0, 0
	}
	switch unix.Signal(info.Signo) {
	case unix.SIGSEGV:
		if info.Code == 0x80 { // SI_KERNEL: general protection
			return 13, 0
		}
		e := uint64(4) // user-mode access
		if info.Code == 2 {
			e |= 1 // protection violation
		}
		return 14, e
	case unix.SIGBUS:
		return 14, 4
	case unix.SIGILL:
		return 6, 0
	case unix.SIGFPE:
		if info.Code == 1 || info.Code == 2 { // FPE_INTDIV, FPE_INTOVF
			return 0, 0
		}
		return 19, 0
	case unix.SIGTRAP:
		return 3, 0
	}
	return 0, 0
}

// putSigInfo encodes siginfo_t (128 bytes).
func putSigInfo(b []byte, info *SigInfo) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(info.Signo))
	le.PutUint32(b[8:], uint32(info.Code))
	switch unix.Signal(info.Signo) {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE, unix.SIGTRAP:
		if info.Code > 0 && info.Code != 0x80 {
			le.PutUint64(b[16:], info.Addr)
			return
		}
	}
	le.PutUint32(b[16:], uint32(info.PID))
	le.PutUint32(b[20:], info.UID)
}

// setupFrame builds the rt_sigframe for sig on the app's (or alternate)
// stack and points the task at the handler, as Linux's setup_rt_frame and
// handle_signal do. oldMask is the mask the handler's return restores. It
// reports false if the frame could not be written.
func (t *Task) setupFrame(info *SigInfo, a SigAction, oldMask sigSet) bool {
	if a.Flags&saRestorer == 0 {
		return false // x86-64 has no kernel trampoline: libc must give one
	}
	if err := t.saveFP(); err != nil {
		logging.Warningf("task %d: saving FP state for a signal frame: %v", t.tid, err)
		return false
	}
	regs := &t.regs
	origSp := regs.Rsp
	sp := origSp - redZone
	savedStack := t.altStack
	ssFlags := t.sasFlags(origSp)
	if a.Flags&saOnStack != 0 && t.sasFlags(sp) == 0 {
		sp = t.altStack.Sp + t.altStack.Size
	}
	fp := t.fpu.Data
	xsave := len(fp) > 512
	mathSize := uint64(len(fp))
	if xsave {
		mathSize += fpXStateMagic2Size
	}
	fpAddr := (sp - mathSize) &^ 63
	frame := ((fpAddr - frameSize) &^ 15) - 8

	buf := make([]byte, fpAddr+mathSize-frame)
	le := binary.LittleEndian
	le.PutUint64(buf[0:], a.Restorer)

	ucFlags := uint64(ucSigcontextSS | ucStrictRestoreSS)
	if xsave {
		ucFlags |= ucFPXState
	}
	le.PutUint64(buf[frameUC:], ucFlags)
	stFlags := ssFlags
	if ssFlags != ssDisable {
		stFlags |= savedStack.Flags & ssAutoDisarm
	}
	le.PutUint64(buf[frameStack:], savedStack.Sp)
	le.PutUint32(buf[frameStack+8:], uint32(stFlags))
	le.PutUint64(buf[frameStack+16:], savedStack.Size)

	mc := buf[frameMcontext:]
	for off, v := range map[int]uint64{
		scR8: regs.R8, scR9: regs.R9, scR10: regs.R10, scR11: regs.R11,
		scR12: regs.R12, scR13: regs.R13, scR14: regs.R14, scR15: regs.R15,
		scRdi: regs.Rdi, scRsi: regs.Rsi, scRbp: regs.Rbp, scRbx: regs.Rbx,
		scRdx: regs.Rdx, scRax: regs.Rax, scRcx: regs.Rcx, scRsp: regs.Rsp,
		scRip: regs.Rip, scEflags: regs.Eflags, scOldmask: uint64(oldMask),
		scFPState: fpAddr,
	} {
		le.PutUint64(mc[off:], v)
	}
	le.PutUint16(mc[scSegs:], uint16(regs.Cs))
	le.PutUint16(mc[scSegs+6:], uint16(regs.Ss))
	trapno, errcode := trapOf(info)
	le.PutUint64(mc[scErr:], errcode)
	le.PutUint64(mc[scTrapno:], trapno)
	if trapno == 14 {
		le.PutUint64(mc[scCr2:], info.Addr)
	}
	le.PutUint64(buf[frameSigmask:], uint64(oldMask))
	putSigInfo(buf[frameInfo:], info)

	f := buf[fpAddr-frame:]
	copy(f, fp)
	if xsave {
		// fpx_sw_bytes in the FXSAVE area's software-reserved bytes.
		clear(f[464:512])
		le.PutUint32(f[464:], fpXStateMagic1)
		le.PutUint32(f[468:], uint32(mathSize))
		le.PutUint64(f[472:], fpFeatures)
		le.PutUint32(f[480:], uint32(len(fp)))
		le.PutUint32(f[len(fp):], fpXStateMagic2)
		// Linux always marks FP and SSE present in the frame.
		le.PutUint64(f[512:], le.Uint64(f[512:])|3)
	}
	if _, err := t.mm.CopyOut(frame, buf); err != nil {
		logging.Debugf("task %d: signal %d frame at %#x: %v", t.tid, info.Signo, frame, err)
		return false
	}

	if a.Flags&saOnStack != 0 && savedStack.Flags&ssAutoDisarm != 0 && ssFlags != ssDisable {
		t.altStack = SignalStack{Flags: ssDisable}
	}
	regs.Rsp = frame
	regs.Rip = a.Handler
	regs.Rdi = uint64(info.Signo)
	regs.Rsi = frame + frameInfo
	regs.Rdx = frame + frameUC
	regs.Rax = 0
	regs.Eflags &^= eflagsDF | eflagsRF | eflagsTF
	regs.Cs = platform.UserCS
	regs.Ss = platform.UserSS
	// The handler starts with a clean FP state, as on Linux.
	copy(t.fpu.Data, platform.NewFPState().Data)
	return true
}

// SigReturn implements rt_sigreturn: restore the registers, FP state,
// signal mask and alternate stack from the frame the handler returned
// through. It returns the restored rax; on a bad frame the process gets
// SIGSEGV.
func (t *Task) SigReturn() uint64 {
	regs := &t.regs
	frame := regs.Rsp - 8
	buf := make([]byte, frameSize)
	if _, err := t.mm.CopyIn(frame, buf); err != nil {
		return t.badFrame(frame)
	}
	le := binary.LittleEndian
	mc := buf[frameMcontext:]
	g := func(off int) uint64 { return le.Uint64(mc[off:]) }
	var nr platform.Registers = *regs
	nr.R8, nr.R9, nr.R10, nr.R11 = g(scR8), g(scR9), g(scR10), g(scR11)
	nr.R12, nr.R13, nr.R14, nr.R15 = g(scR12), g(scR13), g(scR14), g(scR15)
	nr.Rdi, nr.Rsi, nr.Rbp, nr.Rbx = g(scRdi), g(scRsi), g(scRbp), g(scRbx)
	nr.Rdx, nr.Rax, nr.Rcx, nr.Rsp = g(scRdx), g(scRax), g(scRcx), g(scRsp)
	nr.Rip = g(scRip)
	nr.Eflags = regs.Eflags&^fixEflags | g(scEflags)&fixEflags
	// Only user segments: whatever the frame says, stay in 64-bit user mode.
	nr.Cs, nr.Ss = platform.UserCS, platform.UserSS
	nr.OrigRax = ^uint64(0) // no syscall restart from here

	if err := t.restoreFP(g(scFPState)); err != nil {
		return t.badFrame(frame)
	}
	*regs = nr
	t.SetSigMask(le.Uint64(buf[frameSigmask:]))
	ns := SignalStack{
		Sp:    le.Uint64(buf[frameStack:]),
		Flags: int32(le.Uint32(buf[frameStack+8:])),
		Size:  le.Uint64(buf[frameStack+16:]),
	}
	// Like Linux's restore_altstack, errors other than a fault are ignored.
	t.SetAltStackChecked(ns)
	return nr.Rax
}

func (t *Task) badFrame(frame uint64) uint64 {
	logging.Debugf("task %d: bad rt_sigreturn frame at %#x", t.tid, frame)
	t.forceSignal(SigInfo{Signo: int32(unix.SIGSEGV), Code: 0x80})
	return t.regs.Rax
}

// restoreFP loads the FP state a signal frame points to; addr 0 means the
// initial state. A frame without valid XSAVE magic restores only the
// FXSAVE part, as Linux does.
func (t *Task) restoreFP(addr uint64) error {
	if err := t.saveFP(); err != nil {
		return err
	}
	data := t.fpu.Data
	if addr == 0 {
		copy(data, platform.NewFPState().Data)
		return nil
	}
	if addr&63 != 0 {
		return unix.EFAULT
	}
	img := make([]byte, len(data))
	if _, err := t.mm.CopyIn(addr, img[:512]); err != nil {
		return err
	}
	le := binary.LittleEndian
	full := false
	if len(data) > 512 && le.Uint32(img[464:]) == fpXStateMagic1 {
		xsize := le.Uint32(img[480:])
		ext := le.Uint32(img[468:])
		if int(xsize) == len(data) && ext == xsize+fpXStateMagic2Size {
			var m [4]byte
			if _, err := t.mm.CopyIn(addr+uint64(xsize), m[:]); err != nil {
				return err
			}
			if le.Uint32(m[:]) == fpXStateMagic2 {
				if _, err := t.mm.CopyIn(addr+512, img[512:]); err != nil {
					return err
				}
				full = true
			}
		}
	}
	mxcsrMask := le.Uint32(data[28:])
	if mxcsrMask == 0 {
		mxcsrMask = 0xffbf
	}
	sw := append([]byte(nil), data[464:512]...)
	copy(data[:512], img[:512])
	copy(data[464:512], sw) // the software-reserved bytes are ours
	le.PutUint32(data[24:], le.Uint32(data[24:])&mxcsrMask)
	le.PutUint32(data[28:], mxcsrMask)
	if len(data) > 512 {
		if full {
			copy(data[512:], img[512:])
			le.PutUint64(data[512:], le.Uint64(data[512:])&fpFeatures)
		} else {
			clear(data[512:])
			le.PutUint64(data[512:], 3)
		}
		clear(data[520:576]) // xcomp_bv and reserved must be zero
	}
	return nil
}
