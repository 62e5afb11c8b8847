package process

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

// DefaultBinary is the runsc binary Spawn runs when SpawnOptions.Binary is
// empty: the running executable itself.
const DefaultBinary = "/proc/self/exe"

// firstSocketFD is where the child's socket descriptors start: right after
// stdin, stdout and stderr, which is where exec.Cmd.ExtraFiles puts them.
const firstSocketFD = 3

// closeTimeout bounds how long Close waits for the gofer to exit on its own
// before killing it.
const closeTimeout = 10 * time.Second

// SpawnOptions configures Spawn.
type SpawnOptions struct {
	// Mounts are served in order; Gofer.Conns()[i] serves Mounts[i].
	Mounts []Mount
	// Binary is the runsc executable; DefaultBinary if empty.
	Binary string
	// Args go between argv[0] and the gofer's own flags. Empty means
	// {"gofer"}. Global runsc flags that must reach the gofer, such as
	// the debug log settings, go first:
	// {"--debug", "--debug-log=/var/log/runsc/", "gofer"}.
	Args []string
	// Env is the child's environment; nil inherits this process's.
	Env []string
	// Stderr receives the gofer's own messages (errors, debug log on
	// stderr). Nil means /dev/null; pass os.Stderr only when that is where
	// the debug log goes.
	Stderr io.Writer
	// AllowUnconfined lets the gofer serve without a private mount
	// namespace and root when it lacks the privilege to create them
	// (tests as non-root). Never set it in production.
	AllowUnconfined bool

	// keepRaw keeps a raw duplicate of each parent socket (tests only:
	// they write malformed frames).
	keepRaw bool
	// credential runs the gofer as another user (tests only: the
	// unprivileged paths).
	credential *syscall.Credential
}

// Gofer is a running gofer process.
type Gofer struct {
	cmd   *exec.Cmd
	conns []*proto.Conn
	raw   []int

	done    chan struct{} // closed when the process has been reaped
	waitErr error
	once    sync.Once
}

// args returns the gofer's argv after argv[0]: the prefix, then the gofer
// flags.
func (opts *SpawnOptions) args() []string {
	a := append([]string(nil), opts.Args...)
	if len(a) == 0 {
		a = []string{"gofer"}
	}
	a = append(a, fmt.Sprintf("--%s=%d", FlagMountFDStart, firstSocketFD))
	for _, m := range opts.Mounts {
		a = append(a, fmt.Sprintf("--%s=%s", FlagMount, m))
	}
	if opts.AllowUnconfined {
		a = append(a, "--"+FlagAllowUnconfined)
	}
	return a
}

// Spawn starts a gofer serving opts.Mounts and returns once the process
// has started (not once it is confined: requests simply wait in the
// sockets until it serves them).
func Spawn(opts SpawnOptions) (*Gofer, error) {
	if len(opts.Mounts) == 0 {
		return nil, errors.New("gofer: no mounts to serve")
	}
	for _, m := range opts.Mounts {
		if _, err := ParseMount(m.String()); err != nil {
			return nil, fmt.Errorf("gofer: %w", err)
		}
	}
	bin := opts.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	g := &Gofer{done: make(chan struct{})}
	var child []*os.File
	cleanup := func() {
		for _, f := range child {
			f.Close()
		}
		for _, c := range g.conns {
			c.Close()
		}
		for _, fd := range g.raw {
			unix.Close(fd)
		}
	}
	for i := range opts.Mounts {
		// CLOEXEC so a concurrent fork elsewhere in this process cannot
		// inherit them; ExtraFiles clears it in our child only.
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("gofer: socketpair: %w", err)
		}
		child = append(child, os.NewFile(uintptr(fds[1]), "gofer-"+strconv.Itoa(i)))
		if opts.keepRaw {
			raw, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				unix.Close(fds[0])
				cleanup()
				return nil, err
			}
			g.raw = append(g.raw, raw)
		}
		c, err := connFromFD(fds[0])
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("gofer: %w", err)
		}
		g.conns = append(g.conns, c)
	}

	cmd := exec.Command(bin, opts.args()...)
	cmd.Args[0] = "runsc-gofer"
	cmd.Env = opts.Env
	cmd.Stdin, cmd.Stdout = nil, nil // /dev/null
	cmd.Stderr = opts.Stderr         // nil: /dev/null
	cmd.ExtraFiles = child
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: opts.credential}
	g.cmd = cmd

	// Pdeathsig fires when the *thread* that forked the child exits, and
	// the Go runtime ends threads whose goroutine exits while locked. So
	// start and reap the child from a goroutine that keeps its thread
	// locked for exactly the child's lifetime.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		g.waitErr = cmd.Wait()
		close(g.done)
	}()
	err := <-started
	for _, f := range child {
		f.Close()
	}
	child = nil
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("gofer: start %s: %w", bin, err)
	}
	return g, nil
}

// connFromFD wraps a connected socket descriptor (taking ownership).
func connFromFD(fd int) (*proto.Conn, error) {
	f := os.NewFile(uintptr(fd), "gofer-socket")
	nc, err := net.FileConn(f) // dups fd, close-on-exec
	f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("descriptor %d is not a unix socket", fd)
	}
	return proto.NewConn(uc)
}

// Conns returns the connections, one per mount in SpawnOptions.Mounts
// order. They stay owned by the Gofer: Close closes them.
func (g *Gofer) Conns() []*proto.Conn { return g.conns }

// Pid returns the gofer's process id.
func (g *Gofer) Pid() int { return g.cmd.Process.Pid }

// Wait waits for the gofer to exit. It returns nil if it exited with
// status 0, an *exec.ExitError otherwise. It may be called any number of
// times.
func (g *Gofer) Wait() error {
	<-g.done
	return g.waitErr
}

// Kill kills the gofer (SIGKILL). It does not wait.
func (g *Gofer) Kill() error {
	select {
	case <-g.done:
		return nil
	default:
	}
	err := g.cmd.Process.Kill()
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Close closes every connection, which makes the gofer exit once it has
// finished the requests it holds, and waits for it; after closeTimeout it
// kills it. It returns Wait's result.
func (g *Gofer) Close() error {
	g.once.Do(func() {
		for _, c := range g.conns {
			c.Close()
		}
		for _, fd := range g.raw {
			unix.Close(fd)
		}
	})
	select {
	case <-g.done:
	case <-time.After(closeTimeout):
		g.Kill()
	}
	return g.Wait()
}
