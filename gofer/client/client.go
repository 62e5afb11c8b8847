// Package client is the Sentry's side of the gofer protocol (gofer/proto):
// a concurrent RPC client over one *proto.Conn.
//
// Any number of goroutines may issue requests at once. Each request gets a
// tag (the tag of a pooled call slot, so a request allocates nothing beyond
// what proto itself needs to decode the response); one reader goroutine
// receives responses, with any donated descriptors, and hands each to the
// goroutine waiting on its tag.
//
// A connection that breaks (the gofer died, the stream desynchronised, or
// Shutdown was called) fails every waiting call and every later call with a
// *ConnError, which unwraps to unix.EIO (what the application sees) and to
// the cause (ErrClosed after Shutdown). Errors the gofer reports for a
// request come back as unix.Errno.
package client

import (
	"errors"
	"fmt"
	"github.com/ringfence/ringfence/logging"
	"io"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/proto"
)

// ErrClosed is the cause of the ConnError returned after Shutdown.
var ErrClosed = errors.New("client closed")

// ConnError reports that the connection to the gofer is unusable. It
// unwraps to unix.EIO, so the application gets EIO, and to the cause.
type ConnError struct{ Err error }

func (e *ConnError) Error() string { return "gofer connection broken: " + e.Err.Error() }

// Unwrap lists EIO first so errors.As(err, &errno) yields EIO.
func (e *ConnError) Unwrap() []error { return []error{unix.EIO, e.Err} }

// ProtocolError is a response that does not fit its request (wrong type,
// missing descriptor, undecodable payload). It unwraps to unix.EIO.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "gofer protocol error: " + e.Msg }

// Unwrap makes the error EIO to the application.
func (e *ProtocolError) Unwrap() error { return unix.EIO }

// Client issues requests on one connection. All methods are safe for
// concurrent use.
type Client struct {
	conn   *proto.Conn
	maxMsg uint32

	mu     sync.Mutex
	calls  []*call // indexed by tag-1; a call keeps its tag for life
	free   []*call // idle calls, reused LIFO
	broken error   // *ConnError once the connection failed

	readerDone chan struct{}
}

// call is one request slot. Its channel and its request scratch are reused,
// so a steady stream of requests allocates no waiter state.
type call struct {
	tag      uint32
	inflight bool           // guarded by Client.mu
	want     proto.MsgType  // expected response type
	done     chan struct{}  // buffered(1): the reader signals completion
	resp     proto.Message  // response (nil with err set on failure)
	fds      []int          // descriptors that came with the response
	err      error          // transport or protocol failure
	req      requestScratch // per-type request structs, reused
	one      [1]uint64      // handle list of single-handle requests
}

// requestScratch holds one request of each type so that issuing a request
// does not allocate it (a pointer to a field converts to proto.Message
// without allocation).
type requestScratch struct {
	hello    proto.HelloReq
	walk     proto.WalkReq
	stat     proto.StatBatchReq
	open     proto.OpenReq
	create   proto.CreateReq
	mkdir    proto.MkdirReq
	mknod    proto.MknodReq
	symlink  proto.SymlinkReq
	link     proto.LinkReq
	unlink   proto.UnlinkReq
	rename   proto.RenameReq
	readlink proto.ReadlinkReq
	getdents proto.GetdentsReq
	setattr  proto.SetattrReq
	close    proto.CloseReq
	statfs   proto.StatFSReq
}

// New takes ownership of conn, starts the reader and negotiates the
// protocol version. On failure conn is closed.
func New(conn *proto.Conn) (*Client, error) {
	c := &Client{conn: conn, maxMsg: proto.MaxMessageSize, readerDone: make(chan struct{})}
	go c.reader()
	cl := c.get(proto.MsgHelloResp)
	if cl == nil {
		return nil, c.Err()
	}
	cl.req.hello = proto.HelloReq{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: proto.MaxMessageSize}}
	resp, err := c.roundTrip(cl, &cl.req.hello)
	if err != nil {
		c.Shutdown()
		return nil, fmt.Errorf("gofer hello: %w", err)
	}
	h := resp.(*proto.HelloResp)
	c.put(cl)
	if h.Version != proto.Version {
		c.Shutdown()
		return nil, fmt.Errorf("gofer hello: server speaks version %d, want %d: %w", h.Version, proto.Version, unix.EPROTONOSUPPORT)
	}
	if h.MaxMessageSize < c.maxMsg {
		c.maxMsg = h.MaxMessageSize
	}
	if c.maxMsg < 4096 {
		c.Shutdown()
		return nil, fmt.Errorf("gofer hello: message size limit %d too small: %w", c.maxMsg, unix.EPROTO)
	}
	return c, nil
}

// MaxMessageSize is the negotiated message size limit.
func (c *Client) MaxMessageSize() uint32 { return c.maxMsg }

