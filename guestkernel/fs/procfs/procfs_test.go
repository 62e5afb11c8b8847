package procfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Field names in the order Linux 6.18 prints them, captured from this
// machine's /proc/self/status.
var linuxStatusFields = strings.Fields(`Name Umask State Tgid Ngid Pid PPid TracerPid Uid Gid FDSize Groups
	NStgid NSpid NSpgid NSsid Kthread VmPeak VmSize VmLck VmPin VmHWM VmRSS RssAnon RssFile RssShmem VmData
	VmStk VmExe VmLib VmPTE VmSwap HugetlbPages CoreDumping THP_enabled untag_mask Threads SigQ SigPnd ShdPnd
	SigBlk SigIgn SigCgt CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Seccomp Seccomp_filters
	Speculation_Store_Bypass SpeculationIndirectBranch Cpus_allowed Cpus_allowed_list Mems_allowed
	Mems_allowed_list voluntary_ctxt_switches nonvoluntary_ctxt_switches`)

// Field names of one smaps entry, from this machine's /proc/self/smaps.
var linuxSmapsFields = strings.Fields(`Size KernelPageSize MMUPageSize Rss Pss Pss_Dirty Shared_Clean
	Shared_Dirty Private_Clean Private_Dirty Referenced Anonymous KSM LazyFree AnonHugePages ShmemPmdMapped
	FilePmdMapped Shared_Hugetlb Private_Hugetlb Swap SwapPss Locked THPeligible VmFlags`)

// Field names of this machine's /proc/meminfo, less the host-specific
// Balloon and DirectMap lines.
var linuxMeminfoFields = strings.Fields(`MemTotal MemFree MemAvailable Buffers Cached SwapCached Active Inactive
	Active(anon) Inactive(anon) Active(file) Inactive(file) Unevictable Mlocked SwapTotal SwapFree Zswap
	Zswapped Dirty Writeback AnonPages Mapped Shmem KReclaimable Slab SReclaimable SUnreclaim KernelStack
	PageTables SecPageTables NFS_Unstable Bounce WritebackTmp CommitLimit Committed_AS VmallocTotal
	VmallocUsed VmallocChunk Percpu AnonHugePages ShmemHugePages ShmemPmdMapped FileHugePages FilePmdMapped
	HugePages_Total HugePages_Free HugePages_Rsvd HugePages_Surp Hugepagesize Hugetlb`)

func fieldNames(text string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		name, _, _ := strings.Cut(l, ":")
		out = append(out, name)
	}
	return out
}

func TestRootListing(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	got := strings.Join(w.list(t, ctx, "/proc"), " ")
	want := "cpuinfo filesystems loadavg meminfo mounts self stat sys thread-self uptime version 7 42"
	if got != want {
		t.Errorf("/proc lists\n%s\nwant\n%s", got, want)
	}
	a, err := w.v.Stat(ctx, w.walk("/proc"))
	if err != nil || a.Mode != unix.S_IFDIR|0o555 || a.Ino != 1 {
		t.Errorf("stat /proc: mode %#o ino %d, %v", a.Mode, a.Ino, err)
	}
	st, err := w.v.StatFS(ctx, w.resolve(t, ctx, "/proc", true))
	if err != nil || st.Type != 0x9fa0 {
		t.Errorf("statfs /proc: %#x %v", st.Type, err)
	}
}

// TestListingResumes checks that a listing cut short resumes after the
// last entry read even if a process before it went away.
func TestListingResumes(t *testing.T) {
	w := newWorld(t)
	w.k.add(&fakeProcess{pid: 100, threads: []*fakeThread{{tid: 100, comm: "x", state: 'S'}}})
	root := w.proc.Root()
	var names []string
	var last int64
	root.IterDir(nil, 0, func(d vfs.Dirent) bool {
		names = append(names, d.Name)
		last = d.Next
		return d.Name != "42"
	})
	w.k.reap(7)
	root.IterDir(nil, last, func(d vfs.Dirent) bool {
		names = append(names, d.Name)
		return true
	})
	if got := strings.Join(names, " "); !strings.HasSuffix(got, "version 7 42 100") {
		t.Errorf("resumed listing: %s", got)
	}
}

func TestSelf(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, 43)
	for path, want := range map[string]string{"/proc/self": "42", "/proc/thread-self": "42/task/43", "/proc/mounts": "self/mounts"} {
		if got, err := w.v.Readlink(ctx, w.walk(path)); got != want || err != nil {
			t.Errorf("readlink %s = %q, %v; want %q", path, got, err, want)
		}
	}
	if got := w.read(t, ctx, "/proc/thread-self/comm"); got != "worker\n" {
		t.Errorf("thread-self/comm = %q", got)
	}
	if got := w.read(t, ctx, "/proc/self/cmdline"); got != "/bin/init\x00--flag\x00" {
		t.Errorf("self/cmdline = %q", got)
	}
	if _, err := w.v.Readlink(rootCtx(0, 0), w.walk("/proc/self")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("readlink /proc/self with no caller: %v, want ENOENT", err)
	}
}

