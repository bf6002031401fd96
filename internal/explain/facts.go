package explain

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Facts are what the table's conditions look at: the caller's state and
// the sysctls that restrict namespaces, read when an error is explained.
type Facts struct {
	Errno                 unix.Errno
	Euid                  int
	Threads               int
	Chrooted              bool
	Seccomp               int // 0 none, 1 strict, 2 filter
	InitUserNS            bool
	Setgroups             string // of the target process, when known
	MapWritten            bool
	PIDForChildrenDiffers bool
	ProcOvermounted       bool
	NewUIDMapNoPriv       bool
	MaxUserNS             int // -1 unknown
	UnprivUsernsClone     int // -1 when the sysctl does not exist
	AppArmorRestrict      int // -1 when the sysctl does not exist
	Tags                  []string
}

// Tag reports whether the caller tagged the failure with t (a condition
// only the caller knows, such as "not-mountpoint" for pivot_root).
func (f *Facts) Tag(t string) bool {
	for _, x := range f.Tags {
		if x == t {
			return true
		}
	}
	return false
}

// ReadInt reads an integer sysctl or proc file; -1 when absent.
func ReadInt(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return -1
	}
	return n
}

// StatusField returns a field of /proc/<pid>/status ("self" for pid 0).
func StatusField(pid int, name string) string {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	data, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Gather reads the facts about this process and host.
func Gather() *Facts {
	f := &Facts{
		Euid:              os.Geteuid(),
		MaxUserNS:         ReadInt("/proc/sys/user/max_user_namespaces"),
		UnprivUsernsClone: ReadInt("/proc/sys/kernel/unprivileged_userns_clone"),
		AppArmorRestrict:  ReadInt("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
	}
	f.Threads, _ = strconv.Atoi(StatusField(0, "Threads"))
	f.Seccomp, _ = strconv.Atoi(StatusField(0, "Seccomp"))
	f.Chrooted = Chrooted()
	f.InitUserNS = InitUserNS()
	if data, err := os.ReadFile("/proc/self/setgroups"); err == nil {
		f.Setgroups = strings.TrimSpace(string(data))
	}
	// Namespaces are per thread: thread-self is the caller's.
	a, errA := os.Readlink("/proc/thread-self/ns/pid")
	b, errB := os.Readlink("/proc/thread-self/ns/pid_for_children")
	f.PIDForChildrenDiffers = errA == nil && errB == nil && a != b
	f.ProcOvermounted = procOvermounted()
	f.NewUIDMapNoPriv = !Privileged("/usr/bin/newuidmap")
	return f
}

// Chrooted reports whether this process's root is not its mount
// namespace's root (the kernel's current_chrooted()). Compared with
// /proc/1/root where that is readable, which is the same test for
// processes in PID 1's mount namespace.
func Chrooted() bool {
	// Mounts outside the root are hidden from mountinfo: a chroot into a
	// directory that is not a mount shows no mount at "/".
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		top := false
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) > 4 && f[4] == "/" {
				top = true
			}
		}
		if !top {
			return true
		}
	}
	var self, root unix.Stat_t
	if unix.Stat("/", &self) != nil {
		return false
	}
	// /proc/self/mountinfo's "/" entry is the chroot's view; the root of
	// the namespace is reachable through /proc/1/root only when PID 1
	// shares it. Fall back to "not chrooted" where unknown.
	if unix.Stat("/proc/1/root/", &root) != nil {
		return false
	}
	same1, _ := os.Readlink("/proc/1/ns/mnt")
	same2, _ := os.Readlink("/proc/self/ns/mnt")
	if same1 != same2 {
		return false
	}
	return self.Dev != root.Dev || self.Ino != root.Ino
}

// InitUserNS reports whether this process is in the initial user namespace.
func InitUserNS() bool {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true
	}
	f := strings.Fields(string(data))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

// procOvermounted reports whether anything is mounted below /proc other
// than the usual /proc/sys/fs/binfmt_misc, which keeps a fresh proc from
// being mounted inside a user namespace.
func procOvermounted() bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], "/proc/") && !strings.HasPrefix(f[4], "/proc/sys/fs/binfmt_misc") {
			return true
		}
	}
	return false
}

// Privileged reports whether an executable can act beyond its caller: the
// setuid bit or a security.capability xattr.
func Privileged(path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	if st.Mode()&os.ModeSetuid != 0 {
		return true
	}
	sz, err := unix.Getxattr(path, "security.capability", nil)
	return err == nil && sz > 0
}

// MapFacts are Gather's facts for a write to pid's uid_map or gid_map
// (kind "uid" or "gid"): the target's setgroups and whether its map is
// written already, which decide between the EPERM causes.
func MapFacts(pid int, kind string) *Facts {
	f := Gather()
	proc := "/proc/" + strconv.Itoa(pid) + "/"
	f.Setgroups = ""
	if data, err := os.ReadFile(proc + "setgroups"); err == nil {
		f.Setgroups = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile(proc + kind + "_map"); err == nil {
		f.MapWritten = strings.TrimSpace(string(data)) != ""
	}
	return f
}
