package process

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The gofer's seccomp filter (x86-64). Everything not listed fails with
// EPERM; calls that only an attacker would make kill the process.
//
// The lists were found by tracing the gofer (strace -f) while it served
// every request type, in a binary with and without cgo; the tests run a
// confined gofer through all of them.

// allowedSyscalls may be called with any arguments. Hot calls come first:
// the filter is a linear scan.
var allowedSyscalls = []uintptr{
	// Serving: the socket, and the runtime's netpoller and scheduler.
	unix.SYS_RECVMSG,
	unix.SYS_SENDMSG,
	unix.SYS_FUTEX,
	unix.SYS_EPOLL_PWAIT,
	unix.SYS_EPOLL_WAIT,
	unix.SYS_EPOLL_CTL,
	unix.SYS_READ,    // netpoll wake-up eventfd/pipe
	unix.SYS_PREAD64, // the runtime re-reads its cgroup CPU limit (sysmon)
	unix.SYS_WRITE,   // the same, and messages on stderr
	unix.SYS_NANOSLEEP,
	unix.SYS_SCHED_YIELD,
	unix.SYS_GETPID,
	unix.SYS_GETTID,
	unix.SYS_TGKILL, // goroutine preemption signals to our own threads
	unix.SYS_CLOCK_GETTIME,
	unix.SYS_GETTIMEOFDAY,

	// gofer/server's file operations, all on descriptors.
	unix.SYS_OPENAT2, // every lookup; RESOLVE_BENEATH is the server's rule
	unix.SYS_STATX,
	unix.SYS_FSTAT,
	unix.SYS_NEWFSTATAT,
	unix.SYS_FCNTL,
	unix.SYS_CLOSE,
	unix.SYS_GETDENTS64,
	unix.SYS_LSEEK,
	unix.SYS_FTRUNCATE,
	unix.SYS_FCHMOD,
	unix.SYS_FCHMODAT2,
	unix.SYS_FCHOWNAT,
	unix.SYS_MKDIRAT,
	unix.SYS_MKNODAT, // regular files and FIFOs only: devices need CAP_MKNOD
	unix.SYS_SYMLINKAT,
	unix.SYS_LINKAT,
	unix.SYS_UNLINKAT,
	unix.SYS_RENAMEAT2,
	unix.SYS_READLINKAT,
	unix.SYS_UTIMENSAT,
	unix.SYS_FSTATFS,

	// Memory. mmap and mprotect are checked separately (no PROT_EXEC).
	unix.SYS_MUNMAP,
	unix.SYS_MADVISE,
	unix.SYS_MREMAP,
	unix.SYS_BRK,

	// Signals, threads and exit.
	unix.SYS_RT_SIGACTION,
	unix.SYS_RT_SIGPROCMASK,
	unix.SYS_RT_SIGRETURN,
	unix.SYS_SIGALTSTACK,
	unix.SYS_RESTART_SYSCALL,
	unix.SYS_SCHED_GETAFFINITY,
	unix.SYS_SET_ROBUST_LIST, // new threads under glibc (cgo)
	unix.SYS_RSEQ,            // the same
	unix.SYS_GETRANDOM,
	unix.SYS_EXIT,
	unix.SYS_EXIT_GROUP,
}

// killSyscalls end the process: the gofer never makes them, so a call is
// a compromised gofer trying to get out.
var killSyscalls = []uintptr{
	unix.SYS_EXECVE,
	unix.SYS_EXECVEAT,
	unix.SYS_PTRACE,
	unix.SYS_FORK,
	unix.SYS_VFORK,
	unix.SYS_PROCESS_VM_READV,
	unix.SYS_PROCESS_VM_WRITEV,
	unix.SYS_MOUNT,
	unix.SYS_UMOUNT2,
	unix.SYS_PIVOT_ROOT,
	unix.SYS_CHROOT,
	unix.SYS_UNSHARE,
	unix.SYS_SETNS,
	unix.SYS_OPEN_TREE,
	unix.SYS_MOVE_MOUNT,
	unix.SYS_FSOPEN,
	unix.SYS_FSMOUNT,
	unix.SYS_FSPICK,
	unix.SYS_OPEN_BY_HANDLE_AT, // reaches any inode of a mounted filesystem
	unix.SYS_NAME_TO_HANDLE_AT,
	unix.SYS_BPF,
	unix.SYS_PERF_EVENT_OPEN,
	unix.SYS_USERFAULTFD,
	unix.SYS_KEYCTL,
	unix.SYS_ADD_KEY,
	unix.SYS_REQUEST_KEY,
	unix.SYS_KEXEC_LOAD,
	unix.SYS_KEXEC_FILE_LOAD,
	unix.SYS_INIT_MODULE,
	unix.SYS_FINIT_MODULE,
	unix.SYS_DELETE_MODULE,
}

