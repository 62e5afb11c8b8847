package loader

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// elfHeader returns a minimal ELF header with the given class and machine.
func elfHeader(class byte, machine uint16) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = class, 1, 1
	h[16] = 2 // ET_EXEC
	h[18], h[19] = byte(machine), byte(machine>>8)
	h[20] = 1
	return h
}

func TestCheckELFRejectsWithClearErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"text", "not an ELF executable", []byte("hello world, this is not a program at all")},
		{"script", "it is a #! script", []byte("#!/bin/sh\necho hi\n")},
		{"empty", "not an ELF executable", nil},
		{"32-bit", "32-bit ELF", elfHeader(1, 3)},
		{"aarch64", "only x86-64 programs run here", elfHeader(2, 183)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckELF(bytes.NewReader(tc.data), tc.name)
			var le *Error
			if !errors.As(err, &le) || !errors.Is(err, unix.ENOEXEC) {
				t.Fatalf("CheckELF = %v, want a loader error with ENOEXEC", err)
			}
			if !strings.Contains(le.Msg, tc.want) || !strings.HasPrefix(le.Msg, tc.name+": ") {
				t.Errorf("message %q, want it to start with the name and say %q", le.Msg, tc.want)
			}
		})
	}
}

func TestCheckELFAcceptsDynamic(t *testing.T) {
	f, err := os.Open("/bin/ls") // dynamically linked on every Debian
	if err != nil {
		t.Skipf("no /bin/ls to check: %v", err)
	}
	defer f.Close()
	if _, err := CheckELF(f, "/bin/ls"); err != nil {
		t.Fatalf("CheckELF(/bin/ls) = %v; dynamic programs are Load's to handle", err)
	}
}

func TestCheckELFAcceptsStatic(t *testing.T) {
	f, err := os.Open("/bin/busybox")
	if err != nil {
		t.Skipf("no static busybox: %v", err)
	}
	defer f.Close()
	if _, err := CheckELF(f, "/bin/busybox"); err != nil {
		t.Fatalf("CheckELF(busybox) = %v", err)
	}
}
