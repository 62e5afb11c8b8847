// Package e2e owns Ringfence's end-to-end tests: it runs real static Linux
// programs natively and inside the sandbox through the runsc CLI and checks
// that the two runs are indistinguishable (same stdout, same exit status).
// It is the one place such tests live. The test programs are the C files in
// the repository's testdata directory; this file is the shared harness, kept
// in a non-test file so that other test packages can use it too.
//
// The harness builds runsc once per test process (go build ./cmd/runsc, or
// uses $RUNSC if set) and compiles testdata programs with gcc on demand into
// a cache directory keyed by source, flags and compiler.
//
// Environment:
//
//	RUNSC           use this runsc binary instead of building ./cmd/runsc
//	RF_PLATFORMS    platforms to test, comma or space separated (default "ptrace,kvm")
//	RF_RUNSC_FLAGS  extra global runsc flags, space separated (e.g. "--debug --strace")
//	RF_E2E_CACHE    cache directory for compiled test programs
//	RF_E2E_TIMEOUT  per-run timeout as a Go duration (default 2m)
//	RF_E2E_STRICT   if set to 1, missing prerequisites fail tests instead of skipping them
//
// Tests skip, with the reason, when not run as root, when gcc or /bin/busybox
// is missing, or when the platform under test is unavailable (ptrace blocked,
// no /dev/kvm).
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// modulePath is the module whose root the harness looks for.
const modulePath = "github.com/ringfence/ringfence"

// Busybox is the busybox binary the busybox tests run.
const Busybox = "/bin/busybox"

// BaseEnv is the fixed environment given to every program, natively and in
// the sandbox, so that both runs see exactly the same variables.
var BaseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/",
	"RF_TEST=hello from e2e",
	"RF_EMPTY=",
	"RF_SPACES=a  b\tc",
}

// Variant selects how a testdata program is linked.
type Variant int

const (
	// Static is a static, non-PIE executable (ET_EXEC): gcc -static.
	Static Variant = iota
	// StaticPIE is a static position-independent executable (ET_DYN
	// without an interpreter): gcc -static-pie.
	StaticPIE
)

func (v Variant) String() string {
	if v == StaticPIE {
		return "static-pie"
	}
	return "static"
}

func (v Variant) gccFlags() []string {
	if v == StaticPIE {
		return []string{"-O2", "-static-pie", "-fPIE"}
	}
	return []string{"-O2", "-static"}
}

// Variants lists every Variant.
var Variants = []Variant{Static, StaticPIE}

// ---------------------------------------------------------------------------
// Prerequisites

func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("RF_E2E_STRICT") == "1" {
		t.Fatalf("%s (RF_E2E_STRICT=1 turns this skip into a failure)", msg)
	}
	t.Skip(msg)
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		skip(t, "e2e: sandbox tests need root (running as euid %d)", euid)
	}
}

// RequireGCC skips the test unless gcc is on PATH.
func RequireGCC(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		skip(t, "e2e: gcc not found on PATH, cannot build testdata programs: %v", err)
	}
}

// RequireBusybox skips the test unless /bin/busybox exists.
func RequireBusybox(t testing.TB) {
	t.Helper()
	if st, err := os.Stat(Busybox); err != nil || !st.Mode().IsRegular() {
		skip(t, "e2e: %s missing, cannot run busybox tests", Busybox)
	}
}

var ptraceProbe struct {
	once sync.Once
	err  error
}

