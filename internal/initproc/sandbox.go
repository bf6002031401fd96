package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// verifyStep checks, from inside and as the process that is about to exec,
// that every requested property is in effect; it writes the receipt to the
// parent's pipe whatever the outcome, and fails the sandbox when a check
// fails: a sandbox that silently runs unconfined is worse than none.
func verifyStep(a *applier, s *plan.Step) error {
	fd := a.plan.Fds.Receipt
	var checks []receipt.Check
	if err := json.Unmarshal(s.Data, &checks); err != nil {
		return fmt.Errorf("receipt checks: %w", err)
	}
	probe := receipt.Self()
	if a.cgroupRead != nil {
		probe.Cgroup = func(p string) (string, error) {
			v, ok := a.cgroupRead[p]
			if !ok {
				return "", errors.New("not read before the root change")
			}
			return v.val, v.err
		}
	}
	r := receipt.Verify(checks, probe)
	// Fds 0-2 are COMMAND's stdio, never the receipt.
	if fd > 2 {
		f := os.NewFile(uintptr(fd), "receipt")
		_ = json.NewEncoder(f).Encode(r)
		f.Close()
	}
	return r.Err()
}

// treeROStep: a path systemd lists itself (/boot, /efi) or one given as
// "-PATH" may be missing; any other missing path is an error.
func treeROStep(a *applier, s *plan.Step) error {
	if s.Value == "optional" {
		if _, err := os.Lstat(s.Path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	return rootfs.SetTreeReadonly(s.Path, s.ReadOnly)
}

// holdSourcesStep opens the bind sources of the mount steps that follow,
// here in the sandbox's mount namespace while it is still a copy of the
// host's: once the host's root is staged over sandbox.Stage (/tmp), a
// source below it would name the staged copy's directory instead, and the
// parent cannot open them for an unprivileged sandbox, whose init is not
// dumpable (no /proc/<pid>/root). A source that does not open is left to
// the mount step, which says why.
func holdSourcesStep(a *applier, s *plan.Step) error {
	for i := range a.plan.Steps {
		st := &a.plan.Steps[i]
		if st.Op == plan.OpOverlay && len(st.Layers) == 2 && st.FD < 0 {
			var fds []int
			for _, l := range st.Layers {
				if fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
					fds = append(fds, fd)
				}
			}
			if len(fds) == 2 {
				st.FD = len(a.fds)
				a.fds = append(a.fds, fds...)
			} else {
				for _, fd := range fds {
					unix.Close(fd)
				}
			}
			continue
		}
		if st.Op != plan.OpMount || st.Mount == nil || st.Mount.Kind != rootfs.KindBind || st.FD >= 0 {
			continue
		}
		fd, err := unix.Open(st.Mount.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		st.FD = len(a.fds)
		a.fds = append(a.fds, fd)
	}
	return nil
}

// cgroupProbeStep reads the resource limits the receipt checks while the
// host's /sys/fs/cgroup is still in reach: a RootDirectory= or an
// InaccessiblePaths=/sys leaves it behind. The process's cgroup and its
// limits were set before it ran, so they read the same later.
func cgroupProbeStep(a *applier, s *plan.Step) error {
	a.cgroupRead = map[string]cgroupValue{}
	for _, st := range a.plan.Steps {
		if st.Op != plan.OpVerify {
			continue
		}
		var checks []receipt.Check
		if err := json.Unmarshal(st.Data, &checks); err != nil {
			return fmt.Errorf("receipt checks: %w", err)
		}
		for _, c := range checks {
			if c.Kind == receipt.KindCgroup {
				v, err := receipt.ReadCgroup(c.Path)
				a.cgroupRead[c.Path] = cgroupValue{v, err}
			}
		}
	}
	return nil
}

// taskCgroup is where the reaper forks the program when it gets a cgroup
// of its own (hako sandbox's TasksMax=): fds, 0 when unset.
type taskCgroup struct {
	cgroup2        int // a cgroup2 directory, for CLONE_INTO_CGROUP
	v1Into, v1Back int // v1 "tasks" files: the program's cgroup, the init's
}

// taskCgroupStep takes the fd now: the directories are out of reach after
// the root change, where unused fds are closed.
func taskCgroupStep(a *applier, s *plan.Step) error {
	fd := a.takeFD(s)
	if fd < 0 {
		return errors.New("task cgroup step without an fd")
	}
	switch s.Value {
	case plan.TaskCgroup2:
		a.taskCg.cgroup2 = fd
	case plan.TaskCgroupV1Into:
		a.taskCg.v1Into = fd
	case plan.TaskCgroupV1Back:
		a.taskCg.v1Back = fd
	default:
		unix.Close(fd)
		return fmt.Errorf("task cgroup %q: unknown kind", s.Value)
	}
	return nil
}

// moveThread writes this thread's id to a v1 "tasks" file: on cgroup v1
// a thread moves alone, and a child forked by it is born where it is.
func moveThread(fd int, what string) error {
	if _, err := unix.Write(fd, []byte(fmt.Sprint(unix.Gettid()))); err != nil {
		return fmt.Errorf("move the init's thread to %s cgroup: %w", what, err)
	}
	return nil
}

// overlayStep puts an overlayfs over a directory of the root, on the
// layers held before the staging, or on a throwaway tmpfs.
func overlayStep(a *applier, s *plan.Step) error {
	if a.root == nil {
		return errors.New("overlay step without a bound root")
	}
	upper, work := -1, -1
	if len(s.Layers) == 2 {
		if s.FD < 0 || s.FD+1 >= len(a.fds) {
			for _, l := range s.Layers {
				if _, err := os.Stat(l); err != nil {
					return fmt.Errorf("overlay %s: layer %w", s.Path, err)
				}
			}
			return fmt.Errorf("overlay %s: layers %v not opened", s.Path, s.Layers)
		}
		upper, work = a.fds[s.FD], a.fds[s.FD+1]
		a.fds[s.FD], a.fds[s.FD+1] = -1, -1
	}
	return a.root.Overlay(s.Path, upper, work)
}
