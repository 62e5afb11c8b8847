package pipe

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/mm"
	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// fakeCtx is a task as far as pipes care: it blocks until the channel
// closes or interrupt fires (EINTR), like kernel.Task.Block.
type fakeCtx struct {
	interrupt chan struct{}
}

func newCtx() *fakeCtx { return &fakeCtx{interrupt: make(chan struct{})} }

func (c *fakeCtx) FSCredentials() *vfs.Credentials { return &vfs.Credentials{} }
func (c *fakeCtx) WaitHostFD(int, int16, time.Duration) error {
	return unix.ENOSYS
}
func (c *fakeCtx) MM() *mm.MM { return nil }

func (c *fakeCtx) Block(ch <-chan struct{}, timeout time.Duration) error {
	var after <-chan time.Time
	if timeout >= 0 {
		after = time.After(timeout)
	}
	select {
	case <-ch:
		return nil
	case <-c.interrupt:
		return unix.EINTR
	case <-after:
		return unix.ETIMEDOUT
	}
}

var _ vfs.Blocker = (*fakeCtx)(nil)

// ends opens a fresh pipe's read and write ends with extra status flags.
func ends(flags int) (*Pipe, *End, *End) {
	p := New()
	return p, p.Open(unix.O_RDONLY | flags), p.Open(unix.O_WRONLY | flags)
}

func write(t *testing.T, w *End, s string) {
	t.Helper()
	n, err := w.Write(newCtx(), [][]byte{[]byte(s)}, -1)
	if err != nil || n != len(s) {
		t.Fatalf("write %q = %d, %v", s, n, err)
	}
}

func read(t *testing.T, r *End, max int) string {
	t.Helper()
	b := make([]byte, max)
	n, err := r.Read(newCtx(), [][]byte{b}, -1)
	if err != nil {
		t.Fatalf("read = %d, %v", n, err)
	}
	return string(b[:n])
}

// eventually runs f in a goroutine and returns a channel with its result,
// checking that it has not finished after a short while (it blocks).
func blocked[T any](t *testing.T, f func() T) <-chan T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		t.Fatalf("returned %v without waiting", v)
	case <-time.After(30 * time.Millisecond):
	}
	return ch
}

func wait[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("still blocked")
	}
	panic("unreachable")
}

type result struct {
	n   int
	err error
}

func TestEOFWhenWritersGone(t *testing.T) {
	_, r, w := ends(0)
	write(t, w, "abc")
	w.Release()
	if got := read(t, r, 10); got != "abc" {
		t.Fatalf("read %q, want abc", got)
	}
	if got := read(t, r, 10); got != "" {
		t.Fatalf("read at EOF %q, want nothing", got)
	}
}

func TestReadWaitsForWriter(t *testing.T) {
	_, r, w := ends(0)
	ch := blocked(t, func() string { return read(t, r, 10) })
	write(t, w, "hi")
	if got := wait(t, ch); got != "hi" {
		t.Fatalf("read %q, want hi", got)
	}
	// A blocked reader wakes with EOF when the last writer goes.
	ch = blocked(t, func() string { return read(t, r, 10) })
	w.Release()
	if got := wait(t, ch); got != "" {
		t.Fatalf("read %q, want EOF", got)
	}
}

func TestReadInterrupted(t *testing.T) {
	_, r, _ := ends(0)
	ctx := newCtx()
	ch := blocked(t, func() result {
		n, err := r.Read(ctx, [][]byte{make([]byte, 4)}, -1)
		return result{n, err}
	})
	close(ctx.interrupt)
	if res := wait(t, ch); res.err != unix.EINTR {
		t.Fatalf("interrupted read = %v, want EINTR", res)
	}
}

