package vm

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
)

// initramfs builds a gzip'd cpio "newc" archive, the format the kernel
// unpacks into its rootfs. It is written here rather than with cpio(1) so
// the test needs no archiver and controls every entry exactly, device
// nodes included (the kernel creates those for us while unpacking, which
// is how the rootfs bundle gets a node the container is denied).
type initramfs struct {
	entries map[string]*entry
}

type entry struct {
	mode       uint32 // file type bits and permissions, as in stat(2)
	data       []byte // file contents, or a symlink's target
	rmaj, rmin uint32 // device numbers of a node
	hostPath   string // a file to read at write time instead of data
	uid, gid   uint32 // owner; root (0) unless set
}

func newInitramfs() *initramfs {
	return &initramfs{entries: map[string]*entry{}}
}

func clean(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// mkdirAll records p and every parent: the kernel's unpacker does not
// create missing parents, so each directory needs an entry of its own.
func (a *initramfs) mkdirAll(p string) {
	p = clean(p)
	for p != "" && p != "." {
		if _, ok := a.entries[p]; !ok {
			a.entries[p] = &entry{mode: syscall.S_IFDIR | 0o755}
		}
		p = path.Dir(p)
	}
}

func (a *initramfs) add(p string, e *entry) {
	p = clean(p)
	a.mkdirAll(path.Dir(p))
	a.entries[p] = e
}

func (a *initramfs) file(p string, data []byte, perm uint32) {
	a.add(p, &entry{mode: syscall.S_IFREG | perm, data: data})
}

// copyFile adds host file src (following symlinks) at p, keeping its mode.
func (a *initramfs) copyFile(p, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	a.add(p, &entry{mode: syscall.S_IFREG | uint32(st.Mode().Perm()), hostPath: src})
	return nil
}

func (a *initramfs) symlink(p, target string) {
	a.add(p, &entry{mode: syscall.S_IFLNK | 0o777, data: []byte(target)})
}

func (a *initramfs) chardev(p string, major, minor, perm uint32) {
	a.add(p, &entry{mode: syscall.S_IFCHR | perm, rmaj: major, rmin: minor})
}

// writeTo writes the archive, gzip'd, parents before children.
func (a *initramfs) writeTo(w io.Writer) error {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	// Sorted paths put "a" before "a/b", which is all the order we need.
	sort.Strings(names)
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriter(zw)
	ino := uint32(1)
	for _, n := range names {
		e := a.entries[n]
		data := e.data
		if e.hostPath != "" {
			var err error
			if data, err = os.ReadFile(e.hostPath); err != nil {
				return err
			}
		}
		if err := writeEntry(bw, ino, n, e, data); err != nil {
			return err
		}
		ino++
	}
	if err := writeEntry(bw, 0, "TRAILER!!!", &entry{}, nil); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

func pad4(w io.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

// writeEntry writes one newc header (110 bytes: magic and 13 8-digit hex
// fields), the NUL-terminated name and the data, each padded to 4 bytes.
func writeEntry(w io.Writer, ino uint32, name string, e *entry, data []byte) error {
	nlink := 1
	if e.mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.mode, e.uid, e.gid, nlink, 0, len(data), 0, 0, e.rmaj, e.rmin, len(name)+1, 0)
	if _, err := io.WriteString(w, hdr+name+"\x00"); err != nil {
		return err
	}
	if err := pad4(w, len(hdr)+len(name)+1); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return pad4(w, len(data))
}
