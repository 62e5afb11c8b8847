package e2e

import (
	"bytes"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// progTest runs a testdata program natively and sandboxed on every platform
// and variant, requiring the native run to exit with nativeExit and report
// no FAIL lines, and the sandboxed run to match it.
func progTest(t *testing.T, name string, variants []Variant, args []string, opts ...Option) {
	t.Helper()
	progs := make(map[Variant]string)
	for _, v := range variants {
		progs[v] = Program(t, name, v)
	}
	ForEachPlatform(t, func(t *testing.T, platform string) {
		for _, v := range variants {
			t.Run(v.String(), func(t *testing.T) {
				argv := append([]string{progs[v]}, args...)
				Compare(t, platform, argv, opts...)
			})
		}
	})
}

var (
	staticOnly = []Variant{Static}
	bothLinks  = Variants
)

// TestHello: argv (including argv[0], empty, spaced, flag-like and non-ASCII
// arguments) reaches the program unchanged; stdout and stderr are forwarded
// exactly (stderr compared too); exit status 0.
func TestHello(t *testing.T) {
	progTest(t, "hello", bothLinks,
		[]string{"one", "two words", "", "--flag-like", "-x", "ünïcødé ✓", "*", "do"},
		NativeExit(0), CompareStderr())
}

// TestAuxv: initial stack layout, RF_* environment (including an empty value,
// spaces, tabs and '=' in values) and the auxiliary vector properties
// printed by testdata/auxv.c, for static and static-pie executables.
func TestAuxv(t *testing.T) {
	progTest(t, "auxv", bothLinks, []string{"a", "b c"},
		NativeExit(0), Env("RF_EXTRA=x=y=z", "RF_UNICODE=ü"))
}

// TestElfLoad: .data/.bss/.rodata/TLS set up by the loader, the FS base, and
// 4 MiB of stack growth.
func TestElfLoad(t *testing.T) {
	progTest(t, "elfload", bothLinks, nil, NativeExit(0))
}

// TestBrk: raw brk semantics (grow, shrink, zero-fill on regrow, unaligned
// breaks, failures return the current break).
func TestBrk(t *testing.T) {
	progTest(t, "brk", bothLinks, nil, NativeExit(0))
}

// TestMallocChurn: 100 MB of glibc malloc/calloc/realloc/free churn through
// brk and mmap; pattern checksum and calloc zeroing must match native.
func TestMallocChurn(t *testing.T) {
	progTest(t, "malloc_churn", staticOnly, nil, NativeExit(0))
}

// TestMmapPattern: anonymous mmap/munmap/mprotect/mremap/madvise semantics,
// MAP_FIXED(_NOREPLACE), executable memory and EFAULT/EINVAL/ENOMEM paths.
func TestMmapPattern(t *testing.T) {
	progTest(t, "mmap_pattern", staticOnly, nil, NativeExit(0))
}

// TestGetrandom: getrandom lengths, flags, errors and output quality.
func TestGetrandom(t *testing.T) {
	progTest(t, "getrandom", staticOnly, nil, NativeExit(0))
}

// TestClock: monotonic/realtime clocks, resolutions, sleeps and errors.
func TestClock(t *testing.T) {
	progTest(t, "clock", staticOnly, nil, NativeExit(0))
}

// TestProcess: ids, rlimits, affinity, signal disposition/mask state and
// sigaltstack.
func TestProcess(t *testing.T) {
	progTest(t, "process", staticOnly, nil, NativeExit(0))
}

// TestUname: sysname and machine, and well-formedness of the other fields.
func TestUname(t *testing.T) {
	progTest(t, "uname", staticOnly, nil, NativeExit(0))
}

// TestYMM: all sixteen YMM registers survive 20,000 raw system calls.
func TestYMM(t *testing.T) {
	progTest(t, "ymm", staticOnly, nil, NativeExit(0))
}

// TestMmapStress: 100,000 mmap/munmap/mprotect operations keep contents
// and leave no stale mapping behind.
func TestMmapStress(t *testing.T) {
	progTest(t, "mmap_stress", staticOnly, nil, NativeExit(0), Timeout(10*time.Minute))
}

// TestVsyscall: calls to the legacy vsyscall page are served by the
// Sentry with native results (the ptrace stub's seccomp filter traps the
// host's emulation of them).
func TestVsyscall(t *testing.T) {
	if maps, err := os.ReadFile("/proc/self/maps"); err != nil || !strings.Contains(string(maps), "[vsyscall]") {
		t.Skip("this host kernel has no vsyscall page (vsyscall=none), so there is no native behaviour to compare with")
	}
	progTest(t, "vsyscall", staticOnly, nil)
}

// TestWritev: write/writev/pwrite/pread, dup family, fcntl, fstat and
// terminal ioctls on the stdout pipe; stderr compared too.
func TestWritev(t *testing.T) {
	progTest(t, "writev", staticOnly, nil, NativeExit(0), CompareStderr())
}

// TestExitcode: exit statuses from exit(), return from main, _exit, raw
// SYS_exit, and deaths by SIGSEGV/SIGABRT/SIGILL/SIGFPE/SIGTRAP (128+N).
func TestExitcode(t *testing.T) {
	prog := Program(t, "exitcode", Static)
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"exit0", []string{"0"}, 0},
		{"exit1", []string{"1"}, 1},
		{"exit42", []string{"42"}, 42},
		{"exit255", []string{"255"}, 255},
		{"exit256", []string{"256"}, 0},
		{"exit-1", []string{"-1"}, 255},
		{"return7", []string{"return", "7"}, 7},
		{"_exit3", []string{"_exit", "3"}, 3},
		{"sysexit5", []string{"sysexit", "5"}, 5},
		{"segv", []string{"segv"}, 128 + 11},
		{"abort", []string{"abort"}, 128 + 6},
		{"ill", []string{"ill"}, 128 + 4},
		{"fpe", []string{"fpe"}, 128 + 8},
		{"trap", []string{"trap"}, 128 + 5},
		{"usage", nil, 2},
	}
	ForEachPlatform(t, func(t *testing.T, platform string) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				argv := append([]string{prog}, c.args...)
				opts := []Option{NativeExit(c.want)}
				if c.want < 128 {
					// runsc may report a signal death on stderr, like a
					// shell does; otherwise stderr must match exactly.
					opts = append(opts, CompareStderr())
				}
				Compare(t, platform, argv, opts...)
			})
		}
	})
}

