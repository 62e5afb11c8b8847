// Package procfs is the sandbox's /proc, generated from the Sentry's own
// state (its processes, address spaces, mounts and figures), never the
// host's. It sees the kernel only through the Kernel and Process
// interfaces below, which package kernel implements.
//
// Files are generated when they are opened and each open file reads its
// own snapshot, so a program reading one in pieces sees consistent text.
// Entries that come and go (processes, threads, fds) revalidate, so the
// VFS's dentry cache never answers for a process that has gone.
package procfs

import (
	"time"

	"github.com/ringfence/ringfence/guestkernel/fs/fsutil"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Type is the filesystem type name.
const Type = "proc"

// Kernel is what procfs needs of the Sentry's kernel.
type Kernel interface {
	// CallerPID returns the process and thread ids of the task that ctx
	// belongs to (/proc/self, /proc/thread-self, whose root fd links are
	// rendered from), or (0, 0) if ctx is not a task's.
	CallerPID(ctx vfs.Context) (pid, tid int32)
	// Processes lists the processes not yet reaped (zombies included),
	// in increasing pid order.
	Processes() []Process
	// Process finds a process not yet reaped by pid.
	Process(pid int32) (Process, bool)
	// LastPID is the most recently allocated pid (loadavg).
	LastPID() int32

	Hostname() string
	Domainname() string
	// Release and Version are uname's release and version fields
	// ("6.12.0", "#1 SMP ..."), which /proc/version and
	// /proc/sys/kernel/{osrelease,version} must agree with.
	Release() string
	Version() string
	// BootID is a random UUID fixed for the sandbox's life.
	BootID() string
	// BootTime is when the sandbox started: uptime and the start times
	// of processes count from it.
	BootTime() time.Time
	// NumCPUs is the number of CPUs the sandbox has.
	NumCPUs() int
	// Memory are the figures of /proc/meminfo.
	Memory() MemInfo
	// LoadAvg is the 1, 5 and 15 minute load averages.
	LoadAvg() [3]float64
	// Stat are the counters of /proc/stat.
	Stat() SystemStat
}

// MemInfo are memory figures in bytes. Fields the Sentry does not track
// stay zero; /proc/meminfo shows the lines Linux has anyway.
type MemInfo struct {
	Total, Free, Available uint64
	// Cached is file data in memory (tmpfs and cached files); Shmem the
	// part of it that is tmpfs or shared anonymous memory.
	Buffers, Cached, Shmem uint64
	AnonPages, Mapped      uint64
	SwapTotal, SwapFree    uint64
}

// CPUTime is one CPU's time by state.
type CPUTime struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal time.Duration
}

// SystemStat are /proc/stat's figures.
type SystemStat struct {
	// CPUs are the per-CPU times; missing CPUs show zero.
	CPUs            []CPUTime
	ContextSwitches uint64
	// Forks counts processes and threads created since boot.
	Forks uint64
}

// Process is a thread group as procfs sees it. Methods are called without
// procfs holding any lock and may be called after the process has exited.
type Process interface {
	PID() int32
	PPID() int32
	PGID() int32
	SID() int32
	// Alive is false once the process has been reaped (its pid may then
	// name another process): its /proc entries vanish.
	Alive() bool
	// Leader is the thread group leader, which /proc/PID/{stat,status,
	// comm} speak of.
	Leader() Thread
	// Threads lists the live threads, leader first.
	Threads() []Thread
	// Thread finds one of the process's live threads by tid.
	Thread(tid int32) (Thread, bool)

	// Cmdline and Environ are the argument and environment blocks, NUL
	// separated, as the process's memory holds them now.
	Cmdline() []byte
	Environ() []byte
	// Exe is the executable; false for a zombie.
	Exe() (vfs.VirtualDentry, bool)
	Cwd() vfs.VirtualDentry
	Root() vfs.VirtualDentry
	Umask() uint32
	MountNamespace() *vfs.MountNamespace

	// FDs lists the open descriptors in increasing order.
	FDs() []FD
	FD(fd int32) (FD, bool)

	// MM is the address space, nil once released (a zombie).
	MM() *mm.MM
	// Layout are the address space's landmarks for /proc/PID/stat.
	Layout() MemLayout
	// RSS is how many bytes of the address space are backed by memory
	// (VmRSS); 0 if not tracked.
	RSS() uint64
	// Limit is resource limit resource (RLIMIT_*).
	Limit(resource int) (cur, max uint64)
	// Signals are the process-wide pending signals and the ignored and
	// caught ones (bit n-1 for signal n).
	Signals() (pending, ignored, caught uint64)
	// CPUTime is the time all the process's threads, live and exited,
	// have run.
	CPUTime() (user, sys time.Duration)

	OOMScoreAdj() int
	// SetOOMScoreAdj sets the adjustment (range-checked already); it may
	// refuse a decrease with EACCES as Linux does without
	// CAP_SYS_RESOURCE.
	SetOOMScoreAdj(ctx vfs.Context, adj int) error
}

// Thread is one task of a process.
type Thread interface {
	TID() int32
	Comm() string
	// SetComm renames the thread (procfs has cut name to 15 bytes).
	SetComm(name string)
	// State is Linux's state letter: 'R' running, 'S' sleeping, 'D'
	// uninterruptible, 'T' stopped, 't' traced, 'Z' zombie.
	State() byte
	Creds() Creds
	// SigMask and SigPending are the blocked and thread-private pending
	// signals (bit n-1 for signal n).
	SigMask() uint64
	SigPending() uint64
	CPUTime() (user, sys time.Duration)
	// StartTime is when the thread started, counted from BootTime.
	StartTime() time.Duration
}

// Creds are a thread's credentials.
type Creds struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	Groups                 []uint32
	CapInh, CapPrm, CapEff uint64
	CapBnd, CapAmb         uint64
}

// MemLayout are the landmarks of an address space (mm_struct's start_code
// and so on); zero where unknown.
type MemLayout struct {
	StartCode, EndCode uint64
	StartData, EndData uint64
	StartBrk           uint64
	StartStack         uint64
	ArgStart, ArgEnd   uint64
	EnvStart, EnvEnd   uint64
}

// FD is one open descriptor.
type FD struct {
	Num int32
	// Path is what the file was opened by; following /proc/PID/fd/N
	// goes there. Zero for a file with no path (then following fails
	// with ENXIO).
	Path vfs.VirtualDentry
	// Name, if set, is the link's text instead of Path's:
	// "pipe:[ino]", "socket:[ino]", "anon_inode:[eventfd]".
	Name string
	// Flags are the status flags (O_ACCMODE, O_APPEND, ...), Cloexec the
	// descriptor's close-on-exec flag.
	Flags   int
	Cloexec bool
	Pos     int64
	Ino     uint64
}

// New makes a /proc. pathOf renders vd as a path seen from root (the VFS's
// PathOf); v provides the filesystem types and mount reachability and may
// be nil in tests.
func New(k Kernel, v *vfs.VFS, pathOf func(root, vd vfs.VirtualDentry) string) vfs.Filesystem {
	fs := &filesystem{k: k, v: v, pathOf: pathOf}
	return &fsutil.Filesystem{Name: Type, Tree: fs.newRoot()}
}

// filesystem is one /proc.
type filesystem struct {
	k      Kernel
	v      *vfs.VFS
	pathOf func(root, vd vfs.VirtualDentry) string
	inos   fsutil.Inos
}

// now is the clock, replaceable by tests.
var now = time.Now
