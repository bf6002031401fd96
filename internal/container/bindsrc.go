package container

import (
	"fmt"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/plan"
)

// mountFds opens what the plan's mount steps take as fds, attaching each
// to its step: the idmapped trees, and the bind sources of an init in a
// user namespace.
func mountFds(pl *plan.Plan, s *specs.Spec, initPid int) ([]*os.File, error) {
	var files []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	var root *os.File
	if lx := s.Linux; lx != nil && ns.Has(lx.Namespaces, specs.UserNamespace) && ns.Has(lx.Namespaces, specs.MountNamespace) {
		if r, err := os.OpenFile("/proc/"+strconv.Itoa(initPid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			root = r
			defer root.Close()
		}
	}
	for i := range pl.Steps {
		st := &pl.Steps[i]
		if st.Op != plan.OpMount || st.Mount == nil {
			continue
		}
		var f *os.File
		switch st.Mount.Kind {
		case rootfs.KindIDMap:
			tree, err := idmap.Tree(st.Mount, initPid)
			if err != nil {
				return fail(fmt.Errorf("%s idmapped bind of %s on %s: %w", st.Value, st.Mount.Source, st.Mount.Destination, err))
			}
			f = tree
		case rootfs.KindBind:
			if root != nil {
				f = bindSource(root, st.Mount.Source)
			}
		}
		if f == nil {
			continue
		}
		st.FD = len(files)
		files = append(files, f)
		if len(files) > frame.MaxFds {
			return fail(fmt.Errorf("pass %d mount fds to the container process: %w (at most %d)", len(files), unix.EMSGSIZE, frame.MaxFds))
		}
	}
	return files, nil
}

// bindSource opens the source of a plain bind mount for an init in a user
// namespace, as runc does (1.1's mount sources, 1.2's mountFd): the init
// looks paths up as the container's root, which maps to an unprivileged
// host uid, so a source below a directory only host root may enter would
// be out of its reach.
//
// Each source is resolved through /proc/<init>/root, that is in the
// container's mount namespace while it is still a copy of ours, with our
// credentials. The init then clones the tree from the fd with open_tree
// itself: the clone keeps the locks that the copy into a less privileged
// namespace put on the mounts, so an rbind's submounts can be neither
// unmounted to reveal what they cover nor made writable. A tree cloned
// here, in our namespace, would carry no locks.
//
// A source that cannot be opened here (nil) is left to the init, which
// reports why as before: magic links (a /proc/<pid>/ns/* source) are
// refused by RESOLVE_IN_ROOT, yet nsfs binds work from the init.
func bindSource(root *os.File, src string) *os.File {
	// RESOLVE_IN_ROOT: an absolute symlink in the path must resolve
	// in the container's namespace too, or the fd would name a
	// mount the init cannot clone.
	fd, err := unix.Openat2(int(root.Fd()), src, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT,
	})
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "bind-source")
}
