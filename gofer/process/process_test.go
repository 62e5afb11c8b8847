package process

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

func TestParseMount(t *testing.T) {
	for _, m := range []Mount{
		{Source: "/a"},
		{Source: "/a:ro", ReadOnly: false},
		{Source: "/with,comma:and colon", ReadOnly: true},
	} {
		got, err := ParseMount(m.String())
		if err != nil || got != m {
			t.Errorf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
	for _, bad := range []string{"", "/a", "xx:/a", "ro:", "rw:relative"} {
		if _, err := ParseMount(bad); err == nil {
			t.Errorf("ParseMount(%q) accepted", bad)
		}
	}
}

func TestSpawnArgs(t *testing.T) {
	o := SpawnOptions{Mounts: []Mount{{Source: "/r"}, {Source: "/o", ReadOnly: true}}, Args: []string{"--debug", "gofer"}}
	got := strings.Join(o.args(), " ")
	want := "--debug gofer --mount-fd-start=3 --mount=rw:/r --mount=ro:/o"
	if got != want {
		t.Fatalf("args %q, want %q", got, want)
	}
	cfg, err := parseGoferArgs((&SpawnOptions{Mounts: o.Mounts, AllowUnconfined: true}).args())
	if err != nil || cfg.FDStart != 3 || len(cfg.Mounts) != 2 || cfg.Mounts[1] != o.Mounts[1] || !cfg.AllowUnconfined {
		t.Fatalf("parsed %+v, %v", cfg, err)
	}
}

// TestSpawnServes: Hello, Walk, Open with a donated fd on a read-write root
// and a read-only mount, EROFS on the latter (in the server and in the
// kernel), and a clean exit 0 once the connections are closed.
func TestSpawnServes(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	g := e.spawn(t, SpawnOptions{})
	conns := g.Conns()
	if len(conns) != 2 {
		t.Fatalf("%d conns", len(conns))
	}
	rw, ro := newClient(t, conns[0]), newClient(t, conns[1])

	file, st := rw.walkOK(0, "a", "b", "c.txt")
	if st.Size != uint64(len("hello gofer")) || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("stat %+v", st)
	}
	r, fds := rw.callFDs(&proto.OpenReq{Handle: file, Flags: unix.O_RDONLY})
	if _, ok := r.(*proto.OpenResp); !ok || len(fds) != 1 {
		t.Fatalf("open: %#v %v", r, fds)
	}
	if got := readAllFD(t, fds[0]); got != "hello gofer" {
		t.Fatalf("read %q", got)
	}
	unix.Close(fds[0])

	// Writing through the read-write mount reaches the host.
	dir, _ := rw.walkOK(0, "a")
	r, fds = rw.callFDs(&proto.CreateReq{Dir: dir, Name: "new", Flags: unix.O_RDWR, Mode: 0o644})
	if _, ok := r.(*proto.CreateResp); !ok || len(fds) != 1 {
		t.Fatalf("create: %#v", r)
	}
	if _, err := unix.Write(fds[0], []byte("written")); err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[0])
	if b, _ := os.ReadFile(filepath.Join(e.root, "a/new")); string(b) != "written" {
		t.Fatalf("host sees %q", b)
	}

	// The read-only mount.
	motd, _ := ro.walkOK(0, "etc", "motd")
	etc, _ := ro.walkOK(0, "etc")
	ro.wantErr(&proto.OpenReq{Handle: motd, Flags: unix.O_WRONLY}, unix.EROFS)
	ro.wantErr(&proto.OpenReq{Handle: motd, Flags: unix.O_RDONLY | unix.O_TRUNC}, unix.EROFS)
	ro.wantErr(&proto.CreateReq{Dir: etc, Name: "x", Flags: unix.O_RDWR, Mode: 0o644}, unix.EROFS)
	ro.wantErr(&proto.MkdirReq{Dir: etc, Name: "x", Mode: 0o755}, unix.EROFS)
	ro.wantErr(&proto.UnlinkReq{Dir: etc, Name: "motd"}, unix.EROFS)
	ro.wantErr(&proto.SetattrReq{Handle: motd, Mask: proto.SetattrSize}, unix.EROFS)
	r, fds = ro.callFDs(&proto.OpenReq{Handle: motd, Flags: unix.O_RDONLY})
	if _, ok := r.(*proto.OpenResp); !ok || len(fds) != 1 {
		t.Fatalf("open ro: %#v", r)
	}
	if got := readAllFD(t, fds[0]); got != "read only" {
		t.Fatalf("read %q", got)
	}
	// The gofer's clone of the mount is read-only in the kernel too.
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fds[0], &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("file from the read-only mount is on a writable mount (statfs flags %#x)", sfs.Flags)
	}
	unix.Close(fds[0])
	if b, _ := os.ReadFile(filepath.Join(e.ro, "etc/motd")); string(b) != "read only" {
		t.Fatalf("ro file changed: %q", b)
	}

	if err := g.Close(); err != nil {
		t.Fatalf("gofer exit: %v\n%s", err, e.stderr)
	}
	if code, sig := waitExit(t, g); code != 0 || sig != 0 {
		t.Fatalf("exit %d signal %v", code, sig)
	}
}

