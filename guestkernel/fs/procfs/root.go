package procfs

import (
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/fs/fsutil"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// pidOffset places process entries after the fixed ones in /proc's
// IterDir cookies: a process's cookie is pidOffset+pid, so a listing
// resumes correctly whichever processes exit in between.
const pidOffset = 1 << 16

func (fs *filesystem) node(mode uint32) fsutil.Node {
	return fsutil.NewNode(fs.inos.Next(), mode, fsutil.ProcMagic)
}

// file makes a read-only generated file that does not depend on the caller.
func (fs *filesystem) file(mode uint32, gen func() []byte) *fsutil.File {
	return fsutil.NewFile(fs.node(mode), func(vfs.Context) ([]byte, error) { return gen(), nil })
}

func (fs *filesystem) newRoot() *fsutil.Dir {
	rootNode := fs.node(0o555) // first: inode 1, Linux's PROC_ROOT_INO
	fixed := []fsutil.Entry{
		{Name: "cpuinfo", Inode: fs.file(0o444, fs.cpuinfo)},
		{Name: "filesystems", Inode: fs.file(0o444, fs.filesystems)},
		{Name: "loadavg", Inode: fs.file(0o444, fs.loadavg)},
		{Name: "meminfo", Inode: fs.file(0o444, fs.meminfo)},
		{Name: "mounts", Inode: fsutil.NewSymlink(fs.node(0o777), "self/mounts")},
		{Name: "self", Inode: fsutil.NewDynamicSymlink(fs.node(0o777), fs.selfTarget)},
		{Name: "stat", Inode: fs.file(0o444, fs.stat)},
		{Name: "sys", Inode: fs.newSys()},
		{Name: "thread-self", Inode: fsutil.NewDynamicSymlink(fs.node(0o777), fs.threadSelfTarget)},
		{Name: "uptime", Inode: fs.file(0o444, fs.uptime)},
		{Name: "version", Inode: fs.file(0o444, fs.version)},
	}
	byName := make(map[string]vfs.Inode, len(fixed))
	for i := range fixed {
		fixed[i].Off = int64(i) + 1
		byName[fixed[i].Name] = fixed[i].Inode
	}
	root := fsutil.NewDynamicDir(rootNode, func(vfs.Context) ([]fsutil.Entry, error) {
		out := append([]fsutil.Entry(nil), fixed...)
		for _, p := range fs.k.Processes() {
			out = append(out, fsutil.Entry{
				Name: strconv.Itoa(int(p.PID())), Inode: fs.newPidDir(p), Off: pidOffset + int64(p.PID()),
			})
		}
		return out, nil
	})
	root.Find = func(_ vfs.Context, name string) (vfs.Inode, error) {
		if ino, ok := byName[name]; ok {
			return ino, nil
		}
		pid, ok := parseID(name)
		if !ok {
			return nil, unix.ENOENT
		}
		p, ok := fs.k.Process(pid)
		if !ok {
			return nil, unix.ENOENT
		}
		return fs.newPidDir(p), nil
	}
	root.Valid = func(_ vfs.Context, name string, child vfs.Inode) bool {
		if d, ok := child.(*pidDir); ok {
			return d.p.Alive()
		}
		return true
	}
	return root
}

// parseID parses a pid, tid or fd as Linux's name_to_int does: decimal
// digits only, no leading zero, no overflow.
func parseID(name string) (int32, bool) {
	if name == "" || (len(name) > 1 && name[0] == '0') {
		return 0, false
	}
	n := 0
	for _, c := range []byte(name) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 1<<31-1 {
			return 0, false
		}
	}
	return int32(n), true
}

func (fs *filesystem) selfTarget(ctx vfs.Context) (string, error) {
	pid, _ := fs.k.CallerPID(ctx)
	if pid == 0 {
		return "", unix.ENOENT
	}
	return strconv.Itoa(int(pid)), nil
}

func (fs *filesystem) threadSelfTarget(ctx vfs.Context) (string, error) {
	pid, tid := fs.k.CallerPID(ctx)
	if pid == 0 {
		return "", unix.ENOENT
	}
	return strconv.Itoa(int(pid)) + "/task/" + strconv.Itoa(int(tid)), nil
}

// callerRoot is the root paths are rendered from: the calling process's,
// as Linux's d_path uses current's root, or fallback's if the caller is
// not a process.
func (fs *filesystem) callerRoot(ctx vfs.Context, fallback Process) vfs.VirtualDentry {
	if pid, _ := fs.k.CallerPID(ctx); pid != 0 {
		if p, ok := fs.k.Process(pid); ok {
			return p.Root()
		}
	}
	return fallback.Root()
}
