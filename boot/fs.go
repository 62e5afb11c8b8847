package boot

import (
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/client"
	"github.com/ringfence/ringfence/gofer/process"
	"github.com/ringfence/ringfence/guestkernel/fs/devfs"
	"github.com/ringfence/ringfence/guestkernel/fs/devices"
	"github.com/ringfence/ringfence/guestkernel/fs/devpts"
	"github.com/ringfence/ringfence/guestkernel/fs/goferfs"
	"github.com/ringfence/ringfence/guestkernel/fs/overlay"
	"github.com/ringfence/ringfence/guestkernel/fs/sysfs"
	"github.com/ringfence/ringfence/guestkernel/fs/tmpfs"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/pipe"
	"github.com/ringfence/ringfence/guestkernel/vfs"
	"github.com/ringfence/ringfence/logging"
)

// Volume is a host directory bind-mounted into the sandbox.
type Volume struct {
	Source   string // host path
	Target   string // absolute path in the sandbox
	ReadOnly bool
}

// ValidOverlays are the --overlay values.
var ValidOverlays = []string{"memory", "none"}

// ValidFileAccess are the --file-access values.
var ValidFileAccess = []string{"exclusive", "shared"}

// rootContext is the credentials the Sentry uses for its own filesystem
// set-up (populating /dev, making volume mount points): root's.
type rootContext struct{ creds vfs.Credentials }

func (c *rootContext) FSCredentials() *vfs.Credentials { return &c.creds }

func (c *rootContext) WaitHostFD(int, int16, time.Duration) error { return unix.EINTR }
func (c *rootContext) MM() *mm.MM                                 { return nil }

// sandboxFS is the sandbox's filesystem: the gofer that serves host
// directories and the VFS built over them.
type sandboxFS struct {
	closing atomic.Bool
	gofer   *process.Gofer
	clients []*client.Client
	vfs     *vfs.VFS
	ns      *vfs.MountNamespace
	root    vfs.VirtualDentry
}

func (s *sandboxFS) Close() {
	s.closing.Store(true)
	for _, c := range s.clients {
		c.Shutdown()
	}
	if s.gofer != nil {
		s.gofer.Close()
	}
}

// fsOptions are the filesystem choices of one sandbox.
type fsOptions struct {
	RootSource string // host directory that becomes "/"
	Volumes    []Volume
	Overlay    string
	FileAccess string
	DebugArgs  []string
	NumCPUs    int
}

// buildFS starts the gofer for the root and every volume, and assembles
// the mount namespace: the root (under a memory overlay unless
// --overlay=none), /dev (devfs), /dev/shm (tmpfs), /sys (sysfs) and the
// volumes. /proc is mounted by the caller once the kernel exists.
func buildFS(mf *memfile.File, o fsOptions, g *process.Gofer) (*sandboxFS, error) {
	mounts := goferMounts(o)
	s := &sandboxFS{gofer: g, vfs: vfs.New()}
	go func() {
		// The gofer lives as long as the sandbox; an early exit is a bug
		// or an attack on it, and files fail with EIO from then on.
		err := g.Wait()
		if !s.closing.Load() {
			logging.Warningf("the gofer (pid %d) exited while the sandbox runs: %v", g.Pid(), err)
		}
	}()
	fail := func(err error) (*sandboxFS, error) {
		s.Close()
		return nil, err
	}
	cache := goferfs.Exclusive
	if o.FileAccess == "shared" {
		cache = goferfs.Shared
	}
	remote := make([]*goferfs.FS, len(mounts))
	for i, c := range g.Conns() {
		cl, err := client.New(c)
		if err != nil {
			return fail(fmt.Errorf("connecting to the gofer for %s: %w", mounts[i].Source, err))
		}
		s.clients = append(s.clients, cl)
		fs, err := goferfs.New(cl, mf, goferfs.Options{ReadOnly: mounts[i].ReadOnly, CacheMode: cache})
		if err != nil {
			return fail(fmt.Errorf("serving %s: %w", mounts[i].Source, err))
		}
		remote[i] = fs
	}
	ctx := &rootContext{creds: vfs.Credentials{Caps: vfs.AllCaps}}
	v := s.vfs
	devices.Register(v)
	fifos := &pipe.FIFOs{}
	v.SetFIFOOpener(fifos.Open)
	v.RegisterFilesystemType("tmpfs", func(ctx vfs.Context, source string, flags uint64, data string) (vfs.Filesystem, error) {
		return newTmpfs(mf, data)
	})
	v.RegisterFilesystemType("sysfs", func(vfs.Context, string, uint64, string) (vfs.Filesystem, error) {
		return sysfs.New(o.NumCPUs), nil
	})

	var rootFS vfs.Filesystem = remote[0]
	source := "none"
	if o.Overlay == "memory" {
		upper := tmpfs.New(mf, tmpfs.Options{Mode: 0o755})
		rootFS = overlay.New(upper.Root(), []vfs.Inode{remote[0].Root()}, overlay.Options{})
		source = "overlay"
	}
	s.ns = v.NewMountNamespace(v.NewSuperblock(rootFS), source, 0)
	s.root = s.ns.Root()

	// /dev: a tmpfs with the device nodes, and /dev/shm.
	dev := tmpfs.New(mf, tmpfs.Options{Mode: 0o755})
	if err := devfs.Populate(ctx, dev.Root()); err != nil {
		return fail(fmt.Errorf("populating /dev: %w", err))
	}
	if err := s.mountAt(ctx, "/dev", v.NewSuperblock(dev), "devtmpfs", vfs.MountNoSuid); err != nil {
		return fail(err)
	}
	// /dev/pts: pseudo-terminals (also registers ptmx, /dev/tty, 136:N).
	pts, err := devpts.Register(v, devpts.DefaultOptions())
	if err != nil {
		return fail(err)
	}
	if err := s.mountAt(ctx, "/dev/pts", v.NewSuperblock(pts), "devpts", vfs.MountNoSuid|vfs.MountNoExec); err != nil {
		return fail(err)
	}
	shm, _ := newTmpfs(mf, "mode=1777")
	if err := s.mountAt(ctx, "/dev/shm", v.NewSuperblock(shm), "shm", vfs.MountNoSuid|vfs.MountNoDev); err != nil {
		return fail(err)
	}
	if err := s.mountAt(ctx, "/sys", v.NewSuperblock(sysfs.New(o.NumCPUs)), "sysfs", vfs.MountReadOnly|vfs.MountNoSuid|vfs.MountNoDev|vfs.MountNoExec); err != nil {
		return fail(err)
	}
	for i, vol := range o.Volumes {
		var flags uint64
		if vol.ReadOnly {
			flags = vfs.MountReadOnly
		}
		if err := s.mountAt(ctx, vol.Target, v.NewSuperblock(remote[i+1]), vol.Source, flags); err != nil {
			return fail(fmt.Errorf("--volume %s:%s: %w", vol.Source, vol.Target, err))
		}
	}
	return s, nil
}