// TestAllOperations runs every request type through a confined gofer, so a
// system call missing from the seccomp allow list shows up as a failure.
func TestAllOperations(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	g := e.spawn(t, SpawnOptions{Mounts: []Mount{{Source: e.root}}})
	cc := newClient(t, g.Conns()[0])

	file, _ := cc.walkOK(0, "a", "b", "c.txt")
	bDir, _ := cc.walkOK(0, "a", "b")
	sb := cc.call(&proto.StatBatchReq{Handles: []uint64{0, file}}).(*proto.StatBatchResp)
	if sb.Errnos[0] != 0 || sb.Errnos[1] != 0 {
		t.Fatalf("statbatch %+v", sb)
	}
	cr := cc.call(&proto.CreateReq{Dir: bDir, Name: "n", Flags: unix.O_RDWR, Mode: 0o640, UID: 1234, GID: 5678}).(*proto.CreateResp)
	if cr.Stat.UID != 1234 || cr.Stat.GID != 5678 || cr.Stat.Mode&0o7777 != 0o640 {
		t.Fatalf("create stat %+v", cr.Stat)
	}
	md := cc.call(&proto.MkdirReq{Dir: 0, Name: "d", Mode: 0o2751, GID: 42}).(*proto.MkdirResp)
	if md.Stat.Mode != unix.S_IFDIR|0o2751 {
		t.Fatalf("mkdir mode %o", md.Stat.Mode)
	}
	fifo := cc.call(&proto.MknodReq{Dir: md.Handle, Name: "fifo", Mode: unix.S_IFIFO | 0o600}).(*proto.MknodResp)
	cc.call(&proto.OpenReq{Handle: fifo.Handle, Flags: unix.O_RDONLY})
	cc.wantErr(&proto.MknodReq{Dir: md.Handle, Name: "null", Mode: unix.S_IFCHR | 0o666, RdevMajor: 1, RdevMinor: 3}, unix.EPERM)
	sl := cc.call(&proto.SymlinkReq{Dir: md.Handle, Name: "ln", Target: "../a/b/c.txt"}).(*proto.SymlinkResp)
	if rl := cc.call(&proto.ReadlinkReq{Handle: sl.Handle}).(*proto.ReadlinkResp); rl.Target != "../a/b/c.txt" {
		t.Fatalf("readlink %q", rl.Target)
	}
	if lk := cc.call(&proto.LinkReq{Target: file, Dir: md.Handle, Name: "hard"}).(*proto.LinkResp); lk.Stat.Nlink != 2 {
		t.Fatalf("link nlink %d", lk.Stat.Nlink)
	}
	cc.call(&proto.RenameReq{OldDir: md.Handle, OldName: "hard", NewDir: 0, NewName: "hard2"})
	cc.call(&proto.RenameReq{OldDir: 0, OldName: "hard2", NewDir: bDir, NewName: "n", Flags: proto.RenameExchange})
	gd := cc.call(&proto.GetdentsReq{Handle: md.Handle, MaxBytes: 4096}).(*proto.GetdentsResp)
	if len(gd.Entries) != 2 || !gd.EOF {
		t.Fatalf("getdents %+v", gd)
	}
	sa := cc.call(&proto.SetattrReq{Handle: file, Mask: proto.SetattrMode | proto.SetattrSize | proto.SetattrMtime | proto.SetattrAtime | proto.SetattrUID | proto.SetattrGID,
		Mode: 0o755, Size: 5, UID: 7, GID: 8, Mtime: proto.Timespec{Sec: 12345}, Atime: proto.Timespec{Nsec: proto.UtimeNow}}).(*proto.SetattrResp)
	if sa.Stat.Mode != unix.S_IFREG|0o755 || sa.Stat.Size != 5 || sa.Stat.UID != 7 || sa.Stat.Mtime.Sec != 12345 {
		t.Fatalf("setattr %+v", sa.Stat)
	}
	if sf := cc.call(&proto.StatFSReq{Handle: 0}).(*proto.StatFSResp); sf.StatFS.Bsize == 0 {
		t.Fatalf("statfs %+v", sf)
	}
	cc.call(&proto.UnlinkReq{Dir: md.Handle, Name: "fifo"})
	cc.call(&proto.UnlinkReq{Dir: md.Handle, Name: "ln"})
	cc.call(&proto.UnlinkReq{Dir: 0, Name: "d", Flags: proto.AtRemoveDir})
	cc.call(&proto.CloseReq{Handles: []uint64{file, bDir}})
	cc.wantErr(&proto.StatFSReq{Handle: file}, unix.EBADF)
	// Many handles at once (allocation, map growth, many threads' worth
	// of descriptors).
	for i := 0; i < 200; i++ {
		cc.walkOK(0, "a", "b")
	}
	if err := g.Close(); err != nil {
		t.Fatalf("gofer exit: %v\n%s", err, e.stderr)
	}
	if s := e.stderr.String(); s != "" {
		t.Errorf("gofer wrote to stderr:\n%s", s)
	}
}

