package rootfs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

// pivotTags names which of pivot_root's conditions fails for rootfs, so
// that the explain table gives the one cause instead of the list.
func pivotTags(rootfs string) []string {
	infos, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil
	}
	byID := map[int]*mountinfo.Info{}
	var at *mountinfo.Info
	for _, i := range infos {
		byID[i.ID] = i
		if i.Mountpoint == rootfs {
			at = i
		}
	}
	if at == nil {
		return []string{"not-mountpoint"}
	}
	if i := byID[at.Parent]; strings.Contains(at.Optional, "shared:") || (i != nil && strings.Contains(i.Optional, "shared:")) {
		return []string{"shared"}
	}
	for _, i := range infos {
		if i.Mountpoint == "/" && i.FSType == "rootfs" {
			return []string{"initramfs"}
		}
	}
	return nil
}

// ErrPivot is wrapped when pivot_root fails for a reason seed 001 lists.
var ErrPivot = errors.New("pivot_root refused")

// PivotRoot makes the rootfs the container's / with pivot_root.
func PivotRoot(rootfs string) error { return pivotRoot(rootfs) }

// MoveRoot is --no-pivot.
func MoveRoot(rootfs string) error { return moveRoot(rootfs) }

// Chroot enters the rootfs without a mount namespace of its own.
func Chroot(rootfs string) error { return chrootInto(rootfs) }

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
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%w: %w", ErrPivot, explain.Wrap(explain.PivotRoot, rootfs, err, pivotTags(rootfs)...))
		}
		return explain.Wrap(explain.PivotRoot, rootfs, err)
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
	if err := hideFullProcfs(rootfs); err != nil {
		return err
	}
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

// hideFullProcfs is runc's msMoveRoot hardening (opencontainers/runc#1962,
// refined by #2647; as in runc 1.1.5). MS_MOVE and chroot leave the host's
// mounts in the container's mount namespace, merely out of the chroot's
// sight. The kernel lets a user namespace mount a new procfs or sysfs only
// where one is already fully visible in the mount namespace
// (mount_too_revealing), and it looks at every mount of the namespace, not
// at what the chroot shows: a fully visible host /proc would let the
// container `unshare -mrpf` and mount a procfs without the masked and
// read-only paths. pivot_root detaches the old root, so only --no-pivot
// needs this.
//
// Only mounts of a filesystem's root count for the kernel, and those inside
// the rootfs are the container's own (masked later).
func hideFullProcfs(rootfs string) error {
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		full := i.Root == "/" && (i.FSType == "proc" || i.FSType == "sysfs")
		return !full || i.Mountpoint == rootfs || strings.HasPrefix(i.Mountpoint, rootfs+"/"), false
	})
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	for _, i := range infos {
		p := i.Mountpoint
		// The unmount must not reach the host through shared propagation
		// (rootfsPropagation may have left / shared).
		if err := unix.Mount("", p, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				// Gone with a mount above it, detached already.
				continue
			}
			return fmt.Errorf("make %s rslave before hiding it: %w", p, err)
		}
		err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("unmount host %s %s: %w", i.FSType, p, err)
		}
		// A mount locked by a user namespace cannot be unmounted; a mount
		// on its root is a child that keeps it from counting as fully
		// visible.
		if err2 := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0"); err2 != nil {
			return fmt.Errorf("cover host %s %s with tmpfs: %w (unmount: %v)", i.FSType, p, err2, err)
		}
	}
	return nil
}
