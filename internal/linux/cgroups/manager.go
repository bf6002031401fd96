package cgroups

import (
	"golang.org/x/sys/unix"

	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/linux/cgroups/systemd"
)

const (
	cgroupRoot    = "/sys/fs/cgroup"
	hybridRoot    = "/sys/fs/cgroup/unified"
	unifiedKey    = ""
	tasksFile     = "tasks"
	unifiedDirKey = "unified"
)

// Config describes the cgroup of one container.
type Config struct {
	ID          string                // container id; names the cgroup when CgroupsPath is empty
	CgroupsPath string                // linux.cgroupsPath: "", absolute, or relative to our own cgroup
	Resources   *specs.LinuxResources // may be nil
	Rootless    bool
	// Devices is linux.devices. Its only effect on the cgroup is runc's:
	// a default rule for a node the spec lists itself (same path) is
	// dropped, so that node is reachable only if resources.devices allows
	// it. runc adds no allow rule for the listed nodes, and neither do we:
	// a container given /dev/fuse without a rule for 10:229 cannot open it
	// under runc either.
	Devices []specs.LinuxDevice
	// Systemd selects the systemd driver (--systemd-cgroup): CgroupsPath
	// is then "slice:prefix:name" and the cgroup is a unit's.
	Systemd bool
	// Annotations may hold org.systemd.property.* unit properties.
	Annotations map[string]string
	// Warn reports what systemd cannot express (nil: silent).
	Warn func(format string, args ...any)
}

// Manager handles one container's cgroup directories. It is safe for
// concurrent use.
type Manager struct {
	mu sync.Mutex

	v2       bool // pure cgroup2 host
	rootless bool
	// explicitPath records a user-chosen cgroupsPath: like runc, permission
	// problems are only forgiven for rootless containers on the default path.
	explicitPath bool
	res          *resources
	fs           cgfs // hostFS; a recorder in unit tests

	v1      map[string]string // v1 hierarchy name ("memory", "name=systemd", ...) -> dir
	unified string            // cgroup2 dir: the whole cgroup on v2, the unified tree on hybrid

	// own is /proc/self/cgroup as New read it (nil after Load), kept so
	// that Mounts need not read it again.
	own map[string]string

	// unit is the systemd driver's unit; nil under cgroupfs.
	unit *sdUnit
	// unitSub is the sub-cgroup of the unit this manager is for (WithSub),
	// as systemd takes it in AttachProcessesToUnit: "" for the unit's own.
	unitSub string
}

// MountSource describes one filesystem a "cgroup" mount inside the
// container must show.
type MountSource struct {
	Dir      string   // sub-directory of the cgroup mount; "" for a pure v2 host
	HostPath string   // the container's own cgroup dir on the host, to bind-mount
	Type     string   // "cgroup" or "cgroup2"
	Symlinks []string // names (siblings of Dir) to link to Dir for co-mounted controllers
}

// New computes the container's cgroup paths; it creates nothing.
func New(cfg Config) (*Manager, error) {
	inner := cfg.CgroupsPath
	var unit *sdUnit
	if cfg.Systemd {
		// The unit's cgroup, as an absolute path from the hierarchy
		// roots: what runc's systemd driver hands its fs driver.
		var err error
		if unit, inner, err = newSystemd(cfg, isUnified()); err != nil {
			return nil, err
		}
		cfg.CgroupsPath = inner
	}
	if inner == "" {
		inner = cfg.ID
	}
	// A path resolving to a hierarchy root, or to our own cgroup, would
	// make the container share (and later remove limits from) a cgroup it
	// does not own.
	if c := cleanPath(inner); c == "" || c == "/" || c == "." {
		return nil, fmt.Errorf("cgroup: invalid cgroup path %q (id %q)", cfg.CgroupsPath, cfg.ID)
	}
	res, err := newResources(cfg.Resources, cfg.Devices)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		v2:           isUnified(),
		rootless:     cfg.Rootless,
		explicitPath: cfg.CgroupsPath != "",
		res:          res,
		fs:           hostFS{},
		v1:           map[string]string{},
		unit:         unit,
	}
	// runc's cgroupfs driver: the id is a name relative to our own cgroup,
	// an explicit path is used as is (absolute = from the hierarchy root).
	inner = cleanPath(inner)
	if m.v2 {
		if m.unified, err = v2Path(inner); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	} else {
		// The same paths runc's fs.NewManager computes (including which
		// hierarchies are mounted and the hybrid tree), without its
		// per-subsystem re-reading of /proc and probing of /sys/fs/cgroup.
		own, err := ownCgroups()
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		paths, err := v1Paths(inner, own)
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		m.own = own
		for k, v := range paths {
			if k == unifiedKey {
				m.unified = v
			} else {
				m.v1[k] = v
			}
		}
	}
	if err := m.checkPaths(); err != nil {
		if unit != nil {
			unit.close()
		}
		return nil, err
	}
	return m, nil
}

