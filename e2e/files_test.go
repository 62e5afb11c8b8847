package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The file system call programs (testdata/files_*.c, see testdata/FILES.md)
// run in a fresh directory under /tmp: natively on the host's /tmp, in the
// sandbox on the memory overlay over it.

// TestFilesOpen: open/openat/openat2/creat flags and errors.
func TestFilesOpen(t *testing.T) { progTest(t, "files_open", staticOnly, nil, NativeExit(0)) }

// TestFilesRW: the read/write family, lseek (SEEK_DATA/HOLE), truncate,
// fallocate, sync calls, sendfile, copy_file_range, splice, tee, vmsplice.
func TestFilesRW(t *testing.T) { progTest(t, "files_rw", staticOnly, nil, NativeExit(0)) }

// TestFilesStat: the stat family and statx, file types, nlink, chmod,
// chown, utimes, access, statfs.
func TestFilesStat(t *testing.T) { progTest(t, "files_stat", staticOnly, nil, NativeExit(0)) }

// TestFilesDir: mkdir/rmdir/unlink/rename(2)/link/symlink/readlink,
// chdir/getcwd, getdents64 of a 10,000-entry directory, O_TMPFILE + linkat.
func TestFilesDir(t *testing.T) { progTest(t, "files_dir", staticOnly, nil, NativeExit(0)) }

// TestFilesMmap: file-backed MAP_SHARED write-back visible to read and
// back, MAP_PRIVATE copy-on-write, memfd_create with seals, mremap.
func TestFilesMmap(t *testing.T) { progTest(t, "files_mmap", staticOnly, nil, NativeExit(0)) }

// TestFilesSigbus: touching a file mapping wholly past EOF kills with
// SIGBUS (exit status 128+7).
func TestFilesSigbus(t *testing.T) { progTest(t, "files_sigbus", staticOnly, nil, NativeExit(135)) }

// TestFilesLock: flock, POSIX record locks and OFD locks.
func TestFilesLock(t *testing.T) { progTest(t, "files_lock", staticOnly, nil, NativeExit(0)) }

// TestFilesMisc: xattrs, inotify, FIONREAD/FIOCLEX/FIONBIO, /dev nodes,
// FIFOs, /proc/self/fd and exe, mount and umount of a tmpfs.
func TestFilesMisc(t *testing.T) { progTest(t, "files_misc", staticOnly, nil, NativeExit(0)) }

// requireHostProgram skips unless path exists on the host (Debian's
// programs the dynamic tests run).
func requireHostProgram(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		skip(t, "%s is not installed (make deps installs it): %v", path, err)
	}
}

// dropLines removes lines for which drop reports true.
func dropLines(drop func(line string) bool) func([]byte) []byte {
	return func(b []byte) []byte {
		var out []string
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if l != "" && !drop(strings.TrimRight(l, "\n")) {
				out = append(out, l)
			}
		}
		return []byte(strings.Join(out, ""))
	}
}

// sortLines compares output whose order the program does not define
// (directory order differs between the host's filesystem and the
// sandbox's overlay).
func sortLines(b []byte) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	sort.Strings(lines)
	return []byte(strings.Join(lines, ""))
}

// TestDebianLs: Debian's dynamically linked ls lists / with the same
// names, types, modes, owners, sizes and times as natively. The lines of
// ".", "..", "dev", "proc" and "sys" differ by design: the sandbox's root
// directory is its overlay's and those are its own mounts; "total" sums
// their blocks.
func TestDebianLs(t *testing.T) {
	requireHostProgram(t, "/bin/ls")
	ownMounts := map[string]bool{".": true, "..": true, "dev": true, "proc": true, "sys": true}
	filter := dropLines(func(l string) bool {
		f := strings.Fields(l)
		return strings.HasPrefix(l, "total ") || len(f) > 0 && ownMounts[f[len(f)-1]]
	})
	ForEachPlatform(t, func(t *testing.T, platform string) {
		Compare(t, platform, []string{"/bin/ls", "-la", "--time-style=full-iso", "/"}, NativeExit(0), Filter(filter))
	})
}

// TestDebianCat: cat of a config file.
func TestDebianCat(t *testing.T) {
	requireHostProgram(t, "/bin/cat")
	ForEachPlatform(t, func(t *testing.T, platform string) {
		Compare(t, platform, []string{"/bin/cat", "/etc/os-release"}, NativeExit(0), CompareStderr())
	})
}

// TestDebianFind: find over /usr/lib (tens of thousands of names here),
// in sorted order since directory order is the filesystem's.
func TestDebianFind(t *testing.T) {
	requireHostProgram(t, "/usr/bin/find")
	ForEachPlatform(t, func(t *testing.T, platform string) {
		Compare(t, platform, []string{"/usr/bin/find", "/usr/lib", "-name", "*.so"},
			NativeExit(0), Filter(sortLines), Timeout(5*time.Minute))
	})
}