func TestStatus(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	text := w.read(t, ctx, "/proc/42/status")
	if got := fieldNames(text); strings.Join(got, " ") != strings.Join(linuxStatusFields, " ") {
		t.Errorf("status fields\n%v\nwant Linux's\n%v", got, linuxStatusFields)
	}
	for _, want := range []string{
		"Name:\tinit\n", "Umask:\t0022\n", "State:\tS (sleeping)\n", "Tgid:\t42\n", "Pid:\t42\n", "PPid:\t1\n",
		"Uid:\t1000\t1001\t1002\t1001\n", "Gid:\t100\t101\t102\t101\n", "FDSize:\t64\n", "Groups:\t4 27 \n",
		"NSpgid:\t42\n", "VmSize:\t     156 kB\n", "VmRSS:\t   65536 kB\n", "VmData:\t      12 kB\n",
		"VmStk:\t     132 kB\n", "VmExe:\t       8 kB\n", "VmLib:\t       0 kB\n", "Threads:\t2\n",
		"SigQ:\t0/7000\n", "ShdPnd:\t0000000000000200\n", "SigBlk:\t0000000200000002\n", "SigIgn:\t0000000000001000\n",
		"SigCgt:\t0000000000010002\n", "CapBnd:\t000001ffffffffff\n", "Cpus_allowed:\t3\n", "Cpus_allowed_list:\t0-1\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	// The thread's own status names the thread.
	text = w.read(t, ctx, "/proc/42/task/43/status")
	for _, want := range []string{"Name:\tworker\n", "State:\tR (running)\n", "Tgid:\t42\n", "Pid:\t43\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("task status lacks %q", want)
		}
	}
	// A zombie has no memory lines, as on Linux.
	text = w.read(t, ctx, "/proc/7/status")
	if strings.Contains(text, "VmSize") || !strings.Contains(text, "State:\tZ (zombie)\n") {
		t.Errorf("zombie status:\n%s", text)
	}
}

func TestStatusFormatMatchesHost(t *testing.T) {
	host, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	// Every line of the host's is "Name:\tvalue"; so are ours.
	re := regexp.MustCompile(`^[A-Za-z_]+:\t`)
	for _, l := range strings.Split(strings.TrimSpace(string(host)), "\n") {
		if !re.MatchString(l) {
			t.Errorf("host line %q does not match the pattern", l)
		}
	}
	w := newWorld(t)
	for _, l := range strings.Split(strings.TrimSpace(w.read(t, rootCtx(initPID, initTID), "/proc/42/status")), "\n") {
		if !re.MatchString(l) {
			t.Errorf("our line %q does not match the pattern", l)
		}
	}
}

// splitStat splits a stat line into its fields, the comm (which may hold
// spaces and parentheses) being the text between the first "(" and the
// last ")".
func splitStat(t *testing.T, line string) []string {
	t.Helper()
	open, close := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || close < open {
		t.Fatalf("malformed stat %q", line)
	}
	fields := []string{strings.TrimSpace(line[:open]), line[open+1 : close]}
	return append(fields, strings.Fields(line[close+1:])...)
}

func TestStat(t *testing.T) {
	host, err := os.ReadFile("/proc/self/stat")
	if err == nil && len(splitStat(t, string(host))) != 52 {
		t.Errorf("host stat has %d fields", len(splitStat(t, string(host))))
	}
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	w.init.threads[0].SetComm("a) (b c")
	text := w.read(t, ctx, "/proc/42/stat")
	if !strings.HasSuffix(text, " 0\n") || strings.Count(text, "\n") != 1 {
		t.Errorf("stat is not one line: %q", text)
	}
	f := splitStat(t, strings.TrimSuffix(text, "\n"))
	if len(f) != 52 {
		t.Fatalf("stat has %d fields, want 52: %q", len(f), text)
	}
	for i, want := range map[int]string{
		1: "42", 2: "a) (b c", 3: "S", 4: "1", 5: "42", 6: "1", 7: "0", 8: "-1", 9: "4194304",
		14: "300", 15: "150", 18: "20", 19: "0", 20: "2", 22: "25", 23: strconv.Itoa(156 << 10), 24: "16384",
		25: "18446744073709551615", 26: strconv.Itoa(0x400000), 27: strconv.Itoa(0x401800),
		28: strconv.Itoa(0x7ffe00020000), 31: "512", 32: "2", 33: "4096", 34: "65538", 38: "17",
		47: strconv.Itoa(0x600000), 52: "0",
	} {
		if f[i-1] != want {
			t.Errorf("stat field %d = %q, want %q", i, f[i-1], want)
		}
	}
	// A thread's stat has its own id, times and exit signal.
	f = splitStat(t, strings.TrimSpace(w.read(t, ctx, "/proc/42/task/43/stat")))
	if len(f) != 52 || f[0] != "43" || f[1] != "worker" || f[2] != "R" || f[13] != "100" || f[21] != "100" || f[37] != "-1" {
		t.Errorf("task stat fields %v", f)
	}
}

