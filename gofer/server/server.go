package server

import (
	"errors"
	"io"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

// MaxHandles bounds the handle table of one connection. Allocating more
// fails with ENFILE.
const MaxHandles = 1 << 20

// maxConsecutiveBadMessages ends a connection that sends nothing but
// undecodable messages (this also stops the loop after a sticky stream
// error that Conn reports with a decode-like error value).
const maxConsecutiveBadMessages = 64

// resolveFlags are used for every openat2 call.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openFlagsAllowed are the O_* flags a client may pass to Open/Create.
const openFlagsAllowed = unix.O_ACCMODE | unix.O_TRUNC | unix.O_APPEND |
	unix.O_NONBLOCK | unix.O_DIRECTORY | unix.O_NOATIME | unix.O_DSYNC |
	unix.O_SYNC | unix.O_DIRECT | unix.O_LARGEFILE | unix.O_NOCTTY |
	unix.O_CLOEXEC | unix.O_NOFOLLOW

// oTmpfileBit is O_TMPFILE without the O_DIRECTORY bit it includes.
const oTmpfileBit = unix.O_TMPFILE &^ unix.O_DIRECTORY

// Options configures a Server.
type Options struct {
	// ReadOnly refuses every mutating request and write opens (EROFS).
	ReadOnly bool
}

// Server serves one root directory.
type Server struct {
	rootFD int
	opts   Options
	isRoot bool
}

// New opens root (O_PATH|O_DIRECTORY) and returns a Server for it.
func New(root string, opts Options) (*Server, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &errorWithPath{"open root " + root, err}
	}
	return &Server{rootFD: fd, opts: opts, isRoot: unix.Geteuid() == 0}, nil
}

// NewFromFD returns a Server for the directory open at fd (O_PATH or
// otherwise) and takes ownership of fd. It lets a confined gofer serve a
// root it opened before giving up access to host paths by name. fd must
// refer to a directory; on error it is closed.
func NewFromFD(fd int, opts Options) (*Server, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &errorWithPath{"stat root fd", err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return nil, &errorWithPath{"root fd", unix.ENOTDIR}
	}
	return &Server{rootFD: fd, opts: opts, isRoot: unix.Geteuid() == 0}, nil
}

type errorWithPath struct {
	op  string
	err error
}

func (e *errorWithPath) Error() string { return "gofer/server: " + e.op + ": " + e.err.Error() }
func (e *errorWithPath) Unwrap() error { return e.err }

// Close releases the root descriptor. Connections being served keep their
// own descriptors.
func (s *Server) Close() error { return unix.Close(s.rootFD) }

// handle is one entry of a connection's handle table.
type handle struct {
	fd     int    // O_PATH descriptor of the file itself
	parent int    // O_PATH descriptor of the containing directory, -1 for the root
	name   string // name in parent ("" for the root)
	mode   uint32 // file type bits at lookup time
}

func (h *handle) isDir() bool     { return h.mode&unix.S_IFMT == unix.S_IFDIR }
func (h *handle) isSymlink() bool { return h.mode&unix.S_IFMT == unix.S_IFLNK }

func (h *handle) close() {
	unix.Close(h.fd)
	if h.parent >= 0 {
		unix.Close(h.parent)
	}
}

// conn is the per-connection state.
type conn struct {
	s       *Server
	c       *proto.Conn
	hello   bool
	handles map[uint64]*handle
	next    uint64
}

