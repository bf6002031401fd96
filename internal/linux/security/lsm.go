package security

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Exec-time LSM labels are set by writing to /proc/thread-self/attr. The
// write happens inside the container's mount namespace, where /proc is
// whatever the container's mounts made it: CVE-2019-16884 mounted a volume
// over /proc so the AppArmor write went into an ordinary file, and
// CVE-2025-52881 bind-mounted a different procfs file over the target so
// it went somewhere harmful while still landing on procfs. A label write
// that silently misses leaves the process unconfined, so the file is
// opened in a way that neither trick survives:
//
//   - /proc is taken as a detached clone of its mount (open_tree with
//     OPEN_TREE_CLONE, not recursive), which carries none of the mounts
//     stacked inside /proc; when cloning is not allowed, /proc itself,
//     with mount crossings refused (RESOLVE_NO_XDEV) on the way down;
//   - the root must be a procfs root (filesystem magic and inode 1), so a
//     tmpfs, or a bind mount of some procfs subdirectory, is refused;
//   - the final fd must be on procfs too.
//
// Kernels older than 5.6 lack openat2, and then only the filesystem checks
// remain.

const procRootIno = 1

// openTree is a variable so tests can take the fallback path.
var openTree = unix.OpenTree

func procRoot(procPath string) (int, error) {
	fd, err := openTree(unix.AT_FDCWD, procPath, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		// EPERM without CAP_SYS_ADMIN over the mount namespace, EINVAL
		// when /proc has mounts locked in by a more privileged namespace,
		// ENOSYS before 5.2.
		fd, err = unix.Open(procPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: procPath, Err: err}
		}
	}
	var fs unix.Statfs_t
	var st unix.Stat_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "statfs", Path: procPath, Err: err}
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "stat", Path: procPath, Err: err}
	}
	if fs.Type != unix.PROC_SUPER_MAGIC || st.Ino != procRootIno {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not the root of a procfs mount", procPath)
	}
	return fd, nil
}

// procPath is /proc except in tests.
var procPath = "/proc"

// openProc opens sub (such as "thread-self/attr/exec") under a verified
// procfs; see the comment at the top of the file.
func openProc(sub string, flags int) (*os.File, error) {
	root, err := procRoot(procPath)
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	name := procPath + "/" + sub
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	fd, err := unix.Openat2(root, sub, &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// No openat2 (before 5.6), or a seccomp profile around the runtime
		// that predates it and answers EPERM.
		fd, err = unix.Openat(root, sub, flags, 0)
	}
	if err != nil {
		if errors.Is(err, unix.EXDEV) {
			return nil, fmt.Errorf("open %s: something is mounted over it", name)
		}
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "statfs", Path: name, Err: err}
	}
	if fs.Type != unix.PROC_SUPER_MAGIC {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: not on procfs", name)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// writeThreadAttr writes value with a single write(2): LSM attribute files
// take the whole value in one call and do not append.
func writeThreadAttr(sub, value string) error {
	f, err := openProc(sub, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := unix.Write(int(f.Fd()), []byte(value))
	if err != nil {
		return &os.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	if n != len(value) {
		return fmt.Errorf("write %s: short write (%d of %d bytes)", f.Name(), n, len(value))
	}
	return nil
}

// AppArmorEnabled reports whether AppArmor is active. The module parameter
// is what runc reads; in a container without /sys the kernel is asked
// through procfs instead, where reading this thread's AppArmor label
// fails unless AppArmor is active.
func AppArmorEnabled() bool {
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil {
		return len(b) > 0 && b[0] == 'Y'
	}
	f, err := openProc("thread-self/attr/apparmor/current", unix.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Read(make([]byte, 256))
	return err == nil
}

// ApplyAppArmor makes the calling thread's next execve switch to profile
// (nothing when profile is ""). It fails if AppArmor is off, as runc does:
// running the program unconfined instead would drop a protection the
// config asked for.
func ApplyAppArmor(profile string) error {
	if profile == "" {
		return nil
	}
	if !AppArmorEnabled() {
		return fmt.Errorf("apparmor profile %q requested but AppArmor is not enabled on this host", profile)
	}
	runtime.LockOSThread()
	// attr/apparmor/ (5.8+) reaches AppArmor even when another LSM owns the
	// shared attr/exec; older kernels only have the shared file.
	err := writeThreadAttr("thread-self/attr/apparmor/exec", "exec "+profile)
	if errors.Is(err, os.ErrNotExist) {
		err = writeThreadAttr("thread-self/attr/exec", "exec "+profile)
	}
	if err != nil {
		return fmt.Errorf("applying apparmor profile %q: %w", profile, err)
	}
	return nil
}

// SELinuxEnabled reports whether SELinux is active. selinuxfs registers
// itself only when SELinux is enabled, and /proc/filesystems is visible in
// a container that has no /sys/fs/selinux mounted.
func SELinuxEnabled() bool {
	f, err := openProc("filesystems", unix.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := bytes.Fields(s.Bytes()); len(fields) > 0 && string(fields[len(fields)-1]) == "selinuxfs" {
			return true
		}
	}
	return false
}

// ApplySELinux makes the calling thread's next execve run with label
// (nothing when label is ""). Like runc, which rejects such a config
// ("selinux label is specified in config, but selinux is disabled or not
// supported"), it fails when SELinux is off rather than run unlabelled.
func ApplySELinux(label string) error {
	if label == "" {
		return nil
	}
	if !SELinuxEnabled() {
		return fmt.Errorf("selinux label %q requested but SELinux is not enabled on this host", label)
	}
	runtime.LockOSThread()
	if err := writeThreadAttr("thread-self/attr/exec", label); err != nil {
		return fmt.Errorf("applying selinux label %q: %w", label, err)
	}
	return nil
}
