package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	"golang.org/x/sys/unix"
)

// pidSources lists the directories Pids reads: the cgroup2 one, which
// CLONE_INTO_CGROUP fills, plus one v1 hierarchy, because on hybrid hosts a
// process that joined only via the tasks files is invisible in cgroup2.
func (m *Manager) pidSources() []string {
	var dirs []string
	if m.unified != "" {
		dirs = append(dirs, m.unified)
	}
	for _, name := range []string{"pids", "freezer", "memory", "devices"} {
		if p := m.v1[name]; p != "" {
			dirs = append(dirs, p)
			break
		}
	}
	return dirs
}

// Pids returns every process in the container's cgroup, sub-cgroups
// included, sorted. A cgroup that no longer exists has no processes.
func (m *Manager) Pids() ([]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var all []int
	for _, dir := range m.pidSources() {
		pids, err := allPids(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, wrapErr("", err)
		}
		all = append(all, pids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// allPids is cgroups.GetAllPids: the processes in dir and its sub-cgroups.
// A container rarely has sub-cgroups, and a cgroup directory's link count
// (2 plus its subdirectories, kept by kernfs) says whether it has any, so
// usually one cgroup.procs read does instead of a directory walk.
func allPids(dir string) ([]int, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Nlink == 2 {
		return readProcs(dir)
	}
	return cgroups.GetAllPids(dir)
}

// readProcs is the library's readProcsFile (GetAllPids' per-directory
// read): a threaded cgroup refuses cgroup.procs with ENOTSUP and lists its
// threads in cgroup.threads instead.
func readProcs(dir string) ([]int, error) {
	pids, err := readPidFile(dir, cgroups.CgroupProcesses)
	if errors.Is(err, unix.ENOTSUP) {
		return readPidFile(dir, "cgroup.threads")
	}
	return pids, err
}

func readPidFile(dir, file string) ([]int, error) {
	f, err := cgroups.OpenFile(dir, file, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []int
	s := bufio.NewScanner(f)
	for s.Scan() {
		if t := s.Text(); t != "" {
			pid, err := strconv.Atoi(t)
			if err != nil {
				return nil, err
			}
			out = append(out, pid)
		}
	}
	return out, s.Err()
}

// Freeze stops every process in the container (v1 freezer, or cgroup.freeze
// in the cgroup2 directory, which also works on the hybrid tree when the v1
// freezer is missing).
func (m *Manager) Freeze() error { return m.setFrozen(cgroups.Frozen) }

// Thaw resumes a frozen container.
func (m *Manager) Thaw() error { return m.setFrozen(cgroups.Thawed) }

func (m *Manager) setFrozen(state cgroups.FreezerState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.v1["freezer"]; p != "" {
		return wrapErr("freezer", (&fs.FreezerGroup{}).Set(p, &cgroups.Resources{Freezer: state}))
	}
	fm, err := m.v2Manager()
	if err != nil {
		return err
	}
	if err := fm.Freeze(state); err != nil {
		return wrapErr("freezer", err)
	}
	return nil
}

// Paused reports whether the container itself (not an ancestor) is frozen.
func (m *Manager) Paused() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		state cgroups.FreezerState
		err   error
	)
	if p := m.v1["freezer"]; p != "" {
		state, err = (&fs.FreezerGroup{}).GetState(p)
	} else {
		fm, ferr := m.v2Manager()
		if ferr != nil {
			return false, ferr
		}
		state, err = fm.GetFreezerState()
	}
	if err != nil {
		return false, wrapErr("freezer", err)
	}
	return state == cgroups.Frozen, nil
}

func (m *Manager) v2Manager() (*fs2.Manager, error) {
	if m.unified == "" {
		return nil, &Error{Controller: "freezer", Err: ErrNotMounted}
	}
	fm, err := fs2.NewManager(&cgroups.Cgroup{Resources: &cgroups.Resources{}, Rootless: m.rootless}, m.unified)
	if err != nil {
		return nil, wrapErr("freezer", err)
	}
	return fm, nil
}

// Destroy removes the container's directories, sub-cgroups first. Killed
// processes get about a second to finish leaving (and rmdir's EBUSY is
// retried as long again); processes still present after that are an error
// and nothing is removed. Directories that are already gone are fine.
//
// An empty cgroup, the usual case by the time a container is deleted, is
// removed with one rmdir per directory: the kernel refuses (EBUSY) to remove
// a cgroup that has processes or sub-cgroups, so rmdir itself is the check,
// and only a refusal leads to the careful path (waiting, then removing
// sub-cgroups) for the directories left. The cgroup2 directory goes first,
// then the v1 ones in the order a joining process enters them (JoinFiles):
// every process hako starts is in the cgroup2 directory from birth, or, on
// a host without one, in the first v1 directory before any other, so a
// container with processes is refused by the first rmdir and keeps all its
// directories. Only a process some other tool moved into a later v1
// directory alone can be found after earlier, empty directories are gone.
func (m *Manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dirs := m.allDirs() // sorted: the JoinFiles order
	if m.unified != "" {
		dirs = slices.DeleteFunc(dirs, func(d string) bool { return d == m.unified })
		dirs = slices.Insert(dirs, 0, m.unified)
	}
	// In case one owned directory is nested in another, the inner one
	// goes first: ordering by the number of owned directories inside
	// each does that and keeps the order above among unrelated ones.
	inside := make(map[string]int, len(dirs))
	for _, d := range dirs {
		for _, o := range dirs {
			if strings.HasPrefix(o, d+"/") {
				inside[d]++
			}
		}
	}
	slices.SortStableFunc(dirs, func(a, b string) int { return inside[a] - inside[b] })
	for i, d := range dirs {
		switch err := rmdirNoRetry(d); err {
		case nil, unix.ENOENT:
		default:
			return m.destroyCarefully(dirs[i:])
		}
	}
	return nil
}

func rmdirNoRetry(dir string) error {
	for {
		if err := unix.Rmdir(dir); err != unix.EINTR {
			return err
		}
	}
}

// destroyCarefully waits for dirs to empty and removes them with their
// sub-cgroups.
func (m *Manager) destroyCarefully(dirs []string) error {
	if pids := waitEmpty(dirs, time.Second); len(pids) > 0 {
		// rmdir would retry EBUSY per directory for nothing.
		return &Error{Err: fmt.Errorf("cannot remove cgroup: still has processes %v", pids)}
	}
	var errs []error
	for _, d := range dirs {
		if err := cgroups.RemovePath(d); err != nil {
			errs = append(errs, wrapErr(m.controllerOfDir(d), err))
		}
	}
	return errors.Join(errs...)
}

// waitEmpty gives just-killed processes up to timeout to leave dirs and
// returns those still there.
func waitEmpty(dirs []string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		var pids []int
		for _, d := range dirs {
			p, _ := cgroups.GetAllPids(d) // a missing dir has no processes
			pids = append(pids, p...)
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			slices.Sort(pids)
			return slices.Compact(pids)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// controllerOfDir names the hierarchy a directory belongs to, for errors.
func (m *Manager) controllerOfDir(dir string) string {
	var names []string
	for k, v := range m.v1 {
		if v == dir {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}
