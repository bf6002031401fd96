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
//
// Where the overlay cannot be made (no privilege over the host's mounts,
// overlayfs missing or stacked too deep under the binary), the defence does
// not switch off: hako re-executes a copy of itself in a memfd sealed
// against every change, runc's defence before 1.2. Only when that fails too
// does Seal give up, with ErrUnsupported naming both causes; the caller
// decides whether running unsealed is acceptable (rootless) or not (root).
package exeseal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned where neither the overlay nor a sealed memfd
// can be had.
var ErrUnsupported = errors.New("sealed copy of the hako binary not possible here")

// errNoOverlay marks the overlay failures that the memfd copy stands in for.
var errNoOverlay = errors.New("sealed overlay of the hako binary not possible here")

// Kind says which seal an Exe is.
type Kind string

const (
	Overlay Kind = "overlay" // read-only overlayfs: no copy
	Memfd   Kind = "memfd"   // sealed in-memory copy
)

// Exe is a sealed handle on the running binary.
type Exe struct {
	f    *os.File
	kind Kind
}

// Path is the name execve takes: the handle through /proc/self/fd. The fd is
// placed at or above Seal's minFd, where no fd a child receives, and none its
// fork shuffles on the way, can land on it before it execs.
func (e *Exe) Path() string { return fmt.Sprintf("/proc/self/fd/%d", e.f.Fd()) }

// Kind is the seal in use, for debug output.
func (e *Exe) Kind() Kind { return e.kind }

// Close releases the handle.
func (e *Exe) Close() error { return e.f.Close() }

// Test hooks: tests replace them to make one way of sealing fail.
var (
	sealOverlay = overlay
	sealMemfd   = memfd
)

// Seal returns a handle on the running binary through a fresh read-only
// overlayfs, or else on a sealed memfd copy of it. emptyDir must be an
// empty directory hako owns (overlayfs needs two layers to run without an
// upper one).
func Seal(emptyDir string, minFd int) (*Exe, error) {
	exe, oerr := sealOverlay(emptyDir, minFd)
	if oerr == nil {
		return exe, nil
	}
	if !errors.Is(oerr, errNoOverlay) {
		return nil, oerr
	}
	exe, merr := sealMemfd(minFd)
	if merr == nil {
		return exe, nil
	}
	return nil, fmt.Errorf("%w: %v; and %v", ErrUnsupported, oerr, merr)
}

// emptyLayer is the overlay's empty lower layer: a read-only tmpfs that is
// never attached anywhere, named through /proc/self/fd. Unlike a directory
// on disk it cannot lie below the binary's own directory (overlapping
// layers make overlayfs refuse with ELOOP, and the seal then fell back to a
// memfd copy of the whole binary on every command) and leaves nothing
// behind. Where the kernel will not take it, emptyDir serves.
func emptyLayer() (*os.File, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "size", "4k"); err != nil {
		return nil, err
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, err
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(mfd), "exeseal-empty"), nil
}

func overlay(emptyDir string, minFd int) (*Exe, error) {
	if empty, err := emptyLayer(); err == nil {
		exe, err := overlayOn(fmt.Sprintf("/proc/self/fd/%d", empty.Fd()), minFd)
		empty.Close()
		if err == nil {
			return exe, nil
		}
	}
	return overlayOn(emptyDir, minFd)
}

func overlayOn(emptyDir string, minFd int) (*Exe, error) {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("%w: readlink /proc/self/exe: %w", errNoOverlay, err)
	}
	dir, name := filepath.Split(self)
	// fsopen first: where it is refused (an unprivileged caller), no
	// empty directory is made for nothing.
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w: fsopen overlay: %w", errNoOverlay, err)
	}
	defer unix.Close(fsfd)
	if !strings.HasPrefix(emptyDir, "/proc/self/fd/") {
		if err := os.MkdirAll(emptyDir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: empty layer: %w", errNoOverlay, err)
		}
	}
	// The binary's directory on top, so that nothing in the empty layer
	// could ever shadow it.
	lower := escape(filepath.Clean(dir)) + ":" + escape(emptyDir)
	if err := unix.FsconfigSetString(fsfd, "lowerdir", lower); err != nil {
		return nil, fmt.Errorf("%w: overlay lowerdir=%s: %w", errNoOverlay, lower, err)
	}
	// xino is irrelevant here and only logs when layers span filesystems.
	_ = unix.FsconfigSetString(fsfd, "xino", "off")
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("%w: create overlay (lowerdir=%s): %w", errNoOverlay, lower, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return nil, fmt.Errorf("%w: fsmount overlay: %w", errNoOverlay, err)
	}
	defer unix.Close(mfd)
	fd, err := unix.Openat(mfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s on the sealed overlay: %w", name, err)
	}
	return highFd(fd, minFd, Overlay)
}

