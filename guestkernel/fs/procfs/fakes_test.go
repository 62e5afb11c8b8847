package procfs

import (
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/fsutil"
	"github.com/ringfence/ringfence/guestkernel/fs/sysfs"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// tctx is a task's context: fakeKernel.CallerPID reads its ids.
type tctx struct {
	pid, tid int32
	creds    vfs.Credentials
}

func (c *tctx) FSCredentials() *vfs.Credentials            { return &c.creds }
func (c *tctx) WaitHostFD(int, int16, time.Duration) error { return nil }
func (c *tctx) MM() *mm.MM                                 { return nil }

func rootCtx(pid, tid int32) *tctx {
	return &tctx{pid: pid, tid: tid, creds: vfs.Credentials{Caps: vfs.AllCaps}}
}

type fakeKernel struct {
	mu    sync.Mutex
	procs map[int32]*fakeProcess
	boot  time.Time
	ncpu  int
	mem   MemInfo
	stat  SystemStat
}

func (k *fakeKernel) CallerPID(ctx vfs.Context) (int32, int32) {
	if c, ok := ctx.(*tctx); ok {
		return c.pid, c.tid
	}
	return 0, 0
}

func (k *fakeKernel) Processes() []Process {
	k.mu.Lock()
	defer k.mu.Unlock()
	var pids []int
	for pid, p := range k.procs {
		if p.Alive() {
			pids = append(pids, int(pid))
		}
	}
	sort.Ints(pids)
	var out []Process
	for _, pid := range pids {
		out = append(out, k.procs[int32(pid)])
	}
	return out
}

func (k *fakeKernel) Process(pid int32) (Process, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.procs[pid]
	if !ok || !p.Alive() {
		return nil, false
	}
	return p, true
}

func (k *fakeKernel) add(p *fakeProcess) {
	k.mu.Lock()
	k.procs[p.pid] = p
	k.mu.Unlock()
}

func (k *fakeKernel) reap(pid int32) {
	k.mu.Lock()
	k.procs[pid].reaped = true
	delete(k.procs, pid)
	k.mu.Unlock()
}

func (k *fakeKernel) LastPID() int32      { return 99 }
func (k *fakeKernel) Hostname() string    { return "sandbox" }
func (k *fakeKernel) Domainname() string  { return "(none)" }
func (k *fakeKernel) Release() string     { return "6.12.0" }
func (k *fakeKernel) Version() string     { return "#1 SMP Ringfence" }
func (k *fakeKernel) BootID() string      { return "0b7f3b6e-5d3c-4a43-9f1e-2c2d1d4e5f60" }
func (k *fakeKernel) BootTime() time.Time { return k.boot }
func (k *fakeKernel) NumCPUs() int        { return k.ncpu }
func (k *fakeKernel) Memory() MemInfo     { return k.mem }
func (k *fakeKernel) LoadAvg() [3]float64 { return [3]float64{0.5, 0.25, 1.125} }
func (k *fakeKernel) Stat() SystemStat    { return k.stat }

type fakeThread struct {
	mu      sync.Mutex
	tid     int32
	comm    string
	state   byte
	creds   Creds
	mask    uint64
	pending uint64
	start   time.Duration
	utime   time.Duration
}

func (t *fakeThread) TID() int32 { return t.tid }
func (t *fakeThread) Comm() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.comm
}
func (t *fakeThread) SetComm(s string) {
	t.mu.Lock()
	t.comm = s
	t.mu.Unlock()
}
func (t *fakeThread) State() byte                             { return t.state }
func (t *fakeThread) Creds() Creds                            { return t.creds }
func (t *fakeThread) SigMask() uint64                         { return t.mask }
func (t *fakeThread) SigPending() uint64                      { return t.pending }
func (t *fakeThread) CPUTime() (time.Duration, time.Duration) { return t.utime, t.utime / 2 }
func (t *fakeThread) StartTime() time.Duration                { return t.start }