// bigWordFile writes a file of about mb megabytes of pseudo-random words,
// one per line, with many repeats.
func bigWordFile(t *testing.T, mb int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "words.txt")
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < mb<<20 {
		fmt.Fprintf(&b, "w%06d\n", r.IntN(200000))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDebianSortUniq: sort --parallel=1 and uniq -c of a 50 MB file.
func TestDebianSortUniq(t *testing.T) {
	requireHostProgram(t, "/usr/bin/sort")
	requireHostProgram(t, "/usr/bin/uniq")
	words := bigWordFile(t, 50)
	sorted := filepath.Join(filepath.Dir(words), "sorted.txt")
	if out, err := exec.Command("/usr/bin/sort", "--parallel=1", "-o", sorted, words).CombinedOutput(); err != nil {
		t.Fatalf("native sort: %v\n%s", err, out)
	}
	ForEachPlatform(t, func(t *testing.T, platform string) {
		Compare(t, platform, []string{"/usr/bin/sort", "--parallel=1", words}, NativeExit(0), Env("LC_ALL=C"), Timeout(5*time.Minute))
		Compare(t, platform, []string{"/usr/bin/uniq", "-c", sorted}, NativeExit(0), Env("LC_ALL=C"), Timeout(5*time.Minute))
	})
}

// pythonWork does real work with json, sqlite3 (10,000 rows in a database
// under /tmp), tempfile, pathlib and zlib, printing only properties.
const pythonWork = `
import json, sqlite3, tempfile, pathlib, zlib, os, shutil
d = pathlib.Path(tempfile.mkdtemp(prefix="rf-py-"))
con = sqlite3.connect(str(d / "db.sqlite"))
con.execute("create table t (id integer primary key, name text, v real)")
con.executemany("insert into t (name, v) values (?, ?)", [("n%d" % i, i * 0.5) for i in range(10000)])
con.commit()
print(con.execute("select count(*), sum(v), max(name), min(id) from t").fetchone())
con.execute("create index iv on t(v)")
print(con.execute("select name from t where v between 100 and 101 order by v").fetchall())
con.close()
print("db bytes > 100000:", (d / "db.sqlite").stat().st_size > 100000)
data = json.dumps({"rows": 10000, "items": list(range(100))}, sort_keys=True).encode()
z = zlib.compress(data * 1000, 9)
print(len(data), zlib.decompress(z) == data * 1000, zlib.crc32(data), zlib.adler32(data))
(d / "a.json").write_text(json.dumps({"k": [1, 2, 3]}))
print(json.loads((d / "a.json").read_text()))
(d / "sub" / "deep").mkdir(parents=True)
(d / "sub" / "deep" / "f.txt").write_bytes(b"x" * 4097)
print(sorted(str(p.relative_to(d)) for p in d.rglob("*")))
with tempfile.NamedTemporaryFile(dir=d, delete=False) as f:
    f.write(b"hello")
print(os.path.getsize(f.name), os.path.exists(f.name))
os.rename(f.name, d / "renamed")
print(sorted(p.name for p in d.iterdir()))
shutil.rmtree(d)
print("removed:", not d.exists())
`

// TestDebianPython: python3 -c doing the work above.
func TestDebianPython(t *testing.T) {
	requireHostProgram(t, "/usr/bin/python3")
	ForEachPlatform(t, func(t *testing.T, platform string) {
		Compare(t, platform, []string{"/usr/bin/python3", "-c", pythonWork}, NativeExit(0), CompareStderr(), Timeout(5*time.Minute))
	})
}

// perlWork writes, reads, renames and removes files.
const perlWork = `
my $d = "/tmp/rf-perl-$$";
mkdir $d or die "mkdir: $!";
open(my $f, ">", "$d/a.txt") or die "open: $!";
print $f "line $_\n" for 1..10000;
close $f;
open($f, ">>", "$d/a.txt") or die; print $f "tail\n"; close $f;
open($f, "<", "$d/a.txt") or die;
my ($n, $s) = (0, 0);
while (<$f>) { $n++; $s += $1 if /(\d+)/ }
close $f;
rename "$d/a.txt", "$d/b.txt" or die "rename: $!";
my @st = stat "$d/b.txt";
printf "%d lines, sum %d, size %d, a gone %d\n", $n, $s, $st[7], !-e "$d/a.txt";
opendir(my $dh, $d) or die; my @names = sort grep { !/^\./ } readdir $dh; closedir $dh;
print "@names\n";
unlink "$d/b.txt" or die; rmdir $d or die "rmdir: $!";
print "removed ", (-e $d ? 0 : 1), "\n";
`

// TestDebianPerl: perl -e reading and writing files.
func TestDebianPerl(t *testing.T) {
	requireHostProgram(t, "/usr/bin/perl")
	ForEachPlatform(t, func(t *testing.T, platform string) {
		Compare(t, platform, []string{"/usr/bin/perl", "-e", perlWork}, NativeExit(0), CompareStderr())
	})
}

// TestBash: Debian's bash runs builtins, reads a file, and reports its
// version the same way (bash itself is dynamically linked).
func TestBash(t *testing.T) {
	requireHostProgram(t, "/bin/bash")
	script := `echo "$BASH_VERSION"; read -r first < /etc/os-release; echo "$first"; x=0; for ((i=0;i<1000;i++)); do x=$((x+i)); done; echo $x; printf '%s\n' /etc/host*`
	ForEachPlatform(t, func(t *testing.T, platform string) {
		Compare(t, platform, []string{"/bin/bash", "--norc", "-c", script}, NativeExit(0), CompareStderr())
	})
}

// TestScripts: runsc do of #! scripts, with and without an argument and
// nested (a script whose interpreter is a script) up to Linux's limit.
func TestScripts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("plain", "#!/bin/cat\nbody of plain\n")
	witharg := write("witharg", "#!/usr/bin/head -n2\nline one\nline two\nline three\n")
	level1 := write("level1", "#!"+plain+"\n")
	level2 := write("level2", "#!"+level1+"\n")
	level3 := write("level3", "#!"+level2+"\n")
	notexec := filepath.Join(dir, "missing-interp")
	os.WriteFile(notexec, []byte("#!/nonexistent/interp\n"), 0o755)
	ForEachPlatform(t, func(t *testing.T, platform string) {
		for _, s := range []string{plain, witharg, level1, level3} {
			Compare(t, platform, []string{s, "extra arg"}, CompareStderr())
		}
		stdout, stderr, code := RunRunsc(t, "--platform="+platform, "do", notexec)
		if code != 127 || !strings.Contains(stderr, "/nonexistent/interp") {
			t.Errorf("script with a missing interpreter: status %d, stdout %q, stderr %q; want 127 naming the interpreter", code, stdout, stderr)
		}
	})
}

