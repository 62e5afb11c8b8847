package client

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

// Encoded sizes used to keep batched requests and their responses within
// the negotiated message size.
const (
	statWireSize  = 4*10 + 8*3 + 4*12 // encoded proto.Stat
	slack         = 64                // header, counts, flags
	walkEntrySize = 8 + statWireSize  // one handle and stat in WalkResp
	statEntrySize = 4 + statWireSize  // one errno and stat in StatBatchResp
	nameWireSize  = 2 + proto.MaxNameLen
)

// RootHandle is the handle of the served root directory, installed by the
// Hello exchange.
const RootHandle uint64 = 0

// batch is how many elements of size each fit in one message.
func (c *Client) batch(each int) int {
	n := (int(c.maxMsg) - proto.HeaderSize - slack) / each
	return max(n, 1)
}

// Walk walks names from directory handle dir and returns a handle and stat
// for every component walked, in order. Fewer results than names come back
// when the walk stopped after a symlink (the last result, err nil) or
// before a component that failed (err is that component's errno, e.g.
// ENOENT or ENOTDIR, and the results are those walked before it). Every
// returned handle is the caller's to Close, whatever err says.
func (c *Client) Walk(dir uint64, names []string) (handles []uint64, stats []proto.Stat, err error) {
	per := min(proto.MaxWalkNames, c.batch(walkEntrySize), c.batch(nameWireSize))
	for {
		chunk := names[:min(len(names), per)]
		h, s, err := c.walk1(dir, chunk)
		if handles == nil {
			handles, stats = h, s
		} else {
			handles, stats = append(handles, h...), append(stats, s...)
		}
		if err != nil || len(h) < len(chunk) || len(chunk) == len(names) {
			return handles, stats, err
		}
		// A longer walk continues from the chunk's last component, as the
		// server would have within one request.
		switch stats[len(stats)-1].Mode & unix.S_IFMT {
		case unix.S_IFDIR:
		case unix.S_IFLNK:
			return handles, stats, nil
		default:
			return handles, stats, unix.ENOTDIR
		}
		names = names[len(chunk):]
		dir = h[len(h)-1]
	}
}

// walk1 is one Walk round trip.
func (c *Client) walk1(dir uint64, names []string) ([]uint64, []proto.Stat, error) {
	cl := c.get(proto.MsgWalkResp)
	if cl == nil {
		return nil, nil, c.Err()
	}
	cl.req.walk = proto.WalkReq{Dir: dir, Names: names}
	resp, err := c.do(cl, &cl.req.walk)
	if err != nil {
		return nil, nil, err
	}
	w := resp.(*proto.WalkResp)
	c.put(cl)
	if len(w.Handles) > len(names) {
		err := &ProtocolError{Msg: "walk returned more handles than names"}
		c.fail(err)
		return nil, nil, err
	}
	if w.Errno != 0 {
		return w.Handles, w.Stats, unix.Errno(w.Errno)
	}
	return w.Handles, w.Stats, nil
}

// StatBatch stats handles in one round trip (more if they do not fit in a
// message). stats[i] is valid when errnos[i] == 0; errnos[i] is a Linux
// errno otherwise.
func (c *Client) StatBatch(handles []uint64) (stats []proto.Stat, errnos []int32, err error) {
	per := c.batch(statEntrySize)
	for len(handles) > 0 {
		chunk := handles[:min(len(handles), per)]
		s, e, err := c.statBatch1(chunk)
		if err != nil {
			return nil, nil, err
		}
		if stats == nil {
			stats, errnos = s, e
		} else {
			stats, errnos = append(stats, s...), append(errnos, e...)
		}
		handles = handles[len(chunk):]
	}
	return stats, errnos, nil
}

func (c *Client) statBatch1(handles []uint64) ([]proto.Stat, []int32, error) {
	cl := c.get(proto.MsgStatBatchRsp)
	if cl == nil {
		return nil, nil, c.Err()
	}
	cl.req.stat = proto.StatBatchReq{Handles: handles}
	resp, err := c.do(cl, &cl.req.stat)
	if err != nil {
		return nil, nil, err
	}
	r := resp.(*proto.StatBatchResp)
	c.put(cl)
	if len(r.Stats) != len(handles) {
		return nil, nil, &ProtocolError{Msg: "stat batch answered a different number of handles"}
	}
	return r.Stats, r.Errnos, nil
}

