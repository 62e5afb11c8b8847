package procfs

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/ringfence/ringfence/guestkernel/platform"
)

// cpuid is the host's CPUID instruction, replaceable by tests. Apps run
// on the host's CPUs and see its CPUID themselves, so /proc/cpuinfo
// describes those (once per sandbox CPU).
var cpuid = platform.CPUID

// CPUID registers.
const (
	eax = iota
	ebx
	ecx
	edx
)

// flagWord names the feature bits of one CPUID register, as Linux's
// cpufeatures.h words do; cpuinfo lists them word by word, bit by bit.
// Bits Linux does not show are left out.
type flagWord struct {
	leaf, sub uint32
	reg       int
	names     [32]string
}

var flagWords = []flagWord{
	{1, 0, edx, [32]string{0: "fpu", 1: "vme", 2: "de", 3: "pse", 4: "tsc", 5: "msr", 6: "pae", 7: "mce",
		8: "cx8", 9: "apic", 11: "sep", 12: "mtrr", 13: "pge", 14: "mca", 15: "cmov", 16: "pat", 17: "pse36",
		18: "pn", 19: "clflush", 21: "dts", 22: "acpi", 23: "mmx", 24: "fxsr", 25: "sse", 26: "sse2", 27: "ss",
		28: "ht", 29: "tm", 30: "ia64", 31: "pbe"}},
	{0x80000001, 0, edx, [32]string{11: "syscall", 19: "mp", 20: "nx", 22: "mmxext", 25: "fxsr_opt",
		26: "pdpe1gb", 27: "rdtscp", 29: "lm", 30: "3dnowext", 31: "3dnow"}},
	// Word 3 is Linux's own (synthetic) flags: see synthFlags.
	{1, 0, ecx, [32]string{0: "pni", 1: "pclmulqdq", 2: "dtes64", 3: "monitor", 4: "ds_cpl", 5: "vmx", 6: "smx",
		7: "est", 8: "tm2", 9: "ssse3", 10: "cid", 11: "sdbg", 12: "fma", 13: "cx16", 14: "xtpr", 15: "pdcm",
		17: "pcid", 18: "dca", 19: "sse4_1", 20: "sse4_2", 21: "x2apic", 22: "movbe", 23: "popcnt",
		24: "tsc_deadline_timer", 25: "aes", 26: "xsave", 28: "avx", 29: "f16c", 30: "rdrand", 31: "hypervisor"}},
	{0x80000001, 0, ecx, [32]string{0: "lahf_lm", 1: "cmp_legacy", 2: "svm", 3: "extapic", 4: "cr8_legacy",
		5: "abm", 6: "sse4a", 7: "misalignsse", 8: "3dnowprefetch", 9: "osvw", 10: "ibs", 11: "xop",
		12: "skinit", 13: "wdt", 15: "lwp", 16: "fma4", 17: "tce", 19: "nodeid_msr", 21: "tbm", 22: "topoext",
		23: "perfctr_core", 24: "perfctr_nb", 26: "bpext", 27: "ptsc", 28: "perfctr_llc", 29: "mwaitx"}},
	{7, 0, ebx, [32]string{0: "fsgsbase", 1: "tsc_adjust", 2: "sgx", 3: "bmi1", 4: "hle", 5: "avx2", 7: "smep",
		8: "bmi2", 9: "erms", 10: "invpcid", 11: "rtm", 12: "cqm", 14: "mpx", 15: "rdt_a", 16: "avx512f",
		17: "avx512dq", 18: "rdseed", 19: "adx", 20: "smap", 21: "avx512ifma", 23: "clflushopt", 24: "clwb",
		25: "intel_pt", 26: "avx512pf", 27: "avx512er", 28: "avx512cd", 29: "sha_ni", 30: "avx512bw",
		31: "avx512vl"}},
	{0xd, 1, eax, [32]string{0: "xsaveopt", 1: "xsavec", 2: "xgetbv1", 3: "xsaves", 4: "xfd"}},
	{7, 1, eax, [32]string{4: "avx_vnni", 5: "avx512_bf16", 7: "cmpccxadd", 10: "fzrm", 11: "fsrs", 12: "fsrc",
		18: "lkgs", 21: "amx_fp16", 23: "avx_ifma", 26: "lam"}},
	{6, 0, eax, [32]string{0: "dtherm", 1: "ida", 2: "arat", 4: "pln", 6: "pts", 7: "hwp", 8: "hwp_notify",
		9: "hwp_act_window", 10: "hwp_epp", 11: "hwp_pkg_req"}},
	{7, 0, ecx, [32]string{1: "avx512vbmi", 2: "umip", 3: "pku", 4: "ospke", 5: "waitpkg", 6: "avx512_vbmi2",
		8: "gfni", 9: "vaes", 10: "vpclmulqdq", 11: "avx512_vnni", 12: "avx512_bitalg", 13: "tme",
		14: "avx512_vpopcntdq", 16: "la57", 22: "rdpid", 24: "bus_lock_detect", 25: "cldemote", 27: "movdiri",
		28: "movdir64b", 29: "enqcmd", 30: "sgx_lc"}},
	{7, 0, edx, [32]string{2: "avx512_4vnniw", 3: "avx512_4fmaps", 4: "fsrm", 8: "avx512_vp2intersect",
		10: "md_clear", 14: "serialize", 16: "tsxldtrk", 18: "pconfig", 19: "arch_lbr", 20: "ibt",
		22: "amx_bf16", 23: "avx512_fp16", 24: "amx_tile", 25: "amx_int8", 28: "flush_l1d",
		29: "arch_capabilities"}},
}