type fakeProcess struct {
	mu      sync.Mutex
	pid     int32
	ppid    int32
	threads []*fakeThread
	reaped  bool
	cmdline []byte
	environ []byte
	exe     vfs.VirtualDentry
	cwd     vfs.VirtualDentry
	root    vfs.VirtualDentry
	ns      *vfs.MountNamespace
	fds     []FD
	mm      *mm.MM
	layout  MemLayout
	rss     uint64
	limits  [16][2]uint64
	oomAdj  int
}

func (p *fakeProcess) PID() int32  { return p.pid }
func (p *fakeProcess) PPID() int32 { return p.ppid }
func (p *fakeProcess) PGID() int32 { return p.pid }
func (p *fakeProcess) SID() int32  { return 1 }
func (p *fakeProcess) Alive() bool { return !p.reaped }
func (p *fakeProcess) Leader() Thread {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.threads[0]
}
func (p *fakeProcess) Threads() []Thread {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Thread
	for _, t := range p.threads {
		out = append(out, t)
	}
	return out
}
func (p *fakeProcess) Thread(tid int32) (Thread, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.threads {
		if t.tid == tid {
			return t, true
		}
	}
	return nil, false
}
func (p *fakeProcess) Cmdline() []byte                     { return p.cmdline }
func (p *fakeProcess) Environ() []byte                     { return p.environ }
func (p *fakeProcess) Exe() (vfs.VirtualDentry, bool)      { return p.exe, p.exe.Ok() }
func (p *fakeProcess) Cwd() vfs.VirtualDentry              { return p.cwd }
func (p *fakeProcess) Root() vfs.VirtualDentry             { return p.root }
func (p *fakeProcess) Umask() uint32                       { return 0o22 }
func (p *fakeProcess) MountNamespace() *vfs.MountNamespace { return p.ns }
func (p *fakeProcess) FDs() []FD {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]FD(nil), p.fds...)
}
func (p *fakeProcess) FD(n int32) (FD, bool) {
	for _, fd := range p.FDs() {
		if fd.Num == n {
			return fd, true
		}
	}
	return FD{}, false
}
func (p *fakeProcess) closeFD(n int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, fd := range p.fds {
		if fd.Num == n {
			p.fds = append(p.fds[:i:i], p.fds[i+1:]...)
			return
		}
	}
}
func (p *fakeProcess) MM() *mm.MM        { return p.mm }
func (p *fakeProcess) Layout() MemLayout { return p.layout }
func (p *fakeProcess) RSS() uint64       { return p.rss }
func (p *fakeProcess) Limit(r int) (uint64, uint64) {
	return p.limits[r][0], p.limits[r][1]
}
func (p *fakeProcess) Signals() (uint64, uint64, uint64) { return 1 << 9, 1 << 12, 1<<1 | 1<<16 }
func (p *fakeProcess) CPUTime() (time.Duration, time.Duration) {
	return 3 * time.Second, 1500 * time.Millisecond
}
func (p *fakeProcess) OOMScoreAdj() int { return p.oomAdj }
func (p *fakeProcess) SetOOMScoreAdj(ctx vfs.Context, adj int) error {
	if adj < p.oomAdj && !ctx.FSCredentials().Caps.Has(24) { // CAP_SYS_RESOURCE
		return unix.EACCES
	}
	p.oomAdj = adj
	return nil
}

type fakeAS struct{}

func (fakeAS) MapFile(uint64, int64, uint64, platform.AccessType) error { return nil }
func (fakeAS) Unmap(uint64, uint64)                                     {}
func (fakeAS) Release()                                                 {}

// world is a sandbox: a VFS with a root filesystem, /proc and /sys
// mounted, and a kernel with processes.
type world struct {
	v    *vfs.VFS
	ns   *vfs.MountNamespace
	k    *fakeKernel
	proc vfs.Filesystem
	init *fakeProcess
}

const (
	initPID = 42
	initTID = 42
)