// Stat stats one handle.
func (c *Client) Stat(h uint64) (proto.Stat, error) {
	cl := c.get(proto.MsgStatBatchRsp)
	if cl == nil {
		return proto.Stat{}, c.Err()
	}
	// The one-handle array lives in the call so the request does not
	// allocate it.
	cl.one[0] = h
	cl.req.stat = proto.StatBatchReq{Handles: cl.one[:]}
	resp, err := c.do(cl, &cl.req.stat)
	if err != nil {
		return proto.Stat{}, err
	}
	r := resp.(*proto.StatBatchResp)
	c.put(cl)
	if len(r.Stats) != 1 {
		return proto.Stat{}, &ProtocolError{Msg: "stat batch answered a different number of handles"}
	}
	if r.Errnos[0] != 0 {
		return proto.Stat{}, unix.Errno(r.Errnos[0])
	}
	return r.Stats[0], nil
}

// fdFrom takes the single descriptor a response must carry.
func (c *Client) fdFrom(cl *call) (int, error) {
	if len(cl.fds) != 1 {
		c.closeFDs(cl)
		return -1, &ProtocolError{Msg: "response without exactly one descriptor"}
	}
	fd := cl.fds[0]
	cl.fds = nil
	return fd, nil
}

// Open opens the file of handle h with Linux open flags and returns the
// host descriptor the gofer donated (close-on-exec, the caller's).
func (c *Client) Open(h uint64, flags uint32) (int, error) {
	cl := c.get(proto.MsgOpenResp)
	if cl == nil {
		return -1, c.Err()
	}
	cl.req.open = proto.OpenReq{Handle: h, Flags: flags}
	if _, err := c.roundTrip(cl, &cl.req.open); err != nil {
		return -1, err
	}
	fd, err := c.fdFrom(cl)
	c.put(cl)
	return fd, err
}

// Create creates regular file name in dir with permission bits mode and
// owner uid:gid, opens it with flags and returns its handle and stat and
// the open host descriptor.
func (c *Client) Create(dir uint64, name string, flags, mode, uid, gid uint32) (proto.Entry, int, error) {
	cl := c.get(proto.MsgCreateResp)
	if cl == nil {
		return proto.Entry{}, -1, c.Err()
	}
	cl.req.create = proto.CreateReq{Dir: dir, Name: name, Flags: flags, Mode: mode, UID: uid, GID: gid}
	resp, err := c.roundTrip(cl, &cl.req.create)
	if err != nil {
		return proto.Entry{}, -1, err
	}
	e := resp.(*proto.CreateResp).Entry
	fd, err := c.fdFrom(cl)
	c.put(cl)
	if err != nil {
		// The file exists now; give its handle back.
		c.Close(e.Handle)
		return proto.Entry{}, -1, err
	}
	return e, fd, nil
}

// Mkdir creates directory name in dir.
func (c *Client) Mkdir(dir uint64, name string, mode, uid, gid uint32) (proto.Entry, error) {
	cl := c.get(proto.MsgMkdirResp)
	if cl == nil {
		return proto.Entry{}, c.Err()
	}
	cl.req.mkdir = proto.MkdirReq{Dir: dir, Name: name, Mode: mode, UID: uid, GID: gid}
	resp, err := c.do(cl, &cl.req.mkdir)
	if err != nil {
		return proto.Entry{}, err
	}
	c.put(cl)
	return resp.(*proto.MkdirResp).Entry, nil
}

// Mknod creates node name in dir; mode includes the file type.
func (c *Client) Mknod(dir uint64, name string, mode, rdevMajor, rdevMinor, uid, gid uint32) (proto.Entry, error) {
	cl := c.get(proto.MsgMknodResp)
	if cl == nil {
		return proto.Entry{}, c.Err()
	}
	cl.req.mknod = proto.MknodReq{Dir: dir, Name: name, Mode: mode, RdevMajor: rdevMajor, RdevMinor: rdevMinor, UID: uid, GID: gid}
	resp, err := c.do(cl, &cl.req.mknod)
	if err != nil {
		return proto.Entry{}, err
	}
	c.put(cl)
	return resp.(*proto.MknodResp).Entry, nil
}

// Symlink creates symlink name in dir pointing at target.
func (c *Client) Symlink(dir uint64, name, target string, uid, gid uint32) (proto.Entry, error) {
	cl := c.get(proto.MsgSymlinkResp)
	if cl == nil {
		return proto.Entry{}, c.Err()
	}
	cl.req.symlink = proto.SymlinkReq{Dir: dir, Name: name, Target: target, UID: uid, GID: gid}
	resp, err := c.do(cl, &cl.req.symlink)
	if err != nil {
		return proto.Entry{}, err
	}
	c.put(cl)
	return resp.(*proto.SymlinkResp).Entry, nil
}

