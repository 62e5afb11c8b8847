package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleStat(i uint64) Stat {
	return Stat{
		Mask: 0x7ff, Mode: 0o100644, Nlink: 1, UID: 1000, GID: 1000,
		Ino: 42 + i, DevMajor: 8, DevMinor: 1, RdevMajor: 0, RdevMinor: 0,
		Size: 4096 * i, Blocks: 8, Blksize: 4096,
		Atime: Timespec{1, 2}, Mtime: Timespec{3, 4},
		Ctime: Timespec{-5, 999999999}, Btime: Timespec{7, 0},
	}
}

// samples returns one populated instance of every message type.
func samples() []Message {
	return []Message{
		&ErrorResp{Errno: 2},
		&HelloReq{Hello{Version: Version, MaxMessageSize: MaxMessageSize}},
		&HelloResp{Hello{Version: Version, MaxMessageSize: 65536}},
		&WalkReq{Dir: 1, Names: []string{"usr", "lib", "x86_64-linux-gnu"}},
		&WalkReq{Dir: 1},
		&WalkResp{Errno: 2, Handles: []uint64{5, 6}, Stats: []Stat{sampleStat(1), sampleStat(2)}},
		&WalkResp{},
		&StatBatchReq{Handles: []uint64{1, 2, 3}},
		&StatBatchResp{Stats: []Stat{sampleStat(1), {}}, Errnos: []int32{0, 9}},
		&OpenReq{Handle: 9, Flags: 0o2},
		&OpenResp{},
		&CreateReq{Dir: 1, Name: "new.txt", Flags: 0o101, Mode: 0o644, UID: 1, GID: 2},
		&CreateResp{Entry{Handle: 77, Stat: sampleStat(3)}},
		&MkdirReq{Dir: 1, Name: "d", Mode: 0o755, UID: 3, GID: 4},
		&MkdirResp{Entry{Handle: 78, Stat: sampleStat(4)}},
		&MknodReq{Dir: 1, Name: "null", Mode: 0o20666, RdevMajor: 1, RdevMinor: 3, UID: 0, GID: 0},
		&MknodResp{Entry{Handle: 79, Stat: sampleStat(5)}},
		&SymlinkReq{Dir: 1, Name: "ln", Target: "../../etc/passwd", UID: 5, GID: 6},
		&SymlinkResp{Entry{Handle: 80, Stat: sampleStat(6)}},
		&LinkReq{Target: 4, Dir: 1, Name: "hard"},
		&LinkResp{Entry{Handle: 81, Stat: sampleStat(7)}},
		&UnlinkReq{Dir: 1, Name: "d", Flags: AtRemoveDir},
		&UnlinkResp{},
		&RenameReq{OldDir: 1, OldName: "a", NewDir: 2, NewName: "b", Flags: RenameNoReplace},
		&RenameResp{},
		&ReadlinkReq{Handle: 80},
		&ReadlinkResp{Target: "/abs/target"},
		&GetdentsReq{Handle: 1, Cookie: 12, MaxBytes: 4096},
		&GetdentsResp{Entries: []Dirent{{Ino: 1, Off: 1, Type: 4, Name: "bin"}, {Ino: 2, Off: 2, Type: 8, Name: "f"}}, EOF: true},
		&GetdentsResp{},
		&SetattrReq{Handle: 3, Mask: SetattrMode | SetattrSize | SetattrAtime | SetattrMtime, Mode: 0o600, Size: 10,
			Atime: Timespec{0, UtimeNow}, Mtime: Timespec{0, UtimeOmit}},
		&SetattrResp{Stat: sampleStat(8)},
		&CloseReq{Handles: []uint64{5, 6, 7}},
		&CloseResp{},
		&StatFSReq{Handle: 1},
		&StatFSResp{StatFS{Type: 0xef53, Bsize: 4096, Blocks: 100, Bfree: 50, Bavail: 40, Files: 10, Ffree: 5, NameLen: 255, Frsize: 4096}},
	}
}

