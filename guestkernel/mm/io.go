package mm

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// span calls fn with the Sentry's view of each piece of [addr, addr+n),
// checking the VMAs permit need (unless force), and stops at the first
// hole. write says fn writes the pieces (private file pages are copied
// first, shared ones translated for write). It returns how many bytes it
// covered, and EFAULT if fewer than n.
func (m *MM) span(addr uint64, n int, need platform.AccessType, write, force bool, fn func(b []byte)) (int, error) {
	done := 0
	for done < n {
		cur := addr + uint64(done)
		if cur < addr { // wrapped
			return done, unix.EFAULT
		}
		i := m.find(cur)
		if i < 0 {
			return done, unix.EFAULT
		}
		v := m.vmas[i]
		if !force && !v.Perms.SupersetOf(need) {
			return done, unix.EFAULT
		}
		chunk := v.End - cur
		if rest := uint64(n - done); chunk > rest {
			chunk = rest
		}
		if v.mappable != nil {
			// A file page past the end of the file is EFAULT to a
			// syscall, where the app itself would get SIGBUS.
			b, err := m.fileSlice(v, cur, chunk, write)
			if err != nil {
				return done, unix.EFAULT
			}
			fn(b)
			done += len(b)
			continue
		}
		if err := m.ensureBacking(v); err != nil {
			return done, unix.EFAULT
		}
		fn(m.mf.Slice(uint64(v.backing)+(cur-v.Start), chunk))
		done += int(chunk)
	}
	return done, nil
}

// CopyIn copies app memory at addr into dst.
func (m *MM) CopyIn(addr uint64, dst []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	off := 0
	return m.span(addr, len(dst), platform.Read, false, false, func(b []byte) {
		off += copy(dst[off:], b)
	})
}

// CopyOut copies src into app memory at addr.
func (m *MM) CopyOut(addr uint64, src []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	off := 0
	return m.span(addr, len(src), platform.AccessType{Write: true}, true, false, func(b []byte) {
		off += copy(b, src[off:])
	})
}

// WriteForce copies src to addr ignoring permissions (the ELF loader and
// stack set-up write to read-only pages).
func (m *MM) WriteForce(addr uint64, src []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	off := 0
	_, err := m.span(addr, len(src), platform.NoAccess, true, true, func(b []byte) {
		off += copy(b, src[off:])
	})
	return err
}

// ForceSlices returns the Sentry's views of [addr, addr+n) ignoring
// permissions, so the ELF loader can read a file straight into app memory
// (including read-only segments) without a bounce buffer. The views are
// for writing: pages of private file mappings are copied first.
func (m *MM) ForceSlices(addr uint64, n int) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	_, err := m.span(addr, n, platform.NoAccess, true, true, func(b []byte) {
		out = append(out, b)
	})
	return out, err
}

// CopyInString reads a NUL-terminated string of at most max bytes
// (excluding the NUL); ENAMETOOLONG if longer.
func (m *MM) CopyInString(addr uint64, max int) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []byte
	for len(out) <= max {
		// Read up to the end of the page so a string at the end of a
		// mapping does not fault on the next page.
		cur := addr + uint64(len(out))
		chunk := int(PageSize - cur%PageSize)
		found := false
		_, err := m.span(cur, chunk, platform.Read, false, false, func(b []byte) {
			for i, c := range b {
				if c == 0 {
					out = append(out, b[:i]...)
					found = true
					return
				}
			}
			out = append(out, b...)
		})
		if found {
			if len(out) > max {
				return "", unix.ENAMETOOLONG
			}
			return string(out), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", unix.ENAMETOOLONG
}

// IOVecs appends to dst the Sentry's views of [addr, addr+n), for host
// readv/writev straight into or out of app memory. forWrite means the
// Sentry will write app memory (a read syscall).
func (m *MM) IOVecs(addr uint64, n int, forWrite bool, dst [][]byte) ([][]byte, error) {
	need := platform.Read
	if forWrite {
		need = platform.AccessType{Write: true}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	done, err := m.span(addr, n, need, forWrite, false, func(b []byte) {
		dst = append(dst, b)
	})
	if err != nil && done > 0 {
		// Linux transfers what it can before the bad address.
		return dst, nil
	}
	return dst, err
}