// memfdSeals forbid every change to the copy, and any change to the seals.
const memfdSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// memfd copies the running binary into a memfd and seals it. A write
// handle reopened through /proc/<pid>/exe then refuses every write,
// truncation and growth (EPERM).
func memfd(minFd int) (*Exe, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("memfd copy: open /proc/self/exe: %w", err)
	}
	defer src.Close()
	// MFD_EXEC: under vm.memfd_noexec=1 a memfd is otherwise made
	// non-executable; kernels before 6.3 know no such flag (EINVAL).
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("hako", flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("hako", flags)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd copy: memfd_create: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "memfd:hako")
	defer dst.Close()
	if err := copyExe(dst, src); err != nil {
		return nil, fmt.Errorf("memfd copy: copy /proc/self/exe: %w", err)
	}
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, memfdSeals); err != nil {
		return nil, fmt.Errorf("memfd copy: F_ADD_SEALS: %w", err)
	}
	// Trust the kernel's view, not the call: a missing seal is no defence.
	got, err := unix.FcntlInt(dst.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("memfd copy: F_GET_SEALS: %w", err)
	}
	if got&memfdSeals != memfdSeals {
		return nil, fmt.Errorf("memfd copy: seals %#x, want %#x", got, memfdSeals)
	}
	nfd, err := unix.Dup(int(dst.Fd()))
	if err != nil {
		return nil, fmt.Errorf("memfd copy: dup: %w", err)
	}
	return highFd(nfd, minFd, Memfd)
}

// copyExe copies the binary in the kernel (sendfile): copy_file_range
// refuses a memfd (EXDEV), and io.Copy's fallback, 32 KiB through user
// space at a time, more than the kernel's copy.
func copyExe(dst, src *os.File) error {
	var off int64
	for {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), &off, 1<<30)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// Where sendfile cannot, the plain copy from where it stopped.
			if _, serr := src.Seek(off, io.SeekStart); serr != nil {
				return err
			}
			_, err = io.Copy(dst, src)
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// highFd moves fd (which it closes) to the lowest free fd at or above
// minFd. Not to a fixed high number such as 1000: an fd beyond the file
// table's size makes the kernel grow the table, and growing a table that
// the Go runtime's threads share waits for an RCU grace period
// (expand_fdtable's synchronize_rcu), 4-12 ms measured here, on every
// container start.
func highFd(fd, minFd int, kind Kind) (*Exe, error) {
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, minFd)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("dup sealed exe fd: %w", err)
	}
	return &Exe{f: os.NewFile(uintptr(high), "sealed-exe"), kind: kind}, nil
}

// escape quotes the separators overlayfs gives meaning to in lowerdir.
func escape(p string) string {
	return strings.ReplaceAll(strings.ReplaceAll(p, `\`, `\\`), `:`, `\:`)
}

// OutOfReach reports whether the running binary is one its user can
// neither write nor make writable (not root, not its owner, no write
// permission): then no process of that user, in a user namespace or not,
// can rewrite it through /proc/<pid>/exe, and a seal protects nothing.
// An unprivileged hako (rootless, or `hako sandbox` as a user) would
// otherwise pay for a memfd copy of itself on every start, ~7 ms here,
// since it may not make the overlay.
func OutOfReach() bool {
	uid := unix.Geteuid()
	if uid == 0 {
		return false
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil || int(st.Uid) == uid {
		return false
	}
	err := unix.Faccessat(unix.AT_FDCWD, "/proc/self/exe", unix.W_OK, unix.AT_EACCESS)
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EROFS)
}
