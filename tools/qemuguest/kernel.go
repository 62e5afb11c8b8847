package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// kernelPackage is the Debian package that provides the guest kernel and
// its modules.
const kernelPackage = "linux-image-amd64"

// guestKernel is a kernel image with the module tree that belongs to it.
type guestKernel struct {
	image      string // bzImage (vmlinuz)
	version    string // uname -r
	modulesDir string // /lib/modules/<version>
}

// kvmModules are the modules the guest loads, in this order, after their
// dependencies.
var kvmModules = []string{"kvm", "kvm-amd"}

// findKernel returns the kernel to boot: image (a vmlinuz path) if given,
// else the newest /boot/vmlinuz-* that has the KVM modules next to it.
// modulesDir overrides /lib/modules/<version>.
func findKernel(image, modulesDir string) (guestKernel, error) {
	if image != "" {
		v, err := kernelVersion(image)
		if err != nil && modulesDir != "" {
			v, err = filepath.Base(modulesDir), nil
		}
		if err != nil {
			return guestKernel{}, err
		}
		k := guestKernel{image: image, version: v, modulesDir: modulesDir}
		if k.modulesDir == "" {
			k.modulesDir = filepath.Join("/lib/modules", v)
		}
		if _, err := findModuleFile(k.modulesDir, "kvm-amd"); err != nil {
			return guestKernel{}, err
		}
		return k, nil
	}
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(images) == 0 {
		return guestKernel{}, fmt.Errorf("no guest kernel: /boot/vmlinuz-* not found; install the Debian package %s (apt-get install %s) or pass --kernel", kernelPackage, kernelPackage)
	}
	var cands []guestKernel
	var reasons []string
	for _, img := range images {
		v, err := kernelVersion(img)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		dir := modulesDir
		if dir == "" {
			dir = filepath.Join("/lib/modules", v)
		}
		if _, err := findModuleFile(dir, "kvm-amd"); err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		cands = append(cands, guestKernel{image: img, version: v, modulesDir: dir})
	}
	if len(cands) == 0 {
		return guestKernel{}, fmt.Errorf("no usable guest kernel in /boot (install the Debian package %s): %s", kernelPackage, strings.Join(reasons, "; "))
	}
	sort.Slice(cands, func(i, j int) bool { return versionLess(cands[i].version, cands[j].version) })
	return cands[len(cands)-1], nil
}

// kernelVersion reads the version string from an x86 bzImage's setup header
// (the kernel_version field), falling back to the vmlinuz-<version> name.
func kernelVersion(image string) (string, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", fmt.Errorf("guest kernel: %w (is it readable by this user?)", err)
	}
	defer f.Close()
	hdr := make([]byte, 0x4000)
	n, _ := io.ReadFull(f, hdr)
	hdr = hdr[:n]
	// Setup header: "HdrS" at 0x202; kernel_version (u16) at 0x20e is an
	// offset from 0x200 to a NUL-terminated string.
	if len(hdr) > 0x210 && string(hdr[0x202:0x206]) == "HdrS" {
		off := 0x200 + int(binary.LittleEndian.Uint16(hdr[0x20e:]))
		if off < len(hdr) {
			s := hdr[off:]
			if i := bytes.IndexByte(s, 0); i >= 0 {
				if fields := strings.Fields(string(s[:i])); len(fields) > 0 {
					return fields[0], nil
				}
			}
		}
	}
	if v, ok := strings.CutPrefix(filepath.Base(image), "vmlinuz-"); ok && v != "" {
		return v, nil
	}
	return "", fmt.Errorf("guest kernel %s: not an x86 bzImage and no version in its name (pass --modules)", image)
}

// versionLess orders kernel versions by their numeric fields ("6.1.0-56"
// before "6.1.0-128"), falling back to string order.
func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '_' })
	}
	fa, fb := split(a), split(b)
	for i := 0; i < len(fa) && i < len(fb); i++ {
		na, ea := strconv.Atoi(fa[i])
		nb, eb := strconv.Atoi(fb[i])
		switch {
		case ea == nil && eb == nil && na != nb:
			return na < nb
		case (ea != nil || eb != nil) && fa[i] != fb[i]:
			return fa[i] < fb[i]
		}
	}
	return len(fa) < len(fb)
}

