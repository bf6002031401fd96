package rootfs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrPivot is wrapped when pivot_root fails for a reason seed 001 lists.
var ErrPivot = errors.New("pivot_root refused")

// EnterRoot makes the rootfs the container's /.
func EnterRoot(c *Config) error {
	switch {
	case !c.NewMountNS:
		return chrootInto(c.Rootfs)
	case c.NoPivot:
		return moveRoot(c.Rootfs)
	default:
		return pivotRoot(c.Rootfs)
	}
}

// pivotRoot uses pivot_root(".", "."): the old root ends up stacked on top
// of the new one at ".", so no directory for it is needed in the rootfs
// (which may be read-only), and it is detached right away.
func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldroot)
	fd, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchdir(fd); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: pivot_root %s: %v (the new root must be a mount point, not on the current root's mount, and neither it nor its parent mount may be shared; try --no-pivot on a ramfs root)", ErrPivot, rootfs, err)
		}
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	// After pivot_root the cwd is still the new root's directory, and
	// mount(2) does not step onto the old root stacked on it: "." would
	// name the new root, and the MS_SLAVE below would cut every shared
	// mount of the container (an rshared volume, Kubernetes'
	// Bidirectional propagation) from its host peers. runc does the same
	// fchdir to the old root, "purely for safety"; here it is needed.
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	// Unmounting a mount that is shared with the host would propagate the
	// unmount there: make the old root a slave first.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// moveRoot is --no-pivot: MS_MOVE the rootfs onto / and chroot into it, for
// roots where pivot_root cannot work (an initramfs is not a mount).
func moveRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs onto /: %w", err)
	}
	return chrootInto(".")
}

func chrootInto(dir string) error {
	if err := unix.Chroot(dir); err != nil {
		return fmt.Errorf("chroot %s: %w", dir, err)
	}
	return unix.Chdir("/")
}