func TestStatm(t *testing.T) {
	w := newWorld(t)
	got := w.read(t, rootCtx(initPID, initTID), "/proc/42/statm")
	// size 156K = 39 pages, rss 64M = 16384 pages, text 2, data+stack 3+33.
	if want := "39 16384 0 2 0 36 0\n"; got != want {
		t.Errorf("statm = %q, want %q", got, want)
	}
}

func TestLimitsMatchHost(t *testing.T) {
	host, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Skip(err)
	}
	p := &fakeProcess{}
	for r := range p.limits {
		var rl unix.Rlimit
		if err := unix.Getrlimit(r, &rl); err != nil {
			t.Fatal(err)
		}
		p.limits[r] = [2]uint64{rl.Cur, rl.Max}
	}
	if got := string(limits(p)); got != string(host) {
		t.Errorf("limits:\n%s\nhost's:\n%s", got, host)
	}
}

// TestMapsLineMatchesHost renders this process's own maps from their
// fields as /proc/PID/maps does (mm.VMA.MapsLine) and expects Linux's
// exact text, padding included.
func TestMapsLineMatchesHost(t *testing.T) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		var start, end, off, ino uint64
		var perms string
		var major, minor uint32
		if _, err := fmt.Sscanf(line, "%x-%x %s %x %x:%x %d", &start, &end, &perms, &off, &major, &minor, &ino); err != nil {
			t.Fatalf("parsing %q: %v", line, err)
		}
		v := mm.VMA{Start: start, End: end, Offset: off, Dev: unix.Mkdev(major, minor), Ino: ino, Shared: perms[3] == 's',
			Perms: platform.AccessType{Read: perms[0] == 'r', Write: perms[1] == 'w', Execute: perms[2] == 'x'}}
		if len(line) > 73 {
			v.Name = line[73:]
		}
		if got := v.MapsLine(); got != line {
			t.Errorf("maps line\n%q\nwant\n%q", got, line)
		}
		n++
	}
	if n == 0 {
		t.Error("no maps lines")
	}
}

func TestMaps(t *testing.T) {
	w := newWorld(t)
	got := w.read(t, rootCtx(initPID, initTID), "/proc/42/maps")
	want := "00400000-00402000 r-xp 00000000 00:00 0 \n" +
		"00600000-00603000 rw-p 00000000 00:00 0                                  [heap]\n" +
		"7e0000000000-7e0000001000 r--s 00000000 00:00 0                          /dev/zero (deleted)\n" +
		"7ffe00000000-7ffe00021000 rw-p 00000000 00:00 0                          [stack]\n"
	if got != want {
		t.Errorf("maps\n%s\nwant\n%s", got, want)
	}
}

func TestSmaps(t *testing.T) {
	w := newWorld(t)
	text := w.read(t, rootCtx(initPID, initTID), "/proc/42/smaps")
	entries := strings.Split(text, "VmFlags:")
	if len(entries) != 5 {
		t.Fatalf("%d smaps entries, want 4:\n%s", len(entries)-1, text)
	}
	// The stack's entry, as the header line and fields of Linux's.
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	var stack []string
	for i, l := range lines {
		if strings.HasSuffix(l, "[stack]") {
			stack = lines[i : i+1+len(linuxSmapsFields)]
		}
	}
	if stack == nil {
		t.Fatal("no stack entry")
	}
	if got := fieldNames(strings.Join(stack[1:], "\n")); strings.Join(got, " ") != strings.Join(linuxSmapsFields, " ") {
		t.Errorf("smaps fields %v, want %v", got, linuxSmapsFields)
	}
	for _, want := range []string{"Size:                132 kB", "KernelPageSize:        4 kB", "THPeligible:           0", "VmFlags: rd wr mr mw me gd ac "} {
		if !contains(stack, want) {
			t.Errorf("stack smaps lacks %q: %q", want, stack)
		}
	}
}