// TestOverlayWritesStayInSandbox: a write under / lands in the memory
// overlay and is gone when the sandbox exits; the host file is untouched.
func TestOverlayWritesStayInSandbox(t *testing.T) {
	RequireBusybox(t)
	dir := t.TempDir()
	hostFile := filepath.Join(dir, "file.txt")
	if err := os.WriteFile(hostFile, []byte("original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	created := filepath.Join(dir, "created.txt")
	ForEachPlatform(t, func(t *testing.T, platform string) {
		// The sandbox sees its own write and its own new file...
		// (Shell builtins only: fork comes with the process issue.)
		stdout, stderr, code := RunRunsc(t, "--platform="+platform, "do", "busybox", "sh", "-c",
			"echo changed > "+hostFile+" && echo new > "+created+" && read a < "+hostFile+" && read b < "+created+" && echo $a $b")
		if code != 0 || stdout != "changed new\n" {
			t.Fatalf("in the sandbox: status %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		// ...and the host sees neither.
		if b, _ := os.ReadFile(hostFile); string(b) != "original\n" {
			t.Errorf("host file changed to %q: the overlay let a write through", b)
		}
		if _, err := os.Stat(created); err == nil {
			t.Errorf("%s exists on the host: the overlay let a create through", created)
		}
	})
}

// TestVolumeWritesReachHost: --volume HOST:GUEST bind-mounts a host
// directory; writes to it are kept on the host, and :ro refuses them.
func TestVolumeWritesReachHost(t *testing.T) {
	RequireBusybox(t)
	host := t.TempDir()
	ForEachPlatform(t, func(t *testing.T, platform string) {
		kept := filepath.Join(host, "kept-"+platform)
		stdout, stderr, code := RunRunsc(t, "--platform="+platform, "do", "--volume", host+":/mnt/rf-volume",
			"busybox", "sh", "-c", "echo kept > /mnt/rf-volume/kept-"+platform+" && read a < /mnt/rf-volume/kept-"+platform+" && echo $a")
		if code != 0 || stdout != "kept\n" {
			t.Fatalf("status %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if b, err := os.ReadFile(kept); err != nil || string(b) != "kept\n" {
			t.Errorf("host copy of the volume write: %q, %v; want \"kept\\n\"", b, err)
		}
		_, stderr, code = RunRunsc(t, "--platform="+platform, "do", "--volume", host+":/mnt/rf-volume:ro",
			"busybox", "sh", "-c", "echo no > /mnt/rf-volume/refused")
		if code == 0 || !strings.Contains(stderr, "Read-only file system") {
			t.Errorf("write to a :ro volume: status %d, stderr %q; want a failure with EROFS", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(host, "refused")); err == nil {
			t.Errorf("a write to a :ro volume reached the host")
		}
	})
}

// TestVolumeErrors: bad --volume values are usage errors naming the
// problem.
func TestVolumeErrors(t *testing.T) {
	for _, v := range []string{"/nonexistent-rf:/x", "relative", "/tmp:relative", "/tmp:/x:bad"} {
		_, stderr, code := RunRunsc(t, "do", "--volume", v, "/bin/true")
		if code != 2 || !strings.Contains(stderr, "--volume") {
			t.Errorf("--volume %q: status %d, stderr %q; want 2 and a message about --volume", v, code, stderr)
		}
	}
}

// TestPivotRoot: pivot_root into a tmpfs with the old root under /old,
// then detach it (natively in a private mount namespace of its own).
func TestPivotRoot(t *testing.T) { progTest(t, "pivot_root", staticOnly, nil, NativeExit(0)) }

// TestFileAccessShared: with --file-access=shared, a file changed on the
// host while the sandbox runs is seen with its new size and contents.
func TestFileAccessShared(t *testing.T) {
	prog := Program(t, "reread", Static)
	ForEachPlatform(t, func(t *testing.T, platform string) {
		file := filepath.Join(t.TempDir(), "data.txt")
		if err := os.WriteFile(file, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(Runsc(t), "--platform="+platform, "--file-access=shared", "do", prog, file)
		var out syncBuffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Change the file once the program has read it the first time.
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), "old") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := os.WriteFile(file, []byte("new and longer\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("runsc: %v\n%s", err, out.String())
		}
		want := "size 4 read 4: old\nsize 15 read 15: new and longer\n"
		if out.String() != want {
			t.Errorf("output %q, want %q", out.String(), want)
		}
	})
}

// TestOverlayNone: with --overlay=none the root is served read-write, so a
// write under / reaches the host.
func TestOverlayNone(t *testing.T) {
	RequireBusybox(t)
	ForEachPlatform(t, func(t *testing.T, platform string) {
		file := filepath.Join(t.TempDir(), "written")
		_, stderr, code := RunRunsc(t, "--platform="+platform, "--overlay=none", "do", "busybox", "sh", "-c", "echo through > "+file)
		if code != 0 {
			t.Fatalf("status %d, stderr %q", code, stderr)
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != "through\n" {
			t.Errorf("host file: %q, %v; want \"through\\n\"", b, err)
		}
	})
}

// syncBuffer is a bytes.Buffer a running command writes while the test
// reads it.
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

// TestPtyPair: a pseudo-terminal pair from /dev/ptmx and /dev/pts: the
// line discipline (canonical editing, echo, ONLCR, raw mode, VMIN/VTIME),
// window sizes, flushing and hang-up, compared with the host's.
func TestPtyPair(t *testing.T) { progTest(t, "pty_pair", bothLinks, nil, NativeExit(0)) }

// TestProcSelf: /proc and /sys as a program sees them — limits, status,
// cmdline, comm, fd and fdinfo, cwd/exe/root links, maps, CPU and memory
// figures, hostname — generated by the Sentry, the same as the host's.
// (It also lists /proc/self/fd while holding that directory open, which
// once recursed in the Sentry.)
func TestProcSelf(t *testing.T) { progTest(t, "proc_self", bothLinks, nil, NativeExit(0)) }

// TestPathLookupInSandbox: a bare command name is looked up in the
// sandbox's PATH, so a program only present in a --volume runs, and a
// missing one exits 127 with one line.
func TestPathLookupInSandbox(t *testing.T) {
	prog := Program(t, "hello", Static)
	dir := t.TempDir()
	data, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rf-hello-in-volume"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	ForEachPlatform(t, func(t *testing.T, platform string) {
		stdout, stderr, code := RunRunsc(t, "--platform="+platform, "do", "--volume", dir+":/opt/rf-volume-bin",
			"--env", "PATH=/opt/rf-volume-bin:/usr/bin:/bin", "rf-hello-in-volume")
		if code != 0 || !strings.HasPrefix(stdout, "hello, world\n") {
			t.Errorf("status %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		_, stderr, code = RunRunsc(t, "--platform="+platform, "do", "rf-no-such-command")
		if code != 127 || !strings.Contains(stderr, "rf-no-such-command: command not found in PATH") {
			t.Errorf("missing command: status %d, stderr %q; want 127 and a one-line message", code, stderr)
		}
	})
}