// cpuInfo is what CPUID says, decoded once per read.
type cpuInfo struct {
	vendor, model          string
	family, modelNum, step uint32
	maxLeaf, maxExt        uint32
	mhz                    float64
	cacheKB                uint32
	clflush                uint32
	physBits, virtBits     uint32
	flags                  []string
}

func regs(leaf, sub uint32) [4]uint32 {
	a, b, c, d := cpuid(leaf, sub)
	return [4]uint32{a, b, c, d}
}

func (ci *cpuInfo) has(leaf uint32) bool {
	if leaf >= 0x80000000 {
		return leaf <= ci.maxExt
	}
	return leaf <= ci.maxLeaf
}

func readCPUInfo() *cpuInfo {
	ci := &cpuInfo{}
	r := regs(0, 0)
	ci.maxLeaf = r[eax]
	var v [12]byte
	binary.LittleEndian.PutUint32(v[0:], r[ebx])
	binary.LittleEndian.PutUint32(v[4:], r[edx])
	binary.LittleEndian.PutUint32(v[8:], r[ecx])
	ci.vendor = strings.TrimRight(string(v[:]), "\x00")
	ci.maxExt = regs(0x80000000, 0)[eax]

	r = regs(1, 0)
	ci.step = r[eax] & 0xf
	ci.modelNum = (r[eax] >> 4) & 0xf
	ci.family = (r[eax] >> 8) & 0xf
	if ci.family == 0xf {
		ci.family += (r[eax] >> 20) & 0xff
	}
	if ci.family >= 6 {
		ci.modelNum += ((r[eax] >> 16) & 0xf) << 4
	}
	ci.clflush = ((r[ebx] >> 8) & 0xff) * 8

	if ci.has(0x80000004) {
		var brand [48]byte
		for i := uint32(0); i < 3; i++ {
			r := regs(0x80000002+i, 0)
			for j, reg := range r {
				binary.LittleEndian.PutUint32(brand[i*16+uint32(j)*4:], reg)
			}
		}
		ci.model = strings.TrimSpace(strings.TrimRight(string(brand[:]), "\x00"))
	}
	if ci.model == "" {
		ci.model = "unknown"
	}
	ci.physBits, ci.virtBits = 36, 48
	if ci.has(0x80000008) {
		r := regs(0x80000008, 0)
		ci.physBits, ci.virtBits = r[eax]&0xff, (r[eax]>>8)&0xff
	}
	ci.mhz = ci.frequency()
	ci.cacheKB = ci.cacheSize()
	ci.flags = ci.flagNames()
	return ci
}

// frequency is the nominal MHz: CPUID leaf 0x16, else the brand string's
// "@ 2.30GHz", else the TSC's frequency from leaf 0x15.
func (ci *cpuInfo) frequency() float64 {
	if ci.has(0x16) {
		if mhz := regs(0x16, 0)[eax] & 0xffff; mhz != 0 {
			return float64(mhz)
		}
	}
	if i := strings.LastIndex(ci.model, "@ "); i >= 0 {
		s := ci.model[i+2:]
		if ghz, err := strconv.ParseFloat(strings.TrimSuffix(s, "GHz"), 64); err == nil && strings.HasSuffix(s, "GHz") {
			return ghz * 1000
		}
	}
	if ci.has(0x15) {
		r := regs(0x15, 0)
		if r[eax] != 0 && r[ebx] != 0 && r[ecx] != 0 {
			return float64(r[ecx]) * float64(r[ebx]) / float64(r[eax]) / 1e6
		}
	}
	return 1000
}

