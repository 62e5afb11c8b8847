package pagetables

// Bits of a 4-level paging entry (Intel SDM vol. 3 §4.5, AMD APM vol. 2
// §5.3). PS is meaningful only in PDPTEs and PDEs; in a PML4E it is
// reserved and in a PTE it selects PAT, and this package never sets it
// there. PAT in large leaves (bit 12) is never set either, so the address
// field of every entry can be read with addrMask.
const (
	entryPresent  uint64 = 1 << 0
	entryWrite    uint64 = 1 << 1
	entryUser     uint64 = 1 << 2
	entryPWT      uint64 = 1 << 3
	entryPCD      uint64 = 1 << 4
	entryAccessed uint64 = 1 << 5
	entryDirty    uint64 = 1 << 6
	entryPS       uint64 = 1 << 7
	entryGlobal   uint64 = 1 << 8
	entryNX       uint64 = 1 << 63

	addrMask uint64 = 0x000f_ffff_ffff_f000 // bits 12..51

	// tableBits is used for every non-leaf entry. Access rights are the
	// AND of all levels (NX the OR), so intermediate entries grant
	// everything and leaves alone decide.
	tableBits = entryPresent | entryWrite | entryUser

	// permBits are the leaf bits Protect rewrites and compares.
	permBits = entryPresent | entryWrite | entryUser | entryGlobal | entryNX
)

// Levels: 3 = PML4, 2 = PDPT, 1 = PD, 0 = PT.
const (
	topLevel = 3

	// lowerEnd and upperStart bound the two canonical halves of a 48-bit
	// address space; upperIndex is the first PML4 slot of the upper half.
	lowerEnd   uint64 = 1 << 47
	upperStart uint64 = 0xffff_8000_0000_0000
	upperIndex        = entriesPerTable / 2
)

// shift returns log2 of the span one entry at level covers.
func shift(level int) uint { return 12 + 9*uint(level) }

// index returns the entry index for virt at level.
func index(virt uint64, level int) int { return int(virt>>shift(level)) & (entriesPerTable - 1) }

func canonical(virt uint64) bool { return virt < lowerEnd || virt >= upperStart }

// isLeaf reports whether present entry e at level maps a page.
func isLeaf(e uint64, level int) bool {
	return level == 0 || (level < topLevel && e&entryPS != 0)
}

// leafBits encodes perms (already validated) for a leaf entry, without PS.
func leafBits(p Perms) uint64 {
	b := entryPresent
	if p&Write != 0 {
		b |= entryWrite
	}
	if p&User != 0 {
		b |= entryUser
	}
	if p&Global != 0 {
		b |= entryGlobal
	}
	if p&Execute == 0 {
		b |= entryNX // assumes EFER.NXE=1; otherwise bit 63 is reserved
	}
	return b
}

// permsOf decodes the access rights of a present leaf entry.
func permsOf(e uint64) Perms {
	p := Read
	if e&entryWrite != 0 {
		p |= Write
	}
	if e&entryNX == 0 {
		p |= Execute
	}
	if e&entryUser != 0 {
		p |= User
	}
	if e&entryGlobal != 0 {
		p |= Global
	}
	return p
}

// leafAddr returns the physical base of the page a leaf at level maps.
func leafAddr(e uint64, level int) uint64 {
	return e & addrMask &^ (uint64(1)<<shift(level) - 1)
}

// isEmpty reports whether table t has no present entry. It tests P rather
// than the whole entry so a stray hardware A/D update cannot keep a table
// alive.
func isEmpty(t *[512]uint64) bool {
	for _, e := range t {
		if e&entryPresent != 0 {
			return false
		}
	}
	return true
}
