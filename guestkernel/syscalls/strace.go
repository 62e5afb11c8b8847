package syscalls

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
)

// argKind says how strace prints an argument.
type argKind uint8

const (
	aHex    argKind = iota
	aInt            // signed decimal
	aFD             // descriptor
	aPath           // NUL-terminated string
	aInBuf          // buffer the call reads; its length is the next argument
	aOutBuf         // buffer the call fills; its length is the return value
	aOct            // mode bits
	aSignal         // signal number
)

// straceBufMax bounds how much of a buffer strace shows.
const straceBufMax = 64

func hasOutBuf(kinds []argKind) bool {
	for _, k := range kinds {
		if k == aOutBuf {
			return true
		}
	}
	return false
}

// formatArgs renders args for the strace log. after is set once the call
// returned ret, so output buffers can be shown.
func formatArgs(t *kernel.Task, kinds []argKind, args *[6]uint64, ret uint64, after bool) string {
	if kinds == nil {
		return fmt.Sprintf("%#x, %#x, %#x, %#x, %#x, %#x", args[0], args[1], args[2], args[3], args[4], args[5])
	}
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		v := args[i]
		switch k {
		case aInt, aFD:
			parts[i] = strconv.FormatInt(int64(v), 10)
			if k == aFD && int32(v) == unix.AT_FDCWD {
				parts[i] = "AT_FDCWD"
			}
		case aPath:
			s, err := t.MM().CopyInString(v, 4096)
			if err != nil {
				parts[i] = fmt.Sprintf("%#x", v)
			} else {
				parts[i] = strconv.Quote(s)
			}
		case aInBuf:
			n := uint64(0)
			if i+1 < len(args) {
				n = args[i+1]
			}
			parts[i] = quoteBuf(t, v, n)
		case aOutBuf:
			if after && int64(ret) >= 0 {
				parts[i] = quoteBuf(t, v, ret)
			} else {
				parts[i] = fmt.Sprintf("%#x", v)
			}
		case aOct:
			parts[i] = "0" + strconv.FormatUint(v, 8)
		case aSignal:
			parts[i] = unix.SignalName(unix.Signal(v))
			if parts[i] == "" {
				parts[i] = strconv.FormatUint(v, 10)
			}
		default:
			parts[i] = fmt.Sprintf("%#x", v)
		}
	}
	return strings.Join(parts, ", ")
}

func quoteBuf(t *kernel.Task, addr, n uint64) string {
	show := n
	if show > straceBufMax {
		show = straceBufMax
	}
	b := make([]byte, show)
	if _, err := t.MM().CopyIn(addr, b); err != nil {
		return fmt.Sprintf("%#x", addr)
	}
	s := strconv.Quote(string(b))
	if show < n {
		s += "..."
	}
	return s
}
