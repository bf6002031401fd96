package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v1Controller is the part of the library's (unexported) v1 subsystem
// interface we drive one controller at a time, so that errors can name the
// controller and nothing joins a process.
type v1Controller interface {
	Apply(path string, r *cgroups.Resources, pid int) error
	Set(path string, r *cgroups.Resources) error
}

type v1Subsystem struct {
	name string
	ctl  v1Controller
	// isSet reports whether r needs this controller; it must cover every
	// field the controller's Set consults, since Set is skipped otherwise.
	isSet func(*cgroups.Resources) bool
}

// v1Subsystems returns the library's v1 subsystems in its order (cpuset
// first so parents get cpus/mems before anything else). It builds fresh
// values each time because some of them cache per-path state.
func v1Subsystems() []v1Subsystem {
	never := func(*cgroups.Resources) bool { return false }
	return []v1Subsystem{
		{"cpuset", &fs.CpusetGroup{}, func(r *cgroups.Resources) bool { return r.CpusetCpus != "" || r.CpusetMems != "" }},
		{"devices", &fs.DevicesGroup{}, func(r *cgroups.Resources) bool { return !r.SkipDevices }},
		{"memory", &fs.MemoryGroup{}, func(r *cgroups.Resources) bool {
			return r.Memory != 0 || r.MemoryReservation != 0 || r.MemorySwap != 0 || r.OomKillDisable ||
				(r.MemorySwappiness != nil && int64(*r.MemorySwappiness) != -1)
		}},
		{"cpu", &fs.CpuGroup{}, func(r *cgroups.Resources) bool {
			return r.CpuShares != 0 || r.CpuQuota != 0 || r.CpuPeriod != 0 || r.CpuBurst != nil ||
				r.CpuRtRuntime != 0 || r.CpuRtPeriod != 0 || r.CPUIdle != nil
		}},
		{"cpuacct", &fs.CpuacctGroup{}, never},
		{"pids", &fs.PidsGroup{}, func(r *cgroups.Resources) bool { return r.PidsLimit != nil }},
		{"blkio", &fs.BlkioGroup{}, func(r *cgroups.Resources) bool {
			return r.BlkioWeight != 0 || r.BlkioLeafWeight != 0 || len(r.BlkioWeightDevice) > 0 ||
				len(r.BlkioThrottleReadBpsDevice) > 0 || len(r.BlkioThrottleWriteBpsDevice) > 0 ||
				len(r.BlkioThrottleReadIOPSDevice) > 0 || len(r.BlkioThrottleWriteIOPSDevice) > 0
		}},
		{"hugetlb", &fs.HugetlbGroup{}, func(r *cgroups.Resources) bool { return len(r.HugetlbLimit) > 0 }},
		{"net_cls", &fs.NetClsGroup{}, func(r *cgroups.Resources) bool { return r.NetClsClassid != 0 }},
		{"net_prio", &fs.NetPrioGroup{}, func(r *cgroups.Resources) bool { return len(r.NetPrioIfpriomap) > 0 }},
		{"perf_event", &fs.PerfEventGroup{}, never},
		{"freezer", &fs.FreezerGroup{}, func(r *cgroups.Resources) bool { return r.Freezer != cgroups.Undefined }},
		{"rdma", &fs.RdmaGroup{}, func(r *cgroups.Resources) bool { return len(r.Rdma) > 0 }},
		// The library's NameGroup swallows mkdir errors; we want them, since
		// the container's init will try to join these directories.
		{"name=systemd", dirOnly{}, never},
		{"misc", dirOnly{}, never},
	}
}

type dirOnly struct{}

func (dirOnly) Apply(path string, _ *cgroups.Resources, _ int) error { return os.MkdirAll(path, 0o755) }
func (dirOnly) Set(string, *cgroups.Resources) error                 { return nil }

// v2Controllers maps the cgroup2 controllers fs2 may write to the test for
// whether a resource set needs them, to report ErrNotMounted up front
// instead of a bare ENOENT on some interface file.
var v2Controllers = []struct {
	name  string
	isSet func(*cgroups.Resources) bool
}{
	{"cpuset", func(r *cgroups.Resources) bool { return r.CpusetCpus != "" || r.CpusetMems != "" }},
	{"cpu", func(r *cgroups.Resources) bool {
		return r.CpuWeight != 0 || r.CpuQuota != 0 || r.CpuPeriod != 0 || r.CPUIdle != nil || r.CpuBurst != nil
	}},
	{"io", func(r *cgroups.Resources) bool {
		return r.BlkioWeight != 0 || len(r.BlkioWeightDevice) > 0 ||
			len(r.BlkioThrottleReadBpsDevice) > 0 || len(r.BlkioThrottleWriteBpsDevice) > 0 ||
			len(r.BlkioThrottleReadIOPSDevice) > 0 || len(r.BlkioThrottleWriteIOPSDevice) > 0
	}},
	{"memory", func(r *cgroups.Resources) bool { return r.Memory != 0 || r.MemorySwap != 0 || r.MemoryReservation != 0 }},
	{"pids", func(r *cgroups.Resources) bool { return r.PidsLimit != nil }},
	{"hugetlb", func(r *cgroups.Resources) bool { return len(r.HugetlbLimit) > 0 }},
	{"rdma", func(r *cgroups.Resources) bool { return len(r.Rdma) > 0 }},
}

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
	if m.v2 {
		return m.createV2(&t)
	}
	return m.createV1(&t)
}

