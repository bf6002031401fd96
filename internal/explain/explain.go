// Package explain turns the kernel's terse refusals into causes and fixes.
//
// The kernel answers a namespace, id-map or mount step with one errno for
// many reasons: EPERM from write(gid_map) means "setgroups not denied" or
// "more than your own gid", EINVAL from pivot_root means one of five
// conditions (seed 001), ENOSPC from unshare means a user.max_*_namespaces
// limit, not a full disk. This package is the one table, (operation, errno,
// context) → cause and fix, that every face of hako (runtime errors,
// inspect, doctor) reads. Facts about the caller (threads, chroot, seccomp,
// sysctls) are gathered once, when an error is being explained, so that the
// row that matches is the one that is true on this machine now.
//
// Errors read `operation path: errno (cause: fix)` and wrap the errno with
// %w, so errors.Is(err, unix.EPERM) still holds.
package explain

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Op names a kernel operation hako performs.
type Op string

// The operations the table knows.
const (
	UnshareUser   Op = "unshare(CLONE_NEWUSER)"
	UnshareOther  Op = "unshare"
	Clone3        Op = "clone3"
	Fork          Op = "fork"
	SetnsUser     Op = "setns(CLONE_NEWUSER)"
	SetnsMount    Op = "setns(CLONE_NEWNS)"
	WriteUIDMap   Op = "write uid_map"
	WriteGIDMap   Op = "write gid_map"
	WriteSetgroup Op = "write setgroups"
	NewUIDMap     Op = "newuidmap"
	NewGIDMap     Op = "newgidmap" // newuidmap's causes
	MountProc     Op = "mount proc"
	MountSysfs    Op = "mount sysfs"
	MountOverlay  Op = "mount overlay"
	OverlayFD     Op = "fsconfig overlay lowerdir+"
	Mount         Op = "mount"
	Remount       Op = "remount"
	Propagation   Op = "make mount private/slave"
	PivotRoot     Op = "pivot_root"
	OpenTree      Op = "open_tree"
	FSOpen        Op = "fsopen"
	MountSetattr  Op = "mount_setattr(MOUNT_ATTR_IDMAP)"
	Umount        Op = "umount"
	Sethostname   Op = "sethostname"
)

// Entry is one row: when Op fails with Errno and When holds for the facts,
// Cause is why and Fix is what to do.
type Entry struct {
	ID    string // stable name of the cause, for tests and --json
	Op    Op
	Errno unix.Errno
	When  func(f *Facts) bool // nil: always
	Cause string
	Fix   string
}

// Explanation is the matched row.
type Explanation struct {
	ID    string `json:"id"`
	Cause string `json:"cause"`
	Fix   string `json:"fix"`
}

