package rootfs

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
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

// masker holds what masking reuses across paths: the container's checked
// /dev/null (for files) and one empty read-only tmpfs (for directories).
// runc 1.5 and crun 1.24 share one tmpfs because Kubernetes masks hundreds
// of per-CPU sysfs directories, and a superblock per directory costs kernel
// memory and mount time for each; a clone of the one detached mount
// (open_tree OPEN_TREE_CLONE) is a new mount of the same superblock.
// The plan has a step per masked path; the init keeps one Masker across
// consecutive steps (NewMasker, Mask, Close).
type Masker struct {
	null, tmpfs int
	attached    bool // tmpfs is attached (at the first masked directory)
	seen        map[string]bool
}

// NewMasker starts a run of masks that share one tmpfs and one /dev/null.
func NewMasker() *Masker { return &Masker{null: -1, tmpfs: -1, seen: map[string]bool{}} }

// Close drops the shared tmpfs and /dev/null fds; the masks stay.
func (m *Masker) Close() {
	for _, fd := range []int{m.null, m.tmpfs} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	m.null, m.tmpfs = -1, -1
}

func maskPaths(paths []string) error {
	m := NewMasker()
	defer m.Close()
	for _, p := range paths {
		if err := m.Mask(p); err != nil {
			return err
		}
	}
	return nil
}

// Mask masks one path: a directory with a clone of the shared empty tmpfs,
// anything else with the container's /dev/null.
func (m *Masker) Mask(p string) error {
	// A path listed twice is masked once, as runc 1.5 does: a second
	// mount would only hide the first.
	if m.seen[filepath.Clean(p)] {
		return nil
	}
	m.seen[filepath.Clean(p)] = true
	fd, err := openContained(p)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maskedPaths %s: %w", p, err)
	}
	err = m.maskOne(fd)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("maskedPaths %s: %w", p, err)
	}
	return nil
}

// emptyTmpfs makes (once) the detached, read-only, empty tmpfs that every
// masked directory gets a clone of. size=0 leaves nothing to write even
// if the read-only attribute were cleared on one clone.
func (m *Masker) emptyTmpfs() (int, error) {
	if m.tmpfs >= 0 {
		return m.tmpfs, nil
	}
	tree, err := newFS("tmpfs", "tmpfs", Options{Data: []string{"size=0", "mode=755"}}, true)
	if err != nil {
		return -1, err
	}
	a := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &a); err != nil {
		unix.Close(tree)
		return -1, fmt.Errorf("mount_setattr ro: %w", err)
	}
	m.tmpfs = tree
	return tree, nil
}

func (m *Masker) maskOne(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	src := -1
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		src, err = m.emptyTmpfs()
	} else {
		if m.null < 0 {
			m.null, err = openDevNull()
		}
		src = m.null
	}
	if err != nil {
		return err
	}
	// The clone keeps the source's attributes (read-only for the tmpfs).
	tree, err := unix.OpenTree(src, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EINVAL) && src == m.tmpfs && !m.attached {
		// Kernels before 6.15 do not clone a detached mount: attach the
		// original at the first directory; its fd then names an attached
		// mount, which later directories get clones of.
		m.attached = true
		return unix.MoveMount(src, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	}
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
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
		return explain.Wrap(explain.Remount, p, fmt.Errorf("readonlyPaths: mount_setattr: %w", err))
	}
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("readonlyPaths %s: move_mount: %w", p, err)
	}
	return nil
}