// Update applies new resources to an existing container. Fields left unset
// keep their current value; devices are only touched when r lists some.
func (m *Manager) Update(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	var res *cgroups.Resources
	var err error
	if len(r.Devices) > 0 {
		// The kernel side is replaced wholesale, so the new list must
		// include the defaults just as the initial one did.
		res, err = ToLibResources(r)
	} else {
		res, err = convertResources(r)
		res.SkipDevices = true
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
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
	for _, s := range v1Subsystems() {
		p, ok := m.v1[s.name]
		if !ok {
			continue
		}
		if err := m.applyV1(t, s, p); err != nil {
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

// applyV1 does what the library's Apply(p, m.res, -1) does for one
// controller, which for almost all of them is just os.MkdirAll. The
// directories are made here so the tracker learns exactly which ones are
// new (one mkdir each instead of stat calls before and after), and cpuset
// gets its cpus and mems with fewer reads than the library needs.
func (m *Manager) applyV1(t *tracker, s v1Subsystem, p string) error {
	switch s.name {
	case "devices":
		if m.res.SkipDevices {
			return nil // the library makes no directory then
		}
	case "cpu":
		if m.res.CpuRtPeriod != 0 || m.res.CpuRtRuntime != 0 {
			// Real-time settings go in right away; the library
			// does that (after its own MkdirAll, a no-op then).
			if err := t.mkdirAll(p); err != nil {
				return err
			}
			return s.ctl.Apply(p, m.res, -1)
		}
	case "cpuset":
		if err := t.mkdirAll(p); err != nil {
			return err
		}
		return initCpuset(p, m.res, t)
	}
	return t.mkdirAll(p)
}

// forgivable mirrors the library: a rootless container on the default path
// just runs without the controllers it may not create.
func (m *Manager) forgivable(err error) bool {
	if !m.rootless || m.explicitPath {
		return false
	}
	return errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS) ||
		errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// checkV1 reports controllers r needs that the container has no directory
// for. hugetlb is satisfied by the unified tree on hybrid hosts.
func (m *Manager) checkV1(r *cgroups.Resources) error {
	for _, s := range v1Subsystems() {
		if m.v1[s.name] != "" || !s.isSet(r) {
			continue
		}
		// Device rules are best effort for rootless containers (runc
		// ignores their errors too): they cannot mknod anyway.
		if s.name == "devices" && m.rootless {
			continue
		}
		if s.name == "hugetlb" && m.unified != "" && unifiedHas("hugetlb") {
			continue
		}
		return &Error{Controller: s.name, Err: ErrNotMounted}
	}
	if len(r.Unified) > 0 && m.unified == "" {
		return &Error{Controller: "unified", Err: cgroups.ErrV1NoUnified}
	}
	return nil
}

func (m *Manager) setV1(r *cgroups.Resources) error {
	for _, s := range v1Subsystems() {
		p := m.v1[s.name]
		// A controller r sets nothing for would write nothing (isSet
		// lists every field its Set consults); skipping it saves the
		// read-only probes some of them make first.
		if p == "" || !s.isSet(r) {
			continue
		}
		if err := s.ctl.Set(p, r); err != nil {
			if m.rootless && s.name == "devices" && !errors.Is(err, cgroups.ErrDevicesUnsupported) {
				continue
			}
			return wrapErr(s.name, err)
		}
	}
	if m.unified == "" {
		return nil
	}
	if len(r.HugetlbLimit) > 0 && m.v1["hugetlb"] == "" {
		if err := enableUnified(m.unified, "hugetlb"); err != nil {
			return wrapErr("hugetlb", err)
		}
		if err := setHugetlbV2(m.unified, r.HugetlbLimit); err != nil {
			return wrapErr("hugetlb", err)
		}
	}
	return setUnifiedFiles(m.unified, r.Unified)
}

// unifiedHas reports whether the hybrid cgroup2 tree offers a controller.
func unifiedHas(name string) bool {
	data, err := cgroups.ReadFile(hybridRoot, "cgroup.controllers")
	return err == nil && slices.Contains(strings.Fields(data), name)
}

// enableUnified turns a controller on in every ancestor of dir in the hybrid
// tree, which cgroup2 requires before the controller's files appear in dir.
// Already-enabled levels are left alone so that nothing is written to
// cgroups that do not need it.
func enableUnified(dir, name string) error {
	if !unifiedHas(name) {
		return ErrNotMounted
	}
	rel, err := filepath.Rel(hybridRoot, filepath.Dir(dir))
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not below %s", dir, hybridRoot)
	}
	cur := hybridRoot
	for _, elem := range append([]string{"."}, strings.Split(rel, "/")...) {
		cur = filepath.Join(cur, elem)
		data, err := cgroups.ReadFile(cur, "cgroup.subtree_control")
		if err != nil {
			return err
		}
		if slices.Contains(strings.Fields(data), name) {
			continue
		}
		if err := cgroups.WriteFile(cur, "cgroup.subtree_control", "+"+name); err != nil {
			return err
		}
	}
	return nil
}

// setHugetlbV2 writes cgroup2 hugetlb limits, mirroring fs2 (which cannot
// be pointed at the hybrid tree): the reservation limit gets the same value
// where the kernel has it, so that reserved-but-unfaulted pages count too.
func setHugetlbV2(dir string, limits []*cgroups.HugepageLimit) error {
	skipRsvd := false
	for _, l := range limits {
		prefix := "hugetlb." + l.Pagesize
		val := fmt.Sprint(l.Limit)
		if err := cgroups.WriteFile(dir, prefix+".max", val); err != nil {
			return err
		}
		if skipRsvd {
			continue
		}
		if err := cgroups.WriteFile(dir, prefix+".rsvd.max", val); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return err
			}
			skipRsvd = true
		}
	}
	return nil
}

// setUnifiedFiles applies linux.resources.unified to a hybrid unified dir;
// on pure v2 fs2 does this itself.
func setUnifiedFiles(dir string, files map[string]string) error {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		if strings.Contains(k, "/") {
			return &Error{Controller: "unified", Err: fmt.Errorf("resource %q must be a file name", k)}
		}
		if err := cgroups.WriteFileByLine(dir, k, files[k]); err != nil {
			return wrapErr(controllerOfFile(k), err)
		}
	}
	return nil
}

