// Package boot owns assembling a Sentry: the memory file, the platform,
// the kernel with its system call table, the app's standard streams, and
// the first process; then running it to completion with signals from the
// host forwarded to it. `runsc do` runs it in-process; `runsc boot` will
// run it as the sandbox process once the runtime splits processes.
package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/hostfile"
	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/guestkernel/loader"
	"github.com/ringfence/ringfence/guestkernel/memfile"
	"github.com/ringfence/ringfence/guestkernel/platform"
	"github.com/ringfence/ringfence/guestkernel/syscalls"
	"github.com/ringfence/ringfence/logging"

	"github.com/ringfence/ringfence/vmm"

	// Platforms register themselves.
	_ "github.com/ringfence/ringfence/ptrace_fallback"
)

// Exit statuses runsc uses for its own failures, as shells and docker do.
const (
	ExitRunscFailed   = 125 // runsc could not set up the sandbox
	ExitCannotExecute = 126 // the program exists but cannot run
	ExitNotFound      = 127 // the program does not exist
)

// Error is a failure before the app ran, with the status runsc exits with.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Options describe one sandboxed run.
type Options struct {
	Platform string // auto, ptrace, kvm
	NumVCPUs int    // --num-vcpus; 0: the host's CPU count
	RootDir  string // --root: state directory (platform caches)
	Strace   bool
	Path     string   // resolved executable path on the host
	Argv     []string // argv[0] as the user gave it
	Env      []string
	Cwd      string
	Hostname string

	RootSource string   // host directory served as "/" (default "/")
	Volumes    []Volume // --volume bind mounts
	Overlay    string   // memory (default) or none
	FileAccess string   // exclusive (default) or shared
	DebugArgs  []string // logging flags passed on to the gofer
}

// ValidPlatforms are the names --platform accepts.
var ValidPlatforms = []string{"auto", "ptrace", "kvm"}

// NewPlatform makes the named platform over memFD.
func NewPlatform(name string, memFD int) (platform.Platform, error) {
	return newPlatform(name, platform.Options{MemoryFD: memFD})
}

func newPlatform(name string, opts platform.Options) (platform.Platform, error) {
	registered := false
	for _, n := range platform.Names() {
		registered = registered || n == name
	}
	if name != "auto" && !registered {
		return nil, fmt.Errorf("platform %q is not available in this build (available: auto, %s)",
			name, strings.Join(platform.Names(), ", "))
	}
	opts.Logf = logging.Debugf
	return platform.New(name, opts)
}

