// Package kernel owns the Sentry's core objects: the Kernel, thread groups
// and tasks (one goroutine per app thread running the platform's Switch
// loop), signals, credentials, resource limits and FD tables. System call
// semantics live in package syscalls, which the kernel reaches through the
// Dispatcher interface; the kernel sees platforms only through
// guestkernel/platform.
package kernel

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/tmpfs"
	"github.com/ringfence/ringfence/guestkernel/loader"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Dispatcher serves system calls. It returns the value for the app's rax.
type Dispatcher interface {
	Dispatch(t *Task, nr uint64, args *[6]uint64) uint64
}

// Creds are a task's credentials.
type Creds struct {
	UID, EUID, SUID uint32
	GID, EGID, SGID uint32
	Groups          []uint32
}

// Config is what a Kernel needs.
type Config struct {
	Platform   platform.Platform
	MemFile    *memfile.File
	Dispatcher Dispatcher
	Hostname   string
	Creds      Creds
	// VFS and the root of the sandbox's mount namespace.
	VFS  *vfs.VFS
	Root vfs.VirtualDentry
	// Host facts the auxiliary vector passes on.
	HWCap, HWCap2, MinSigStkSz uint64
}

// ExitStatus is how a sandbox's init process ended.
type ExitStatus struct {
	Code   int
	Signal unix.Signal // non-zero if killed by a signal
}

// ShellCode is the status a shell would report: the code, or 128+signal.
func (e ExitStatus) ShellCode() int {
	if e.Signal != 0 {
		return 128 + int(e.Signal)
	}
	return e.Code
}

