package vfs

import "sync"

// FSContext is a task's root, working directory and umask (Linux's
// fs_struct). Threads share one; fork copies it (CLONE_FS decides).
type FSContext struct {
	mu    sync.Mutex
	root  VirtualDentry
	cwd   VirtualDentry
	umask uint32
}

// NewFSContext makes a context rooted at root with cwd as working
// directory and Linux's default umask 022.
func NewFSContext(root, cwd VirtualDentry) *FSContext {
	pin(root)
	pin(cwd)
	return &FSContext{root: root, cwd: cwd, umask: 0o022}
}

// pin and unpin keep a context's directories in the dentry cache.
func pin(vd VirtualDentry) {
	if vd.Dentry != nil {
		vd.Dentry.IncRef()
	}
}

func unpin(vd VirtualDentry) {
	if vd.Dentry != nil {
		vd.Dentry.DecRef()
	}
}

// Release unpins the context's directories (the last task using it
// exited).
func (c *FSContext) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	unpin(c.root)
	unpin(c.cwd)
	c.root, c.cwd = VirtualDentry{}, VirtualDentry{}
}

// Fork copies the context for a child that does not share it.
func (c *FSContext) Fork() *FSContext {
	c.mu.Lock()
	defer c.mu.Unlock()
	pin(c.root)
	pin(c.cwd)
	return &FSContext{root: c.root, cwd: c.cwd, umask: c.umask}
}

// Root is the task's root directory.
func (c *FSContext) Root() VirtualDentry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.root
}

// Cwd is the working directory.
func (c *FSContext) Cwd() VirtualDentry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cwd
}

// RootAndCwd returns both at once.
func (c *FSContext) RootAndCwd() (VirtualDentry, VirtualDentry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.root, c.cwd
}

// SetCwd changes the working directory.
func (c *FSContext) SetCwd(vd VirtualDentry) {
	pin(vd)
	c.mu.Lock()
	old := c.cwd
	c.cwd = vd
	c.mu.Unlock()
	unpin(old)
}

// SetRoot changes the root directory (chroot).
func (c *FSContext) SetRoot(vd VirtualDentry) {
	pin(vd)
	c.mu.Lock()
	old := c.root
	c.root = vd
	c.mu.Unlock()
	unpin(old)
}

// Umask is the file mode creation mask.
func (c *FSContext) Umask() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.umask
}

// SwapUmask sets the mask and returns the old one.
func (c *FSContext) SwapUmask(m uint32) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.umask
	c.umask = m & 0o777
	return old
}
