package vfs

import (
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Linux's inotify limits and ioctls.
const (
	// InotifyMaxQueued is /proc/sys/fs/inotify/max_queued_events: past
	// it, events are dropped and one IN_Q_OVERFLOW is queued instead.
	InotifyMaxQueued = 16384

	inotifyEventSize = 16 // struct inotify_event without its name

	fionread            = 0x541b
	inotifyIocSetNextWD = 0x40044900 // _IOW('I', 0, __u32)
	inotifyAnonInode    = 1          // anon_inode's number, shared as on Linux
)

// notifyState is the VFS's side of inotify: which inodes are watched.
// Every hook first loads active, so a sandbox with no watch pays one
// atomic load per read, write or namespace change.
type notifyState struct {
	active atomic.Int32 // len(inodes)
	cookie atomic.Uint32

	// mu guards inodes and every watch's fields; it is taken before an
	// instance's mu. It is held while one operation's events are queued,
	// so they stay together and in Linux's order.
	mu     sync.Mutex
	inodes map[Inode]*watchedInode
}

// watchedInode is the watches of one inode, one per instance at most.
type watchedInode struct {
	inode Inode
	// pin is the dentry the first watch was added through, pinned so the
	// dentry cache does not evict it: a remote filesystem would give the
	// same file a new Inode on the next lookup, and the watch would miss
	// its events.
	pin     *Dentry
	watches []*watch
	// deletePending: the last link went while a description of the
	// dentry was open; as on Linux, IN_DELETE_SELF waits for the close.
	deletePending bool
}

type watch struct {
	in       *Inotify
	target   *watchedInode
	wd       int32
	mask     uint32 // IN_ALL_EVENTS bits
	oneshot  bool
	exclUnlk bool
}

type inotifyEvent struct {
	wd           int32
	mask, cookie uint32
	name         string
}

// size is the event's length as read(2) returns it: the header and the
// name with at least one NUL, padded to a multiple of the header size.
func (e *inotifyEvent) size() int { return inotifyEventSize + paddedNameLen(e.name) }

func paddedNameLen(name string) int {
	if name == "" {
		return 0
	}
	return (len(name) + 1 + inotifyEventSize - 1) &^ (inotifyEventSize - 1)
}

// Inotify is one inotify instance: a File whose reads return the events
// of its watches.
type Inotify struct {
	v     *VFS
	flags atomic.Int32

	mu       sync.Mutex
	queue    []inotifyEvent
	head     int // queue[head:] are pending
	bytes    int // their total size (FIONREAD)
	overflow bool
	changed  chan struct{} // closed at the next event; nil if no one waits
	watches  map[int32]*watch
	nextWD   int32
	released bool
}

// NewInotify makes an instance (inotify_init1); flags may hold
// O_NONBLOCK.
func NewInotify(v *VFS, flags int) *Inotify {
	in := &Inotify{v: v, watches: make(map[int32]*watch), nextWD: 1}
	in.flags.Store(int32(unix.O_RDONLY | flags&unix.O_NONBLOCK))
	return in
}

// AddWatch watches vd's inode for mask's events (inotify_add_watch, the
// path already resolved and checked): with IN_MASK_ADD the events add to
// an existing watch's, with IN_MASK_CREATE an existing watch is EEXIST.
// A second watch of the same inode is the first, and keeps its number.
func (in *Inotify) AddWatch(vd VirtualDentry, mask uint32) (int32, error) {
	n := &in.v.notify
	inode := vd.Dentry.inode
	events := mask & unix.IN_ALL_EVENTS
	n.mu.Lock()
	defer n.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.released {
		return 0, unix.EBADF
	}
	wi := n.inodes[inode]
	if wi != nil {
		for _, w := range wi.watches {
			if w.in != in {
				continue
			}
			if mask&unix.IN_MASK_CREATE != 0 {
				return 0, unix.EEXIST
			}
			if mask&unix.IN_MASK_ADD == 0 {
				w.mask, w.oneshot, w.exclUnlk = 0, false, false
			}
			w.mask |= events
			w.oneshot = w.oneshot || mask&unix.IN_ONESHOT != 0
			w.exclUnlk = w.exclUnlk || mask&unix.IN_EXCL_UNLINK != 0
			return w.wd, nil
		}
	}
	wd, err := in.allocWDLocked()
	if err != nil {
		return 0, err
	}
	if wi == nil {
		if n.inodes == nil {
			n.inodes = make(map[Inode]*watchedInode)
		}
		wi = &watchedInode{inode: inode, pin: vd.Dentry}
		vd.Dentry.IncRef()
		n.inodes[inode] = wi
		n.active.Add(1)
	}
	w := &watch{in: in, target: wi, wd: wd, mask: events,
		oneshot: mask&unix.IN_ONESHOT != 0, exclUnlk: mask&unix.IN_EXCL_UNLINK != 0}
	wi.watches = append(wi.watches, w)
	in.watches[wd] = w
	return wd, nil
}

// allocWDLocked takes the next free watch descriptor, cyclically as
// Linux's idr_alloc_cyclic does: numbers are not reused at once.
func (in *Inotify) allocWDLocked() (int32, error) {
	for range 1 << 31 {
		wd := in.nextWD
		if in.nextWD++; in.nextWD <= 0 {
			in.nextWD = 1
		}
		if in.watches[wd] == nil {
			return wd, nil
		}
	}
	return 0, unix.ENOSPC
}

// RmWatch removes watch wd (inotify_rm_watch), queueing IN_IGNORED.
func (in *Inotify) RmWatch(wd int32) error {
	n := &in.v.notify
	n.mu.Lock()
	defer n.mu.Unlock()
	in.mu.Lock()
	w := in.watches[wd]
	in.mu.Unlock()
	if w == nil {
		return unix.EINVAL
	}
	n.removeLocked(w, true)
	return nil
}

// removeLocked drops w from its inode and instance, with IN_IGNORED to
// the instance if ignored says so.
func (n *notifyState) removeLocked(w *watch, ignored bool) {
	wi := w.target
	for i, o := range wi.watches {
		if o == w {
			wi.watches = append(wi.watches[:i], wi.watches[i+1:]...)
			break
		}
	}
	if len(wi.watches) == 0 && n.inodes[wi.inode] == wi {
		delete(n.inodes, wi.inode)
		n.active.Add(-1)
		wi.pin.DecRef()
	}
	in := w.in
	in.mu.Lock()
	delete(in.watches, w.wd)
	if ignored {
		in.enqueueLocked(w.wd, unix.IN_IGNORED, 0, "")
	}
	in.mu.Unlock()
}

// deliverLocked queues an event on target's watches that want it. name
// is set for a directory's events about its entries; unlinked says the
// event comes through a file descriptor of a removed name (which
// IN_EXCL_UNLINK watches ignore).
func (n *notifyState) deliverLocked(target Inode, mask, cookie uint32, name string, unlinked bool) {
	wi := n.inodes[target]
	if wi == nil {
		return
	}
	if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
		mask &^= unix.IN_ISDIR // inotify never reported it with these
	}
	for i := 0; i < len(wi.watches); i++ {
		w := wi.watches[i]
		if w.mask&mask&unix.IN_ALL_EVENTS == 0 || unlinked && w.exclUnlk {
			continue
		}
		w.in.enqueue(w.wd, mask, cookie, name)
		if w.oneshot {
			n.removeLocked(w, true)
			i--
		}
	}
}