// probePtrace checks that this process may trace a child: it starts its own
// executable with PTRACE_TRACEME (the child stops at exec) and kills it.
func probePtrace() error {
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil && strings.TrimSpace(string(b)) == "3" {
		return errors.New("kernel.yama.ptrace_scope is 3 (ptrace disabled)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting a traced child: %w", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil
}

// RequirePlatform skips the test when the named sandbox platform cannot work
// on this host. Unknown platform names are left for runsc to reject.
func RequirePlatform(t testing.TB, platform string) {
	t.Helper()
	switch platform {
	case "ptrace":
		ptraceProbe.once.Do(func() { ptraceProbe.err = probePtrace() })
		if ptraceProbe.err != nil {
			skip(t, "e2e: ptrace unavailable: %v", ptraceProbe.err)
		}
	case "kvm":
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			skip(t, "e2e: kvm unavailable: %v", err)
		}
		f.Close()
	}
}

// RequireSandbox skips the test unless sandboxes can run on platform here.
func RequireSandbox(t testing.TB, platform string) {
	t.Helper()
	RequireRoot(t)
	RequirePlatform(t, platform)
}

// Platforms returns the platforms under test, from $RF_PLATFORMS (comma or
// space separated), default "ptrace".
func Platforms() []string {
	f := strings.FieldsFunc(os.Getenv("RF_PLATFORMS"), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(f) == 0 {
		return []string{"ptrace", "kvm"}
	}
	return f
}

// ForEachPlatform runs f as a subtest named after each platform under test,
// skipping platforms that cannot run here.
func ForEachPlatform(t *testing.T, f func(t *testing.T, platform string)) {
	t.Helper()
	for _, p := range Platforms() {
		t.Run(p, func(t *testing.T) {
			RequireSandbox(t, p)
			f(t, p)
		})
	}
}

// ---------------------------------------------------------------------------
// Locations and builds

var rootOnce struct {
	once sync.Once
	dir  string
	err  error
}

// ModuleRoot returns the repository root: the nearest directory above the
// working directory (or, failing that, above this source file) whose go.mod
// declares the Ringfence module.
func ModuleRoot() (string, error) {
	rootOnce.once.Do(func() {
		var starts []string
		if wd, err := os.Getwd(); err == nil {
			starts = append(starts, wd)
		}
		if _, file, _, ok := runtime.Caller(0); ok {
			starts = append(starts, filepath.Dir(file))
		}
		for _, dir := range starts {
			for d := dir; ; d = filepath.Dir(d) {
				if isModuleRoot(d) {
					rootOnce.dir = d
					return
				}
				if filepath.Dir(d) == d {
					break
				}
			}
		}
		rootOnce.err = fmt.Errorf("no go.mod for %s found above %v", modulePath, starts)
	})
	return rootOnce.dir, rootOnce.err
}

func isModuleRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" && strings.Trim(f[1], `"`) == modulePath {
			return true
		}
	}
	return false
}

type runscState struct {
	mu     sync.Mutex
	done   bool
	path   string
	tmpDir string
	err    error
}

var runscBuild runscState

// Runsc returns the path of the runsc binary under test: $RUNSC if set,
// otherwise ./cmd/runsc built once per process into a temporary directory.
// A failed build fails the test (it is never a reason to skip).
func Runsc(t testing.TB) string {
	t.Helper()
	r := &runscBuild
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.done = true
		r.path, r.err = buildRunsc(r)
	}
	if r.err != nil {
		t.Fatalf("e2e: %v", r.err)
	}
	return r.path
}

func buildRunsc(r *runscState) (string, error) {
	if p := os.Getenv("RUNSC"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return "", fmt.Errorf("RUNSC=%s: %v", p, err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("RUNSC=%s is not an executable file", p)
		}
		return abs, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	goTool := "go"
	if _, err := exec.LookPath(goTool); err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "ringfence-e2e-runsc-")
	if err != nil {
		return "", err
	}
	r.tmpDir = dir
	out := filepath.Join(dir, "runsc")
	cmd := exec.Command(goTool, "build", "-o", out, "./cmd/runsc")
	cmd.Dir = root
	// A static runsc: no cgo threads in the Sentry or the gofer.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s ./cmd/runsc (in %s) failed: %v\n%s", out, root, err, b)
	}
	return out, nil
}

// Cleanup removes the temporary runsc build. TestMain calls it after the
// tests; other packages using the harness should do the same.
func Cleanup() {
	r := &runscBuild
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tmpDir != "" {
		os.RemoveAll(r.tmpDir)
		r.tmpDir = ""
	}
	r.done, r.path, r.err = false, "", nil
}

// CacheDir returns the directory compiled test programs are cached in:
// $RF_E2E_CACHE, else <user cache dir>/ringfence-e2e, else a directory in
// the system temporary directory.
func CacheDir() string {
	if d := os.Getenv("RF_E2E_CACHE"); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	if d, err := os.UserCacheDir(); err == nil && filepath.IsAbs(d) {
		return filepath.Join(d, "ringfence-e2e")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("ringfence-e2e-%d", os.Getuid()))
}

var gccVersion struct {
	once sync.Once
	v    string
	err  error
}

var compileLocks sync.Map // output path -> *sync.Mutex

// Program compiles testdata/<name>.c with gcc as variant v (on first use,
// cached across runs) and returns the absolute path of the executable. The
// executable's file name is always name. It skips when gcc is missing and
// fails on compile errors.
func Program(t testing.TB, name string, v Variant) string {
	t.Helper()
	RequireGCC(t)
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	src := filepath.Join(root, "testdata", name+".c")
	source, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("e2e: reading test program: %v", err)
	}
	gccVersion.once.Do(func() {
		out, err := exec.Command("gcc", "--version").Output()
		gccVersion.v, gccVersion.err = string(out), err
	})
	if gccVersion.err != nil {
		t.Fatalf("e2e: gcc --version: %v", gccVersion.err)
	}
	flags := v.gccFlags()
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", gccVersion.v, strings.Join(flags, " "), name)
	h.Write(source)
	// Shared headers are part of every program.
	headers, _ := filepath.Glob(filepath.Join(root, "testdata", "*.h"))
	for _, hdr := range headers {
		b, err := os.ReadFile(hdr)
		if err != nil {
			t.Fatalf("e2e: reading %s: %v", hdr, err)
		}
		h.Write(b)
	}
	key := hex.EncodeToString(h.Sum(nil))[:20]
	dir := filepath.Join(CacheDir(), key)
	out := filepath.Join(dir, name)

	mu, _ := compileLocks.LoadOrStore(out, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() {
		return out
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := append(append([]string{}, flags...), "-o", tmp.Name(), src)
	cmd := exec.Command("gcc", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("e2e: gcc %s failed: %v\n%s", strings.Join(args, " "), err, b)
	}
	if err := checkStatic(tmp.Name(), v); err != nil {
		t.Fatalf("e2e: gcc %s: %v", strings.Join(args, " "), err)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return out
}

// checkStatic verifies that the compiler produced what was asked for.
func checkStatic(path string, v Variant) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("output has a PT_INTERP: not a static executable")
		}
	}
	want := elf.ET_EXEC
	if v == StaticPIE {
		want = elf.ET_DYN
	}
	if f.Type != want {
		return fmt.Errorf("output is %v, want %v", f.Type, want)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Running

// Option adjusts how Compare, RunNative and RunSandboxed run a program.
type Option func(*config)

type config struct {
	stdin         []byte
	env           []string
	cwd           string
	timeout       time.Duration
	compareStderr bool
	nativeExit    *int
	runscFlags    []string
	filter        func([]byte) []byte
}

// Filter makes Compare compare f(stdout) of both runs instead of stdout:
// for output with parts that differ for a stated reason (mount points the
// sandbox provides itself, an order the program does not define).
func Filter(f func([]byte) []byte) Option { return func(c *config) { c.filter = f } }

// Stdin feeds b to the program's standard input (through a pipe). Without
// it, standard input is /dev/null.
func Stdin(b []byte) Option { return func(c *config) { c.stdin = b } }

// Env adds KEY=VALUE pairs to the program's environment (after BaseEnv).
func Env(kv ...string) Option { return func(c *config) { c.env = append(c.env, kv...) } }

// Cwd runs the program in dir (natively as its working directory, in the
// sandbox with runsc do --cwd). The default is "/" for both, without --cwd.
func Cwd(dir string) Option { return func(c *config) { c.cwd = dir } }

// Timeout bounds each run (default $RF_E2E_TIMEOUT or 2 minutes).
func Timeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// CompareStderr makes Compare also require identical stderr.
func CompareStderr() Option { return func(c *config) { c.compareStderr = true } }

// NativeExit asserts, before comparing, that the native run exits with code
// and prints no line starting with "FAIL:" — so a broken test program or
// host is reported as such rather than as a sandbox bug.
func NativeExit(code int) Option { return func(c *config) { c.nativeExit = &code } }

// RunscFlags adds global runsc flags (before "do") for the sandboxed run.
func RunscFlags(flags ...string) Option {
	return func(c *config) { c.runscFlags = append(c.runscFlags, flags...) }
}

func newConfig(opts []Option) *config {
	c := &config{timeout: 2 * time.Minute}
	if s := os.Getenv("RF_E2E_TIMEOUT"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			c.timeout = d
		}
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func (c *config) environ() []string {
	return append(append([]string{}, BaseEnv...), c.env...)
}

// Result is the outcome of one run.
type Result struct {
	Argv     []string // the command line actually executed
	Stdout   []byte
	Stderr   []byte
	Code     int            // exit status; 128+N if killed by signal N
	Signal   syscall.Signal // the signal that killed the process, or 0
	TimedOut bool
	Duration time.Duration
	Err      error // failure to start or wait, other than a non-zero exit
}

// Signaled reports whether the process was killed by a signal.
func (r Result) Signaled() bool { return r.Signal != 0 }

// Status describes how the run ended: the exit status, with the signal name
// for signal deaths, or the timeout or error.
func (r Result) Status() string {
	switch {
	case r.TimedOut:
		return fmt.Sprintf("timed out after %v", r.Duration.Round(time.Millisecond))
	case r.Err != nil:
		return fmt.Sprintf("error: %v", r.Err)
	case r.Signaled():
		return fmt.Sprintf("%d (killed by %s)", r.Code, signalName(r.Signal))
	}
	return fmt.Sprint(r.Code)
}

func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
		syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
		syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
		syscall.SIGSYS: "SIGSYS", syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}

// run executes argv with the given environment and directory and collects
// the result. The process gets its own process group, which is killed on
// timeout and, to reap stragglers, once the process has exited. If
// something in the group keeps stdout or stderr open after the process
// exits, Err reports exec.ErrWaitDelay.
func run(argv, env []string, dir string, stdin []byte, timeout time.Duration) Result {
	noCoreDumps()
	res := Result{Argv: argv}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		// Once the process has exited, but before it is reaped (so its
		// pid, which is also the group id, cannot be reused), kill
		// whatever else is left in its process group.
		waitExitedNoReap(cmd.Process.Pid)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = cmd.Wait()
	}
	res.Duration = time.Since(start)
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	if ctx.Err() == context.DeadlineExceeded {
		res.TimedOut = true
	}
	if cmd.ProcessState == nil {
		res.Err, res.Code = err, -1
		return res
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		res.Signal = ws.Signal()
		res.Code = 128 + int(res.Signal)
	default:
		res.Code = ws.ExitStatus()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		res.Err = err // e.g. exec.ErrWaitDelay
	}
	return res
}

var noCoreOnce sync.Once

// noCoreDumps keeps crashing test programs (exitcode segv, abort, ...) from
// writing core files: it lowers this process's soft RLIMIT_CORE to 0, which
// every child, native or runsc, inherits.
func noCoreDumps() {
	noCoreOnce.Do(func() {
		var rl syscall.Rlimit
		if syscall.Getrlimit(syscall.RLIMIT_CORE, &rl) == nil {
			rl.Cur = 0
			_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &rl)
		}
	})
}

// waitExitedNoReap blocks until process pid has terminated, leaving it a
// zombie: waitid(P_PID, pid, WEXITED|WNOWAIT).
func waitExitedNoReap(pid int) {
	const pPID, wNOWAIT = 1, 0x01000000
	var info [128]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|wNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}

func dirOf(c *config) string {
	if c.cwd != "" {
		return c.cwd
	}
	return "/"
}

// RunNative runs argv directly on the host with the harness environment.
// Signal deaths are reported as 128+N, the way runsc reports them.
func RunNative(t testing.TB, argv []string, opts ...Option) Result {
	t.Helper()
	c := newConfig(opts)
	return run(argv, c.environ(), dirOf(c), c.stdin, c.timeout)
}

// SandboxArgv returns the runsc command line that runs argv on platform.
func SandboxArgv(runsc, platform string, argv []string, opts ...Option) []string {
	c := newConfig(opts)
	return c.sandboxArgv(runsc, platform, argv)
}

func (c *config) sandboxArgv(runsc, platform string, argv []string) []string {
	a := []string{runsc, "--platform=" + platform}
	a = append(a, strings.Fields(os.Getenv("RF_RUNSC_FLAGS"))...)
	a = append(a, c.runscFlags...)
	a = append(a, "do")
	if c.cwd != "" {
		a = append(a, "--cwd", c.cwd)
	}
	for _, kv := range c.environ() {
		a = append(a, "--env", kv)
	}
	return append(a, argv...)
}

// RunSandboxed runs argv under runsc --platform=platform do. The runsc
// process gets the same environment as the program, and every variable is
// also passed with --env, so the program sees it whether or not runsc
// forwards its own environment.
func RunSandboxed(t testing.TB, platform string, argv []string, opts ...Option) Result {
	t.Helper()
	runsc := Runsc(t)
	c := newConfig(opts)
	return run(c.sandboxArgv(runsc, platform, argv), c.environ(), dirOf(c), c.stdin, c.timeout)
}

// RunRunsc runs runsc with exactly args (no stdin, BaseEnv, working
// directory "/") and returns its stdout, stderr and exit code. If runsc
// itself is killed by signal N, code is 128+N and the test log says so.
func RunRunsc(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	runsc := Runsc(t)
	c := newConfig(nil)
	r := run(append([]string{runsc}, args...), c.environ(), "/", nil, c.timeout)
	switch {
	case r.TimedOut:
		t.Fatalf("runsc %s timed out after %v\nstderr:\n%s", strings.Join(args, " "), r.Duration, clip(r.Stderr))
	case r.Err != nil:
		t.Fatalf("runsc %s: %v\nstderr:\n%s", strings.Join(args, " "), r.Err, clip(r.Stderr))
	case r.Signaled():
		t.Logf("runsc %s: runsc itself was killed by %v", strings.Join(args, " "), r.Signal)
	}
	return string(r.Stdout), string(r.Stderr), r.Code
}

// Compare runs argv natively and under runsc on platform with the same
// arguments, environment, working directory and stdin, and fails the test
// unless stdout and the exit status are identical (and stderr too, with
// CompareStderr). runsc must exit normally: it reports the program's death
// by signal N as exit status 128+N, which is what the native side is
// normalised to. argv[0] should be an absolute path. It returns both
// results for further checks.
func Compare(t testing.TB, platform string, argv []string, opts ...Option) (native, sandboxed Result) {
	t.Helper()
	c := newConfig(opts)
	runsc := Runsc(t)

	native = run(argv, c.environ(), dirOf(c), c.stdin, c.timeout)
	if native.TimedOut || native.Err != nil {
		t.Fatalf("native run of %q: %s\nstderr:\n%s", argv, native.Status(), clip(native.Stderr))
	}
	if c.nativeExit != nil {
		if native.Code != *c.nativeExit || hasFailLine(native.Stdout) {
			t.Fatalf("native run of %q is broken (the test program or the host, not the sandbox): exit status %s, want %d\nstdout:\n%s\nstderr:\n%s",
				argv, native.Status(), *c.nativeExit, clip(native.Stdout), clip(native.Stderr))
		}
	}

	sandboxed = run(c.sandboxArgv(runsc, platform, argv), c.environ(), dirOf(c), c.stdin, c.timeout)

	var problems []string
	switch {
	case sandboxed.TimedOut:
		problems = append(problems, fmt.Sprintf("runsc %s", sandboxed.Status()))
	case sandboxed.Err != nil:
		problems = append(problems, fmt.Sprintf("runsc failed: %v", sandboxed.Err))
	case sandboxed.Signaled():
		problems = append(problems, fmt.Sprintf("runsc itself was killed by %v (it should exit with 128+N when the program dies by signal N)", sandboxed.Signal))
	}
	if sandboxed.Code != native.Code && !sandboxed.TimedOut && sandboxed.Err == nil && !sandboxed.Signaled() {
		problems = append(problems, fmt.Sprintf("exit status differs: native %s, runsc %s", native.Status(), sandboxed.Status()))
	}
	nOut, sOut := native.Stdout, sandboxed.Stdout
	if c.filter != nil {
		nOut, sOut = c.filter(nOut), c.filter(sOut)
	}
	if !bytes.Equal(nOut, sOut) {
		problems = append(problems, "stdout differs:\n"+Diff("native stdout", "runsc stdout", nOut, sOut))
	}
	if c.compareStderr && !bytes.Equal(native.Stderr, sandboxed.Stderr) {
		problems = append(problems, "stderr differs:\n"+Diff("native stderr", "runsc stderr", native.Stderr, sandboxed.Stderr))
	}
	if len(problems) == 0 {
		return native, sandboxed
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sandboxed run does not match native run\n  native: %s\n  runsc:  %s\n", shellQuote(argv), shellQuote(sandboxed.Argv))
	for _, p := range problems {
		b.WriteString("* ")
		b.WriteString(strings.TrimRight(p, "\n"))
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "exit status: native %s, runsc %s (%v)\n", native.Status(), sandboxed.Status(), sandboxed.Duration.Round(time.Millisecond))
	if !c.compareStderr {
		fmt.Fprintf(&b, "runsc stderr:\n%s", indent(clip(sandboxed.Stderr)))
		if len(native.Stderr) > 0 {
			fmt.Fprintf(&b, "native stderr:\n%s", indent(clip(native.Stderr)))
		}
	}
	t.Error(b.String())
	return native, sandboxed
}

func hasFailLine(b []byte) bool {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("FAIL:")) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Reporting

const clipHead, clipTail = 6 << 10, 2 << 10

// clip shortens long output to its head and tail.
func clip(b []byte) string {
	if len(b) == 0 {
		return "(empty)\n"
	}
	s := string(b)
	if len(s) > clipHead+clipTail+100 {
		s = fmt.Sprintf("%s\n... (%d bytes omitted) ...\n%s", s[:clipHead], len(s)-clipHead-clipTail, s[len(s)-clipTail:])
	}
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString("    ")
			b.WriteString(l)
		}
	}
	return b.String()
}

func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '/' || r == '-' || r == '_' || r == '.' || r == '=' || r == ',' || r == ':' ||
				r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) < 0 {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// Diff describes how b differs from a: a line diff for text, the first
// differing offset and a hex excerpt for binary data.
func Diff(nameA, nameB string, a, b []byte) string {
	if bytes.Equal(a, b) {
		return "(identical)\n"
	}
	if !isText(a) || !isText(b) {
		return binaryDiff(nameA, nameB, a, b)
	}
	la, lb := splitLines(string(a)), splitLines(string(b))
	const maxLines = 3000
	if len(la) > maxLines || len(lb) > maxLines {
		return firstLineDiff(nameA, nameB, la, lb)
	}
	return unifiedDiff(nameA, nameB, la, lb)
}

func isText(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
}

// splitLines splits s into lines keeping a marker for a missing final newline.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		if strings.HasSuffix(l, "\n") {
			lines[i] = l[:len(l)-1]
		} else {
			lines[i] = l + "\\ (no newline at end)"
		}
	}
	return lines
}

func binaryDiff(nameA, nameB string, a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(i-16, 0)
	excerpt := func(x []byte) string {
		hi := min(i+32, len(x))
		if lo >= hi {
			return "(ends here)"
		}
		return hex.EncodeToString(x[lo:hi])
	}
	return fmt.Sprintf("binary output: %s has %d bytes, %s has %d bytes; first difference at byte %d\n  %s[%d:]: %s\n  %s[%d:]: %s\n",
		nameA, len(a), nameB, len(b), i, nameA, lo, excerpt(a), nameB, lo, excerpt(b))
}

func firstLineDiff(nameA, nameB string, la, lb []string) string {
	i := 0
	for i < len(la) && i < len(lb) && la[i] == lb[i] {
		i++
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%s has %d lines, %s has %d lines; first difference at line %d\n", nameA, len(la), nameB, len(lb), i+1)
	for j := max(i-3, 0); j < i; j++ {
		fmt.Fprintf(&s, "  %s\n", la[j])
	}
	for j := i; j < min(i+10, len(la)); j++ {
		fmt.Fprintf(&s, "- %s\n", la[j])
	}
	for j := i; j < min(i+10, len(lb)); j++ {
		fmt.Fprintf(&s, "+ %s\n", lb[j])
	}
	return s.String()
}

// unifiedDiff is a small LCS-based line diff with three lines of context.
func unifiedDiff(nameA, nameB string, a, b []string) string {
	n, m := len(a), len(b)
	// lcs[i][j] = length of the LCS of a[i:] and b[j:]
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		text string
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i]})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i]})
			i++
		default:
			ops = append(ops, op{'+', b[j]})
			j++
		}
	}
	const context = 3
	keep := make([]bool, len(ops))
	for k, o := range ops {
		if o.kind != ' ' {
			for x := max(k-context, 0); x <= min(k+context, len(ops)-1); x++ {
				keep[x] = true
			}
		}
	}
	var s strings.Builder
	fmt.Fprintf(&s, "--- %s\n+++ %s\n", nameA, nameB)
	skipped := false
	for k, o := range ops {
		if !keep[k] {
			skipped = true
			continue
		}
		if skipped {
			s.WriteString("@@ ... @@\n")
			skipped = false
		}
		fmt.Fprintf(&s, "%c%s\n", o.kind, o.text)
	}
	return s.String()
}
