package procfs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// clockTicks is USER_HZ: /proc reports times in these.
const clockTicks = 100

func ticks(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d / (time.Second / clockTicks))
}

func kB(bytes uint64) uint64 { return bytes >> 10 }

func pageUp(n uint64) uint64   { return (n + mm.PageSize - 1) &^ (mm.PageSize - 1) }
func pageDown(n uint64) uint64 { return n &^ (mm.PageSize - 1) }

// memStats summarise an address space as status and statm need it.
type memStats struct {
	size, data, stack, exec, text, lib uint64 // bytes
	rss                                uint64
}

func memOf(p Process) (memStats, []mm.VMA, bool) {
	m := p.MM()
	if m == nil {
		return memStats{}, nil, false
	}
	vmas := m.VMAs()
	var s memStats
	for _, v := range vmas {
		n := v.End - v.Start
		s.size += n
		switch {
		case v.Name == "[stack]":
			s.stack += n
		case v.Perms.Write && !v.Shared:
			s.data += n
		case v.Perms.Execute && !v.Perms.Write:
			s.exec += n
		}
	}
	l := p.Layout()
	if l.EndCode > l.StartCode {
		s.text = min(pageUp(l.EndCode)-pageDown(l.StartCode), s.exec)
	}
	s.lib = s.exec - s.text
	s.rss = p.RSS()
	return s, vmas, true
}

// stateNames are the status State texts, by letter.
var stateNames = map[byte]string{
	'R': "R (running)", 'S': "S (sleeping)", 'D': "D (disk sleep)", 'T': "T (stopped)",
	't': "t (tracing stop)", 'X': "X (dead)", 'Z': "Z (zombie)", 'P': "P (parked)", 'I': "I (idle)",
}

