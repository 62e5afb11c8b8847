package vfs

import "golang.org/x/sys/unix"

// Access kinds for CheckPermission (MAY_* in Linux).
const (
	MayExec  = 1
	MayWrite = 2
	MayRead  = 4
)

// InGroup reports whether c's gid or supplementary groups include gid.
func (c *Credentials) InGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// CheckPermission is Linux's generic_permission: the owner, group or
// other bits of a decide, and CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH
// override as they do on Linux (execute needs some x bit even for root,
// except on directories).
func CheckPermission(c *Credentials, a *Attr, may int) error {
	mode := a.Mode
	var bits uint32
	switch {
	case c.UID == a.UID:
		bits = (mode >> 6) & 7
	case c.InGroup(a.GID):
		bits = (mode >> 3) & 7
	default:
		bits = mode & 7
	}
	if uint32(may)&^bits == 0 {
		return nil
	}
	isDir := a.IsDir()
	if c.Caps.Has(CapDACOverride) {
		if may&MayExec == 0 || isDir || mode&0o111 != 0 {
			return nil
		}
	}
	if c.Caps.Has(CapDACReadSearch) && may&MayWrite == 0 {
		if may&MayExec == 0 || isDir {
			return nil
		}
	}
	return unix.EACCES
}

// IsOwnerOrCapable reports whether c may change a's metadata: it owns the
// file or holds CAP_FOWNER.
func IsOwnerOrCapable(c *Credentials, a *Attr) bool {
	return c.UID == a.UID || c.Caps.Has(CapFowner)
}

// checkSticky is the sticky-directory rule for removing or renaming away
// child from dir: only the child's or the directory's owner (or
// CAP_FOWNER) may.
func checkSticky(c *Credentials, dir, child *Attr) error {
	if dir.Mode&unix.S_ISVTX == 0 || c.UID == child.UID || c.UID == dir.UID || c.Caps.Has(CapFowner) {
		return nil
	}
	return unix.EPERM
}