func (m *Manager) createV2(t *tracker) error {
	t.note(m.unified)
	cg := &cgroups.Cgroup{Resources: m.res, Rootless: m.rootless}
	if err := fs2.CreateCgroupPath(m.unified, cg); err != nil {
		if m.forgivable(err) && !needsV2Controllers(m.res) {
			m.unified = ""
			return nil
		}
		return wrapV2Err(err)
	}
	if err := m.checkV2(m.res); err != nil {
		return err
	}
	return m.setV2(m.res)
}

func needsV2Controllers(r *cgroups.Resources) bool {
	for _, c := range v2Controllers {
		if c.isSet(r) {
			return true
		}
	}
	return false
}

// checkV2 compares what r needs with what the parent delegated to dir.
func (m *Manager) checkV2(r *cgroups.Resources) error {
	data, err := cgroups.ReadFile(m.unified, "cgroup.controllers")
	if err != nil {
		return wrapErr("", err)
	}
	have := strings.Fields(data)
	for _, c := range v2Controllers {
		if c.isSet(r) && !slices.Contains(have, c.name) {
			return &Error{Controller: c.name, Err: fmt.Errorf("%w in %s", ErrNotMounted, m.unified)}
		}
	}
	return nil
}

func (m *Manager) setV2(r *cgroups.Resources) error {
	// fs2 reports this conversion error without a file name; checking it
	// here lets it carry the memory label.
	if r.Memory != 0 || r.MemorySwap != 0 {
		if _, err := cgroups.ConvertMemorySwapToCgroupV2Value(r.MemorySwap, r.Memory); err != nil {
			return &Error{Controller: "memory", Err: err}
		}
	}
	// Devices go separately: an eBPF failure carries no file name either.
	rest := *r
	rest.SkipDevices = true
	fm, err := fs2.NewManager(&cgroups.Cgroup{Resources: &rest, Rootless: m.rootless}, m.unified)
	if err != nil {
		return wrapErr("", err)
	}
	if err := fm.Set(&rest); err != nil {
		return wrapV2Err(err)
	}
	if r.SkipDevices {
		return nil
	}
	if cgroups.DevicesSetV2 == nil {
		return &Error{Controller: "devices", Err: cgroups.ErrDevicesUnsupported}
	}
	if err := cgroups.DevicesSetV2(m.unified, r); err != nil {
		if m.rootless && !errors.Is(err, cgroups.ErrDevicesUnsupported) {
			return nil
		}
		return &Error{Controller: "devices", Err: err}
	}
	return nil
}

// tracker remembers the directories Create made (including missing
// parents) so a failed Create leaves the hierarchy as it found it.
type tracker struct{ dirs []string }

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

// note records the missing directories on the way to dir, for code that
// leaves the mkdir to the library (fs2).
func (t *tracker) note(dir string) {
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			return
		}
		if !slices.Contains(t.dirs, d) {
			t.dirs = append(t.dirs, d)
		}
	}
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
