package server

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

func TestNewFromFD(t *testing.T) {
	e := newEnv(t, Options{})
	mustWrite(t, filepath.Join(e.root, "x"), "from fd")
	fd, err := unix.Open(e.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewFromFD(fd, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	e.srv = srv // serve through the fd-made server
	cc := e.connect(t)
	h, st := cc.walkOK(0, "x")
	if st.Size != 7 {
		t.Fatalf("stat %+v", st)
	}
	cc.wantErr(&proto.OpenReq{Handle: h, Flags: unix.O_WRONLY}, unix.EROFS)

	// A non-directory is refused and its descriptor closed.
	ffd, err := unix.Open(filepath.Join(e.root, "x"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewFromFD(ffd, Options{}); !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("file fd: %v, want ENOTDIR", err)
	}
	if _, err := unix.FcntlInt(uintptr(ffd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("refused fd still open: %v", err)
	}
}
