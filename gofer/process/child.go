package process

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
	"github.com/ringfence/ringfence/gofer/server"
)

// stage2Env carries stage 1's descriptors across its re-exec: "ROOT;M0,M1,..."
// (the tmpfs root and one mount clone per Config.Mounts entry).
const stage2Env = "RUNSC_GOFER_STAGE2"

// Config is what `runsc gofer` was asked to serve.
type Config struct {
	// Mounts are served in order; mount i on the socket at FDStart+i.
	Mounts []Mount
	// FDStart is the first socket descriptor (3 when started by Spawn).
	FDStart int
	// AllowUnconfined serves without a private mount namespace and root
	// when the gofer lacks the privilege to create them, instead of
	// failing. The seccomp filter and no_new_privs still apply.
	AllowUnconfined bool
	// Logf reports errors and warnings; nil writes them to stderr.
	Logf func(format string, args ...any)

	// afterConfine, when set (tests), runs instead of serving once the
	// process is fully confined.
	afterConfine func(conns []*proto.Conn) error
}

func stderrLogf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "runsc gofer[%d]: %s\n", os.Getpid(), fmt.Sprintf(format, args...))
}

// Main confines the process and serves cfg.Mounts until every connection
// has ended. It returns nil when all of them reached EOF, an error if
// confinement failed or any connection ended with an error. In its first
// stage it re-executes the binary and does not return on success (see the
// package documentation).
func Main(cfg Config) error {
	if cfg.Logf == nil {
		cfg.Logf = stderrLogf
	}
	if len(cfg.Mounts) == 0 {
		return errors.New("no --" + FlagMount + " given")
	}
	if cfg.FDStart < 3 {
		return fmt.Errorf("--%s=%d: must be 3 or more (0-2 are stdio)", FlagMountFDStart, cfg.FDStart)
	}
	if v, ok := os.LookupEnv(stage2Env); ok {
		os.Unsetenv(stage2Env)
		root, mounts, err := parseStage2(v, len(cfg.Mounts))
		if err != nil {
			return err
		}
		return stage2(cfg, root, mounts)
	}
	return stage1(cfg)
}

func (cfg *Config) socketFDs() []int {
	fds := make([]int, len(cfg.Mounts))
	for i := range fds {
		fds[i] = cfg.FDStart + i
	}
	return fds
}

// stage1 does, on one locked thread, everything that is per thread, then
// re-executes the binary so that the whole of stage 2 inherits it.
func stage1(cfg Config) error {
	// Never unlocked on success: this thread's mount namespace and
	// credentials differ from the other threads' until execve.
	runtime.LockOSThread()
	if err := nullStdio(); err != nil {
		return err
	}
	socks := cfg.socketFDs()
	for _, fd := range socks {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("socket descriptor %d: %w", fd, err)
		}
	}
	if err := closeStrayFDs(socks...); err != nil {
		return err
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		if err != unix.EPERM || !cfg.AllowUnconfined {
			return fmt.Errorf("cannot confine the gofer: unshare(CLONE_NEWNS): %w "+
				"(a private mount namespace and root need CAP_SYS_ADMIN and CAP_SYS_CHROOT: "+
				"run as root, or pass --%s to serve unconfined)", err, FlagAllowUnconfined)
		}
		runtime.UnlockOSThread()
		cfg.Logf("WARNING: serving UNCONFINED (no private mount namespace or root): unshare(CLONE_NEWNS): %v", err)
		mounts, err := openMountsPlain(cfg.Mounts)
		if err != nil {
			return err
		}
		return stage2(cfg, -1, mounts)
	}
	// Nothing we do in this namespace may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	root, err := newEmptyRoot()
	if err != nil {
		return err
	}
	mounts, err := cloneMounts(cfg.Mounts, cfg.Logf)
	if err != nil {
		return err
	}
	if err := limitCapsForExec(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	// The descriptors must survive execve.
	enc := make([]string, len(mounts))
	for i, fd := range append([]int{root}, mounts...) {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return err
		}
		if i > 0 {
			enc[i-1] = strconv.Itoa(fd)
		}
	}
	env := append(os.Environ(), fmt.Sprintf("%s=%d;%s", stage2Env, root, strings.Join(enc, ",")))
	err = unix.Exec(DefaultBinary, os.Args, env)
	return fmt.Errorf("re-execute %s: %w", DefaultBinary, err)
}

func parseStage2(v string, n int) (root int, mounts []int, err error) {
	bad := fmt.Errorf("invalid %s=%q", stage2Env, v)
	r, ms, ok := strings.Cut(v, ";")
	if !ok {
		return 0, nil, bad
	}
	if root, err = strconv.Atoi(r); err != nil || root < 3 {
		return 0, nil, bad
	}
	for _, s := range strings.Split(ms, ",") {
		fd, err := strconv.Atoi(s)
		if err != nil || fd < 3 {
			return 0, nil, bad
		}
		mounts = append(mounts, fd)
	}
	if len(mounts) != n {
		return 0, nil, bad
	}
	return root, mounts, nil
}