// moduleSuffixes are the file names a module may have, compressed or not.
var moduleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// normModName is the kernel's notion of a module name: '-' and '_' are the
// same.
func normModName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// moduleIndex maps normalized module names to files under modulesDir/kernel.
func moduleIndex(modulesDir string) (map[string]string, error) {
	root := filepath.Join(modulesDir, "kernel")
	idx := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		for _, suf := range moduleSuffixes {
			if name, ok := strings.CutSuffix(d.Name(), suf); ok {
				idx[normModName(name)] = path
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("guest kernel modules: %w (install the Debian package %s)", err, kernelPackage)
	}
	return idx, nil
}

// findModuleFile finds one module's file without indexing the whole tree,
// looking where x86 KVM lives.
func findModuleFile(modulesDir, name string) (string, error) {
	for _, suf := range moduleSuffixes {
		p := filepath.Join(modulesDir, "kernel/arch/x86/kvm", name+suf)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: no %s.ko under kernel/arch/x86/kvm (the modules of the Debian package %s)", modulesDir, name, kernelPackage)
}

// module is one kernel module, decompressed, ready for insmod.
type module struct {
	name string // normalized
	path string // host file it came from
	data []byte // uncompressed ELF object
}

// resolveModules returns the modules named in want plus everything they
// depend on (the "depends=" field of each object's .modinfo section, the
// same field `modinfo -F depends` prints), in an order insmod can load them.
func resolveModules(modulesDir string, want []string) ([]module, error) {
	idx, err := moduleIndex(modulesDir)
	if err != nil {
		return nil, err
	}
	var order []module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, from string) error
	visit = func(name, from string) error {
		name = normModName(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		state[name] = 1
		path, ok := idx[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("module %s (needed by %s) not found under %s/kernel", name, from, modulesDir)
			}
			return fmt.Errorf("module %s not found under %s/kernel (install the Debian package %s)", name, modulesDir, kernelPackage)
		}
		data, err := readModule(path)
		if err != nil {
			return err
		}
		deps, err := moduleDepends(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, module{name: name, path: path, data: data})
		return nil
	}
	for _, w := range want {
		if err := visit(w, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends returns the depends= list from a module's .modinfo section.
func moduleDepends(obj []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, d)
				}
			}
		}
	}
	return deps, nil
}

