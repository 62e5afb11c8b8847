package overlay

import (
	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/vfs"
)

// snapshot is a merged listing of a directory. IterDir's cookies index
// into one: cookie = id<<32 | (index of the next entry), so an open
// directory read in several calls walks one consistent listing whatever
// changes meanwhile (POSIX leaves it unspecified whether names added or
// removed after opendir/rewinddir show up). A listing is built when an
// iteration starts (cookie 0) and the directory changed since the last
// one; a directory keeps its last maxSnaps listings, so a reader resumed
// after that many newer listings were built continues at the same index
// of the newest one, which may skip or repeat names.
type snapshot struct {
	id   uint32
	gen  uint64
	ents []vfs.Dirent
}

const (
	maxSnaps  = 4
	maxSnapID = 1 << 30 // cookies stay far from overflowing the VFS's offsets
)

// IterDir lists the merged directory: upper entries first, then each
// lower layer's, without duplicates, whiteouts or private names.
func (d *inode) IterDir(ctx vfs.Context, cookie int64, emit func(vfs.Dirent) bool) error {
	if !d.isDir() {
		return unix.ENOTDIR
	}
	if cookie < 0 {
		return unix.EINVAL
	}
	id, idx := uint32(cookie>>32), cookie&(1<<32-1)
	d.mu.Lock()
	s, err := d.snapshotLocked(ctx, id)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for k := idx; k < int64(len(s.ents)); k++ {
		e := s.ents[k]
		e.Next = int64(s.id)<<32 | (k + 1)
		if !emit(e) {
			break
		}
	}
	return nil
}

// snapshotLocked finds listing id, or the current listing (d.mu held).
func (d *inode) snapshotLocked(ctx vfs.Context, id uint32) (*snapshot, error) {
	if id != 0 {
		for _, s := range d.snaps {
			if s.id == id {
				return s, nil
			}
		}
	}
	if n := len(d.snaps); n > 0 && d.snaps[n-1].gen == d.gen {
		return d.snaps[n-1], nil
	}
	ents, _, err := d.readMerged(ctx)
	if err != nil {
		return nil, err
	}
	if d.nextSnap++; d.nextSnap >= maxSnapID {
		d.nextSnap = 1
	}
	s := &snapshot{id: d.nextSnap, gen: d.gen, ents: ents}
	if len(d.snaps) >= maxSnaps {
		d.snaps = append(d.snaps[:0], d.snaps[1:]...)
	}
	d.snaps = append(d.snaps, s)
	return s, nil
}

// listAll reads a layer directory whole.
func listAll(ctx vfs.Context, dir vfs.Inode) ([]vfs.Dirent, error) {
	var out []vfs.Dirent
	err := dir.IterDir(ctx, 0, func(e vfs.Dirent) bool {
		out = append(out, e)
		return true
	})
	return out, err
}

// readMerged builds the merged listing of d (d.mu held), and lists junk:
// the names in d's upper directory that the merged view hides (whiteouts
// and private names), which rmdir removes first.
func (d *inode) readMerged(ctx vfs.Context) (ents []vfs.Dirent, junk []string, err error) {
	fs := d.fs
	mctx := fs.mctx(ctx)
	seen := make(map[string]bool)
	var resolve []int
	if du := d.getUpper(); du != nil {
		all, err := listAll(ctx, du)
		if err != nil {
			return nil, nil, err
		}
		impure := hasFlag(mctx, du, xattrImpure)
		for _, e := range all {
			if isPrivateName(e.Name) {
				junk = append(junk, e.Name)
				continue
			}
			if e.Type == unix.DT_CHR || e.Type == unix.DT_UNKNOWN {
				wh, err := isWhiteoutAt(ctx, du, e.Name)
				if err != nil {
					return nil, nil, err
				}
				if wh {
					seen[e.Name] = true
					junk = append(junk, e.Name)
					continue
				}
			}
			seen[e.Name] = true
			e.Ino = mixIno(e.Ino, 0)
			// Numbers that come from elsewhere: merged directories show
			// the lower one's, copied-up files their recorded one.
			if e.Type == unix.DT_DIR && len(d.lowers) > 0 || e.Type != unix.DT_DIR && impure {
				resolve = append(resolve, len(ents))
			}
			ents = append(ents, e)
		}
	}
	for _, l := range d.lowers {
		all, err := listAll(ctx, l.in)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range all {
			if seen[e.Name] {
				continue
			}
			seen[e.Name] = true
			if e.Type == unix.DT_CHR || e.Type == unix.DT_UNKNOWN {
				wh, err := isWhiteoutAt(ctx, l.in, e.Name)
				if err != nil {
					return nil, nil, err
				}
				if wh {
					continue
				}
			}
			e.Ino = mixIno(e.Ino, l.idx)
			ents = append(ents, e)
		}
	}
	for _, k := range resolve {
		name := ents[k].Name
		if c := d.children[name]; c != nil {
			ents[k].Ino = c.ino
			continue
		}
		st, err := fs.lookupStack(ctx, d.getUpper(), d.lowers, name)
		if err != nil {
			continue // keep the upper number
		}
		ents[k].Ino = st.ino
		st.release()
	}
	return ents, junk, nil
}
