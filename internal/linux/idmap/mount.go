package idmap

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/nsenter"
)

// Tree makes the detached, idmapped bind mount of an idmap/ridmap
// mount (the successor of seed 004's shiftfs). Making one needs privilege
// over the source filesystem's user namespace (the host's), which only
// hako has: the container's init cannot. The init later moves it into
// place.
func Tree(m *rootfs.Mount, initPid int) (*os.File, error) {
	o := m.Options
	src := m.Source
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if o.Recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, flags)
	if err != nil {
		return nil, fmt.Errorf("open_tree: %w", err)
	}
	tree := os.NewFile(uintptr(fd), "idmap-tree")
	var userns *os.File
	if len(m.UIDMappings) > 0 {
		userns, err = mappedUserns(m.UIDMappings, m.GIDMappings)
	} else {
		userns, err = os.Open("/proc/" + strconv.Itoa(initPid) + "/ns/user")
	}
	if err != nil {
		tree.Close()
		return nil, err
	}
	defer userns.Close()
	at := uint(unix.AT_EMPTY_PATH)
	if o.RIDMap {
		at |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(fd, "", at, &attr); err != nil {
		tree.Close()
		hint := ""
		if err == unix.EINVAL {
			hint = " (the source filesystem may not support idmapped mounts, or a submount needs ridmap)"
		}
		return nil, fmt.Errorf("mount_setattr MOUNT_ATTR_IDMAP: %w%s", err, hint)
	}
	return tree, nil
}

// mappedUserns returns a user namespace with the given maps, held by a
// process that waits in nsexec.c for a request that never comes; the
// namespace lives on through the returned fd after that process exits.
func mappedUserns(uids, gids []specs.LinuxIDMapping) (*os.File, error) {
	// A socket, not a pipe: nsexec.c reads frames with recvmsg. Nothing is
	// ever sent on it; the holder waits until our end closes.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	r, w := os.NewFile(uintptr(fds[0]), "idmap-holder-sync"), os.NewFile(uintptr(fds[1]), "idmap-holder-parent")
	defer r.Close()
	cmd := exec.Command("/proc/self/exe", "idmap-holder")
	cmd.Env = []string{nsenter.EnvSync + "=3"}
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL}
	for _, m := range uids {
		cmd.SysProcAttr.UidMappings = append(cmd.SysProcAttr.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	for _, m := range gids {
		cmd.SysProcAttr.GidMappings = append(cmd.SysProcAttr.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	if err := nsenter.WithCallerSlack(cmd.Start); err != nil {
		w.Close()
		return nil, fmt.Errorf("start user namespace holder: %w", err)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user")
	w.Close()
	cmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("open user namespace of holder: %w", err)
	}
	return f, nil
}