func (e ExitStatus) String() string {
	if e.Signal != 0 {
		return fmt.Sprintf("killed by signal %d (%v)", int(e.Signal), e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Kernel is one sandbox's kernel.
type Kernel struct {
	Config
	limits *Limits

	cpuOnce sync.Once
	cpuMask []byte

	futexes futexTable

	memfdOnce  sync.Once
	memfdMount *vfs.Mount

	bootTime time.Time
	bootID   string

	mu      sync.Mutex
	nextTID int32
	init    *ThreadGroup
}

// mountNS is the sandbox's mount namespace (one until unshare exists).
func (k *Kernel) mountNS() *vfs.MountNamespace {
	if k.Root.Mount == nil {
		return nil
	}
	return k.Root.Mount.Namespace()
}

// New makes a kernel.
func New(c Config) *Kernel {
	k := &Kernel{Config: c, limits: HostLimits(), nextTID: 1, bootTime: time.Now(), bootID: newBootID()}
	// Read the affinity now, before task threads pin themselves to CPUs.
	k.CPUMask()
	return k
}

// ProcessArgs describe the sandbox's first process.
type ProcessArgs struct {
	Path   string // the executable, as a path in the sandbox
	ExecFn string // AT_EXECFN: the path as the user gave it
	Argv   []string
	Envv   []string
	Cwd    string // working directory in the sandbox; "" is /
	Stdio  []File // installed as fds 0, 1, 2, ...
}

// CreateProcess loads the first process. It is not started until Start.
// Failures to load are *loader.Error, with the errno execve would give.
func (k *Kernel) CreateProcess(a ProcessArgs) (*ThreadGroup, error) {
	as, err := k.Platform.NewAddressSpace()
	if err != nil {
		return nil, fmt.Errorf("creating address space: %w", err)
	}
	min, max := k.Platform.MinUserAddress(), k.Platform.MaxUserAddress()
	m := mm.New(k.MemFile, as, min, max)
	m.SetCommitLimit(commitLimit())
	tg := &ThreadGroup{k: k, limits: k.limits.Copy(), done: make(chan struct{})}
	t, err := k.newTask(tg, m)
	if err != nil {
		m.Release()
		return nil, err
	}
	fail := func(err error) (*ThreadGroup, error) {
		m.Release()
		unix.Close(t.interruptFD)
		return nil, err
	}
	if a.Cwd != "" {
		root := t.fs.Root()
		vd, err := k.VFS.Resolve(t, &vfs.Walk{Root: root, Start: root, Path: a.Cwd, FollowFinal: true})
		if err == nil {
			err = k.VFS.CheckChdir(t, vd)
		}
		if err != nil {
			return fail(&loader.Error{Errno: unix.ENOENT, Msg: fmt.Sprintf("working directory %s: %v", a.Cwd, err)})
		}
		t.fs.SetCwd(vd)
	}
	if !strings.Contains(a.Path, "/") {
		// A bare name is looked up in PATH inside the sandbox, which
		// (with --volume mounts) need not match the host.
		p, err := t.lookPath(a.Path, a.Envv)
		if err != nil {
			return fail(err)
		}
		a.Path = p
		if a.ExecFn == "" || !strings.Contains(a.ExecFn, "/") {
			a.ExecFn = p
		}
	}
	opener := execOpener{t}
	path, argv, exe, err := loader.ResolveScript(opener, a.Path, a.Argv)
	if err != nil {
		return fail(err)
	}
	defer exe.Close()
	if e, ok := exe.(*executable); ok {
		tg.exe = e.VirtualDentry()
		tg.exe.Dentry.IncRef() // /proc/PID/exe keeps the file's name
	}
	img, err := loader.Load(m, loader.Args{
		File: exe, Name: path, Argv: argv, Envv: a.Envv, ExecFn: a.ExecFn, Opener: opener,
		Creds: loader.Creds{UID: k.Creds.UID, EUID: k.Creds.EUID, GID: k.Creds.GID, EGID: k.Creds.EGID},
		HWCap: k.HWCap, HWCap2: k.HWCap2, MinSigStkSz: k.MinSigStkSz,
		StackSize: k.limits.Get(unix.RLIMIT_STACK).Cur,
	})
	if err != nil {
		return fail(err)
	}
	tg.leader = t
	tg.pid = t.tid
	tg.name = comm(path)
	tg.argv, tg.envv = argv, a.Envv
	for i, f := range a.Stdio {
		d := NewFileDescription(f)
		t.fdt.InstallAt(int32(i), d, false)
		d.DecRef() // the table holds it now
	}
	t.regs.Rip = img.Entry
	t.regs.Rsp = img.StackPtr
	t.regs.Cs, t.regs.Ss, t.regs.Eflags = platform.UserCS, platform.UserSS, platform.EflagsInit
	t.auxv = img.Auxv
	k.mu.Lock()
	k.init = tg
	k.mu.Unlock()
	return tg, nil
}

// comm is the process name Linux derives from a path: its last element,
// at most 15 bytes.
func comm(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		path = path[i+1:]
	}
	if len(path) > 15 {
		path = path[:15]
	}
	return path
}

func (k *Kernel) newTask(tg *ThreadGroup, m *mm.MM) (*Task, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("task interrupt eventfd: %w", err)
	}
	k.mu.Lock()
	tid := k.nextTID
	k.nextTID++
	k.mu.Unlock()
	creds := k.Creds
	t := &Task{
		k: k, tg: tg, tid: tid, mm: m, fdt: NewFDTable(), fpu: platform.NewFPState(),
		creds: &creds, interruptFD: efd, fs: vfs.NewFSContext(k.Root, k.Root),
	}
	t.updateFSCreds()
	return t, nil
}

// Start runs tg's tasks.
func (tg *ThreadGroup) Start() {
	go tg.leader.run()
}

// Wait blocks until tg has exited and returns its status.
func (tg *ThreadGroup) Wait() ExitStatus {
	<-tg.done
	return tg.status
}

// SendSignal sends sig to the sandbox's init process, as runsc does when
// it forwards a signal it received.
func (k *Kernel) SendSignal(sig unix.Signal) {
	k.mu.Lock()
	tg := k.init
	k.mu.Unlock()
	if tg != nil {
		tg.SendSignal(sig, SigInfo{Signo: int32(sig), Code: SiUser})
	}
}

// CPUMask returns the sandbox's CPU affinity mask in sched_getaffinity's
// format: the CPUs runsc may use, in whole 64-bit words.
func (k *Kernel) CPUMask() []byte {
	k.cpuOnce.Do(func() {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			set.Set(0)
		}
		high := 0
		for i := 0; i < len(set)*64; i++ {
			if set.IsSet(i) {
				high = i
			}
		}
		words := high/64 + 1
		k.cpuMask = make([]byte, 8*words)
		for i := 0; i <= high; i++ {
			if set.IsSet(i) {
				k.cpuMask[i/8] |= 1 << (i % 8)
			}
		}
	})
	return k.cpuMask
}

// commitLimit is the host's RAM plus swap: the largest single allocation
// Linux's default overcommit heuristic grants.
func commitLimit() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return (si.Totalram + si.Totalswap) * uint64(si.Unit)
}

// MemfdMount is the detached tmpfs mount memfds live on.
func (k *Kernel) MemfdMount() *vfs.Mount {
	k.memfdOnce.Do(func() {
		k.memfdMount = k.VFS.NewDetachedMount(k.VFS.NewSuperblock(tmpfs.MemfdFS(k.MemFile)), "tmpfs")
	})
	return k.memfdMount
}

// Uptime is how long the sandbox has run.
func (k *Kernel) Uptime() time.Duration { return time.Since(k.bootTime) }

// NumTasks counts the sandbox's live tasks.
func (k *Kernel) NumTasks() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.init == nil || k.init.Exiting() {
		return 0
	}
	return 1
}
