package syscalls

import (
	"os"
	"strings"
	"testing"
)

// TestTableIsConsistent checks the declarative table: every entry names a
// real x86-64 call, partial and refused entries say why, and the report
// and Markdown cover what the table holds.
func TestTableIsConsistent(t *testing.T) {
	for nr := range table {
		e := &table[nr]
		if e.fn == nil && e.note == "" {
			continue
		}
		if names[nr] == "" {
			t.Errorf("entry %d has no Linux name", nr)
		}
		if e.support == Partial && e.note == "" {
			t.Errorf("%s is partial without a note saying what is missing", names[nr])
		}
		if e.fn == nil && e.support != Unimplemented {
			t.Errorf("%s has no handler but claims %v", names[nr], e.support)
		}
		if e.args != nil && len(e.args) > 6 {
			t.Errorf("%s declares %d strace args", names[nr], len(e.args))
		}
	}
	md := Markdown()
	for _, want := range []string{"| 0 | `read` | full |", "| 334 | `rseq` | unimplemented |", "`mmap` | partial"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if Name(39) != "getpid" || Name(9999) != "syscall_9999" {
		t.Errorf("Name(39) = %q, Name(9999) = %q", Name(39), Name(9999))
	}
}

// TestREADMECoverageIsCurrent fails when the README's coverage table no
// longer matches the table in the code; `make readme` fixes it.
func TestREADMECoverageIsCurrent(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("reading README: %v", err)
	}
	want, err := ReplaceCoverage(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if want != string(b) {
		t.Fatal("README's system call table is stale: run `make readme`")
	}
}
