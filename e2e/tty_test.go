package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal's master and slave, with the given
// window size.
func openPTY(t *testing.T, rows, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pty slave: %v", err)
	}
	ws := unix.Winsize{Row: rows, Col: cols}
	if err := unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &ws); err != nil {
		t.Fatalf("TIOCSWINSZ: %v", err)
	}
	return m, s
}

// runOnPTY runs argv with all three standard streams on a fresh pty and
// returns what it wrote and its status.
func runOnPTY(t *testing.T, argv []string) (string, int) {
	t.Helper()
	master, slave := openPTY(t, 33, 101)
	defer master.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = BaseEnv
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			master.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil { // EIO once every slave is closed
				break
			}
		}
		close(done)
	}()
	err := cmd.Wait()
	<-done
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// TestTerminal runs a program on a pseudo-terminal natively and in the
// sandbox: isatty, TIOCGWINSZ and TCGETS/TCSETS reach the host terminal.
func TestTerminal(t *testing.T) {
	RequireGCC(t)
	prog := Program(t, "tty", Static)
	want, code := runOnPTY(t, []string{prog})
	if code != 0 || !bytes.Contains([]byte(want), []byte("winsize 33x101")) {
		t.Fatalf("native run on a pty: status %d, output %q", code, want)
	}
	ForEachPlatform(t, func(t *testing.T, platform string) {
		got, gotCode := runOnPTY(t, []string{Runsc(t), "--platform=" + platform, "do", prog})
		if got != want || gotCode != code {
			t.Errorf("on a pty:\nnative (status %d):\n%s\nsandbox (status %d):\n%s", code, want, gotCode, got)
		}
	})
}