func TestEPIPEWhenReadersGone(t *testing.T) {
	_, r, w := ends(0)
	r.Release()
	if n, err := w.Write(newCtx(), [][]byte{[]byte("x")}, -1); err != unix.EPIPE || n != 0 {
		t.Fatalf("write without readers = %d, %v, want EPIPE", n, err)
	}
	// A writer waiting for room fails with EPIPE when the reader goes.
	_, r, w = ends(0)
	write(t, w, string(make([]byte, DefaultSize)))
	ch := blocked(t, func() result {
		n, err := w.Write(newCtx(), [][]byte{[]byte("more")}, -1)
		return result{n, err}
	})
	r.Release()
	if res := wait(t, ch); res.err != unix.EPIPE {
		t.Fatalf("blocked write = %v, want EPIPE", res)
	}
}

func TestNonblockEAGAIN(t *testing.T) {
	_, r, w := ends(unix.O_NONBLOCK)
	if _, err := r.Read(newCtx(), [][]byte{make([]byte, 4)}, -1); err != unix.EAGAIN {
		t.Fatalf("empty non-blocking read: %v, want EAGAIN", err)
	}
	big := make([]byte, DefaultSize+100)
	n, err := w.Write(newCtx(), [][]byte{big}, -1)
	if err != nil || n != DefaultSize {
		t.Fatalf("oversized non-blocking write = %d, %v, want a partial %d", n, err, DefaultSize)
	}
	if _, err := w.Write(newCtx(), [][]byte{[]byte("x")}, -1); err != unix.EAGAIN {
		t.Fatalf("write to a full non-blocking pipe: %v, want EAGAIN", err)
	}
	// Room for less than PIPE_BUF: a small write waits (EAGAIN) rather
	// than splitting, a larger one goes in part.
	read(t, r, 100)
	if _, err := w.Write(newCtx(), [][]byte{make([]byte, 200)}, -1); err != unix.EAGAIN {
		t.Fatalf("200-byte write into 100 bytes of room: %v, want EAGAIN", err)
	}
	if n, err := w.Write(newCtx(), [][]byte{make([]byte, Atomic+1)}, -1); err != nil || n != 100 {
		t.Fatalf("%d-byte write into 100 bytes of room = %d, %v, want 100", Atomic+1, n, err)
	}
}

func TestNowaitOverridesBlockingEnd(t *testing.T) {
	_, r, w := ends(0)
	if _, err := r.ReadNowait(newCtx(), [][]byte{make([]byte, 4)}); err != unix.EAGAIN {
		t.Fatalf("ReadNowait on an empty pipe: %v, want EAGAIN", err)
	}
	write(t, w, string(make([]byte, DefaultSize)))
	if _, err := w.WriteNowait(newCtx(), [][]byte{[]byte("x")}); err != unix.EAGAIN {
		t.Fatalf("WriteNowait on a full pipe: %v, want EAGAIN", err)
	}
	if _, err := r.ReadSome(newCtx(), 10, func(b []byte) int { return len(b) }, true, true); err != nil {
		t.Fatalf("ReadSome with data: %v", err)
	}
}

