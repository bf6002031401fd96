//go:build linux

package spec

import "golang.org/x/sys/unix"

// isCgroup2 reports whether the host uses the cgroup v2 unified hierarchy,
// the same test runc's cgroups.IsCgroup2UnifiedMode makes.
func isCgroup2() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}
