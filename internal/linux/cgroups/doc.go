// Package cgroups owns the container's control groups: the per-container
// directories in the cgroup filesystems, the resource limits written into
// them, and the cgroup-based operations later commands need (listing,
// freezing and removing the container's processes).
//
// Limits behave exactly as under runc's cgroupfs driver: the code here is
// a hand-written port of the parts of runc's cgroup library
// (github.com/opencontainers/cgroups v0.1.1, the version runc 1.4 and 1.5
// build with; "the library" in comments: fs for
// cgroup v1, fs2 for the unified hierarchy, the device rules) that hako
// needs, writing resources straight from the spec's LinuxResources with
// the same files, values, conversions and write orders. The library itself
// is not imported because its root package pulls in D-Bus, systemd,
// logrus, crypto and net, whose init functions ran in every hako process
// (the container's init included) and roughly doubled the peak RSS of a
// short command. What hako adds over runc is a create-without-join lifecycle:
// Create builds and configures the directories with no process in them,
// and the container process joins by itself (JoinFiles for v1, UnifiedPath
// as a clone3 CLONE_INTO_CGROUP target for cgroup2), so no pid is ever
// written on the container's behalf.
//
// Resource code reads and writes interface files through the small cgfs
// interface (file.go), so unit tests can check the exact file/value
// sequences without root; errors name the controller, the file and the
// value written.
//
// Cost matters: every `run` and `delete` goes through here. So v1 paths are
// computed in this package with the library's rules (paths.go) from one
// read of /proc/self/cgroup and the mount table, directories are made with
// one mkdir each, resources nobody set are not written, and an empty cgroup
// is removed with one rmdir per directory.
//
// Hybrid caveat: on hosts that mount the v1 controllers plus a cgroup2 tree
// at /sys/fs/cgroup/unified, the container gets a directory in both. The v1
// hierarchies carry almost all limits, while the unified directory is used
// for process tracking and for controllers that exist only there (typically
// hugetlb, whose limits then go to hugetlb.<size>.max). A process placed
// only in one of the two trees is invisible to the other, which is why Pids
// looks at both.
package cgroups
