package vfs

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// StreamStatus is what every stream File (pipe, terminal) answers the
// same way: its status flags, and no positions. Embed it.
type StreamStatus struct{ flags atomic.Int32 }

// StatusFlags implements File.
func (s *StreamStatus) StatusFlags() int { return int(s.flags.Load()) }

// SetStatusFlags implements File.
func (s *StreamStatus) SetStatusFlags(flags int) { s.flags.Store(int32(flags)) }

// Nonblocking reports O_NONBLOCK.
func (s *StreamStatus) Nonblocking() bool { return s.flags.Load()&unix.O_NONBLOCK != 0 }

// Stream implements File.
func (s *StreamStatus) Stream() bool { return true }

// Seek implements File: streams have no positions.
func (s *StreamStatus) Seek(int64, int) (int64, error) { return 0, unix.ESPIPE }
