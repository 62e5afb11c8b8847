package e2e

import (
	"strings"
	"testing"
)

// assertCleanFailure checks that a runsc invocation failed the way a CLI
// should: a non-zero exit status below 128 (runsc was not killed by a
// signal), a short message on stderr, and no Go panic or goroutine dump.
func assertCleanFailure(t *testing.T, stderr string, code int) {
	t.Helper()
	if code == 0 {
		t.Errorf("exit status 0, want a failure\nstderr:\n%s", stderr)
	}
	if code < 0 || code >= 128 {
		t.Errorf("exit status %d: runsc crashed or was killed instead of failing cleanly\nstderr:\n%s", code, stderr)
	}
	if strings.TrimSpace(stderr) == "" {
		t.Errorf("stderr is empty, want an error message")
	}
	for _, bad := range []string{"panic:", "goroutine ", "runtime error", "SIGSEGV"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr contains %q (a Go crash, not an error message):\n%s", bad, stderr)
		}
	}
}

// assertOneLine checks that stderr is a single line of message.
func assertOneLine(t *testing.T, stderr string) {
	t.Helper()
	if n := strings.Count(strings.TrimRight(stderr, "\n"), "\n") + 1; n != 1 {
		t.Errorf("stderr has %d lines, want a one-line message:\n%s", n, stderr)
	}
}

// TestDoMissingBinary: runsc do /bin/does-not-exist fails cleanly with a
// one-line message naming the path.
func TestDoMissingBinary(t *testing.T) {
	ForEachPlatform(t, func(t *testing.T, platform string) {
		const path = "/bin/does-not-exist"
		_, stderr, code := RunRunsc(t, "--platform="+platform, "do", path)
		assertCleanFailure(t, stderr, code)
		if !strings.Contains(stderr, path) {
			t.Errorf("stderr does not mention %s:\n%s", path, stderr)
		}
		assertOneLine(t, stderr)
	})
}

// TestDoNotAnExecutable: runsc do /etc/passwd (a text file, not ELF) fails
// cleanly with a one-line message.
func TestDoNotAnExecutable(t *testing.T) {
	ForEachPlatform(t, func(t *testing.T, platform string) {
		_, stderr, code := RunRunsc(t, "--platform="+platform, "do", "/etc/passwd")
		assertCleanFailure(t, stderr, code)
		assertOneLine(t, stderr)
	})
}

// TestDoDirectory: runsc do / (a directory, not an executable file) fails
// cleanly. Not spelled out in the CLI contract, but any other outcome is a bug.
func TestDoDirectory(t *testing.T) {
	ForEachPlatform(t, func(t *testing.T, platform string) {
		_, stderr, code := RunRunsc(t, "--platform="+platform, "do", "/")
		assertCleanFailure(t, stderr, code)
	})
}

// TestDoNoCommand: runsc do with no command fails cleanly (a usage error).
func TestDoNoCommand(t *testing.T) {
	_, stderr, code := RunRunsc(t, "do")
	assertCleanFailure(t, stderr, code)
}

// TestBadPlatform: an unknown platform is a usage error (exit 2) whose
// message lists the valid platforms.
func TestBadPlatform(t *testing.T) {
	_, stderr, code := RunRunsc(t, "--platform=nope", "do", "true")
	if code != 2 {
		t.Errorf("exit status %d, want 2\nstderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "ptrace") {
		t.Errorf("stderr does not name the valid platforms (no \"ptrace\"):\n%s", stderr)
	}
	assertCleanFailure(t, stderr, code)
}

// TestUnknownFlag: an unknown global flag is a usage error (exit 2).
func TestUnknownFlag(t *testing.T) {
	_, stderr, code := RunRunsc(t, "--bogus", "do", "true")
	if code != 2 {
		t.Errorf("exit status %d, want 2\nstderr:\n%s", code, stderr)
	}
	assertCleanFailure(t, stderr, code)
}

// TestVersion: runsc --version succeeds and prints something.
func TestVersion(t *testing.T) {
	stdout, stderr, code := RunRunsc(t, "--version")
	if code != 0 {
		t.Errorf("exit status %d, want 0\nstderr:\n%s", code, stderr)
	}
	if strings.TrimSpace(stdout+stderr) == "" {
		t.Errorf("runsc --version printed nothing")
	}
}