// Actions.
const (
	retAllow  = unix.SECCOMP_RET_ALLOW
	retKill   = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// Offsets in struct seccomp_data. Argument words are little endian, so
// the low 32 bits of argument i are at seccompArg0+8*i.
const (
	seccompNr   = 0
	seccompArch = 4
	seccompArg0 = 16
)

// x32SyscallBit marks x32 ABI calls, which have their own numbers.
const x32SyscallBit = 0x40000000

func bpfStmt(code uint16, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k}
}

func bpfJump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

const (
	ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	jeqK  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	jgeK  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	jsetK = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	retK  = unix.BPF_RET | unix.BPF_K
)

// onNr returns "if nr == n return action", leaving nr in A otherwise.
// Every test jumps at most one instruction, so the program never needs a
// jump longer than classic BPF's 8-bit offsets.
func onNr(n uintptr, action uint32) []unix.SockFilter {
	return []unix.SockFilter{
		bpfJump(jeqK, uint32(n), 0, 1),
		bpfStmt(retK, action),
	}
}

// onNrArgMask returns "if nr == n { if arg & mask != 0 return set else
// return clear }", leaving nr in A otherwise.
func onNrArgMask(n uintptr, arg int, mask uint32, set, clear uint32) []unix.SockFilter {
	return []unix.SockFilter{
		bpfJump(jeqK, uint32(n), 0, 4),
		bpfStmt(ldAbs, uint32(seccompArg0+8*arg)),
		bpfJump(jsetK, mask, 0, 1),
		bpfStmt(retK, set),
		bpfStmt(retK, clear),
	}
}

// seccompFilter builds the gofer's filter program.
func seccompFilter() []unix.SockFilter {
	p := []unix.SockFilter{
		// Another architecture's numbers mean other calls: kill.
		bpfStmt(ldAbs, seccompArch),
		bpfJump(jeqK, unix.AUDIT_ARCH_X86_64, 1, 0),
		bpfStmt(retK, retKill),
		bpfStmt(ldAbs, seccompNr),
		bpfJump(jgeK, x32SyscallBit, 0, 1),
		bpfStmt(retK, retKill),
	}
	for _, n := range allowedSyscalls {
		p = append(p, onNr(n, retAllow)...)
	}
	// No executable memory: the gofer never maps code after start-up.
	p = append(p, onNrArgMask(unix.SYS_MMAP, 2, unix.PROT_EXEC, retEPERM, retAllow)...)
	p = append(p, onNrArgMask(unix.SYS_MPROTECT, 2, unix.PROT_EXEC, retEPERM, retAllow)...)
	// Threads only (the kernel reads the low 32 bits of clone's flags);
	// a new process is an escape attempt.
	p = append(p, onNrArgMask(unix.SYS_CLONE, 0, unix.CLONE_THREAD, retAllow, retKill)...)
	// clone3's flags are in memory, out of the filter's reach. ENOSYS
	// makes glibc fall back to clone; the Go runtime uses clone.
	p = append(p, onNr(unix.SYS_CLONE3, retENOSYS)...)
	for _, n := range killSyscalls {
		p = append(p, onNr(n, retKill)...)
	}
	return append(p, bpfStmt(retK, retEPERM))
}

// installSeccomp installs the filter on every thread of the process
// (TSYNC also gives every thread no_new_privs).
func installSeccomp() error {
	p := seccompFilter()
	prog := unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("install seccomp filter: %w", e)
	}
	if r != 0 {
		return fmt.Errorf("install seccomp filter: thread %d could not be synchronised", r)
	}
	return nil
}