// deleteSelfLocked is the end of an inode's last link: IN_DELETE_SELF,
// then every watch of it goes with IN_IGNORED.
func (n *notifyState) deleteSelfLocked(inode Inode) {
	n.deliverLocked(inode, unix.IN_DELETE_SELF, 0, "", false)
	if wi := n.inodes[inode]; wi != nil {
		for len(wi.watches) > 0 {
			n.removeLocked(wi.watches[0], true)
		}
	}
}

func (n *notifyState) watchedLocked(in Inode) bool { return n.inodes[in] != nil }

func (in *Inotify) enqueue(wd int32, mask, cookie uint32, name string) {
	in.mu.Lock()
	in.enqueueLocked(wd, mask, cookie, name)
	in.mu.Unlock()
}

// enqueueLocked queues an event as fsnotify_insert_event does: a full
// queue gets one IN_Q_OVERFLOW instead, and an event identical to the
// last queued one (but for its cookie) is merged into it.
func (in *Inotify) enqueueLocked(wd int32, mask, cookie uint32, name string) {
	if in.released {
		return
	}
	pending := len(in.queue) - in.head
	ev := inotifyEvent{wd: wd, mask: mask, cookie: cookie, name: name}
	if pending >= InotifyMaxQueued {
		if in.overflow {
			return
		}
		in.overflow = true
		ev = inotifyEvent{wd: -1, mask: unix.IN_Q_OVERFLOW}
	} else if pending > 0 {
		last := &in.queue[len(in.queue)-1]
		if last.mask&unix.IN_IGNORED == 0 && last.mask == mask && last.wd == wd && last.name == name {
			return
		}
	}
	if in.head > 0 && in.head >= len(in.queue)/2 {
		// Reuse the read part of the slice instead of growing it.
		in.queue = in.queue[:copy(in.queue, in.queue[in.head:])]
		in.head = 0
	}
	in.queue = append(in.queue, ev)
	in.bytes += ev.size()
	if in.changed != nil {
		close(in.changed)
		in.changed = nil
	}
}