// Serve serves requests on c until the peer disconnects or the stream
// breaks. It returns nil on a clean EOF. All handles of the connection are
// closed before it returns; c itself is left to the caller.
func (s *Server) Serve(c *proto.Conn) error {
	cn := &conn{s: s, c: c, handles: make(map[uint64]*handle), next: 1}
	defer cn.closeAll()
	bad := 0
	for {
		tag, m, fds, err := c.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if (errors.Is(err, proto.ErrBadMessage) || errors.Is(err, proto.ErrBadName) ||
				errors.Is(err, proto.ErrTruncated)) && bad < maxConsecutiveBadMessages {
				// The frame was consumed but could not be decoded: answer
				// its tag with an error and go on serving.
				bad++
				errno := unix.EBADMSG
				if errors.Is(err, proto.ErrBadName) {
					errno = unix.EINVAL
				}
				if serr := c.Send(tag, &proto.ErrorResp{Errno: int32(errno)}, nil); serr != nil {
					return serr
				}
				continue
			}
			return err
		}
		bad = 0
		for _, fd := range fds { // the server never accepts descriptors
			unix.Close(fd)
		}
		resp, out := cn.handle(m)
		err = c.Send(tag, resp, out)
		for _, fd := range out {
			unix.Close(fd)
		}
		if err != nil {
			return err
		}
	}
}

func (cn *conn) closeAll() {
	for k, h := range cn.handles {
		h.close()
		delete(cn.handles, k)
	}
}

func errResp(err error) *proto.ErrorResp {
	var en unix.Errno
	if !errors.As(err, &en) || en == 0 || en > 4095 {
		en = unix.EIO
	}
	return &proto.ErrorResp{Errno: int32(en)}
}

// handle dispatches one request and returns the response and any
// descriptors to donate with it (closed by the caller after sending).
func (cn *conn) handle(m proto.Message) (proto.Message, []int) {
	if !cn.hello {
		if hm, ok := m.(*proto.HelloReq); ok {
			return cn.doHello(hm)
		}
		return errResp(unix.EPROTO), nil
	}
	var (
		resp proto.Message
		fds  []int
		err  error
	)
	if cn.s.opts.ReadOnly && isMutation(m) {
		return errResp(unix.EROFS), nil
	}
	switch m := m.(type) {
	case *proto.HelloReq:
		err = unix.EPROTO
	case *proto.WalkReq:
		resp, err = cn.walk(m)
	case *proto.StatBatchReq:
		resp, err = cn.statBatch(m)
	case *proto.OpenReq:
		resp, fds, err = cn.open(m)
	case *proto.CreateReq:
		resp, fds, err = cn.create(m)
	case *proto.MkdirReq:
		resp, err = cn.mkdir(m)
	case *proto.MknodReq:
		resp, err = cn.mknod(m)
	case *proto.SymlinkReq:
		resp, err = cn.symlink(m)
	case *proto.LinkReq:
		resp, err = cn.link(m)
	case *proto.UnlinkReq:
		resp, err = cn.unlink(m)
	case *proto.RenameReq:
		resp, err = cn.rename(m)
	case *proto.ReadlinkReq:
		resp, err = cn.readlink(m)
	case *proto.GetdentsReq:
		resp, err = cn.getdents(m)
	case *proto.SetattrReq:
		resp, err = cn.setattr(m)
	case *proto.CloseReq:
		resp, err = cn.closeHandles(m)
	case *proto.StatFSReq:
		resp, err = cn.statfs(m)
	default:
		// A response type or anything else a client must not send.
		err = unix.EBADMSG
	}
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return errResp(err), nil
	}
	return resp, fds
}

func isMutation(m proto.Message) bool {
	switch m.(type) {
	case *proto.CreateReq, *proto.MkdirReq, *proto.MknodReq, *proto.SymlinkReq,
		*proto.LinkReq, *proto.UnlinkReq, *proto.RenameReq, *proto.SetattrReq:
		return true
	}
	return false
}

func (cn *conn) doHello(m *proto.HelloReq) (proto.Message, []int) {
	if m.Version != proto.Version {
		return errResp(unix.EPROTONOSUPPORT), nil
	}
	fd, err := unix.Openat2(cn.s.rootFD, ".", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: resolveFlags,
	})
	if err != nil {
		return errResp(err), nil
	}
	cn.handles[0] = &handle{fd: fd, parent: -1, mode: unix.S_IFDIR}
	cn.hello = true
	max := m.MaxMessageSize
	if max > proto.MaxMessageSize {
		max = proto.MaxMessageSize
	}
	return &proto.HelloResp{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: max}}, nil
}

