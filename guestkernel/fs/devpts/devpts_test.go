package devpts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// fakeCtx is a vfs.Context and vfs.Blocker with a small flat "app
// memory" for ioctl arguments (addresses are offsets into mem).
type fakeCtx struct {
	creds vfs.Credentials
	mem   [256]byte
}

func rootCtx() *fakeCtx { return &fakeCtx{creds: vfs.Credentials{Caps: vfs.AllCaps}} }

func (c *fakeCtx) FSCredentials() *vfs.Credentials                 { return &c.creds }
func (c *fakeCtx) WaitHostFD(int, int16, time.Duration) error      { return unix.EINTR }
func (c *fakeCtx) MM() *mm.MM                                      { return nil }
func (c *fakeCtx) CopyIn(addr uint64, dst []byte) (int, error)     { return copy(dst, c.mem[addr:]), nil }
func (c *fakeCtx) CopyOut(addr uint64, src []byte) (int, error)    { return copy(c.mem[addr:], src), nil }
func (c *fakeCtx) Block(ch <-chan struct{}, d time.Duration) error { return blockFor(ch, d) }
func (c *fakeCtx) int32At(addr uint64) int32                       { return int32(binary.LittleEndian.Uint32(c.mem[addr:])) }
func (c *fakeCtx) setInt32(addr uint64, v int32) {
	binary.LittleEndian.PutUint32(c.mem[addr:], uint32(v))
}

// ioc makes an ioctl as ctx (a method promoted from fakeCtx would pass
// the embedded fakeCtx and lose the Session).
func ioc(ctx vfs.Context, f vfs.File, cmd, arg uint64) (uint64, error) { return f.Ioctl(ctx, cmd, arg) }

func blockFor(ch <-chan struct{}, d time.Duration) error {
	if d < 0 {
		<-ch
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ch:
		return nil
	case <-tm.C:
		return unix.ETIMEDOUT
	}
}

// sessionCtx is a fakeCtx that is also a Session and an FDInstaller.
type sessionCtx struct {
	fakeCtx
	pid int32

	mu        sync.Mutex
	ctty      any
	sigs      []unix.Signal
	installed []*vfs.FileDescription
}

func (s *sessionCtx) ControllingTTY() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctty
}

func (s *sessionCtx) SetControllingTTY(t any) {
	s.mu.Lock()
	s.ctty = t
	s.mu.Unlock()
}

func (s *sessionCtx) SignalProcess(sig unix.Signal) {
	s.mu.Lock()
	s.sigs = append(s.sigs, sig)
	s.mu.Unlock()
}

func (s *sessionCtx) ProcessID() int32 { return s.pid }

func (s *sessionCtx) InstallFD(d *vfs.FileDescription, _ bool) (int32, error) {
	d.IncRef()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.installed = append(s.installed, d)
	return int32(len(s.installed) + 2), nil
}

func (s *sessionCtx) signals() []unix.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sigs)
}

// pair makes an unlocked pty with both ends open (the slave O_NOCTTY),
// outside any mount.
func pair(t *testing.T) (*Terminal, *masterFile, *slaveFile) {
	t.Helper()
	fs := New(vfs.New(), DefaultOptions())
	ctx := rootCtx()
	tt, err := fs.newTerminal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := tt.openMaster(nil, unix.O_RDWR)
	tt.locked = false
	s, err := tt.openSlave(ctx, unix.O_RDWR|unix.O_NOCTTY, true)
	if err != nil {
		t.Fatal(err)
	}
	return tt, m, s
}

func write(t *testing.T, f vfs.File, s string) {
	t.Helper()
	n, err := f.Write(rootCtx(), [][]byte{[]byte(s)}, -1)
	if err != nil || n != len(s) {
		t.Fatalf("write %q: %d, %v", s, n, err)
	}
}

// read reads once with O_NONBLOCK semantics off (the data must be
// there or the read must end by itself).
func read(t *testing.T, f vfs.File) string {
	t.Helper()
	buf := make([]byte, 8192)
	n, err := f.Read(rootCtx(), [][]byte{buf}, -1)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf[:n])
}