// stage2 finishes confinement and serves. root is the new root directory's
// descriptor, or -1 when serving unconfined; mounts[i] is Mounts[i]'s
// directory.
func stage2(cfg Config, root int, mounts []int) error {
	for _, fd := range append([]int{root}, mounts...) {
		if fd < 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return fmt.Errorf("inherited descriptor %d: %w", fd, err)
		}
	}
	srvs := make([]*server.Server, len(cfg.Mounts))
	for i, m := range cfg.Mounts {
		s, err := server.NewFromFD(mounts[i], server.Options{ReadOnly: m.ReadOnly})
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.Source, err)
		}
		srvs[i] = s
	}
	conns := make([]*proto.Conn, len(cfg.Mounts))
	for i, fd := range cfg.socketFDs() {
		if err := checkStreamSocket(fd); err != nil {
			return fmt.Errorf("socket descriptor %d (mount %s): %w", fd, cfg.Mounts[i].Source, err)
		}
		c, err := connFromFD(fd)
		if err != nil {
			return fmt.Errorf("socket descriptor %d: %w", fd, err)
		}
		conns[i] = c
	}
	// Everything still open without close-on-exec came from our parent
	// and is not ours to keep.
	if err := closeStrayFDs(); err != nil {
		return err
	}
	// Load the time zone now: after the chroot /etc/localtime is gone and
	// log timestamps would silently turn to UTC.
	time.Now().Zone()
	if root >= 0 {
		if err := enterRoot(root); err != nil {
			return err
		}
		if err := dropSetupCaps(); err != nil && !errors.Is(err, errNotAllThreads) {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	if err := installSeccomp(); err != nil {
		return err
	}
	if cfg.afterConfine != nil {
		return cfg.afterConfine(conns)
	}
	return serve(cfg, srvs, conns)
}

// serve runs one server per connection and returns when all have ended.
func serve(cfg Config, srvs []*server.Server, conns []*proto.Conn) error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := srvs[i].Serve(conns[i])
			if err != nil {
				// A broken or hostile peer on one connection must not
				// stop the others.
				cfg.Logf("connection %d (%s): %v; closing it", i, cfg.Mounts[i], err)
				mu.Lock()
				failed++
				mu.Unlock()
			}
			conns[i].Close()
		}(i)
	}
	wg.Wait()
	for _, s := range srvs {
		s.Close()
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d connections ended with an error", failed, len(conns))
	}
	return nil
}

// nullStdio points stdin and stdout at /dev/null whatever we were given:
// the gofer must never read or write the application's streams.
func nullStdio() error {
	fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/null: %w", err)
	}
	defer unix.Close(fd)
	for _, std := range []int{0, 1} {
		if err := unix.Dup3(fd, std, 0); err != nil {
			return fmt.Errorf("redirect fd %d to /dev/null: %w", std, err)
		}
	}
	return nil
}

// closeStrayFDs closes every descriptor above stderr that is not in keep
// and lacks FD_CLOEXEC. Go opens everything close-on-exec, so those are
// exactly the ones inherited through execve.
func closeStrayFDs(keep ...int) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list descriptors: %w", err)
	}
next:
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		for _, k := range keep {
			if fd == k {
				continue next
			}
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil { // ReadDir's own descriptor, closed by now
			continue
		}
		if flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
	return nil
}

func checkStreamSocket(fd int) error {
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return err
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return err
	}
	if dom != unix.AF_UNIX || typ != unix.SOCK_STREAM {
		return fmt.Errorf("not an AF_UNIX SOCK_STREAM socket (domain %d, type %d)", dom, typ)
	}
	return nil
}

// newEmptyRoot returns a mount descriptor of a fresh, empty, read-only
// tmpfs. It is attached nowhere, so nothing appears in any mount table and
// nothing is left behind on the host.
func newEmptyRoot() (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("new root: fsopen tmpfs: %w", err)
	}
	defer unix.Close(fs)
	for _, kv := range [][2]string{{"mode", "0555"}, {"size", "4k"}, {"nr_inodes", "2"}} {
		if err := unix.FsconfigSetString(fs, kv[0], kv[1]); err != nil {
			return -1, fmt.Errorf("new root: tmpfs %s=%s: %w", kv[0], kv[1], err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("new root: create tmpfs: %w", err)
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC,
		unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, fmt.Errorf("new root: fsmount: %w", err)
	}
	return fd, nil
}

// enterRoot makes the directory at fd the root and working directory of
// every thread (they share one fs_struct) and closes fd.
func enterRoot(fd int) error {
	defer unix.Close(fd)
	if err := unix.Fchdir(fd); err != nil {
		return fmt.Errorf("enter new root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into new root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir / in new root: %w", err)
	}
	return nil
}

// cloneMounts returns, per mount, a private copy of the source's mount
// tree (O_PATH descriptor of the source directory): host mount changes do
// not reach it, and a read-only mount is read-only in the kernel too.
func cloneMounts(ms []Mount, logf func(string, ...any)) ([]int, error) {
	fds := make([]int, 0, len(ms))
	fail := func(err error) ([]int, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, err
	}
	for _, m := range ms {
		fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err == unix.EINVAL {
			// An unbindable mount cannot be cloned; the server's own
			// checks still apply.
			logf("mount %s: cannot clone its mount (%v); serving it from the shared mount", m, err)
			fd, err = openMountPlain(m)
			if err != nil {
				return fail(err)
			}
			fds = append(fds, fd)
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("mount %s: open_tree: %w", m.Source, err))
		}
		fds = append(fds, fd)
		if err := checkDir(fd, m); err != nil {
			return fail(err)
		}
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		if m.ReadOnly {
			attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
		}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return fail(fmt.Errorf("mount %s: mount_setattr: %w", m.Source, err))
		}
	}
	return fds, nil
}

func openMountsPlain(ms []Mount) ([]int, error) {
	var fds []int
	for _, m := range ms {
		fd, err := openMountPlain(m)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, err
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func openMountPlain(m Mount) (int, error) {
	fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("mount %s: %w", m.Source, err)
	}
	if err := checkDir(fd, m); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func checkDir(fd int, m Mount) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("mount %s: %w", m.Source, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("mount %s: not a directory (the gofer serves directories only; single-file mounts are not supported yet)", m.Source)
	}
	return nil
}
