package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

//go:embed init.sh
var initScript string

// layoutVersion changes whenever the base layer's layout changes in a way
// the hashed inputs do not show, so old cache entries are not reused.
const layoutVersion = "qemuguest-base-1"

// cpioWriter writes a newc ("070701") cpio archive, the format the kernel
// unpacks into its rootfs. Parent directories are emitted on demand.
type cpioWriter struct {
	w    *bufio.Writer
	off  int64
	ino  uint32
	dirs map[string]bool
}

func newCpioWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), dirs: map[string]bool{"": true, ".": true}}
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.off % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

// header writes one entry's header and name. name has no leading slash.
func (c *cpioWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) error {
	if size > 0xffffffff {
		return fmt.Errorf("cpio: %s is too large (%d bytes)", name, size)
	}
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if err := c.write([]byte(h)); err != nil {
		return err
	}
	if err := c.write(append([]byte(name), 0)); err != nil {
		return err
	}
	return c.pad()
}

// clean turns an absolute guest path into an archive name.
func archName(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// mkdirAll emits p and its parents unless already emitted.
func (c *cpioWriter) mkdirAll(p string) error {
	p = archName(p)
	if c.dirs[p] {
		return nil
	}
	if err := c.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	c.dirs[p] = true
	return c.header(p, 0o040755, 0, 0, 0)
}

// file emits a regular file of size bytes read from r.
func (c *cpioWriter) file(p string, perm fs.FileMode, size int64, r io.Reader) error {
	if err := c.mkdirAll(path.Dir(archName(p))); err != nil {
		return err
	}
	if err := c.header(archName(p), 0o100000|uint32(perm.Perm()), size, 0, 0); err != nil {
		return err
	}
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	c.off += n
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("cpio: %s: file changed size while archiving", p)
	}
	return c.pad()
}

func (c *cpioWriter) bytesFile(p string, perm fs.FileMode, data []byte) error {
	return c.file(p, perm, int64(len(data)), bytes.NewReader(data))
}

func (c *cpioWriter) symlink(p, target string) error {
	if err := c.mkdirAll(path.Dir(archName(p))); err != nil {
		return err
	}
	if err := c.header(archName(p), 0o120777, int64(len(target)), 0, 0); err != nil {
		return err
	}
	if err := c.write([]byte(target)); err != nil {
		return err
	}
	return c.pad()
}

func (c *cpioWriter) charDev(p string, perm fs.FileMode, major, minor uint32) error {
	if err := c.mkdirAll(path.Dir(archName(p))); err != nil {
		return err
	}
	return c.header(archName(p), 0o020000|uint32(perm.Perm()), 0, major, minor)
}

// close writes the trailer and flushes.
func (c *cpioWriter) close() error {
	if err := c.header("TRAILER!!!", 0, 0, 0, 0); err != nil {
		return err
	}
	return c.w.Flush()
}