func contains(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

func TestFDs(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	if got := strings.Join(w.list(t, ctx, "/proc/42/fd"), " "); got != "0 1 2" {
		t.Errorf("fd lists %q", got)
	}
	if got := strings.Join(w.list(t, ctx, "/proc/42/fdinfo"), " "); got != "0 1 2" {
		t.Errorf("fdinfo lists %q", got)
	}
	for path, want := range map[string]string{
		"/proc/42/fd/0": "/etc/hosts", "/proc/42/fd/1": "pipe:[5]", "/proc/42/fd/2": "/etc/my dir",
		"/proc/self/fd/0": "/etc/hosts", "/proc/42/cwd": "/etc", "/proc/42/root": "/", "/proc/42/exe": "/etc/hosts",
	} {
		if got, err := w.v.Readlink(ctx, w.walk(path)); got != want || err != nil {
			t.Errorf("readlink %s = %q, %v; want %q", path, got, err, want)
		}
	}
	for path, want := range map[string]uint32{"/proc/42/fd/0": 0o500, "/proc/42/fd/1": 0o300, "/proc/42/fd/2": 0o700} {
		wk := w.walk(path)
		wk.FollowFinal = false
		a, err := w.v.Stat(ctx, wk)
		if err != nil || a.Mode != unix.S_IFLNK|want || a.UID != 1001 || a.Size != 64 {
			t.Errorf("lstat %s: mode %#o uid %d size %d, %v", path, a.Mode, a.UID, a.Size, err)
		}
	}
	// Following goes to the open file itself.
	if got := w.read(t, ctx, "/proc/42/fd/0"); got != "127.0.0.1 localhost\n" {
		t.Errorf("reading through fd/0: %q", got)
	}
	link, err := w.resolve(t, ctx, "/proc/42/fd", true).Inode().Lookup(ctx, "2")
	if err != nil {
		t.Fatal(err)
	}
	vd, err := link.(vfs.MagicLink).Follow(ctx)
	if err != nil || vd != w.init.fds[2].Path {
		t.Errorf("Follow fd/2 = %v, %v; want the open file's dentry", vd, err)
	}
	if _, err := w.v.Open(ctx, w.walk("/proc/42/fd/1"), vfs.OpenOptions{Flags: unix.O_RDONLY}); !errors.Is(err, unix.ENXIO) {
		t.Errorf("open of a pathless fd: %v, want ENXIO", err)
	}
	if got := w.read(t, ctx, "/proc/42/fdinfo/0"); got != "pos:\t12\nflags:\t0100000\nmnt_id:\t1\nino:\t7\n" {
		t.Errorf("fdinfo/0 = %q", got)
	}
	if got := w.read(t, ctx, "/proc/42/fdinfo/2"); got != "pos:\t0\nflags:\t02002002\nmnt_id:\t1\nino:\t0\n" {
		t.Errorf("fdinfo/2 = %q", got)
	}
	a, _ := w.v.Stat(ctx, w.walk("/proc/42/fd"))
	if a.Mode != unix.S_IFDIR|0o500 || a.Size != 3 {
		t.Errorf("fd dir mode %#o size %d", a.Mode, a.Size)
	}
	// A closed fd's cached entry does not survive.
	w.init.closeFD(2)
	if _, err := w.v.Readlink(ctx, w.walk("/proc/42/fd/2")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("readlink of a closed fd: %v, want ENOENT", err)
	}
	if _, err := w.tryRead(ctx, "/proc/42/fdinfo/2"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("fdinfo of a closed fd: %v, want ENOENT", err)
	}
}

// TestMagicLinkDirs follows cwd and root as directories.
func TestMagicLinkDirs(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	if got := w.read(t, ctx, "/proc/self/cwd/hosts"); got != "127.0.0.1 localhost\n" {
		t.Errorf("cwd/hosts = %q", got)
	}
	if got := w.read(t, ctx, "/proc/42/root/etc/hosts"); got != "127.0.0.1 localhost\n" {
		t.Errorf("root/etc/hosts = %q", got)
	}
	if _, err := w.v.Readlink(ctx, w.walk("/proc/7/exe")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("a zombie's exe: %v, want ENOENT", err)
	}
}

func TestMounts(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	want := "rootfs / tmpfs rw 0 0\n" +
		"proc /proc proc rw,nosuid,nodev,noexec 0 0\n" +
		"sysfs /sys sysfs ro 0 0\n" +
		"rootfs /mnt tmpfs rw 0 0\n"
	if got := w.read(t, ctx, "/proc/mounts"); got != want {
		t.Errorf("mounts\n%s\nwant\n%s", got, want)
	}
	lines := strings.Split(strings.TrimSpace(w.read(t, ctx, "/proc/42/mountinfo")), "\n")
	re := regexp.MustCompile(`^(\d+) (\d+) 0:(\d+) (\S+) (\S+) (\S+) - (\S+) (\S+) (\S+)$`)
	var ids []string
	wantRest := [][]string{
		{"/", "/", "rw", "tmpfs", "rootfs", "rw"},
		{"/", "/proc", "rw,nosuid,nodev,noexec", "proc", "proc", "rw"},
		{"/", "/sys", "ro", "sysfs", "sysfs", "ro"},
		{`/etc/my\040dir`, "/mnt", "rw", "tmpfs", "rootfs", "rw"},
	}
	if len(lines) != len(wantRest) {
		t.Fatalf("mountinfo has %d lines: %q", len(lines), lines)
	}
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("mountinfo line %q malformed", l)
			continue
		}
		ids = append(ids, m[1])
		if strings.Join(m[4:], " ") != strings.Join(wantRest[i], " ") {
			t.Errorf("mountinfo line %q, want fields %v", l, wantRest[i])
		}
		parent := m[2]
		if i == 0 && parent != m[1] {
			t.Errorf("root mount's parent %s, want itself", parent)
		}
		if i > 0 && parent != ids[0] {
			t.Errorf("mount %s's parent %s, want %s", m[1], parent, ids[0])
		}
	}
}

