package process

import (
	"fmt"
	"strings"
)

// Flag names of `runsc gofer`. Spawn writes them and cmd/runsc parses
// them, so they live here.
const (
	// FlagMount is repeatable; one per mount, in socket order. Its value
	// is a Mount in the form MODE:PATH (see ParseMount).
	FlagMount = "mount"
	// FlagMountFDStart is the descriptor of the first mount's socket; the
	// socket of mount i is FlagMountFDStart+i.
	FlagMountFDStart = "mount-fd-start"
	// FlagAllowUnconfined lets the gofer serve unconfined (no private
	// mount namespace and root) when it lacks the privilege to confine.
	FlagAllowUnconfined = "allow-unconfined"
)

// Mount is one host directory served over its own connection.
type Mount struct {
	// Source is the host path of the directory.
	Source string
	// ReadOnly refuses every change (EROFS), in the server and in the
	// kernel (the gofer's clone of the mount is read-only).
	ReadOnly bool
}

// String returns the FlagMount value for m: "ro:" or "rw:" followed by the
// path verbatim. The mode comes first so that any path, including one with
// ':' or ',' in it, round-trips.
func (m Mount) String() string {
	if m.ReadOnly {
		return "ro:" + m.Source
	}
	return "rw:" + m.Source
}

// ParseMount parses a FlagMount value written by Mount.String.
func ParseMount(s string) (Mount, error) {
	mode, path, ok := strings.Cut(s, ":")
	if !ok || (mode != "ro" && mode != "rw") {
		return Mount{}, fmt.Errorf("invalid --%s %q (want rw:PATH or ro:PATH)", FlagMount, s)
	}
	if !strings.HasPrefix(path, "/") {
		return Mount{}, fmt.Errorf("invalid --%s %q: the path must be absolute", FlagMount, s)
	}
	return Mount{Source: path, ReadOnly: mode == "ro"}, nil
}
