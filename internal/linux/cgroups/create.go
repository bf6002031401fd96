package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Create makes the container's directories and applies its resources
// without placing any process in them. On failure everything it created is
// removed again.
func (m *Manager) Create() (retErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var t tracker
	defer func() {
		if retErr != nil {
			t.rollback()
		}
	}()
	if m.unit != nil {
		// The unit first: its cgroup is where the directories below go
		// (see sdUnit for the whole order).
		res, err := m.startUnit()
		if err != nil {
			return err
		}
		saved := m.res
		m.res = res
		defer func() {
			m.res = saved
			if retErr != nil {
				_ = m.stopUnit()
			}
		}()
	}
	if m.v2 {
		return m.createV2(&t)
	}
	return m.createV1(&t)
}

// Update applies new resources to an existing container. Fields left unset
// keep their current value; device rules are left as create made them, as
// runc's update leaves them.
func (m *Manager) Update(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	res, err := updateResources(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unit != nil {
		// Properties first, then the files, as runc's systemd Set.
		if res, err = m.updateUnit(res); err != nil {
			return err
		}
	}
	if m.v2 {
		if m.unified == "" {
			return wrapErr("", errNoCgroup)
		}
		if err := m.checkV2(res); err != nil {
			return err
		}
		return m.setV2(res)
	}
	if err := m.checkV1(res); err != nil {
		return err
	}
	return m.setV1(res)
}

func (m *Manager) createV1(t *tracker) error {
	// Checking first means an impossible configuration creates nothing.
	if err := m.checkV1(m.res); err != nil {
		return err
	}
	for _, s := range v1Subsystems {
		p, ok := m.v1[s.name]
		if !ok {
			continue
		}
		if err := m.applyV1(t, s.name, p); err != nil {
			if m.forgivable(err) {
				delete(m.v1, s.name)
				continue
			}
			return wrapErr(s.name, err)
		}
	}
	if m.unified != "" {
		if err := t.mkdirAll(m.unified); err != nil {
			if !m.forgivable(err) {
				return wrapErr("", err)
			}
			m.unified = ""
		}
	}
	// Again, now that forgiven rootless failures may have dropped some.
	if err := m.checkV1(m.res); err != nil {
		return err
	}
	return m.setV1(m.res)
}

// applyV1 does what runc's v1 Apply(p, res, -1) does for one controller,
// which for almost all of them is just os.MkdirAll. The directories are
// made here so the tracker learns exactly which ones are new (one mkdir
// each instead of stat calls before and after), and cpuset gets its cpus
// and mems with fewer reads than runc needs.
func (m *Manager) applyV1(t *tracker, name, p string) error {
	switch name {
	case "devices":
		if m.res.skipDevices {
			return nil // runc makes no directory then
		}
	case "cpu":
		if err := t.mkdirAll(p); err != nil {
			return err
		}
		// Real-time settings go in before any process can join.
		return setRtSched(m.fs, p, m.res.spec.CPU)
	case "cpuset":
		if err := t.mkdirAll(p); err != nil {
			return err
		}
		return initCpuset(m.fs, p, m.res.spec.CPU, t)
	}
	return t.mkdirAll(p)
}

// forgivable mirrors runc: a rootless container on the default path just
// runs without the controllers it may not create.
func (m *Manager) forgivable(err error) bool {
	if !m.rootless || m.explicitPath {
		return false
	}
	return errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS) ||
		errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// checkV1 reports controllers r needs that the container has no directory
// for, as ErrNotMounted naming the controller: runc would only find out
// at the first write, and say less. hugetlb is satisfied by the unified
// tree on hybrid hosts.
func (m *Manager) checkV1(r *resources) error {
	for _, s := range v1Subsystems {
		if m.v1[s.name] != "" || !s.isNeeded(r) {
			continue
		}
		// Device rules are best effort for rootless containers (runc
		// ignores their errors too): they cannot mknod anyway.
		if s.name == "devices" && m.rootless {
			continue
		}
		if s.name == "hugetlb" && m.unified != "" && unifiedHas(m.fs, "hugetlb") {
			continue
		}
		return &Error{Controller: s.name, Err: ErrNotMounted}
	}
	if len(r.spec.Unified) > 0 && m.unified == "" {
		return &Error{Controller: "unified", Err: errV1NoUnified}
	}
	return nil
}

func (m *Manager) setV1(r *resources) error {
	for _, s := range v1Subsystems {
		p := m.v1[s.name]
		// A controller r sets nothing for would write nothing; skipping
		// it saves the probes some setters make first.
		if p == "" || s.set == nil || !s.isSet(r) {
			continue
		}
		if err := s.set(m.fs, p, r); err != nil {
			if m.rootless && s.name == "devices" {
				continue
			}
			return wrapErr(s.name, err)
		}
	}
	if m.unified == "" {
		return nil
	}
	if hugetlbSet(r.spec) && m.v1["hugetlb"] == "" {
		if err := enableUnified(m.fs, m.unified, "hugetlb"); err != nil {
			return wrapErr("hugetlb", err)
		}
		if err := setHugetlbV2(m.fs, m.unified, r); err != nil {
			return wrapErr("hugetlb", err)
		}
	}
	return setUnified(m.fs, m.unified, r.spec.Unified)
}

// unifiedHas reports whether the hybrid cgroup2 tree offers a controller.
func unifiedHas(f cgfs, name string) bool {
	data, err := f.read(hybridRoot, "cgroup.controllers")
	return err == nil && slices.Contains(strings.Fields(data), name)
}

// enableUnified turns a controller on in every ancestor of dir in the hybrid
// tree, which cgroup2 requires before the controller's files appear in dir.
// Already-enabled levels are left alone so that nothing is written to
// cgroups that do not need it.
func enableUnified(f cgfs, dir, name string) error {
	if !unifiedHas(f, name) {
		return ErrNotMounted
	}
	rel, err := filepath.Rel(hybridRoot, filepath.Dir(dir))
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not below %s", dir, hybridRoot)
	}
	cur := hybridRoot
	for _, elem := range append([]string{"."}, strings.Split(rel, "/")...) {
		cur = filepath.Join(cur, elem)
		data, err := f.read(cur, "cgroup.subtree_control")
		if err != nil {
			return err
		}
		if slices.Contains(strings.Fields(data), name) {
			continue
		}
		if err := f.write(cur, "cgroup.subtree_control", "+"+name); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) createV2(t *tracker) error {
	if err := createV2Path(m.fs, t, m.unified, m.res); err != nil {
		if m.forgivable(err) && !needsV2Controllers(m.fs, m.res) {
			m.unified = ""
			return nil
		}
		return wrapErr("", err)
	}
	if err := m.checkV2(m.res); err != nil {
		return err
	}
	return m.setV2(m.res)
}

// needsV2Controllers is runc's needAnyControllers: whether r sets a limit
// for a controller the host offers. Without one, a rootless container that
// may not create its cgroup can run without it.
func needsV2Controllers(f cgfs, r *resources) bool {
	data, err := f.read(cgroupRoot, "cgroup.controllers")
	if err != nil {
		return false
	}
	avail := strings.Fields(data)
	for _, c := range v2Controllers {
		if c.isSet(r.spec) && slices.Contains(avail, c.name) {
			return true
		}
	}
	return false
}

// checkV2 compares what r needs with what the parent delegated to dir.
func (m *Manager) checkV2(r *resources) error {
	data, err := m.fs.read(m.unified, "cgroup.controllers")
	if err != nil {
		return wrapErr("", err)
	}
	have := strings.Fields(data)
	for _, c := range v2Controllers {
		if c.isSet(r.spec) && !slices.Contains(have, c.name) {
			return &Error{Controller: c.name, Err: fmt.Errorf("%w in %s", ErrNotMounted, m.unified)}
		}
	}
	return nil
}

// setV2 writes r in fs2's order; the device filter goes where fs2 puts it,
// between cpu and cpuset.
func (m *Manager) setV2(r *resources) error {
	for _, c := range v2Controllers {
		if c.name == "cpuset" {
			if err := setDevicesV2(m.unified, r); err != nil && !m.rootless {
				return wrapErr("devices", err)
			}
		}
		if !c.isSet(r.spec) {
			continue
		}
		if err := c.set(m.fs, m.unified, r); err != nil {
			return wrapErr(c.name, err)
		}
	}
	return setUnified(m.fs, m.unified, r.spec.Unified)
}

// tracker remembers the directories Create made (including missing
// parents) so a failed Create leaves the hierarchy as it found it.
type tracker struct {
	dirs []string
	// mk replaces os.Mkdir in mkdir, for unit tests of the cgroup2 path
	// creation; nil is os.Mkdir.
	mk func(dir string, perm os.FileMode) error
}

// mkdir makes one directory, recording it if it is new; an existing one is
// not ours to remove.
func (t *tracker) mkdir(dir string) error {
	mk := t.mk
	if mk == nil {
		mk = os.Mkdir
	}
	err := mk(dir, 0o755)
	if err == nil {
		t.dirs = append(t.dirs, dir)
		return nil
	}
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	return err
}

// mkdirAll is os.MkdirAll, recording each directory it creates. It starts
// with the mkdir itself: for a new cgroup that is the only syscall, and
// EEXIST means the directory is not ours to remove.
func (t *tracker) mkdirAll(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if err == nil {
		t.dirs = append(t.dirs, dir)
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		if parent := filepath.Dir(dir); parent != dir {
			if perr := t.mkdirAll(parent); perr != nil {
				return perr
			}
			if err = os.Mkdir(dir, 0o755); err == nil {
				t.dirs = append(t.dirs, dir)
				return nil
			}
		}
	}
	// Like os.MkdirAll, an existing directory is success and anything
	// else existing there is ENOTDIR.
	if st, serr := os.Stat(dir); serr == nil {
		if st.IsDir() {
			return nil
		}
		return &os.PathError{Op: "mkdir", Path: dir, Err: unix.ENOTDIR}
	}
	return err
}

func (t *tracker) created(dir string) bool { return slices.Contains(t.dirs, dir) }

func (t *tracker) rollback() {
	// Deepest first: a cgroup with children cannot be removed.
	slices.SortFunc(t.dirs, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	for _, d := range t.dirs {
		_ = unix.Rmdir(d)
	}
}