// baseLayer returns the path of the cached, gzip-compressed base archive
// (busybox, the KVM modules and /init) for kernel k, building it if needed.
// The cache key hashes the kernel version, busybox, every module object and
// the init script.
func baseLayer(cacheDir string, k guestKernel, busybox string, mods []module) (path string, cached bool, err error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return "", false, fmt.Errorf("busybox: %w (install the Debian package busybox-static)", err)
	}
	if err := checkStatic(busybox); err != nil {
		return "", false, fmt.Errorf("%w (install the Debian package busybox-static)", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", layoutVersion, k.version, len(initScript))
	io.WriteString(h, initScript)
	fmt.Fprintf(h, "\x00busybox %d\x00", len(bb))
	h.Write(bb)
	for _, m := range mods {
		fmt.Fprintf(h, "\x00%s %d\x00", m.name, len(m.data))
		h.Write(m.data)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	out := filepath.Join(cacheDir, fmt.Sprintf("base-%s-%s.cpio.gz", k.version, key))
	if _, err := os.Stat(out); err == nil {
		return out, true, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", false, err
	}
	tmp, err := os.CreateTemp(cacheDir, ".base-*.tmp")
	if err != nil {
		return "", false, err
	}
	defer os.Remove(tmp.Name())
	tmp.Chmod(0o644)
	zw, _ := gzip.NewWriterLevel(tmp, gzip.BestCompression)
	c := newCpioWriter(zw)
	for _, d := range []string{"/bin", "/dev", "/proc", "/sys", "/tmp", "/run", "/qg/modules"} {
		if err := c.mkdirAll(d); err != nil {
			return "", false, err
		}
	}
	var order strings.Builder
	err = errors.Join(
		c.charDev("/dev/console", 0o600, 5, 1),
		c.bytesFile("/bin/busybox", 0o755, bb),
		c.symlink("/bin/sh", "busybox"),
		c.bytesFile("/init", 0o755, []byte(initScript)),
	)
	for i, m := range mods {
		name := fmt.Sprintf("%02d-%s.ko", i, m.name)
		fmt.Fprintln(&order, name)
		err = errors.Join(err, c.bytesFile("/qg/modules/"+name, 0o644, m.data))
	}
	err = errors.Join(err,
		c.bytesFile("/qg/modules/order", 0o644, []byte(order.String())),
		c.close(), zw.Close())
	// Pad to 4 bytes: the kernel recognizes an uncompressed archive appended
	// after this one only at a 4-byte aligned offset.
	if st, serr := tmp.Stat(); serr == nil && st.Size()%4 != 0 {
		_, werr := tmp.Write(make([]byte, 4-st.Size()%4))
		err = errors.Join(err, werr)
	}
	err = errors.Join(err, tmp.Close())
	if err != nil {
		return "", false, fmt.Errorf("writing base initramfs: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", false, err
	}
	pruneCache(cacheDir, fmt.Sprintf("base-%s-", k.version), out)
	return out, false, nil
}

// guestFile is a host file or directory to copy into the guest.
type guestFile struct {
	host, guest string
}

// parseFileSpec parses HOSTPATH[:GUESTPATH]; without GUESTPATH the file
// lands at its absolute host path.
func parseFileSpec(s string) (guestFile, error) {
	host, guest := s, ""
	if i := strings.LastIndex(s, ":"); i >= 0 && strings.HasPrefix(s[i+1:], "/") {
		host, guest = s[:i], s[i+1:]
	}
	if host == "" {
		return guestFile{}, fmt.Errorf("--file %q: empty host path", s)
	}
	abs, err := filepath.Abs(host)
	if err != nil {
		return guestFile{}, err
	}
	if guest == "" {
		guest = abs
	}
	guest = path.Clean(guest)
	if err := checkGuestPath(guest); err != nil {
		return guestFile{}, fmt.Errorf("--file %q: %w", s, err)
	}
	return guestFile{host: abs, guest: guest}, nil
}

// checkGuestPath refuses paths the guest's init mounts over or owns.
func checkGuestPath(p string) error {
	if !path.IsAbs(p) || p == "/" {
		return fmt.Errorf("guest path %q must be an absolute file path", p)
	}
	for _, top := range []string{"/proc", "/sys", "/dev", "/run/qg", "/qg"} {
		if p == top || strings.HasPrefix(p, top+"/") {
			return fmt.Errorf("guest path %q: %s is mounted over or used by the guest's init; pick another directory", p, top)
		}
	}
	if p == "/init" || p == "/bin/busybox" || p == "/bin/sh" {
		return fmt.Errorf("guest path %q is part of the guest's own init", p)
	}
	return nil
}

// runSpec is everything that changes from run to run.
type runSpec struct {
	program string   // host path of the static binary
	args    []string // its arguments
	env     []string // K=V, the program's whole environment
	workdir string   // its working directory in the guest
	files   []guestFile
}

// progGuestPath is where the program lands in the guest.
func (r *runSpec) progGuestPath() string { return "/qg/prog/" + filepath.Base(r.program) }

// shQuote quotes s for the guest's sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// runConf is /qg/run.conf, sourced by /init.
func (r *runSpec) runConf() string {
	var b strings.Builder
	fmt.Fprintf(&b, "QG_WORKDIR=%s\nqg_exec() {\n\texec env -i", shQuote(r.workdir))
	for _, e := range r.env {
		b.WriteString(" " + shQuote(e))
	}
	b.WriteString(" " + shQuote(r.progGuestPath()))
	for _, a := range r.args {
		b.WriteString(" " + shQuote(a))
	}
	b.WriteString("\n}\n")
	return b.String()
}

// writeRunLayer writes the uncompressed archive with the program, the extra
// files and /qg/run.conf. Uncompressed on purpose: the guest unpacks it
// under TCG, where gunzip of a test binary would cost seconds.
func writeRunLayer(w io.Writer, r *runSpec) error {
	c := newCpioWriter(w)
	addFile := func(host, guest string, perm fs.FileMode) error {
		f, err := os.Open(host)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		return c.file(guest, perm, st.Size(), f)
	}
	if err := addFile(r.program, r.progGuestPath(), 0o755); err != nil {
		return err
	}
	for _, gf := range r.files {
		err := filepath.WalkDir(gf.host, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(gf.host, p)
			if err != nil {
				return err
			}
			guest := path.Join(gf.guest, filepath.ToSlash(rel))
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				return c.mkdirAll(guest)
			case d.Type()&fs.ModeSymlink != 0:
				if p == gf.host { // a symlink named on the command line: follow it
					st, err := os.Stat(p)
					if err != nil {
						return err
					}
					if st.IsDir() {
						return fmt.Errorf("--file %s: a symlink to a directory; name the directory itself", p)
					}
					return addFile(p, guest, st.Mode())
				}
				t, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return c.symlink(guest, t)
			case info.Mode().IsRegular():
				return addFile(p, guest, info.Mode())
			}
			return fmt.Errorf("--file: %s is not a regular file, directory or symlink", p)
		})
		if err != nil {
			return err
		}
	}
	if err := c.bytesFile("/qg/run.conf", 0o644, []byte(r.runConf())); err != nil {
		return err
	}
	return c.close()
}

// checkStatic reports whether path is an x86-64 ELF executable that needs no
// dynamic loader: the guest has no libc, only busybox.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return err
		}
		return fmt.Errorf("%s: not an ELF executable; the guest runs static x86-64 binaries only", p)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("%s: not an x86-64 binary (%v)", p, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s: not an executable (ELF type %v)", p, f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(prog.Open())
			return fmt.Errorf("%s: dynamically linked (interpreter %s); the guest has no libc: build it static (CGO_ENABLED=0 go build / go test -c, or gcc -static)",
				p, strings.TrimRight(string(interp), "\x00"))
		}
	}
	return nil
}
