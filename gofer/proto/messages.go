package proto

import "fmt"

// MsgType identifies a message. Requests are even; the successful response
// to request t is t+1. MsgError answers any request.
type MsgType uint16

// Message types. These numbers are part of the wire format.
const (
	MsgError        MsgType = 1
	MsgHelloReq     MsgType = 2
	MsgHelloResp    MsgType = 3
	MsgWalkReq      MsgType = 4
	MsgWalkResp     MsgType = 5
	MsgStatBatchReq MsgType = 6
	MsgStatBatchRsp MsgType = 7
	MsgOpenReq      MsgType = 8
	MsgOpenResp     MsgType = 9
	MsgCreateReq    MsgType = 10
	MsgCreateResp   MsgType = 11
	MsgMkdirReq     MsgType = 12
	MsgMkdirResp    MsgType = 13
	MsgMknodReq     MsgType = 14
	MsgMknodResp    MsgType = 15
	MsgSymlinkReq   MsgType = 16
	MsgSymlinkResp  MsgType = 17
	MsgLinkReq      MsgType = 18
	MsgLinkResp     MsgType = 19
	MsgUnlinkReq    MsgType = 20
	MsgUnlinkResp   MsgType = 21
	MsgRenameReq    MsgType = 22
	MsgRenameResp   MsgType = 23
	MsgReadlinkReq  MsgType = 24
	MsgReadlinkResp MsgType = 25
	MsgGetdentsReq  MsgType = 26
	MsgGetdentsResp MsgType = 27
	MsgSetattrReq   MsgType = 28
	MsgSetattrResp  MsgType = 29
	MsgCloseReq     MsgType = 30
	MsgCloseResp    MsgType = 31
	MsgStatFSReq    MsgType = 32
	MsgStatFSResp   MsgType = 33

	msgMax = MsgStatFSResp
)

// IsRequest reports whether t is a request type.
func (t MsgType) IsRequest() bool { return t >= MsgHelloReq && t <= msgMax && t%2 == 0 }

// ResponseType returns the successful response type for request type t.
func ResponseType(t MsgType) MsgType { return t + 1 }

func (t MsgType) String() string {
	if m := newMessage(t); m != nil {
		return fmt.Sprintf("%T", m)[len("*proto."):]
	}
	return fmt.Sprintf("MsgType(%d)", uint16(t))
}

// Message is implemented by every protocol message (and only by them).
type Message interface {
	Type() MsgType
	encode(*Buffer)
	decode(*Reader) error
}

func newMessage(t MsgType) Message {
	switch t {
	case MsgError:
		return new(ErrorResp)
	case MsgHelloReq:
		return new(HelloReq)
	case MsgHelloResp:
		return new(HelloResp)
	case MsgWalkReq:
		return new(WalkReq)
	case MsgWalkResp:
		return new(WalkResp)
	case MsgStatBatchReq:
		return new(StatBatchReq)
	case MsgStatBatchRsp:
		return new(StatBatchResp)
	case MsgOpenReq:
		return new(OpenReq)
	case MsgOpenResp:
		return new(OpenResp)
	case MsgCreateReq:
		return new(CreateReq)
	case MsgCreateResp:
		return new(CreateResp)
	case MsgMkdirReq:
		return new(MkdirReq)
	case MsgMkdirResp:
		return new(MkdirResp)
	case MsgMknodReq:
		return new(MknodReq)
	case MsgMknodResp:
		return new(MknodResp)
	case MsgSymlinkReq:
		return new(SymlinkReq)
	case MsgSymlinkResp:
		return new(SymlinkResp)
	case MsgLinkReq:
		return new(LinkReq)
	case MsgLinkResp:
		return new(LinkResp)
	case MsgUnlinkReq:
		return new(UnlinkReq)
	case MsgUnlinkResp:
		return new(UnlinkResp)
	case MsgRenameReq:
		return new(RenameReq)
	case MsgRenameResp:
		return new(RenameResp)
	case MsgReadlinkReq:
		return new(ReadlinkReq)
	case MsgReadlinkResp:
		return new(ReadlinkResp)
	case MsgGetdentsReq:
		return new(GetdentsReq)
	case MsgGetdentsResp:
		return new(GetdentsResp)
	case MsgSetattrReq:
		return new(SetattrReq)
	case MsgSetattrResp:
		return new(SetattrResp)
	case MsgCloseReq:
		return new(CloseReq)
	case MsgCloseResp:
		return new(CloseResp)
	case MsgStatFSReq:
		return new(StatFSReq)
	case MsgStatFSResp:
		return new(StatFSResp)
	}
	return nil
}