// escapeComm escapes a name as status's Name line does (newline and
// backslash only).
func escapeComm(s string) string {
	if !strings.ContainsAny(s, "\n\\") {
		return s
	}
	return strings.NewReplacer("\n", `\n`, `\`, `\\`).Replace(s)
}

// fdSize is the FD table size Linux would have grown to for the open fds:
// 64 slots, then powers of two times 128 (expand_files).
func fdSize(fds []FD) int {
	high := -1
	for _, fd := range fds {
		high = max(high, int(fd.Num))
	}
	if high < 64 {
		return 64
	}
	n := high / 128
	size := 1
	for size < n+1 {
		size <<= 1
	}
	return size * 128
}

// cpuMask renders CPUs 0..n-1 as a Linux bitmap ("%*pb": hex in 32-bit
// chunks, most significant first, the first chunk only as wide as needed).
func cpuMask(n int) string {
	var chunks []string
	for hi := ((n + 31) / 32) * 32; hi > 0; hi -= 32 {
		bits := min(n-(hi-32), 32)
		width := 8
		if hi == ((n+31)/32)*32 {
			width = (bits + 3) / 4
		}
		chunks = append(chunks, fmt.Sprintf("%0*x", width, uint64(1)<<bits-1))
	}
	return strings.Join(chunks, ",")
}

// cpuList renders CPUs 0..n-1 as a Linux list ("%*pbl").
func cpuList(n int) string {
	if n <= 1 {
		return "0"
	}
	return fmt.Sprintf("0-%d", n-1)
}

// memsAllowed is a single NUMA node in a kernel built for 1024 of them.
var memsAllowed = strings.Repeat("00000000,", 31) + "00000001"

// status renders /proc/PID/status (or task/TID/status for t), with the
// fields and order of Linux 6.x.
func (fs *filesystem) status(p Process, t Thread) ([]byte, error) {
	if t == nil {
		return nil, unix.ESRCH
	}
	var b strings.Builder
	c := t.Creds()
	state := stateNames[t.State()]
	if state == "" {
		state = string(t.State())
	}
	fds := p.FDs()
	fmt.Fprintf(&b, "Name:\t%s\n", escapeComm(t.Comm()))
	fmt.Fprintf(&b, "Umask:\t%#04o\n", p.Umask())
	fmt.Fprintf(&b, "State:\t%s\n", state)
	fmt.Fprintf(&b, "Tgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t0\n", p.PID(), t.TID(), p.PPID())
	fmt.Fprintf(&b, "Uid:\t%d\t%d\t%d\t%d\n", c.UID, c.EUID, c.SUID, c.FSUID)
	fmt.Fprintf(&b, "Gid:\t%d\t%d\t%d\t%d\n", c.GID, c.EGID, c.SGID, c.FSGID)
	fmt.Fprintf(&b, "FDSize:\t%d\n", fdSize(fds))
	b.WriteString("Groups:\t")
	for i, g := range c.Groups {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(uint64(g), 10))
	}
	b.WriteString(" \n") // Linux's trailing space
	fmt.Fprintf(&b, "NStgid:\t%d\nNSpid:\t%d\nNSpgid:\t%d\nNSsid:\t%d\n", p.PID(), t.TID(), p.PGID(), p.SID())
	b.WriteString("Kthread:\t0\n")
	if s, _, ok := memOf(p); ok {
		for _, f := range []struct {
			name string
			v    uint64
		}{
			{"VmPeak", s.size}, {"VmSize", s.size}, {"VmLck", 0}, {"VmPin", 0},
			{"VmHWM", s.rss}, {"VmRSS", s.rss}, {"RssAnon", s.rss}, {"RssFile", 0}, {"RssShmem", 0},
			{"VmData", s.data}, {"VmStk", s.stack}, {"VmExe", s.text}, {"VmLib", s.lib},
			{"VmPTE", 0}, {"VmSwap", 0}, {"HugetlbPages", 0},
		} {
			fmt.Fprintf(&b, "%s:\t%8d kB\n", f.name, kB(f.v))
		}
		b.WriteString("CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t0xffffffffffffffff\n")
	}
	pending, ignored, caught := p.Signals()
	sigLimit, _ := p.Limit(unix.RLIMIT_SIGPENDING)
	fmt.Fprintf(&b, "Threads:\t%d\n", len(p.Threads()))
	fmt.Fprintf(&b, "SigQ:\t0/%d\n", sigLimit)
	for _, f := range []struct {
		name string
		v    uint64
	}{
		{"SigPnd", t.SigPending()}, {"ShdPnd", pending}, {"SigBlk", t.SigMask()}, {"SigIgn", ignored}, {"SigCgt", caught},
		{"CapInh", c.CapInh}, {"CapPrm", c.CapPrm}, {"CapEff", c.CapEff}, {"CapBnd", c.CapBnd}, {"CapAmb", c.CapAmb},
	} {
		fmt.Fprintf(&b, "%s:\t%016x\n", f.name, f.v)
	}
	b.WriteString("NoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n")
	b.WriteString("Speculation_Store_Bypass:\tvulnerable\nSpeculationIndirectBranch:\talways enabled\n")
	n := fs.k.NumCPUs()
	fmt.Fprintf(&b, "Cpus_allowed:\t%s\nCpus_allowed_list:\t%s\n", cpuMask(n), cpuList(n))
	fmt.Fprintf(&b, "Mems_allowed:\t%s\nMems_allowed_list:\t0\n", memsAllowed)
	b.WriteString("voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n")
	return []byte(b.String()), nil
}

// statLine renders /proc/PID/stat (whole is set: the process's times) or
// task/TID/stat: Linux's 52 fields.
func (fs *filesystem) statLine(p Process, t Thread, whole bool) ([]byte, error) {
	if t == nil {
		return nil, unix.ESRCH
	}
	utime, stime := t.CPUTime()
	if whole {
		utime, stime = p.CPUTime()
	}
	s, _, _ := memOf(p)
	l := p.Layout()
	pending, ignored, caught := p.Signals()
	pending |= t.SigPending()
	rsslim, _ := p.Limit(unix.RLIMIT_RSS)
	exitSignal := int(unix.SIGCHLD)
	if t.TID() != p.PID() {
		exitSignal = -1 // threads signal no one
	}
	const oldSigs = 0x7fffffff // the obsolete decimal signal fields
	var b strings.Builder
	fmt.Fprintf(&b, "%d (%s) %c %d %d %d 0 -1 %d 0 0 0 0 %d %d 0 0 20 0 %d 0 %d %d %d %d ",
		t.TID(), t.Comm(), t.State(), p.PPID(), p.PGID(), p.SID(),
		pfRandomize, ticks(utime), ticks(stime), len(p.Threads()), ticks(t.StartTime()),
		s.size, s.rss/mm.PageSize, rsslim)
	fmt.Fprintf(&b, "%d %d %d 0 0 %d %d %d %d 0 0 0 %d 0 0 0 0 0 0 %d %d %d %d %d %d %d 0\n",
		l.StartCode, l.EndCode, l.StartStack,
		pending&oldSigs, t.SigMask()&oldSigs, ignored&oldSigs, caught&oldSigs,
		exitSignal,
		l.StartData, l.EndData, l.StartBrk, l.ArgStart, l.ArgEnd, l.EnvStart, l.EnvEnd)
	return []byte(b.String()), nil
}

// pfRandomize is PF_RANDOMIZE, the task flag every app process has.
const pfRandomize = 0x00400000

// statm renders /proc/PID/statm (pages).
func statm(p Process) []byte {
	s, _, _ := memOf(p)
	pg := func(n uint64) uint64 { return n / mm.PageSize }
	return fmt.Appendf(nil, "%d %d 0 %d 0 %d 0\n", pg(s.size), pg(s.rss), pg(s.text), pg(s.data+s.stack))
}

// limitNames are /proc/PID/limits's rows, in RLIMIT_* order.
var limitNames = [...]struct{ name, unit string }{
	{"Max cpu time", "seconds"},
	{"Max file size", "bytes"},
	{"Max data size", "bytes"},
	{"Max stack size", "bytes"},
	{"Max core file size", "bytes"},
	{"Max resident set", "bytes"},
	{"Max processes", "processes"},
	{"Max open files", "files"},
	{"Max locked memory", "bytes"},
	{"Max address space", "bytes"},
	{"Max file locks", "locks"},
	{"Max pending signals", "signals"},
	{"Max msgqueue size", "bytes"},
	{"Max nice priority", ""},
	{"Max realtime priority", ""},
	{"Max realtime timeout", "us"},
}

func limitValue(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// limits renders /proc/PID/limits.
func limits(p Process) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%-25s %-20s %-20s %-10s\n", "Limit", "Soft Limit", "Hard Limit", "Units")
	for r, l := range limitNames {
		cur, max := p.Limit(r)
		fmt.Fprintf(&b, "%-25s %-20s %-20s ", l.name, limitValue(cur), limitValue(max))
		if l.unit != "" {
			fmt.Fprintf(&b, "%-10s", l.unit)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// maps renders /proc/PID/maps.
func maps(p Process) []byte {
	_, vmas, _ := memOf(p)
	var b strings.Builder
	for _, v := range vmas {
		b.WriteString(v.MapsLine())
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// smaps renders /proc/PID/smaps: every VMA's maps line and Linux's fields.
// Residency is not tracked per VMA, so the page counts are zero.
func smaps(p Process) []byte {
	_, vmas, _ := memOf(p)
	var b strings.Builder
	for _, v := range vmas {
		b.WriteString(v.MapsLine())
		b.WriteByte('\n')
		size := kB(v.End - v.Start)
		for _, f := range []struct {
			name string
			v    uint64
		}{
			{"Size", size}, {"KernelPageSize", 4}, {"MMUPageSize", 4}, {"Rss", 0}, {"Pss", 0}, {"Pss_Dirty", 0},
			{"Shared_Clean", 0}, {"Shared_Dirty", 0}, {"Private_Clean", 0}, {"Private_Dirty", 0},
			{"Referenced", 0}, {"Anonymous", 0}, {"KSM", 0}, {"LazyFree", 0}, {"AnonHugePages", 0},
			{"ShmemPmdMapped", 0}, {"FilePmdMapped", 0}, {"Shared_Hugetlb", 0}, {"Private_Hugetlb", 0},
			{"Swap", 0}, {"SwapPss", 0}, {"Locked", 0},
		} {
			fmt.Fprintf(&b, "%-16s%8d kB\n", f.name+":", f.v)
		}
		fmt.Fprintf(&b, "%-16s%8d\n", "THPeligible:", 0)
		b.WriteString("VmFlags:")
		for _, fl := range vmFlags(&v) {
			b.WriteString(" " + fl)
		}
		b.WriteString(" \n")
	}
	return []byte(b.String())
}

// vmFlags are smaps's VmFlags mnemonics for v, in Linux's bit order.
func vmFlags(v *mm.VMA) []string {
	var out []string
	add := func(ok bool, name string) {
		if ok {
			out = append(out, name)
		}
	}
	add(v.Perms.Read, "rd")
	add(v.Perms.Write, "wr")
	add(v.Perms.Execute, "ex")
	add(v.Shared, "sh")
	out = append(out, "mr", "mw", "me")
	add(v.Shared, "ms")
	add(v.Name == "[stack]", "gd")
	add(v.Perms.Write && !v.Shared, "ac")
	return out
}

// mangle escapes a mount table field as Linux does.
func mangle(s string) string {
	if !strings.ContainsAny(s, " \t\n\\#") {
		return s
	}
	var b strings.Builder
	for _, c := range []byte(s) {
		if strings.IndexByte(" \t\n\\#", c) >= 0 {
			fmt.Fprintf(&b, "\\%03o", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// visibleMounts are the mounts of p's namespace reachable from its root,
// each with its mount point as p sees it.
func (fs *filesystem) visibleMounts(p Process) ([]*vfs.Mount, []string) {
	ns := p.MountNamespace()
	if ns == nil {
		return nil, nil
	}
	root := p.Root()
	var ms []*vfs.Mount
	var points []string
	for _, m := range ns.Mounts() {
		if fs.v != nil && root.Ok() && !fs.v.IsUnder(root, m.Root()) {
			continue // outside a chroot: Linux skips it too
		}
		ms = append(ms, m)
		points = append(points, fs.pathOf(root, m.Root()))
	}
	return ms, points
}

func source(m *vfs.Mount) string {
	if m.Source == "" {
		return "none"
	}
	return m.Source
}

func withData(opts, data string) string {
	if data == "" {
		return opts
	}
	return opts + "," + data
}

// mounts renders /proc/PID/mounts.
func (fs *filesystem) mounts(p Process) []byte {
	ms, points := fs.visibleMounts(p)
	var b strings.Builder
	for i, m := range ms {
		fmt.Fprintf(&b, "%s %s %s %s 0 0\n", mangle(source(m)), mangle(points[i]),
			mangle(m.Superblock().FS.Type()), withData(vfs.FlagString(m.Flags()), m.Data))
	}
	return []byte(b.String())
}

// mountinfo renders /proc/PID/mountinfo.
func (fs *filesystem) mountinfo(p Process) []byte {
	ms, points := fs.visibleMounts(p)
	var b strings.Builder
	for i, m := range ms {
		parent := m.ID // the namespace root is its own parent, as Linux's rootfs
		if pvd, ok := m.Parent(); ok {
			parent = pvd.Mount.ID
		}
		dev := m.Superblock().Dev
		super := "rw"
		if m.ReadOnly() {
			super = "ro"
		}
		fmt.Fprintf(&b, "%d %d %d:%d %s %s %s - %s %s %s\n", m.ID, parent, unix.Major(dev), unix.Minor(dev),
			mangle(fs.mountRoot(m)), mangle(points[i]), vfs.FlagString(m.Flags()),
			mangle(m.Superblock().FS.Type()), mangle(source(m)), withData(super, m.Data))
	}
	return []byte(b.String())
}

// mountRoot is the path of m's root within its filesystem: "/" but for
// bind mounts of a subtree. PathOf climbs mounts at a mount's root, so it
// is given a bare Mount (whose root is no dentry) to climb dentries only,
// from m's root up to the filesystem's.
func (fs *filesystem) mountRoot(m *vfs.Mount) string {
	r := m.Root().Dentry
	sbRoot := m.Superblock().Root()
	if r == sbRoot {
		return "/"
	}
	bare := &vfs.Mount{}
	return fs.pathOf(vfs.VirtualDentry{Mount: bare, Dentry: sbRoot}, vfs.VirtualDentry{Mount: bare, Dentry: r})
}

// fdinfo renders /proc/PID/fdinfo/N.
func fdinfo(fd FD) []byte {
	flags := fd.Flags
	if fd.Cloexec {
		flags |= unix.O_CLOEXEC
	}
	mnt := 0
	if fd.Path.Ok() {
		mnt = fd.Path.Mount.ID
	}
	return fmt.Appendf(nil, "pos:\t%d\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n", fd.Pos, flags, mnt, fd.Ino)
}

// oomScore renders oom_score as Linux 5.9+ does: the badness (resident
// share of memory in thousandths plus the adjustment) scaled into
// [0, 2000] and then by two thirds.
func (fs *filesystem) oomScore(p Process) []byte {
	adj := p.OOMScoreAdj()
	points := int64(0)
	if adj != -1000 {
		total := fs.k.Memory().Total
		badness := int64(adj)
		if total > 0 {
			badness += int64(p.RSS() * 1000 / total)
		}
		points = max((1000+badness)*2/3, 0)
	}
	return []byte(strconv.FormatInt(points, 10) + "\n")
}