// Table is every known cause, most specific first within an (Op, Errno).
var Table = []Entry{
	// user namespaces
	{ID: "userns-chroot", Op: UnshareUser, Errno: unix.EPERM, When: func(f *Facts) bool { return f.Chrooted },
		Cause: "the caller is chrooted; the kernel refuses a new user namespace to a process whose root is not its mount namespace's root",
		Fix:   "create the user namespace before chroot, or use pivot_root instead of chroot"},
	{ID: "userns-debian-sysctl", Op: UnshareUser, Errno: unix.EPERM, When: func(f *Facts) bool { return f.UnprivUsernsClone == 0 && f.Euid != 0 },
		Cause: "kernel.unprivileged_userns_clone=0 forbids unprivileged users to create user namespaces (Debian's patch)",
		Fix:   "sysctl -w kernel.unprivileged_userns_clone=1, or run as root"},
	{ID: "userns-apparmor-restrict", Op: UnshareUser, Errno: unix.EPERM, When: func(f *Facts) bool { return f.AppArmorRestrict == 1 },
		Cause: "kernel.apparmor_restrict_unprivileged_userns=1 (Ubuntu 23.10+): the namespace is created but loses its capabilities, so setgroups, mount and netlink then fail with EPERM",
		Fix:   "give the program an AppArmor profile with the 'userns,' rule, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"},
	{ID: "userns-seccomp", Op: UnshareUser, Errno: unix.EPERM, When: func(f *Facts) bool { return f.Seccomp == 2 },
		Cause: "a seccomp filter around this process (Docker's default profile, a sandbox) refuses unshare/clone with namespace flags",
		Fix:   "run the outer container with a profile that allows unshare (--security-opt seccomp=unconfined, or add CAP_SYS_ADMIN for Docker's profile)"},
	{ID: "userns-not-root-of-ns", Op: UnshareUser, Errno: unix.EPERM,
		Cause: "the caller may not create user namespaces here (no CAP_SYS_ADMIN in an environment that restricts them, or an LSM policy)",
		Fix:   "run `hako doctor` to see which user namespace restriction applies"},
	{ID: "userns-multithreaded", Op: UnshareUser, Errno: unix.EINVAL, When: func(f *Facts) bool { return f.Threads > 1 },
		Cause: "the caller is multithreaded; unshare(CLONE_NEWUSER) needs a single-threaded process (Go programs always have several threads)",
		Fix:   "create the user namespace before the runtime starts threads (a C constructor, as hako's nsexec does) or in a fork+exec'd child"},
	{ID: "userns-limit", Op: UnshareUser, Errno: unix.ENOSPC,
		Cause: "user.max_user_namespaces (of this or an ancestor user namespace) is reached, or 0",
		Fix:   "raise it: sysctl -w user.max_user_namespaces=15000 (0 disables user namespaces entirely)"},
	{ID: "userns-depth", Op: UnshareUser, Errno: unix.EUSERS,
		Cause: "user namespaces nest at most 32 deep",
		Fix:   "create the namespace from a shallower ancestor"},
	{ID: "ns-limit", Op: UnshareOther, Errno: unix.ENOSPC,
		Cause: "a user.max_*_namespaces limit (mnt, pid, net, ipc, uts, cgroup, time) of this user namespace is reached, or 0",
		Fix:   "raise the matching /proc/sys/user/max_*_namespaces"},
	{ID: "ns-seccomp", Op: UnshareOther, Errno: unix.EPERM, When: func(f *Facts) bool { return f.Seccomp == 2 },
		Cause: "a seccomp filter around this process refuses unshare",
		Fix:   "run the outer container unconfined or with a profile that allows unshare"},
	{ID: "ns-no-cap", Op: UnshareOther, Errno: unix.EPERM,
		Cause: "creating a namespace other than a user namespace needs CAP_SYS_ADMIN in the current user namespace",
		Fix:   "create a user namespace in the same unshare (CLONE_NEWUSER|...), or run as root"},
	{ID: "clone3-seccomp", Op: Clone3, Errno: unix.ENOSYS, When: func(f *Facts) bool { return f.Seccomp == 2 },
		Cause: "a seccomp filter (older Docker/libseccomp profiles) answers clone3 with ENOSYS",
		Fix:   "callers fall back to clone(2); update the outer profile to allow clone3"},
	{ID: "pidns-init-gone", Op: Fork, Errno: unix.ENOMEM, When: func(f *Facts) bool { return f.PIDForChildrenDiffers },
		Cause: "after unshare(CLONE_NEWPID) the first child became the new namespace's init and has exited; no process can join a PID namespace whose init is gone (the `unshare --pid` without `--fork` trap)",
		Fix:   "fork right after unshare(CLONE_NEWPID) and keep that child alive as init (unshare --pid --fork)"},
	{ID: "setns-userns-threads", Op: SetnsUser, Errno: unix.EINVAL, When: func(f *Facts) bool { return f.Threads > 1 },
		Cause: "a multithreaded process cannot join a user namespace",
		Fix:   "join before threads exist (hako's exec does it in its C constructor) or from a fork+exec'd child such as nsenter"},
	{ID: "setns-userns-same", Op: SetnsUser, Errno: unix.EINVAL,
		Cause: "the process is already in that user namespace (joining one's own user namespace is refused)",
		Fix:   "skip joining a user namespace the process is already in"},
	{ID: "setns-mntns-threads", Op: SetnsMount, Errno: unix.EINVAL, When: func(f *Facts) bool { return f.Threads > 1 },
		Cause: "a process whose threads share fs state (every Go program) cannot join a mount namespace",
		Fix:   "unshare(CLONE_FS) first on a locked thread, or join from a single-threaded child"},
	{ID: "setns-no-cap", Op: SetnsMount, Errno: unix.EPERM,
		Cause: "joining a namespace needs CAP_SYS_ADMIN over its owning user namespace (and CAP_SYS_CHROOT for a mount namespace)",
		Fix:   "join the owning user namespace first, or run as root"},

	// id maps (seed 002)
	{ID: "gidmap-setgroups", Op: WriteGIDMap, Errno: unix.EPERM, When: func(f *Facts) bool { return f.Euid != 0 && f.Setgroups != "deny" },
		Cause: `an unprivileged writer must write "deny" to /proc/PID/setgroups before gid_map (Linux 3.19+, CVE-2014-8989)`,
		Fix:   `echo deny > /proc/PID/setgroups first, or use newgidmap`},
	{ID: "map-written", Op: WriteUIDMap, Errno: unix.EPERM, When: func(f *Facts) bool { return f.MapWritten },
		Cause: "the map was already written; uid_map and gid_map can be written once per namespace",
		Fix:   "write the whole map in one write(2), before anything else sets it"},
	{ID: "map-not-own", Op: WriteUIDMap, Errno: unix.EPERM,
		Cause: "an unprivileged writer may map only its own id, and only from the parent user namespace with CAP_SETUID/CAP_SETGID there",
		Fix:   "use newuidmap/newgidmap with ranges in /etc/subuid and /etc/subgid"},
	{ID: "map-invalid", Op: WriteUIDMap, Errno: unix.EINVAL,
		Cause: "the map is malformed: overlapping ranges, a zero count, more than 340 lines, or not written in one write(2)",
		Fix:   "write 'inside outside count' lines with disjoint ranges in a single write"},
	{ID: "setgroups-after-map", Op: WriteSetgroup, Errno: unix.EPERM,
		Cause: "setgroups can no longer be set to allow once gid_map is written (or an ancestor namespace denies it)",
		Fix:   "write setgroups before gid_map"},
	{ID: "newuidmap-not-setuid", Op: NewUIDMap, Errno: unix.EPERM, When: func(f *Facts) bool { return f.NewUIDMapNoPriv },
		Cause: "newuidmap/newgidmap has neither the setuid bit nor file capabilities (cap_setuid/cap_setgid), so it cannot write more than the caller's own id",
		Fix:   "chmod u+s /usr/bin/newuidmap /usr/bin/newgidmap (or setcap cap_setuid+ep / cap_setgid+ep), e.g. reinstall the uidmap package"},
	{ID: "subid-range", Op: NewUIDMap, Errno: unix.EPERM,
		Cause: "the requested range is not in this user's /etc/subuid or /etc/subgid (missing, or smaller than the map asks)",
		Fix:   "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER (65536 ids is what most images need)"},

	// /proc and sysfs (seed 002)
	{ID: "proc-locked-overmount", Op: MountProc, Errno: unix.EPERM, When: func(f *Facts) bool { return !f.InitUserNS && f.ProcOvermounted },
		Cause: "inside a user namespace a new proc may be mounted only where a proc is already fully visible; this /proc has mounts over its entries (masked paths of an outer container), so it is not",
		Fix:   "bind-mount the existing /proc (rbind) instead, or run where /proc has no overmounts"},
	{ID: "proc-pidns-owner", Op: MountProc, Errno: unix.EPERM,
		Cause: "mounting proc needs CAP_SYS_ADMIN in the user namespace that owns the PID namespace; this process's PID namespace belongs to an ancestor user namespace",
		Fix:   "create a PID namespace along with the user namespace (unshare -Upf --mount-proc) and mount proc from its init"},
	{ID: "proc-before-fork", Op: MountProc, Errno: unix.EINVAL, When: func(f *Facts) bool { return f.PIDForChildrenDiffers },
		Cause: "proc is mounted for the caller's active PID namespace; after unshare(CLONE_NEWPID) the caller is still in the old one, so the new proc would show the host's processes",
		Fix:   "fork first and mount proc from the child (PID 1 of the new namespace)"},
	{ID: "sysfs-netns", Op: MountSysfs, Errno: unix.EPERM,
		Cause: "mounting sysfs needs CAP_SYS_ADMIN in the user namespace owning the network namespace",
		Fix:   "create a network namespace too, or bind-mount /sys"},

	// overlayfs (seed 005)
	{ID: "overlay-userns", Op: MountOverlay, Errno: unix.EPERM, When: func(f *Facts) bool { return !f.InitUserNS },
		Cause: "overlayfs in a user namespace needs Linux 5.11+ and lower/upper filesystems that allow it (no trusted.* xattrs: use userxattr)",
		Fix:   "mount with -o userxattr on a kernel ≥5.11, or use fuse-overlayfs"},
	{ID: "overlay-opts", Op: MountOverlay, Errno: unix.EINVAL,
		Cause: "the upper and work directories must be on the same filesystem, workdir empty, and redirect_dir/metacopy consistent with earlier mounts of the same layers",
		Fix:   "check dmesg for the overlayfs message; use one filesystem for upperdir and workdir"},
	{ID: "overlay-fd-layers", Op: OverlayFD, Errno: unix.EOPNOTSUPP,
		Cause: "this kernel's overlayfs takes its layers by path only (6.1 refuses a file descriptor with EOPNOTSUPP); layers as fds came with Linux 6.13",
		Fix:   "run on Linux 6.13 or later"},
	{ID: "overlay-fd-key", Op: OverlayFD, Errno: unix.EINVAL,
		Cause: "this kernel's overlayfs does not know the lowerdir+ key (layers as file descriptors came with Linux 6.13)",
		Fix:   "run on Linux 6.13 or later"},

	// mounts and propagation (seeds 001, 003)
	{ID: "remount-locked", Op: Remount, Errno: unix.EPERM, When: func(f *Facts) bool { return !f.InitUserNS },
		Cause: "the mount's flags (ro, nosuid, nodev, noexec, atime) were locked when it was copied into a mount namespace owned by a less privileged user namespace; they cannot be cleared from inside",
		Fix:   "keep the flags the outer mount has (add ro/nosuid/nodev to the remount), or change them outside the user namespace"},
	{ID: "mount-not-mountpoint", Op: Propagation, Errno: unix.EINVAL,
		Cause: "propagation can be changed only on a mount point; the path is a directory inside a mount",
		Fix:   "bind-mount the path on itself first, or change the propagation of the mount containing it"},
	{ID: "mount-no-cap", Op: Mount, Errno: unix.EPERM, When: func(f *Facts) bool { return f.Seccomp == 2 },
		Cause: "a seccomp filter around this process refuses mount/the new mount API",
		Fix:   "run the outer container with a profile that allows mount, fsopen, open_tree and move_mount"},
	{ID: "umount-busy", Op: Umount, Errno: unix.EBUSY,
		Cause: "the mount is in use (open files, a cwd, or child mounts)",
		Fix:   "use MNT_DETACH (umount -l), or close what holds it"},
	{ID: "mount-target-missing", Op: Mount, Errno: unix.ENOENT,
		Cause: "the mount target (or source) does not exist inside the container's root",
		Fix:   "create the directory in the rootfs, or fix the path in config.json"},

	// pivot_root (seed 001's list, pivot.go)
	{ID: "pivot-same-mount", Op: PivotRoot, Errno: unix.EBUSY, When: func(f *Facts) bool { return f.Tag("not-mountpoint") },
		Cause: "the new root is a directory on the current root's mount, not a mount point of its own",
		Fix:   "bind-mount the rootfs on itself (mount --bind rootfs rootfs) before pivot_root"},
	{ID: "pivot-not-mountpoint", Op: PivotRoot, Errno: unix.EINVAL, When: func(f *Facts) bool { return f.Tag("not-mountpoint") },
		Cause: "the new root is not a mount point",
		Fix:   "bind-mount the rootfs on itself (mount --bind rootfs rootfs) before pivot_root"},
	{ID: "pivot-shared", Op: PivotRoot, Errno: unix.EINVAL, When: func(f *Facts) bool { return f.Tag("shared") },
		Cause: "the new root, its parent mount, or the current root is shared; pivot_root would propagate the move",
		Fix:   "make / rprivate (or rslave) in the new mount namespace first (mount --make-rprivate /)"},
	{ID: "pivot-rootfs", Op: PivotRoot, Errno: unix.EINVAL, When: func(f *Facts) bool { return f.Tag("initramfs") },
		Cause: "the current root is the initramfs (rootfs), which cannot be pivoted away",
		Fix:   "use --no-pivot (MS_MOVE + chroot)"},
	{ID: "pivot-conditions", Op: PivotRoot, Errno: unix.EINVAL,
		Cause: "pivot_root's conditions: new root must be a mount point, not on the current root's mount, put_old under it, and neither new root nor its parent mount shared",
		Fix:   "bind the rootfs on itself and make / rprivate first; --no-pivot for an initramfs"},
	{ID: "pivot-no-cap", Op: PivotRoot, Errno: unix.EPERM,
		Cause: "pivot_root needs CAP_SYS_ADMIN in the user namespace owning the mount namespace",
		Fix:   "create a mount namespace together with a user namespace, or run as root"},

	// new mount API and idmapped mounts
	{ID: "open-tree-no-cap", Op: OpenTree, Errno: unix.EPERM,
		Cause: "open_tree(OPEN_TREE_CLONE) needs CAP_SYS_ADMIN over the user namespace owning the caller's mount namespace (a user namespace without its own mount namespace is not enough), or a seccomp filter refuses it",
		Fix:   "unshare a mount namespace along with the user namespace, or allow open_tree in the outer seccomp profile"},
	{ID: "mount-api-missing", Op: FSOpen, Errno: unix.ENOSYS,
		Cause: "the new mount API (fsopen/open_tree/move_mount, Linux 5.2) is missing or filtered by seccomp",
		Fix:   "update the kernel, or allow the syscalls in the outer seccomp profile; hako falls back to mount(2)"},
	{ID: "idmap-fs-unsupported", Op: MountSetattr, Errno: unix.EINVAL, When: func(f *Facts) bool { return f.Tag("detached") },
		Cause: "this filesystem does not support idmapped mounts (FS_ALLOW_IDMAP: ext4, xfs, btrfs, tmpfs 6.3+, overlayfs 5.19+ support them; proc, sysfs, most FUSE and NFS do not)",
		Fix:   "put the rootfs on a filesystem that supports idmapped mounts, or chown it to the mapped ids instead"},
	{ID: "idmap-attached", Op: MountSetattr, Errno: unix.EINVAL,
		Cause: "an idmap can be set only on a detached mount (open_tree(OPEN_TREE_CLONE)) that has no idmap yet",
		Fix:   "clone the tree with open_tree first, then mount_setattr, then move_mount"},
	{ID: "idmap-userns-owner", Op: MountSetattr, Errno: unix.EPERM,
		Cause: "setting an idmap needs CAP_SYS_ADMIN in the user namespace owning the filesystem's superblock, and the map's user namespace must not be the caller's initial one",
		Fix:   "run as root, or idmap a mount of a filesystem the user namespace mounted itself"},
	{ID: "hostname-no-uts", Op: Sethostname, Errno: unix.EPERM,
		Cause: "setting the hostname needs CAP_SYS_ADMIN over the UTS namespace's owner; without a new UTS namespace it would be the host's",
		Fix:   "add a uts namespace to linux.namespaces"},
}

