package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

type mounter struct {
	root    *os.File
	cgroups []CgroupMount
}

// Mount kinds: how a mount is made. Any other kind is a filesystem type,
// made with fsopen.
const (
	KindBind   = "bind"   // open_tree of the source (or of the fd the parent opened)
	KindIDMap  = "idmap"  // the fd is a detached idmapped tree the parent made
	KindCgroup = "cgroup" // the container's cgroup directories
)

// Mount is one mount with every decision made: the kind, an absolute bind
// source, parsed options. Plans carry it.
type Mount struct {
	Kind        string  `json:"kind"`
	Type        string  `json:"type,omitempty"`
	Source      string  `json:"source,omitempty"`
	Destination string  `json:"destination"`
	Options     Options `json:"options"`
	// Size and Perms are a tmpfs's size= and mode= (bwrap's --size and
	// --perms, systemd's TemporaryFileSystem).
	Size  int64   `json:"size,omitempty"`
	Perms *uint32 `json:"perms,omitempty"`
	// UIDMappings and GIDMappings of an idmapped mount with maps of its
	// own: the parent makes the tree from them (KindIDMap).
	UIDMappings []specs.LinuxIDMapping `json:"uidMappings,omitempty"`
	GIDMappings []specs.LinuxIDMapping `json:"gidMappings,omitempty"`
}

func (m *mounter) mount(mnt Mount, fd int) error {
	switch mnt.Kind {
	case KindIDMap:
		if fd < 0 {
			return fmt.Errorf("idmapped mount: %w: no tree prepared", errors.ErrUnsupported)
		}
		return m.bindTree(fd, mnt, mnt.Options)
	case KindBind:
		return m.bind(mnt, mnt.Options, fd)
	case KindCgroup:
		if fd >= 0 {
			unix.Close(fd)
		}
		return m.cgroup(mnt, mnt.Options)
	default:
		if fd >= 0 {
			unix.Close(fd)
		}
		return m.fs(mnt, mnt.Options)
	}
}

// target opens (creating if needed) the mount point: a directory, or a file
// when the bind source is not a directory.
func (m *mounter) target(dest string, dir bool) (*os.File, error) {
	switch dest = filepath.Clean(dest); dest {
	case "/proc", "/sys":
		// CVE-2019-19921 class: /proc or /sys as a symlink in the image
		// would land procfs (and later LSM writes) somewhere else.
		if err := refuseSymlink(m.root, dest); err != nil {
			return nil, err
		}
	}
	if dir {
		return mkdirInRoot(m.root, dest, 0o755)
	}
	if f, err := openInRoot(m.root, dest); err == nil {
		return f, nil
	}
	parent, err := mkdirInRoot(m.root, filepath.Dir(dest), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), filepath.Base(dest), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create mount point file %s: %w", dest, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	return openInRoot(m.root, dest)
}

// refuseSymlink refuses a /proc or /sys that exists as anything but a
// directory, in runc's words (which users search for).
func refuseSymlink(root *os.File, dest string) error {
	var st unix.Stat_t
	err := unix.Fstatat(int(root.Fd()), strings.TrimPrefix(dest, "/"), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	fs := map[string]string{"/proc": "proc", "/sys": "sysfs"}[dest]
	what := "not a directory"
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		what = "a symlink"
	}
	return fmt.Errorf("%w: filesystem %q must be mounted on ordinary directory (%s is %s in the rootfs)", ErrUnsafePath, fs, dest, what)
}

// bind clones the source: from fd when the parent opened it (it closes
// fd), else by path.
func (m *mounter) bind(mnt Mount, o Options, fd int) error {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if o.Recursive {
		flags |= unix.AT_RECURSIVE
	}
	if fd >= 0 {
		tree, err := unix.OpenTree(fd, "", flags|unix.AT_EMPTY_PATH)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("open_tree bind source %s: %w", mnt.Source, err)
		}
		return m.bindTree(tree, mnt, o)
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, mnt.Source, flags)
	if err != nil {
		return fmt.Errorf("open_tree bind source %s: %w", mnt.Source, err)
	}
	return m.bindTree(tree, mnt, o)
}

// bindTree attaches a detached bind mount at the destination, made a file
// or a directory as the tree's root is; it closes tree.
func (m *mounter) bindTree(tree int, mnt Mount, o Options) error {
	defer unix.Close(tree)
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("fstat bind source %s: %w", mnt.Source, err)
	}
	dst, err := m.target(mnt.Destination, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := setAttrs(tree, mnt.Destination, o); err != nil {
		return err
	}
	return m.attach(tree, dst, mnt.Destination, o)
}

