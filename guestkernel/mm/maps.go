package mm

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// mapsNameColumn is where Linux starts a /proc/PID/maps path: it pads the
// line to 25 + 6*sizeof(void *) - 1 = 72 characters, then adds a space.
const mapsNameColumn = 72

// MapsLine formats v as a /proc/PID/maps line does (without the newline):
//
//	start-end perms offset major:minor inode [padding name]
//
// Perms end in 'p' or 's' for private or shared. An anonymous line with
// no name ends in a space after the inode, as Linux's does; shared
// anonymous memory is named "/dev/zero (deleted)", Linux's shmem file.
func (v VMA) MapsLine() string {
	b := make([]byte, 0, 128)
	b = appendHex(b, v.Start, 8)
	b = append(b, '-')
	b = appendHex(b, v.End, 8)
	b = append(b, ' ')
	b = append(b, flag(v.Perms.Read, 'r'), flag(v.Perms.Write, 'w'), flag(v.Perms.Execute, 'x'))
	if v.Shared {
		b = append(b, 's')
	} else {
		b = append(b, 'p')
	}
	b = append(b, ' ')
	b = appendHex(b, v.Offset, 8)
	b = append(b, ' ')
	b = appendHex(b, uint64(unix.Major(v.Dev)), 2)
	b = append(b, ':')
	b = appendHex(b, uint64(unix.Minor(v.Dev)), 2)
	b = append(b, ' ')
	b = strconv.AppendUint(b, v.Ino, 10)
	b = append(b, ' ')
	name := v.Name
	if name == "" && v.Shared && v.mappable == nil {
		name = "/dev/zero (deleted)"
	}
	if name != "" {
		for len(b) < mapsNameColumn {
			b = append(b, ' ')
		}
		b = append(b, ' ')
		b = append(b, name...)
	}
	return string(b)
}

func flag(on bool, c byte) byte {
	if on {
		return c
	}
	return '-'
}

// appendHex appends n in lower-case hex, zero padded to width digits.
func appendHex(b []byte, n uint64, width int) []byte {
	var tmp [16]byte
	s := strconv.AppendUint(tmp[:0], n, 16)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
