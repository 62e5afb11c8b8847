package procfs

import (
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ringfence/ringfence/guestkernel/fs/fsutil"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// meminfo renders /proc/meminfo with Linux's lines; what the Sentry does
// not track reads as zero.
func (fs *filesystem) meminfo() []byte {
	mi := fs.k.Memory()
	var b strings.Builder
	kb := func(name string, bytes uint64) { fmt.Fprintf(&b, "%-16s%8d kB\n", name+":", kB(bytes)) }
	num := func(name string, v uint64) { fmt.Fprintf(&b, "%-16s%8d\n", name+":", v) }
	kb("MemTotal", mi.Total)
	kb("MemFree", mi.Free)
	kb("MemAvailable", mi.Available)
	kb("Buffers", mi.Buffers)
	kb("Cached", mi.Cached)
	kb("SwapCached", 0)
	kb("Active", mi.AnonPages+mi.Cached)
	kb("Inactive", 0)
	kb("Active(anon)", mi.AnonPages)
	kb("Inactive(anon)", 0)
	kb("Active(file)", mi.Cached)
	kb("Inactive(file)", 0)
	kb("Unevictable", 0)
	kb("Mlocked", 0)
	kb("SwapTotal", mi.SwapTotal)
	kb("SwapFree", mi.SwapFree)
	kb("Zswap", 0)
	kb("Zswapped", 0)
	kb("Dirty", 0)
	kb("Writeback", 0)
	kb("AnonPages", mi.AnonPages)
	kb("Mapped", mi.Mapped)
	kb("Shmem", mi.Shmem)
	for _, name := range []string{"KReclaimable", "Slab", "SReclaimable", "SUnreclaim", "KernelStack",
		"PageTables", "SecPageTables", "NFS_Unstable", "Bounce", "WritebackTmp"} {
		kb(name, 0)
	}
	// The default overcommit heuristic's figures (overcommit_ratio 50).
	kb("CommitLimit", mi.Total/2+mi.SwapTotal)
	kb("Committed_AS", mi.AnonPages+mi.Shmem)
	kb("VmallocTotal", 34359738367<<10)
	kb("VmallocUsed", 0)
	kb("VmallocChunk", 0)
	kb("Percpu", 0)
	for _, name := range []string{"AnonHugePages", "ShmemHugePages", "ShmemPmdMapped", "FileHugePages", "FilePmdMapped"} {
		kb(name, 0)
	}
	for _, name := range []string{"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"} {
		num(name, 0)
	}
	kb("Hugepagesize", 2<<20)
	kb("Hugetlb", 0)
	return []byte(b.String())
}

// stat renders /proc/stat.
func (fs *filesystem) stat() []byte {
	st := fs.k.Stat()
	n := fs.k.NumCPUs()
	cpus := make([]CPUTime, max(n, 1))
	copy(cpus, st.CPUs)
	var total CPUTime
	for _, c := range cpus {
		total.User += c.User
		total.Nice += c.Nice
		total.System += c.System
		total.Idle += c.Idle
		total.IOWait += c.IOWait
		total.IRQ += c.IRQ
		total.SoftIRQ += c.SoftIRQ
		total.Steal += c.Steal
	}
	var b strings.Builder
	line := func(name string, c CPUTime) {
		fmt.Fprintf(&b, "%s %d %d %d %d %d %d %d %d 0 0\n", name, ticks(c.User), ticks(c.Nice), ticks(c.System),
			ticks(c.Idle), ticks(c.IOWait), ticks(c.IRQ), ticks(c.SoftIRQ), ticks(c.Steal))
	}
	line("cpu ", total)
	for i, c := range cpus {
		line(fmt.Sprintf("cpu%d", i), c)
	}
	running, blocked := 0, 0
	for _, p := range fs.k.Processes() {
		for _, t := range p.Threads() {
			switch t.State() {
			case 'R':
				running++
			case 'D':
				blocked++
			}
		}
	}
	fmt.Fprintf(&b, "intr 0\nctxt %d\nbtime %d\nprocesses %d\nprocs_running %d\nprocs_blocked %d\n",
		st.ContextSwitches, fs.k.BootTime().Unix(), st.Forks, max(running, 1), blocked)
	b.WriteString("softirq 0 0 0 0 0 0 0 0 0 0 0\n")
	return []byte(b.String())
}

// centis renders d as Linux's "%lu.%02lu" seconds, truncated.
func centis(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	c := d / (10 * time.Millisecond)
	return fmt.Sprintf("%d.%02d", c/100, c%100)
}

// uptime renders /proc/uptime: time since boot and the CPUs' idle time.
func (fs *filesystem) uptime() []byte {
	var idle time.Duration
	for _, c := range fs.k.Stat().CPUs {
		idle += c.Idle
	}
	return []byte(centis(now().Sub(fs.k.BootTime())) + " " + centis(idle) + "\n")
}

// loadavg renders /proc/loadavg.
func (fs *filesystem) loadavg() []byte {
	la := fs.k.LoadAvg()
	running, total := 0, 0
	for _, p := range fs.k.Processes() {
		for _, t := range p.Threads() {
			total++
			if t.State() == 'R' {
				running++
			}
		}
	}
	return fmt.Appendf(nil, "%.2f %.2f %.2f %d/%d %d\n", la[0], la[1], la[2], max(running, 1), total, fs.k.LastPID())
}

// version renders /proc/version, agreeing with uname.
func (fs *filesystem) version() []byte {
	return fmt.Appendf(nil, "Linux version %s (ringfence@ringfence) (gcc (GCC) 12.2.0, GNU ld (GNU Binutils) 2.40) %s\n",
		fs.k.Release(), fs.k.Version())
}

// filesystems renders /proc/filesystems from the registered types: all of
// them virtual ("nodev") inside a sandbox.
func (fs *filesystem) filesystems() []byte {
	var types []string
	if fs.v != nil {
		types = fs.v.FilesystemTypes()
	}
	sort.Strings(types)
	var b strings.Builder
	for _, t := range types {
		b.WriteString("nodev\t" + t + "\n")
	}
	return []byte(b.String())
}

// uuid returns a random (version 4) UUID.
func uuid() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

// newSys is /proc/sys: the sysctls programs read. They cannot be changed
// (opening one for writing fails with EACCES); modes are Linux's.
func (fs *filesystem) newSys() *fsutil.Dir {
	val := func(mode uint32, s string) vfs.Inode { return fsutil.NewStaticFile(fs.node(mode), s+"\n") }
	gen := func(mode uint32, f func() string) vfs.Inode {
		return fs.file(mode, func() []byte { return []byte(f() + "\n") })
	}
	dir := func(entries ...fsutil.Entry) *fsutil.Dir { return fsutil.NewDir(fs.node(0o555), entries) }
	threadsMax := func() string {
		return fmt.Sprint(min(max(fs.k.Memory().Total/(128<<10), 20), 0x3fffffff))
	}
	random := dir(
		fsutil.Entry{Name: "boot_id", Inode: gen(0o444, fs.k.BootID)},
		fsutil.Entry{Name: "entropy_avail", Inode: val(0o444, "256")},
		fsutil.Entry{Name: "poolsize", Inode: val(0o444, "256")},
		fsutil.Entry{Name: "uuid", Inode: gen(0o444, uuid)},
	)
	kernel := dir(
		fsutil.Entry{Name: "cap_last_cap", Inode: val(0o444, "40")},
		fsutil.Entry{Name: "domainname", Inode: gen(0o644, fs.k.Domainname)},
		fsutil.Entry{Name: "hostname", Inode: gen(0o644, fs.k.Hostname)},
		fsutil.Entry{Name: "msgmax", Inode: val(0o644, "8192")},
		fsutil.Entry{Name: "msgmnb", Inode: val(0o644, "16384")},
		fsutil.Entry{Name: "msgmni", Inode: val(0o644, "32000")},
		fsutil.Entry{Name: "ngroups_max", Inode: val(0o444, "65536")},
		fsutil.Entry{Name: "osrelease", Inode: gen(0o444, fs.k.Release)},
		fsutil.Entry{Name: "ostype", Inode: val(0o444, "Linux")},
		fsutil.Entry{Name: "overflowgid", Inode: val(0o644, "65534")},
		fsutil.Entry{Name: "overflowuid", Inode: val(0o644, "65534")},
		fsutil.Entry{Name: "pid_max", Inode: val(0o644, "4194304")},
		fsutil.Entry{Name: "random", Inode: random},
		fsutil.Entry{Name: "shmall", Inode: val(0o644, "18446744073692774399")},
		fsutil.Entry{Name: "shmmax", Inode: val(0o644, "18446744073692774399")},
		fsutil.Entry{Name: "shmmni", Inode: val(0o644, "4096")},
		fsutil.Entry{Name: "threads-max", Inode: gen(0o644, threadsMax)},
		fsutil.Entry{Name: "version", Inode: gen(0o444, fs.k.Version)},
	)
	vm := dir(
		fsutil.Entry{Name: "max_map_count", Inode: val(0o644, "65530")},
		fsutil.Entry{Name: "mmap_min_addr", Inode: val(0o644, "65536")},
		fsutil.Entry{Name: "overcommit_memory", Inode: val(0o644, "0")},
		fsutil.Entry{Name: "overcommit_ratio", Inode: val(0o644, "50")},
	)
	fsDir := dir(
		fsutil.Entry{Name: "file-max", Inode: val(0o644, "9223372036854775807")},
		fsutil.Entry{Name: "nr_open", Inode: val(0o644, "1048576")},
	)
	net := dir(fsutil.Entry{Name: "core", Inode: dir(fsutil.Entry{Name: "somaxconn", Inode: val(0o644, "4096")})})
	return dir(
		fsutil.Entry{Name: "fs", Inode: fsDir},
		fsutil.Entry{Name: "kernel", Inode: kernel},
		fsutil.Entry{Name: "net", Inode: net},
		fsutil.Entry{Name: "vm", Inode: vm},
	)
}