// setAttrs applies the mount's flags to the detached tree for dest. In a
// user namespace, clearing a flag the source mount had (rw over ro, suid,
// dev, exec, atime) is refused with EPERM: the flag is locked, and the
// explain table says so.
func setAttrs(tree int, dest string, o Options) error {
	if o.RAttr != 0 || o.RAttrClr != 0 {
		a := unix.MountAttr{Attr_set: o.RAttr, Attr_clr: o.RAttrClr}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &a); err != nil {
			return explain.Wrap(explain.Remount, dest, fmt.Errorf("mount_setattr (recursive): %w", err))
		}
	}
	if o.Attr != 0 || o.AttrClr != 0 {
		a := unix.MountAttr{Attr_set: o.Attr, Attr_clr: o.AttrClr}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &a); err != nil {
			return explain.Wrap(explain.Remount, dest, fmt.Errorf("mount_setattr: %w", err))
		}
	}
	return nil
}

// attach moves a detached mount onto the opened destination and applies
// propagation, which the kernel only takes on an attached mount.
func (m *mounter) attach(tree int, dst *os.File, dest string, o Options) error {
	if err := unix.MoveMount(tree, "", int(dst.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	if o.Propagation == 0 {
		return nil
	}
	top, err := openInRoot(m.root, dest)
	if err != nil {
		return err
	}
	defer top.Close()
	if err := unix.Mount("", fdPath(top), "", o.Propagation, ""); err != nil {
		return fmt.Errorf("set propagation %s: %w", propName(o.Propagation), err)
	}
	return nil
}

func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// newFS makes a detached mount of a new filesystem instance.
func newFS(fstype, source string, o Options, dropLabels bool) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	fail := func(what string, err error) (int, error) {
		if msg := fsLog(fsfd); msg != "" {
			return -1, fmt.Errorf("%s: %w (kernel: %s)", what, err, msg)
		}
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if source != "" {
		if err := unix.FsconfigSetString(fsfd, "source", source); err != nil {
			return fail("fsconfig source="+source, err)
		}
	}
	for _, f := range o.SbFlags {
		if err := unix.FsconfigSetFlag(fsfd, f); err != nil {
			return fail("fsconfig "+f, err)
		}
	}
	for _, d := range o.Data {
		k, v, hasValue := splitData(d)
		if dropLabels && isLabelOption(k) {
			continue
		}
		if hasValue {
			err = unix.FsconfigSetString(fsfd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fsfd, k)
		}
		if err != nil {
			return fail("fsconfig "+d, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fail("create "+fstype+" filesystem", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fail("fsmount", err)
	}
	return mfd, nil
}

// fsLog reads the messages the filesystem left in its fs_context, which
// usually say exactly which option it did not like.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for i := 0; i < 8; i++ {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, string(bytes.TrimSpace(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

func isLabelOption(k string) bool {
	switch k {
	case "context", "fscontext", "defcontext", "rootcontext":
		return true
	}
	return false
}

func selinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

func (m *mounter) fs(mnt Mount, o Options) error {
	dst, err := m.target(mnt.Destination, true)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := checkTarget(dst, mnt.Destination); err != nil {
		return err
	}
	if mnt.Size > 0 {
		o.Data = append(o.Data[:len(o.Data):len(o.Data)], fmt.Sprintf("size=%d", mnt.Size))
	}
	if mnt.Perms != nil {
		o.Data = append(o.Data[:len(o.Data):len(o.Data)], fmt.Sprintf("mode=%04o", *mnt.Perms))
	}
	// Without SELinux a context= option can only fail; crun drops it too.
	tree, err := newFS(mnt.Type, mnt.Source, o, !selinuxEnabled())
	if err != nil {
		return explainMount(mnt.Type, mnt.Destination, err)
	}
	defer unix.Close(tree)
	// Before the attributes (ro) and before the tmpfs covers it: dst is
	// the directory opened before mounting, its content still visible.
	if o.CopyUp {
		if err := copyUp(int(dst.Fd()), tree); err != nil {
			return fmt.Errorf("%s: %w", mnt.Destination, err)
		}
	}
	if err := setAttrs(tree, mnt.Destination, o); err != nil {
		return err
	}
	return m.attach(tree, dst, mnt.Destination, o)
}

// explainMount says why the kernel refused a new filesystem where the
// causes are known (seed 002: proc needs a process in the new PID namespace
// and CAP_SYS_ADMIN over its owner, and no locked overmounts on /proc;
// overlayfs in a user namespace).
func explainMount(fstype, dest string, err error) error {
	switch fstype {
	case "proc":
		return explain.Wrap(explain.MountProc, dest, err)
	case "sysfs":
		return explain.Wrap(explain.MountSysfs, dest, err)
	case "overlay":
		return explain.Wrap(explain.MountOverlay, dest, err)
	}
	return err
}

// checkTarget refuses to mount over something that resolved outside the
// place asked for (e.g. /proc resolving through a symlink to /).
func checkTarget(dst *os.File, dest string) error {
	if filepath.Clean(dest) == "/" {
		return fmt.Errorf("%w: cannot mount over the container's /", ErrUnsafePath)
	}
	return nil
}

// cgroup makes /sys/fs/cgroup inside the container: on v1 and hybrid hosts a
// tmpfs holding a bind of the container's own directory of each hierarchy;
// on v2 a bind of its one directory.
func (m *mounter) cgroup(mnt Mount, o Options) error {
	if len(m.cgroups) == 1 && m.cgroups[0].Dir == "" {
		b := mnt
		b.Source = m.cgroups[0].HostPath
		o.Bind, o.Recursive = true, false
		return m.bind(b, o, -1)
	}
	dst, err := m.target(mnt.Destination, true)
	if err != nil {
		return err
	}
	defer dst.Close()
	tmpfsOpts := o
	tmpfsOpts.Data = []string{"mode=755"}
	tmpfsOpts.Attr &^= unix.MOUNT_ATTR_RDONLY
	tree, err := newFS("tmpfs", "tmpfs", tmpfsOpts, true)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	if err := setAttrs(tree, mnt.Destination, tmpfsOpts); err != nil {
		return err
	}
	if err := m.attach(tree, dst, mnt.Destination, Options{}); err != nil {
		return err
	}
	// The tmpfs is hako's own, made a moment ago, and nothing of the
	// container can reach it yet: its directories are made and opened
	// relative to its fd rather than resolved through the rootfs, whose
	// race-proof walk (and the procfs checks behind it) a directory of
	// the image needs. That walk was ~25 syscalls a hierarchy, about half
	// of this step on a v1 host's ten or eleven binds.
	for _, cg := range m.cgroups {
		sub := filepath.Join(mnt.Destination, cg.Dir)
		bo := o
		bo.Bind, bo.Recursive, bo.Propagation = true, false, 0
		if err := bindCgroup(tree, cg, sub, bo); err != nil {
			return fmt.Errorf("cgroup %s: %w", cg.Dir, err)
		}
	}
	if o.Attr&unix.MOUNT_ATTR_RDONLY != 0 {
		a := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &a); err != nil {
			return explain.Wrap(explain.Remount, mnt.Destination, fmt.Errorf("make read-only: mount_setattr: %w", err))
		}
	}
	return nil
}

// bindCgroup binds the host's cgroup directory cg.HostPath at cg.Dir in the
// tmpfs dir (which sub names for errors), with cg's symlinks beside it.
func bindCgroup(dir int, cg CgroupMount, sub string, o Options) error {
	if err := unix.Mkdirat(dir, cg.Dir, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", sub, err)
	}
	target, err := unix.Openat2(dir, cg.Dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", sub, err)
	}
	defer unix.Close(target)
	tree, err := unix.OpenTree(unix.AT_FDCWD, cg.HostPath, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree bind source %s: %w", cg.HostPath, err)
	}
	defer unix.Close(tree)
	if err := setAttrs(tree, sub, o); err != nil {
		return err
	}
	if err := unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s on %s: %w", cg.HostPath, sub, err)
	}
	for _, l := range cg.Symlinks {
		if err := unix.Symlinkat(cg.Dir, dir, l); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s -> %s: %w", l, cg.Dir, err)
		}
	}
	return nil
}

// mountPointOf finds the mount holding path and whether it is shared.
func mountPointOf(path string) (string, bool, error) {
	infos, err := mountinfo.GetMounts(mountinfo.ParentsFilter(path))
	if err != nil {
		return "", false, fmt.Errorf("read mountinfo: %w", err)
	}
	var best *mountinfo.Info
	for _, i := range infos {
		if best == nil || len(i.Mountpoint) >= len(best.Mountpoint) {
			best = i
		}
	}
	if best == nil {
		return "/", false, nil
	}
	return best.Mountpoint, strings.Contains(best.Optional, "shared:"), nil
}