func newWorld(t *testing.T) *world {
	t.Helper()
	v := vfs.New()
	var inos fsutil.Inos
	node := func(mode uint32) fsutil.Node { return fsutil.NewNode(inos.Next(), mode, 0x01021994) }
	hosts := fsutil.NewStaticFile(node(0o644), "127.0.0.1 localhost\n")
	etc := fsutil.NewDir(node(0o755), []fsutil.Entry{{Name: "hosts", Inode: hosts}, {Name: "my dir", Inode: fsutil.NewDir(node(0o755), nil)}})
	rootDir := fsutil.NewDir(node(0o755), []fsutil.Entry{
		{Name: "etc", Inode: etc},
		{Name: "proc", Inode: fsutil.NewDir(node(0o555), nil)},
		{Name: "sys", Inode: fsutil.NewDir(node(0o555), nil)},
		{Name: "mnt", Inode: fsutil.NewDir(node(0o755), nil)},
	})
	w := &world{v: v, k: &fakeKernel{procs: make(map[int32]*fakeProcess), boot: time.Now().Add(-90 * time.Second), ncpu: 2,
		mem: MemInfo{Total: 8 << 30, Free: 6 << 30, Available: 7 << 30, Cached: 100 << 20, AnonPages: 50 << 20}}}
	w.proc = New(w.k, v, v.PathOf)
	v.RegisterFilesystemType("proc", func(vfs.Context, string, uint64, string) (vfs.Filesystem, error) { return w.proc, nil })
	v.RegisterFilesystemType("sysfs", func(vfs.Context, string, uint64, string) (vfs.Filesystem, error) { return sysfs.New(2), nil })
	v.RegisterFilesystemType("tmpfs", func(vfs.Context, string, uint64, string) (vfs.Filesystem, error) {
		return &fsutil.Filesystem{Name: "tmpfs", Tree: rootDir}, nil
	})
	w.ns = v.NewMountNamespace(v.NewSuperblock(&fsutil.Filesystem{Name: "tmpfs", Tree: rootDir}), "rootfs", 0)
	ctx := rootCtx(0, 0)
	mount := func(path, src, typ string, flags uint64, data string) {
		if err := v.Mount(ctx, w.resolve(t, ctx, path, true), src, typ, flags, data); err != nil {
			t.Fatalf("mount %s: %v", path, err)
		}
	}
	mount("/proc", "proc", "proc", vfs.MountNoSuid|vfs.MountNoDev|vfs.MountNoExec, "")
	mount("/sys", "sysfs", "sysfs", vfs.MountReadOnly, "")
	if err := v.BindMount(ctx, w.resolve(t, ctx, "/etc/my dir", true), w.resolve(t, ctx, "/mnt", true), 0); err != nil {
		t.Fatalf("bind mount: %v", err)
	}

	mf, err := memfile.New(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mf.Close() })
	m := mm.New(mf, fakeAS{}, 0x10000, 0x7fff00000000)
	m.SetMmapBase(0x7f0000000000)
	for _, o := range []mm.MMapOpts{
		{Addr: 0x400000, Length: 0x2000, Perms: platform.ReadExec, Fixed: true},
		{Addr: 0x600000, Length: 0x3000, Perms: platform.ReadWrite, Fixed: true, Name: "[heap]"},
		{Addr: 0x7ffe00000000, Length: 0x21000, Perms: platform.ReadWrite, Fixed: true, Name: "[stack]"},
		{Addr: 0x7e0000000000, Length: 0x1000, Perms: platform.Read, Fixed: true, Shared: true},
	} {
		if _, err := m.MMap(o); err != nil {
			t.Fatal(err)
		}
	}
	root := w.ns.Root()
	p := &fakeProcess{
		pid: initPID, ppid: 1,
		threads: []*fakeThread{
			{tid: initTID, comm: "init", state: 'S', creds: Creds{UID: 1000, EUID: 1001, SUID: 1002, FSUID: 1001,
				GID: 100, EGID: 101, SGID: 102, FSGID: 101, Groups: []uint32{4, 27}, CapBnd: 1<<41 - 1},
				mask: 1<<1 | 1<<33, start: 250 * time.Millisecond, utime: 2 * time.Second},
			{tid: 43, comm: "worker", state: 'R', utime: time.Second, start: time.Second},
		},
		cmdline: []byte("/bin/init\x00--flag\x00"),
		environ: []byte("PATH=/bin\x00HOME=/\x00"),
		exe:     w.resolve(t, ctx, "/etc/hosts", true),
		cwd:     w.resolve(t, ctx, "/etc", true),
		root:    root,
		ns:      w.ns,
		fds: []FD{
			{Num: 0, Path: w.resolve(t, ctx, "/etc/hosts", true), Flags: unix.O_RDONLY | oLargefile, Pos: 12, Ino: 7},
			{Num: 1, Name: "pipe:[5]", Flags: unix.O_WRONLY},
			{Num: 2, Path: w.resolve(t, ctx, "/etc/my dir", true), Flags: unix.O_RDWR | unix.O_APPEND, Cloexec: true},
		},
		mm:     m,
		layout: MemLayout{StartCode: 0x400000, EndCode: 0x401800, StartStack: 0x7ffe00020000, StartBrk: 0x600000},
		rss:    64 << 20,
	}
	for r := range p.limits {
		p.limits[r] = [2]uint64{unix.RLIM_INFINITY, unix.RLIM_INFINITY}
	}
	p.limits[unix.RLIMIT_NOFILE] = [2]uint64{1024, 4096}
	p.limits[unix.RLIMIT_SIGPENDING] = [2]uint64{7000, 7000}
	w.init = p
	w.k.add(p)
	w.k.add(&fakeProcess{pid: 7, ppid: initPID, threads: []*fakeThread{{tid: 7, comm: "child", state: 'Z'}}, root: root, ns: w.ns})
	return w
}