// drainNow returns what the master has queued, without waiting.
func drainNow(t *testing.T, m *masterFile) string {
	t.Helper()
	m.SetStatusFlags(m.StatusFlags() | unix.O_NONBLOCK)
	defer m.SetStatusFlags(m.StatusFlags() &^ unix.O_NONBLOCK)
	buf := make([]byte, 8192)
	n, err := m.Read(rootCtx(), [][]byte{buf}, -1)
	if err == unix.EAGAIN {
		return ""
	}
	if err != nil {
		t.Fatalf("master read: %v", err)
	}
	return string(buf[:n])
}

func setTermios(tt *Terminal, fn func(*Termios)) {
	x := tt.Termios()
	fn(&x)
	tt.SetTermios(x, false)
}

func TestCanonicalInputAndEcho(t *testing.T) {
	_, m, s := pair(t)
	for _, c := range []struct{ in, line, echo string }{
		{"hello\r", "hello\n", "hello\r\n"},
		{"abx\x7fc\n", "abc\n", "abx\b \bc\r\n"},
		// A tab is erased by as many columns as it took.
		{"ab\t\x7f\x7f\n", "a\n", "ab\t\b\b\b\b\b\b\b \b\r\n"},
		// ECHOCTL: control characters echo as ^X and take two columns.
		{"\x01x\x7f\x7f\n", "\n", "^Ax\b \b\b \b\b \b\r\n"},
		{"foo bar  \x17baz\n", "foo baz\n", "foo bar  " + repeat("\b \b", 5) + "baz\r\n"},
		{"q\x15ok\n", "ok\n", "q\b \bok\r\n"},
		// VLNEXT quotes VINTR; VREPRINT reprints the line.
		{"x\x16\x03y\x12\n", "x\x03y\n", "x^\b^Cy^R\r\nx^Cy\r\n"},
	} {
		write(t, m, c.in)
		if got := read(t, s); got != c.line {
			t.Errorf("%q: slave read %q, want %q", c.in, got, c.line)
		}
		if got := drainNow(t, m); got != c.echo {
			t.Errorf("%q: echo %q, want %q", c.in, got, c.echo)
		}
	}
}

func repeat(s string, n int) string { return string(bytes.Repeat([]byte(s), n)) }

func TestCanonicalLinesAndEOF(t *testing.T) {
	tt, m, s := pair(t)
	write(t, m, "abc\x04")
	if got := read(t, s); got != "abc" {
		t.Errorf("line ended by VEOF: %q", got)
	}
	write(t, m, "\x04")
	if got := read(t, s); got != "" {
		t.Errorf("VEOF alone: %q, want EOF", got)
	}
	write(t, m, "one\ntwo\npart")
	ctx := rootCtx()
	if _, err := ioc(ctx, s, tiocinq, 0); err != nil || ctx.int32At(0) != 8 {
		t.Errorf("TIOCINQ = %d, %v; want the two complete lines (8)", ctx.int32At(0), err)
	}
	if got := read(t, s); got != "one\n" {
		t.Errorf("first line %q", got)
	}
	// A short read leaves the rest of the line.
	buf := make([]byte, 2)
	if n, _ := s.Read(ctx, [][]byte{buf}, -1); string(buf[:n]) != "tw" {
		t.Errorf("short read %q", buf[:n])
	}
	if got := read(t, s); got != "o\n" {
		t.Errorf("rest of the line %q", got)
	}
	s.SetStatusFlags(unix.O_RDWR | unix.O_NONBLOCK)
	if _, err := s.Read(ctx, [][]byte{buf}, -1); err != unix.EAGAIN {
		t.Errorf("partial line: %v, want EAGAIN", err)
	}
	if r := s.Readiness(unix.POLLIN); r != 0 {
		t.Errorf("partial line polls %#x", r)
	}
	// Switching to non-canonical mode makes the partial line readable.
	setTermios(tt, func(x *Termios) { x.Lflag &^= ICANON })
	if got := read(t, s); got != "part" {
		t.Errorf("after -icanon: %q", got)
	}
}

func TestCanonicalOverflow(t *testing.T) {
	_, m, s := pair(t)
	long := repeat("x", 5000)
	write(t, m, long) // never blocks: the last byte keeps being replaced
	write(t, m, "\n")
	got := read(t, s)
	if len(got) != bufSize || got[len(got)-1] != '\n' {
		t.Errorf("overlong line read %d bytes ending %q", len(got), got[len(got)-1:])
	}
}

