// Package syscalls owns the Sentry's system call table: for each x86-64
// number its Linux name, handler, support level and a note, plus the
// argument kinds strace uses to decode it. Handlers live in one file per
// area (sys_file.go, sys_mmap.go, ...); each decodes arguments, calls the
// kernel package that owns the concept, and encodes the result.
// `runsc help syscalls` and the README's coverage table are generated from
// this table.
package syscalls

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/logging"
)

// Support says how completely the Sentry implements a system call.
type Support int

const (
	// Unimplemented calls fail with their errno (ENOSYS unless noted).
	Unimplemented Support = iota
	// Partial calls work for the cases the note does not exclude.
	Partial
	// Full calls behave as Linux's do.
	Full
)

func (s Support) String() string {
	switch s {
	case Full:
		return "full"
	case Partial:
		return "partial"
	}
	return "unimplemented"
}

// handler serves one system call.
type handler func(t *kernel.Task, a *[6]uint64) (uint64, error)

type entry struct {
	fn      handler
	support Support
	note    string
	errno   unix.Errno // for Unimplemented
	args    []argKind
	warned  atomic.Bool
}

var table [numSyscalls]entry

// full registers a fully supported call.
func full(nr uintptr, fn handler, args ...argKind) {
	table[nr] = entry{fn: fn, support: Full, args: args}
}

// partial registers a call with known gaps, named in note.
func partial(nr uintptr, note string, fn handler, args ...argKind) {
	table[nr] = entry{fn: fn, support: Partial, note: note, args: args}
}

// unimplemented registers an explicit refusal with errno and why.
func unimplemented(nr uintptr, errno unix.Errno, note string) {
	table[nr] = entry{support: Unimplemented, errno: errno, note: note}
}

// Name returns the Linux name of system call nr.
func Name(nr uint64) string {
	if nr < numSyscalls && names[nr] != "" {
		return names[nr]
	}
	return fmt.Sprintf("syscall_%d", nr)
}

// Table is the kernel.Dispatcher.
type Table struct {
	Strace bool
}

// Dispatch implements kernel.Dispatcher.
func (tb *Table) Dispatch(t *kernel.Task, nr uint64, args *[6]uint64) uint64 {
	if nr >= numSyscalls {
		return tb.refuse(t, nr, nil, args)
	}
	e := &table[nr]
	if e.fn == nil {
		return tb.refuse(t, nr, e, args)
	}
	if tb.Strace {
		return tb.trace(t, nr, e, args)
	}
	v, err := e.fn(t, args)
	if err != nil {
		return errnoReturn(err)
	}
	return v
}

// refuse answers a call the Sentry does not implement: ENOSYS (or the
// entry's errno), logged once by name.
func (tb *Table) refuse(t *kernel.Task, nr uint64, e *entry, args *[6]uint64) uint64 {
	errno := unix.ENOSYS
	if e != nil && e.errno != 0 {
		errno = e.errno
	}
	if e == nil || !e.warned.Swap(true) {
		note := ""
		if e != nil && e.note != "" {
			note = " (" + e.note + ")"
		}
		logging.Warningf("unsupported system call %s (%d) returns %s%s", Name(nr), nr, errnoName(errno), note)
	}
	if tb.Strace {
		logging.Tracef("[%3d] %s(%s) = -1 %s (unsupported)", t.TID(), Name(nr), formatArgs(t, nil, args, 0, false), errnoName(errno))
	}
	return uint64(-int64(errno))
}

func (tb *Table) trace(t *kernel.Task, nr uint64, e *entry, args *[6]uint64) uint64 {
	before := formatArgs(t, e.args, args, 0, false)
	start := time.Now()
	v, err := e.fn(t, args)
	d := time.Since(start)
	if err != nil {
		logging.Tracef("[%3d] %s(%s) = -1 %s <%v>", t.TID(), Name(nr), before, errnoName(toErrno(err)), d)
		return errnoReturn(err)
	}
	after := before
	if hasOutBuf(e.args) {
		after = formatArgs(t, e.args, args, v, true)
	}
	logging.Tracef("[%3d] %s(%s) = %d (%#x) <%v>", t.TID(), Name(nr), after, int64(v), v, d)
	return v
}

func toErrno(err error) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	logging.Warningf("system call failed with a non-errno error, returning EIO: %v", err)
	return unix.EIO
}

func errnoReturn(err error) uint64 { return uint64(-int64(toErrno(err))) }

func errnoName(e unix.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// Row is one line of the coverage report.
type Row struct {
	Number  int
	Name    string
	Support Support
	Note    string
}

// Report lists every x86-64 system call with its support level.
func Report() []Row {
	var rows []Row
	for nr := 0; nr < numSyscalls; nr++ {
		if names[nr] == "" {
			continue
		}
		e := &table[nr]
		s, note := Unimplemented, "returns ENOSYS"
		if e.fn != nil {
			s, note = e.support, e.note
		} else if e.note != "" {
			note = fmt.Sprintf("returns %s: %s", errnoName(orENOSYS(e.errno)), e.note)
		}
		rows = append(rows, Row{Number: nr, Name: names[nr], Support: s, Note: note})
	}
	return rows
}

func orENOSYS(e unix.Errno) unix.Errno {
	if e == 0 {
		return unix.ENOSYS
	}
	return e
}

// Markdown renders the implemented part of the report as a table plus a
// count of the rest.
func Markdown() string {
	var b strings.Builder
	counts := map[Support]int{}
	b.WriteString("| # | system call | support | note |\n|---|---|---|---|\n")
	for _, r := range Report() {
		counts[r.Support]++
		if r.Support == Unimplemented && r.Note == "returns ENOSYS" {
			continue
		}
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s |\n", r.Number, r.Name, r.Support, r.Note)
	}
	fmt.Fprintf(&b, "\n%d full, %d partial, %d unimplemented (every unlisted call returns ENOSYS and is logged once by name).\n",
		counts[Full], counts[Partial], counts[Unimplemented])
	return b.String()
}

// Markers around the coverage table in the README.
const (
	coverageBegin = "<!-- syscalls:begin -->\n"
	coverageEnd   = "<!-- syscalls:end -->"
)

// ReplaceCoverage returns doc with the text between the coverage markers
// replaced by the current Markdown table.
func ReplaceCoverage(doc string) (string, error) {
	i := strings.Index(doc, coverageBegin)
	j := strings.Index(doc, coverageEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %q ... %q markers", strings.TrimSpace(coverageBegin), coverageEnd)
	}
	return doc[:i+len(coverageBegin)] + Markdown() + doc[j:], nil
}
