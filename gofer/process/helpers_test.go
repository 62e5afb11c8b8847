package process

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

// The test binary doubles as the gofer: Spawn re-executes it with childEnv
// set, and TestMain then runs Main (or another helper role) instead of the
// tests. This keeps the tests independent of cmd/runsc.
const childEnv = "RINGFENCE_PROCESS_TEST_CHILD"

// Child roles.
const (
	roleServe   = "serve"   // Main, as `runsc gofer` would
	roleProbe   = "probe"   // Main, then probes instead of serving
	roleSpawner = "spawner" // Spawn a gofer, hand its sockets to a holder, wait to be killed
	roleHolder  = "holder"  // keep inherited descriptors open until killed
)

func TestMain(m *testing.M) {
	switch role := os.Getenv(childEnv); role {
	case "":
		os.Exit(m.Run())
	case roleServe, roleProbe:
		os.Exit(childGofer(role))
	case roleSpawner:
		os.Exit(childSpawner())
	case roleHolder:
		select {}
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", childEnv, role)
		os.Exit(2)
	}
}

// parseGoferArgs parses the argv Spawn builds ("gofer" and the gofer flags)
// the way cmd/runsc does.
func parseGoferArgs(args []string) (Config, error) {
	var cfg Config
	if len(args) == 0 || args[0] != "gofer" {
		return cfg, fmt.Errorf("want gofer as the first argument: %q", args)
	}
	for _, a := range args[1:] {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch k {
		case FlagMountFDStart:
			n, err := strconv.Atoi(v)
			if err != nil {
				return cfg, err
			}
			cfg.FDStart = n
		case FlagMount:
			m, err := ParseMount(v)
			if err != nil {
				return cfg, err
			}
			cfg.Mounts = append(cfg.Mounts, m)
		case FlagAllowUnconfined:
			cfg.AllowUnconfined = true
		default:
			return cfg, fmt.Errorf("unknown flag %q", a)
		}
	}
	return cfg, nil
}

func childGofer(role string) int {
	cfg, err := parseGoferArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofer:", err)
		return 2
	}
	if role == roleProbe {
		cfg.afterConfine = probeConfined
	}
	if err := Main(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gofer:", err)
		return 1
	}
	return 0
}

// probeConfined runs inside a fully confined gofer and reports on stderr
// what a compromised gofer could reach. Its last act, execve, must kill
// the process.
func probeConfined(conns []*proto.Conn) error {
	target := os.Getenv("PROBE_TARGET") // a host path outside every mount
	report := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "PROBE %s: %v\n", what, errnoName(err))
	}
	_, err := os.Open(target)
	report("open", err)
	fd, err := unix.Openat2(unix.AT_FDCWD, target, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC})
	if err == nil {
		unix.Close(fd)
	}
	report("openat2", err)
	fd, err = unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC})
	if err == nil {
		buf := make([]byte, 4096)
		n, gerr := unix.Getdents(fd, buf)
		var names []string
		if gerr == nil {
			_, _, names = unix.ParseDirent(buf[:n], -1, nil)
		}
		unix.Close(fd)
		fmt.Fprintf(os.Stderr, "PROBE root entries: %q %v\n", names, gerr)
	} else {
		report("open root", err)
	}
	_, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	report("socket", err)
	_, err = unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANON)
	report("mmap exec", err)
	report("runtime", exerciseRuntime())
	fmt.Fprintln(os.Stderr, "PROBE execve")
	err = unix.Exec("/bin/true", []string{"true"}, nil)
	report("execve returned", err)
	return nil
}

func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var en unix.Errno
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	if e, ok := err.(unix.Errno); ok {
		en = e
		return unix.ErrnoName(en)
	}
	return err.Error()
}