// procStatus returns the "Key:\tvalue" fields of /proc/PID[/task/TID]/status.
func procStatus(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestConfinement inspects a serving gofer from outside: own mount
// namespace, an empty tmpfs as root, seccomp and no_new_privs on every
// thread, a reduced capability set, and no descriptor beyond stdio (on
// /dev/null), its sockets, its mounts and the runtime's own.
func TestConfinement(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	// A descriptor this process leaks to its children: the gofer must
	// close it.
	var leak [2]int
	if err := unix.Pipe2(leak[:], 0); err != nil {
		t.Fatal(err)
	}
	leakName, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", leak[0]))
	g := e.spawn(t, SpawnOptions{})
	unix.Close(leak[0])
	unix.Close(leak[1])
	// Serving means confined.
	newClient(t, g.Conns()[0])
	newClient(t, g.Conns()[1])
	proc := fmt.Sprintf("/proc/%d", g.Pid())

	if nsIno(t, proc+"/ns/mnt") == nsIno(t, "/proc/self/ns/mnt") {
		t.Error("the gofer shares our mount namespace")
	}

	var root, hostRoot unix.Stat_t
	if err := unix.Stat(proc+"/root/", &root); err != nil {
		t.Fatal(err)
	}
	unix.Stat("/", &hostRoot)
	if root.Dev == hostRoot.Dev && root.Ino == hostRoot.Ino {
		t.Error("the gofer's root is the host root")
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(proc+"/root/", &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type != unix.TMPFS_MAGIC || sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("root: fs type %#x flags %#x, want a read-only tmpfs", sfs.Type, sfs.Flags)
	}
	if ents, err := os.ReadDir(proc + "/root/"); err != nil || len(ents) != 0 {
		t.Errorf("root entries %v, %v; want none", ents, err)
	}

	// CAP_SYS_CHROOT and CAP_SETPCAP remain when cgo is linked (see
	// dropSetupCaps).
	allowedCaps := capMask(stage2Caps()...)
	if !cgoLinked() {
		allowedCaps = capMask(keptCaps...)
	}
	allowed := uint64(allowedCaps[1])<<32 | uint64(allowedCaps[0])
	tasks, err := os.ReadDir(proc + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		st := procStatus(t, proc+"/task/"+task.Name()+"/status")
		if st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" {
			t.Errorf("thread %s: Seccomp %s NoNewPrivs %s, want 2 and 1", task.Name(), st["Seccomp"], st["NoNewPrivs"])
		}
		for _, k := range []string{"CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"} {
			v, err := strconv.ParseUint(st[k], 16, 64)
			if err != nil || v&^allowed != 0 {
				t.Errorf("thread %s: %s %s has more than %#x", task.Name(), k, st[k], allowed)
			}
		}
		if v, _ := strconv.ParseUint(st["CapEff"], 16, 64); v&(1<<unix.CAP_DAC_OVERRIDE) == 0 {
			t.Errorf("thread %s: CapEff %s lacks CAP_DAC_OVERRIDE", task.Name(), st["CapEff"])
		}
	}

	fds, err := os.ReadDir(proc + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	sockets, paths := 0, 0
	for _, f := range fds {
		target, err := os.Readlink(proc + "/fd/" + f.Name())
		if err != nil {
			continue
		}
		switch {
		case f.Name() == "0" || f.Name() == "1":
			if target != "/dev/null" {
				t.Errorf("fd %s is %s, want /dev/null", f.Name(), target)
			}
		case f.Name() == "2":
		case target == leakName:
			t.Errorf("fd %s: the leaked %s is still open", f.Name(), target)
		case strings.HasPrefix(target, "socket:"):
			sockets++
		case strings.HasPrefix(target, "anon_inode:"):
		case strings.HasPrefix(target, "pipe:"): // the runtime's netpoll wake-up on old kernels
		case strings.HasPrefix(target, "/sys/fs/cgroup/"): // the runtime re-reads its CPU limit
		default:
			paths++ // the mounts, and the handles of the Hello exchanges
		}
	}
	if sockets != 2 || paths != 4 {
		t.Errorf("fds: %d sockets (want 2), %d path descriptors (want 4: 2 mounts, 2 root handles); %v", sockets, paths, fds)
	}
}

// TestCanaryUnreachable: a file next to the served root is out of reach
// through "..", absolute and relative symlinks, and the read-only mount.
func TestCanaryUnreachable(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	for name, target := range map[string]string{
		"abs":  e.canary,
		"up":   "../outside/canary",
		"root": "/",
		"self": "/proc/self/root",
	} {
		if err := os.Symlink(target, filepath.Join(e.root, name)); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Unix(1000000000, 0)
	os.Chtimes(e.canary, old, old)
	g := e.spawn(t, SpawnOptions{})
	cc, ro := newClient(t, g.Conns()[0]), newClient(t, g.Conns()[1])

	cc.wantErr(&proto.WalkReq{Dir: 0, Names: []string{".."}}, unix.EINVAL)
	cc.wantErr(&proto.WalkReq{Dir: 0, Names: []string{"..", "outside", "canary"}}, unix.EINVAL)
	ro.wantErr(&proto.WalkReq{Dir: 0, Names: []string{"..", "outside"}}, unix.EINVAL)
	cc.wantErr(&proto.WalkReq{Dir: 0, Names: []string{e.canary}}, unix.EINVAL)
	for _, link := range []string{"abs", "up", "root", "self"} {
		w := cc.call(&proto.WalkReq{Dir: 0, Names: []string{link, "outside", "canary"}}).(*proto.WalkResp)
		if w.Errno != 0 || len(w.Handles) != 1 || w.Stats[0].Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Fatalf("walk through %s: %+v", link, w)
		}
		cc.wantErr(&proto.OpenReq{Handle: w.Handles[0], Flags: unix.O_RDONLY}, unix.ELOOP)
		cc.wantErr(&proto.GetdentsReq{Handle: w.Handles[0], MaxBytes: 4096}, unix.ENOTDIR)
		cc.wantErr(&proto.CreateReq{Dir: w.Handles[0], Name: "canary", Flags: unix.O_RDWR, Mode: 0o644}, unix.ENOTDIR)
	}
	g.Close()
	var st unix.Stat_t
	if err := unix.Stat(e.canary, &st); err != nil {
		t.Fatal(err)
	}
	if st.Atim.Sec != old.Unix() {
		t.Errorf("canary was read (atime %d)", st.Atim.Sec)
	}
}

// TestCloseExits: the gofer serves until the last connection is closed,
// then exits 0.
func TestCloseExits(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	g := e.spawn(t, SpawnOptions{})
	c0, c1 := g.Conns()[0], g.Conns()[1]
	newClient(t, c0)
	cc1 := newClient(t, c1)
	c0.Close()
	time.Sleep(100 * time.Millisecond)
	cc1.walkOK(0, "etc", "motd") // still serving
	select {
	case <-g.done:
		t.Fatal("gofer exited with a connection still open")
	default:
	}
	c1.Close()
	if code, sig := waitExit(t, g); code != 0 || sig != 0 {
		t.Fatalf("exit %d signal %v; stderr:\n%s", code, sig, e.stderr)
	}
}

// TestMalformedFrames: an undecodable payload is answered with EBADMSG and
// the connection goes on; a broken header ends that connection (logged)
// while the other one keeps serving.
func TestMalformedFrames(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	g := e.spawn(t, SpawnOptions{keepRaw: true})
	bad, good := newClient(t, g.Conns()[0]), newClient(t, g.Conns()[1])

	frame := func(length uint32, typ proto.MsgType, tag uint32, payload []byte) []byte {
		b := make([]byte, proto.HeaderSize, proto.HeaderSize+len(payload))
		binary.LittleEndian.PutUint32(b[0:], length)
		binary.LittleEndian.PutUint16(b[4:], uint16(typ))
		binary.LittleEndian.PutUint32(b[8:], tag)
		return append(b, payload...)
	}
	// A Walk whose name count promises more than the payload holds.
	payload := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}
	if _, err := unix.Write(g.raw[0], frame(uint32(proto.HeaderSize+len(payload)), proto.MsgWalkReq, 77, payload)); err != nil {
		t.Fatal(err)
	}
	r := recv(t, g.Conns()[0])
	if r.err != nil || r.tag != 77 || errno(r.m) != unix.EBADMSG {
		t.Fatalf("malformed payload: %+v", r)
	}
	bad.walkOK(0, "a", "b") // still serving

	// A header whose length is shorter than a header: the stream cannot
	// be resynchronised, so the gofer drops this connection.
	if _, err := unix.Write(g.raw[0], frame(4, proto.MsgWalkReq, 78, nil)); err != nil {
		t.Fatal(err)
	}
	// (The server answers the undecodable header a bounded number of
	// times before it gives up on the stream.)
	for i := 0; ; i++ {
		r := recv(t, g.Conns()[0])
		if r.err != nil {
			break
		}
		if i > 100 || errno(r.m) != unix.EBADMSG {
			t.Fatalf("connection still serving after a broken header: %+v", r)
		}
	}
	good.walkOK(0, "etc", "motd")
	g.Close()
	if code, _ := waitExit(t, g); code != 1 {
		t.Errorf("exit %d after a connection failed, want 1; stderr:\n%s", code, e.stderr)
	}
	// All of stderr has arrived once the gofer has been reaped.
	if s := e.stderr.String(); !strings.Contains(s, "connection 0") || !strings.Contains(s, "malformed") {
		t.Errorf("stderr does not say why connection 0 was closed:\n%s", s)
	}
}

// TestProbeConfined runs code inside a confined gofer: no host path can be
// opened by name, the root is empty, sockets and executable memory are
// refused, and execve kills the process (SIGSYS).
func TestProbeConfined(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	g := e.spawn(t, SpawnOptions{Env: append(os.Environ(), childEnv+"="+roleProbe, "PROBE_TARGET="+e.canary)})
	code, sig := waitExit(t, g)
	out := e.stderr.String()
	for _, want := range []string{
		"PROBE open: EPERM",     // openat is not allowed at all
		"PROBE openat2: ENOENT", // allowed, but the host is out of sight
		`PROBE root entries: [] <nil>`,
		"PROBE socket: EPERM",
		"PROBE mmap exec: EPERM",
		"PROBE runtime: ok",
		"PROBE execve\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("probe output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "execve returned") || sig != unix.SIGSYS {
		t.Errorf("execve: exit %d signal %v, want killed by SIGSYS:\n%s", code, sig, out)
	}
}

// TestFileSourceRefused: only directories can be served, and the error
// says so.
func TestFileSourceRefused(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	g := e.spawn(t, SpawnOptions{Mounts: []Mount{{Source: filepath.Join(e.root, "a/b/c.txt")}}})
	if code, _ := waitExit(t, g); code != 1 || !strings.Contains(e.stderr.String(), "not a directory") {
		t.Fatalf("exit %d, stderr:\n%s", code, e.stderr)
	}
}

// TestUnprivileged: without the privilege to confine, the gofer refuses
// to serve and names what is missing; with AllowUnconfined it serves, with
// seccomp and no_new_privs.
func TestUnprivileged(t *testing.T) {
	needRoot(t) // to switch to an unprivileged user
	e := newEnv(t)
	// t.TempDir's directories are private to root.
	for d := e.root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	os.Chmod(e.ro, 0o755)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}

	g := e.spawn(t, SpawnOptions{credential: nobody})
	if code, _ := waitExit(t, g); code != 1 {
		t.Fatalf("unprivileged gofer: exit %d, want 1; stderr:\n%s", code, e.stderr)
	}
	if s := e.stderr.String(); !strings.Contains(s, "CAP_SYS_ADMIN") || !strings.Contains(s, "--allow-unconfined") {
		t.Fatalf("error does not name the missing privilege and the opt-in:\n%s", s)
	}

	e.stderr = &syncBuffer{}
	g = e.spawn(t, SpawnOptions{credential: nobody, AllowUnconfined: true})
	cc := newClient(t, g.Conns()[0])
	file, _ := cc.walkOK(0, "a", "b", "c.txt")
	r, fds := cc.callFDs(&proto.OpenReq{Handle: file, Flags: unix.O_RDONLY})
	if len(fds) != 1 {
		t.Fatalf("open: %#v", r)
	}
	if got := readAllFD(t, fds[0]); got != "hello gofer" {
		t.Fatalf("read %q", got)
	}
	unix.Close(fds[0])
	st := procStatus(t, fmt.Sprintf("/proc/%d/status", g.Pid()))
	if st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" {
		t.Errorf("unconfined gofer: Seccomp %s NoNewPrivs %s", st["Seccomp"], st["NoNewPrivs"])
	}
	if err := g.Close(); err != nil {
		t.Fatalf("exit: %v\n%s", err, e.stderr)
	}
	if !strings.Contains(e.stderr.String(), "UNCONFINED") {
		t.Errorf("no warning about serving unconfined:\n%s", e.stderr)
	}
}

