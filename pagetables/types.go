package pagetables

import (
	"errors"
	"strings"
)

// Page sizes a leaf entry can map.
const (
	PageSize      = 4 << 10 // PTE leaf
	LargePageSize = 2 << 20 // PDE leaf (PS=1)
	HugePageSize  = 1 << 30 // PDPTE leaf (PS=1)

	pageMask = PageSize - 1
	// entriesPerTable is the number of 8-byte entries in a 4 KiB table.
	entriesPerTable = 512
	// maxPhys bounds physical addresses: entries hold address bits 12..51.
	maxPhys = 1 << 52
)

// Perms are the access rights of a mapping.
type Perms uint8

// Permission bits. x86-64 cannot express a present page that is not
// readable, so Read is implied by any mapping and Lookup always reports
// it; a Perms without Read, Write or Execute is rejected.
const (
	Read    Perms = 1 << iota
	Write         // RW=1
	Execute       // NX=0
	User          // US=1: reachable from ring 3
	Global        // G=1: survives CR3 reloads (needs CR4.PGE)

	allPerms  = Read | Write | Execute | User | Global
	anyAccess = Read | Write | Execute
)

// String renders p as "rwxug" with '-' for missing bits.
func (p Perms) String() string {
	var b strings.Builder
	for i, c := range "rwxug" {
		if p&(1<<i) != 0 {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	if extra := p &^ allPerms; extra != 0 {
		b.WriteString("+?")
	}
	return b.String()
}

// Errors returned (wrapped) by this package.
var (
	ErrNonCanonical = errors.New("pagetables: virtual range is not canonical")
	ErrUnaligned    = errors.New("pagetables: address or length is not 4 KiB aligned")
	ErrPhysRange    = errors.New("pagetables: physical range exceeds 52 bits")
	ErrBadPerms     = errors.New("pagetables: permissions must include read, write or execute and no unknown bits")
	ErrKernelHalf   = errors.New("pagetables: upper half is shared with the kernel template")
	ErrNoMemory     = errors.New("pagetables: no free table pages")
)