// Read implements File: as many whole events as fit, EINVAL if not even
// the first does, EAGAIN or a wait if there are none. pread is ESPIPE.
func (in *Inotify) Read(ctx Context, dst [][]byte, offset int64) (int, error) {
	if offset >= 0 {
		return 0, unix.ESPIPE
	}
	room := 0
	for _, b := range dst {
		room += len(b)
	}
	for {
		in.mu.Lock()
		if in.head < len(in.queue) {
			n := in.copyOutLocked(dst, room)
			in.mu.Unlock()
			if n == 0 {
				return 0, unix.EINVAL
			}
			return n, nil
		}
		if in.changed == nil {
			in.changed = make(chan struct{})
		}
		ch := in.changed
		in.mu.Unlock()
		if in.flags.Load()&unix.O_NONBLOCK != 0 {
			return 0, unix.EAGAIN
		}
		b, ok := ctx.(Blocker)
		if !ok {
			return 0, unix.EAGAIN
		}
		if err := b.Block(ch, -1); err != nil {
			return 0, err
		}
	}
}

// copyOutLocked moves whole events into dst while they fit in room.
func (in *Inotify) copyOutLocked(dst [][]byte, room int) int {
	var buf [inotifyEventSize + NameMax + 1]byte
	n := 0
	for in.head < len(in.queue) {
		ev := &in.queue[in.head]
		sz := ev.size()
		if sz > room-n {
			break
		}
		b := buf[:sz]
		clear(b)
		binary.LittleEndian.PutUint32(b[0:], uint32(ev.wd))
		binary.LittleEndian.PutUint32(b[4:], ev.mask)
		binary.LittleEndian.PutUint32(b[8:], ev.cookie)
		binary.LittleEndian.PutUint32(b[12:], uint32(sz-inotifyEventSize))
		copy(b[inotifyEventSize:], ev.name)
		for len(b) > 0 {
			c := copy(dst[0], b)
			b, dst[0] = b[c:], dst[0][c:]
			if len(dst[0]) == 0 {
				dst = dst[1:]
			}
		}
		n += sz
		in.bytes -= sz
		if ev.mask&unix.IN_Q_OVERFLOW != 0 {
			in.overflow = false
		}
		*ev = inotifyEvent{}
		in.head++
	}
	if in.head == len(in.queue) {
		in.queue, in.head = in.queue[:0], 0
	}
	return n
}

// Pending is the size in bytes of the queued events (FIONREAD).
func (in *Inotify) Pending() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.bytes
}

// Write implements File: the instance is read-only.
func (in *Inotify) Write(Context, [][]byte, int64) (int, error) { return 0, unix.EBADF }

// Seek implements File: lseek succeeds and stays at 0, as Linux's
// noop_llseek.
func (in *Inotify) Seek(int64, int) (int64, error) { return 0, nil }

// Stat implements File: an anonymous inode, mode 0600 with no type, as
// Linux's anon_inode.
func (in *Inotify) Stat() (unix.Stat_t, error) {
	return unix.Stat_t{Ino: inotifyAnonInode, Nlink: 1, Mode: 0o600, Blksize: 4096}, nil
}

