package kernel

import (
	"sync"

	"golang.org/x/sys/unix"
)

// NumLimits is RLIM_NLIMITS.
const NumLimits = 16

// Infinity is RLIM_INFINITY.
const Infinity = ^uint64(0)

// Limit is one resource limit.
type Limit struct{ Cur, Max uint64 }

// Limits are a process's resource limits.
type Limits struct {
	mu sync.Mutex
	l  [NumLimits]Limit
}

// HostLimits starts from the limits runsc itself runs under, as a child
// process would inherit them.
func HostLimits() *Limits {
	ls := &Limits{}
	for r := 0; r < NumLimits; r++ {
		var rl unix.Rlimit
		if err := unix.Getrlimit(r, &rl); err == nil {
			ls.l[r] = Limit{rl.Cur, rl.Max}
		} else {
			ls.l[r] = Limit{Infinity, Infinity}
		}
	}
	return ls
}

// Copy returns an independent copy.
func (ls *Limits) Copy() *Limits {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return &Limits{l: ls.l}
}

// Get returns limit r.
func (ls *Limits) Get(r int) Limit {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.l[r]
}

// Set replaces limit r; raising the hard limit needs privilege.
func (ls *Limits) Set(r int, nl Limit, privileged bool) (Limit, error) {
	if r < 0 || r >= NumLimits {
		return Limit{}, unix.EINVAL
	}
	if nl.Cur > nl.Max {
		return Limit{}, unix.EINVAL
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	old := ls.l[r]
	if nl.Max > old.Max && !privileged {
		return Limit{}, unix.EPERM
	}
	ls.l[r] = nl
	return old, nil
}
