// Package ns owns Linux namespaces: the spec's namespace kinds, their clone
// flags, the files under /proc/<pid>/ns that name them, and reading which
// namespaces a process is in (seed 001: nsfs, and pid_for_children, which
// shows where a process's future children go after unshare(CLONE_NEWPID)).
package ns

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Kind describes one namespace kind.
type Kind struct {
	Type specs.LinuxNamespaceType
	Flag uintptr // CLONE_NEW*
	Proc string  // name under /proc/<pid>/ns
}

// Kinds lists every kind in the order a joining process enters them: the
// user namespace first (it owns the others), mount last (it changes how
// later paths resolve).
var Kinds = []Kind{
	{specs.UserNamespace, unix.CLONE_NEWUSER, "user"},
	{specs.IPCNamespace, unix.CLONE_NEWIPC, "ipc"},
	{specs.UTSNamespace, unix.CLONE_NEWUTS, "uts"},
	{specs.NetworkNamespace, unix.CLONE_NEWNET, "net"},
	{specs.PIDNamespace, unix.CLONE_NEWPID, "pid"},
	{specs.CgroupNamespace, unix.CLONE_NEWCGROUP, "cgroup"},
	{specs.TimeNamespace, unix.CLONE_NEWTIME, "time"},
	{specs.MountNamespace, unix.CLONE_NEWNS, "mnt"},
}

// FlagNames names the CLONE_NEW* bits of flags, in Kinds' order ("user,mnt"),
// for logs; bits that are not namespaces show as hex.
func FlagNames(flags uintptr) string {
	var names []string
	for _, k := range Kinds {
		if flags&k.Flag != 0 {
			names = append(names, k.Proc)
			flags &^= k.Flag
		}
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	return strings.Join(names, ",")
}

// Lookup returns the kind of a spec namespace type.
func Lookup(t specs.LinuxNamespaceType) (Kind, bool) {
	for _, k := range Kinds {
		if k.Type == t {
			return k, true
		}
	}
	return Kind{}, false
}

// Has reports whether the config lists a namespace of type t (new or joined).
func Has(nss []specs.LinuxNamespace, t specs.LinuxNamespaceType) bool {
	for _, n := range nss {
		if n.Type == t {
			return true
		}
	}
	return false
}

// IsNew reports whether the config asks for a new namespace of type t.
func IsNew(nss []specs.LinuxNamespace, t specs.LinuxNamespaceType) bool {
	for _, n := range nss {
		if n.Type == t {
			return n.Path == ""
		}
	}
	return false
}

// Split turns the config's namespaces into the clone flags of new ones and
// the paths of those to join, in the order Kinds gives.
func Split(nss []specs.LinuxNamespace) (unshare uintptr, join []string, err error) {
	for _, k := range Kinds {
		for _, n := range nss {
			if n.Type != k.Type {
				continue
			}
			if n.Path == "" {
				unshare |= k.Flag
				continue
			}
			if err := CheckPath(n.Path, k); err != nil {
				return 0, nil, err
			}
			join = append(join, n.Path)
		}
	}
	return unshare, join, nil
}

// CheckPath verifies that path is a namespace file of kind k, so that a
// wrong path fails here with its name rather than in setns.
func CheckPath(path string, k Kind) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", k.Type, err)
	}
	defer f.Close()
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("namespace %s: %s is not a namespace file: %w", k.Type, path, err)
	}
	if uintptr(t) != k.Flag {
		return fmt.Errorf("namespace %s: %s is a namespace of another kind", k.Type, path)
	}
	return nil
}

// PathsOf returns the /proc/<pid>/ns files of every namespace kind the config
// lists, in join order: what `exec` enters to stand beside the init.
func PathsOf(pid int, nss []specs.LinuxNamespace) []string {
	var paths []string
	for _, k := range Kinds {
		if Has(nss, k.Type) {
			paths = append(paths, filepath.Join("/proc", fmt.Sprint(pid), "ns", k.Proc))
		}
	}
	return paths
}

// Inode returns the namespace identity (the nsfs inode) of a /proc ns link.
func Inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