func TestComm(t *testing.T) {
	w := newWorld(t)
	self := rootCtx(initPID, 43)
	if got := w.read(t, self, "/proc/42/comm"); got != "init\n" {
		t.Errorf("comm = %q", got)
	}
	// Like Linux, the newline is kept and the name cut at 15 bytes.
	if err := w.write(self, "/proc/42/comm", "renamed\n"); err != nil {
		t.Fatal(err)
	}
	if got := w.read(t, self, "/proc/42/comm"); got != "renamed\n\n" {
		t.Errorf("comm after write = %q", got)
	}
	if err := w.write(self, "/proc/self/task/43/comm", "abcdefghijklmnopqrstu"); err != nil {
		t.Fatal(err)
	}
	if got := w.read(t, self, "/proc/42/task/43/comm"); got != "abcdefghijklmno\n" {
		t.Errorf("task comm after write = %q", got)
	}
	if err := w.write(rootCtx(7, 7), "/proc/42/comm", "x"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("writing another process's comm: %v, want EINVAL", err)
	}
	wk := w.walk("/proc/42/comm")
	if a, _ := w.v.Stat(self, wk); a.Mode != unix.S_IFREG|0o644 || a.UID != 1001 || a.GID != 101 || a.Size != 0 {
		t.Errorf("comm: mode %#o owner %d:%d size %d", a.Mode, a.UID, a.GID, a.Size)
	}
}

// TestSnapshot: an open file keeps reading what it was opened with.
func TestSnapshot(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	fd, err := w.v.Open(ctx, w.walk("/proc/42/status"), vfs.OpenOptions{Flags: unix.O_RDONLY})
	if err != nil {
		t.Fatal(err)
	}
	defer fd.DecRef()
	w.init.threads[0].SetComm("changed")
	text, _ := readAll(ctx, fd)
	if !strings.HasPrefix(text, "Name:\tinit\n") {
		t.Errorf("open file changed under the reader: %q", text[:20])
	}
	if !strings.HasPrefix(w.read(t, ctx, "/proc/42/status"), "Name:\tchanged\n") {
		t.Error("a fresh open does not see the change")
	}
}

func TestOOMScore(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	// 64M of 8G resident: (1000 + 7 + 0) * 2/3.
	if got := w.read(t, ctx, "/proc/42/oom_score"); got != "671\n" {
		t.Errorf("oom_score = %q", got)
	}
	if got := w.read(t, ctx, "/proc/42/oom_score_adj"); got != "0\n" {
		t.Errorf("oom_score_adj = %q", got)
	}
	if err := w.write(ctx, "/proc/42/oom_score_adj", " 500 \n"); err != nil {
		t.Fatal(err)
	}
	if got := w.read(t, ctx, "/proc/42/oom_score_adj"); got != "500\n" {
		t.Errorf("oom_score_adj after write = %q", got)
	}
	if got := w.read(t, ctx, "/proc/42/oom_score"); got != "1004\n" {
		t.Errorf("oom_score = %q", got)
	}
	for _, bad := range []string{"1001", "-1001", "x", ""} {
		if err := w.write(ctx, "/proc/42/oom_score_adj", bad); !errors.Is(err, unix.EINVAL) {
			t.Errorf("writing %q: %v, want EINVAL", bad, err)
		}
	}
	user := &tctx{pid: initPID, tid: initTID, creds: vfs.Credentials{UID: 1001, GID: 101}}
	if err := w.write(user, "/proc/42/oom_score_adj", "100"); !errors.Is(err, unix.EACCES) {
		t.Errorf("unprivileged decrease: %v, want EACCES", err)
	}
	if err := w.write(ctx, "/proc/42/oom_score_adj", "-1000"); err != nil {
		t.Fatal(err)
	}
	if got := w.read(t, ctx, "/proc/42/oom_score"); got != "0\n" {
		t.Errorf("oom_score at -1000 = %q", got)
	}
}

