package loader

import (
	"bytes"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// Opener opens executables by path inside the sandbox (interpreters, #! targets).
type Opener interface {
	// OpenExecutable opens path for execution, following symlinks; it fails
	// with a unix.Errno (ENOENT, EACCES, ENOEXEC...) as execve would.
	OpenExecutable(path string) (Executable, error)
}

// Executable is an opened file the loader reads a program from.
type Executable interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// binprmBufSize is how much of a file Linux reads to choose how to run it
// (BINPRM_BUF_SIZE); a #! line is parsed from these bytes only.
const binprmBufSize = 256

// maxScriptRewrites is how many #! files a chain may hold: Linux's
// exec_binprm gives ELOOP on the sixth rewrite (depth > 5), so a script
// may name a script as its interpreter four levels deep.
const maxScriptRewrites = 5

// ResolveScript follows #! lines from path: it returns the ELF to load,
// the argv to give it, and the executable opened. Up to 4 levels of nesting
// (Linux's limit: the 5th gives ELOOP).
//
// As Linux's binfmt_script does, each #! file turns argv into
// [interpreter, optional argument, script path, argv[1:]...]: the script's
// path replaces argv[0], and the optional argument is the rest of the #!
// line, whitespace-trimmed, as one argument even if it holds spaces. The
// interpreter then gets the same treatment if it is a script. finalPath is
// the ELF's path as the last #! line wrote it, for Args.Name; AT_EXECFN
// (Args.ExecFn) stays the path the caller was given, as on Linux.
//
// A file that is already an ELF comes back unchanged with its argv;
// whether it is a good ELF is CheckELF's question. The caller closes exe.
func ResolveScript(o Opener, path string, argv []string) (finalPath string, newArgv []string, exe Executable, err error) {
	if o == nil {
		return "", nil, nil, errorf(unix.ENOEXEC, "%s: no filesystem to open it from", path)
	}
	cur, what := path, path // what names cur in messages
	for rewrites := 0; ; rewrites++ {
		f, oerr := o.OpenExecutable(cur)
		if oerr != nil {
			return "", nil, nil, openError(oerr, what)
		}
		// Linux opens the interpreter before checking the depth, so a
		// missing one reports ENOENT rather than ELOOP.
		if rewrites > maxScriptRewrites {
			f.Close()
			return "", nil, nil, errorf(unix.ELOOP, "%s: too many levels of #! interpreters (at most %d scripts in a chain)",
				path, maxScriptRewrites)
		}
		var buf [binprmBufSize]byte
		n, rerr := f.ReadAt(buf[:], 0)
		if n < len(buf) && rerr != nil && rerr != io.EOF {
			f.Close()
			return "", nil, nil, errorf(unix.EIO, "%s: reading: %v", what, rerr)
		}
		if n >= 4 && bytes.Equal(buf[:4], []byte("\x7fELF")) {
			return cur, argv, f, nil
		}
		f.Close()
		if n < 2 || buf[0] != '#' || buf[1] != '!' {
			return "", nil, nil, errorf(unix.ENOEXEC, "%s: not an ELF executable or a #! script (exec format error)", what)
		}
		// Bytes past the end of a short file read as NULs, as in Linux's
		// buffer.
		interp, arg, hasArg, perr := parseShebang(buf)
		if perr != "" {
			return "", nil, nil, errorf(unix.ENOEXEC, "%s: %s", what, perr)
		}
		next := []string{interp}
		if hasArg {
			next = append(next, arg)
		}
		next = append(next, cur)
		if len(argv) > 1 {
			next = append(next, argv[1:]...)
		}
		argv = next
		what = fmt.Sprintf("%s: interpreter %s", cur, interp)
		cur = interp
	}
}

func spaceTab(c byte) bool { return c == ' ' || c == '\t' }

// cString is b from i up to its first NUL.
func cString(b []byte, i int) string {
	if n := bytes.IndexByte(b[i:], 0); n >= 0 {
		return string(b[i : i+n])
	}
	return string(b[i:])
}

// parseShebang parses a #! line from the first binprmBufSize bytes of a
// file the way Linux 5.x+ does (fs/binfmt_script.c), keeping its C-string
// semantics: a NUL ends the line, the interpreter name and the argument.
// A line with no newline in the buffer is used as far as it fits unless
// the interpreter name itself may be cut off. It returns why it failed, or
// "".
func parseShebang(buf [binprmBufSize]byte) (interp, arg string, hasArg bool, failed string) {
	last := len(buf) - 1
	// Linux searches for the newline with strnchr, which stops at a NUL.
	line := buf[:]
	if n := bytes.IndexByte(line, 0); n >= 0 {
		line = line[:n]
	}
	end := bytes.IndexByte(line, '\n')
	if end < 0 {
		name := 2
		for name <= last && spaceTab(buf[name]) {
			name++
		}
		if name > last {
			return "", "", false, "#! line names no interpreter"
		}
		// The name must end (space, tab or NUL) inside the buffer, or it
		// may be truncated; the argument may be, the interpreter can
		// re-read the script for it. The buffer's last byte is dropped.
		term := name
		for term <= last && !spaceTab(buf[term]) && buf[term] != 0 {
			term++
		}
		if term > last {
			return "", "", false, fmt.Sprintf("#! line longer than %d bytes cuts off the interpreter name", binprmBufSize)
		}
		end = last
	}
	for spaceTab(buf[end-1]) {
		end--
	}
	buf[end] = 0
	name := 2
	for spaceTab(buf[name]) {
		name++
	}
	if name == end {
		return "", "", false, "#! line names no interpreter"
	}
	sep := name
	for !spaceTab(buf[sep]) && buf[sep] != 0 {
		sep++
	}
	interp = string(buf[name:sep])
	if buf[sep] == 0 {
		return interp, "", false, ""
	}
	argStart := sep
	for spaceTab(buf[argStart]) {
		argStart++
	}
	return interp, cString(buf[:end+1], argStart), true, ""
}