// Lookup returns the first row for op and errno whose condition holds.
func Lookup(op Op, errno unix.Errno, f *Facts) (Explanation, bool) {
	if f == nil {
		f = &Facts{}
	}
	f.Errno = errno
	if op == NewGIDMap {
		op = NewUIDMap
	}
	for _, e := range Table {
		if e.Op != op || e.Errno != errno {
			continue
		}
		if e.When == nil || e.When(f) {
			return Explanation{ID: e.ID, Cause: e.Cause, Fix: e.Fix}, true
		}
	}
	return Explanation{}, false
}

// Error is an explained failure: `operation path: errno (cause: fix)`.
type Error struct {
	Op          Op
	Path        string
	Err         error
	Explanation Explanation
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Op))
	if e.Path != "" {
		b.WriteString(" " + e.Path)
	}
	b.WriteString(": " + e.Err.Error())
	if e.Explanation.Cause != "" {
		fmt.Fprintf(&b, " (%s: %s)", e.Explanation.Cause, e.Explanation.Fix)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Wrap explains err from op on path with facts gathered now (Gather) and
// the given tags. Errors without an errno, or unknown combinations, are
// still wrapped as `operation path: err`.
func Wrap(op Op, path string, err error, tags ...string) error {
	if err == nil {
		return nil
	}
	f := Gather()
	f.Tags = tags
	return WrapFacts(op, path, err, f)
}

// WrapFacts is Wrap with facts the caller gathered (or made up, in tests).
func WrapFacts(op Op, path string, err error, f *Facts) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Path: path, Err: err}
	var errno unix.Errno
	if errors.As(err, &errno) {
		e.Explanation, _ = Lookup(op, errno, f)
	}
	return e
}

// Of returns the explanation inside err, if any.
func Of(err error) (Explanation, bool) {
	var e *Error
	if errors.As(err, &e) && e.Explanation.ID != "" {
		return e.Explanation, true
	}
	return Explanation{}, false
}