// get returns the handle h or EBADF.
func (cn *conn) get(h uint64) (*handle, error) {
	hd, ok := cn.handles[h]
	if !ok {
		return nil, unix.EBADF
	}
	return hd, nil
}

// getDir returns directory handle h, ENOTDIR if it is not a directory.
func (cn *conn) getDir(h uint64) (*handle, error) {
	hd, err := cn.get(h)
	if err != nil {
		return nil, err
	}
	if !hd.isDir() {
		return nil, unix.ENOTDIR
	}
	return hd, nil
}

// checkName re-validates a single path component.
func checkName(name string) error {
	if proto.ValidName(name) != nil || strings.ContainsAny(name, "/\x00") {
		return unix.EINVAL
	}
	return nil
}

// openBeneath opens one component name in dirfd with the server's
// resolution restrictions; O_NOFOLLOW and O_CLOEXEC are always added.
func openBeneath(dirfd int, name string, flags int, mode uint32) (int, error) {
	if err := checkName(name); err != nil {
		return -1, err
	}
	for {
		fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
			Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
			Mode:    uint64(mode),
			Resolve: resolveFlags,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// lookup opens name in dir as a new O_PATH handle and stats it.
func (cn *conn) lookup(dir *handle, name string) (uint64, proto.Stat, error) {
	if len(cn.handles) >= MaxHandles {
		return 0, proto.Stat{}, unix.ENFILE
	}
	fd, err := openBeneath(dir.fd, name, unix.O_PATH, 0)
	if err != nil {
		return 0, proto.Stat{}, err
	}
	st, err := statFD(fd)
	if err != nil {
		unix.Close(fd)
		return 0, proto.Stat{}, err
	}
	parent, err := unix.FcntlInt(uintptr(dir.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return 0, proto.Stat{}, err
	}
	id := cn.next
	cn.next++
	cn.handles[id] = &handle{fd: fd, parent: parent, name: name, mode: st.Mode}
	return id, st, nil
}

func statFD(fd int) (proto.Stat, error) {
	var sx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &sx); err != nil {
		return proto.Stat{}, err
	}
	ts := func(t unix.StatxTimestamp) proto.Timespec { return proto.Timespec{Sec: t.Sec, Nsec: t.Nsec} }
	return proto.Stat{
		Mask:      sx.Mask,
		Mode:      uint32(sx.Mode),
		Nlink:     sx.Nlink,
		UID:       sx.Uid,
		GID:       sx.Gid,
		Ino:       sx.Ino,
		DevMajor:  sx.Dev_major,
		DevMinor:  sx.Dev_minor,
		RdevMajor: sx.Rdev_major,
		RdevMinor: sx.Rdev_minor,
		Size:      sx.Size,
		Blocks:    sx.Blocks,
		Blksize:   sx.Blksize,
		Atime:     ts(sx.Atime),
		Mtime:     ts(sx.Mtime),
		Ctime:     ts(sx.Ctime),
		Btime:     ts(sx.Btime),
	}, nil
}

func sameFile(a, b int) error {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		return err
	}
	if err := unix.Fstat(b, &sb); err != nil {
		return err
	}
	if sa.Dev != sb.Dev || sa.Ino != sb.Ino {
		return unix.ESTALE
	}
	return nil
}

// reopen opens the file of handle h with flags (never following symlinks)
// and verifies it is still the same inode.
func (cn *conn) reopen(h *handle, flags int) (int, error) {
	var fd int
	var err error
	if h.parent < 0 {
		for {
			fd, err = unix.Openat2(h.fd, ".", &unix.OpenHow{
				Flags:   uint64(flags | unix.O_CLOEXEC),
				Resolve: resolveFlags,
			})
			if err != unix.EINTR && err != unix.EAGAIN {
				break
			}
		}
	} else {
		fd, err = openBeneath(h.parent, h.name, flags, 0)
	}
	if err != nil {
		return -1, err
	}
	if err := sameFile(fd, h.fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (cn *conn) walk(m *proto.WalkReq) (proto.Message, error) {
	dir, err := cn.getDir(m.Dir)
	if err != nil {
		return nil, err
	}
	resp := &proto.WalkResp{}
	cur := dir
	for _, name := range m.Names {
		if !cur.isDir() {
			resp.Errno = int32(unix.ENOTDIR)
			break
		}
		id, st, err := cn.lookup(cur, name)
		if err != nil {
			resp.Errno = int32(errResp(err).Errno)
			break
		}
		resp.Handles = append(resp.Handles, id)
		resp.Stats = append(resp.Stats, st)
		cur = cn.handles[id]
		if cur.isSymlink() {
			break
		}
	}
	return resp, nil
}

func (cn *conn) statBatch(m *proto.StatBatchReq) (proto.Message, error) {
	resp := &proto.StatBatchResp{
		Stats:  make([]proto.Stat, len(m.Handles)),
		Errnos: make([]int32, len(m.Handles)),
	}
	for i, id := range m.Handles {
		h, err := cn.get(id)
		if err == nil {
			resp.Stats[i], err = statFD(h.fd)
		}
		if err != nil {
			resp.Errnos[i] = errResp(err).Errno
		}
	}
	return resp, nil
}

// checkOpenFlags validates client-supplied open flags.
func (cn *conn) checkOpenFlags(flags uint32) (int, error) {
	f := int(flags)
	if f&^openFlagsAllowed != 0 {
		return 0, unix.EINVAL
	}
	acc := f & unix.O_ACCMODE
	if acc == unix.O_ACCMODE {
		return 0, unix.EINVAL
	}
	if cn.s.opts.ReadOnly && (acc != unix.O_RDONLY || f&(unix.O_TRUNC|unix.O_APPEND) != 0) {
		return 0, unix.EROFS
	}
	return f, nil
}

func (cn *conn) open(m *proto.OpenReq) (proto.Message, []int, error) {
	h, err := cn.get(m.Handle)
	if err != nil {
		return nil, nil, err
	}
	if m.Flags&(unix.O_CREAT|unix.O_EXCL|oTmpfileBit|unix.O_PATH) != 0 {
		return nil, nil, unix.EINVAL
	}
	flags, err := cn.checkOpenFlags(m.Flags)
	if err != nil {
		return nil, nil, err
	}
	switch h.mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return nil, nil, unix.ELOOP
	case unix.S_IFCHR, unix.S_IFBLK:
		return nil, nil, unix.EPERM
	case unix.S_IFSOCK:
		return nil, nil, unix.ENXIO
	case unix.S_IFIFO:
		// Never block the server waiting for the other end.
		flags |= unix.O_NONBLOCK
	}
	fd, err := cn.reopen(h, flags)
	if err != nil {
		return nil, nil, err
	}
	if h.mode&unix.S_IFMT == unix.S_IFIFO && m.Flags&unix.O_NONBLOCK == 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK&^unix.O_ACCMODE); err != nil {
			unix.Close(fd)
			return nil, nil, err
		}
	}
	return &proto.OpenResp{}, []int{fd}, nil
}

