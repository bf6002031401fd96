package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

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
	return m.withoutHolder(slices.Compact(all)), nil
}

// allPids returns the processes in dir and its sub-cgroups.
// A container rarely has sub-cgroups, and a cgroup directory's link count
// (2 plus its subdirectories, kept by kernfs) says whether it has any, so
// usually one cgroup.procs read does instead of a directory walk.
func allPids(dir string) ([]int, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Nlink == 2 {
		return readProcs(dir)
	}
	return walkPids(dir)
}

// walkPids is the library's GetAllPids: the processes of dir and of every
// cgroup below it. A sub-cgroup removed during the walk has none.
func walkPids(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			return nil
		}
		if err == nil {
			var ps []int
			ps, err = readProcs(p)
			pids = append(pids, ps...)
		}
		if err != nil && p != dir && (errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV)) {
			return nil
		}
		return err
	})
	return pids, err
}

// readProcs reads one directory's processes, as the library's
// readProcsFile: a threaded cgroup refuses cgroup.procs with ENOTSUP and
// lists its threads in cgroup.threads instead.
func readProcs(dir string) ([]int, error) {
	pids, err := readPidFile(dir, "cgroup.procs")
	if errors.Is(err, unix.ENOTSUP) {
		return readPidFile(dir, "cgroup.threads")
	}
	return pids, err
}

func readPidFile(dir, file string) ([]int, error) {
	data, err := hostFS{}.read(dir, file)
	if err != nil {
		return nil, err
	}
	var out []int
	for line := range strings.Lines(data) {
		if t := strings.TrimSuffix(line, "\n"); t != "" {
			pid, err := strconv.Atoi(t)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", cgroupFile(dir, file), err)
			}
			out = append(out, pid)
		}
	}
	return out, nil
}

// Freeze stops every process in the container (v1 freezer, or cgroup.freeze
// in the cgroup2 directory, which also works on the hybrid tree when the v1
// freezer is missing).
func (m *Manager) Freeze() error { return m.setFrozen(true) }

// Thaw resumes a frozen container.
func (m *Manager) Thaw() error { return m.setFrozen(false) }

func (m *Manager) setFrozen(freeze bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.v1["freezer"]; p != "" {
		if freeze {
			return wrapErr("freezer", freezeV1(m.fs, p))
		}
		return wrapErr("freezer", thawV1(m.fs, p))
	}
	if m.unified == "" {
		return &Error{Controller: "freezer", Err: ErrNotMounted}
	}
	return wrapErr("freezer", setFrozenV2(m.fs, m.unified, freeze))
}

// Paused reports whether the container itself (not an ancestor) is frozen.
func (m *Manager) Paused() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		paused bool
		err    error
	)
	switch {
	case m.v1["freezer"] != "":
		paused, err = pausedV1(m.fs, m.v1["freezer"])
	case m.unified != "":
		paused, err = pausedV2(m.fs, m.unified)
	default:
		return false, &Error{Controller: "freezer", Err: ErrNotMounted}
	}
	if err != nil {
		return false, wrapErr("freezer", err)
	}
	return paused, nil
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
	if m.unit != nil {
		// systemd removes the unit's cgroup with the unit; what is
		// left (v1 directories systemd does not manage) goes below.
		// As runc, the directories are removed even if the stop failed.
		if err := m.stopUnit(); err != nil {
			return errors.Join(err, m.removeDirs())
		}
	}
	return m.removeDirs()
}

func (m *Manager) removeDirs() error {
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
		if err := removePath(d); err != nil {
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
			p, _ := walkPids(d) // a missing dir has no processes
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

// removePath is the library's RemovePath: rmdir, and if that fails, remove
// the sub-cgroups first and retry with EBUSY retried a while (processes
// just killed may still be leaving). A directory already gone is fine.
func removePath(dir string) error {
	if rmdirRetry(dir, false) == nil {
		return nil
	}
	// Reading the directory also tells a missing directory (a read-only
	// cgroupfs answers rmdir with EROFS even then) from a real failure.
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removePath(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return rmdirRetry(dir, true)
}

func rmdirRetry(dir string, retry bool) error {
	delay, tries := time.Millisecond, 10
	for {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, err == unix.ENOENT:
			return nil
		case err == unix.EINTR:
			continue
		case err == unix.EBUSY && retry && tries > 0:
			time.Sleep(delay)
			delay *= 2
			tries--
			continue
		}
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
}

// KillAll writes cgroup.kill (Linux 5.14) in the container's cgroup2
// directory, as runc 1.2+ does for SIGKILL: the kernel kills every process
// of the cgroup and its sub-cgroups at once, forks racing with it included,
// with no freeze and no pid list to go stale. It reports whether that
// covered the whole container: on a pure v2 host it did; on a hybrid host
// the unified directory may not hold a process that joined only through v1
// files (runc 1.5 leaves such a process running), so the caller still
// signals the v1 hierarchies' processes.
// ErrNotExist (no unified directory, or a kernel without cgroup.kill) means
// nothing was done and the caller uses the freezer path.
func (m *Manager) KillAll() (complete bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unified == "" {
		return false, os.ErrNotExist
	}
	if err := m.fs.write(m.unified, "cgroup.kill", "1"); err != nil {
		return false, err
	}
	return m.v2 || len(m.v1) == 0, nil
}