// childSpawner spawns a gofer, gives a holder process its sockets (so the
// gofer never sees EOF), prints both pids and waits to be killed: then
// only Pdeathsig can end the gofer.
func childSpawner() int {
	g, err := Spawn(SpawnOptions{
		Mounts:  []Mount{{Source: os.Getenv("SPAWN_SOURCE")}},
		Env:     append(os.Environ(), childEnv+"="+roleServe),
		Stderr:  os.Stderr,
		keepRaw: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var files []*os.File
	for _, fd := range g.raw {
		files = append(files, os.NewFile(uintptr(fd), "raw"))
	}
	h, err := startHolder(files)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%d %d\n", g.Pid(), h)
	select {}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of os/exec
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("confining the gofer needs root (CAP_SYS_ADMIN for the mount namespace and root, CAP_SYS_CHROOT)")
	}
}

const canaryData = "CANARY: must never be read or changed\n"

// env is a served root and a read-only mount, with a canary directory
// next to them that must stay unreachable.
type env struct {
	root, ro, outside, canary string
	stderr                    *syncBuffer
	g                         *Gofer
}

func mustWrite(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := t.TempDir()
	e := &env{
		root:    filepath.Join(d, "root"),
		ro:      filepath.Join(d, "ro"),
		outside: filepath.Join(d, "outside"),
		stderr:  &syncBuffer{},
	}
	e.canary = filepath.Join(e.outside, "canary")
	mustWrite(t, filepath.Join(e.root, "a/b/c.txt"), "hello gofer")
	mustWrite(t, filepath.Join(e.ro, "etc/motd"), "read only")
	mustWrite(t, e.canary, canaryData)
	return e
}

func (e *env) spawn(t *testing.T, opts SpawnOptions) *Gofer {
	t.Helper()
	if opts.Mounts == nil {
		opts.Mounts = []Mount{{Source: e.root}, {Source: e.ro, ReadOnly: true}}
	}
	if opts.Env == nil {
		opts.Env = append(os.Environ(), childEnv+"="+roleServe)
	}
	opts.Stderr = e.stderr
	g, err := Spawn(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.g = g
	t.Cleanup(func() {
		g.Kill()
		g.Wait()
		if t.Failed() {
			t.Logf("gofer stderr:\n%s", e.stderr)
		}
		if b, err := os.ReadFile(e.canary); err != nil || string(b) != canaryData {
			t.Errorf("canary: %q, %v", b, err)
		}
	})
	return g
}

// client calls one connection.
type client struct {
	t   *testing.T
	c   *proto.Conn
	tag uint32
}

func newClient(t *testing.T, c *proto.Conn) *client {
	cc := &client{t: t, c: c}
	r := cc.call(&proto.HelloReq{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: proto.MaxMessageSize}})
	if _, ok := r.(*proto.HelloResp); !ok {
		t.Fatalf("hello: %#v", r)
	}
	return cc
}

type recvResult struct {
	tag uint32
	m   proto.Message
	fds []int
	err error
}

// recv fails the test instead of hanging on a gofer that stopped serving.
func recv(t *testing.T, c *proto.Conn) recvResult {
	t.Helper()
	ch := make(chan recvResult, 1)
	go func() {
		tag, m, fds, err := c.Recv()
		ch <- recvResult{tag, m, fds, err}
	}()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no response from the gofer in 10s")
		return recvResult{}
	}
}

func (cc *client) callFDs(m proto.Message) (proto.Message, []int) {
	cc.t.Helper()
	cc.tag++
	if err := cc.c.Send(cc.tag, m, nil); err != nil {
		cc.t.Fatalf("send %T: %v", m, err)
	}
	r := recv(cc.t, cc.c)
	if r.err != nil {
		cc.t.Fatalf("recv for %T: %v", m, r.err)
	}
	if r.tag != cc.tag {
		cc.t.Fatalf("tag %d, want %d", r.tag, cc.tag)
	}
	return r.m, r.fds
}

func (cc *client) call(m proto.Message) proto.Message {
	cc.t.Helper()
	r, fds := cc.callFDs(m)
	for _, fd := range fds {
		unix.Close(fd)
	}
	return r
}

func errno(r proto.Message) unix.Errno {
	if e, ok := r.(*proto.ErrorResp); ok {
		return unix.Errno(e.Errno)
	}
	return 0
}

func (cc *client) wantErr(m proto.Message, want unix.Errno) {
	cc.t.Helper()
	if r := cc.call(m); errno(r) != want {
		cc.t.Fatalf("%T: got %#v, want %v", m, r, want)
	}
}

func (cc *client) walkOK(dir uint64, names ...string) (uint64, proto.Stat) {
	cc.t.Helper()
	r := cc.call(&proto.WalkReq{Dir: dir, Names: names})
	w, ok := r.(*proto.WalkResp)
	if !ok || w.Errno != 0 || len(w.Handles) != len(names) {
		cc.t.Fatalf("walk %v: %#v", names, r)
	}
	return w.Handles[len(names)-1], w.Stats[len(names)-1]
}

func readAllFD(t *testing.T, fd int) string {
	t.Helper()
	var b bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := unix.Pread(fd, buf, int64(b.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return b.String()
		}
		b.Write(buf[:n])
	}
}

// waitExit waits for g and returns its exit code (-1 if killed by a
// signal) or fails after 10s.
func waitExit(t *testing.T, g *Gofer) (code int, sig unix.Signal) {
	t.Helper()
	done := make(chan struct{})
	go func() { g.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("gofer did not exit within 10s")
	}
	ws := g.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return -1, unix.Signal(ws.Signal())
	}
	return ws.ExitStatus(), 0
}

// startHolder starts a process that keeps files open until killed and
// returns its pid.
func startHolder(files []*os.File) (int, error) {
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), childEnv+"="+roleHolder)
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	return cmd.Process.Pid, nil
}

// exerciseRuntime makes the Go runtime (and glibc, when cgo is linked) do
// under the seccomp filter what a long-lived gofer will: start threads,
// grow and shrink the heap, collect garbage, run timers and let sysmon
// re-read the cgroup CPU limit.
func exerciseRuntime() error {
	var wg sync.WaitGroup
	var sink [][]byte
	var mu sync.Mutex
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A locked goroutine needs a thread of its own.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b := make([]byte, 4<<20)
			for j := range b {
				b[j] = byte(j)
			}
			mu.Lock()
			sink = append(sink, b)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}()
	}
	wg.Wait()
	sink = nil
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(1500 * time.Millisecond)
	if len(sink) != 0 {
		return fmt.Errorf("unreachable")
	}
	return nil
}
