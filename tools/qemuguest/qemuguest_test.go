package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The guest tests build two binaries once: the qemuguest command and the
// static kvmprobe program it runs.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// requireGuest skips unless this machine can boot the guest, and returns
// the paths of the qemuguest command and the kvmprobe program.
func requireGuest(t *testing.T) (qemuguest, kvmprobe string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a qemu TCG guest (about 10 s); skipped in -short mode")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (Debian package qemu-system-x86; make deps installs it)")
	}
	if k, _ := filepath.Glob("/boot/vmlinuz-*"); len(k) == 0 {
		t.Skipf("no /boot/vmlinuz-* guest kernel (Debian package %s; make deps installs it)", kernelPackage)
	}
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox not installed (Debian package busybox-static; make deps installs it)")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "qemuguest-test-")
		if buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{{"qemuguest", "."}, {"kvmprobe", "./kvmprobe"}} {
			cmd := exec.Command(goTool(), "build", "-o", filepath.Join(buildDir, b.out), b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "qemuguest"), filepath.Join(buildDir, "kvmprobe")
}

// runQemuguest runs the command and returns its stdout, stderr and status.
func runQemuguest(t *testing.T, bin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		status = ee.ExitCode()
	default:
		t.Fatalf("running %s: %v", bin, err)
	}
	t.Logf("qemuguest %s: status %d in %.1fs\nstdout:\n%s\nstderr:\n%s",
		strings.Join(args, " "), status, time.Since(start).Seconds(), o.String(), e.String())
	return o.String(), e.String(), status
}

// TestKVMInGuest runs kvmprobe in the guest: /dev/kvm must report API
// version 12 and the capabilities the KVM platform relies on, and run a
// tiny real-mode guest.
func TestKVMInGuest(t *testing.T) {
	qg, probe := requireGuest(t)
	stdout, stderr, status := runQemuguest(t, qg, "-timeout", "2m", "-v", "--", probe)
	if status != 0 {
		t.Errorf("status %d, want 0 (stderr: %s)", status, lastLines(stderr, 15))
	}
	want := map[string]*regexp.Regexp{
		"api":  regexp.MustCompile(`(?m)^KVM_GET_API_VERSION: (\d+) \(err <nil>\)$`),
		"sync": regexp.MustCompile(`(?m)^KVM_CHECK_EXTENSION KVM_CAP_SYNC_REGS\(74\): (\d+) \(err <nil>\)$`),
		"imm":  regexp.MustCompile(`(?m)^KVM_CHECK_EXTENSION KVM_CAP_IMMEDIATE_EXIT\(136\): (\d+) \(err <nil>\)$`),
	}
	got := map[string]int{}
	for k, re := range want {
		m := re.FindStringSubmatch(stdout)
		if m == nil {
			t.Errorf("stdout has no line matching %s", re)
			continue
		}
		got[k], _ = strconv.Atoi(m[1])
	}
	if got["api"] != 12 {
		t.Errorf("KVM_GET_API_VERSION = %d, want 12", got["api"])
	}
	if got["sync"] == 0 || got["imm"] == 0 {
		t.Errorf("KVM_CAP_SYNC_REGS = %d, KVM_CAP_IMMEDIATE_EXIT = %d, want both nonzero", got["sync"], got["imm"])
	}
	for _, line := range []string{
		"tiny guest: KVM_EXIT_IO port 0x10 value 42",
		"tiny guest: KVM_EXIT_HLT at rip 0x1005",
		"result: ok",
	} {
		if !strings.Contains(stdout, line+"\n") {
			t.Errorf("stdout lacks %q", line)
		}
	}
	// Nothing but the program's output on stdout: no kernel console.
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if !strings.HasPrefix(l, "KVM_") && !strings.HasPrefix(l, "tiny guest: ") && l != "result: ok" {
			t.Errorf("unexpected stdout line %q", l)
		}
	}
	if !strings.Contains(stderr, "guest ") || !strings.Contains(stderr, ": kvm ok") {
		t.Errorf("-v stderr lacks the guest's \"kvm ok\" event")
	}
}

// TestExitStatusAndPlumbing checks that the program's exit status comes
// back, and that its arguments, environment, working directory, --file
// files, stdout and stderr all arrive intact.
func TestExitStatusAndPlumbing(t *testing.T) {
	qg, probe := requireGuest(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"one.txt":        "first file\n",
		"tree/a.txt":     "in a tree\n",
		"tree/sub/b.txt": "deeper\n",
		"not-copied.txt": "never seen\n",
		"two.txt":        "second file\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := "it's \"quoted\" $HOME `x`"
	stdout, stderr, status := runQemuguest(t, qg, "-timeout", "2m",
		"--env", "QG_TEST="+env,
		"--env", "QG_FILES=/data/one.txt:/data/tree/a.txt:/data/tree/sub/b.txt:"+filepath.Join(dir, "two.txt"),
		"--file", filepath.Join(dir, "one.txt")+":/data/one.txt",
		"--file", filepath.Join(dir, "tree")+":/data/tree",
		"--file", filepath.Join(dir, "two.txt"),
		"--workdir", "/data",
		"--", probe, "exit", "42", "two words", "", "-x")
	if status != 42 {
		t.Errorf("status %d, want 42 (stderr: %s)", status, lastLines(stderr, 15))
	}
	wantOut := fmt.Sprintf(`args: ["exit" "42" "two words" "" "-x"]
QG_TEST=%q environ=2
cwd: /data
file /data/one.txt: first file
file /data/tree/a.txt: in a tree
file /data/tree/sub/b.txt: deeper
file %s: second file
`, env, filepath.Join(dir, "two.txt"))
	if stdout != wantOut {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, wantOut)
	}
	if stderr != "to stderr\n" {
		t.Errorf("stderr %q, want %q", stderr, "to stderr\n")
	}
}

