package kernel

import (
	"crypto/rand"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/procfs"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// The kernel identity the sandbox reports (uname, /proc/version).
const (
	Release = "6.12.0"
	Version = "#1 SMP Ringfence"
)

// ProcSource adapts the kernel to what procfs generates /proc from.
func ProcSource(k *Kernel) procfs.Kernel { return procKernel{k} }

type procKernel struct{ k *Kernel }

func (p procKernel) CallerPID(ctx vfs.Context) (int32, int32) {
	if t, ok := ctx.(*Task); ok {
		return t.tg.pid, t.tid
	}
	return 0, 0
}

func (p procKernel) processes() []*ThreadGroup {
	p.k.mu.Lock()
	defer p.k.mu.Unlock()
	if p.k.init == nil {
		return nil
	}
	return []*ThreadGroup{p.k.init}
}

func (p procKernel) Processes() []procfs.Process {
	var out []procfs.Process
	for _, tg := range p.processes() {
		out = append(out, procProcess{tg})
	}
	return out
}

func (p procKernel) Process(pid int32) (procfs.Process, bool) {
	for _, tg := range p.processes() {
		if tg.pid == pid {
			return procProcess{tg}, true
		}
	}
	return nil, false
}

func (p procKernel) LastPID() int32 {
	p.k.mu.Lock()
	defer p.k.mu.Unlock()
	return p.k.nextTID - 1
}

func (p procKernel) Hostname() string    { return p.k.Hostname }
func (p procKernel) Domainname() string  { return "(none)" }
func (p procKernel) Release() string     { return Release }
func (p procKernel) Version() string     { return Version }
func (p procKernel) BootID() string      { return p.k.bootID }
func (p procKernel) BootTime() time.Time { return p.k.bootTime }
func (p procKernel) NumCPUs() int        { return p.k.NumCPUs() }
func (p procKernel) LoadAvg() [3]float64 { return [3]float64{} }
func (p procKernel) Stat() procfs.SystemStat {
	return procfs.SystemStat{CPUs: make([]procfs.CPUTime, p.k.NumCPUs())}
}

// Memory reports the host's RAM as the sandbox's, less what the memory
// file holds.
func (p procKernel) Memory() procfs.MemInfo {
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	unit := uint64(si.Unit)
	total := si.Totalram * unit
	free := si.Freeram * unit
	return procfs.MemInfo{Total: total, Free: free, Available: free + si.Bufferram*unit,
		SwapTotal: si.Totalswap * unit, SwapFree: si.Freeswap * unit}
}

// NumCPUs is how many CPUs the sandbox may use.
func (k *Kernel) NumCPUs() int {
	n := 0
	for _, b := range k.CPUMask() {
		for ; b != 0; b &= b - 1 {
			n++
		}
	}
	return max(n, 1)
}

func newBootID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type procProcess struct{ tg *ThreadGroup }

func (p procProcess) PID() int32            { return p.tg.pid }
func (p procProcess) PPID() int32           { return 0 }
func (p procProcess) PGID() int32           { return p.tg.pid }
func (p procProcess) SID() int32            { return p.tg.pid }
func (p procProcess) Alive() bool           { return true }
func (p procProcess) Leader() procfs.Thread { return procThread{p.tg.leader} }
func (p procProcess) Threads() []procfs.Thread {
	return []procfs.Thread{procThread{p.tg.leader}}
}
func (p procProcess) Thread(tid int32) (procfs.Thread, bool) {
	if tid == p.tg.leader.tid {
		return procThread{p.tg.leader}, true
	}
	return nil, false
}

func nulJoin(ss []string) []byte {
	var b []byte
	for _, s := range ss {
		b = append(append(b, s...), 0)
	}
	return b
}

func (p procProcess) Cmdline() []byte { return nulJoin(p.tg.argv) }
func (p procProcess) Environ() []byte { return nulJoin(p.tg.envv) }
func (p procProcess) Exe() (vfs.VirtualDentry, bool) {
	return p.tg.exe, p.tg.exe.Ok()
}
func (p procProcess) Cwd() vfs.VirtualDentry  { return p.tg.leader.fs.Cwd() }
func (p procProcess) Root() vfs.VirtualDentry { return p.tg.leader.fs.Root() }
func (p procProcess) Umask() uint32           { return p.tg.leader.fs.Umask() }
func (p procProcess) MountNamespace() *vfs.MountNamespace {
	root := p.tg.leader.fs.Root()
	if root.Mount == nil {
		return nil
	}
	return p.tg.k.mountNS()
}

// fdOf describes one descriptor. Files opened by path are stat'ed only
// when withIno asks (fdinfo): listing /proc/PID/fd (whose size is the
// number of descriptors) must not stat an open /proc/PID/fd directory,
// which would list the descriptors again, without end.
func fdOf(i FDInfo, withIno bool) procfs.FD {
	d := i.File
	fd := procfs.FD{Num: i.FD, Path: d.VirtualDentry(), Flags: d.StatusFlags(), Cloexec: i.Cloexec}
	if fd.Path.Ok() && !withIno {
		// Name and inode number come from the path.
	} else if st, err := d.Stat(); err == nil {
		fd.Ino = st.Ino
		if !fd.Path.Ok() {
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFIFO:
				fd.Name = fmt.Sprintf("pipe:[%d]", st.Ino)
			case unix.S_IFSOCK:
				fd.Name = fmt.Sprintf("socket:[%d]", st.Ino)
			}
		}
	}
	if an, ok := d.File.(interface{ AnonName() string }); ok && !fd.Path.Ok() {
		fd.Name = an.AnonName()
	}
	// The position only for fdinfo: a listing may be iterating one of the
	// descriptions it lists (holding its lock).
	if withIno && !d.Stream() {
		if pos, err := d.Seek(0, unix.SEEK_CUR); err == nil {
			fd.Pos = pos
		}
	}
	return fd
}

