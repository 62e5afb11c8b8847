package syscalls

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/logging"
)

func init() {
	full(unix.SYS_BRK, sysBrk, aHex)
	partial(unix.SYS_MMAP, "anonymous mappings; file-backed mmap comes with the files issue (ENODEV until then)", sysMmap, aHex, aInt, aHex, aHex, aFD, aHex)
	full(unix.SYS_MUNMAP, sysMunmap, aHex, aInt)
	full(unix.SYS_MPROTECT, sysMprotect, aHex, aInt, aHex)
	partial(unix.SYS_MREMAP, "old_size 0 (duplicating a shared mapping) is EINVAL", sysMremap, aHex, aInt, aInt, aHex, aHex)
	full(unix.SYS_MADVISE, sysMadvise, aHex, aInt, aInt)
}

// Linux mmap flags the Sentry reads.
const (
	mapTypeMask      = 0x0f
	mapShared        = 0x01
	mapPrivate       = 0x02
	mapSharedValid   = 0x03
	mapFixed         = 0x10
	mapAnonymous     = 0x20
	map32Bit         = 0x40
	mapNoReserve     = 0x4000
	mapPopulate      = 0x8000
	mapHugeTLB       = 0x40000
	mapFixedNoreplac = 0x100000

	protMask      = unix.PROT_READ | unix.PROT_WRITE | unix.PROT_EXEC
	protGrowsDown = 0x01000000
	protGrowsUp   = 0x02000000
)

// perms converts PROT_* to an access type. On x86-64 write and execute
// permission imply read.
func perms(prot uint64) platform.AccessType {
	w, x := prot&unix.PROT_WRITE != 0, prot&unix.PROT_EXEC != 0
	return platform.AccessType{Read: prot&unix.PROT_READ != 0 || w || x, Write: w, Execute: x}
}

func sysBrk(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return t.MM().Brk(a[0]), nil
}

func sysMmap(t *kernel.Task, a *[6]uint64) (uint64, error) {
	addr, length, prot, flags, fd, off := a[0], a[1], a[2], a[3], int32(a[4]), a[5]
	if prot&^protMask != 0 || length == 0 || off%mm.PageSize != 0 {
		return 0, unix.EINVAL
	}
	typ := flags & mapTypeMask
	if typ != mapShared && typ != mapPrivate && typ != mapSharedValid {
		return 0, unix.EINVAL
	}
	if flags&mapAnonymous == 0 {
		d, err := getFile(t, uint64(fd))
		if err != nil {
			return 0, unix.EBADF
		}
		d.DecRef()
		logging.WarnOnce("mmap-file", "mmap of a file is not supported until the files issue; returning ENODEV")
		return 0, unix.ENODEV
	}
	if flags&mapHugeTLB != 0 {
		return 0, unix.ENOMEM // no huge page pool in the sandbox
	}
	if flags&map32Bit != 0 {
		logging.WarnOnce("mmap-32bit", "mmap MAP_32BIT is not honoured; the mapping may be above 2 GiB")
	}
	return t.MM().MMap(mm.MMapOpts{
		Addr:      addr,
		Length:    length,
		Perms:     perms(prot),
		Shared:    typ != mapPrivate,
		Fixed:     flags&mapFixed != 0,
		NoReplace: flags&mapFixedNoreplac != 0 && flags&mapFixed == 0,
		Populate:  flags&mapPopulate != 0,
		NoReserve: flags&mapNoReserve != 0,
	})
}

func sysMunmap(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return 0, t.MM().MUnmap(a[0], a[1])
}

func sysMprotect(t *kernel.Task, a *[6]uint64) (uint64, error) {
	prot := a[2]
	if prot&^(protMask|protGrowsDown|protGrowsUp) != 0 {
		return 0, unix.EINVAL
	}
	return 0, t.MM().MProtect(a[0], a[1], perms(prot&protMask))
}

func sysMremap(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return t.MM().MRemap(a[0], a[1], a[2], int(a[3]), a[4])
}

func sysMadvise(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return 0, t.MM().MAdvise(a[0], a[1], int(int32(a[2])))
}