// TestBusybox: a real-world static binary: echo, true, false (exit 1),
// uname -m, seq with a lot of output, printf, and cat streaming stdin.
func TestBusybox(t *testing.T) {
	RequireBusybox(t)
	var seq bytes.Buffer
	for i := 1; i <= 20000; i++ {
		seq.WriteString(strconv.Itoa(i))
		seq.WriteByte('\n')
	}
	cases := []struct {
		name  string
		args  []string
		stdin []byte
		want  int
	}{
		{"echo", []string{"echo", "hello", "world"}, nil, 0},
		{"true", []string{"true"}, nil, 0},
		{"false", []string{"false"}, nil, 1},
		{"uname-m", []string{"uname", "-m"}, nil, 0},
		{"seq", []string{"seq", "1", "20000"}, nil, 0},
		{"printf", []string{"printf", "%s-%d-%x\\n", "a", "42", "255"}, nil, 0},
		{"cat-stdin", []string{"cat"}, seq.Bytes(), 0},
	}
	ForEachPlatform(t, func(t *testing.T, platform string) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				argv := append([]string{Busybox}, c.args...)
				opts := []Option{NativeExit(c.want), CompareStderr()}
				if c.stdin != nil {
					opts = append(opts, Stdin(c.stdin))
				}
				native, _ := Compare(t, platform, argv, opts...)
				if c.stdin != nil && !bytes.Equal(native.Stdout, c.stdin) {
					t.Errorf("native busybox cat did not echo its input")
				}
			})
		}
	})
}

// TestStdin: stdin streamed through a pipe reaches the program intact and in
// order: 1 MiB of binary data, a short line and nothing at all, copied by
// read/readv and written back with write/writev; plus a counting mode that
// hashes stdin and checks EOF and ESPIPE on the stdin pipe.
func TestStdin(t *testing.T) {
	prog := Program(t, "stdin_cat", Static)
	big := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	cases := []struct {
		name  string
		args  []string
		stdin []byte
	}{
		{"binary-1MiB", nil, big},
		{"line", nil, []byte("hello through the sandbox\n")},
		{"empty", nil, []byte{}},
		{"count-1MiB", []string{"count"}, big},
		{"count-empty", []string{"count"}, []byte{}},
	}
	ForEachPlatform(t, func(t *testing.T, platform string) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				argv := append([]string{prog}, c.args...)
				native, sandboxed := Compare(t, platform, argv, Stdin(c.stdin), NativeExit(0), CompareStderr())
				if c.args == nil {
					if !bytes.Equal(native.Stdout, c.stdin) {
						t.Errorf("native stdin_cat output is not its input")
					}
					if !bytes.Equal(sandboxed.Stdout, c.stdin) {
						t.Errorf("sandboxed stdin_cat output is not its input:\n%s", Diff("stdin", "runsc stdout", c.stdin, sandboxed.Stdout))
					}
				}
			})
		}
	})
}

// TestProgramsDeterministic runs every testdata program natively twice (both
// link variants) and requires identical output, the expected exit status
// and no FAIL lines. It needs neither root nor runsc: it guards the
// premise of Compare, that a program's output depends only on its inputs.
func TestProgramsDeterministic(t *testing.T) {
	stdin := bytes.Repeat([]byte("0123456789abcdef\n"), 5000)
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"hello", []string{"x", "y z"}, 0},
		{"auxv", []string{"a"}, 0},
		{"elfload", nil, 0},
		{"brk", nil, 0},
		{"malloc_churn", nil, 0},
		{"mmap_pattern", nil, 0},
		{"getrandom", nil, 0},
		{"clock", nil, 0},
		{"process", nil, 0},
		{"uname", nil, 0},
		{"writev", nil, 0},
		{"stdin_cat", nil, 0},
		{"stdin_cat", []string{"count"}, 0},
		{"exitcode", []string{"42"}, 42},
		{"exitcode", []string{"segv"}, 139},
		{"exitcode", []string{"abort"}, 134},
	}
	for _, c := range cases {
		for _, v := range Variants {
			name := strings.Join(append([]string{c.name}, c.args...), "_")
			t.Run(name+"/"+v.String(), func(t *testing.T) {
				argv := append([]string{Program(t, c.name, v)}, c.args...)
				a := RunNative(t, argv, Stdin(stdin))
				b := RunNative(t, argv, Stdin(stdin))
				if a.Code != c.want || a.Err != nil || hasFailLine(a.Stdout) {
					t.Fatalf("native run: exit status %s, want %d\nstdout:\n%s\nstderr:\n%s", a.Status(), c.want, clip(a.Stdout), clip(a.Stderr))
				}
				if a.Code != b.Code || !bytes.Equal(a.Stdout, b.Stdout) || !bytes.Equal(a.Stderr, b.Stderr) {
					t.Errorf("two native runs differ: exit %s vs %s\n%s%s", a.Status(), b.Status(),
						Diff("run 1 stdout", "run 2 stdout", a.Stdout, b.Stdout),
						Diff("run 1 stderr", "run 2 stderr", a.Stderr, b.Stderr))
				}
			})
		}
	}
}