func (p procProcess) FDs() []procfs.FD {
	snap := p.tg.leader.fdt.Snapshot()
	out := make([]procfs.FD, 0, len(snap))
	for _, i := range snap {
		out = append(out, fdOf(i, false))
		i.File.DecRef()
	}
	return out
}

func (p procProcess) FD(fd int32) (procfs.FD, bool) {
	d, ok := p.tg.leader.fdt.Get(fd)
	if !ok {
		return procfs.FD{}, false
	}
	defer d.DecRef()
	cloexec, _ := p.tg.leader.fdt.Cloexec(fd)
	return fdOf(FDInfo{FD: fd, File: d, Cloexec: cloexec}, true), true
}

func (p procProcess) MM() *mm.MM { return p.tg.leader.mm }
func (p procProcess) Layout() procfs.MemLayout {
	return procfs.MemLayout{}
}
func (p procProcess) RSS() uint64 { return 0 }
func (p procProcess) Limit(resource int) (uint64, uint64) {
	l := p.tg.limits.Get(resource)
	return l.Cur, l.Max
}
func (p procProcess) Signals() (pending, ignored, caught uint64) {
	p.tg.mu.Lock()
	defer p.tg.mu.Unlock()
	for sig := 1; sig < numSignals; sig++ {
		switch h := p.tg.actions[sig].Handler; {
		case h == SigIgn:
			ignored |= 1 << (sig - 1)
		case h != SigDfl:
			caught |= 1 << (sig - 1)
		}
	}
	return uint64(p.tg.pending), ignored, caught
}
func (p procProcess) CPUTime() (time.Duration, time.Duration) {
	return p.tg.leader.appTime, 0
}
func (p procProcess) OOMScoreAdj() int {
	return int(p.tg.oomScoreAdj.Load())
}
func (p procProcess) SetOOMScoreAdj(ctx vfs.Context, adj int) error {
	if adj < int(p.tg.oomScoreAdj.Load()) && !ctx.FSCredentials().Caps.Has(24) { // CAP_SYS_RESOURCE
		return unix.EACCES
	}
	p.tg.oomScoreAdj.Store(int32(adj))
	return nil
}

type procThread struct{ t *Task }

func (p procThread) TID() int32          { return p.t.tid }
func (p procThread) Comm() string        { return p.t.tg.Name() }
func (p procThread) SetComm(name string) { p.t.tg.SetName(name) }
func (p procThread) State() byte         { return 'R' }
func (p procThread) SigMask() uint64     { return p.t.SigMask() }
func (p procThread) SigPending() uint64  { return 0 }
func (p procThread) StartTime() time.Duration {
	return p.t.startTime.Sub(p.t.k.bootTime)
}
func (p procThread) CPUTime() (time.Duration, time.Duration) { return p.t.appTime, 0 }
func (p procThread) Creds() procfs.Creds {
	c := p.t.creds
	pc := procfs.Creds{UID: c.UID, EUID: c.EUID, SUID: c.SUID, FSUID: c.EUID,
		GID: c.GID, EGID: c.EGID, SGID: c.SGID, FSGID: c.EGID, Groups: c.Groups,
		CapBnd: uint64(vfs.AllCaps)}
	if c.EUID == 0 {
		pc.CapPrm, pc.CapEff = uint64(vfs.AllCaps), uint64(vfs.AllCaps)
	}
	return pc
}
