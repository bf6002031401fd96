package explain

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The table: ids unique, every row reachable with some facts, and the
// facts choose between rows of one (op, errno).
func TestTable(t *testing.T) {
	ids := map[string]bool{}
	for _, e := range Table {
		if ids[e.ID] {
			t.Errorf("duplicate id %s", e.ID)
		}
		ids[e.ID] = true
		if e.Cause == "" || e.Fix == "" {
			t.Errorf("%s: empty cause or fix", e.ID)
		}
	}
	if len(ids) < 20 {
		t.Errorf("only %d causes", len(ids))
	}
	cases := []struct {
		op    Op
		errno unix.Errno
		f     Facts
		want  string
	}{
		{UnshareUser, unix.EPERM, Facts{Chrooted: true}, "userns-chroot"},
		{UnshareUser, unix.EPERM, Facts{Euid: 1000, UnprivUsernsClone: 0, AppArmorRestrict: -1}, "userns-debian-sysctl"},
		{UnshareUser, unix.EPERM, Facts{Euid: 1000, UnprivUsernsClone: -1, AppArmorRestrict: 1}, "userns-apparmor-restrict"},
		{UnshareUser, unix.EPERM, Facts{UnprivUsernsClone: -1, AppArmorRestrict: -1, Seccomp: 2}, "userns-seccomp"},
		{UnshareUser, unix.EPERM, Facts{UnprivUsernsClone: -1, AppArmorRestrict: -1}, "userns-not-root-of-ns"},
		{UnshareUser, unix.EINVAL, Facts{Threads: 5}, "userns-multithreaded"},
		{UnshareUser, unix.ENOSPC, Facts{}, "userns-limit"},
		{UnshareOther, unix.ENOSPC, Facts{}, "ns-limit"},
		{UnshareOther, unix.EPERM, Facts{Seccomp: 2}, "ns-seccomp"},
		{UnshareOther, unix.EPERM, Facts{}, "ns-no-cap"},
		{Clone3, unix.ENOSYS, Facts{Seccomp: 2}, "clone3-seccomp"},
		{Fork, unix.ENOMEM, Facts{PIDForChildrenDiffers: true}, "pidns-init-gone"},
		{SetnsUser, unix.EINVAL, Facts{Threads: 3}, "setns-userns-threads"},
		{SetnsUser, unix.EINVAL, Facts{Threads: 1}, "setns-userns-same"},
		{SetnsMount, unix.EINVAL, Facts{Threads: 3}, "setns-mntns-threads"},
		{WriteGIDMap, unix.EPERM, Facts{Euid: 1000, Setgroups: "allow"}, "gidmap-setgroups"},
		{WriteUIDMap, unix.EPERM, Facts{MapWritten: true}, "map-written"},
		{WriteUIDMap, unix.EPERM, Facts{Euid: 1000}, "map-not-own"},
		{WriteUIDMap, unix.EINVAL, Facts{}, "map-invalid"},
		{WriteSetgroup, unix.EPERM, Facts{}, "setgroups-after-map"},
		{NewUIDMap, unix.EPERM, Facts{NewUIDMapNoPriv: true}, "newuidmap-not-setuid"},
		{NewUIDMap, unix.EPERM, Facts{}, "subid-range"},
		{NewGIDMap, unix.EPERM, Facts{NewUIDMapNoPriv: true}, "newuidmap-not-setuid"},
		{MountProc, unix.EPERM, Facts{ProcOvermounted: true}, "proc-locked-overmount"},
		{MountProc, unix.EPERM, Facts{InitUserNS: true, ProcOvermounted: true}, "proc-pidns-owner"},
		{MountProc, unix.EINVAL, Facts{PIDForChildrenDiffers: true}, "proc-before-fork"},
		{MountSysfs, unix.EPERM, Facts{}, "sysfs-netns"},
		{MountOverlay, unix.EPERM, Facts{}, "overlay-userns"},
		{MountOverlay, unix.EINVAL, Facts{}, "overlay-opts"},
		{OverlayFD, unix.EOPNOTSUPP, Facts{}, "overlay-fd-layers"},
		{OverlayFD, unix.EINVAL, Facts{}, "overlay-fd-key"},
		{Remount, unix.EPERM, Facts{}, "remount-locked"},
		{Propagation, unix.EINVAL, Facts{}, "mount-not-mountpoint"},
		{Mount, unix.EPERM, Facts{Seccomp: 2}, "mount-no-cap"},
		{Umount, unix.EBUSY, Facts{}, "umount-busy"},
		{Mount, unix.ENOENT, Facts{}, "mount-target-missing"},
		{PivotRoot, unix.EINVAL, Facts{Tags: []string{"not-mountpoint"}}, "pivot-not-mountpoint"},
		{PivotRoot, unix.EINVAL, Facts{Tags: []string{"shared"}}, "pivot-shared"},
		{PivotRoot, unix.EBUSY, Facts{Tags: []string{"not-mountpoint"}}, "pivot-same-mount"},
		{PivotRoot, unix.EINVAL, Facts{Tags: []string{"initramfs"}}, "pivot-rootfs"},
		{PivotRoot, unix.EINVAL, Facts{}, "pivot-conditions"},
		{PivotRoot, unix.EPERM, Facts{}, "pivot-no-cap"},
		{OpenTree, unix.EPERM, Facts{}, "open-tree-no-cap"},
		{FSOpen, unix.ENOSYS, Facts{}, "mount-api-missing"},
		{MountSetattr, unix.EINVAL, Facts{Tags: []string{"detached"}}, "idmap-fs-unsupported"},
		{MountSetattr, unix.EINVAL, Facts{}, "idmap-attached"},
		{MountSetattr, unix.EPERM, Facts{}, "idmap-userns-owner"},
		{Sethostname, unix.EPERM, Facts{}, "hostname-no-uts"},
		{UnshareUser, unix.EUSERS, Facts{}, "userns-depth"},
		{SetnsMount, unix.EPERM, Facts{}, "setns-no-cap"},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		f := c.f
		x, ok := Lookup(c.op, c.errno, &f)
		if !ok || x.ID != c.want {
			t.Errorf("%s %v %+v: got %q, want %q", c.op, c.errno, c.f, x.ID, c.want)
		}
		covered[c.want] = true
	}
	for id := range ids {
		if !covered[id] {
			t.Errorf("row %s has no case", id)
		}
	}
	if _, ok := Lookup(Umount, unix.EXDEV, nil); ok {
		t.Error("an unknown errno matched a row")
	}
}

func TestErrorFormat(t *testing.T) {
	err := WrapFacts(PivotRoot, "/run/c/rootfs", unix.EINVAL, &Facts{Tags: []string{"not-mountpoint"}})
	want := "pivot_root /run/c/rootfs: invalid argument (the new root is not a mount point: bind-mount the rootfs on itself (mount --bind rootfs rootfs) before pivot_root)"
	if err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Fatal("errno not wrapped")
	}
	if x, ok := Of(err); !ok || x.ID != "pivot-not-mountpoint" {
		t.Fatalf("Of: %v %v", x, ok)
	}
	if e := WrapFacts(Mount, "/x", errors.New("plain"), &Facts{}); e.Error() != "mount /x: plain" {
		t.Fatalf("plain: %s", e)
	}
	if !strings.Contains(Wrap(UnshareUser, "", unix.ENOSPC).Error(), "max_user_namespaces") {
		t.Fatal("Wrap did not explain ENOSPC")
	}
}