func TestAtomicConcurrentWriters(t *testing.T) {
	_, r, w := ends(0)
	const writers, records = 8, 64
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := bytes.Repeat([]byte{byte('a' + i)}, Atomic)
			for range records {
				if n, err := w.Write(newCtx(), [][]byte{rec}, -1); err != nil || n != Atomic {
					t.Errorf("writer %d: %d, %v", i, n, err)
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		w.Release()
	}()
	var all []byte
	buf := make([]byte, 3000) // reads that cut across records
	for {
		n, err := r.Read(newCtx(), [][]byte{buf}, -1)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		all = append(all, buf[:n]...)
	}
	if len(all) != writers*records*Atomic {
		t.Fatalf("read %d bytes, want %d", len(all), writers*records*Atomic)
	}
	for off := 0; off < len(all); off += Atomic {
		rec := all[off : off+Atomic]
		if bytes.Count(rec, rec[:1]) != Atomic {
			t.Fatalf("record at %d is interleaved", off)
		}
	}
}

func TestSetSize(t *testing.T) {
	p, r, w := ends(0)
	if p.Size() != DefaultSize {
		t.Fatalf("new pipe size %d", p.Size())
	}
	for _, bad := range []int{0, -1, MaxSize + 1} {
		if _, err := p.SetSize(bad); err != unix.EINVAL {
			t.Errorf("SetSize(%d): %v, want EINVAL", bad, err)
		}
	}
	if n, err := p.SetSize(5000); err != nil || n != 8192 {
		t.Fatalf("SetSize(5000) = %d, %v, want 8192 (rounded to a power of two pages)", n, err)
	}
	// Wrap the ring, then shrink below the buffered bytes (EBUSY) and to
	// exactly them (the data survives, in order).
	write(t, w, string(make([]byte, 6000)))
	read(t, r, 6000)
	data := bytes.Repeat([]byte("0123456789"), 500)
	write(t, w, string(data))
	if _, err := p.SetSize(4096); err != unix.EBUSY {
		t.Fatalf("shrinking below the buffered 5000 bytes: %v, want EBUSY", err)
	}
	if n, err := p.SetSize(MaxSize); err != nil || n != MaxSize {
		t.Fatalf("SetSize(MaxSize) = %d, %v", n, err)
	}
	if got := read(t, r, 10000); got != string(data) {
		t.Fatal("data changed across the resize")
	}
}

func TestFIFOOpenRules(t *testing.T) {
	p := New()
	e, err := p.OpenFIFO(newCtx(), unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		t.Fatalf("O_RDONLY|O_NONBLOCK without a writer: %v", err)
	}
	e.Release()

	if _, err := New().OpenFIFO(newCtx(), unix.O_WRONLY|unix.O_NONBLOCK); err != unix.ENXIO {
		t.Fatalf("O_WRONLY|O_NONBLOCK without a reader: %v, want ENXIO", err)
	}

	p = New()
	rw, err := p.OpenFIFO(newCtx(), unix.O_RDWR)
	if err != nil {
		t.Fatalf("O_RDWR: %v", err)
	}
	// O_RDWR counts as a reader: a non-blocking writer may now open.
	w, err := p.OpenFIFO(newCtx(), unix.O_WRONLY|unix.O_NONBLOCK)
	if err != nil {
		t.Fatalf("O_WRONLY|O_NONBLOCK with an O_RDWR reader: %v", err)
	}
	w.Release()
	rw.Release()

	// Blocking opens wait for the other side.
	p = New()
	rch := blocked(t, func() error { _, err := p.OpenFIFO(newCtx(), unix.O_RDONLY); return err })
	w, err = p.OpenFIFO(newCtx(), unix.O_WRONLY)
	if err != nil {
		t.Fatalf("O_WRONLY with a waiting reader: %v", err)
	}
	if err := wait(t, rch); err != nil {
		t.Fatalf("waiting O_RDONLY: %v", err)
	}
	p = New()
	wch := blocked(t, func() error { _, err := p.OpenFIFO(newCtx(), unix.O_WRONLY); return err })
	r, err := p.OpenFIFO(newCtx(), unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(t, wch); err != nil {
		t.Fatalf("waiting O_WRONLY: %v", err)
	}
	r.Release()

	// An interrupted open fails with EINTR and leaves no end counted.
	p = New()
	ctx := newCtx()
	ich := blocked(t, func() error { _, err := p.OpenFIFO(ctx, unix.O_WRONLY); return err })
	close(ctx.interrupt)
	if err := wait(t, ich); err != unix.EINTR {
		t.Fatalf("interrupted open: %v, want EINTR", err)
	}
	if p.writers != 0 || p.readers != 0 {
		t.Fatalf("interrupted open left %d writers, %d readers", p.writers, p.readers)
	}
}

func TestWriteSome(t *testing.T) {
	p, r, w := ends(0)
	p.SetSize(4096)
	// Leave 100 bytes at 2900 so the free space wraps: two pieces.
	write(t, w, string(make([]byte, 3000)))
	read(t, r, 2900)
	src := bytes.Repeat([]byte("xyz"), 2000)
	var calls int
	fill := Gather([][]byte{src})
	n, err := w.WriteSome(newCtx(), len(src), func(b []byte) int { calls++; return fill(b) }, false)
	if err != nil || n != 3996 || calls != 2 {
		t.Fatalf("WriteSome into a wrapped 4 KiB pipe holding 100 = %d, %v in %d calls, want 3996 in 2", n, err, calls)
	}
	read(t, r, 100)
	if got := read(t, r, 5000); got != string(src[:3996]) {
		t.Fatal("WriteSome bytes come back wrong")
	}
	// Short fill: the source ran dry.
	if n, err := w.WriteSome(newCtx(), 100, func(b []byte) int { return copy(b, "abc") }, false); n != 3 || err != nil {
		t.Fatalf("short fill = %d, %v, want 3", n, err)
	}
	// Full: EAGAIN with nonblock, else wait for any room and take only it.
	write(t, w, string(make([]byte, 4093)))
	if _, err := w.WriteSome(newCtx(), 10, Gather([][]byte{[]byte("0123456789")}), true); err != unix.EAGAIN {
		t.Fatalf("WriteSome into a full pipe, nonblock: %v, want EAGAIN", err)
	}
	ch := blocked(t, func() result {
		n, err := w.WriteSome(newCtx(), 10, Gather([][]byte{[]byte("0123456789")}), false)
		return result{n, err}
	})
	read(t, r, 5)
	if res := wait(t, ch); res.n != 5 || res.err != nil {
		t.Fatalf("WriteSome after 5 bytes freed = %v, want 5 (no PIPE_BUF rule)", res)
	}
	if free, err := w.WaitSpace(newCtx(), true); err != unix.EAGAIN {
		t.Fatalf("WaitSpace on a full pipe = %d, %v, want EAGAIN", free, err)
	}
	read(t, r, 4096)
	if free, err := w.WaitSpace(newCtx(), true); err != nil || free != 4096 {
		t.Fatalf("WaitSpace on an empty pipe = %d, %v, want 4096", free, err)
	}
	r.Release()
	if _, err := w.WriteSome(newCtx(), 1, Gather([][]byte{[]byte("x")}), false); err != unix.EPIPE {
		t.Fatalf("WriteSome without readers: %v, want EPIPE", err)
	}
	if _, err := w.WaitSpace(newCtx(), false); err != unix.EPIPE {
		t.Fatalf("WaitSpace without readers: %v, want EPIPE", err)
	}
}

func TestTeeAndSplice(t *testing.T) {
	a, ar, aw := ends(0)
	b, br, bw := ends(0)
	a.SetSize(4096)
	b.SetSize(4096)
	// The source's data wraps at 4096 (it starts at 3000); the
	// destination's free space wraps too (its data starts at 2000).
	write(t, aw, string(make([]byte, 3000)))
	read(t, ar, 2990)
	data := bytes.Repeat([]byte("abcdefg"), 500) // 3500 bytes
	write(t, aw, string(data))
	read(t, ar, 10)
	write(t, bw, string(make([]byte, 2500)))
	read(t, br, 2000)

	n, err := Tee(newCtx(), ar, bw, 10000, false)
	if err != nil || n != 3500 {
		t.Fatalf("Tee = %d, %v, want 3500", n, err)
	}
	if a.Buffered() != 3500 || b.Buffered() != 4000 {
		t.Fatalf("after tee: a holds %d, b %d, want 3500 and 4000", a.Buffered(), b.Buffered())
	}
	read(t, br, 500)
	if got := read(t, br, 4096); got != string(data) {
		t.Fatal("teed bytes differ")
	}
	// Splice is limited by the destination's room and by max.
	write(t, bw, string(make([]byte, 3000)))
	n, err = Splice(newCtx(), ar, bw, 10000, false)
	if err != nil || n != 1096 {
		t.Fatalf("Splice into 1096 bytes of room = %d, %v", n, err)
	}
	if a.Buffered() != 3500-1096 {
		t.Fatalf("splice left %d in the source, want %d", a.Buffered(), 3500-1096)
	}
	read(t, br, 3000)
	if got := read(t, br, 4096); got != string(data[:1096]) {
		t.Fatal("spliced bytes differ")
	}
	if n, err := Splice(newCtx(), ar, bw, 4, false); n != 4 || err != nil {
		t.Fatalf("Splice with max 4 = %d, %v", n, err)
	}
	if got := read(t, br, 10); got != string(data[1096:1100]) {
		t.Fatalf("read %q after a 4-byte splice", got)
	}

	if _, err := Tee(newCtx(), ar, aw, 1, false); err != unix.EINVAL {
		t.Fatalf("Tee to the same pipe: %v, want EINVAL", err)
	}
	// Destination full: EAGAIN, or wait for room.
	write(t, bw, string(make([]byte, 4096)))
	if _, err := Splice(newCtx(), ar, bw, 10, true); err != unix.EAGAIN {
		t.Fatalf("Splice into a full pipe, nonblock: %v, want EAGAIN", err)
	}
	ch := blocked(t, func() result { n, err := Splice(newCtx(), ar, bw, 10, false); return result{n, err} })
	read(t, br, 4096)
	if res := wait(t, ch); res.n != 10 || res.err != nil {
		t.Fatalf("Splice after room = %v, want 10", res)
	}
	read(t, br, 4096)

	// Source empty: EAGAIN, or wait for data; EOF once writers are gone.
	read(t, ar, 4096)
	if _, err := Tee(newCtx(), ar, bw, 10, true); err != unix.EAGAIN {
		t.Fatalf("Tee from an empty pipe, nonblock: %v, want EAGAIN", err)
	}
	ch = blocked(t, func() result { n, err := Tee(newCtx(), ar, bw, 10, false); return result{n, err} })
	write(t, aw, "late")
	if res := wait(t, ch); res.n != 4 || res.err != nil {
		t.Fatalf("Tee after a write = %v, want 4", res)
	}
	read(t, ar, 10)
	aw.Release()
	if n, err := Splice(newCtx(), ar, bw, 10, false); n != 0 || err != nil {
		t.Fatalf("Splice from a drained writerless pipe = %d, %v, want EOF", n, err)
	}
	br.Release()
	_, ar2, aw2 := ends(0)
	write(t, aw2, "x")
	if _, err := Splice(newCtx(), ar2, bw, 10, false); err != unix.EPIPE {
		t.Fatalf("Splice to a readerless pipe: %v, want EPIPE", err)
	}
}

// Transfers in opposite directions at once must not deadlock on the two
// pipes' locks.
func TestSpliceOppositeDirections(t *testing.T) {
	_, ar, aw := ends(0)
	_, br, bw := ends(0)
	write(t, aw, "ping")
	write(t, bw, "pong")
	var wg sync.WaitGroup
	errs := make(chan error, 2000)
	for range 1000 {
		wg.Add(2)
		go func() { defer wg.Done(); _, err := Tee(newCtx(), ar, bw, 1, true); errs <- err }()
		go func() { defer wg.Done(); _, err := Tee(newCtx(), br, aw, 1, true); errs <- err }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock")
	}
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			t.Fatal(err)
		}
	}
}

func TestScatterGather(t *testing.T) {
	a, b := make([]byte, 2), make([]byte, 5)
	sc := Scatter([][]byte{a, nil, b})
	if n := sc([]byte("abc")); n != 3 {
		t.Fatalf("scatter 3 = %d", n)
	}
	if n := sc([]byte("defghij")); n != 4 {
		t.Fatalf("scatter past the end = %d, want 4", n)
	}
	if string(a)+string(b) != "abcdefg" {
		t.Fatalf("scattered %q %q", a, b)
	}
	g := Gather([][]byte{[]byte("ab"), nil, []byte("cde")})
	dst := make([]byte, 4)
	if n := g(dst); n != 4 || string(dst) != "abcd" {
		t.Fatalf("gather = %d %q", n, dst)
	}
	if n := g(dst); n != 1 || dst[0] != 'e' {
		t.Fatalf("gather rest = %d %q", n, dst[:n])
	}
}
