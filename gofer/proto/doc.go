// Package proto defines the wire protocol spoken between the Sentry and the
// gofer process that serves the container's root filesystem.
//
// # Framing
//
// The transport is a connected AF_UNIX socket (SOCK_STREAM is assumed, so
// every message carries explicit framing). Each message is
//
//	u32 length   total message length in bytes, header included
//	u16 type     MsgType
//	u16 flags    must be 0 in Version 1
//	u32 tag      request id; a response echoes the tag of its request
//	payload      length-HeaderSize bytes, type specific
//
// All integers are little endian. Strings are a u16 byte count followed by
// the bytes. Slices are a u32 element count followed by the elements. A
// boolean is one byte that must be 0 or 1.
//
// Requests have even type numbers; the matching successful response has the
// request's number + 1 (see ResponseType). Any request may instead be answered
// with an ErrorResp (MsgError) carrying a positive Linux errno.
//
// File descriptors are donated with SCM_RIGHTS on the sendmsg that carries
// the first byte of a message. Conn reads exactly one message's bytes at a
// time so descriptors are never attributed to the wrong message.
//
// # Versioning
//
// The first exchange on a connection is HelloReq/HelloResp. Both sides state
// the protocol version (this package implements Version) and the largest
// message they accept; the effective limit is the smaller of the two and never
// more than MaxMessageSize. Incompatible changes bump Version; the header flags
// field is reserved for future negotiated extensions and must be zero now.
//
// # Security contract
//
// The decoder (Decode, ParseHeader, and therefore Conn.Recv) treats its input
// as hostile and guarantees that:
//
//   - it never panics, whatever the input;
//   - it never allocates more than a small constant factor of the input
//     length: every slice count is checked against the bytes actually
//     remaining before anything is allocated, and lengths above
//     MaxMessageSize are rejected (ErrTooLarge) before reading the payload;
//   - input shorter than the header or than what the header/payload
//     declares fails with ErrTruncated; structurally invalid input (length
//     smaller than the header, non-zero flags, unknown type, trailing bytes,
//     out-of-range enums, flags or counts) fails with ErrBadMessage;
//   - every path component (Walk names, Create/Mkdir/... names, Getdents
//     entry names) is non-empty, at most MaxNameLen bytes, contains no '/'
//     and no NUL and is neither "." nor ".." — otherwise ErrBadName. The
//     Sentry resolves ".." itself; the gofer never sees a name that could
//     leave the directory handle it is applied to;
//   - symlink targets are non-empty, at most MaxPathLen bytes and NUL free
//     (they may contain '/' and ".." since the gofer never follows them);
//   - a successfully decoded message re-encodes to exactly the same bytes
//     (encodings are canonical).
//
// Conn.Recv additionally closes any descriptors that arrived with a message
// that failed to decode, and receives descriptors with MSG_CMSG_CLOEXEC.
//
// The encoder does not validate names; a peer is expected to reject them.
package proto