// Special Timespec.Nsec values for SetattrReq (as utimensat(2)).
const (
	UtimeNow  = (1 << 30) - 1
	UtimeOmit = (1 << 30) - 2
)

// Timespec is a time as seconds and nanoseconds since the epoch.
type Timespec struct {
	Sec  int64
	Nsec uint32
}

const timespecSize = 12

func (w *Buffer) timespec(t Timespec) { w.i64(t.Sec); w.u32(t.Nsec) }

func (r *Reader) timespec(special bool) Timespec {
	t := Timespec{Sec: r.i64(), Nsec: r.u32()}
	if t.Nsec >= 1e9 && !(special && (t.Nsec == UtimeNow || t.Nsec == UtimeOmit)) {
		r.fail(ErrBadMessage)
	}
	return t
}

// Stat carries the statx(2) fields the Sentry uses. Mask holds the
// STATX_* bits of the fields that are valid.
type Stat struct {
	Mask      uint32
	Mode      uint32 // file type and permission bits
	Nlink     uint32
	UID       uint32
	GID       uint32
	Ino       uint64
	DevMajor  uint32
	DevMinor  uint32
	RdevMajor uint32
	RdevMinor uint32
	Size      uint64
	Blocks    uint64
	Blksize   uint32
	Atime     Timespec
	Mtime     Timespec
	Ctime     Timespec
	Btime     Timespec
}

const statSize = 4*9 + 8*3 + 4*timespecSize

func (w *Buffer) stat(s *Stat) {
	w.u32(s.Mask)
	w.u32(s.Mode)
	w.u32(s.Nlink)
	w.u32(s.UID)
	w.u32(s.GID)
	w.u64(s.Ino)
	w.u32(s.DevMajor)
	w.u32(s.DevMinor)
	w.u32(s.RdevMajor)
	w.u32(s.RdevMinor)
	w.u64(s.Size)
	w.u64(s.Blocks)
	w.u32(s.Blksize)
	w.timespec(s.Atime)
	w.timespec(s.Mtime)
	w.timespec(s.Ctime)
	w.timespec(s.Btime)
}

func (r *Reader) stat(s *Stat) {
	s.Mask = r.u32()
	s.Mode = r.u32()
	s.Nlink = r.u32()
	s.UID = r.u32()
	s.GID = r.u32()
	s.Ino = r.u64()
	s.DevMajor = r.u32()
	s.DevMinor = r.u32()
	s.RdevMajor = r.u32()
	s.RdevMinor = r.u32()
	s.Size = r.u64()
	s.Blocks = r.u64()
	s.Blksize = r.u32()
	s.Atime = r.timespec(false)
	s.Mtime = r.timespec(false)
	s.Ctime = r.timespec(false)
	s.Btime = r.timespec(false)
}

// errno reads a non-negative errno (0 meaning success).
func (r *Reader) errno() int32 {
	e := r.i32()
	if e < 0 || e > 4095 {
		r.fail(ErrBadMessage)
	}
	return e
}

// ErrorResp answers any request with a positive Linux errno.
type ErrorResp struct{ Errno int32 }

func (*ErrorResp) Type() MsgType      { return MsgError }
func (m *ErrorResp) encode(w *Buffer) { w.i32(m.Errno) }
func (m *ErrorResp) decode(r *Reader) error {
	m.Errno = r.errno()
	if r.err == nil && m.Errno == 0 {
		r.fail(ErrBadMessage)
	}
	return r.err
}

// Hello is the body of HelloReq and HelloResp.
type Hello struct {
	Version        uint32
	MaxMessageSize uint32
}

func (m *Hello) encode(w *Buffer) { w.u32(m.Version); w.u32(m.MaxMessageSize) }
func (m *Hello) decode(r *Reader) error {
	m.Version = r.u32()
	m.MaxMessageSize = r.u32()
	if r.err == nil && m.MaxMessageSize < HeaderSize {
		r.fail(ErrBadMessage)
	}
	return r.err
}

// HelloReq opens a connection: the client's version and message size limit.
type HelloReq struct{ Hello }

// HelloResp is the server's version and message size limit.
type HelloResp struct{ Hello }

func (*HelloReq) Type() MsgType  { return MsgHelloReq }
func (*HelloResp) Type() MsgType { return MsgHelloResp }

