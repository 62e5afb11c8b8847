package e2e

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// File benchmarks (testdata/file_bench.c): natively on the host's files,
// and in the sandbox on the same files served by the gofer under the
// memory overlay; writes go to the host's /tmp natively and to the
// overlay's memory in the sandbox. ns/call is per operation; for the 64 KiB
// read and write benchmarks, throughput is 65536 bytes / (ns/call).

// benchArgv runs argv(platform) once per iteration natively and on each
// platform and reports the program's ns_per_call.
func benchArgv(b *testing.B, argv func(platform string) []string) {
	b.Run("native", func(b *testing.B) {
		a := argv("native")
		benchGetpid(b, func() Result { return RunNative(b, a) })
	})
	for _, p := range Platforms() {
		b.Run(p, func(b *testing.B) {
			RequireSandbox(b, p)
			Runsc(b)
			a := argv(p)
			benchGetpid(b, func() Result { return RunSandboxed(b, p, a) })
		})
	}
}

// fewerOnKVM scales a loop count down where each system call costs a
// hundred microseconds (kvm on PVM-style hosts).
func fewerOnKVM(platform string, n int) string {
	if platform == "kvm" {
		n /= 20
	}
	return strconv.Itoa(n)
}

// BenchmarkFileOpenClose: open(O_RDONLY)+close of a file on the root.
func BenchmarkFileOpenClose(b *testing.B) {
	prog := Program(b, "file_bench", Static)
	benchArgv(b, func(p string) []string { return []string{prog, "openclose", "/etc/os-release", fewerOnKVM(p, 20000)} })
}

// BenchmarkFileStat: stat of a file on the root.
func BenchmarkFileStat(b *testing.B) {
	prog := Program(b, "file_bench", Static)
	benchArgv(b, func(p string) []string { return []string{prog, "stat", "/etc/os-release", fewerOnKVM(p, 20000)} })
}

// bigFile makes (once per benchmark) a 256 MB file of non-zero bytes.
func bigFile(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "big.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + 1)
	}
	for i := 0; i < 256; i++ {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkFileRead64K: sequential 64 KiB reads of a 256 MB file (warm
// host page cache: the first native run reads it in).
func BenchmarkFileRead64K(b *testing.B) {
	prog := Program(b, "file_bench", Static)
	big := bigFile(b)
	RunNative(b, []string{prog, "read", big})
	benchArgv(b, func(string) []string { return []string{prog, "read", big} })
}

// BenchmarkFileRead1M: the same file in 1 MiB reads, where the per-call
// cost of the platform is spread over 16 times the bytes.
func BenchmarkFileRead1M(b *testing.B) {
	prog := Program(b, "file_bench", Static)
	big := bigFile(b)
	RunNative(b, []string{prog, "read", big, "1024"})
	benchArgv(b, func(string) []string { return []string{prog, "read", big, "1024"} })
}

// BenchmarkFileWrite64K: sequential 64 KiB writes of a new 256 MB file.
func BenchmarkFileWrite64K(b *testing.B) {
	prog := Program(b, "file_bench", Static)
	dir := b.TempDir()
	benchArgv(b, func(p string) []string { return []string{prog, "write", filepath.Join(dir, "w-"+p), "256"} })
}

// BenchmarkGetdents10k: full listings of a 10,000-entry directory.
func BenchmarkGetdents10k(b *testing.B) {
	prog := Program(b, "file_bench", Static)
	dir := b.TempDir()
	for i := 0; i < 10000; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	benchArgv(b, func(p string) []string { return []string{prog, "getdents", dir, fewerOnKVM(p, 200)} })
}

// BenchmarkTarExtract: Debian's tar -x of a 5,000-file tree (100
// directories of 50 files of 1 KiB); ns/op is the whole run.
func BenchmarkTarExtract(b *testing.B) {
	if _, err := os.Stat("/bin/tar"); err != nil {
		b.Skipf("SKIP: /bin/tar is not installed: %v", err)
	}
	dir := b.TempDir()
	archive := filepath.Join(dir, "tree.tar")
	f, err := os.Create(archive)
	if err != nil {
		b.Fatal(err)
	}
	tw := tar.NewWriter(f)
	body := make([]byte, 1024)
	for d := 0; d < 100; d++ {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("tree/d%03d/", d), Typeflag: tar.TypeDir, Mode: 0o755})
		for i := 0; i < 50; i++ {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("tree/d%03d/f%02d", d, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
			tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	run := func(b *testing.B, runOne func(out string) Result) {
		for b.Loop() {
			out, err := os.MkdirTemp(dir, "x")
			if err != nil {
				b.Fatal(err)
			}
			if r := runOne(out); r.Code != 0 || r.Err != nil {
				b.Fatalf("tar -x: %s\n%s", r.Status(), clip(r.Stderr))
			}
			os.RemoveAll(out)
		}
	}
	b.Run("native", func(b *testing.B) {
		run(b, func(out string) Result { return RunNative(b, []string{"/bin/tar", "-xf", archive, "-C", out}) })
	})
	for _, p := range Platforms() {
		b.Run(p, func(b *testing.B) {
			RequireSandbox(b, p)
			Runsc(b)
			// In the sandbox the tree lands in the memory overlay.
			run(b, func(out string) Result { return RunSandboxed(b, p, []string{"/bin/tar", "-xf", archive, "-C", out}) })
		})
	}
}
