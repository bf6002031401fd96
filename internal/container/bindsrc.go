package container

import (
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
)

// bindSources opens the source of each plain bind mount for an init in a
// user namespace, as runc does (1.1's mount sources, 1.2's mountFd): the
// init looks paths up as the container's root, which maps to an
// unprivileged host uid, so a source below a directory only host root may
// enter would be out of its reach.
//
// Each source is resolved through /proc/<init>/root, that is in the
// container's mount namespace while it is still a copy of ours, with our
// credentials. The init then clones the tree from the fd with open_tree
// itself: the clone keeps the locks that the copy into a less privileged
// namespace put on the mounts, so an rbind's submounts can be neither
// unmounted to reveal what they cover nor made writable. A tree cloned
// here, in our namespace, would carry no locks.
//
// A source that cannot be opened here is left to the init, which reports
// why as before: magic links (a /proc/<pid>/ns/* source) are refused by
// RESOLVE_IN_ROOT, yet nsfs binds work from the init.
func bindSources(s *specs.Spec, bundle string, initPid int) map[int]*os.File {
	lx := s.Linux
	if lx == nil || !ns.Has(lx.Namespaces, specs.UserNamespace) || !ns.Has(lx.Namespaces, specs.MountNamespace) {
		return nil
	}
	root, err := os.OpenFile("/proc/"+strconv.Itoa(initPid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer root.Close()
	srcs := map[int]*os.File{}
	for i, m := range s.Mounts {
		o := rootfs.ParseOptions(m.Options)
		if !(o.Bind || m.Type == "bind") || o.IDMap || len(m.UIDMappings) > 0 {
			continue
		}
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
		// RESOLVE_IN_ROOT: an absolute symlink in the path must resolve
		// in the container's namespace too, or the fd would name a
		// mount the init cannot clone.
		fd, err := unix.Openat2(int(root.Fd()), src, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT,
		})
		if err != nil {
			continue
		}
		srcs[i] = os.NewFile(uintptr(fd), "bind-source")
	}
	return srcs
}