func TestReadOnlyFiles(t *testing.T) {
	w := newWorld(t)
	user := &tctx{pid: initPID, tid: initTID, creds: vfs.Credentials{UID: 1001, GID: 101}}
	root := rootCtx(initPID, initTID)
	for _, path := range []string{"/proc/42/status", "/proc/meminfo", "/proc/sys/kernel/hostname"} {
		if err := w.write(user, path, "x"); !errors.Is(err, unix.EACCES) {
			t.Errorf("user writing %s: %v, want EACCES", path, err)
		}
		if err := w.write(root, path, "x"); !errors.Is(err, unix.EACCES) {
			t.Errorf("root writing %s: %v, want EACCES", path, err)
		}
	}
	if _, err := w.tryRead(&tctx{pid: 7, tid: 7, creds: vfs.Credentials{UID: 5}}, "/proc/42/environ"); !errors.Is(err, unix.EACCES) {
		t.Errorf("another user reading environ (0400): %v, want EACCES", err)
	}
	if got := w.read(t, user, "/proc/42/environ"); got != "PATH=/bin\x00HOME=/\x00" {
		t.Errorf("environ = %q", got)
	}
	if err := w.v.Mkdir(root, w.walk("/proc/x"), 0o755, 0); !errors.Is(err, unix.EACCES) {
		t.Errorf("mkdir in /proc: %v, want EACCES", err)
	}
}

func TestModes(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	for path, want := range map[string]uint32{
		"/proc/42": unix.S_IFDIR | 0o555, "/proc/42/task": unix.S_IFDIR | 0o555, "/proc/42/fdinfo": unix.S_IFDIR | 0o555,
		"/proc/42/stat": unix.S_IFREG | 0o444, "/proc/42/environ": unix.S_IFREG | 0o400,
		"/proc/42/oom_score_adj": unix.S_IFREG | 0o644, "/proc/42/exe": unix.S_IFLNK | 0o777,
		"/proc/self": unix.S_IFLNK | 0o777, "/proc/meminfo": unix.S_IFREG | 0o444,
		"/proc/sys/kernel": unix.S_IFDIR | 0o555, "/proc/sys/vm/overcommit_memory": unix.S_IFREG | 0o644,
	} {
		wk := w.walk(path)
		wk.FollowFinal = false
		a, err := w.v.Stat(ctx, wk)
		if err != nil || a.Mode != want {
			t.Errorf("%s: mode %#o, %v; want %#o", path, a.Mode, err, want)
		}
		if strings.HasPrefix(path, "/proc/42") && a.UID != 1001 {
			t.Errorf("%s: owner %d, want the process's euid 1001", path, a.UID)
		}
	}
	// Inode numbers are stable across lookups and unique.
	a, _ := w.v.Stat(ctx, w.walk("/proc/42/fdinfo/0"))
	b, _ := w.v.Stat(ctx, w.walk("/proc/42/task/../fdinfo/0"))
	if a.Ino != b.Ino || a.Ino == 0 {
		t.Errorf("fdinfo/0 inode %d then %d", a.Ino, b.Ino)
	}
	seen := map[uint64]string{}
	for _, name := range w.list(t, ctx, "/proc/42") {
		wk := w.walk("/proc/42/" + name)
		wk.FollowFinal = false
		a, _ := w.v.Stat(ctx, wk)
		if prev, ok := seen[a.Ino]; ok {
			t.Errorf("%s and %s share inode %d", prev, name, a.Ino)
		}
		seen[a.Ino] = name
	}
}

func TestPidDirListing(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	want := "task fd fdinfo environ status limits comm cmdline stat statm maps cwd root exe mounts mountinfo smaps cgroup oom_score oom_score_adj"
	if got := strings.Join(w.list(t, ctx, "/proc/42"), " "); got != want {
		t.Errorf("/proc/42 lists\n%s\nwant\n%s", got, want)
	}
	if got := strings.Join(w.list(t, ctx, "/proc/42/task"), " "); got != "42 43" {
		t.Errorf("task lists %q", got)
	}
	if got := strings.Join(w.list(t, ctx, "/proc/42/task/43"), " "); got != "environ status limits comm cmdline stat statm maps" {
		t.Errorf("task/43 lists %q", got)
	}
	if got := w.read(t, ctx, "/proc/42/cgroup"); got != "0::/\n" {
		t.Errorf("cgroup = %q", got)
	}
	if _, err := w.v.Stat(ctx, w.walk("/proc/42/task/7")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("another process's thread under task/: %v", err)
	}
	for _, bad := range []string{"042", "+42", "42x", "99999999999"} {
		if _, err := w.v.Stat(ctx, w.walk("/proc/"+bad)); !errors.Is(err, unix.ENOENT) {
			t.Errorf("/proc/%s: %v, want ENOENT", bad, err)
		}
	}
}

