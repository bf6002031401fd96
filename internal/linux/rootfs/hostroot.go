package rootfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

// StageHostRoot makes a copy of this mount namespace's whole tree (the
// host's root, as `hako sandbox` shows it) the mount at dir, so that it can
// be bound, changed and pivoted into like any rootfs. The copy is cloned
// with open_tree before anything is mounted at dir: a plain `mount --rbind /
// dir` would copy dir's new mount into itself and hide what dir held. Called
// only after / is private in a new mount namespace: the host never sees dir
// change (seed 003).
func StageHostRoot(dir string) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("open_tree / (clone the host's root for the sandbox): %w", err)
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount the host's root onto %s: %w", dir, err)
	}
	return nil
}

// SetTreeReadonly makes the tree at p (after the root change, not leaving
// it) read-only or writable, submounts included, as systemd's
// ProtectSystem, ReadOnlyPaths and ReadWritePaths do. p is first bound onto
// itself, so that a directory that is not a mount point changes alone and
// not the whole mount holding it; "/" is the pivoted root, a mount already.
func SetTreeReadonly(p string, ro bool) error {
	what := "read-only"
	a := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if !ro {
		what = "writable"
		a = unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}
	}
	if p == "/" {
		if err := unix.MountSetattr(unix.AT_FDCWD, "/", unix.AT_RECURSIVE, &a); err != nil {
			return explain.Wrap(explain.Remount, "/", fmt.Errorf("make %s: mount_setattr: %w", what, err))
		}
		return nil
	}
	fd, err := openContained(p)
	if err != nil {
		return fmt.Errorf("make %s %s: open: %w", p, what, err)
	}
	defer unix.Close(fd)
	tree, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("make %s %s: open_tree: %w", p, what, err)
	}
	defer unix.Close(tree)
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &a); err != nil {
		return explain.Wrap(explain.Remount, p, fmt.Errorf("make %s: mount_setattr: %w", what, err))
	}
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("make %s %s: move_mount: %w", p, what, err)
	}
	return nil
}