// Ioctl implements File: FIONREAD and INOTIFY_IOC_SETNEXTWD.
func (in *Inotify) Ioctl(ctx Context, cmd, arg uint64) (uint64, error) {
	switch cmd {
	case fionread:
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(in.Pending()))
		if _, err := ctx.MM().CopyOut(arg, b[:]); err != nil {
			return 0, unix.EFAULT
		}
		return 0, nil
	case inotifyIocSetNextWD:
		if arg < 1 || arg > 1<<31-1 {
			return 0, unix.EINVAL
		}
		in.mu.Lock()
		in.nextWD = int32(arg)
		in.mu.Unlock()
		return 0, nil
	}
	return 0, unix.ENOTTY
}

// Stream implements File. It is false only so that lseek reaches Seek;
// Read refuses pread itself.
func (in *Inotify) Stream() bool { return false }

// StatusFlags implements File.
func (in *Inotify) StatusFlags() int { return int(in.flags.Load()) }

// SetStatusFlags implements File.
func (in *Inotify) SetStatusFlags(flags int) { in.flags.Store(int32(flags)) }

// Readiness implements Poller: readable while events are queued.
func (in *Inotify) Readiness(mask int16) int16 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.head < len(in.queue) {
		return (unix.POLLIN | pollRdNorm) & mask
	}
	return 0
}

const pollRdNorm = 0x40

// Release implements File: the instance's watches go, without events.
func (in *Inotify) Release() {
	n := &in.v.notify
	n.mu.Lock()
	in.mu.Lock()
	in.released = true
	ws := make([]*watch, 0, len(in.watches))
	for _, w := range in.watches {
		ws = append(ws, w)
	}
	in.mu.Unlock()
	for _, w := range ws {
		n.removeLocked(w, false)
	}
	n.mu.Unlock()
}

// The hooks below are called by the VFS's operations where Linux calls
// fsnotify. Each returns at once when no watch exists anywhere.

// watching is the hot-path check.
func (v *VFS) watching() bool { return v.notify.active.Load() != 0 }

// notifyIO reports a read (IN_ACCESS) or write (IN_MODIFY) through d.
// It is small enough to inline into Read and Write.
func (d *FileDescription) notifyIO(mask uint32) {
	if d.v != nil && d.v.notify.active.Load() != 0 {
		d.notifyFDSlow(mask)
	}
}

// notifyFDSlow is kept out of line so that notifyIO inlines.
//
//go:noinline
func (d *FileDescription) notifyFDSlow(mask uint32) { d.v.notifyFD(d, mask) }

// Notify reports mask (IN_MODIFY for ftruncate or fallocate) on the file
// of d, for operations done outside the VFS.
func (d *FileDescription) Notify(mask uint32) {
	if d.vd.Dentry != nil {
		d.notifyIO(mask)
	}
}

// notifyFD reports an event on the file open as d: to its directory's
// watches, with its name, then to its own.
func (v *VFS) notifyFD(d *FileDescription, mask uint32) {
	if d.vd.Dentry == nil {
		return
	}
	if d.isDir {
		mask |= unix.IN_ISDIR
	}
	v.notifyChild(d.vd.Dentry, mask, true)
}

// notifyChild reports a child event on c (an event about the file itself
// that its directory's watches see too). It takes the rename lock to
// find c's directory, so callers must not hold a directory's lock.
func (v *VFS) notifyChild(c *Dentry, mask uint32, viaFD bool) {
	v.renameMu.RLock()
	parent, name := c.parent, c.name
	v.renameMu.RUnlock()
	n := &v.notify
	n.mu.Lock()
	if parent != nil {
		n.deliverLocked(parent.inode, mask, 0, name, viaFD && c.Dead())
	}
	n.deliverLocked(c.inode, mask, 0, "", viaFD && c.Dead())
	n.mu.Unlock()
}

// Notify reports mask on vd's file and to its directory's watches (for
// xattr changes, done outside the VFS, IN_ATTRIB).
func (v *VFS) Notify(ctx Context, vd VirtualDentry, mask uint32) {
	if !v.watching() || vd.Dentry == nil {
		return
	}
	if a, err := stat(ctx, vd.Dentry); err == nil && a.IsDir() {
		mask |= unix.IN_ISDIR
	}
	v.notifyChild(vd.Dentry, mask, false)
}

// notifyOpen reports a successful open of an existing file (typ is its
// file type), and the truncation O_TRUNC did, which Linux reports after
// the open.
func (v *VFS) notifyOpen(vd VirtualDentry, flags int, typ uint32) {
	if !v.watching() {
		return
	}
	mask := uint32(unix.IN_OPEN)
	if typ == unix.S_IFDIR {
		mask |= unix.IN_ISDIR
	}
	v.notifyChild(vd.Dentry, mask, true)
	if typ == unix.S_IFREG && flags&unix.O_TRUNC != 0 && flags&unix.O_ACCMODE != unix.O_RDONLY {
		v.notifyChild(vd.Dentry, unix.IN_MODIFY, true)
	}
}