// TestPdeathsig: when the process that spawned the gofer dies, the gofer
// is killed even though its sockets are still open elsewhere.
func TestPdeathsig(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	// Orphans are reparented to us, so we can reap the gofer and see how
	// it died.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skip("no subreaper:", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), childEnv+"="+roleSpawner, "SPAWN_SOURCE="+e.root)
	cmd.Stderr = e.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("spawner: %v\n%s", err, e.stderr)
	}
	var gofer, holder int
	fmt.Sscan(line, &gofer, &holder)
	defer func() {
		unix.Kill(holder, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(holder, &ws, 0, nil)
	}()
	// Give the gofer time to confine itself and start serving.
	time.Sleep(300 * time.Millisecond)
	if err := unix.Kill(gofer, 0); err != nil {
		t.Fatalf("gofer %d not running: %v", gofer, err)
	}
	cmd.Process.Kill()
	cmd.Wait()

	done := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		unix.Wait4(gofer, &ws, 0, nil)
		done <- ws
	}()
	select {
	case ws := <-done:
		if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
			t.Fatalf("gofer ended with %v, want SIGKILL", ws)
		}
	case <-time.After(10 * time.Second):
		unix.Kill(gofer, unix.SIGKILL)
		t.Fatal("gofer outlived its parent")
	}
}

// cgoLinked reports whether this binary links cgo (the runtime then cannot
// change all threads' credentials).
func cgoLinked() bool {
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0)
	return e == syscall.ENOTSUP
}