func encode(t testing.TB, tag uint32, m Message) []byte {
	t.Helper()
	b, err := AppendMessage(nil, tag, m)
	if err != nil {
		t.Fatalf("AppendMessage(%T): %v", m, err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	seen := map[MsgType]bool{}
	for i, m := range samples() {
		seen[m.Type()] = true
		b := encode(t, uint32(i+100), m)
		tag, got, n, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: decode: %v", m, err)
		}
		if n != len(b) || tag != uint32(i+100) {
			t.Errorf("%T: n=%d len=%d tag=%d", m, n, len(b), tag)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T: round trip mismatch:\n got %+v\nwant %+v", m, got, m)
		}
		if b2 := encode(t, tag, got); !bytes.Equal(b, b2) {
			t.Errorf("%T: re-encoding differs", m)
		}
		// Every strict prefix must be rejected as truncated.
		for k := 0; k < len(b); k++ {
			if _, _, _, err := Decode(b[:k]); !errors.Is(err, ErrTruncated) {
				t.Fatalf("%T: prefix %d: err=%v, want ErrTruncated", m, k, err)
			}
		}
	}
	for typ := MsgError; typ <= msgMax; typ++ {
		if !seen[typ] {
			t.Errorf("no sample for %v", typ)
		}
		if newMessage(typ).Type() != typ {
			t.Errorf("newMessage(%d) has wrong type", typ)
		}
		if typ.IsRequest() && newMessage(ResponseType(typ)) == nil {
			t.Errorf("no response for %v", typ)
		}
	}
}

func TestDecodeConsumesOneMessage(t *testing.T) {
	a := encode(t, 1, &OpenReq{Handle: 1})
	b := encode(t, 2, &CloseResp{})
	buf := append(append([]byte{}, a...), b...)
	tag, _, n, err := Decode(buf)
	if err != nil || tag != 1 || n != len(a) {
		t.Fatalf("first: tag=%d n=%d err=%v", tag, n, err)
	}
	tag, m, _, err := Decode(buf[n:])
	if err != nil || tag != 2 || m.Type() != MsgCloseResp {
		t.Fatalf("second: tag=%d m=%v err=%v", tag, m, err)
	}
}

// frame builds a message with an arbitrary header and payload.
func frame(length uint32, typ MsgType, flags uint16, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, length)
	b = binary.LittleEndian.AppendUint16(b, uint16(typ))
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint32(b, 7)
	return append(b, payload...)
}

// msg builds a correctly framed message from a raw payload.
func msg(typ MsgType, payload []byte) []byte {
	return frame(uint32(HeaderSize+len(payload)), typ, 0, payload)
}

func payload(f func(w *Buffer)) []byte {
	var w Buffer
	f(&w)
	return w.b
}

func walkWith(names ...string) []byte {
	return msg(MsgWalkReq, payload(func(w *Buffer) {
		w.u64(1)
		w.count(len(names))
		for _, n := range names {
			w.str(n)
		}
	}))
}