// Entry is the body of responses that return a new handle.
type Entry struct {
	Handle uint64
	Stat   Stat
}

func (m *Entry) encode(w *Buffer) { w.u64(m.Handle); w.stat(&m.Stat) }
func (m *Entry) decode(r *Reader) error {
	m.Handle = r.u64()
	r.stat(&m.Stat)
	return r.err
}

type empty struct{}

func (*empty) encode(*Buffer)         {}
func (*empty) decode(r *Reader) error { return r.err }

// WalkReq walks Names (each a single validated component, never "..")
// starting at directory handle Dir, in one round trip.
type WalkReq struct {
	Dir   uint64
	Names []string
}

func (*WalkReq) Type() MsgType { return MsgWalkReq }
func (m *WalkReq) encode(w *Buffer) {
	w.u64(m.Dir)
	w.count(len(m.Names))
	for _, n := range m.Names {
		w.str(n)
	}
}
func (m *WalkReq) decode(r *Reader) error {
	m.Dir = r.u64()
	n := r.count(2, MaxWalkNames)
	if n > 0 {
		m.Names = make([]string, n)
		for i := range m.Names {
			m.Names[i] = r.name()
		}
	}
	return r.err
}

// WalkResp returns one handle and stat per component walked, in order
// (len(Handles) == len(Stats) is the number walked). The walk stops after
// a symlink component (included; its Stat.Mode says so) or before the first
// component that failed, in which case Errno is that failure (e.g. ENOENT);
// Errno is 0 otherwise.
type WalkResp struct {
	Errno   int32
	Handles []uint64
	Stats   []Stat
}

func (*WalkResp) Type() MsgType { return MsgWalkResp }
func (m *WalkResp) encode(w *Buffer) {
	if len(m.Handles) != len(m.Stats) {
		w.fail(ErrBadMessage)
		return
	}
	w.i32(m.Errno)
	w.count(len(m.Handles))
	for i := range m.Handles {
		w.u64(m.Handles[i])
		w.stat(&m.Stats[i])
	}
}
func (m *WalkResp) decode(r *Reader) error {
	m.Errno = r.errno()
	n := r.count(8+statSize, MaxWalkNames)
	if n > 0 {
		m.Handles = make([]uint64, n)
		m.Stats = make([]Stat, n)
		for i := range n {
			m.Handles[i] = r.u64()
			r.stat(&m.Stats[i])
		}
	}
	return r.err
}

// StatBatchReq stats several handles at once.
type StatBatchReq struct{ Handles []uint64 }

func (*StatBatchReq) Type() MsgType { return MsgStatBatchReq }
func (m *StatBatchReq) encode(w *Buffer) {
	w.count(len(m.Handles))
	for _, h := range m.Handles {
		w.u64(h)
	}
}
func (m *StatBatchReq) decode(r *Reader) error {
	m.Handles = r.handles()
	return r.err
}

func (r *Reader) handles() []uint64 {
	n := r.count(8, 0)
	if n == 0 {
		return nil
	}
	hs := make([]uint64, n)
	for i := range hs {
		hs[i] = r.u64()
	}
	return hs
}

// StatBatchResp has one Stat and one errno per requested handle; Stats[i]
// is meaningful only when Errnos[i] == 0.
type StatBatchResp struct {
	Stats  []Stat
	Errnos []int32
}

func (*StatBatchResp) Type() MsgType { return MsgStatBatchRsp }
func (m *StatBatchResp) encode(w *Buffer) {
	if len(m.Stats) != len(m.Errnos) {
		w.fail(ErrBadMessage)
		return
	}
	w.count(len(m.Stats))
	for i := range m.Stats {
		w.i32(m.Errnos[i])
		w.stat(&m.Stats[i])
	}
}
func (m *StatBatchResp) decode(r *Reader) error {
	n := r.count(4+statSize, 0)
	if n > 0 {
		m.Stats = make([]Stat, n)
		m.Errnos = make([]int32, n)
		for i := range n {
			m.Errnos[i] = r.errno()
			r.stat(&m.Stats[i])
		}
	}
	return r.err
}

// OpenReq opens Handle with Linux O_* Flags. The response carries the host
// FD as an SCM_RIGHTS attachment.
type OpenReq struct {
	Handle uint64
	Flags  uint32
}

func (*OpenReq) Type() MsgType      { return MsgOpenReq }
func (m *OpenReq) encode(w *Buffer) { w.u64(m.Handle); w.u32(m.Flags) }
func (m *OpenReq) decode(r *Reader) error {
	m.Handle = r.u64()
	m.Flags = r.u32()
	return r.err
}

