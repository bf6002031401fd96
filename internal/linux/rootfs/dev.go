package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func u32(v uint32) *uint32          { return &v }
func fm(v os.FileMode) *os.FileMode { return &v }

// DefaultDevices are the nodes every container gets in a fresh /dev, as runc
// and the runtime-spec list them.
var DefaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
}

// Devices merges the defaults with linux.devices; the config wins.
func Devices(s *specs.Spec) []specs.LinuxDevice {
	var devs []specs.LinuxDevice
	seen := map[string]bool{}
	if s.Linux != nil {
		for _, d := range s.Linux.Devices {
			seen[filepath.Clean(d.Path)] = true
			devs = append(devs, d)
		}
	}
	for _, d := range DefaultDevices {
		if !seen[d.Path] {
			devs = append(devs, d)
		}
	}
	return devs
}

func setupDev(root *os.File, devs []specs.LinuxDevice, inUserNS bool) error {
	// Each directory is resolved (and made) once: the default nodes all
	// sit in /dev, and the race-proof walk from the rootfs costs ~25
	// syscalls a time. Nothing else runs in the container yet to swap a
	// directory once it is open.
	parents := map[string]*os.File{}
	defer func() {
		for _, f := range parents {
			f.Close()
		}
	}()
	for _, d := range devs {
		p := filepath.Clean(d.Path)
		dir := filepath.Dir(p)
		parent := parents[dir]
		if parent == nil {
			var err error
			if parent, err = mkdirInRoot(root, dir, 0o755); err != nil {
				return fmt.Errorf("device %s: %w", d.Path, err)
			}
			parents[dir] = parent
		}
		if err := makeDevice(root, parent, p, d, inUserNS); err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
	}
	dev, err := openInRoot(root, "/dev")
	if err != nil {
		return err
	}
	defer dev.Close()
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	// Every devpts instance has its own ptmx; /dev/ptmx must be the one of
	// the container's instance, not the host's node.
	_ = unix.Unlinkat(int(dev.Fd()), "ptmx", 0)
	links = append(links, [2]string{"pts/ptmx", "ptmx"})
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s -> %s: %w", l[1], l[0], err)
		}
	}
	return nil
}

func devType(t string) (uint32, error) {
	switch t {
	case "c", "u":
		return unix.S_IFCHR, nil
	case "b":
		return unix.S_IFBLK, nil
	case "p":
		return unix.S_IFIFO, nil
	}
	return 0, fmt.Errorf("unknown device type %q", t)
}

// makeDevice makes the node p (d.Path, cleaned) in its directory parent.
func makeDevice(root, parent *os.File, p string, d specs.LinuxDevice, inUserNS bool) error {
	base := filepath.Base(p)
	pfd := int(parent.Fd())
	if inUserNS {
		// mknod needs CAP_MKNOD in the initial user namespace: bind the
		// host's node instead, as runc does.
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
		dst, err := openInRoot(root, p)
		if err != nil {
			return err
		}
		defer dst.Close()
		tree, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("open_tree host %s: %w", p, err)
		}
		defer unix.Close(tree)
		return unix.MoveMount(tree, "", int(dst.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	}
	typ, err := devType(d.Type)
	if err != nil {
		return err
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(*d.FileMode & os.ModePerm)
	}
	dev := int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	err = unix.Mknodat(pfd, base, typ|mode, dev)
	if errors.Is(err, unix.EEXIST) {
		// An image's own node (or a symlink in its place) is replaced,
		// never followed.
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return fmt.Errorf("replace existing %s: %w", p, err)
		}
		err = unix.Mknodat(pfd, base, typ|mode, dev)
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}