// TestProcessGoes: a reaped process vanishes although its dentries are
// cached, and its open files fail with ESRCH.
func TestProcessGoes(t *testing.T) {
	w := newWorld(t)
	ctx := rootCtx(initPID, initTID)
	w.read(t, ctx, "/proc/7/stat")
	fd, err := w.v.Open(ctx, w.walk("/proc/7"), vfs.OpenOptions{Flags: unix.O_RDONLY | unix.O_DIRECTORY})
	if err != nil {
		t.Fatal(err)
	}
	defer fd.DecRef()
	w.k.reap(7)
	if _, err := w.tryRead(ctx, "/proc/7/stat"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("stat of a reaped process: %v, want ENOENT", err)
	}
	_, err = w.v.Open(ctx, &vfs.Walk{Root: w.ns.Root(), Start: fd.VirtualDentry(), Path: "stat"}, vfs.OpenOptions{Flags: unix.O_RDONLY})
	if !errors.Is(err, unix.ESRCH) {
		t.Errorf("openat(/proc/7 fd, stat) after reaping: %v, want ESRCH", err)
	}
	if got := w.list(t, ctx, "/proc"); contains(got, "7") {
		t.Errorf("/proc still lists 7: %v", got)
	}
}

func TestMeminfo(t *testing.T) {
	w := newWorld(t)
	text := w.read(t, rootCtx(initPID, initTID), "/proc/meminfo")
	if got := fieldNames(text); strings.Join(got, " ") != strings.Join(linuxMeminfoFields, " ") {
		t.Errorf("meminfo fields\n%v\nwant\n%v", got, linuxMeminfoFields)
	}
	for _, want := range []string{"MemTotal:        8388608 kB\n", "MemFree:         6291456 kB\n",
		"MemAvailable:    7340032 kB\n", "HugePages_Total:       0\n", "Hugepagesize:       2048 kB\n",
		"VmallocTotal:   34359738367 kB\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("meminfo lacks %q", want)
		}
	}
}

