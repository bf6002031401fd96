// Package rootfs owns the container's mount namespace: propagation of / (seed
// 003: a new mount namespace still shares mounts with the host until / is
// made private or slave), the spec's mounts, /dev, pivot_root (seed 001: the
// kernel's conditions, and the pivot_root(".", ".") idiom), masked and
// read-only paths.
//
// Paths from the rootfs are hostile. Every destination is resolved inside
// the rootfs from a file descriptor (filepath-securejoin's pathrs-lite, which
// uses openat2(RESOLVE_IN_ROOT) where the kernel has it), and mounts are made
// with the new mount API onto that descriptor (move_mount with
// MOVE_MOUNT_T_EMPTY_PATH), so a symlink swapped in after resolution cannot
// redirect a mount (CVE-2021-30465 class).
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

// CgroupMount is one directory a "cgroup" mount shows inside the container.
type CgroupMount struct {
	Dir      string // below the mount's destination; "" for the destination itself
	HostPath string // the container's cgroup directory on the host
	Symlinks []string
}

// ErrUnsafePath is wrapped when something in the rootfs is refused.
var ErrUnsafePath = errors.New("unsafe path in rootfs")

// SetPropagation sets the propagation of the mount at path. Before the
// rootfs is entered it is "/" made rprivate (or the configured propagation,
// unless unbindable: that would refuse the rootfs bind, and is applied to
// the new / after pivot_root, like every configured propagation).
func SetPropagation(path string, prop uintptr) error {
	if err := unix.Mount("", path, "", prop, ""); err != nil {
		if path == "/" {
			return fmt.Errorf("make / %s in the container's mount namespace: %w", propName(prop), err)
		}
		return fmt.Errorf("set propagation %s on %s: %w", propName(prop), path, err)
	}
	return nil
}

// MakeParentPrivate: see makeParentPrivate.
func MakeParentPrivate(rootfs string) error { return makeParentPrivate(rootfs) }

// Root is the container's rootfs while the mounts are made in it: every
// destination is resolved from its fd.
type Root struct {
	Path    string
	f       *os.File
	cgroups []CgroupMount
}

// BindRoot binds the rootfs onto itself (pivot_root needs the new root to
// be a mount point) and opens it. cgroups are what a "cgroup" mount shows.
func BindRoot(path string, cgroups []CgroupMount) (*Root, error) {
	if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("bind rootfs %s onto itself: %w", path, err)
	}
	f, err := os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	return &Root{Path: path, f: f, cgroups: cgroups}, nil
}

// OpenedRoot is BindRoot's result from a bind already made and opened (by
// nsexec.c, which handed the rest of the plan to Go): it takes fd.
func OpenedRoot(path string, fd int, cgroups []CgroupMount) *Root {
	return &Root{Path: path, f: os.NewFile(uintptr(fd), path), cgroups: cgroups}
}

// Close closes the rootfs fd; nothing of the host may stay open past
// pivot_root.
func (r *Root) Close() error { return r.f.Close() }

// Mount makes one mount inside the root. fd, when not -1, is a bind source
// or an idmapped tree the parent prepared; Mount closes it.
func (r *Root) Mount(m Mount, fd int) error {
	mt := &mounter{root: r.f, cgroups: r.cgroups}
	return mt.mount(m, fd)
}

// Dev makes the device nodes and /dev's standard symlinks. In a user
// namespace, where mknod is refused, the host's nodes are bound instead.
func (r *Root) Dev(devs []specs.LinuxDevice, inUserNS bool) error {
	return setupDev(r.f, devs, inUserNS)
}

// makeParentPrivate makes the mount holding the rootfs private where it is
// shared (runc's rootfsParentMountPrivate): pivot_root refuses a new root
// whose parent mount is shared, the bind of the rootfs onto itself below
// copies the propagation of its source, and a shared parent would also carry
// our mounts back to the host. Where the rootfs is a mount point of its own
// (an engine's overlay) that mount is the one: it becomes the parent of the
// bind, and after an rshared / it is shared with the host's copy.
func makeParentPrivate(rootfs string) error {
	mp, shared, err := mountPointOf(rootfs)
	if err != nil || !shared {
		return err
	}
	if err := unix.Mount("", mp, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private (the parent mount of the rootfs must not be shared for pivot_root): %w", mp, err)
	}
	return nil
}

// NeedsDev says whether the config's /dev is a fresh filesystem hako must
// fill (not a bind of the host's).
func NeedsDev(s *specs.Spec) bool {
	for _, m := range s.Mounts {
		if filepath.Clean(m.Destination) == "/dev" {
			return !ParseOptions(m.Options).Bind && m.Type != "bind"
		}
	}
	return false
}

// MaskPaths masks linux.maskedPaths, after pivot_root.
func MaskPaths(paths []string) error { return maskPaths(paths) }

// ReadonlyPath makes one of linux.readonlyPaths read-only, after pivot_root.
func ReadonlyPath(p string) error { return readonlyPath(p) }

// RemountReadonly makes the mount at p read-only, after pivot_root; "/"
// is the root itself (root.readonly).
func RemountReadonly(p string) error {
	if p == "/" {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &attr); err != nil {
			return explain.Wrap(explain.Remount, "/", fmt.Errorf("make read-only: mount_setattr: %w", err))
		}
		return nil
	}
	return remountReadonly(p)
}

// remountReadonly makes the mount at p (inside the container, not
// following symlinks out of it) read-only, leaving its submounts as they are.
func remountReadonly(p string) error {
	fd, err := openContained(p)
	if err != nil {
		return fmt.Errorf("make %s read-only: open: %w", p, err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return explain.Wrap(explain.Remount, p, fmt.Errorf("make read-only: mount_setattr: %w", err))
	}
	return nil
}

func propName(p uintptr) string {
	for k, v := range propagationOpts {
		if v == p {
			return k
		}
	}
	return fmt.Sprintf("0x%x", p)
}

// openInRoot resolves p inside root, never leaving it.
func openInRoot(root *os.File, p string) (*os.File, error) {
	if f := inRoot(root, p, unix.O_PATH|unix.O_CLOEXEC); f != nil {
		return f, nil
	}
	return pathrs.OpenatInRoot(root, p)
}

// mkdirInRoot creates p and its parents inside root.
func mkdirInRoot(root *os.File, p string, mode os.FileMode) (*os.File, error) {
	if f := inRoot(root, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC); f != nil {
		return f, nil
	}
	return pathrs.MkdirAllHandle(root, p, mode)
}

// inRoot is the lookup pathrs-lite makes first where the kernel has
// openat2 (filepath-securejoin v0.7.0, gopathrs.lookupOpenat2): one
// openat2 with RESOLVE_IN_ROOT, which keeps ".." and absolute symlinks
// inside root and fails rather than escape on a concurrent rename, and
// RESOLVE_NO_MAGICLINKS. pathrs-lite then reads the handle's path back
// through a procfs handle of its own, only to name the file (~20 syscalls
// a lookup, about a third of the mount steps); hako's names are its own.
// nil on any failure: pathrs-lite then does the lookup again and gives
// its error, or makes the missing directories, or falls back where the
// kernel has no openat2.
func inRoot(root *os.File, p string, flags int) *os.File {
	fd, err := unix.Openat2(int(root.Fd()), p, &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), filepath.Join(root.Name(), p))
}
