package rootfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

// Overlay makes dest (inside the root) writable through an overlayfs whose
// lower layer is dest's own directory: hako sandbox's --overlay. upper and
// work are directory fds, or -1 for a fresh tmpfs whose changes are gone
// with the sandbox. Every layer goes to the kernel as an fd (fsconfig's
// lowerdir+, upperdir, workdir; Linux 6.13), so no path is looked up again
// once the host's root is staged over a directory a layer may lie below,
// and the tmpfs need not be attached anywhere. Overlay closes upper and
// work.
func (r *Root) Overlay(dest string, upper, work int) (err error) {
	defer func() {
		for _, fd := range []int{upper, work} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	lower, err := openInRoot(r.f, dest)
	if err != nil {
		return fmt.Errorf("overlay %s: open: %w", dest, err)
	}
	defer lower.Close()
	if upper < 0 {
		// The overlay's root takes the upper directory's owner and
		// mode: the lower one's, as far as this user may give them.
		var st unix.Stat_t
		if err := unix.Fstat(int(lower.Fd()), &st); err != nil {
			return fmt.Errorf("overlay %s: stat: %w", dest, err)
		}
		var scratch int
		if scratch, upper, work, err = scratchLayers(&st); err != nil {
			return fmt.Errorf("overlay %s: %w", dest, err)
		}
		// Open until the overlay holds its layers: closing the last fd
		// of a detached mount dissolves it, and overlayfs cannot clone
		// an upper directory on a mount that is nowhere.
		defer unix.Close(scratch)
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("overlay %s: fsopen overlay: %w", dest, err)
	}
	defer unix.Close(fsfd)
	fail := func(what string, err error) error {
		if msg := fsLog(fsfd); msg != "" {
			return fmt.Errorf("overlay %s: %s: %w (kernel: %s)", dest, what, err, msg)
		}
		return fmt.Errorf("overlay %s: %s: %w", dest, what, err)
	}
	if err := unix.FsconfigSetFd(fsfd, "lowerdir+", int(lower.Fd())); err != nil {
		return fmt.Errorf("overlay %s: %w", dest, explain.Wrap(explain.OverlayFD, "", err))
	}
	if err := unix.FsconfigSetFd(fsfd, "upperdir", upper); err != nil {
		return fail("upperdir", err)
	}
	if err := unix.FsconfigSetFd(fsfd, "workdir", work); err != nil {
		return fail("workdir", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fail("create", err)
	}
	tree, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(tree)
	return (&mounter{root: r.f}).attach(tree, lower, dest, Options{})
}

// scratchLayers makes a detached tmpfs holding an upper and a work
// directory, returned as fds with the mount's.
func scratchLayers(like *unix.Stat_t) (mnt, upper, work int, err error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, -1, -1, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "mode", "0755"); err != nil {
		return -1, -1, -1, fmt.Errorf("tmpfs mode: %w", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, -1, -1, fmt.Errorf("tmpfs create: %w", err)
	}
	t, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return -1, -1, -1, fmt.Errorf("tmpfs fsmount: %w", err)
	}
	var fds []int
	for _, d := range []string{"upper", "work"} {
		if err := unix.Mkdirat(t, d, 0o755); err != nil {
			unix.Close(t)
			return -1, -1, -1, fmt.Errorf("mkdir %s in the scratch tmpfs: %w", d, err)
		}
		if d == "upper" {
			_ = unix.Fchownat(t, d, int(like.Uid), int(like.Gid), 0)
			_ = unix.Fchmodat(t, d, like.Mode&0o7777, 0)
		}
		fd, err := unix.Openat(t, d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range append(fds, t) {
				unix.Close(f)
			}
			return -1, -1, -1, fmt.Errorf("open %s in the scratch tmpfs: %w", d, err)
		}
		fds = append(fds, fd)
	}
	return t, fds[0], fds[1], nil
}