func (w *world) resolve(t *testing.T, ctx vfs.Context, path string, follow bool) vfs.VirtualDentry {
	t.Helper()
	vd, err := w.v.Resolve(ctx, &vfs.Walk{Root: w.ns.Root(), Start: w.ns.Root(), Path: path, FollowFinal: follow})
	if err != nil {
		t.Fatalf("resolve %s: %v", path, err)
	}
	return vd
}

func (w *world) walk(path string) *vfs.Walk {
	return &vfs.Walk{Root: w.ns.Root(), Start: w.ns.Root(), Path: path, FollowFinal: true}
}

// read opens path as ctx and reads it whole in small pieces.
func (w *world) read(t *testing.T, ctx vfs.Context, path string) string {
	t.Helper()
	s, err := w.tryRead(ctx, path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return s
}

func (w *world) tryRead(ctx vfs.Context, path string) (string, error) {
	fd, err := w.v.Open(ctx, w.walk(path), vfs.OpenOptions{Flags: unix.O_RDONLY})
	if err != nil {
		return "", err
	}
	defer fd.DecRef()
	return readAll(ctx, fd)
}

func readAll(ctx vfs.Context, fd *vfs.FileDescription) (string, error) {
	var sb strings.Builder
	buf := make([]byte, 7)
	for {
		n, err := fd.Read(ctx, [][]byte{buf}, -1)
		if err != nil && err != io.EOF {
			return "", err
		}
		if n == 0 {
			return sb.String(), nil
		}
		sb.Write(buf[:n])
	}
}

func (w *world) write(ctx vfs.Context, path, data string) error {
	fd, err := w.v.Open(ctx, w.walk(path), vfs.OpenOptions{Flags: unix.O_WRONLY | unix.O_TRUNC})
	if err != nil {
		return err
	}
	defer fd.DecRef()
	_, err = fd.Write(ctx, [][]byte{[]byte(data)}, -1)
	return err
}

func (w *world) list(t *testing.T, ctx vfs.Context, path string) []string {
	t.Helper()
	fd, err := w.v.Open(ctx, w.walk(path), vfs.OpenOptions{Flags: unix.O_RDONLY | unix.O_DIRECTORY})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer fd.DecRef()
	var names []string
	err = fd.IterDirents(ctx, func(d vfs.Dirent, _ int64) bool {
		if d.Name != "." && d.Name != ".." {
			names = append(names, d.Name)
		}
		return true
	})
	if err != nil {
		t.Fatalf("getdents %s: %v", path, err)
	}
	return names
}

// oLargefile is Linux's O_LARGEFILE on x86-64, which 64-bit opens carry
// (x/sys/unix defines it as 0 there).
const oLargefile = 0o100000