// Run runs opts.Path in a new sandbox and returns its exit status.
func Run(o Options) (kernel.ExitStatus, error) {
	mf, err := memfile.New(memfile.DefaultSize)
	if err != nil {
		return kernel.ExitStatus{}, &Error{ExitRunscFailed, err.Error()}
	}
	defer mf.Close()
	root := o.RootSource
	if root == "" {
		root = "/"
	}
	overlayMode := o.Overlay
	if overlayMode == "" {
		overlayMode = "memory"
	}
	fso := fsOptions{
		RootSource: root, Volumes: o.Volumes, Overlay: overlayMode, FileAccess: o.FileAccess,
		DebugArgs: o.DebugArgs, NumCPUs: runtime.NumCPU(),
	}
	gofer, err := startGofer(fso)
	if err != nil {
		return kernel.ExitStatus{}, &Error{ExitRunscFailed, err.Error()}
	}
	p, err := newPlatform(o.Platform, platform.Options{MemoryFD: mf.FD(), NumVCPUs: o.NumVCPUs, StateDir: o.RootDir})
	if err != nil {
		gofer.Close()
		return kernel.ExitStatus{}, &Error{ExitRunscFailed, err.Error()}
	}
	defer p.Close()
	logging.Infof("platform: %s", p.Name())
	aux := readHostAux()

	sfs, err := buildFS(mf, fso, gofer)
	if err != nil {
		return kernel.ExitStatus{}, &Error{ExitRunscFailed, err.Error()}
	}
	defer sfs.Close()

	k := kernel.New(kernel.Config{
		Platform:    p,
		MemFile:     mf,
		Dispatcher:  &syscalls.Table{Strace: o.Strace},
		Hostname:    o.Hostname,
		Creds:       hostCreds(),
		HWCap:       hwcap(),
		HWCap2:      aux.get(loader.AtHWCap2, 0),
		MinSigStkSz: aux.get(loader.AtMinSigStkSz, 2048),
		VFS:         sfs.vfs,
		Root:        sfs.root,
	})
	if err := mountProc(k, sfs); err != nil {
		return kernel.ExitStatus{}, &Error{ExitRunscFailed, err.Error()}
	}
	var stdio []kernel.File
	for fd := 0; fd < 3; fd++ {
		hf, err := hostfile.Import(fd)
		if err != nil {
			// A closed standard stream stays closed in the sandbox.
			logging.Debugf("fd %d not imported: %v", fd, err)
			break
		}
		stdio = append(stdio, hf)
	}
	tg, err := k.CreateProcess(kernel.ProcessArgs{
		Path: o.Path, ExecFn: o.Path, Argv: o.Argv, Envv: o.Env, Cwd: o.Cwd, Stdio: stdio,
	})
	if err != nil {
		var le *loader.Error
		if errors.As(err, &le) {
			status := ExitCannotExecute
			if le.Errno == unix.ENOENT {
				status = ExitNotFound
			}
			return kernel.ExitStatus{}, &Error{status, le.Msg}
		}
		return kernel.ExitStatus{}, &Error{ExitRunscFailed, err.Error()}
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			logging.Debugf("forwarding %v to the sandbox", s)
			k.SendSignal(s.(unix.Signal))
		}
	}()
	tg.Start()
	status := tg.Wait()
	logging.Debugf("sandbox exited: %v", status)
	return status, nil
}

func hostCreds() kernel.Creds {
	c := kernel.Creds{
		UID: uint32(os.Getuid()), EUID: uint32(os.Geteuid()),
		GID: uint32(os.Getgid()), EGID: uint32(os.Getegid()),
	}
	c.SUID, c.SGID = c.EUID, c.EGID
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	return c
}

// hwcap is what Linux puts in AT_HWCAP on x86-64: CPUID leaf 1's EDX.
func hwcap() uint64 {
	_, _, _, edx := platform.CPUID(1, 0)
	return uint64(edx)
}

// hostAux is runsc's own auxiliary vector, which carries host facts
// (AT_HWCAP2, AT_MINSIGSTKSZ) the sandbox passes on.
type hostAux []byte

func readHostAux() hostAux {
	b, _ := os.ReadFile("/proc/self/auxv")
	return b
}

// get returns key's value, or def if the vector lacks it.
func (a hostAux) get(key, def uint64) uint64 {
	for i := 0; i+16 <= len(a); i += 16 {
		k := binary.LittleEndian.Uint64(a[i:])
		if k == key {
			return binary.LittleEndian.Uint64(a[i+8:])
		}
		if k == 0 {
			break
		}
	}
	return def
}

// ProbePlatform checks that the named platform works on this host.
func ProbePlatform(name string) error {
	mf, err := memfile.New(1 << 30)
	if err != nil {
		return err
	}
	defer mf.Close()
	p, err := NewPlatform(name, mf.FD())
	if err != nil {
		return err
	}
	return p.Close()
}

// AutoPlatform names the platform --platform=auto picks here.
func AutoPlatform() (string, error) {
	mf, err := memfile.New(1 << 30)
	if err != nil {
		return "", err
	}
	defer mf.Close()
	p, err := NewPlatform("auto", mf.FD())
	if err != nil {
		return "", err
	}
	defer p.Close()
	return p.Name(), nil
}

// ProbeKVM runs the KVM start-up probe: what this host's /dev/kvm does with
// the ring0 entry code, and what its exits cost.
func ProbeKVM() (vmm.Report, error) { return vmm.Probe() }
