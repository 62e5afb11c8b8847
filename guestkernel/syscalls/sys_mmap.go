package syscalls

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/vfs"
	"github.com/ringfence/ringfence/logging"
)

func init() {
	full(unix.SYS_BRK, sysBrk, aHex)
	partial(unix.SYS_MMAP, "files whose filesystem cannot map them fail with ENODEV; MAP_32BIT is not honoured", sysMmap, aHex, aInt, aHex, aHex, aFD, aHex)
	full(unix.SYS_MUNMAP, sysMunmap, aHex, aInt)
	full(unix.SYS_MPROTECT, sysMprotect, aHex, aInt, aHex)
	partial(unix.SYS_MREMAP, "old_size 0 duplicates shared file mappings only (EINVAL for shared anonymous memory)", sysMremap, aHex, aInt, aInt, aHex, aHex)
	full(unix.SYS_MADVISE, sysMadvise, aHex, aInt, aInt)
	full(unix.SYS_MSYNC, sysMsync, aHex, aInt, aHex)
	partial(unix.SYS_MINCORE, "pages of file mappings are always reported resident", sysMincore, aHex, aInt, aHex)
	partial(unix.SYS_MLOCK, mlockNote, sysMlock, aHex, aInt)
	partial(unix.SYS_MLOCK2, mlockNote, sysMlock2, aHex, aInt, aHex)
	partial(unix.SYS_MUNLOCK, mlockNote, sysMunlock, aHex, aInt)
	partial(unix.SYS_MLOCKALL, mlockNote, sysMlockall, aHex)
	partial(unix.SYS_MUNLOCKALL, mlockNote, sysMunlockall)
}

// mlockNote says what the mlock family leaves out: the Sentry never swaps
// app memory, so locking only checks its arguments.
const mlockNote = "checks arguments only: no RLIMIT_MEMLOCK accounting and no populating (the Sentry never swaps)"

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
	if flags&mapHugeTLB != 0 {
		return 0, unix.ENOMEM // no huge page pool in the sandbox
	}
	if flags&map32Bit != 0 {
		logging.WarnOnce("mmap-32bit", "mmap MAP_32BIT is not honoured; the mapping may be above 2 GiB")
	}
	opts := mm.MMapOpts{
		Addr:      addr,
		Length:    length,
		Perms:     perms(prot),
		Shared:    typ != mapPrivate,
		Fixed:     flags&mapFixed != 0,
		NoReplace: flags&mapFixedNoreplac != 0 && flags&mapFixed == 0,
		Populate:  flags&mapPopulate != 0,
		NoReserve: flags&mapNoReserve != 0,
		Offset:    off, // file mappings only
	}
	if flags&mapAnonymous == 0 {
		d, err := getFile(t, uint64(fd))
		if err != nil {
			return 0, unix.EBADF
		}
		defer d.DecRef()
		if err := configureFileMap(t, d, &opts); err != nil {
			return 0, err
		}
	}
	return t.MM().MMap(opts)
}

// configureFileMap fills in opts for a mapping of d at opts.Offset after
// Linux's open-mode checks. The file's vfs.MMapper sets opts.Mappable (or
// leaves it nil for anonymous memory), and may set Name (the path, for
// /proc/PID/maps) or narrow MaxPerms; files without one fail with ENODEV,
// as Linux's do.
func configureFileMap(t *kernel.Task, d *kernel.FileDescription, opts *mm.MMapOpts) error {
	fm, ok := d.File.(vfs.MMapper)
	if !ok {
		if st, err := d.Stat(); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			logging.WarnOnce("mmap-file", "mmap of a file its filesystem cannot map yet; returning ENODEV")
		}
		return unix.ENODEV
	}
	// Any mapping reads the file; a shared writable one writes it.
	if !readable(d) || (opts.Shared && opts.Perms.Write && !writable(d)) {
		return unix.EACCES
	}
	opts.MaxPerms = platform.AccessType{Read: true, Write: writable(d), Execute: true}
	if st, err := d.Stat(); err == nil {
		opts.Dev, opts.Ino = st.Dev, st.Ino
	}
	// The path as of the mmap, for /proc/PID/maps (Linux's follows
	// renames; this does not).
	if vd := d.VirtualDentry(); vd.Ok() {
		opts.Name = t.Kernel().VFS.PathOf(t.FSContext().Root(), vd)
	}
	if err := fm.ConfigureMMap(t, opts); err != nil {
		return err
	}
	if opts.Mappable == nil && opts.Shared {
		// Anonymous shared memory (/dev/zero): Linux names it after its
		// shmem file, "/dev/zero (deleted)", as VMA.MapsLine does.
		opts.Name = ""
	}
	return nil
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

func sysMsync(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return 0, t.MM().MSync(a[0], a[1], int(a[2]))
}

// mincoreChunk bounds the Sentry's buffer for one mincore pass.
const mincoreChunk = 4096

func sysMincore(t *kernel.Task, a *[6]uint64) (uint64, error) {
	addr, length, vecAddr := a[0], a[1], a[2]
	if addr%mm.PageSize != 0 {
		return 0, unix.EINVAL
	}
	if addr+length < addr {
		return 0, unix.ENOMEM
	}
	pages := length/mm.PageSize + min(length%mm.PageSize, 1)
	var buf [mincoreChunk]byte
	for done := uint64(0); done < pages; {
		n := min(pages-done, mincoreChunk)
		if err := t.MM().MInCore(addr+done*mm.PageSize, buf[:n]); err != nil {
			return 0, err
		}
		if _, err := t.MM().CopyOut(vecAddr+done, buf[:n]); err != nil {
			return 0, unix.EFAULT
		}
		done += n
	}
	return 0, nil
}

// Linux mlock2 and mlockall flags.
const (
	mlockOnfault = 1
	mclCurrent   = 1
	mclFuture    = 2
	mclOnfault   = 4
)

func sysMlock(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return 0, t.MM().MLock(a[0], a[1])
}

func sysMlock2(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[2]&^mlockOnfault != 0 {
		return 0, unix.EINVAL
	}
	return 0, t.MM().MLock(a[0], a[1])
}

func sysMunlock(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return 0, t.MM().MLock(a[0], a[1])
}

func sysMlockall(t *kernel.Task, a *[6]uint64) (uint64, error) {
	flags := a[0]
	if flags == 0 || flags&^(mclCurrent|mclFuture|mclOnfault) != 0 || flags == mclOnfault {
		return 0, unix.EINVAL
	}
	return 0, nil
}

func sysMunlockall(t *kernel.Task, a *[6]uint64) (uint64, error) {
	return 0, nil
}
