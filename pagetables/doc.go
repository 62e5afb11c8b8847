// Package pagetables owns the guest page tables of the KVM platform: the
// x86-64 four-level hierarchy (PML4 → PDPT → PD → PT) that translates an
// address space's virtual addresses to guest physical addresses while app
// code runs in guest ring 3.
//
// It is a pure data structure. The table pages themselves live in guest
// physical memory handed out by a caller-supplied Allocator; the package
// writes entries through the host's view of those pages and knows nothing
// of KVM, vCPUs or TLBs. What it owns:
//
//   - every table page it allocated (the PML4 and the tables below it),
//     which it frees when they become empty or on Release;
//   - the entry encoding: leaf permissions (RW, US, G, NX), 2 MiB and
//     1 GiB leaves (PS), and splitting a large leaf when only part of it
//     changes.
//
// What it does not own: TLB and paging-structure-cache invalidation. Map,
// Unmap and Protect report whether a present entry changed; the caller
// must then flush (INVLPG / INVPCID / CR3 reload) on every vCPU that may
// cache the address space before the change is relied upon, and before
// the allocator hands a freed table page out again (see Allocator).
//
// # Shared kernel half
//
// Every app address space maps the same kernel in the upper canonical half
// (PML4 entries 256..511). Rather than copying it, a kernel template
// PageTables is built once and NewWithKernelHalf copies the template's
// upper PML4 entries into each new address space, so all of them point to
// the same PDPT pages. The contract:
//
//   - Upper-half mappings are made in the template only. Map, Unmap,
//     Protect and PrepareUpperHalf on an upper-half address of a
//     PageTables created by NewWithKernelHalf fail with ErrKernelHalf.
//   - Changes the template makes below the PML4 level (in PDPT, PD or PT
//     entries of a PML4 slot that was present when the address space was
//     created) are seen by every sharing address space at once. A PML4
//     slot the template fills later is not: call PrepareUpperHalf on the
//     template for every upper-half region it will ever use before
//     creating address spaces from it.
//   - Unmap never clears PML4 entries 256..511 (in any PageTables), so a
//     shared PDPT is never freed while the template lives. An address
//     space's Release never frees shared pages; the template's Release
//     does, so release every sharing address space first.
//
// # Concurrency
//
// A PageTables is not safe for concurrent use: the caller serializes
// Map, Unmap, Protect, PrepareUpperHalf and Release against each other and
// against Lookup and Walk (concurrent Lookup/Walk alone are fine). Mutating
// the template's upper half also changes what Lookup sees in every sharing
// address space, so those need the same serialization. Guest vCPUs may
// walk the tables while they are edited: every entry is written with one
// aligned 64-bit store, and a new table is filled before the entry that
// points to it is written, so a walk sees either the old or the new
// translation.
package pagetables