// OpenResp is empty; the opened FD is attached.
type OpenResp struct{ empty }

func (*OpenResp) Type() MsgType { return MsgOpenResp }

// CreateReq creates and opens a regular file Name in Dir. The response
// carries the new handle, its Stat and the opened FD as an attachment.
type CreateReq struct {
	Dir   uint64
	Name  string
	Flags uint32
	Mode  uint32
	UID   uint32
	GID   uint32
}

func (*CreateReq) Type() MsgType { return MsgCreateReq }
func (m *CreateReq) encode(w *Buffer) {
	w.u64(m.Dir)
	w.str(m.Name)
	w.u32(m.Flags)
	w.u32(m.Mode)
	w.u32(m.UID)
	w.u32(m.GID)
}
func (m *CreateReq) decode(r *Reader) error {
	m.Dir = r.u64()
	m.Name = r.name()
	m.Flags = r.u32()
	m.Mode = r.u32()
	m.UID = r.u32()
	m.GID = r.u32()
	return r.err
}

// CreateResp is the new file; its FD is attached.
type CreateResp struct{ Entry }

func (*CreateResp) Type() MsgType { return MsgCreateResp }

// MkdirReq creates directory Name in Dir.
type MkdirReq struct {
	Dir  uint64
	Name string
	Mode uint32
	UID  uint32
	GID  uint32
}

func (*MkdirReq) Type() MsgType { return MsgMkdirReq }
func (m *MkdirReq) encode(w *Buffer) {
	w.u64(m.Dir)
	w.str(m.Name)
	w.u32(m.Mode)
	w.u32(m.UID)
	w.u32(m.GID)
}
func (m *MkdirReq) decode(r *Reader) error {
	m.Dir = r.u64()
	m.Name = r.name()
	m.Mode = r.u32()
	m.UID = r.u32()
	m.GID = r.u32()
	return r.err
}

// MkdirResp is the new directory.
type MkdirResp struct{ Entry }

func (*MkdirResp) Type() MsgType { return MsgMkdirResp }

// MknodReq creates a node Name in Dir; Mode includes the file type.
type MknodReq struct {
	Dir       uint64
	Name      string
	Mode      uint32
	RdevMajor uint32
	RdevMinor uint32
	UID       uint32
	GID       uint32
}

func (*MknodReq) Type() MsgType { return MsgMknodReq }
func (m *MknodReq) encode(w *Buffer) {
	w.u64(m.Dir)
	w.str(m.Name)
	w.u32(m.Mode)
	w.u32(m.RdevMajor)
	w.u32(m.RdevMinor)
	w.u32(m.UID)
	w.u32(m.GID)
}
func (m *MknodReq) decode(r *Reader) error {
	m.Dir = r.u64()
	m.Name = r.name()
	m.Mode = r.u32()
	m.RdevMajor = r.u32()
	m.RdevMinor = r.u32()
	m.UID = r.u32()
	m.GID = r.u32()
	return r.err
}

// MknodResp is the new node.
type MknodResp struct{ Entry }

func (*MknodResp) Type() MsgType { return MsgMknodResp }

// SymlinkReq creates symlink Name in Dir pointing at Target.
type SymlinkReq struct {
	Dir    uint64
	Name   string
	Target string
	UID    uint32
	GID    uint32
}

func (*SymlinkReq) Type() MsgType { return MsgSymlinkReq }
func (m *SymlinkReq) encode(w *Buffer) {
	w.u64(m.Dir)
	w.str(m.Name)
	w.str(m.Target)
	w.u32(m.UID)
	w.u32(m.GID)
}
func (m *SymlinkReq) decode(r *Reader) error {
	m.Dir = r.u64()
	m.Name = r.name()
	m.Target = r.target()
	m.UID = r.u32()
	m.GID = r.u32()
	return r.err
}

// SymlinkResp is the new symlink.
type SymlinkResp struct{ Entry }

func (*SymlinkResp) Type() MsgType { return MsgSymlinkResp }

// LinkReq creates hard link Name in Dir to the file Target.
type LinkReq struct {
	Target uint64
	Dir    uint64
	Name   string
}

func (*LinkReq) Type() MsgType      { return MsgLinkReq }
func (m *LinkReq) encode(w *Buffer) { w.u64(m.Target); w.u64(m.Dir); w.str(m.Name) }
func (m *LinkReq) decode(r *Reader) error {
	m.Target = r.u64()
	m.Dir = r.u64()
	m.Name = r.name()
	return r.err
}