func TestSignalCharacters(t *testing.T) {
	tt, m, s := pair(t)
	var mu sync.Mutex
	var got []unix.Signal
	tt.SignalForeground(func(sig unix.Signal) {
		mu.Lock()
		got = append(got, sig)
		mu.Unlock()
	})
	write(t, m, "lost\x03")
	write(t, m, "\x1c\x1a")
	write(t, m, "kept\n")
	if line := read(t, s); line != "kept\n" {
		t.Errorf("after VINTR: %q", line)
	}
	if want := []unix.Signal{unix.SIGINT, unix.SIGQUIT, unix.SIGTSTP}; !slices.Equal(got, want) {
		t.Errorf("signals %v, want %v", got, want)
	}
	if e := drainNow(t, m); e != "lost^C^\\^Zkept\r\n" {
		t.Errorf("echo %q", e)
	}
	// NOFLSH keeps the input; without ISIG VINTR is data.
	setTermios(tt, func(x *Termios) { x.Lflag |= NOFLSH })
	write(t, m, "a\x03b\n")
	if line := read(t, s); line != "ab\n" {
		t.Errorf("NOFLSH: %q", line)
	}
	setTermios(tt, func(x *Termios) { x.Lflag &^= ISIG })
	write(t, m, "a\x03b\n")
	if line := read(t, s); line != "a\x03b\n" {
		t.Errorf("-isig: %q", line)
	}
	if len(got) != 4 {
		t.Errorf("signals %v", got)
	}
	// TIOCSWINSZ signals SIGWINCH only on a change.
	ctx := rootCtx()
	copy(ctx.mem[:], []byte{24, 0, 80, 0, 0, 0, 0, 0})
	for i := 0; i < 2; i++ {
		if _, err := ioc(ctx, m, tiocswinsz, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ioc(ctx, s, tiocgwinsz, 16); err != nil || !bytes.Equal(ctx.mem[16:24], ctx.mem[0:8]) {
		t.Errorf("TIOCGWINSZ on the slave: %v %v", ctx.mem[16:24], err)
	}
	if got[len(got)-1] != unix.SIGWINCH || len(got) != 5 {
		t.Errorf("signals after TIOCSWINSZ: %v", got)
	}
}

func TestNonCanonical(t *testing.T) {
	tt, m, s := pair(t)
	setTermios(tt, func(x *Termios) { x.Lflag &^= ICANON; x.CC[VMIN], x.CC[VTIME] = 0, 0 })
	if got := read(t, s); got != "" {
		t.Errorf("VMIN 0 VTIME 0 with nothing queued: %q", got)
	}
	// Without ICANON a typed newline (^J) echoes as ^J, \r (ICRNL) as a newline.
	write(t, m, "\n\r\x7f")
	if got := read(t, s); got != "\n\n\x7f" {
		t.Errorf("raw read %q", got)
	}
	if e := drainNow(t, m); e != "^J\r\n^?" {
		t.Errorf("non-canonical echo %q", e)
	}
	setTermios(tt, func(x *Termios) { x.CC[VTIME] = 1 })
	start := time.Now()
	if got := read(t, s); got != "" || time.Since(start) < 90*time.Millisecond {
		t.Errorf("VTIME 1: %q after %v", got, time.Since(start))
	}
	// VMIN 3: the read waits for three bytes.
	setTermios(tt, func(x *Termios) { x.CC[VMIN], x.CC[VTIME] = 3, 0 })
	done := make(chan string)
	go func() { done <- read(t, s) }()
	write(t, m, "1")
	time.Sleep(20 * time.Millisecond)
	select {
	case got := <-done:
		t.Fatalf("VMIN 3 returned early: %q", got)
	default:
	}
	write(t, m, "23")
	if got := <-done; got != "123" {
		t.Errorf("VMIN 3: %q", got)
	}
	// VMIN 3 VTIME 1: the inter-byte timer ends the read early.
	setTermios(tt, func(x *Termios) { x.CC[VTIME] = 1 })
	write(t, m, "4")
	if got := read(t, s); got != "4" {
		t.Errorf("VMIN 3 VTIME 1: %q", got)
	}
	// poll wants VMIN bytes when VTIME is 0.
	setTermios(tt, func(x *Termios) { x.CC[VTIME] = 0 })
	write(t, m, "ab")
	if r := s.Readiness(unix.POLLIN); r != 0 {
		t.Errorf("2 of VMIN 3 bytes poll %#x", r)
	}
	write(t, m, "c")
	if r := s.Readiness(unix.POLLIN); r&unix.POLLIN == 0 {
		t.Errorf("VMIN bytes poll %#x", r)
	}
}

func TestOutputProcessing(t *testing.T) {
	tt, m, s := pair(t)
	write(t, s, "a\nb\tc\r")
	if got := drainNow(t, m); got != "a\r\nb\tc\r" {
		t.Errorf("ONLCR: %q", got)
	}
	setTermios(tt, func(x *Termios) { x.Oflag |= XTABS | OCRNL })
	write(t, s, "ab\tc\r")
	if got := drainNow(t, m); got != "ab      c\n" {
		t.Errorf("XTABS OCRNL: %q", got)
	}
	setTermios(tt, func(x *Termios) { x.Oflag &^= OPOST })
	write(t, s, "a\n")
	if got := drainNow(t, m); got != "a\n" {
		t.Errorf("-opost: %q", got)
	}
}

func TestBlockingAndFullQueues(t *testing.T) {
	_, m, s := pair(t)
	// A master read waits for the slave.
	done := make(chan string)
	go func() { done <- read(t, m) }()
	time.Sleep(10 * time.Millisecond)
	write(t, s, "x")
	if got := <-done; got != "x" {
		t.Errorf("master read %q", got)
	}
	// The slave's output is bounded: a non-blocking write fills it, a
	// blocking one waits for the master to read.
	s.SetStatusFlags(unix.O_RDWR | unix.O_NONBLOCK)
	big := bytes.Repeat([]byte("y"), 5000)
	n, err := s.Write(rootCtx(), [][]byte{big}, -1)
	if n != outSize || err != nil {
		t.Errorf("non-blocking write of 5000: %d, %v", n, err)
	}
	if _, err := s.Write(rootCtx(), [][]byte{big}, -1); err != unix.EAGAIN {
		t.Errorf("write to a full queue: %v", err)
	}
	if r := s.Readiness(unix.POLLOUT); r != 0 {
		t.Errorf("full queue polls %#x", r)
	}
	s.SetStatusFlags(unix.O_RDWR)
	wrote := make(chan int)
	go func() {
		n, _ := s.Write(rootCtx(), [][]byte{[]byte("zz")}, -1)
		wrote <- n
	}()
	total := 0
	for total < outSize+2 {
		total += len(read(t, m))
	}
	if n := <-wrote; n != 2 {
		t.Errorf("blocked write wrote %d", n)
	}
	// Non-canonical input is bounded too: 4095 bytes.
	setTermios(s.t, func(x *Termios) { x.Lflag &^= ICANON | ECHO })
	m.SetStatusFlags(unix.O_RDWR | unix.O_NONBLOCK)
	if n, _ := m.Write(rootCtx(), [][]byte{big}, -1); n != bufSize-1 {
		t.Errorf("non-canonical input took %d", n)
	}
}

func TestHangups(t *testing.T) {
	tt, m, s := pair(t)
	write(t, s, "bye")
	s.Release()
	if got := read(t, m); got != "bye" {
		t.Errorf("data before EIO: %q", got)
	}
	if _, err := m.Read(rootCtx(), [][]byte{make([]byte, 8)}, -1); err != unix.EIO {
		t.Errorf("master read with the slave closed: %v", err)
	}
	if r := m.Readiness(unix.POLLIN); r&unix.POLLHUP == 0 {
		t.Errorf("master polls %#x", r)
	}
	s, err := tt.openSlave(rootCtx(), unix.O_RDWR|unix.O_NOCTTY, true)
	if err != nil {
		t.Fatal(err)
	}
	m.SetStatusFlags(unix.O_RDWR | unix.O_NONBLOCK)
	if _, err := m.Read(rootCtx(), [][]byte{make([]byte, 8)}, -1); err != unix.EAGAIN {
		t.Errorf("master read after the reopen: %v", err)
	}
	// A slave read blocked on the master wakes with EOF when it closes.
	done := make(chan string)
	go func() { done <- read(t, s) }()
	time.Sleep(10 * time.Millisecond)
	m.Release()
	if got := <-done; got != "" {
		t.Errorf("slave read at hangup: %q", got)
	}
	if _, err := s.Write(rootCtx(), [][]byte{[]byte("x")}, -1); err != unix.EIO {
		t.Errorf("slave write after hangup: %v", err)
	}
	if _, err := ioc(rootCtx(), s, tcgets, 0); err != unix.EIO {
		t.Errorf("TCGETS after hangup: %v", err)
	}
	if r := s.Readiness(unix.POLLIN); r&(unix.POLLHUP|unix.POLLIN) != unix.POLLHUP|unix.POLLIN {
		t.Errorf("hung-up slave polls %#x", r)
	}
	if _, err := tt.openSlave(rootCtx(), unix.O_RDWR, true); err != unix.EIO {
		t.Errorf("opening a hung-up slave: %v", err)
	}
}

func TestTermiosIoctls(t *testing.T) {
	_, m, s := pair(t)
	ctx := rootCtx()
	if _, err := ioc(ctx, s, tcgets2, 0); err != nil {
		t.Fatal(err)
	}
	var got Termios
	got.unmarshal(ctx.mem[:termios2Len])
	if want := DefaultTermios(); got != want {
		t.Errorf("TCGETS2 = %+v, want %+v", got, want)
	}
	// CS7|PARENB: a pty keeps 8 bits without parity.
	x := DefaultTermios()
	x.Cflag = x.Cflag&^CSIZE | 0o40 | PARENB | HUPCL
	x.marshal(ctx.mem[:termiosLen])
	if _, err := ioc(ctx, m, tcsets, 0); err != nil {
		t.Fatal(err)
	}
	if c := s.t.Termios().Cflag; c != B38400|CS8|CREAD|HUPCL {
		t.Errorf("cflag after TCSETS on the master %#o", c)
	}
	ctx.setInt32(100, 0)
	if _, err := ioc(ctx, s, tcflsh, 7); err != unix.EINVAL {
		t.Errorf("TCFLSH 7: %v", err)
	}
	if _, err := ioc(ctx, s, tiocgptn, 100); err != unix.ENOTTY {
		t.Errorf("TIOCGPTN on the slave: %v", err)
	}
	if _, err := ioc(ctx, s, 0x5499, 0); err != unix.ENOTTY {
		t.Errorf("unknown ioctl: %v", err)
	}
	if _, err := ioc(ctx, s, tiocgpgrp, 100); err != unix.ENOTTY {
		t.Errorf("TIOCGPGRP without a controlling tty: %v", err)
	}
	if _, err := ioc(ctx, m, tiocgpgrp, 100); err != nil || ctx.int32At(100) != 0 {
		t.Errorf("TIOCGPGRP on the master: %d %v", ctx.int32At(100), err)
	}
}

// mountDevpts mounts a registered devpts as a namespace root.
func mountDevpts(t *testing.T) (*vfs.VFS, *FS, vfs.VirtualDentry) {
	t.Helper()
	v := vfs.New()
	f, err := Register(v, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ns := v.NewMountNamespace(v.NewSuperblock(f), "devpts", vfs.MountNoSuid|vfs.MountNoExec)
	return v, f.(*FS), ns.Root()
}

func open(v *vfs.VFS, ctx vfs.Context, root vfs.VirtualDentry, path string, flags int) (*vfs.FileDescription, error) {
	return v.Open(ctx, &vfs.Walk{Root: root, Start: root, Path: path, FollowFinal: true}, vfs.OpenOptions{Flags: flags})
}

func names(t *testing.T, fs *FS) []string {
	t.Helper()
	var out []string
	fs.root.IterDir(rootCtx(), 0, func(d vfs.Dirent) bool {
		out = append(out, d.Name)
		return true
	})
	return out
}

func TestLifecycle(t *testing.T) {
	v, fs, root := mountDevpts(t)
	user := &fakeCtx{creds: vfs.Credentials{UID: 1000, GID: 1000}}
	if got := names(t, fs); !slices.Equal(got, []string{"ptmx"}) {
		t.Errorf("empty devpts lists %v", got)
	}
	a, err := v.Stat(user, &vfs.Walk{Root: root, Start: root, Path: "ptmx"})
	if err != nil || a.Mode != unix.S_IFCHR|0o666 || a.Rdev != unix.Mkdev(5, 2) {
		t.Errorf("ptmx: %+v %v", a, err)
	}
	m0, err := open(v, user, root, "ptmx", unix.O_RDWR|unix.O_NOCTTY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ioc(user, m0, tiocgptn, 0); err != nil || user.int32At(0) != 0 {
		t.Errorf("TIOCGPTN = %d, %v", user.int32At(0), err)
	}
	a, err = v.Stat(user, &vfs.Walk{Root: root, Start: root, Path: "0"})
	if err != nil || a.Mode != unix.S_IFCHR|0o620 || a.UID != 1000 || a.GID != 5 || a.Rdev != unix.Mkdev(136, 0) {
		t.Errorf("/dev/pts/0: %+v %v", a, err)
	}
	if _, err := open(v, user, root, "0", unix.O_RDWR|unix.O_NOCTTY); err != unix.EIO {
		t.Errorf("open of a locked slave: %v", err)
	}
	if _, err := ioc(user, m0, tiocgptlck, 0); err != nil || user.int32At(0) != 1 {
		t.Errorf("TIOCGPTLCK = %d, %v", user.int32At(0), err)
	}
	user.setInt32(0, 0)
	if _, err := ioc(user, m0, tiocsptlck, 0); err != nil {
		t.Fatal(err)
	}
	s0, err := open(v, user, root, "0", unix.O_RDWR|unix.O_NOCTTY)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := open(v, user, root, "ptmx", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, fs); !slices.Equal(got, []string{"ptmx", "0", "1"}) {
		t.Errorf("two ptys list %v", got)
	}
	// The node goes with the master, the index with the last end.
	m0.DecRef()
	if _, err := v.Stat(user, &vfs.Walk{Root: root, Start: root, Path: "0"}); err != unix.ENOENT {
		t.Errorf("stat of a closed master's slave: %v", err)
	}
	m2, err := open(v, user, root, "ptmx", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ioc(user, m2, tiocgptn, 0); err != nil || user.int32At(0) != 2 {
		t.Errorf("index while 0's slave is open: %d %v", user.int32At(0), err)
	}
	s0.DecRef()
	m3, err := open(v, user, root, "ptmx", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ioc(user, m3, tiocgptn, 0); err != nil || user.int32At(0) != 0 {
		t.Errorf("index after both ends of 0 closed: %d %v", user.int32At(0), err)
	}
	if got := names(t, fs); !slices.Equal(got, []string{"ptmx", "0", "1", "2"}) {
		t.Errorf("listing %v", got)
	}
	for _, d := range []*vfs.FileDescription{m1, m2, m3} {
		d.DecRef()
	}
	if got := names(t, fs); !slices.Equal(got, []string{"ptmx"}) || len(fs.ptys) != 0 {
		t.Errorf("after every close: %v, %d ptys", got, len(fs.ptys))
	}
	if _, err := fs.root.Mkdir(user, "x", 0o755); err != unix.EPERM {
		t.Errorf("mkdir in devpts: %v", err)
	}
}

func TestControllingTerminal(t *testing.T) {
	v, fs, root := mountDevpts(t)
	sess := &sessionCtx{fakeCtx: *rootCtx(), pid: 1}
	if _, err := fs.openTTY(sess, vfs.VirtualDentry{}, unix.O_RDWR); err != unix.ENXIO {
		t.Errorf("/dev/tty without a controlling terminal: %v", err)
	}
	m, err := open(v, sess, root, "ptmx", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	sess.setInt32(0, 0)
	ioc(sess, m, tiocsptlck, 0)
	// TIOCGPTPEER opens the slave through the mount; O_NOCTTY keeps it
	// from becoming the controlling terminal.
	fd, err := ioc(sess, m, tiocgptpeer, unix.O_RDWR|unix.O_NOCTTY)
	if err != nil || len(sess.installed) != 1 || sess.ControllingTTY() != nil {
		t.Fatalf("TIOCGPTPEER: %d %v, ctty %v", fd, err, sess.ControllingTTY())
	}
	peer := sess.installed[0]
	if st, err := peer.Stat(); err != nil || st.Rdev != unix.Mkdev(136, 0) {
		t.Errorf("peer's stat: %+v %v", st, err)
	}
	// Opening without O_NOCTTY acquires it.
	s, err := open(v, sess, root, "0", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	tt := fs.Lookup(0)
	if sess.ControllingTTY() != tt {
		t.Fatalf("controlling tty %v, want pty 0", sess.ControllingTTY())
	}
	if _, err := ioc(sess, s, tiocgpgrp, 0); err != nil || sess.int32At(0) != 1 {
		t.Errorf("TIOCGPGRP = %d, %v", sess.int32At(0), err)
	}
	if _, err := ioc(sess, m, tiocgsid, 0); err != nil || sess.int32At(0) != 1 {
		t.Errorf("TIOCGSID on the master = %d, %v", sess.int32At(0), err)
	}
	sess.setInt32(0, 7)
	if _, err := ioc(sess, s, tiocspgrp, 0); err != unix.ESRCH {
		t.Errorf("TIOCSPGRP to another group: %v", err)
	}
	tty, err := fs.openTTY(sess, vfs.VirtualDentry{}, unix.O_RDWR)
	if err != nil {
		t.Fatalf("/dev/tty: %v", err)
	}
	write(t, m, "\x03")
	if got := sess.signals(); !slices.Equal(got, []unix.Signal{unix.SIGINT}) {
		t.Errorf("VINTR sent %v", got)
	}
	// TIOCNOTTY gives it up, TIOCSCTTY takes it back.
	if _, err := ioc(sess, tty, tiocnotty, 0); err != nil || sess.ControllingTTY() != nil {
		t.Errorf("TIOCNOTTY: %v", err)
	}
	write(t, m, "\x03")
	if len(sess.signals()) != 1 {
		t.Errorf("VINTR without a foreground group sent %v", sess.signals())
	}
	if _, err := ioc(sess, s, tiocsctty, 0); err != nil || sess.ControllingTTY() != tt {
		t.Errorf("TIOCSCTTY: %v", err)
	}
	// Closing the master hangs up the session.
	m.DecRef()
	if got := sess.signals(); !slices.Equal(got, []unix.Signal{unix.SIGINT, unix.SIGHUP, unix.SIGCONT}) {
		t.Errorf("signals at hangup %v", got)
	}
	if sess.ControllingTTY() != nil {
		t.Errorf("controlling tty kept after hangup")
	}
	for _, f := range []vfs.File{s, peer, tty} {
		if n, err := f.Read(sess, [][]byte{make([]byte, 4)}, -1); n != 0 || err != nil {
			t.Errorf("read after hangup: %d %v", n, err)
		}
	}
	tty.Release()
	peer.DecRef()
	s.DecRef()
	if len(fs.ptys) != 0 {
		t.Errorf("%d ptys left", len(fs.ptys))
	}
}

func TestBlockedReadInterrupted(t *testing.T) {
	_, _, s := pair(t)
	ctx := &interruptCtx{fakeCtx: *rootCtx()}
	if _, err := s.Read(ctx, [][]byte{make([]byte, 4)}, -1); !errors.Is(err, unix.EINTR) {
		t.Errorf("interrupted read: %v", err)
	}
}

type interruptCtx struct{ fakeCtx }

func (c *interruptCtx) Block(<-chan struct{}, time.Duration) error { return unix.EINTR }

// TestNoAllocationPerByte: processing costs a few allocations per call
// (the wake-up channel), not per byte.
func TestNoAllocationPerByte(t *testing.T) {
	_, m, s := pair(t)
	ctx := rootCtx()
	in := [][]byte{bytes.Repeat([]byte("abcdefg\r"), 100)}
	out := [][]byte{make([]byte, 1000)}
	allocs := testing.AllocsPerRun(20, func() {
		src := [][]byte{in[0]}
		m.Write(ctx, src, -1)
		for i := 0; i < 100; i++ {
			dst := [][]byte{out[0]}
			s.Read(ctx, dst, -1)
		}
		for {
			dst := [][]byte{out[0]}
			if n, _ := m.Read(ctx, dst, -1); n < len(out[0]) {
				break
			}
		}
	})
	t.Logf("%v allocations", allocs)
	if allocs > 150 {
		t.Errorf("%v allocations for 800 bytes in 100 lines", allocs)
	}
}
