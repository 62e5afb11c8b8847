// Package sysfs is the sandbox's /sys: the few files programs read to size
// themselves (the CPU lists, transparent huge page mode) and the cgroup
// mount point, generated from the Sentry's view of the machine, never the
// host's. It is read-only: opening a file for writing fails with EACCES,
// and changing the tree with EACCES, as sysfs does for files without a
// store method.
package sysfs

import (
	"fmt"

	"github.com/ringfence/ringfence/guestkernel/fs/fsutil"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// Type is the filesystem type name.
const Type = "sysfs"

// New makes a /sys for a sandbox of numCPUs CPUs (at least 1).
func New(numCPUs int) vfs.Filesystem {
	if numCPUs < 1 {
		numCPUs = 1
	}
	b := &builder{}
	cpuList := CPUList(numCPUs)
	cpu := []fsutil.Entry{
		{Name: "online", Inode: b.file(cpuList)},
		{Name: "possible", Inode: b.file(cpuList)},
		{Name: "present", Inode: b.file(cpuList)},
	}
	for i := 0; i < numCPUs; i++ {
		cpu = append(cpu, fsutil.Entry{Name: fmt.Sprintf("cpu%d", i), Inode: b.dir(0o755)})
	}
	cpuDir := fsutil.NewDir(b.node(0o755), cpu)
	thp := b.dir(0o755, b.entry("enabled", b.file("always [madvise] never\n")))
	root := b.dir(0o555,
		b.entry("devices", b.dir(0o755, b.entry("system", b.dir(0o755, b.entry("cpu", cpuDir))))),
		b.entry("fs", b.dir(0o755, b.entry("cgroup", b.dir(0o755)))),
		b.entry("kernel", b.dir(0o755, b.entry("mm", b.dir(0o755, b.entry("transparent_hugepage", thp))))),
	)
	return &fsutil.Filesystem{Name: Type, Tree: root}
}

// CPUList renders CPUs 0..n-1 as sysfs's cpu lists do ("0", "0-3").
func CPUList(n int) string {
	if n <= 1 {
		return "0\n"
	}
	return fmt.Sprintf("0-%d\n", n-1)
}

type builder struct{ inos fsutil.Inos }

func (b *builder) node(mode uint32) fsutil.Node {
	return fsutil.NewNode(b.inos.Next(), mode, fsutil.SysfsMagic)
}

func (b *builder) entry(name string, ino vfs.Inode) fsutil.Entry {
	return fsutil.Entry{Name: name, Inode: ino}
}

func (b *builder) dir(mode uint32, entries ...fsutil.Entry) *fsutil.Dir {
	return fsutil.NewDir(b.node(mode), entries)
}

// file makes a read-only file: 0444, since writes are refused even where
// Linux's file is 0644 (transparent_hugepage/enabled). Its size is a
// page, as sysfs reports for every attribute.
func (b *builder) file(content string) *fsutil.File {
	n := b.node(0o444)
	n.Size = func() int64 { return 4096 }
	return fsutil.NewStaticFile(n, content)
}
