package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// OpenRoot opens an existing directory as a Root, for steps after the root
// change (then "/").
func OpenRoot(path string) (*Root, error) {
	f, err := os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", path, err)
	}
	return &Root{Path: path, f: f}, nil
}

// Mkdir creates p and its parents inside the root (bwrap --dir).
func (r *Root) Mkdir(p string, mode os.FileMode) error {
	f, err := mkdirInRoot(r.f, p, mode)
	if err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return f.Close()
}

// createIn opens the parent of p inside the root and returns it with p's
// last component.
func (r *Root) parent(p string) (*os.File, string, error) {
	p = filepath.Clean("/" + p)
	if p == "/" {
		return nil, "", fmt.Errorf("%w: %s has no parent", ErrUnsafePath, p)
	}
	dir, err := mkdirInRoot(r.f, filepath.Dir(p), 0o755)
	if err != nil {
		return nil, "", fmt.Errorf("parent of %s: %w", p, err)
	}
	return dir, filepath.Base(p), nil
}

// WriteFile creates p with mode and the given contents, or those read from
// src when src is not -1 (bwrap --file FD); it closes src. An existing
// symlink at p is refused, never followed.
func (r *Root) WriteFile(p string, mode os.FileMode, data []byte, src int) error {
	if src >= 0 {
		f := os.NewFile(uintptr(src), "file-source")
		defer f.Close()
		var err error
		if data, err = io.ReadAll(f); err != nil {
			return fmt.Errorf("read contents of %s: %w", p, err)
		}
	}
	dir, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer dir.Close()
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_CREAT|unix.O_TRUNC|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	// The plan's mode is raw permission bits (bwrap's --perms 04755):
	// os.FileMode's Perm would drop setuid, setgid and sticky. Set before
	// the write, as bwrap's creat(2) does: a writer without CAP_FSETID
	// over the file (an unprivileged caller) loses setuid and setgid.
	if err := unix.Fchmod(fd, uint32(mode)&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// Symlink creates p pointing at target (bwrap --symlink); an existing
// identical link is fine, as in bwrap.
func (r *Root) Symlink(target, p string) error {
	dir, base, err := r.parent(p)
	if err != nil {
		return err
	}
	defer dir.Close()
	err = unix.Symlinkat(target, int(dir.Fd()), base)
	if errors.Is(err, unix.EEXIST) {
		buf := make([]byte, unix.PathMax)
		if n, rerr := unix.Readlinkat(int(dir.Fd()), base, buf); rerr == nil && string(buf[:n]) == target {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("symlink %s -> %s: %w", p, target, err)
	}
	return nil
}

// Chmod sets p's mode, never following a symlink out of the root.
func (r *Root) Chmod(p string, mode os.FileMode) error {
	f, err := openInRoot(r.f, p)
	if err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	defer f.Close()
	// An O_PATH fd cannot fchmod; its /proc/self/fd link can be chmodded.
	if err := unix.Fchmodat(unix.AT_FDCWD, fdPath(f), uint32(mode.Perm()), 0); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	return nil
}

// BindData binds a file holding data (or src's contents) onto p (bwrap
// --bind-data, --ro-bind-data). The file lives on a detached tmpfs of its
// own, so it appears nowhere else. mode is the file's permission bits,
// setuid and sticky included (0644 if 0).
func (r *Root) BindData(p string, mode uint32, data []byte, src int, readOnly bool) error {
	if src >= 0 {
		f := os.NewFile(uintptr(src), "data-source")
		var err error
		data, err = io.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read contents of %s: %w", p, err)
		}
	}
	mnt, err := newFS("tmpfs", "tmpfs", Options{Data: []string{"mode=0755"}}, true)
	if err != nil {
		return err
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, "data", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create data file for %s: %w", p, err)
	}
	if mode == 0 {
		mode = 0o644
	}
	// fchmod, not the create mode: exact whatever the umask (bwrap's
	// --perms, 0600 by default).
	if err := unix.Fchmod(fd, mode&0o7777); err != nil {
		unix.Close(fd)
		return fmt.Errorf("chmod data file for %s: %w", p, err)
	}
	_, werr := unix.Write(fd, data)
	unix.Close(fd)
	if werr != nil {
		return fmt.Errorf("write data file for %s: %w", p, werr)
	}
	tree, err := unix.OpenTree(mnt, "data", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree data file for %s: %w", p, err)
	}
	o := Options{Bind: true}
	if readOnly {
		o.Attr = unix.MOUNT_ATTR_RDONLY
	}
	m := &mounter{root: r.f}
	return m.bindTree(tree, Mount{Kind: KindBind, Destination: p, Source: "data"}, o)
}
