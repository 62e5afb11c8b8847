package process

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// keptCaps are the capabilities serving needs when the gofer runs as root:
// acting on files whatever their owner and mode (DAC_OVERRIDE,
// DAC_READ_SEARCH, FOWNER: chmod, utimes, O_NOATIME; DAC_READ_SEARCH also
// for linkat(AT_EMPTY_PATH)), giving created files the owner the Sentry
// asks for (CHOWN) and keeping set-group-ID bits on such chmods (FSETID).
var keptCaps = []uintptr{
	unix.CAP_CHOWN,
	unix.CAP_DAC_OVERRIDE,
	unix.CAP_DAC_READ_SEARCH,
	unix.CAP_FOWNER,
	unix.CAP_FSETID,
}

// errNotAllThreads says a credential change could not be applied to every
// thread (the binary links cgo, where the runtime cannot do that).
var errNotAllThreads = errors.New("cannot change the credentials of all threads")

func capMask(caps ...uintptr) (m [2]uint32) {
	for _, c := range caps {
		m[c/32] |= 1 << (c % 32)
	}
	return m
}

func capData(caps ...uintptr) [2]unix.CapUserData {
	m := capMask(caps...)
	var d [2]unix.CapUserData
	for i := range d {
		d[i] = unix.CapUserData{Effective: m[i], Permitted: m[i]}
	}
	return d
}

// stage2Caps are the capabilities stage 2 starts with: keptCaps, plus
// CAP_SYS_CHROOT to enter the new root and CAP_SETPCAP to then drop it
// from the bounding set.
func stage2Caps() []uintptr {
	return append(append([]uintptr(nil), keptCaps...), unix.CAP_SYS_CHROOT, unix.CAP_SETPCAP)
}

// limitCapsForExec shrinks the calling thread's bounding set to
// stage2Caps and clears its inheritable and ambient sets. Run just before
// execve: a root process's permitted set after execve is its bounding set,
// so every thread of the new image starts with exactly these.
func limitCapsForExec() error {
	keep := stage2Caps()
	m := capMask(keep...)
	for c := uintptr(0); c < 64; c++ {
		if m[c/32]&(1<<(c%32)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			if err == unix.EINVAL { // past the kernel's last capability
				break
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	d := capData(keep...)
	for i := range d {
		// capset may only lower the permitted set.
		d[i].Permitted &= cur[i].Permitted
		d[i].Effective &= cur[i].Permitted
	}
	if err := unix.Capset(&hdr, &d[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// dropSetupCaps removes CAP_SYS_CHROOT and CAP_SETPCAP, needed no more
// once in the new root, from every thread. Credentials are per thread and
// only the runtime can reach all threads: that is impossible when cgo is
// linked (errNotAllThreads), and then the seccomp filter is what refuses
// chroot (CAP_SETPCAP only lets a thread drop bounding capabilities or
// fill its inheritable set, which matters for execve, also refused).
func dropSetupCaps() error {
	// CAP_SETPCAP last: dropping from the bounding set needs it.
	for _, c := range []uintptr{unix.CAP_SYS_CHROOT, unix.CAP_SETPCAP} {
		_, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0)
		if e == syscall.ENOTSUP {
			return errNotAllThreads
		}
		if e != 0 {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, e)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	d := capData(keptCaps...)
	for i := range d {
		d[i].Permitted &= cur[i].Permitted
		d[i].Effective &= cur[i].Permitted
	}
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&d[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&d)
	if e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}
