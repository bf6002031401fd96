// Package exeseal keeps the container from rewriting hako's binary
// (CVE-2019-5736): a process of the container can open /proc/<pid>/exe of a
// hako process that has joined its namespaces, and, once that process has
// exec'd away, reopen the file for writing.
//
// The defence: hako re-executes itself not from its own path but through a
// private, read-only overlayfs whose only layers are the binary's directory
// and an empty one. /proc/<pid>/exe then names a file on that overlay, which
// refuses every write (EROFS) and cannot be unwrapped to the real file, as
// runc does since 1.2. It costs one mount setup per hako command, no copy of
// the binary (runc's earlier memfd copies cost ~8 ms and megabytes each).
package exeseal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned where the kernel cannot build the overlay (no
// overlayfs, no new mount API, or no privilege over the host's mounts).
var ErrUnsupported = errors.New("sealed overlay of the hako binary not possible here")

// Exe is a sealed handle on the running binary.
type Exe struct {
	f *os.File
}

// Path is the name execve takes: the handle through /proc/self/fd. The fd is
// placed high so that no fd a child receives can land on it before it execs.
func (e *Exe) Path() string { return fmt.Sprintf("/proc/self/fd/%d", e.f.Fd()) }

// Close releases the handle.
func (e *Exe) Close() error { return e.f.Close() }

// Seal returns a handle on the running binary through a fresh read-only
// overlayfs. emptyDir must be an empty directory hako owns (overlayfs needs
// two layers to run without an upper one).
func Seal(emptyDir string) (*Exe, error) {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("%w: readlink /proc/self/exe: %v", ErrUnsupported, err)
	}
	if err := os.MkdirAll(emptyDir, 0o700); err != nil {
		return nil, err
	}
	dir, name := filepath.Split(self)
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w: fsopen overlay: %v", ErrUnsupported, err)
	}
	defer unix.Close(fsfd)
	// The binary's directory on top, so that nothing in the empty layer
	// could ever shadow it.
	lower := escape(filepath.Clean(dir)) + ":" + escape(emptyDir)
	if err := unix.FsconfigSetString(fsfd, "lowerdir", lower); err != nil {
		return nil, fmt.Errorf("%w: overlay lowerdir=%s: %v", ErrUnsupported, lower, err)
	}
	// xino is irrelevant here and only logs when layers span filesystems.
	_ = unix.FsconfigSetString(fsfd, "xino", "off")
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("%w: create overlay: %v", ErrUnsupported, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return nil, fmt.Errorf("%w: fsmount overlay: %v", ErrUnsupported, err)
	}
	defer unix.Close(mfd)
	fd, err := unix.Openat(mfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s on the sealed overlay: %w", name, err)
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 1000)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("dup sealed exe fd: %w", err)
	}
	return &Exe{f: os.NewFile(uintptr(high), "sealed-exe")}, nil
}

// escape quotes the separators overlayfs gives meaning to in lowerdir.
func escape(p string) string {
	return strings.ReplaceAll(strings.ReplaceAll(p, `\`, `\\`), `:`, `\:`)
}
