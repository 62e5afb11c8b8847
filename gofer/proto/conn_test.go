package proto

import (
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketpair returns a Conn and the raw fd of its peer.
func socketpair(t *testing.T) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "sock")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConn(nc.(*net.UnixConn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, fds[1]
}

func connPair(t *testing.T) (*Conn, *Conn) {
	a, raw := socketpair(t)
	f := os.NewFile(uintptr(raw), "sock")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewConn(nc.(*net.UnixConn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

type recvResult struct {
	tag uint32
	m   Message
	fds []int
	err error
}

// recvTimeout fails the test instead of hanging.
func recvTimeout(t *testing.T, c *Conn) recvResult {
	t.Helper()
	ch := make(chan recvResult, 1)
	go func() {
		tag, m, fds, err := c.Recv()
		ch <- recvResult{tag, m, fds, err}
	}()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Recv hung")
		return recvResult{}
	}
}

func TestConnAllMessages(t *testing.T) {
	a, b := connPair(t)
	ms := samples()
	go func() {
		for i, m := range ms {
			if err := a.Send(uint32(i), m, nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i, m := range ms {
		r := recvTimeout(t, b)
		if r.err != nil || r.tag != uint32(i) || len(r.fds) != 0 || !reflect.DeepEqual(r.m, m) {
			t.Fatalf("msg %d: %+v", i, r)
		}
	}
}

func TestConnLargeMessage(t *testing.T) {
	a, b := connPair(t)
	hs := make([]uint64, (MaxMessageSize-HeaderSize-4)/8)
	for i := range hs {
		hs[i] = uint64(i)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Send(9, &CloseReq{Handles: hs}, nil) }()
	r := recvTimeout(t, b)
	if r.err != nil || !reflect.DeepEqual(r.m, &CloseReq{Handles: hs}) {
		t.Fatalf("large: %v", r.err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func pipe(t *testing.T) (int, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

func TestConnFDs(t *testing.T) {
	a, b := connPair(t)
	r0, w0 := pipe(t)
	want := &CreateResp{Entry{Handle: 3, Stat: sampleStat(1)}}
	if err := a.Send(42, want, []int{r0, w0}); err != nil {
		t.Fatal(err)
	}
	unix.Close(r0)
	unix.Close(w0)
	res := recvTimeout(t, b)
	if res.err != nil || res.tag != 42 || !reflect.DeepEqual(res.m, want) {
		t.Fatalf("recv: %+v", res)
	}
	if len(res.fds) != 2 {
		t.Fatalf("got %d fds", len(res.fds))
	}
	defer closeFDs(res.fds)
	for _, fd := range res.fds {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d not close-on-exec (%#x, %v)", fd, fl, err)
		}
	}
	if _, err := unix.Write(res.fds[1], []byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, err := unix.Read(res.fds[0], buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestConnTooManyFDs(t *testing.T) {
	a, _ := connPair(t)
	if err := a.Send(1, &OpenResp{}, make([]int, MaxFDs+1)); !errors.Is(err, ErrTooManyFDs) {
		t.Fatalf("err = %v", err)
	}
}

// assertPipeClosed checks that every write end of the pipe is closed, i.e.
// the received copy was not leaked.
func assertPipeClosed(t *testing.T, r int) {
	t.Helper()
	buf := make([]byte, 1)
	n, err := unix.Read(r, buf)
	if n != 0 || err != nil {
		t.Fatalf("pipe write end leaked: n=%d err=%v", n, err)
	}
}

func TestConnMalformedClosesFDs(t *testing.T) {
	c, raw := socketpair(t)
	defer unix.Close(raw)
	r, w := pipe(t)
	defer unix.Close(r)
	bad := walkWith("..")
	if err := unix.Sendmsg(raw, bad, unix.UnixRights(w), nil, 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(w)
	good := encode(t, 5, &CloseResp{})
	if _, err := unix.Write(raw, good); err != nil {
		t.Fatal(err)
	}
	res := recvTimeout(t, c)
	if !errors.Is(res.err, ErrBadName) || res.fds != nil {
		t.Fatalf("recv: %+v", res)
	}
	assertPipeClosed(t, r)
	// The stream stays in sync after a payload error.
	res = recvTimeout(t, c)
	if res.err != nil || res.tag != 5 {
		t.Fatalf("next recv: %+v", res)
	}
}

func TestConnDisconnectMidMessage(t *testing.T) {
	c, raw := socketpair(t)
	r, w := pipe(t)
	defer unix.Close(r)
	b := encode(t, 1, &WalkReq{Dir: 1, Names: []string{"a", "b"}})
	if err := unix.Sendmsg(raw, b[:len(b)-3], unix.UnixRights(w), nil, 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(w)
	unix.Close(raw)
	res := recvTimeout(t, c)
	if !errors.Is(res.err, io.ErrUnexpectedEOF) || res.fds != nil {
		t.Fatalf("recv: %+v", res)
	}
	assertPipeClosed(t, r)
	// Sticky.
	if res := recvTimeout(t, c); !errors.Is(res.err, io.ErrUnexpectedEOF) {
		t.Fatalf("second recv: %v", res.err)
	}
}

func TestConnDisconnectMidHeader(t *testing.T) {
	c, raw := socketpair(t)
	unix.Write(raw, []byte{1, 2, 3})
	unix.Close(raw)
	if res := recvTimeout(t, c); !errors.Is(res.err, io.ErrUnexpectedEOF) {
		t.Fatalf("recv: %v", res.err)
	}
}

func TestConnCleanEOF(t *testing.T) {
	c, raw := socketpair(t)
	unix.Close(raw)
	if res := recvTimeout(t, c); res.err != io.EOF {
		t.Fatalf("recv: %v", res.err)
	}
}

func TestConnBadHeaderSticky(t *testing.T) {
	c, raw := socketpair(t)
	defer unix.Close(raw)
	unix.Write(raw, frame(MaxMessageSize+1, MsgCloseReq, 0, nil))
	if res := recvTimeout(t, c); !errors.Is(res.err, ErrTooLarge) {
		t.Fatalf("recv: %v", res.err)
	}
	if res := recvTimeout(t, c); !errors.Is(res.err, ErrTooLarge) {
		t.Fatalf("not sticky: %v", res.err)
	}
}

func TestConnSendSteadyAllocs(t *testing.T) {
	a, b := connPair(t)
	m := &WalkReq{Dir: 1, Names: []string{"usr", "bin"}}
	// 101 small messages fit in the socket buffer, so no reader is needed
	// while measuring.
	allocs := testing.AllocsPerRun(100, func() {
		if err := a.Send(1, m, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("Send allocates %v per message", allocs)
	}
	for range 101 {
		if r := recvTimeout(t, b); r.err != nil {
			t.Fatal(r.err)
		}
	}
	// Recv allocates only the decoded message (WalkReq, its slice and
	// two strings).
	for range 10 {
		a.Send(1, m, nil)
	}
	allocs = testing.AllocsPerRun(9, func() {
		if _, _, _, err := b.Recv(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Errorf("Recv allocates %v per message", allocs)
	}
}

func TestConnConcurrentSenders(t *testing.T) {
	a, b := connPair(t)
	const senders, per = 4, 200
	for s := range senders {
		go func() {
			for i := range per {
				m := &WalkReq{Dir: uint64(s), Names: []string{"x", "y"}}
				if err := a.Send(uint32(s*per+i), m, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := make(map[uint32]bool)
	for range senders * per {
		r := recvTimeout(t, b)
		if r.err != nil {
			t.Fatal(r.err)
		}
		w := r.m.(*WalkReq)
		if w.Dir != uint64(r.tag/per) || len(w.Names) != 2 || seen[r.tag] {
			t.Fatalf("bad message tag %d: %+v", r.tag, w)
		}
		seen[r.tag] = true
	}
}
