package loader

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// writeScript writes an executable file with content into dir.
func writeScript(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const trueELF = "/bin/true"

func resolve(t *testing.T, path string, argv ...string) (string, []string, error) {
	t.Helper()
	final, newArgv, exe, err := ResolveScript(hostOpener{}, path, argv)
	if err == nil {
		if exe == nil || exe.Size() == 0 {
			t.Fatalf("ResolveScript(%s) gave no open executable", path)
		}
		exe.Close()
	}
	return final, newArgv, err
}

func TestResolveScriptArgv(t *testing.T) {
	if _, err := os.Stat(trueELF); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name, content string
		want          []string // after the interpreter, before the script path
	}{
		{"plain", "#!/bin/true\necho hi\n", nil},
		{"no-newline", "#!/bin/true", nil},
		{"arg", "#!/bin/true -f\n", []string{"-f"}},
		{"space-before-name", "#! /bin/true -f\n", []string{"-f"}},
		{"arg-with-spaces", "#!/bin/true  one two  \n", []string{"one two"}},
		{"tabs", "#!\t /bin/true\t-a\tb \t\n", []string{"-a\tb"}},
		{"trailing-blanks-only", "#!/bin/true \t \n", nil},
		// A NUL ends the line before the newline; the blank before it
		// still separates an (empty) argument, as on Linux.
		{"nul", "#!/bin/true \x00xx\n", []string{""}},
		// With no newline in the first 256 bytes, the argument is what
		// fits, less the buffer's last byte: 256-12-1.
		{"long-arg", "#!/bin/true " + long + "\n", []string{long[:243]}},
		// A newline just past the buffer: the line is cut the same way.
		{"long-blanks", "#!/bin/true" + strings.Repeat(" ", 244) + "y\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := writeScript(t, dir, tc.name, tc.content)
			final, argv, err := resolve(t, s, "orig0", "a", "b c")
			if err != nil {
				t.Fatal(err)
			}
			want := append(append([]string{trueELF}, tc.want...), s, "a", "b c")
			if final != trueELF || !slices.Equal(argv, want) {
				t.Errorf("got %s %q, want %s %q", final, argv, trueELF, want)
			}
		})
	}
}

func TestResolveScriptELFUnchanged(t *testing.T) {
	if _, err := os.Stat(trueELF); err != nil {
		t.Skip(err)
	}
	final, argv, err := resolve(t, trueELF, "true", "x")
	if err != nil || final != trueELF || !slices.Equal(argv, []string{"true", "x"}) {
		t.Fatalf("ResolveScript(ELF) = %s %q %v, want it unchanged", final, argv, err)
	}
	// An empty argv loses nothing it does not have.
	s := writeScript(t, t.TempDir(), "s", "#!/bin/true\n")
	if _, argv, err := resolve(t, s); err != nil || !slices.Equal(argv, []string{trueELF, s}) {
		t.Fatalf("empty argv: %q %v", argv, err)
	}
}

func TestResolveScriptNesting(t *testing.T) {
	if _, err := os.Stat(trueELF); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	// s0 runs /bin/true; each s<i> names s<i-1> as its interpreter. On
	// Linux s4 (four levels of nesting, five scripts) runs and s5 fails
	// with ELOOP.
	paths := []string{writeScript(t, dir, "s0", "#!/bin/true\n")}
	for i := 1; i <= 5; i++ {
		paths = append(paths, writeScript(t, dir, fmt.Sprintf("s%d", i), "#!"+paths[i-1]+" arg\n"))
	}
	final, argv, err := resolve(t, paths[4], "s4", "x")
	if err != nil {
		t.Fatalf("four levels of nesting: %v", err)
	}
	want := []string{trueELF, paths[0], "arg", paths[1], "arg", paths[2], "arg", paths[3], "arg", paths[4], "x"}
	if final != trueELF || !slices.Equal(argv, want) {
		t.Errorf("got %s %q, want %q", final, argv, want)
	}
	_, _, err = resolve(t, paths[5], "s5")
	wantErr(t, err, unix.ELOOP, paths[5]+": too many levels of #! interpreters")
}

func TestResolveScriptErrors(t *testing.T) {
	dir := t.TempDir()
	text := writeScript(t, dir, "text", "echo not a script\n")
	if err := os.WriteFile(filepath.Join(dir, "plain"), []byte("#!/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, content string
		errno         unix.Errno
		msg           string // after "<script>: "
	}{
		{"missing", "#!/nonexistent\n", unix.ENOENT, "interpreter /nonexistent: no such file or directory"},
		{"cr", "#!/bin/true\r\n", unix.ENOENT, "interpreter /bin/true\r: no such file"},
		{"not-executable", "#!" + filepath.Join(dir, "plain") + "\n", unix.EACCES, "interpreter " + filepath.Join(dir, "plain") + ": permission denied"},
		{"text-interpreter", "#!" + text + "\n", unix.ENOEXEC, "interpreter " + text + ": not an ELF executable or a #! script"},
		{"empty", "#!\n", unix.ENOEXEC, "#! line names no interpreter"},
		{"blank", "#! \t \n", unix.ENOEXEC, "#! line names no interpreter"},
		{"all-blank-buffer", "#!" + strings.Repeat(" ", 300) + "/bin/true\n", unix.ENOEXEC, "#! line names no interpreter"},
		{"name-cut-off", "#!/" + strings.Repeat("a", 300) + "\n", unix.ENOEXEC, "#! line longer than 256 bytes cuts off the interpreter name"},
		// The name ends at the buffer's last byte: it fits, so it is used.
		{"name-just-fits", "#!/" + strings.Repeat("a", 252) + " x\n", unix.ENOENT, "interpreter /" + strings.Repeat("a", 252) + ": no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := writeScript(t, dir, tc.name, tc.content)
			_, _, err := resolve(t, s, "x")
			wantErr(t, err, tc.errno, s+": "+tc.msg)
		})
	}
	_, _, err := resolve(t, text, "text")
	wantErr(t, err, unix.ENOEXEC, text+": not an ELF executable or a #! script (exec format error)")
	_, _, err = resolve(t, filepath.Join(dir, "absent"), "absent")
	wantErr(t, err, unix.ENOENT, filepath.Join(dir, "absent")+": no such file or directory")
	empty := writeScript(t, dir, "empty-file", "")
	_, _, err = resolve(t, empty)
	wantErr(t, err, unix.ENOEXEC, "not an ELF executable or a #! script")
	_, _, _, err = ResolveScript(nil, "/x", nil)
	wantErr(t, err, unix.ENOEXEC, "/x: no filesystem")
}
