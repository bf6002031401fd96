package rootfs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// openContained opens p below the current root without following magic
// links (/proc/self/root and friends), so a path cannot leave the container
// through procfs.
func openContained(p string) (int, error) {
	return unix.Openat2(unix.AT_FDCWD, p, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// openDevNull opens the container's /dev/null and checks that it is the
// null device (CVE-2025-31133: an image replacing /dev/null with a symlink
// made masking bind something else).
func openDevNull() (int, error) {
	fd, err := unix.Open("/dev/null", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/null: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: /dev/null is not the null device (char 1:3)", ErrUnsafePath)
	}
	return fd, nil
}

func maskPaths(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	null := -1
	defer func() {
		if null >= 0 {
			unix.Close(null)
		}
	}()
	for _, p := range paths {
		fd, err := openContained(p)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("maskedPaths %s: %w", p, err)
		}
		err = maskOne(fd, p, &null)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("maskedPaths %s: %w", p, err)
		}
	}
	return nil
}

func maskOne(fd int, p string, null *int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	var tree int
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		tree, err = newFS("tmpfs", "tmpfs", Options{Attr: unix.MOUNT_ATTR_RDONLY, Data: []string{"size=0", "mode=755"}}, true)
		if err == nil {
			a := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
			err = unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &a)
		}
	} else {
		if *null < 0 {
			if *null, err = openDevNull(); err != nil {
				return err
			}
		}
		tree, err = unix.OpenTree(*null, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	}
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	return unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

func readonlyPath(p string) error {
	fd, err := openContained(p)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("readonlyPaths %s: %w", p, err)
	}
	defer unix.Close(fd)
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("readonlyPaths %s: open_tree: %w", p, err)
	}
	defer unix.Close(tree)
	a := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &a); err != nil {
		return fmt.Errorf("readonlyPaths %s: mount_setattr: %w", p, err)
	}
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("readonlyPaths %s: move_mount: %w", p, err)
	}
	return nil
}