// chown sets the owner of fd (any file type, O_PATH allowed) when the
// server runs as root; EPERM is ignored otherwise.
func (cn *conn) chown(fd int, uid, gid uint32) error {
	err := unix.Fchownat(fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.EPERM && !cn.s.isRoot {
		return nil
	}
	return err
}

// chmod changes the permission bits of the file of h without following
// symlinks: fchmodat2(AT_EMPTY_PATH) on its O_PATH descriptor, or on older
// kernels fchmod on a verified read-only reopen.
func (cn *conn) chmod(h *handle, mode uint32) error {
	mode &= 0o7777
	if h.isSymlink() {
		return unix.EOPNOTSUPP
	}
	empty := [1]byte{}
	_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(h.fd), uintptr(unsafe.Pointer(&empty[0])), uintptr(mode), unix.AT_EMPTY_PATH, 0, 0)
	if e == 0 {
		return nil
	}
	if e != unix.ENOSYS && e != unix.EINVAL {
		return e
	}
	flags := unix.O_RDONLY | unix.O_NONBLOCK
	if h.isDir() {
		flags |= unix.O_DIRECTORY
	}
	fd, err := cn.reopen(h, flags)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fchmod(fd, mode)
}

// finishNew turns a freshly created name in dir into a handle, applying
// the exact mode (ignoring the umask) and ownership.
func (cn *conn) finishNew(dir *handle, name string, mode, uid, gid uint32, setMode bool) (proto.Entry, error) {
	id, _, err := cn.lookup(dir, name)
	if err != nil {
		return proto.Entry{}, err
	}
	h := cn.handles[id]
	fail := func(err error) (proto.Entry, error) {
		h.close()
		delete(cn.handles, id)
		return proto.Entry{}, err
	}
	if setMode {
		if err := cn.chmod(h, mode); err != nil {
			return fail(err)
		}
	}
	if err := cn.chown(h.fd, uid, gid); err != nil {
		return fail(err)
	}
	st, err := statFD(h.fd)
	if err != nil {
		return fail(err)
	}
	return proto.Entry{Handle: id, Stat: st}, nil
}

