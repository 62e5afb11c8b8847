package vfs

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Blocker is an optional Context interface: block until ch is closed, or
// fail with EINTR when a signal arrives first. Contexts without it make
// blocking lock requests fail with EAGAIN-like answers (EINTR).
type Blocker interface {
	Block(ch <-chan struct{}, timeout time.Duration) error
}

// LockRange is a byte range lock request or answer. End is exclusive;
// ToEOF is the end of a lock with length 0 ("to the end, whatever it
// becomes").
type LockRange struct {
	Type  int16 // F_RDLCK, F_WRLCK, F_UNLCK
	Start int64
	End   int64
	PID   int32 // the owner's pid for POSIX locks, -1 for OFD locks
}

// ToEOF is LockRange.End for a lock that runs to the end of the file.
const ToEOF = math.MaxInt64

type rangeLock struct {
	LockRange
	owner any // process (POSIX) or *FileDescription (OFD)
}

type inodeLocks struct {
	flocks map[*FileDescription]int // LOCK_SH or LOCK_EX
	ranges []rangeLock
}

// fileLocks holds every advisory lock of the sandbox. Locks are rare and
// short: one mutex, and a broadcast channel that waiters watch.
type fileLocks struct {
	// held counts inodes with locks, so closes skip the mutex when no
	// lock exists anywhere (the common case).
	held    atomic.Int64
	mu      sync.Mutex
	byInode map[Inode]*inodeLocks
	changed chan struct{}
}

func (l *fileLocks) init() {
	l.byInode = make(map[Inode]*inodeLocks)
	l.changed = make(chan struct{})
}

// wakeLocked tells waiters something was released.
func (l *fileLocks) wakeLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *fileLocks) get(in Inode) *inodeLocks {
	il := l.byInode[in]
	if il == nil {
		il = &inodeLocks{flocks: make(map[*FileDescription]int)}
		l.byInode[in] = il
		l.held.Add(1)
	}
	return il
}

func (l *fileLocks) gc(in Inode, il *inodeLocks) {
	if len(il.flocks) == 0 && len(il.ranges) == 0 {
		delete(l.byInode, in)
		l.held.Add(-1)
	}
}

func block(ctx Context, ch <-chan struct{}) error {
	b, ok := ctx.(Blocker)
	if !ok {
		return unix.EINTR
	}
	return b.Block(ch, -1)
}

// Flock is flock(2) on d: op is LOCK_SH, LOCK_EX or LOCK_UN, with
// LOCK_NB not to wait.
func (v *VFS) Flock(ctx Context, d *FileDescription, op int) error {
	if !d.vd.Ok() {
		return unix.EINVAL
	}
	in := d.vd.Dentry.inode
	kind := op &^ unix.LOCK_NB
	if kind != unix.LOCK_SH && kind != unix.LOCK_EX && kind != unix.LOCK_UN {
		return unix.EINVAL
	}
	l := &v.locks
	for {
		l.mu.Lock()
		il := l.get(in)
		if kind == unix.LOCK_UN {
			if _, ok := il.flocks[d]; ok {
				delete(il.flocks, d)
				l.wakeLocked()
			}
			l.gc(in, il)
			l.mu.Unlock()
			return nil
		}
		conflict := false
		for other, k := range il.flocks {
			if other != d && (kind == unix.LOCK_EX || k == unix.LOCK_EX) {
				conflict = true
				break
			}
		}
		if !conflict {
			il.flocks[d] = kind
			d.locked.Store(true)
			l.mu.Unlock()
			return nil
		}
		ch := l.changed
		l.gc(in, il)
		l.mu.Unlock()
		if op&unix.LOCK_NB != 0 {
			return unix.EWOULDBLOCK
		}
		if err := block(ctx, ch); err != nil {
			return err
		}
	}
}

func overlaps(a, b *LockRange) bool { return a.Start < b.End && b.Start < a.End }

func conflicts(a, b *LockRange) bool {
	return overlaps(a, b) && (a.Type == unix.F_WRLCK || b.Type == unix.F_WRLCK)
}

