package syscalls

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
)

func init() {
	partial(unix.SYS_EXIT, "ends the process: tasks are single-threaded until the process issue", sysExit, aInt)
	full(unix.SYS_EXIT_GROUP, sysExitGroup, aInt)
	full(unix.SYS_GETPID, sysGetpid)
	full(unix.SYS_GETTID, sysGettid)
	full(unix.SYS_GETPPID, sysGetppid)
	full(unix.SYS_GETUID, sysGetuid)
	full(unix.SYS_GETEUID, sysGeteuid)
	full(unix.SYS_GETGID, sysGetgid)
	full(unix.SYS_GETEGID, sysGetegid)
	full(unix.SYS_GETGROUPS, sysGetgroups, aInt, aHex)
	full(unix.SYS_SET_TID_ADDRESS, sysSetTidAddress, aHex)
	full(unix.SYS_SET_ROBUST_LIST, sysSetRobustList, aHex, aInt)
	unimplemented(unix.SYS_RSEQ, unix.ENOSYS, "restartable sequences; glibc runs without them")
	full(unix.SYS_ARCH_PRCTL, sysArchPrctl, aHex, aHex)
	full(unix.SYS_UNAME, sysUname, aHex)
	full(unix.SYS_PRLIMIT64, sysPrlimit64, aInt, aInt, aHex, aHex)
	full(unix.SYS_GETRLIMIT, sysGetrlimit, aInt, aHex)
	full(unix.SYS_SETRLIMIT, sysSetrlimit, aInt, aHex)
	full(unix.SYS_SCHED_GETAFFINITY, sysSchedGetaffinity, aInt, aInt, aHex)
	full(unix.SYS_SCHED_YIELD, sysSchedYield)
	full(unix.SYS_GETCPU, sysGetcpu, aHex, aHex, aHex)
}

func sysExit(t *kernel.Task, a *[6]uint64) (uint64, error) {
	t.ThreadGroup().Exit(kernel.ExitStatus{Code: int(a[0] & 0xff)})
	return 0, nil
}

func sysExitGroup(t *kernel.Task, a *[6]uint64) (uint64, error) {
	t.ThreadGroup().Exit(kernel.ExitStatus{Code: int(a[0] & 0xff)})
	return 0, nil
}

func sysGetpid(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return uint64(t.ThreadGroup().PID()), nil
}

func sysGettid(t *kernel.Task, a *[6]uint64) (uint64, error) { return uint64(t.TID()), nil }

// sysGetppid: the sandbox's first process has no parent inside it, like
// init in a PID namespace.
func sysGetppid(t *kernel.Task, a *[6]uint64) (uint64, error) { return 0, nil }

func sysGetuid(t *kernel.Task, a *[6]uint64) (uint64, error)  { return uint64(t.Creds().UID), nil }
func sysGeteuid(t *kernel.Task, a *[6]uint64) (uint64, error) { return uint64(t.Creds().EUID), nil }
func sysGetgid(t *kernel.Task, a *[6]uint64) (uint64, error)  { return uint64(t.Creds().GID), nil }
func sysGetegid(t *kernel.Task, a *[6]uint64) (uint64, error) { return uint64(t.Creds().EGID), nil }

func sysGetgroups(t *kernel.Task, a *[6]uint64) (uint64, error) {
	size, addr := int32(a[0]), a[1]
	groups := t.Creds().Groups
	if size < 0 {
		return 0, unix.EINVAL
	}
	if size == 0 {
		return uint64(len(groups)), nil
	}
	if int(size) < len(groups) {
		return 0, unix.EINVAL
	}
	b := make([]byte, 4*len(groups))
	for i, g := range groups {
		binary.LittleEndian.PutUint32(b[4*i:], g)
	}
	if _, err := t.MM().CopyOut(addr, b); err != nil {
		return 0, unix.EFAULT
	}
	return uint64(len(groups)), nil
}

func sysSetTidAddress(t *kernel.Task, a *[6]uint64) (uint64, error) {
	t.SetClearChildTID(a[0])
	return uint64(t.TID()), nil
}

// robustListHeadSize is sizeof(struct robust_list_head) on x86-64.
const robustListHeadSize = 24

func sysSetRobustList(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[1] != robustListHeadSize {
		return 0, unix.EINVAL
	}
	t.SetRobustList(a[0])
	return 0, nil
}

// arch_prctl codes.
const (
	archSetGS     = 0x1001
	archSetFS     = 0x1002
	archGetFS     = 0x1003
	archGetGS     = 0x1004
	archGetCPUID  = 0x1011
	archSetCPUID  = 0x1012
	userAddrLimit = 0x7ffffffff000 // Linux's TASK_SIZE_MAX
)

