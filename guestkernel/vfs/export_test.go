package vfs

// WatchedInodes is how many inodes have inotify watches (tests check
// that removing watches brings the hot path back to its one load).
func WatchedInodes(v *VFS) int { return int(v.notify.active.Load()) }

// NotifyIOHook runs the read/write hook alone, for its benchmark.
func NotifyIOHook(d *FileDescription) { d.notifyIO(0x2) }