// cacheSize is the last-level cache in KB, as Linux reports it: from the
// deterministic cache leaf 4 on Intel, the L2 of leaf 0x80000006 on AMD.
func (ci *cpuInfo) cacheSize() uint32 {
	if ci.vendor != "GenuineIntel" || !ci.has(4) {
		if ci.has(0x80000006) {
			return regs(0x80000006, 0)[ecx] >> 16
		}
		return 0
	}
	var size, level uint32
	for sub := uint32(0); sub < 16; sub++ {
		r := regs(4, sub)
		typ := r[eax] & 0x1f
		if typ == 0 {
			break
		}
		if typ == 2 { // the instruction cache
			continue
		}
		l := (r[eax] >> 5) & 7
		ways := (r[ebx]>>22)&0x3ff + 1
		parts := (r[ebx]>>12)&0x3ff + 1
		line := r[ebx]&0xfff + 1
		sets := r[ecx] + 1
		if l >= level {
			level, size = l, ways*parts*line*sets/1024
		}
	}
	return size
}

// flagNames lists the flags in Linux's order.
func (ci *cpuInfo) flagNames() []string {
	var out []string
	for i, w := range flagWords {
		if i == 2 {
			out = append(out, ci.synthFlags()...)
		}
		if !ci.has(w.leaf) {
			continue
		}
		if w.sub > 0 && w.leaf == 7 && regs(7, 0)[eax] < w.sub {
			continue
		}
		v := regs(w.leaf, w.sub)[w.reg]
		for bit, name := range w.names {
			if name != "" && v&(1<<bit) != 0 {
				out = append(out, name)
			}
		}
	}
	return out
}

// synthFlags are those of Linux's own word 3 that programs look at.
func (ci *cpuInfo) synthFlags() []string {
	invariant := ci.has(0x80000007) && regs(0x80000007, 0)[edx]&(1<<8) != 0
	constant := invariant || (ci.vendor == "GenuineIntel" &&
		((ci.family == 0xf && ci.modelNum >= 3) || (ci.family == 6 && ci.modelNum >= 0xe)))
	var out []string
	if constant {
		out = append(out, "constant_tsc")
	}
	if invariant {
		out = append(out, "nonstop_tsc")
	}
	return append(out, "cpuid")
}

// cpuinfo renders /proc/cpuinfo: one entry per sandbox CPU, all alike.
func (fs *filesystem) cpuinfo() []byte {
	ci := readCPUInfo()
	n := max(fs.k.NumCPUs(), 1)
	flags := strings.Join(ci.flags, " ")
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "processor\t: %d\n", i)
		fmt.Fprintf(&b, "vendor_id\t: %s\n", ci.vendor)
		fmt.Fprintf(&b, "cpu family\t: %d\n", ci.family)
		fmt.Fprintf(&b, "model\t\t: %d\n", ci.modelNum)
		fmt.Fprintf(&b, "model name\t: %s\n", ci.model)
		fmt.Fprintf(&b, "stepping\t: %d\n", ci.step)
		fmt.Fprintf(&b, "cpu MHz\t\t: %.3f\n", ci.mhz)
		if ci.cacheKB != 0 {
			fmt.Fprintf(&b, "cache size\t: %d KB\n", ci.cacheKB)
		}
		fmt.Fprintf(&b, "physical id\t: 0\nsiblings\t: %d\ncore id\t\t: %d\ncpu cores\t: %d\n", n, i, n)
		fmt.Fprintf(&b, "apicid\t\t: %d\ninitial apicid\t: %d\n", i, i)
		b.WriteString("fpu\t\t: yes\nfpu_exception\t: yes\n")
		fmt.Fprintf(&b, "cpuid level\t: %d\n", ci.maxLeaf)
		b.WriteString("wp\t\t: yes\n")
		fmt.Fprintf(&b, "flags\t\t: %s\n", flags)
		b.WriteString("bugs\t\t:\n")
		fmt.Fprintf(&b, "bogomips\t: %.2f\n", ci.mhz*2)
		fmt.Fprintf(&b, "clflush size\t: %d\ncache_alignment\t: %d\n", ci.clflush, ci.clflush)
		fmt.Fprintf(&b, "address sizes\t: %d bits physical, %d bits virtual\n", ci.physBits, ci.virtBits)
		b.WriteString("power management:\n\n")
	}
	return []byte(b.String())
}