// LinkResp is a new handle for the linked name.
type LinkResp struct{ Entry }

func (*LinkResp) Type() MsgType { return MsgLinkResp }

// AtRemoveDir is the only UnlinkReq flag (AT_REMOVEDIR).
const AtRemoveDir = 0x200

// UnlinkReq removes Name from Dir.
type UnlinkReq struct {
	Dir   uint64
	Name  string
	Flags uint32
}

func (*UnlinkReq) Type() MsgType      { return MsgUnlinkReq }
func (m *UnlinkReq) encode(w *Buffer) { w.u64(m.Dir); w.str(m.Name); w.u32(m.Flags) }
func (m *UnlinkReq) decode(r *Reader) error {
	m.Dir = r.u64()
	m.Name = r.name()
	m.Flags = r.u32()
	if m.Flags&^AtRemoveDir != 0 {
		r.fail(ErrBadMessage)
	}
	return r.err
}

// UnlinkResp is empty.
type UnlinkResp struct{ empty }

func (*UnlinkResp) Type() MsgType { return MsgUnlinkResp }

// RenameReq flags (as renameat2(2)).
const (
	RenameNoReplace = 1
	RenameExchange  = 2
)

// RenameReq renames OldDir/OldName to NewDir/NewName.
type RenameReq struct {
	OldDir  uint64
	OldName string
	NewDir  uint64
	NewName string
	Flags   uint32
}

func (*RenameReq) Type() MsgType { return MsgRenameReq }
func (m *RenameReq) encode(w *Buffer) {
	w.u64(m.OldDir)
	w.str(m.OldName)
	w.u64(m.NewDir)
	w.str(m.NewName)
	w.u32(m.Flags)
}
func (m *RenameReq) decode(r *Reader) error {
	m.OldDir = r.u64()
	m.OldName = r.name()
	m.NewDir = r.u64()
	m.NewName = r.name()
	m.Flags = r.u32()
	if m.Flags&^(RenameNoReplace|RenameExchange) != 0 ||
		m.Flags == RenameNoReplace|RenameExchange {
		r.fail(ErrBadMessage)
	}
	return r.err
}

// RenameResp is empty.
type RenameResp struct{ empty }

func (*RenameResp) Type() MsgType { return MsgRenameResp }

// ReadlinkReq reads the symlink Handle.
type ReadlinkReq struct{ Handle uint64 }

func (*ReadlinkReq) Type() MsgType      { return MsgReadlinkReq }
func (m *ReadlinkReq) encode(w *Buffer) { w.u64(m.Handle) }
func (m *ReadlinkReq) decode(r *Reader) error {
	m.Handle = r.u64()
	return r.err
}

// ReadlinkResp is the link target.
type ReadlinkResp struct{ Target string }

func (*ReadlinkResp) Type() MsgType      { return MsgReadlinkResp }
func (m *ReadlinkResp) encode(w *Buffer) { w.str(m.Target) }
func (m *ReadlinkResp) decode(r *Reader) error {
	m.Target = r.target()
	return r.err
}

// GetdentsReq reads directory entries of Handle starting at Cookie (0 for
// the start, else a previous Dirent.Off), returning about MaxBytes worth.
type GetdentsReq struct {
	Handle   uint64
	Cookie   uint64
	MaxBytes uint32
}

func (*GetdentsReq) Type() MsgType { return MsgGetdentsReq }
func (m *GetdentsReq) encode(w *Buffer) {
	w.u64(m.Handle)
	w.u64(m.Cookie)
	w.u32(m.MaxBytes)
}
func (m *GetdentsReq) decode(r *Reader) error {
	m.Handle = r.u64()
	m.Cookie = r.u64()
	m.MaxBytes = r.u32()
	return r.err
}

// Dirent is one directory entry. Names are validated like any other name,
// so the server must omit "." and ".." (the Sentry synthesizes them).
type Dirent struct {
	Ino  uint64
	Off  uint64 // cookie of the next entry
	Type uint8  // DT_*
	Name string
}

// GetdentsResp is a batch of entries; EOF is set when none remain.
type GetdentsResp struct {
	Entries []Dirent
	EOF     bool
}