// TestLock is F_GETLK / F_OFD_GETLK: the first lock of another owner that
// would conflict with req, or req with Type F_UNLCK if none.
func (v *VFS) TestLock(in Inode, owner any, req LockRange) LockRange {
	l := &v.locks
	l.mu.Lock()
	defer l.mu.Unlock()
	if il := l.byInode[in]; il != nil {
		for _, r := range il.ranges {
			if r.owner != owner && conflicts(&r.LockRange, &req) {
				return r.LockRange
			}
		}
	}
	req.Type = unix.F_UNLCK
	return req
}

// SetLock is F_SETLK(W) / F_OFD_SETLK(W): owner is the process for POSIX
// locks and the *FileDescription for OFD locks; d is the description the
// request came through.
func (v *VFS) SetLock(ctx Context, d *FileDescription, owner any, req LockRange, wait bool) error {
	in := d.vd.Dentry.inode
	l := &v.locks
	for {
		l.mu.Lock()
		il := l.get(in)
		if req.Type != unix.F_UNLCK {
			var conflict bool
			for _, r := range il.ranges {
				if r.owner != owner && conflicts(&r.LockRange, &req) {
					conflict = true
					break
				}
			}
			if conflict {
				ch := l.changed
				l.gc(in, il)
				l.mu.Unlock()
				if !wait {
					return unix.EAGAIN
				}
				if err := block(ctx, ch); err != nil {
					return err
				}
				continue
			}
		}
		il.ranges = applyLock(il.ranges, owner, req)
		d.locked.Store(true)
		l.wakeLocked()
		l.gc(in, il)
		l.mu.Unlock()
		return nil
	}
}

// applyLock replaces owner's locks over req's range with req (removing
// them for F_UNLCK), splitting and merging as POSIX requires.
func applyLock(ranges []rangeLock, owner any, req LockRange) []rangeLock {
	out := ranges[:0:0]
	for _, r := range ranges {
		if r.owner != owner || !(r.Start < req.End && req.Start < r.End) {
			// Adjacent same-type ranges of the owner merge with req.
			if r.owner == owner && r.Type == req.Type && req.Type != unix.F_UNLCK &&
				(r.End == req.Start || req.End == r.Start) {
				req.Start, req.End = min(req.Start, r.Start), max(req.End, r.End)
				continue
			}
			out = append(out, r)
			continue
		}
		if r.Type == req.Type {
			req.Start, req.End = min(req.Start, r.Start), max(req.End, r.End)
			continue
		}
		if r.Start < req.Start {
			left := r
			left.End = req.Start
			out = append(out, left)
		}
		if r.End > req.End {
			right := r
			right.Start = req.End
			out = append(out, right)
		}
	}
	if req.Type != unix.F_UNLCK {
		out = append(out, rangeLock{req, owner})
	}
	return out
}

// ReleasePOSIX drops owner's POSIX locks on in: a process loses them when
// it closes any descriptor of the file.
func (v *VFS) ReleasePOSIX(in Inode, owner any) {
	l := &v.locks
	if l.held.Load() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	il := l.byInode[in]
	if il == nil {
		return
	}
	n := len(il.ranges)
	il.ranges = applyLock(il.ranges, owner, LockRange{Type: unix.F_UNLCK, Start: 0, End: ToEOF})
	if len(il.ranges) != n {
		l.wakeLocked()
	}
	l.gc(in, il)
}

// releaseDescription drops d's flock and OFD locks when it closes.
func (l *fileLocks) releaseDescription(d *FileDescription) {
	in := d.vd.Dentry.inode
	l.mu.Lock()
	defer l.mu.Unlock()
	il := l.byInode[in]
	if il == nil {
		return
	}
	delete(il.flocks, d)
	il.ranges = applyLock(il.ranges, d, LockRange{Type: unix.F_UNLCK, Start: 0, End: ToEOF})
	l.wakeLocked()
	l.gc(in, il)
}