// Link creates hard link name in dir to the file of handle target and
// returns a new handle for it.
func (c *Client) Link(target, dir uint64, name string) (proto.Entry, error) {
	cl := c.get(proto.MsgLinkResp)
	if cl == nil {
		return proto.Entry{}, c.Err()
	}
	cl.req.link = proto.LinkReq{Target: target, Dir: dir, Name: name}
	resp, err := c.do(cl, &cl.req.link)
	if err != nil {
		return proto.Entry{}, err
	}
	c.put(cl)
	return resp.(*proto.LinkResp).Entry, nil
}

// Unlink removes name from dir; flags is 0 or proto.AtRemoveDir.
func (c *Client) Unlink(dir uint64, name string, flags uint32) error {
	cl := c.get(proto.MsgUnlinkResp)
	if cl == nil {
		return c.Err()
	}
	cl.req.unlink = proto.UnlinkReq{Dir: dir, Name: name, Flags: flags}
	if _, err := c.do(cl, &cl.req.unlink); err != nil {
		return err
	}
	c.put(cl)
	return nil
}

// Rename renames oldDir/oldName to newDir/newName with renameat2 flags
// (proto.RenameNoReplace, proto.RenameExchange).
func (c *Client) Rename(oldDir uint64, oldName string, newDir uint64, newName string, flags uint32) error {
	cl := c.get(proto.MsgRenameResp)
	if cl == nil {
		return c.Err()
	}
	cl.req.rename = proto.RenameReq{OldDir: oldDir, OldName: oldName, NewDir: newDir, NewName: newName, Flags: flags}
	if _, err := c.do(cl, &cl.req.rename); err != nil {
		return err
	}
	c.put(cl)
	return nil
}

// Readlink returns the target of symlink handle h.
func (c *Client) Readlink(h uint64) (string, error) {
	cl := c.get(proto.MsgReadlinkResp)
	if cl == nil {
		return "", c.Err()
	}
	cl.req.readlink = proto.ReadlinkReq{Handle: h}
	resp, err := c.do(cl, &cl.req.readlink)
	if err != nil {
		return "", err
	}
	c.put(cl)
	return resp.(*proto.ReadlinkResp).Target, nil
}

// Getdents reads entries of directory handle h from cookie (0 for the
// start, else a previous Dirent.Off), about maxBytes worth (capped to the
// message size). eof reports that no entries remain after those returned.
func (c *Client) Getdents(h, cookie uint64, maxBytes uint32) (ents []proto.Dirent, eof bool, err error) {
	if limit := c.maxMsg - proto.HeaderSize - slack; maxBytes > limit {
		maxBytes = limit
	}
	cl := c.get(proto.MsgGetdentsResp)
	if cl == nil {
		return nil, false, c.Err()
	}
	cl.req.getdents = proto.GetdentsReq{Handle: h, Cookie: cookie, MaxBytes: maxBytes}
	resp, err := c.do(cl, &cl.req.getdents)
	if err != nil {
		return nil, false, err
	}
	c.put(cl)
	g := resp.(*proto.GetdentsResp)
	return g.Entries, g.EOF, nil
}

// Setattr applies req (its Handle and Mask say what to change) and returns
// the stat after the change.
func (c *Client) Setattr(req proto.SetattrReq) (proto.Stat, error) {
	cl := c.get(proto.MsgSetattrResp)
	if cl == nil {
		return proto.Stat{}, c.Err()
	}
	cl.req.setattr = req
	resp, err := c.do(cl, &cl.req.setattr)
	if err != nil {
		return proto.Stat{}, err
	}
	c.put(cl)
	return resp.(*proto.SetattrResp).Stat, nil
}

// Close releases handles, as few round trips as the message size allows.
// Unknown handles make it fail with EBADF after the others were closed.
func (c *Client) Close(handles ...uint64) error {
	per := c.batch(8)
	var first error
	for len(handles) > 0 {
		chunk := handles[:min(len(handles), per)]
		if err := c.close1(chunk); err != nil && first == nil {
			first = err
		}
		handles = handles[len(chunk):]
	}
	return first
}

func (c *Client) close1(handles []uint64) error {
	cl := c.get(proto.MsgCloseResp)
	if cl == nil {
		return c.Err()
	}
	cl.req.close = proto.CloseReq{Handles: handles}
	if _, err := c.do(cl, &cl.req.close); err != nil {
		return err
	}
	c.put(cl)
	return nil
}

// StatFS returns the statistics of the filesystem holding handle h.
func (c *Client) StatFS(h uint64) (proto.StatFS, error) {
	cl := c.get(proto.MsgStatFSResp)
	if cl == nil {
		return proto.StatFS{}, c.Err()
	}
	cl.req.statfs = proto.StatFSReq{Handle: h}
	resp, err := c.do(cl, &cl.req.statfs)
	if err != nil {
		return proto.StatFS{}, err
	}
	c.put(cl)
	return resp.(*proto.StatFSResp).StatFS, nil
}