func sysArchPrctl(t *kernel.Task, a *[6]uint64) (uint64, error) {
	code, addr := a[0], a[1]
	r := t.Regs()
	put := func(v uint64) (uint64, error) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		if _, err := t.MM().CopyOut(addr, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	}
	switch code {
	case archSetFS, archSetGS:
		if addr >= userAddrLimit {
			return 0, unix.EPERM
		}
		if code == archSetFS {
			r.FsBase, r.Fs = addr, 0
		} else {
			r.GsBase, r.Gs = addr, 0
		}
		return 0, nil
	case archGetFS:
		return put(r.FsBase)
	case archGetGS:
		return put(r.GsBase)
	case archGetCPUID:
		return 1, nil // CPUID is never faulting for the app
	case archSetCPUID:
		if addr != 0 {
			return 0, nil
		}
		return 0, unix.ENODEV // CPUID faulting is not offered
	}
	return 0, unix.EINVAL
}

// Utsname field length.
const utsLen = 65

// Kernel identity the sandbox reports.
const (
	utsSysname = "Linux"
	utsRelease = kernel.Release
	utsVersion = kernel.Version
	utsMachine = "x86_64"
	utsDomain  = "(none)"
)

func sysUname(t *kernel.Task, a *[6]uint64) (uint64, error) {
	var b [6 * utsLen]byte
	for i, s := range []string{utsSysname, t.Kernel().Hostname, utsRelease, utsVersion, utsMachine, utsDomain} {
		copy(b[i*utsLen:(i+1)*utsLen-1], s)
	}
	if _, err := t.MM().CopyOut(a[0], b[:]); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}

func ownPID(t *kernel.Task, pid uint64) bool {
	return pid == 0 || int32(pid) == t.ThreadGroup().PID()
}

func putRlimit(t *kernel.Task, addr uint64, l kernel.Limit) error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], l.Cur)
	binary.LittleEndian.PutUint64(b[8:], l.Max)
	if _, err := t.MM().CopyOut(addr, b[:]); err != nil {
		return unix.EFAULT
	}
	return nil
}

func getRlimitArg(t *kernel.Task, addr uint64) (kernel.Limit, error) {
	var b [16]byte
	if _, err := t.MM().CopyIn(addr, b[:]); err != nil {
		return kernel.Limit{}, unix.EFAULT
	}
	return kernel.Limit{Cur: binary.LittleEndian.Uint64(b[:]), Max: binary.LittleEndian.Uint64(b[8:])}, nil
}

func sysPrlimit64(t *kernel.Task, a *[6]uint64) (uint64, error) {
	pid, res, newAddr, oldAddr := a[0], int(int32(a[1])), a[2], a[3]
	if !ownPID(t, pid) {
		return 0, unix.ESRCH
	}
	if res < 0 || res >= kernel.NumLimits {
		return 0, unix.EINVAL
	}
	ls := t.ThreadGroup().Limits()
	old := ls.Get(res)
	if newAddr != 0 {
		nl, err := getRlimitArg(t, newAddr)
		if err != nil {
			return 0, err
		}
		if old, err = ls.Set(res, nl, t.Creds().EUID == 0); err != nil {
			return 0, err
		}
	}
	if oldAddr != 0 {
		return 0, putRlimit(t, oldAddr, old)
	}
	return 0, nil
}

func sysGetrlimit(t *kernel.Task, a *[6]uint64) (uint64, error) {
	res := int(int32(a[0]))
	if res < 0 || res >= kernel.NumLimits {
		return 0, unix.EINVAL
	}
	return 0, putRlimit(t, a[1], t.ThreadGroup().Limits().Get(res))
}

func sysSetrlimit(t *kernel.Task, a *[6]uint64) (uint64, error) {
	res := int(int32(a[0]))
	if res < 0 || res >= kernel.NumLimits {
		return 0, unix.EINVAL
	}
	nl, err := getRlimitArg(t, a[1])
	if err != nil {
		return 0, err
	}
	_, err = t.ThreadGroup().Limits().Set(res, nl, t.Creds().EUID == 0)
	return 0, err
}

func sysSchedGetaffinity(t *kernel.Task, a *[6]uint64) (uint64, error) {
	pid, size, addr := a[0], a[1], a[2]
	if !ownPID(t, pid) && int32(pid) != t.TID() {
		return 0, unix.ESRCH
	}
	mask := t.Kernel().CPUMask()
	if size < uint64(len(mask)) || size%8 != 0 {
		return 0, unix.EINVAL
	}
	if _, err := t.MM().CopyOut(addr, mask); err != nil {
		return 0, unix.EFAULT
	}
	return uint64(len(mask)), nil
}

func sysSchedYield(t *kernel.Task, a *[6]uint64) (uint64, error) {
	unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	return 0, nil
}

func sysGetcpu(t *kernel.Task, a *[6]uint64) (uint64, error) {
	// The CPU the task's thread runs on now; the sandbox is one NUMA node.
	var cpu, node uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		return 0, e
	}
	var b [4]byte
	if a[0] != 0 {
		binary.LittleEndian.PutUint32(b[:], cpu)
		if _, err := t.MM().CopyOut(a[0], b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	if a[1] != 0 {
		binary.LittleEndian.PutUint32(b[:], 0)
		if _, err := t.MM().CopyOut(a[1], b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}