// readModule returns a module's object, decompressing .gz in Go and .xz and
// .zst with the xz and zstd tools (busybox insmod loads plain objects only).
func readModule(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []byte
	switch {
	case strings.HasSuffix(path, ".gz"):
		out, err = gunzip(data)
	case strings.HasSuffix(path, ".xz"):
		out, err = unxz(data)
	case strings.HasSuffix(path, ".zst"):
		out, err = unzstd(data)
	default:
		return data, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return io.ReadAll(zr)
}

func unxz(data []byte) ([]byte, error) {
	return decompressWith(data, "xz-utils", []string{"xz", "-dc"}, []string{"busybox", "xzcat"})
}

func unzstd(data []byte) ([]byte, error) {
	return decompressWith(data, "zstd", []string{"zstd", "-dcq"})
}

// decompressWith pipes data through the first available of the commands.
func decompressWith(data []byte, pkg string, cmds ...[]string) ([]byte, error) {
	for _, c := range cmds {
		bin, err := exec.LookPath(c[0])
		if err != nil {
			continue
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, c[1:]...)
		cmd.Stdin = bytes.NewReader(data)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("decompressing with %s: %v: %s", c[0], err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	return nil, fmt.Errorf("compressed, and no %s to decompress it (install the Debian package %s)", cmds[0][0], pkg)
}

// pvhImage extracts the uncompressed kernel (vmlinux) from a bzImage into the
// cache and returns its path. qemu boots such an ELF image through its PVH
// entry point, which skips the bzImage's self-decompression: under TCG that
// alone takes about 5 s of every boot. It fails if the bzImage's payload is
// compressed in a way not handled here or the kernel has no PVH entry
// (CONFIG_PVH); the caller then boots the bzImage as is.
func pvhImage(cacheDir string, k guestKernel) (path string, cached bool, err error) {
	img, err := os.ReadFile(k.image)
	if err != nil {
		return "", false, err
	}
	sum := sha256.Sum256(img)
	prefix := "vmlinux-" + k.version + "-"
	out := filepath.Join(cacheDir, prefix+hex.EncodeToString(sum[:])[:16])
	if _, err := os.Stat(out); err == nil {
		return out, true, nil
	}
	payload, err := bzImagePayload(img)
	if err != nil {
		return "", false, err
	}
	// The build appends the uncompressed size (le32) to every payload.
	if len(payload) < 8 {
		return "", false, errors.New("bzImage payload too short")
	}
	size := binary.LittleEndian.Uint32(payload[len(payload)-4:])
	comp := payload[:len(payload)-4]
	var vmlinux []byte
	switch {
	case bytes.HasPrefix(comp, []byte{0x1f, 0x8b}):
		vmlinux, err = gunzip(comp)
	case bytes.HasPrefix(comp, []byte("\xfd7zXZ\x00")):
		vmlinux, err = unxz(comp)
	case bytes.HasPrefix(comp, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		vmlinux, err = unzstd(comp)
	default:
		return "", false, fmt.Errorf("bzImage payload compression not handled (magic % x)", comp[:min(6, len(comp))])
	}
	if err != nil {
		return "", false, fmt.Errorf("bzImage payload: %w", err)
	}
	if uint32(len(vmlinux)) != size {
		return "", false, fmt.Errorf("bzImage payload: decompressed %d bytes, header says %d", len(vmlinux), size)
	}
	if err := checkPVH(vmlinux); err != nil {
		return "", false, err
	}
	if err := writeCacheFile(cacheDir, out, prefix, vmlinux); err != nil {
		return "", false, err
	}
	return out, false, nil
}

// bzImagePayload returns the compressed kernel inside a bzImage, as located
// by the setup header (boot protocol 2.08+).
func bzImagePayload(img []byte) ([]byte, error) {
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage")
	}
	if proto := binary.LittleEndian.Uint16(img[0x206:]); proto < 0x208 {
		return nil, fmt.Errorf("bzImage boot protocol %#x has no payload fields", proto)
	}
	setupSects := int(img[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
	end := start + int(binary.LittleEndian.Uint32(img[0x24c:]))
	if start >= end || end > len(img) {
		return nil, errors.New("bzImage payload out of bounds")
	}
	return img[start:end], nil
}

// checkPVH reports whether vmlinux is an x86-64 ELF with the Xen
// PHYS32_ENTRY note qemu needs to boot it directly.
func checkPVH(vmlinux []byte) error {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return fmt.Errorf("extracted kernel is not ELF: %w", err)
	}
	const xenElfnotePhys32Entry = 18
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err != nil {
			return err
		}
		for len(notes) >= 12 {
			namesz := int(binary.LittleEndian.Uint32(notes[0:]))
			descsz := int(binary.LittleEndian.Uint32(notes[4:]))
			typ := binary.LittleEndian.Uint32(notes[8:])
			align := func(n int) int { return (n + 3) &^ 3 }
			if 12+align(namesz)+align(descsz) > len(notes) {
				break
			}
			name := string(bytes.TrimRight(notes[12:12+namesz], "\x00"))
			if name == "Xen" && typ == xenElfnotePhys32Entry {
				return nil
			}
			notes = notes[12+align(namesz)+align(descsz):]
		}
	}
	return errors.New("kernel has no PVH entry point (CONFIG_PVH)")
}

// writeCacheFile writes data to path atomically and removes older entries
// of the same kind (names starting with prefix) for the same kernel.
func writeCacheFile(dir, path, prefix string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tmp.Chmod(0o644)
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	pruneCache(dir, prefix, path)
	return nil
}

// pruneCache removes dir's entries named prefix* other than keep.
func pruneCache(dir, prefix, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	for _, o := range old {
		if o != keep {
			os.Remove(o)
		}
	}
}