func goferMounts(o fsOptions) []process.Mount {
	mounts := []process.Mount{{Source: o.RootSource, ReadOnly: o.Overlay == "memory"}}
	for _, v := range o.Volumes {
		mounts = append(mounts, process.Mount{Source: v.Source, ReadOnly: v.ReadOnly})
	}
	return mounts
}

// startGofer starts the gofer for the root and the volumes. It runs while
// the platform starts (the gofer's own start-up, two Go program starts, is
// the larger part of a sandbox's).
func startGofer(o fsOptions) (*process.Gofer, error) {
	var stderr io.Writer
	if logging.DebugEnabled() {
		stderr = os.Stderr
	}
	g, err := process.Spawn(process.SpawnOptions{
		Mounts: goferMounts(o),
		Args:   append(append([]string{}, o.DebugArgs...), "gofer"),
		Stderr: stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the gofer: %w", err)
	}
	return g, nil
}

// mountAt attaches sb at path, making the directory (and its parents) if
// the root lacks it, as a container runtime does for its mounts.
func (s *sandboxFS) mountAt(ctx vfs.Context, target string, sb *vfs.Superblock, source string, flags uint64) error {
	vd, err := s.mkdirAll(ctx, target)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", target, err)
	}
	_, err = s.ns.Attach(vd, sb, sb.Root(), source, flags)
	return err
}

func (s *sandboxFS) mkdirAll(ctx vfs.Context, p string) (vfs.VirtualDentry, error) {
	p = path.Clean(p)
	wk := vfs.Walk{Root: s.root, Start: s.root, Path: p, FollowFinal: true}
	if vd, err := s.vfs.Resolve(ctx, &wk); err == nil {
		return vd, nil
	} else if err != unix.ENOENT {
		return vfs.VirtualDentry{}, err
	}
	cur := "/"
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		cur = path.Join(cur, part)
		wk := vfs.Walk{Root: s.root, Start: s.root, Path: cur}
		err := s.vfs.Mkdir(ctx, &wk, 0o755, 0)
		if err != nil && err != unix.EEXIST {
			return vfs.VirtualDentry{}, err
		}
	}
	wk = vfs.Walk{Root: s.root, Start: s.root, Path: p, FollowFinal: true}
	return s.vfs.Resolve(ctx, &wk)
}

// newTmpfs makes a tmpfs from mount(2)-style options (mode=, size=,
// uid=, gid=, nr_inodes=).
func newTmpfs(mf *memfile.File, data string) (vfs.Filesystem, error) {
	var o tmpfs.Options
	for _, kv := range strings.Split(data, ",") {
		k, val, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "":
		case "mode":
			var m uint64
			m, err = parseUint(val, 8)
			o.Mode = uint32(m) & 0o7777
		case "size":
			o.Size, err = parseSize(val)
		case "nr_inodes":
			var n uint64
			n, err = parseUint(val, 10)
			o.NrInodes = int64(n)
		case "uid":
			var n uint64
			n, err = parseUint(val, 10)
			o.UID = uint32(n)
		case "gid":
			var n uint64
			n, err = parseUint(val, 10)
			o.GID = uint32(n)
		default:
			// Linux tmpfs ignores nothing: unknown options are EINVAL.
			return nil, unix.EINVAL
		}
		if err != nil {
			return nil, unix.EINVAL
		}
	}
	return tmpfs.New(mf, o), nil
}

func parseUint(s string, base int) (uint64, error) { return strconv.ParseUint(s, base, 64) }

// parseSize reads a tmpfs size= value: bytes with an optional k, m or g.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, s = 1<<10, s[:n-1]
		case 'm', 'M':
			mult, s = 1<<20, s[:n-1]
		case 'g', 'G':
			mult, s = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v * mult, err
}
