package kernel

import (
	"io"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/loader"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// execOpener opens executables through the VFS, as task t sees the
// filesystem, for the loader (the program, its interpreter, #! targets).
type execOpener struct{ t *Task }

// OpenExecutable implements loader.Opener with execve's checks: a regular
// file, on a mount without noexec, that the caller may execute. Read
// permission is not needed, as on Linux.
func (o execOpener) OpenExecutable(path string) (loader.Executable, error) {
	t := o.t
	v := t.k.VFS
	root, cwd := t.fs.RootAndCwd()
	vd, err := v.Resolve(t, &vfs.Walk{Root: root, Start: cwd, Path: path, FollowFinal: true})
	if err != nil {
		return nil, err
	}
	a, err := vfs.StatVD(t, vd)
	if err != nil {
		return nil, err
	}
	if a.Type() != unix.S_IFREG || vd.Mount.Flags()&vfs.MountNoExec != 0 {
		return nil, unix.EACCES
	}
	if err := vfs.CheckPermission(t.FSCredentials(), &a, vfs.MayExec); err != nil {
		return nil, err
	}
	d, err := v.OpenForExec(t, vd)
	if err != nil {
		return nil, err
	}
	return &executable{t: t, d: d, size: a.Size}, nil
}

// executable is an open program file as the loader reads it.
type executable struct {
	t    *Task
	d    *FileDescription
	size int64
}

func (e *executable) ReadAt(b []byte, off int64) (int, error) {
	total := 0
	for total < len(b) {
		n, err := e.d.Read(e.t, [][]byte{b[total:]}, off+int64(total))
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, io.EOF
		}
	}
	return total, nil
}

func (e *executable) Size() int64  { return e.size }
func (e *executable) Close() error { e.d.DecRef(); return nil }

// VirtualDentry is the file the executable was opened from.
func (e *executable) VirtualDentry() vfs.VirtualDentry { return e.d.VirtualDentry() }

// lookPath finds name in the directories of the PATH in envv, as execvp
// does, through the sandbox's filesystem: the first regular file the task
// may execute. It returns ENOENT (with the message runsc shows) if none.
func (t *Task) lookPath(name string, envv []string) (string, error) {
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range envv {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	root, cwd := t.fs.RootAndCwd()
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		vd, err := t.k.VFS.Resolve(t, &vfs.Walk{Root: root, Start: cwd, Path: p, FollowFinal: true})
		if err != nil {
			continue
		}
		a, err := vfs.StatVD(t, vd)
		if err != nil || a.Type() != unix.S_IFREG || vfs.CheckPermission(t.FSCredentials(), &a, vfs.MayExec) != nil {
			continue
		}
		return p, nil
	}
	return "", &loader.Error{Errno: unix.ENOENT, Msg: name + ": command not found in PATH"}
}
