package process

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// runFilter interprets the classic BPF subset the filter uses over one
// struct seccomp_data, checking every jump and load as the kernel's
// verifier would. It fails the test on anything malformed.
func runFilter(t *testing.T, prog []unix.SockFilter, nr int32, arch uint32, args [6]uint64) uint32 {
	t.Helper()
	var data [64]byte
	binary.LittleEndian.PutUint32(data[0:], uint32(nr))
	binary.LittleEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case ldAbs:
			if in.K%4 != 0 || in.K+4 > uint32(len(data)) {
				t.Fatalf("pc %d: load at %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case jeqK, jgeK, jsetK:
			var cond bool
			switch in.Code {
			case jeqK:
				cond = acc == in.K
			case jgeK:
				cond = acc >= in.K
			default:
				cond = acc&in.K != 0
			}
			off := in.Jf
			if cond {
				off = in.Jt
			}
			if pc+1+int(in.Jt) >= len(prog) || pc+1+int(in.Jf) >= len(prog) {
				t.Fatalf("pc %d: jump past the end", pc)
			}
			pc += int(off)
		case retK:
			return in.K
		default:
			t.Fatalf("pc %d: unexpected instruction %#x", pc, in.Code)
		}
	}
	t.Fatal("program fell off its end")
	return 0
}

func TestSeccompProgram(t *testing.T) {
	p := seccompFilter()
	if len(p) > 4096 || len(p) > 0xffff {
		t.Fatalf("program too long: %d", len(p))
	}
	// Structure: the architecture is checked first, the default is EPERM.
	if p[0] != bpfStmt(ldAbs, seccompArch) || p[1].Code != jeqK || p[1].K != unix.AUDIT_ARCH_X86_64 ||
		p[2] != bpfStmt(retK, retKill) {
		t.Fatalf("program does not start with the architecture check: %+v", p[:3])
	}
	if p[len(p)-1] != bpfStmt(retK, retEPERM) {
		t.Fatalf("default action %+v, want EPERM", p[len(p)-1])
	}
	for i, in := range p {
		if in.Code == ldAbs && in.K != seccompArch && in.K != seccompNr && (in.K < seccompArg0 || in.K >= seccompArg0+48) {
			t.Errorf("pc %d loads offset %d", i, in.K)
		}
	}
	// Lists are disjoint and free of duplicates.
	seen := map[uintptr]string{}
	for _, l := range []struct {
		name string
		nrs  []uintptr
	}{{"allowed", allowedSyscalls}, {"kill", killSyscalls}} {
		for _, n := range l.nrs {
			if prev, ok := seen[n]; ok {
				t.Errorf("syscall %d in %s and %s", n, prev, l.name)
			}
			seen[n] = l.name
		}
	}

	x86 := uint32(unix.AUDIT_ARCH_X86_64)
	cases := []struct {
		name string
		nr   uintptr
		arch uint32
		args [6]uint64
		want uint32
	}{
		{"futex", unix.SYS_FUTEX, x86, [6]uint64{}, retAllow},
		{"recvmsg", unix.SYS_RECVMSG, x86, [6]uint64{}, retAllow},
		{"openat2", unix.SYS_OPENAT2, x86, [6]uint64{}, retAllow},
		{"exit_group", unix.SYS_EXIT_GROUP, x86, [6]uint64{}, retAllow},
		{"openat", unix.SYS_OPENAT, x86, [6]uint64{}, retEPERM},
		{"open", unix.SYS_OPEN, x86, [6]uint64{}, retEPERM},
		{"socket", unix.SYS_SOCKET, x86, [6]uint64{}, retEPERM},
		{"connect", unix.SYS_CONNECT, x86, [6]uint64{}, retEPERM},
		{"execve", unix.SYS_EXECVE, x86, [6]uint64{}, retKill},
		{"execveat", unix.SYS_EXECVEAT, x86, [6]uint64{}, retKill},
		{"ptrace", unix.SYS_PTRACE, x86, [6]uint64{}, retKill},
		{"chroot", unix.SYS_CHROOT, x86, [6]uint64{}, retKill},
		{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, x86, [6]uint64{}, retKill},
		{"fork", unix.SYS_FORK, x86, [6]uint64{}, retKill},
		{"clone thread", unix.SYS_CLONE, x86, [6]uint64{unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM}, retAllow},
		{"clone process", unix.SYS_CLONE, x86, [6]uint64{uint64(unix.SIGCHLD)}, retKill},
		{"clone high bits", unix.SYS_CLONE, x86, [6]uint64{uint64(unix.CLONE_THREAD) << 32}, retKill},
		{"clone3", unix.SYS_CLONE3, x86, [6]uint64{}, retENOSYS},
		{"mmap rw", unix.SYS_MMAP, x86, [6]uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE}, retAllow},
		{"mmap exec", unix.SYS_MMAP, x86, [6]uint64{0, 4096, unix.PROT_READ | unix.PROT_EXEC}, retEPERM},
		{"mprotect none", unix.SYS_MPROTECT, x86, [6]uint64{0, 4096, unix.PROT_NONE}, retAllow},
		{"mprotect exec", unix.SYS_MPROTECT, x86, [6]uint64{0, 4096, unix.PROT_EXEC}, retEPERM},
		{"x32 read", unix.SYS_READ | x32SyscallBit, x86, [6]uint64{}, retKill},
		{"x32 execve", 520 | x32SyscallBit, x86, [6]uint64{}, retKill},
		{"i386 arch", unix.SYS_FUTEX, 0x40000003, [6]uint64{}, retKill},
		{"aarch64 arch", unix.SYS_FUTEX, 0xc00000b7, [6]uint64{}, retKill},
		{"unknown", 999, x86, [6]uint64{}, retEPERM},
	}
	for _, c := range cases {
		if got := runFilter(t, p, int32(c.nr), c.arch, c.args); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
	for _, n := range allowedSyscalls {
		if got := runFilter(t, p, int32(n), x86, [6]uint64{}); got != retAllow {
			t.Errorf("allowed syscall %d: %#x", n, got)
		}
	}
	for _, n := range killSyscalls {
		if got := runFilter(t, p, int32(n), x86, [6]uint64{}); got != retKill {
			t.Errorf("kill syscall %d: %#x", n, got)
		}
	}
}