func TestSystemFiles(t *testing.T) {
	w := newWorld(t)
	w.k.stat = SystemStat{CPUs: []CPUTime{{User: 2 * time.Second, Idle: 10 * time.Second}, {System: 500 * time.Millisecond, Idle: 20*time.Second + 5*time.Millisecond}},
		ContextSwitches: 1234, Forks: 56}
	ctx := rootCtx(initPID, initTID)
	stat := w.read(t, ctx, "/proc/stat")
	wantStat := fmt.Sprintf("cpu  200 0 50 3000 0 0 0 0 0 0\ncpu0 200 0 0 1000 0 0 0 0 0 0\ncpu1 0 0 50 2000 0 0 0 0 0 0\n"+
		"intr 0\nctxt 1234\nbtime %d\nprocesses 56\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n", w.k.boot.Unix())
	if stat != wantStat {
		t.Errorf("stat\n%s\nwant\n%s", stat, wantStat)
	}
	up := w.read(t, ctx, "/proc/uptime")
	if !regexp.MustCompile(`^9\d\.\d\d 30\.00\n$`).MatchString(up) {
		t.Errorf("uptime = %q", up)
	}
	if got := w.read(t, ctx, "/proc/loadavg"); got != "0.50 0.25 1.12 1/3 99\n" && got != "0.50 0.25 1.13 1/3 99\n" {
		t.Errorf("loadavg = %q", got)
	}
	if got := w.read(t, ctx, "/proc/version"); !strings.HasPrefix(got, "Linux version 6.12.0 (") || !strings.HasSuffix(got, ") #1 SMP Ringfence\n") {
		t.Errorf("version = %q", got)
	}
	if got := w.read(t, ctx, "/proc/filesystems"); got != "nodev\tproc\nnodev\tsysfs\nnodev\ttmpfs\n" {
		t.Errorf("filesystems = %q", got)
	}
	for path, want := range map[string]string{
		"kernel/hostname": "sandbox\n", "kernel/domainname": "(none)\n", "kernel/osrelease": "6.12.0\n",
		"kernel/ostype": "Linux\n", "kernel/version": "#1 SMP Ringfence\n", "kernel/pid_max": "4194304\n",
		"kernel/ngroups_max": "65536\n", "kernel/cap_last_cap": "40\n", "kernel/shmmax": "18446744073692774399\n",
		"kernel/random/boot_id": w.k.BootID() + "\n", "kernel/random/entropy_avail": "256\n",
		"kernel/threads-max": "65536\n", "vm/overcommit_memory": "0\n", "vm/max_map_count": "65530\n",
		"fs/file-max": "9223372036854775807\n", "fs/nr_open": "1048576\n", "net/core/somaxconn": "4096\n",
	} {
		if got := w.read(t, ctx, "/proc/sys/"+path); got != want {
			t.Errorf("/proc/sys/%s = %q, want %q", path, got, want)
		}
	}
	u1, u2 := w.read(t, ctx, "/proc/sys/kernel/random/uuid"), w.read(t, ctx, "/proc/sys/kernel/random/uuid")
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$`)
	if u1 == u2 || !re.MatchString(u1) || !re.MatchString(u2) {
		t.Errorf("uuid reads %q then %q", u1, u2)
	}
}

func TestCPUMask(t *testing.T) {
	for n, want := range map[int]string{1: "1", 2: "3", 4: "f", 5: "1f", 32: "ffffffff", 36: "f,ffffffff", 64: "ffffffff,ffffffff"} {
		if got := cpuMask(n); got != want {
			t.Errorf("cpuMask(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFDSize(t *testing.T) {
	for max, want := range map[int32]int{0: 64, 63: 64, 64: 128, 127: 128, 251: 256, 300: 512} {
		if got := fdSize([]FD{{Num: 0}, {Num: max}}); got != want {
			t.Errorf("fdSize(max fd %d) = %d, want %d", max, got, want)
		}
	}
}

func TestCPUInfoFake(t *testing.T) {
	saved := cpuid
	defer func() { cpuid = saved }()
	brand := "Test CPU @ 2.50GHz\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	word := func(i int) uint32 {
		b := []byte(brand[i*4 : i*4+4])
		return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	}
	cpuid = func(leaf, sub uint32) (uint32, uint32, uint32, uint32) {
		switch leaf {
		case 0:
			return 7, 0x756e6547, 0x6c65746e, 0x49656e69 // GenuineIntel
		case 1:
			return 0x000806f2, 8 << 8, 1<<0 | 1<<31, 1<<0 | 1<<25 | 1<<26
		case 7:
			if sub == 0 {
				return 0, 1 << 5, 0, 1 << 4
			}
		case 0x80000000:
			return 0x80000008, 0, 0, 0
		case 0x80000001:
			return 0, 0, 1, 1<<11 | 1<<29
		case 0x80000002, 0x80000003, 0x80000004:
			i := int(leaf-0x80000002) * 4
			return word(i), word(i + 1), word(i + 2), word(i + 3)
		case 0x80000008:
			return 46 | 48<<8, 0, 0, 0
		}
		return 0, 0, 0, 0
	}
	w := newWorld(t)
	text := w.read(t, rootCtx(initPID, initTID), "/proc/cpuinfo")
	entry := "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Test CPU @ 2.50GHz\n" +
		"stepping\t: 2\ncpu MHz\t\t: 2500.000\nphysical id\t: 0\nsiblings\t: 2\n"
	if !strings.Contains(text, "processor\t: 0\n"+entry+"core id\t\t: 0\n") || !strings.Contains(text, "processor\t: 1\n"+entry+"core id\t\t: 1\n") {
		t.Errorf("cpuinfo:\n%s", text)
	}
	for _, want := range []string{
		"flags\t\t: fpu sse sse2 syscall lm constant_tsc cpuid pni hypervisor lahf_lm avx2 fsrm\n",
		"cpuid level\t: 7\n", "bogomips\t: 5000.00\n", "clflush size\t: 64\n", "address sizes\t: 46 bits physical, 48 bits virtual\n",
		"power management:\n\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("cpuinfo lacks %q", want)
		}
	}
}

// TestCPUInfoFlagsMatchHost: the host's flags that our tables know come
// out, in the host kernel's order.
func TestCPUInfoFlagsMatchHost(t *testing.T) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip(err)
	}
	var host []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "flags\t") {
			host = strings.Fields(strings.SplitN(l, ":", 2)[1])
			break
		}
	}
	known := map[string]bool{"constant_tsc": true, "nonstop_tsc": true, "cpuid": true}
	for _, w := range flagWords {
		for _, n := range w.names {
			known[n] = true
		}
	}
	ours := readCPUInfo().flags
	pos := map[string]int{}
	for i, f := range ours {
		pos[f] = i
	}
	last := -1
	for _, f := range host {
		if !known[f] {
			continue
		}
		i, ok := pos[f]
		if !ok {
			t.Errorf("host flag %q missing from ours", f)
			continue
		}
		if i < last {
			t.Errorf("flag %q out of the host's order", f)
		}
		last = i
	}
	if !strings.HasPrefix(readCPUInfo().vendor, "Genuine") && !strings.HasPrefix(readCPUInfo().vendor, "Authentic") {
		t.Logf("vendor %q", readCPUInfo().vendor)
	}
}
