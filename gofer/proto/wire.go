package proto

import (
	"encoding/binary"
	"errors"
	"strings"
)

const (
	// Version is the protocol version implemented by this package.
	Version = 1
	// HeaderSize is the size of the fixed message header.
	HeaderSize = 12
	// MaxMessageSize is the largest message (header included) accepted.
	MaxMessageSize = 1 << 20
	// MaxNameLen is the longest path component accepted.
	MaxNameLen = 255
	// MaxPathLen is the longest symlink target accepted.
	MaxPathLen = 4096
	// MaxWalkNames is the largest number of components in one Walk.
	MaxWalkNames = 255
	// MaxFDs is the largest number of descriptors attached to one message.
	MaxFDs = 16
)

// Errors returned by the decoder. They are sentinels; use errors.Is.
var (
	ErrTruncated  = errors.New("proto: truncated message")
	ErrTooLarge   = errors.New("proto: message too large")
	ErrBadMessage = errors.New("proto: malformed message")
	ErrBadName    = errors.New("proto: invalid path component")
)

// Header is the fixed prefix of every message.
type Header struct {
	Length uint32 // total length, header included
	Type   MsgType
	Flags  uint16
	Tag    uint32
}

// ParseHeader decodes and validates a message header from the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	h := Header{
		Length: binary.LittleEndian.Uint32(b[0:]),
		Type:   MsgType(binary.LittleEndian.Uint16(b[4:])),
		Flags:  binary.LittleEndian.Uint16(b[6:]),
		Tag:    binary.LittleEndian.Uint32(b[8:]),
	}
	switch {
	case h.Length < HeaderSize:
		return h, ErrBadMessage
	case h.Length > MaxMessageSize:
		return h, ErrTooLarge
	case h.Flags != 0:
		return h, ErrBadMessage
	}
	return h, nil
}

// Buffer is an append-only encoder. The first encoding error is sticky.
type Buffer struct {
	b   []byte
	err error
}

func (w *Buffer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *Buffer) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *Buffer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *Buffer) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *Buffer) i32(v int32)  { w.u32(uint32(v)) }
func (w *Buffer) i64(v int64)  { w.u64(uint64(v)) }

func (w *Buffer) boolean(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

func (w *Buffer) str(s string) {
	if len(s) > 0xffff {
		w.fail(ErrTooLarge)
		s = ""
	}
	w.u16(uint16(len(s)))
	w.b = append(w.b, s...)
}

func (w *Buffer) count(n int) {
	if n < 0 || n > MaxMessageSize {
		w.fail(ErrTooLarge)
		n = 0
	}
	w.u32(uint32(n))
}

func (w *Buffer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Reader is a bounds-checked decoder over one message payload. The first
// error is sticky; after it every read returns zero values.
type Reader struct {
	b   []byte
	off int
	err error
}

func (r *Reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(ErrTruncated)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *Reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *Reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *Reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *Reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *Reader) i32() int32 { return int32(r.u32()) }
func (r *Reader) i64() int64 { return int64(r.u64()) }

func (r *Reader) boolean() bool {
	switch r.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail(ErrBadMessage)
	return false
}

// rawStr reads a length-prefixed string of at most max bytes.
func (r *Reader) rawStr(max int) string {
	n := int(r.u16())
	if r.err == nil && n > max {
		r.fail(ErrBadMessage)
		return ""
	}
	p := r.take(n)
	if p == nil {
		return ""
	}
	return string(p)
}

// name reads a path component and validates it.
func (r *Reader) name() string {
	s := r.rawStr(0xffff)
	if r.err != nil {
		return ""
	}
	if err := ValidName(s); err != nil {
		r.fail(err)
		return ""
	}
	return s
}

// target reads a symlink target and validates it.
func (r *Reader) target() string {
	s := r.rawStr(0xffff)
	if r.err != nil {
		return ""
	}
	if s == "" || len(s) > MaxPathLen || strings.IndexByte(s, 0) >= 0 {
		r.fail(ErrBadMessage)
		return ""
	}
	return s
}

// count reads a slice element count. minSize is the smallest possible
// encoding of one element; a count that could not fit in the remaining
// bytes is rejected before anything is allocated.
func (r *Reader) count(minSize, max int) int {
	n := r.u32()
	if r.err != nil {
		return 0
	}
	if max > 0 && uint64(n) > uint64(max) {
		r.fail(ErrBadMessage)
		return 0
	}
	if uint64(n)*uint64(minSize) > uint64(len(r.b)-r.off) {
		r.fail(ErrTruncated)
		return 0
	}
	return int(n)
}

// done reports the sticky error, or ErrBadMessage if bytes remain.
func (r *Reader) done() error {
	if r.err != nil {
		return r.err
	}
	if r.off != len(r.b) {
		return ErrBadMessage
	}
	return nil
}

// ValidName reports whether s is an acceptable single path component.
func ValidName(s string) error {
	if s == "" || len(s) > MaxNameLen || s == "." || s == ".." ||
		strings.IndexByte(s, '/') >= 0 || strings.IndexByte(s, 0) >= 0 {
		return ErrBadName
	}
	return nil
}

// AppendMessage appends the framed encoding of m with the given tag to dst.
// It fails with ErrTooLarge if the message would exceed MaxMessageSize.
func AppendMessage(dst []byte, tag uint32, m Message) ([]byte, error) {
	var w Buffer
	return w.appendMessage(dst, tag, m)
}

// appendMessage is AppendMessage using w as scratch (so a long-lived
// Buffer avoids a heap allocation per call).
func (w *Buffer) appendMessage(dst []byte, tag uint32, m Message) ([]byte, error) {
	start := len(dst)
	*w = Buffer{b: dst}
	defer func() { w.b = nil }()
	w.u32(0) // length, patched below
	w.u16(uint16(m.Type()))
	w.u16(0)
	w.u32(tag)
	m.encode(w)
	if w.err != nil {
		return dst, w.err
	}
	n := len(w.b) - start
	if n > MaxMessageSize {
		return dst, ErrTooLarge
	}
	binary.LittleEndian.PutUint32(w.b[start:], uint32(n))
	return w.b, nil
}

// Decode decodes the first message in b. It returns the message tag, the
// decoded message and the number of bytes consumed (the header's length).
// Bytes after the first message are ignored.
func Decode(b []byte) (tag uint32, m Message, n int, err error) {
	var r Reader
	return r.decodeMessage(b)
}

// decodeMessage is Decode using r as scratch.
func (r *Reader) decodeMessage(b []byte) (tag uint32, m Message, n int, err error) {
	h, err := ParseHeader(b)
	if err != nil {
		return 0, nil, 0, err
	}
	if uint64(len(b)) < uint64(h.Length) {
		return 0, nil, 0, ErrTruncated
	}
	m = newMessage(h.Type)
	if m == nil {
		return 0, nil, 0, ErrBadMessage
	}
	*r = Reader{b: b[HeaderSize:h.Length]}
	defer func() { r.b = nil }()
	if err := m.decode(r); err != nil {
		return 0, nil, 0, err
	}
	if err := r.done(); err != nil {
		return 0, nil, 0, err
	}
	return h.Tag, m, int(h.Length), nil
}