// Load rebuilds a manager from Paths() and Unit() persisted by an earlier
// command; a unit name selects the systemd driver (the user's instance
// when rootless, as at create).
func Load(paths map[string]string, rootless bool, unit string) (*Manager, error) {
	m := &Manager{
		v2:       isUnified(),
		rootless: rootless,
		// Later commands never re-apply the device list, so start empty.
		res: &resources{spec: &specs.LinuxResources{}, skipDevices: true},
		fs:  hostFS{},
		v1:  map[string]string{},
	}
	if unit != "" {
		// No connection yet: only update and delete need systemd.
		m.unit = &sdUnit{path: systemd.Path{Unit: unit}, rootless: rootless}
	}
	for k, v := range paths {
		switch {
		case k == unifiedKey:
			m.unified = v
		case m.v2:
			return nil, fmt.Errorf("cgroup: state has v1 controller %q but the host is cgroup v2", k)
		default:
			m.v1[k] = v
		}
	}
	if err := m.checkPaths(); err != nil {
		return nil, err
	}
	return m, nil
}

// checkPaths refuses directories outside the cgroup filesystems: Destroy
// removes them, so a tampered state file must not point anywhere else.
//
// A hierarchy may be mounted elsewhere than /sys/fs/cgroup (crun's advice on
// hybrid hosts is to mount hugetlb on /run/cg-hugetlb), so what counts
// outside it is the filesystem of the nearest existing ancestor.
func (m *Manager) checkPaths() error {
	for _, p := range m.allDirs() {
		if p != filepath.Clean(p) || !filepath.IsAbs(p) {
			return fmt.Errorf("cgroup: refusing unclean path %q", p)
		}
		if !strings.HasPrefix(p, cgroupRoot+"/") && !onCgroupFS(p) {
			return fmt.Errorf("cgroup: refusing path %q: not on a cgroup filesystem", p)
		}
	}
	return nil
}

func onCgroupFS(p string) bool {
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			return st.Type == unix.CGROUP_SUPER_MAGIC || st.Type == unix.CGROUP2_SUPER_MAGIC
		}
		if d == "/" {
			return false
		}
	}
}

// allDirs lists every directory the manager owns, de-duplicated because
// co-mounted controllers share one directory.
func (m *Manager) allDirs() []string {
	dirs := slices.Collect(maps.Values(m.v1))
	if m.unified != "" {
		dirs = append(dirs, m.unified)
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// Paths returns controller name -> directory, with key "" for the cgroup2
// directory; this is what the state store persists.
func (m *Manager) Paths() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := maps.Clone(m.v1)
	if m.unified != "" {
		p[unifiedKey] = m.unified
	}
	return p
}

// JoinFiles returns the "tasks" file of every v1 directory. A thread
// writing "0" there moves itself, avoiding the synchronize_rcu() stall a
// cgroup.procs write by another process costs.
func (m *Manager) JoinFiles() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	dirs := slices.Collect(maps.Values(m.v1))
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	files := make([]string, 0, len(dirs))
	for _, d := range dirs {
		files = append(files, filepath.Join(d, tasksFile))
	}
	return files
}