func (cn *conn) create(m *proto.CreateReq) (proto.Message, []int, error) {
	dir, err := cn.getDir(m.Dir)
	if err != nil {
		return nil, nil, err
	}
	if m.Flags&(oTmpfileBit|unix.O_PATH|unix.O_DIRECTORY) != 0 {
		return nil, nil, unix.EINVAL
	}
	flags, err := cn.checkOpenFlags(m.Flags &^ (unix.O_CREAT | unix.O_EXCL))
	if err != nil {
		return nil, nil, err
	}
	if m.Mode&^0o7777 != 0 && m.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, unix.EINVAL
	}
	if len(cn.handles) >= MaxHandles {
		return nil, nil, unix.ENFILE
	}
	fd, err := openBeneath(dir.fd, m.Name, flags|unix.O_CREAT|unix.O_EXCL, m.Mode&0o7777)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.Fchmod(fd, m.Mode&0o7777); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	e, err := cn.finishNew(dir, m.Name, 0, m.UID, m.GID, false)
	if err == nil {
		if err = sameFile(fd, cn.handles[e.Handle].fd); err != nil {
			cn.handles[e.Handle].close()
			delete(cn.handles, e.Handle)
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	return &proto.CreateResp{Entry: e}, []int{fd}, nil
}

func (cn *conn) mkdir(m *proto.MkdirReq) (proto.Message, error) {
	dir, err := cn.getDir(m.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkName(m.Name); err != nil {
		return nil, err
	}
	if err := unix.Mkdirat(dir.fd, m.Name, m.Mode&0o7777); err != nil {
		return nil, err
	}
	e, err := cn.finishNew(dir, m.Name, m.Mode, m.UID, m.GID, true)
	if err != nil {
		return nil, err
	}
	return &proto.MkdirResp{Entry: e}, nil
}

func (cn *conn) mknod(m *proto.MknodReq) (proto.Message, error) {
	dir, err := cn.getDir(m.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkName(m.Name); err != nil {
		return nil, err
	}
	typ := m.Mode & unix.S_IFMT
	switch typ {
	case 0:
		typ = unix.S_IFREG
	case unix.S_IFREG, unix.S_IFIFO:
	default:
		return nil, unix.EPERM
	}
	if err := unix.Mknodat(dir.fd, m.Name, typ|m.Mode&0o7777, 0); err != nil {
		return nil, err
	}
	e, err := cn.finishNew(dir, m.Name, m.Mode, m.UID, m.GID, true)
	if err != nil {
		return nil, err
	}
	return &proto.MknodResp{Entry: e}, nil
}

func (cn *conn) symlink(m *proto.SymlinkReq) (proto.Message, error) {
	dir, err := cn.getDir(m.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkName(m.Name); err != nil {
		return nil, err
	}
	if m.Target == "" || strings.IndexByte(m.Target, 0) >= 0 || len(m.Target) > proto.MaxPathLen {
		return nil, unix.EINVAL
	}
	if err := unix.Symlinkat(m.Target, dir.fd, m.Name); err != nil {
		return nil, err
	}
	e, err := cn.finishNew(dir, m.Name, 0, m.UID, m.GID, false)
	if err != nil {
		return nil, err
	}
	return &proto.SymlinkResp{Entry: e}, nil
}

func (cn *conn) link(m *proto.LinkReq) (proto.Message, error) {
	target, err := cn.get(m.Target)
	if err != nil {
		return nil, err
	}
	dir, err := cn.getDir(m.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkName(m.Name); err != nil {
		return nil, err
	}
	if target.isDir() {
		return nil, unix.EPERM
	}
	// Link the handle's own inode when the kernel allows it
	// (CAP_DAC_READ_SEARCH), else its (parent, name) without following.
	err = unix.Linkat(target.fd, "", dir.fd, m.Name, unix.AT_EMPTY_PATH)
	if err == unix.ENOENT || err == unix.EPERM {
		if target.parent < 0 {
			return nil, unix.EPERM
		}
		err = unix.Linkat(target.parent, target.name, dir.fd, m.Name, 0)
	}
	if err != nil {
		return nil, err
	}
	id, st, err := cn.lookup(dir, m.Name)
	if err != nil {
		return nil, err
	}
	return &proto.LinkResp{Entry: proto.Entry{Handle: id, Stat: st}}, nil
}

func (cn *conn) unlink(m *proto.UnlinkReq) (proto.Message, error) {
	dir, err := cn.getDir(m.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkName(m.Name); err != nil {
		return nil, err
	}
	if m.Flags&^proto.AtRemoveDir != 0 {
		return nil, unix.EINVAL
	}
	if err := unix.Unlinkat(dir.fd, m.Name, int(m.Flags)); err != nil {
		return nil, err
	}
	return &proto.UnlinkResp{}, nil
}

func (cn *conn) rename(m *proto.RenameReq) (proto.Message, error) {
	od, err := cn.getDir(m.OldDir)
	if err != nil {
		return nil, err
	}
	nd, err := cn.getDir(m.NewDir)
	if err != nil {
		return nil, err
	}
	if err := checkName(m.OldName); err != nil {
		return nil, err
	}
	if err := checkName(m.NewName); err != nil {
		return nil, err
	}
	if m.Flags&^(proto.RenameNoReplace|proto.RenameExchange) != 0 {
		return nil, unix.EINVAL
	}
	if err := unix.Renameat2(od.fd, m.OldName, nd.fd, m.NewName, uint(m.Flags)); err != nil {
		return nil, err
	}
	return &proto.RenameResp{}, nil
}

func (cn *conn) readlink(m *proto.ReadlinkReq) (proto.Message, error) {
	h, err := cn.get(m.Handle)
	if err != nil {
		return nil, err
	}
	if !h.isSymlink() {
		return nil, unix.EINVAL
	}
	buf := make([]byte, proto.MaxPathLen+1)
	n, err := unix.Readlinkat(h.fd, "", buf)
	if err != nil {
		return nil, err
	}
	if n == 0 || n > proto.MaxPathLen {
		return nil, unix.ENAMETOOLONG
	}
	t := string(buf[:n])
	if strings.IndexByte(t, 0) >= 0 {
		return nil, unix.EINVAL
	}
	return &proto.ReadlinkResp{Target: t}, nil
}

// direntWireSize is the encoded size of a Dirent with the given name.
func direntWireSize(name string) int { return 8 + 8 + 1 + 2 + len(name) }

func (cn *conn) getdents(m *proto.GetdentsReq) (proto.Message, error) {
	h, err := cn.getDir(m.Handle)
	if err != nil {
		return nil, err
	}
	fd, err := cn.reopen(h, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if m.Cookie > 1<<63-1 {
		return nil, unix.EINVAL
	}
	if _, err := unix.Seek(fd, int64(m.Cookie), io.SeekStart); err != nil {
		return nil, err
	}
	budget := int(m.MaxBytes)
	if limit := proto.MaxMessageSize - proto.HeaderSize - 64; budget > limit {
		budget = limit
	}
	resp := &proto.GetdentsResp{}
	used := 0
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			resp.EOF = true
			return resp, nil
		}
		for off := 0; off < n; {
			if off+19 > n {
				return nil, unix.EIO
			}
			ino := *(*uint64)(unsafe.Pointer(&buf[off]))
			doff := *(*int64)(unsafe.Pointer(&buf[off+8]))
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			typ := buf[off+18]
			if reclen < 19 || off+reclen > n {
				return nil, unix.EIO
			}
			nb := buf[off+19 : off+reclen]
			if i := indexByte(nb, 0); i >= 0 {
				nb = nb[:i]
			}
			name := string(nb)
			off += reclen
			if name == "." || name == ".." || proto.ValidName(name) != nil {
				continue
			}
			sz := direntWireSize(name)
			if used+sz > budget && len(resp.Entries) > 0 {
				// Stop here; the client resumes at the last returned Off.
				return resp, nil
			}
			used += sz
			resp.Entries = append(resp.Entries, proto.Dirent{Ino: ino, Off: uint64(doff), Type: typ, Name: name})
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func (cn *conn) setattr(m *proto.SetattrReq) (proto.Message, error) {
	h, err := cn.get(m.Handle)
	if err != nil {
		return nil, err
	}
	if m.Mask&proto.SetattrSize != 0 {
		if h.isDir() {
			return nil, unix.EISDIR
		}
		if h.mode&unix.S_IFMT != unix.S_IFREG {
			return nil, unix.EINVAL
		}
		if m.Size > 1<<63-1 {
			return nil, unix.EFBIG
		}
		fd, err := cn.reopen(h, unix.O_WRONLY|unix.O_NONBLOCK)
		if err != nil {
			return nil, err
		}
		err = unix.Ftruncate(fd, int64(m.Size))
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
	}
	if m.Mask&proto.SetattrMode != 0 {
		if err := cn.chmod(h, m.Mode); err != nil {
			return nil, err
		}
	}
	if m.Mask&(proto.SetattrUID|proto.SetattrGID) != 0 {
		uid, gid := -1, -1
		if m.Mask&proto.SetattrUID != 0 {
			uid = int(m.UID)
		}
		if m.Mask&proto.SetattrGID != 0 {
			gid = int(m.GID)
		}
		if err := unix.Fchownat(h.fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, err
		}
	}
	if m.Mask&(proto.SetattrAtime|proto.SetattrMtime) != 0 {
		ts := []unix.Timespec{
			{Sec: m.Atime.Sec, Nsec: int64(m.Atime.Nsec)},
			{Sec: m.Mtime.Sec, Nsec: int64(m.Mtime.Nsec)},
		}
		if m.Mask&proto.SetattrAtime == 0 {
			ts[0] = unix.Timespec{Nsec: proto.UtimeOmit}
		}
		if m.Mask&proto.SetattrMtime == 0 {
			ts[1] = unix.Timespec{Nsec: proto.UtimeOmit}
		}
		if err := unix.UtimesNanoAt(h.fd, "", ts, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, err
		}
	}
	st, err := statFD(h.fd)
	if err != nil {
		return nil, err
	}
	return &proto.SetattrResp{Stat: st}, nil
}

func (cn *conn) closeHandles(m *proto.CloseReq) (proto.Message, error) {
	var err error
	for _, id := range m.Handles {
		h, ok := cn.handles[id]
		if !ok {
			err = unix.EBADF
			continue
		}
		h.close()
		delete(cn.handles, id)
	}
	if err != nil {
		return nil, err
	}
	return &proto.CloseResp{}, nil
}

func (cn *conn) statfs(m *proto.StatFSReq) (proto.Message, error) {
	h, err := cn.get(m.Handle)
	if err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(h.fd, &st); err != nil {
		return nil, err
	}
	return &proto.StatFSResp{StatFS: proto.StatFS{
		Type:    uint64(st.Type),
		Bsize:   uint64(st.Bsize),
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		NameLen: uint64(st.Namelen),
		Frsize:  uint64(st.Frsize),
	}}, nil
}
