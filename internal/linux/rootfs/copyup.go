package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// tmpcopyup (runc's mount extension): a tmpfs gets a copy of the directory
// it is about to cover, so an image's /tmp or /run content survives under
// a fresh tmpfs. runc mounts the tmpfs on a host scratch directory and
// copies by path (mrunalp/fileutils); hako copies between two fds before
// the tmpfs is attached: the destination directory, opened before the
// mount, and the root of the still-detached tmpfs. Every name is one
// component read from the directory and opened with O_NOFOLLOW relative to
// its parent's fd, so no symlink in the (hostile) rootfs is ever followed:
// symlinks are copied as symlinks. Files, directories, symlinks, fifos and
// device nodes are copied with their owner and mode (set-id bits included,
// chmod after chown, which clears them); sockets are skipped, as nothing
// listens on a copy.

// copyUp copies the contents of the directory src (any fd naming it, O_PATH
// will do) into the directory dst.
func copyUp(src, dst int) error {
	dir, err := unix.Openat(src, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tmpcopyup: open source directory: %w", err)
	}
	return copyDir(dir, dst)
}

// copyDir copies the entries of dir (which it closes) into dst.
func copyDir(dir, dst int) error {
	f := os.NewFile(uintptr(dir), "tmpcopyup")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("tmpcopyup: read directory: %w", err)
	}
	for _, name := range names {
		if err := copyEntry(dir, dst, name); err != nil {
			return fmt.Errorf("tmpcopyup: %s: %w", name, err)
		}
	}
	return nil
}

func copyEntry(dir, dst int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		sub, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Mkdirat(dst, name, 0o700); err != nil {
			unix.Close(sub)
			return err
		}
		out, err := unix.Openat(dst, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(sub)
			return err
		}
		defer unix.Close(out)
		if err := copyDir(sub, out); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := readlinkat(dir, name)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dst, name); err != nil {
			return err
		}
		// A symlink's mode means nothing; its owner does.
		return unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFREG:
		if err := copyFile(dir, dst, name); err != nil {
			return err
		}
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if err := unix.Mknodat(dst, name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return err
		}
	default: // sockets
		return nil
	}
	if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	return unix.Fchmodat(dst, name, perm, 0)
}

func copyFile(dir, dst int, name string) error {
	in, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(in), name)
	defer src.Close()
	out, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	w := os.NewFile(uintptr(out), name)
	// io.Copy uses copy_file_range or splice where it can.
	_, err = io.Copy(w, src)
	return errors.Join(err, w.Close())
}

func readlinkat(dir int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dir, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
