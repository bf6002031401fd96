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
)

// CgroupMount is one directory a "cgroup" mount shows inside the container.
type CgroupMount struct {
	Dir      string // below the mount's destination; "" for the destination itself
	HostPath string // the container's cgroup directory on the host
	Symlinks []string
}

// Config is what the init needs to build the container's filesystem.
type Config struct {
	Rootfs      string // absolute, symlink-free host path
	Bundle      string
	Spec        *specs.Spec
	NoPivot     bool
	NewMountNS  bool
	InUserNS    bool
	Cgroups     []CgroupMount
	Propagation uintptr
	// IDMapTrees are detached idmapped mounts made by the parent, by
	// index in Spec.Mounts; Setup moves each into place and closes it.
	IDMapTrees map[int]int
	// BindSources are bind sources the parent opened (O_PATH, in this
	// mount namespace, with its credentials), by index in Spec.Mounts;
	// Setup clones each with open_tree and closes it.
	BindSources map[int]int

	// devReadonly: the /dev mount asked for "ro", which Finalize applies
	// once everything below /dev exists.
	devReadonly bool
}

// ErrUnsafePath is wrapped when something in the rootfs is refused.
var ErrUnsafePath = errors.New("unsafe path in rootfs")

// Setup does everything before pivot_root: propagation, the rootfs bind, the
// spec's mounts and /dev. The caller is in the container's new mount namespace.
func Setup(c *Config) error {
	// An unbindable / would refuse the rootfs bind below; it is applied
	// to the new / after pivot_root, like every configured propagation.
	prop := c.Propagation
	if prop == 0 || prop&unix.MS_UNBINDABLE != 0 {
		prop = unix.MS_PRIVATE | unix.MS_REC
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("make / %s in the container's mount namespace: %w", propName(prop), err)
	}
	if err := makeParentPrivate(c.Rootfs); err != nil {
		return err
	}
	// pivot_root needs the new root to be a mount point.
	if err := unix.Mount(c.Rootfs, c.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s onto itself: %w", c.Rootfs, err)
	}
	root, err := os.OpenFile(c.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	// Sources on the host must not stay open past pivot_root, whatever
	// fails.
	defer func() {
		for idx, fd := range c.BindSources {
			unix.Close(fd)
			delete(c.BindSources, idx)
		}
	}()
	m := &mounter{root: root, cfg: c}
	for i, mnt := range c.Spec.Mounts {
		m.index = i
		if err := m.mount(mnt); err != nil {
			return fmt.Errorf("mounts[%d] %s on %s: %w", i, mnt.Type, mnt.Destination, err)
		}
	}
	if needsDev(c.Spec) {
		if err := setupDev(root, c); err != nil {
			return err
		}
	}
	return nil
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

func needsDev(s *specs.Spec) bool {
	for _, m := range s.Mounts {
		if filepath.Clean(m.Destination) == "/dev" {
			return !ParseOptions(m.Options).Bind && m.Type != "bind"
		}
	}
	return false
}

// Finalize runs after pivot_root, in the container's root: the working
// directory, masked and read-only paths, a read-only root, and the
// configured propagation of the new /.
func Finalize(c *Config) error {
	if c.Spec.Process != nil && c.Spec.Process.Cwd != "" {
		if err := os.MkdirAll(c.Spec.Process.Cwd, 0o755); err != nil {
			return fmt.Errorf("create process.cwd %s: %w", c.Spec.Process.Cwd, err)
		}
	}
	if c.devReadonly {
		if err := remountReadonly("/dev"); err != nil {
			return err
		}
	}
	if c.Spec.Linux != nil {
		if err := maskPaths(c.Spec.Linux.MaskedPaths); err != nil {
			return err
		}
		for _, p := range c.Spec.Linux.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return err
			}
		}
	}
	if c.Spec.Root != nil && c.Spec.Root.Readonly {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &attr); err != nil {
			return fmt.Errorf("make / read-only: %w", err)
		}
	}
	if c.Propagation != 0 {
		if err := unix.Mount("", "/", "", c.Propagation, ""); err != nil {
			return fmt.Errorf("set rootfsPropagation %s on /: %w", propName(c.Propagation), err)
		}
	}
	return nil
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
		return fmt.Errorf("make %s read-only: mount_setattr: %w", p, err)
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
	return pathrs.OpenatInRoot(root, p)
}

// mkdirInRoot creates p and its parents inside root.
func mkdirInRoot(root *os.File, p string, mode os.FileMode) (*os.File, error) {
	return pathrs.MkdirAllHandle(root, p, mode)
}
