package kernel

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// futexKey names a futex word: private futexes by address space and
// address. (Shared futexes across processes come with fork: keyed by the
// backing memory.)
type futexKey struct {
	mm   any
	addr uint64
}

type futexWaiter struct {
	key     futexKey
	bitset  uint32
	woken   chan struct{}
	removed bool
}

// futexTable holds every waiter of the sandbox.
type futexTable struct {
	mu      sync.Mutex
	waiters map[futexKey][]*futexWaiter
}

func (ft *futexTable) enqueue(w *futexWaiter) {
	if ft.waiters == nil {
		ft.waiters = make(map[futexKey][]*futexWaiter)
	}
	ft.waiters[w.key] = append(ft.waiters[w.key], w)
}

func (ft *futexTable) dequeueLocked(w *futexWaiter) {
	q := ft.waiters[w.key]
	for i, x := range q {
		if x == w {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(ft.waiters, w.key)
	} else {
		ft.waiters[w.key] = q
	}
}

// FutexWait blocks while the word at addr holds val, until a wake whose
// bitset meets bitset, a signal (EINTR) or the deadline (ETIMEDOUT; zero
// means none).
func (t *Task) FutexWait(addr uint64, val uint32, bitset uint32, deadline time.Time) error {
	ft := &t.k.futexes
	key := futexKey{t.mm, addr}
	w := &futexWaiter{key: key, bitset: bitset, woken: make(chan struct{})}
	ft.mu.Lock()
	cur, err := t.loadUint32(addr)
	if err != nil {
		ft.mu.Unlock()
		return err
	}
	if cur != val {
		ft.mu.Unlock()
		return unix.EAGAIN
	}
	ft.enqueue(w)
	ft.mu.Unlock()

	timeout := time.Duration(-1)
	if !deadline.IsZero() {
		timeout = time.Until(deadline)
		if timeout < 0 {
			timeout = 0
		}
	}
	err = t.Block(w.woken, timeout)
	ft.mu.Lock()
	if !w.removed {
		ft.dequeueLocked(w)
	}
	ft.mu.Unlock()
	select {
	case <-w.woken:
		return nil
	default:
	}
	return err
}

// FutexWake wakes up to n waiters on addr whose bitset meets bitset.
func (t *Task) FutexWake(addr uint64, n int, bitset uint32) int {
	ft := &t.k.futexes
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.wakeLocked(futexKey{t.mm, addr}, n, bitset)
}

func (ft *futexTable) wakeLocked(key futexKey, n int, bitset uint32) int {
	woken := 0
	for _, w := range append([]*futexWaiter(nil), ft.waiters[key]...) {
		if woken >= n {
			break
		}
		if w.bitset&bitset == 0 {
			continue
		}
		ft.dequeueLocked(w)
		w.removed = true
		close(w.woken)
		woken++
	}
	return woken
}

// FutexRequeue wakes n waiters on addr and moves up to n2 more to addr2;
// with check it first requires the word at addr to hold val (EAGAIN).
func (t *Task) FutexRequeue(addr, addr2 uint64, n, n2 int, check bool, val uint32) (int, error) {
	ft := &t.k.futexes
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if check {
		cur, err := t.loadUint32(addr)
		if err != nil {
			return 0, err
		}
		if cur != val {
			return 0, unix.EAGAIN
		}
	}
	key, key2 := futexKey{t.mm, addr}, futexKey{t.mm, addr2}
	done := ft.wakeLocked(key, n, ^uint32(0))
	moved := 0
	for _, w := range append([]*futexWaiter(nil), ft.waiters[key]...) {
		if moved >= n2 {
			break
		}
		ft.dequeueLocked(w)
		w.key = key2
		ft.enqueue(w)
		moved++
	}
	return done + moved, nil
}

func (t *Task) loadUint32(addr uint64) (uint32, error) {
	if addr%4 != 0 {
		return 0, unix.EINVAL
	}
	var b [4]byte
	if _, err := t.mm.CopyIn(addr, b[:]); err != nil {
		return 0, unix.EFAULT
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24, nil
}
