package syscalls

import (
	"crypto/rand"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
)

func init() {
	full(unix.SYS_GETRANDOM, sysGetrandom, aHex, aInt, aHex)
	full(unix.SYS_SYSINFO, sysSysinfo, aHex)
	partial(unix.SYS_SOCKET, "no networking until the networking issue: every address family gives EAFNOSUPPORT", sysSocket, aInt, aHex, aInt)
}

const (
	grndNonblock = 1
	grndRandom   = 2
	grndInsecure = 4
	// getrandomMax is the most one call returns (Linux: INT_MAX >> 6).
	getrandomMax = 33554431
)

func sysGetrandom(t *kernel.Task, a *[6]uint64) (uint64, error) {
	addr, n, flags := a[0], a[1], a[2]
	if flags&^(grndNonblock|grndRandom|grndInsecure) != 0 || flags&(grndRandom|grndInsecure) == grndRandom|grndInsecure {
		return 0, unix.EINVAL
	}
	if n > getrandomMax {
		n = getrandomMax
	}
	if n == 0 {
		return 0, nil
	}
	iovs, err := buffer(t, addr, n, true)
	if err != nil {
		return 0, err
	}
	var done uint64
	for _, b := range iovs {
		if _, err := rand.Read(b); err != nil {
			return 0, unix.EIO
		}
		done += uint64(len(b))
	}
	return done, nil
}

func sysSocket(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return 0, unix.EAFNOSUPPORT
}

// sysSysinfo reports the sandbox's uptime and process count, and the
// host's memory figures (the sandbox may use all of it), as /proc/meminfo
// does.
func sysSysinfo(t *kernel.Task, a *[6]uint64) (uint64, error) {
	var host unix.Sysinfo_t
	if err := unix.Sysinfo(&host); err != nil {
		return 0, err
	}
	si := unix.Sysinfo_t{
		Uptime:    int64(t.Kernel().Uptime().Seconds()),
		Totalram:  host.Totalram,
		Freeram:   host.Freeram,
		Sharedram: host.Sharedram,
		Bufferram: host.Bufferram,
		Totalswap: host.Totalswap,
		Freeswap:  host.Freeswap,
		Procs:     uint16(t.Kernel().NumTasks()),
		Unit:      host.Unit,
	}
	if _, err := t.MM().CopyOut(a[0], unsafeBytes(&si)); err != nil {
		return 0, unix.EFAULT
	}
	return 0, nil
}