// UnifiedPath is the container's cgroup2 directory, or "" if there is none.
func (m *Manager) UnifiedPath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unified
}

// Mounts describes what the container's cgroup mount must contain.
func (m *Manager) Mounts() []MountSource {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.v2 {
		if m.unified == "" {
			return nil
		}
		return []MountSource{{HostPath: m.unified, Type: "cgroup2"}}
	}
	var out []MountSource
	// Only the host's mount table knows which controllers share a
	// hierarchy, and so which symlinks the container expects.
	mounts, err := m.cgroupMounts()
	if err == nil {
		for _, mnt := range mounts {
			src := MountSource{Dir: filepath.Base(mnt.Mountpoint), Type: "cgroup"}
			for _, ss := range mnt.Subsystems {
				if src.HostPath == "" {
					src.HostPath = m.v1[ss]
					if src.HostPath == "" {
						src.HostPath = m.v1[namePrefix+ss]
					}
				}
				if len(mnt.Subsystems) > 1 && ss != src.Dir {
					src.Symlinks = append(src.Symlinks, ss)
				}
			}
			if src.HostPath != "" {
				out = append(out, src)
			}
		}
	}
	if m.unified != "" {
		out = append(out, MountSource{Dir: unifiedDirKey, HostPath: m.unified, Type: "cgroup2"})
	}
	return out
}

// cgroupMounts is runc's GetCgroupMounts(false) for a v1 or hybrid host,
// from the mount table cached by the path computation.
func (m *Manager) cgroupMounts() ([]cgroupMount, error) {
	mounts, err := cgroupV1Mounts()
	if err != nil {
		return nil, err
	}
	own := m.own
	if own == nil {
		if own, err = ownCgroups(); err != nil {
			return nil, err
		}
	}
	return cgroupMountsFrom(mounts, own, false), nil
}

// cleanPath is runc's path sanitiser (utils.CleanPath): a relative path
// cannot climb above its base, an absolute one is cleaned.
func cleanPath(p string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	p = filepath.Clean("/" + p)
	rel, _ := filepath.Rel("/", p)
	return rel
}

// errNoCgroup is returned by operations on a manager without directories
// (a rootless container that could not get a cgroup).
var errNoCgroup = errors.New("container has no cgroup")

// v2Path is runc's fs2 default path on a cgroup2 host: an absolute inner
// path from the root, a relative one below the parent of our own cgroup
// (ours most probably has processes, so no controllers can be enabled for
// a child of it).
func v2Path(inner string) (string, error) {
	if filepath.IsAbs(inner) {
		return filepath.Join(cgroupRoot, inner), nil
	}
	own, err := ownCgroups()
	if err != nil {
		return "", err
	}
	p, ok := own[unifiedKey]
	if !ok {
		return "", errors.New("own cgroup2 path not found in /proc/self/cgroup")
	}
	return filepath.Join(cgroupRoot, filepath.Dir(p), inner), nil
}

var (
	unifiedOnce, hybridOnce sync.Once
	unifiedMode, hybridMode bool
)

// IsUnified reports a pure cgroup2 host, whose controllers are all
// cgroup2's.
func IsUnified() bool { return isUnified() }

// isUnified reports a pure cgroup2 host, probed once per process as runc
// does (the mode does not change under a running system).
func isUnified() bool {
	unifiedOnce.Do(func() { unifiedMode = fsType(cgroupRoot) == unix.CGROUP2_SUPER_MAGIC })
	return unifiedMode
}

// isHybrid reports a v1 host that also mounts a cgroup2 tree at
// /sys/fs/cgroup/unified.
func isHybrid() bool {
	hybridOnce.Do(func() { hybridMode = fsType(hybridRoot) == unix.CGROUP2_SUPER_MAGIC })
	return hybridMode
}

// fsType is the filesystem magic of path, 0 if it cannot be had.
func fsType(path string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return 0
	}
	return int64(st.Type)
}