// notifyOpenNew reports an open of a file with no name yet (O_TMPFILE) or
// of an executable: to its own watches, and for a tmpfile to its
// directory's, named "#ino" as Linux's d_tmpfile names it.
func (v *VFS) notifyOpenNew(ctx Context, vd VirtualDentry) {
	if !v.watching() {
		return
	}
	if vd.Dentry.Dead() {
		n := &v.notify
		name := ""
		if a, err := stat(ctx, vd.Dentry); err == nil {
			name = "#" + strconv.FormatUint(a.Ino, 10)
		}
		n.mu.Lock()
		if vd.Dentry.parent != nil {
			n.deliverLocked(vd.Dentry.parent.inode, unix.IN_OPEN, 0, name, true)
		}
		n.deliverLocked(vd.Dentry.inode, unix.IN_OPEN, 0, "", true)
		n.mu.Unlock()
		return
	}
	v.notifyChild(vd.Dentry, unix.IN_OPEN, true)
}

// notifyCreateOpen reports a file made by a creating open: IN_CREATE on
// dir, then IN_OPEN. The caller holds dir's lock, so c is still dir's.
func (v *VFS) notifyCreateOpen(dir, c *Dentry) {
	if !v.watching() {
		return
	}
	n := &v.notify
	n.mu.Lock()
	n.deliverLocked(dir.inode, unix.IN_CREATE, 0, c.name, false)
	n.deliverLocked(dir.inode, unix.IN_OPEN, 0, c.name, false)
	n.deliverLocked(c.inode, unix.IN_OPEN, 0, "", false)
	n.mu.Unlock()
}

// notifyCreate reports a new name in dir (mkdir, mknod, symlink, link).
func (v *VFS) notifyCreate(ctx Context, dir *Dentry, name string, inode Inode) {
	if !v.watching() || !v.isWatched(dir.inode) {
		return
	}
	mask := uint32(unix.IN_CREATE)
	if a, err := inode.Stat(ctx); err == nil && a.IsDir() {
		mask |= unix.IN_ISDIR
	}
	n := &v.notify
	n.mu.Lock()
	n.deliverLocked(dir.inode, mask, 0, name, false)
	n.mu.Unlock()
}

// notifyLinkCount reports a change of inode's link count (link, and
// unlink through notifyRemove): to its own watches only, as Linux's
// fsnotify_link_count.
func (v *VFS) notifyLinkCount(inode Inode) {
	if !v.watching() {
		return
	}
	n := &v.notify
	n.mu.Lock()
	n.deliverLocked(inode, unix.IN_ATTRIB, 0, "", false)
	n.mu.Unlock()
}

func (v *VFS) isWatched(in Inode) bool {
	n := &v.notify
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.watchedLocked(in)
}

// notifyRemove reports the removal of name from dir, c being the removed
// dentry (already marked dead): for unlink the link count's IN_ATTRIB on
// c, the end of c's watches if that was its last link, then IN_DELETE on
// dir. The caller holds dir's lock.
func (v *VFS) notifyRemove(ctx Context, dir *Dentry, name string, c *Dentry, isDir bool) {
	if !v.watching() {
		return
	}
	if !isDir {
		v.notifyLinkCount(c.inode)
	}
	v.maybeDeleteSelf(ctx, c, isDir)
	mask := uint32(unix.IN_DELETE)
	if isDir {
		mask |= unix.IN_ISDIR
	}
	n := &v.notify
	n.mu.Lock()
	n.deliverLocked(dir.inode, mask, 0, name, false)
	n.mu.Unlock()
}

// maybeDeleteSelf ends c's inode's watches if its last link is gone
// (always so for a removed directory), or marks that to happen when the
// last description open through c closes.
func (v *VFS) maybeDeleteSelf(ctx Context, c *Dentry, isDir bool) {
	if !v.isWatched(c.inode) {
		return
	}
	if !isDir {
		if a, err := c.inode.Stat(ctx); err == nil && a.Nlink > 0 {
			return
		}
	}
	n := &v.notify
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.opens.Load() > 0 {
		if wi := n.inodes[c.inode]; wi != nil {
			wi.deletePending = true
		}
		return
	}
	n.deleteSelfLocked(c.inode)
}

