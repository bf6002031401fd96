package ns

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Info is one namespace of a process as nsfs describes it.
type Info struct {
	Kind  string `json:"kind"`  // name under /proc/<pid>/ns
	Inode uint64 `json:"inode"` // the namespace's identity
	Host  bool   `json:"host"`  // the same as PID 1's
	// HostUnknown: PID 1's namespace of this kind is not readable here
	// and its inode not fixed by this kernel, so Host says nothing.
	HostUnknown bool   `json:"host_unknown,omitempty"`
	ForChildren uint64 `json:"for_children,omitempty"`
	// ForChildrenPending: the process unshared a new PID namespace that
	// has no init yet (no child forked since unshare(CLONE_NEWPID)); the
	// kernel then answers ENOENT for pid_for_children and the namespace
	// has no inode to show.
	ForChildrenPending bool `json:"for_children_pending,omitempty"`
	// Owner is the inode of the owning user namespace (NS_GET_USERNS); for
	// a user namespace, its parent.
	Owner uint64 `json:"owner_userns,omitempty"`
	// Parent is the inode of the parent (NS_GET_PARENT), for PID and user
	// namespaces.
	Parent uint64 `json:"parent,omitempty"`
	Err    string `json:"error,omitempty"`
}

// ProcPath returns /proc/<pid>/ns/<name>.
func ProcPath(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/ns/" + name
}

// Describe reads every namespace kind of pid, compared with host (usually
// PID 1).
func Describe(pid, host int) []Info {
	var out []Info
	for _, k := range Kinds {
		i := Info{Kind: k.Proc}
		ino, err := Inode(ProcPath(pid, k.Proc))
		if err != nil {
			i.Err = err.Error()
			out = append(out, i)
			continue
		}
		i.Inode = ino
		if h, ok := HostInode(host, k.Proc); ok {
			i.Host = h == ino
		} else {
			i.HostUnknown = true
		}
		if k.Proc == "pid" || k.Proc == "time" {
			c, err := Inode(ProcPath(pid, k.Proc+"_for_children"))
			switch {
			case err == nil && c != ino:
				i.ForChildren = c
			case errors.Is(err, os.ErrNotExist):
				i.ForChildrenPending = true
			}
		}
		i.Owner, _ = Related(ProcPath(pid, k.Proc), unix.NS_GET_USERNS)
		if k.Proc == "pid" || k.Proc == "user" {
			i.Parent, _ = Related(ProcPath(pid, k.Proc), unix.NS_GET_PARENT)
			if k.Proc == "user" {
				// NS_GET_USERNS of a user namespace is its parent as well.
				i.Owner = i.Parent
			}
		}
		out = append(out, i)
	}
	return out
}

// Related returns the inode of the namespace an nsfs ioctl (NS_GET_USERNS,
// NS_GET_PARENT) names; 0 and an error where the kernel refuses (EPERM:
// the answer lies outside the caller's namespaces, as for the initial
// ones).
func Related(path string, req uint) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fd, err := unix.IoctlRetInt(int(f.Fd()), req)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// NSpid returns the process's PID in each PID namespace it is in, from
// the outermost (the reader's) to its own.
func NSpid(pid int) ([]int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
			var out []int
			for _, f := range strings.Fields(v) {
				n, err := strconv.Atoi(f)
				if err != nil {
					return nil, fmt.Errorf("NSpid %q: %w", v, err)
				}
				out = append(out, n)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("no NSpid in /proc/%d/status", pid)
}

// initialInodes are the fixed nsfs inodes of the kernel's initial
// namespaces (include/linux/proc_ns.h: PROC_*_INIT_INO), used when PID 1's
// ns links cannot be read (a non-dumpable init, a VM's agent as PID 1).
var initialInodes = map[string]uint64{
	"ipc": 0xEFFFFFFF, "uts": 0xEFFFFFFE, "user": 0xEFFFFFFD, "pid": 0xEFFFFFFC,
	"cgroup": 0xEFFFFFFB, "time": 0xEFFFFFFA, "net": 0xEFFFFFF9, "mnt": 0xEFFFFFF8,
}

// HostInode returns the inode of host's namespace of the given kind, or
// the initial namespace's where host's cannot be read (an unprivileged
// reader) and the kernel fixes it.
func HostInode(host int, kind string) (uint64, bool) {
	if h, err := Inode(ProcPath(host, kind)); err == nil {
		return h, true
	}
	if host == 1 && fixedInode(kind) {
		h, ok := initialInodes[kind]
		return h, ok
	}
	return 0, false
}

// fixedInode reports whether this kernel gives the initial namespace of
// kind its fixed inode. The network and mount namespaces got theirs with
// the 6.18 namespace rework; before, theirs were allocated like any other
// (from 0xF0000000 up: on 6.1 an unprivileged reader would otherwise take
// every network namespace for a private one).
func fixedInode(kind string) bool {
	if kind != "net" && kind != "mnt" {
		return true
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 18
}