func TestHostile(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen+1)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", []byte{1, 2, 3}, ErrTruncated},
		{"length < header", frame(4, MsgOpenResp, 0, nil), ErrBadMessage},
		{"length zero", frame(0, MsgOpenResp, 0, nil), ErrBadMessage},
		{"length > max", frame(MaxMessageSize+1, MsgOpenResp, 0, nil), ErrTooLarge},
		{"length huge", frame(0xffffffff, MsgOpenResp, 0, nil), ErrTooLarge},
		{"length beyond input", frame(HeaderSize+8, MsgReadlinkReq, 0, []byte{1, 2}), ErrTruncated},
		{"nonzero flags", frame(HeaderSize, MsgOpenResp, 1, nil), ErrBadMessage},
		{"unknown type", msg(0, nil), ErrBadMessage},
		{"unknown type high", msg(999, nil), ErrBadMessage},
		{"trailing bytes", msg(MsgOpenResp, []byte{0}), ErrBadMessage},
		{"payload too short", msg(MsgReadlinkReq, []byte{1, 2, 3}), ErrTruncated},
		{"string longer than payload", msg(MsgReadlinkResp, []byte{10, 0, 'a', 'b'}), ErrTruncated},
		{"handle count over-allocates", msg(MsgCloseReq, []byte{0xff, 0xff, 0xff, 0xff}), ErrTruncated},
		{"stat count over-allocates", msg(MsgStatBatchRsp, []byte{0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0}), ErrTruncated},
		{"dirent count over-allocates", msg(MsgGetdentsResp, []byte{0, 0, 0, 0x10, 1}), ErrTruncated},
		{"walk too many names", msg(MsgWalkReq, payload(func(w *Buffer) { w.u64(1); w.count(MaxWalkNames + 1) })), ErrBadMessage},
		{"walk names truncated", msg(MsgWalkReq, payload(func(w *Buffer) { w.u64(1); w.count(3); w.str("a") })), ErrTruncated},
		{"walk slash", walkWith("a", "b/c"), ErrBadName},
		{"walk NUL", walkWith("a\x00b"), ErrBadName},
		{"walk dotdot", walkWith("a", ".."), ErrBadName},
		{"walk dot", walkWith("."), ErrBadName},
		{"walk empty name", walkWith("a", ""), ErrBadName},
		{"walk long name", walkWith(long), ErrBadName},
		{"create slash", encode(t, 1, &CreateReq{Name: "/etc"}), ErrBadName},
		{"mkdir dotdot", encode(t, 1, &MkdirReq{Name: ".."}), ErrBadName},
		{"rename bad new name", encode(t, 1, &RenameReq{OldName: "a", NewName: "x/.."}), ErrBadName},
		{"link empty", encode(t, 1, &LinkReq{}), ErrBadName},
		{"dirent slash", encode(t, 1, &GetdentsResp{Entries: []Dirent{{Name: "a/b"}}}), ErrBadName},
		{"dirent dotdot", encode(t, 1, &GetdentsResp{Entries: []Dirent{{Name: ".."}}}), ErrBadName},
		{"symlink empty target", encode(t, 1, &SymlinkReq{Name: "l"}), ErrBadMessage},
		{"symlink NUL target", encode(t, 1, &SymlinkReq{Name: "l", Target: "a\x00"}), ErrBadMessage},
		{"readlink long target", encode(t, 1, &ReadlinkResp{Target: strings.Repeat("x", MaxPathLen+1)}), ErrBadMessage},
		{"bad bool", msg(MsgGetdentsResp, []byte{0, 0, 0, 0, 2}), ErrBadMessage},
		{"unlink bad flags", encode(t, 1, &UnlinkReq{Name: "a", Flags: 1}), ErrBadMessage},
		{"rename both flags", encode(t, 1, &RenameReq{OldName: "a", NewName: "b", Flags: 3}), ErrBadMessage},
		{"setattr bad mask", encode(t, 1, &SetattrReq{Mask: 1 << 10}), ErrBadMessage},
		{"setattr bad nsec", encode(t, 1, &SetattrReq{Atime: Timespec{0, 1e9}}), ErrBadMessage},
		{"stat UTIME_NOW not allowed", encode(t, 1, &SetattrResp{Stat: Stat{Atime: Timespec{0, UtimeNow}}}), ErrBadMessage},
		{"error errno zero", encode(t, 1, &ErrorResp{}), ErrBadMessage},
		{"error errno negative", encode(t, 1, &ErrorResp{Errno: -1}), ErrBadMessage},
		{"hello tiny max", encode(t, 1, &HelloReq{Hello{Version: 1, MaxMessageSize: 1}}), ErrBadMessage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, m, _, err := Decode(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if m != nil {
				t.Fatalf("got message %v with error", m)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := AppendMessage(nil, 1, &WalkResp{Handles: []uint64{1}}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("mismatched WalkResp: %v", err)
	}
	if _, err := AppendMessage(nil, 1, &StatBatchResp{Errnos: []int32{1}}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("mismatched StatBatchResp: %v", err)
	}
	big := make([]uint64, MaxMessageSize/8)
	if _, err := AppendMessage(nil, 1, &CloseReq{Handles: big}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge CloseReq: %v", err)
	}
	if _, err := AppendMessage(nil, 1, &ReadlinkResp{Target: strings.Repeat("x", 70000)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge string: %v", err)
	}
}

func TestDecodeAllocations(t *testing.T) {
	// A 12-byte-payload message claiming 2^32-1 elements must not allocate
	// anything large.
	in := msg(MsgStatBatchRsp, []byte{0xff, 0xff, 0xff, 0xff})
	allocs := testing.AllocsPerRun(100, func() { Decode(in) })
	if allocs > 2 {
		t.Fatalf("allocs = %v", allocs)
	}
}

func FuzzDecode(f *testing.F) {
	for i, m := range samples() {
		b, err := AppendMessage(nil, uint32(i), m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(frame(0xffffffff, MsgCloseReq, 0, []byte{0xff, 0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, in []byte) {
		tag, m, n, err := Decode(in)
		if err != nil {
			if m != nil || n != 0 {
				t.Fatalf("error %v with message %v n=%d", err, m, n)
			}
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrTooLarge) &&
				!errors.Is(err, ErrBadMessage) && !errors.Is(err, ErrBadName) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n < HeaderSize || n > len(in) {
			t.Fatalf("bad n %d", n)
		}
		out, err := AppendMessage(nil, tag, m)
		if err != nil {
			t.Fatalf("re-encode %T: %v", m, err)
		}
		if !bytes.Equal(out, in[:n]) {
			t.Fatalf("re-encoding of %T not canonical", m)
		}
		tag2, m2, _, err := Decode(out)
		if err != nil || tag2 != tag || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode %T: %v", m, err)
		}
	})
}