// Err is the error every call fails with once the connection broke, or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Shutdown closes the connection, fails all pending calls (and later ones)
// and waits for the reader to exit. Descriptors already returned stay the
// caller's. (Close is the request that releases handles.)
func (c *Client) Shutdown() error {
	c.fail(ErrClosed)
	<-c.readerDone
	return nil
}

// get returns an idle call slot marked in flight, expecting a response of
// type want, or nil if the connection is broken.
func (c *Client) get(want proto.MsgType) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil
	}
	var cl *call
	if n := len(c.free); n > 0 {
		cl = c.free[n-1]
		c.free[n-1] = nil
		c.free = c.free[:n-1]
	} else {
		cl = &call{tag: uint32(len(c.calls) + 1), done: make(chan struct{}, 1)}
		c.calls = append(c.calls, cl)
	}
	cl.inflight, cl.want = true, want
	return cl
}

// put returns a finished call slot to the pool, dropping references to the
// response so it can be collected.
func (c *Client) put(cl *call) {
	cl.resp, cl.fds, cl.err = nil, nil, nil
	cl.req.walk.Names = nil
	cl.req.stat.Handles = nil
	cl.req.close.Handles = nil
	c.mu.Lock()
	c.free = append(c.free, cl)
	c.mu.Unlock()
}

// roundTrip sends req on cl and waits for its response. It returns the
// response on success; an ErrorResp becomes unix.Errno. Received
// descriptors are left in cl.fds. The caller must put(cl) afterwards unless
// an error is returned (roundTrip then recycles cl itself).
func (c *Client) roundTrip(cl *call, req proto.Message) (proto.Message, error) {
	if err := c.conn.Send(cl.tag, req, nil); err != nil {
		// A failed send may have left half a message on the stream.
		c.fail(err)
	}
	<-cl.done
	if cl.err != nil {
		err := cl.err
		c.closeFDs(cl)
		c.put(cl)
		return nil, err
	}
	if e, ok := cl.resp.(*proto.ErrorResp); ok {
		c.closeFDs(cl)
		c.put(cl)
		return nil, unix.Errno(e.Errno)
	}
	return cl.resp, nil
}

// do is roundTrip for requests whose responses carry no descriptors.
func (c *Client) do(cl *call, req proto.Message) (proto.Message, error) {
	resp, err := c.roundTrip(cl, req)
	if err != nil {
		return nil, err
	}
	c.closeFDs(cl)
	return resp, nil
}

func (c *Client) closeFDs(cl *call) {
	for _, fd := range cl.fds {
		unix.Close(fd)
	}
	cl.fds = nil
}

// reader dispatches responses until the connection fails.
func (c *Client) reader() {
	defer close(c.readerDone)
	for {
		tag, m, fds, err := c.conn.Recv()
		if err != nil {
			// An undecodable payload for a request we are waiting on fails
			// just that request; anything else ends the connection.
			if isDecodeError(err) && c.deliver(tag, nil, nil, &ProtocolError{Msg: err.Error()}) {
				continue
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			c.fail(err)
			return
		}
		var perr error
		if !c.deliver(tag, m, fds, perr) {
			// A response to nothing we asked: the peer is confused. Drop it
			// rather than trust the rest of the stream.
			for _, fd := range fds {
				unix.Close(fd)
			}
			c.fail(fmt.Errorf("response %v with unknown tag %d", m.Type(), tag))
			return
		}
	}
}

func isDecodeError(err error) bool {
	return errors.Is(err, proto.ErrBadMessage) || errors.Is(err, proto.ErrBadName) ||
		errors.Is(err, proto.ErrTruncated)
}

// deliver hands a response to the call waiting on tag. It reports false if
// no call with that tag is in flight.
func (c *Client) deliver(tag uint32, m proto.Message, fds []int, err error) bool {
	c.mu.Lock()
	if tag == 0 || int(tag) > len(c.calls) || !c.calls[tag-1].inflight {
		c.mu.Unlock()
		return false
	}
	cl := c.calls[tag-1]
	cl.inflight = false
	want := cl.want
	c.mu.Unlock()
	if err == nil && m.Type() != want && m.Type() != proto.MsgError {
		err = &ProtocolError{Msg: fmt.Sprintf("got %v for a request expecting %v", m.Type(), want)}
	}
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		m, fds = nil, nil
	}
	cl.resp, cl.fds, cl.err = m, fds, err
	cl.done <- struct{}{}
	return true
}

// fail marks the connection broken (once) and fails every call in flight.
func (c *Client) fail(cause error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = &ConnError{Err: cause}
		if cause != ErrClosed {
			logging.Warningf("gofer connection broken: %v; file operations on it now fail with EIO", cause)
		}
	}
	err := c.broken
	var waiting []*call
	for _, cl := range c.calls {
		if cl.inflight {
			cl.inflight = false
			waiting = append(waiting, cl)
		}
	}
	c.mu.Unlock()
	for _, cl := range waiting {
		cl.resp, cl.fds, cl.err = nil, nil, err
		cl.done <- struct{}{}
	}
	// Unblock the reader (and any sender) for good.
	c.conn.Close()
}
