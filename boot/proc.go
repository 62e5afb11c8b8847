package boot

import (
	"github.com/ringfence/ringfence/guestkernel/fs/procfs"
	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// mountProc mounts the sandbox's /proc, generated from k's state, and
// registers "proc" for mount(2) inside the sandbox.
func mountProc(k *kernel.Kernel, s *sandboxFS) error {
	src := kernel.ProcSource(k)
	mk := func() vfs.Filesystem { return procfs.New(src, s.vfs, s.vfs.PathOf) }
	s.vfs.RegisterFilesystemType("proc", func(vfs.Context, string, uint64, string) (vfs.Filesystem, error) {
		return mk(), nil
	})
	ctx := &rootContext{creds: vfs.Credentials{Caps: vfs.AllCaps}}
	return s.mountAt(ctx, "/proc", s.vfs.NewSuperblock(mk()), "proc", vfs.MountNoSuid|vfs.MountNoDev|vfs.MountNoExec)
}