// notifyRename reports a rename from oldName in od to newName in nd of
// src, replacing or exchanging with dst if not nil: IN_MOVED_FROM and
// IN_MOVED_TO with one cookie, IN_ATTRIB for a replaced file's link
// count, IN_MOVE_SELF, then the replaced file's end. The caller holds the
// rename lock and both directories' locks; the dentries are moved.
func (v *VFS) notifyRename(ctx Context, od *Dentry, oldName string, nd *Dentry, newName string, src, dst *Dentry, flags uint32) {
	if !v.watching() {
		return
	}
	isDir := func(c *Dentry) uint32 {
		if a, err := c.inode.Stat(ctx); err == nil && a.IsDir() {
			return unix.IN_ISDIR
		}
		return 0
	}
	exchange := flags&unix.RENAME_EXCHANGE != 0
	n := &v.notify
	move := func(from *Dentry, fromName string, to *Dentry, toName string, c *Dentry) {
		dirBit := isDir(c)
		cookie := n.cookie.Add(1)
		if cookie == 0 {
			cookie = n.cookie.Add(1)
		}
		var replaced uint32
		if dst != nil && !exchange {
			replaced = unix.IN_ATTRIB | isDir(dst)
		}
		n.mu.Lock()
		n.deliverLocked(from.inode, unix.IN_MOVED_FROM|dirBit, cookie, fromName, false)
		n.deliverLocked(to.inode, unix.IN_MOVED_TO|dirBit, cookie, toName, false)
		if replaced != 0 {
			n.deliverLocked(dst.inode, replaced, 0, "", false)
		}
		n.deliverLocked(c.inode, unix.IN_MOVE_SELF, 0, "", false)
		n.mu.Unlock()
	}
	move(od, oldName, nd, newName, src)
	if dst == nil {
		return
	}
	if exchange {
		move(nd, newName, od, oldName, dst)
		return
	}
	v.maybeDeleteSelf(ctx, dst, isDir(dst) != 0)
}

// notifySetAttr reports a SetAttr change as Linux's fsnotify_change: both
// times or mode/owner IN_ATTRIB, size or mtime alone IN_MODIFY, atime
// alone IN_ACCESS.
func (v *VFS) notifySetAttr(ctx Context, vd VirtualDentry, mask uint32) {
	if !v.watching() {
		return
	}
	var ev uint32
	if mask&(SetMode|SetUID|SetGID) != 0 {
		ev |= unix.IN_ATTRIB
	}
	if mask&SetSize != 0 {
		ev |= unix.IN_MODIFY
	}
	switch mask & (SetAtime | SetMtime) {
	case SetAtime | SetMtime:
		ev |= unix.IN_ATTRIB
	case SetAtime:
		ev |= unix.IN_ACCESS
	case SetMtime:
		ev |= unix.IN_MODIFY
	}
	if ev != 0 {
		v.Notify(ctx, vd, ev)
	}
}

// notifyClose is the release of a description: IN_CLOSE_WRITE or
// IN_CLOSE_NOWRITE, then, if it was the last open through a dentry whose
// file lost its last link meanwhile, the file's IN_DELETE_SELF.
func (d *FileDescription) notifyClose() {
	c := d.vd.Dentry
	if c == nil {
		return
	}
	last := c.opens.Add(-1) == 0
	v := d.v
	if v == nil || !v.watching() {
		return
	}
	if _, isPath := d.File.(*pathFile); !isPath {
		mask := uint32(unix.IN_CLOSE_NOWRITE)
		if d.File.StatusFlags()&unix.O_ACCMODE != unix.O_RDONLY {
			mask = unix.IN_CLOSE_WRITE
		}
		v.notifyFD(d, mask)
	}
	if last && c.Dead() {
		n := &v.notify
		n.mu.Lock()
		if wi := n.inodes[c.inode]; wi != nil && wi.deletePending {
			n.deleteSelfLocked(c.inode)
		}
		n.mu.Unlock()
	}
}

// AnonName is what /proc/PID/fd shows for the descriptor.
func (in *Inotify) AnonName() string { return "anon_inode:inotify" }