func (*GetdentsResp) Type() MsgType { return MsgGetdentsResp }
func (m *GetdentsResp) encode(w *Buffer) {
	w.count(len(m.Entries))
	for i := range m.Entries {
		d := &m.Entries[i]
		w.u64(d.Ino)
		w.u64(d.Off)
		w.u8(d.Type)
		w.str(d.Name)
	}
	w.boolean(m.EOF)
}
func (m *GetdentsResp) decode(r *Reader) error {
	n := r.count(8+8+1+2+1, 0)
	if n > 0 {
		m.Entries = make([]Dirent, n)
		for i := range m.Entries {
			d := &m.Entries[i]
			d.Ino = r.u64()
			d.Off = r.u64()
			d.Type = r.u8()
			d.Name = r.name()
		}
	}
	m.EOF = r.boolean()
	return r.err
}

// SetattrReq.Mask bits.
const (
	SetattrMode  = 1 << 0
	SetattrUID   = 1 << 1
	SetattrGID   = 1 << 2
	SetattrSize  = 1 << 3
	SetattrAtime = 1 << 4
	SetattrMtime = 1 << 5
	setattrAll   = 1<<6 - 1
)

// SetattrReq changes the attributes selected by Mask. Atime/Mtime Nsec may
// be UtimeNow or UtimeOmit.
type SetattrReq struct {
	Handle uint64
	Mask   uint32
	Mode   uint32
	UID    uint32
	GID    uint32
	Size   uint64
	Atime  Timespec
	Mtime  Timespec
}

func (*SetattrReq) Type() MsgType { return MsgSetattrReq }
func (m *SetattrReq) encode(w *Buffer) {
	w.u64(m.Handle)
	w.u32(m.Mask)
	w.u32(m.Mode)
	w.u32(m.UID)
	w.u32(m.GID)
	w.u64(m.Size)
	w.timespec(m.Atime)
	w.timespec(m.Mtime)
}
func (m *SetattrReq) decode(r *Reader) error {
	m.Handle = r.u64()
	m.Mask = r.u32()
	m.Mode = r.u32()
	m.UID = r.u32()
	m.GID = r.u32()
	m.Size = r.u64()
	m.Atime = r.timespec(true)
	m.Mtime = r.timespec(true)
	if m.Mask&^setattrAll != 0 {
		r.fail(ErrBadMessage)
	}
	return r.err
}

// SetattrResp is the Stat after the change.
type SetattrResp struct{ Stat Stat }

func (*SetattrResp) Type() MsgType      { return MsgSetattrResp }
func (m *SetattrResp) encode(w *Buffer) { w.stat(&m.Stat) }
func (m *SetattrResp) decode(r *Reader) error {
	r.stat(&m.Stat)
	return r.err
}

// CloseReq releases handles.
type CloseReq struct{ Handles []uint64 }

func (*CloseReq) Type() MsgType { return MsgCloseReq }
func (m *CloseReq) encode(w *Buffer) {
	w.count(len(m.Handles))
	for _, h := range m.Handles {
		w.u64(h)
	}
}
func (m *CloseReq) decode(r *Reader) error {
	m.Handles = r.handles()
	return r.err
}

// CloseResp is empty.
type CloseResp struct{ empty }

func (*CloseResp) Type() MsgType { return MsgCloseResp }

// StatFSReq asks for filesystem statistics of the filesystem of Handle.
type StatFSReq struct{ Handle uint64 }

func (*StatFSReq) Type() MsgType      { return MsgStatFSReq }
func (m *StatFSReq) encode(w *Buffer) { w.u64(m.Handle) }
func (m *StatFSReq) decode(r *Reader) error {
	m.Handle = r.u64()
	return r.err
}

// StatFS mirrors statfs(2).
type StatFS struct {
	Type    uint64
	Bsize   uint64
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	NameLen uint64
	Frsize  uint64
}

// StatFSResp carries the filesystem statistics.
type StatFSResp struct{ StatFS StatFS }

func (*StatFSResp) Type() MsgType { return MsgStatFSResp }
func (m *StatFSResp) encode(w *Buffer) {
	s := &m.StatFS
	for _, v := range [...]uint64{s.Type, s.Bsize, s.Blocks, s.Bfree, s.Bavail, s.Files, s.Ffree, s.NameLen, s.Frsize} {
		w.u64(v)
	}
}
func (m *StatFSResp) decode(r *Reader) error {
	s := &m.StatFS
	for _, p := range [...]*uint64{&s.Type, &s.Bsize, &s.Blocks, &s.Bfree, &s.Bavail, &s.Files, &s.Ffree, &s.NameLen, &s.Frsize} {
		*p = r.u64()
	}
	return r.err
}
