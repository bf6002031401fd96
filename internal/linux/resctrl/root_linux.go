//go:build linux

package resctrl

import (
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Root returns the resctrl mount: DefaultMount when resctrl is mounted
// there, else the first resctrl mount in mountinfo (runc looks in the same
// two places), else ErrNotEnabled.
func Root() (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(DefaultMount, &st); err == nil && st.Type == unix.RDTGROUP_SUPER_MAGIC {
		return DefaultMount, nil
	}
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("resctrl"))
	if err != nil || len(mounts) == 0 {
		return "", ErrNotEnabled
	}
	return mounts[0].Mountpoint, nil
}