// TestTimeout checks that an expired timeout kills qemu and fails with the
// guest-failure status.
func TestTimeout(t *testing.T) {
	qg, probe := requireGuest(t)
	start := time.Now()
	_, stderr, status := runQemuguest(t, qg, "-timeout", "1s", "--", probe)
	if status != exitGuest {
		t.Errorf("status %d, want %d", status, exitGuest)
	}
	if !strings.Contains(stderr, "timed out after 1s") {
		t.Errorf("stderr lacks the timeout message")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to time out after 1s", d)
	}
}

// TestRejectsDynamicProgram checks that a dynamically linked program is
// refused before anything boots.
func TestRejectsDynamicProgram(t *testing.T) {
	const dyn = "/bin/sh"
	err := checkStatic(dyn)
	if err == nil {
		t.Skipf("%s is static here; no dynamic binary to try", dyn)
	}
	if !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("checkStatic(%s) = %v, want a dynamically linked error", dyn, err)
	}
	var out, errOut bytes.Buffer
	if st := run([]string{"--", dyn}, &out, &errOut); st != exitSetup || !strings.Contains(errOut.String(), "dynamically linked") {
		t.Errorf("run(-- %s) = %d, stderr %q; want %d and a dynamically linked error", dyn, st, errOut.String(), exitSetup)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestShQuote runs quoted strings through the host's sh, which parses
// quotes as the guest's busybox sh does.
func TestShQuote(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	cases := []string{"", "plain", "two words", "it's", `"dq"`, "$HOME `x` $(y) \\n", "new\nline", "'", "''"}
	var script strings.Builder
	script.WriteString("printf '%s\\0'")
	for _, c := range cases {
		script.WriteString(" " + shQuote(c))
	}
	out, err := exec.Command(sh, "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(cases) {
		t.Fatalf("got %q, want %q", got, cases)
	}
	for i := range cases {
		if got[i] != cases[i] {
			t.Errorf("shQuote(%q) came back as %q", cases[i], got[i])
		}
	}
}

func TestParseFileSpec(t *testing.T) {
	wd, _ := os.Getwd()
	for _, c := range []struct {
		in, host, guest, err string
	}{
		{in: "/a/b", host: "/a/b", guest: "/a/b"},
		{in: "/a/b:/c/d", host: "/a/b", guest: "/c/d"},
		{in: "rel.txt:/x/y", host: filepath.Join(wd, "rel.txt"), guest: "/x/y"},
		{in: "/weird:name", host: "/weird:name", guest: "/weird:name"},
		{in: "/a:/tmp/x", host: "/a", guest: "/tmp/x"},
		{in: "/a:/run/qg/x", err: "/run/qg"},
		{in: "/proc/x", err: "/proc"},
		{in: "/a:/init", err: "init"},
		{in: ":/x", err: "empty"},
	} {
		gf, err := parseFileSpec(c.in)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseFileSpec(%q) = %+v, %v; want error with %q", c.in, gf, err, c.err)
			}
		case err != nil:
			t.Errorf("parseFileSpec(%q): %v", c.in, err)
		case gf.host != c.host || gf.guest != c.guest:
			t.Errorf("parseFileSpec(%q) = %+v, want host %s guest %s", c.in, gf, c.host, c.guest)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range [][2]string{
		{"6.1.0-9-amd64", "6.1.0-56-amd64"},
		{"6.1.0-56-amd64", "6.12.1-1-amd64"},
		{"5.10.0-30-amd64", "6.1.0-1-amd64"},
	} {
		if !versionLess(c[0], c[1]) || versionLess(c[1], c[0]) {
			t.Errorf("want %s < %s", c[0], c[1])
		}
	}
}

// TestCpioArchive lists an archive with busybox cpio, an independent
// reader of the newc format.
func TestCpioArchive(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed (Debian package busybox-static)")
	}
	var buf bytes.Buffer
	c := newCpioWriter(&buf)
	if err := errors.Join(
		c.bytesFile("/a/b/c.txt", 0o644, []byte("hello")),
		c.bytesFile("/a/odd", 0o755, []byte("xyz")),
		c.symlink("/a/link", "b/c.txt"),
		c.charDev("/dev/console", 0o600, 5, 1),
		c.close(),
	); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", buf.Len())
	}
	dir := t.TempDir()
	cmd := exec.Command(bb, "cpio", "-t")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	cmd.Dir = dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("busybox cpio -t: %v\n%s", err, errb.String())
	}
	want := "a\na/b\na/b/c.txt\na/odd\na/link\ndev\ndev/console\n"
	if string(out) != want {
		t.Errorf("busybox cpio -t:\n%s\nwant:\n%s", out, want)
	}
	cmd = exec.Command(bb, "cpio", "-i", "-d", "a/b/c.txt", "a/odd")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("busybox cpio -i: %v\n%s", err, out)
	}
	for name, want := range map[string]string{"a/b/c.txt": "hello", "a/odd": "xyz"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
}
