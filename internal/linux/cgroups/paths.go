package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// This file computes v1 cgroup paths the way runc's cgroup library
// (github.com/opencontainers/cgroups fs.NewManager: fs.initPaths /
// subsysPath) does, with the same results, but from one read
// of /proc/self/cgroup and a process-wide copy of the cgroup lines of
// mountinfo. The library re-reads /proc/self/cgroup and probes
// /sys/fs/cgroup/<name> with four or five syscalls for each of its fifteen
// subsystems, which made New cost more than a millisecond per container.

// namePrefix marks a named v1 hierarchy without controllers
// ("name=systemd") in /proc/self/cgroup and in mount options.
const namePrefix = "name="

// v1SubsystemNames is the library's subsystem list (fs.subsystems), in its
// order: the first error in this order is the one New reports.
var v1SubsystemNames = []string{
	"cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
	"net_cls", "net_prio", "perf_event", "freezer", "rdma", "name=systemd", "misc",
}

// ownCgroups reads /proc/self/cgroup into subsystem -> path, exactly like
// the library's ParseCgroupFile (which is what the library consults, once per
// subsystem). It is read on each use, not cached: unlike the mount table
// (which the library also caches for the life of the process), our own
// cgroup can change.
func ownCgroups() (map[string]string, error) {
	data, err := readProcFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	own := make(map[string]string)
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r") // as bufio.ScanLines
		parts := strings.SplitN(line, ":", 3)
		if len(parts) < 3 {
			return nil, fmt.Errorf("invalid cgroup entry: must contain at least two colons: %v", line)
		}
		for sub := range strings.SplitSeq(parts[1], ",") {
			own[sub] = parts[2]
		}
	}
	return own, nil
}

// readProcFile reads a /proc file with plain syscalls. os.ReadFile costs
// about twice as many here: it stats the file for a size /proc does not
// report, and registers pollable files such as mountinfo with the runtime's
// poller (and removes them again).
func readProcFile(path string) ([]byte, error) {
	fd, err := openNoEINTR(path, unix.O_RDONLY)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// v1Mount is a "cgroup" mountinfo entry with its superblock options (the
// controllers, "name=...", ...) split once.
type v1Mount struct {
	*mountinfo.Info
	opts []string
}

var (
	mountsOnce sync.Once
	mountsErr  error
	v1Mounts   []v1Mount // in mountinfo order
)

// cgroupV1Mounts returns the "cgroup" (v1) entries of this thread's
// mountinfo, read once per process: the library caches the same list for
// the same reason (the cgroup mounts do not change under a runtime).
// Only lines naming a cgroup filesystem are parsed, which matters on hosts
// with thousands of mounts.
func cgroupV1Mounts() ([]v1Mount, error) {
	mountsOnce.Do(func() {
		v1Mounts, mountsErr = readCgroupV1Mounts()
	})
	return v1Mounts, mountsErr
}

func readCgroupV1Mounts() ([]v1Mount, error) {
	// thread-self, like the library: a thread may have its own mount
	// namespace.
	runtime.LockOSThread()
	data, err := readProcFile("/proc/thread-self/mountinfo")
	runtime.UnlockOSThread()
	if err != nil {
		if data, err = readProcFile("/proc/self/mountinfo"); err != nil {
			return nil, err
		}
	}
	return parseCgroupV1Mounts(data)
}

// parseCgroupV1Mounts picks the "cgroup" entries out of mountinfo text.
func parseCgroupV1Mounts(data []byte) ([]v1Mount, error) {
	// The fstype field follows the "-" separator field, so a cgroup line
	// always contains " - cgroup"; the parser then decides exactly.
	var keep []byte
	for line := range bytes.Lines(data) {
		if bytes.Contains(line, []byte(" - cgroup")) {
			keep = append(keep, line...)
		}
	}
	infos, err := mountinfo.GetMountsFromReader(bytes.NewReader(keep), mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		return nil, err
	}
	mounts := make([]v1Mount, len(infos))
	for i, mi := range infos {
		mounts[i] = v1Mount{mi, strings.Split(mi.VFSOptions, ",")}
	}
	return mounts, nil
}

// findMount is the library's findCgroupMountpointAndRootFromMI: the first
// v1 mount below prefix whose options name the subsystem.
func findMount(mounts []v1Mount, prefix, subsystem string) (*mountinfo.Info, error) {
	for _, mi := range mounts {
		if strings.HasPrefix(mi.Mountpoint, prefix) && slices.Contains(mi.opts, subsystem) {
			return mi.Info, nil
		}
	}
	return nil, &notFoundError{subsystem}
}

// ownController is the library's getControllerPath.
func ownController(own map[string]string, subsystem string) (string, error) {
	if p, ok := own[subsystem]; ok {
		return p, nil
	}
	if p, ok := own[namePrefix+subsystem]; ok {
		return p, nil
	}
	return "", &notFoundError{subsystem}
}

// v1Paths returns what the library's fs.NewManager(&Cgroup{Path or Name: ...,
// Resources: non-nil without SkipDevices}, nil).GetPaths() returns on a v1
// or hybrid host, for inner as computed by the library's path.Inner.
func v1Paths(inner string, own map[string]string) (map[string]string, error) {
	mounts, err := cgroupV1Mounts()
	if err != nil {
		return nil, err
	}
	root := func() (*v1Root, error) { return cgroupRootFor(mounts, own) }
	return computeV1Paths(mounts, own, inner, isHybrid(), root)
}

// computeV1Paths is v1Paths on a given mount table; hybrid says whether
// the unified tree is mounted, root finds the cgroup root.
func computeV1Paths(mounts []v1Mount, own map[string]string, inner string, hybrid bool, root func() (*v1Root, error)) (map[string]string, error) {
	names := v1SubsystemNames
	if hybrid {
		// The library adds the unified tree as subsystem "" (fs.init).
		names = append(slices.Clip(names), unifiedKey)
	}
	var r *v1Root
	if filepath.IsAbs(inner) {
		var err error
		if r, err = root(); err != nil {
			return nil, err
		}
	}
	paths := make(map[string]string, len(names))
	for _, name := range names {
		var p string
		var err error
		if r != nil {
			p, err = r.absPath(mounts, inner, name)
		} else {
			p, err = relPath(mounts, own, inner, name)
		}
		if err != nil {
			// As the library: a missing hierarchy is skipped, except
			// devices, whose absence is fatal for security reasons.
			if isNotFound(err) && name != "devices" {
				continue
			}
			if r == nil {
				// The library looks for the root first, whatever the
				// path; only its failure can come before this one.
				if _, rerr := root(); rerr != nil {
					return nil, rerr
				}
			}
			return nil, err
		}
		paths[name] = p
	}
	return paths, nil
}

// relPath is subsysPath for a relative inner path: below our own cgroup in
// that hierarchy (the library's GetOwnCgroupPath).
func relPath(mounts []v1Mount, own map[string]string, inner, name string) (string, error) {
	cg, err := ownController(own, name)
	if err != nil {
		return "", err
	}
	if name == "" {
		return filepath.Join(hybridRoot, inner), nil
	}
	mi, err := findMount(mounts, "", name)
	if err != nil {
		return "", err
	}
	// Nested containers see host paths in /proc/self/cgroup.
	rel, err := filepath.Rel(mi.Root, cg)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Join(mi.Mountpoint, rel), inner), nil
}

// v1Root is the library's cgroup root (fs.rootPath), which the library
// finds once per process too, with what absolute paths need to repeat its
// per-subsystem probe of /sys/fs/cgroup (tryDefaultPath) more cheaply.
type v1Root struct {
	dir string
	// entries maps the names in /sys/fs/cgroup to their type, listed by
	// this New; nil leaves the probe to the library.
	entries map[string]os.FileMode
}

var (
	rootMu  sync.Mutex
	rootDir string
)

// cgroupRootFor returns the cgroup root and a fresh listing of
// /sys/fs/cgroup (one getdents instead of a failing lstat per subsystem
// that is not there).
func cgroupRootFor(mounts []v1Mount, own map[string]string) (*v1Root, error) {
	list, listErr := listDir(cgroupRoot)
	r := &v1Root{}
	if listErr == nil || errors.Is(listErr, os.ErrNotExist) {
		r.entries = make(map[string]os.FileMode, len(list))
		for _, e := range list {
			r.entries[e.Name()] = e.Type()
		}
	}
	if slices.ContainsFunc(mounts, func(mi v1Mount) bool { return mi.Mountpoint == cgroupRoot }) {
		r.entries = nil
	}
	rootMu.Lock()
	defer rootMu.Unlock()
	if rootDir == "" {
		if isDefaultRoot(list, listErr) {
			rootDir = cgroupRoot
		} else {
			// The library's slow path: the parent of the first cgroup
			// mount.
			ms := cgroupMountsFrom(mounts, own, false)
			if len(ms) < 1 {
				return nil, errors.New("no cgroup mount found in mountinfo")
			}
			dir := filepath.Dir(ms[0].Mountpoint)
			if _, err := os.Stat(dir); err != nil {
				return nil, err
			}
			rootDir = dir
		}
	}
	r.dir = rootDir
	return r, nil
}

// listDir lists a directory in directory order (Readdirnames' order).
func listDir(dir string) ([]os.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// isDefaultRoot is the library's tryDefaultCgroupRoot: /sys/fs/cgroup is
// the root when it is a tmpfs mount point whose first entry is a v1 cgroup
// mount. list is its listing.
func isDefaultRoot(list []os.DirEntry, listErr error) bool {
	var st, pst unix.Stat_t
	if unix.Lstat(cgroupRoot, &st) != nil || st.Mode&unix.S_IFDIR == 0 {
		return false
	}
	if unix.Lstat(filepath.Dir(cgroupRoot), &pst) != nil || st.Dev == pst.Dev {
		return false
	}
	var fst unix.Statfs_t
	if unix.Statfs(cgroupRoot, &fst) != nil || fst.Type != unix.TMPFS_MAGIC {
		return false
	}
	if listErr != nil || len(list) == 0 {
		return false
	}
	return unix.Statfs(filepath.Join(cgroupRoot, list[0].Name()), &fst) == nil && fst.Type == unix.CGROUP_SUPER_MAGIC
}

// absPath is subsysPath for an absolute inner path: from the hierarchy
// root, named by the base name of the hierarchy's mount point.
func (r *v1Root) absPath(mounts []v1Mount, inner, name string) (string, error) {
	mnt, err := r.mountpoint(mounts, name)
	if err != nil {
		return "", err
	}
	return filepath.Join(r.dir, filepath.Base(mnt), inner), nil
}

// mountpoint is the library's FindCgroupMountpoint(r.dir, name): first the probe
// of /sys/fs/cgroup/<name> (tryDefaultPath), then the mount table.
func (r *v1Root) mountpoint(mounts []v1Mount, name string) (string, error) {
	if name == "" {
		return hybridRoot, nil
	}
	// The probe only runs when the root is a prefix of /sys/fs/cgroup.
	if strings.HasPrefix(cgroupRoot, r.dir) {
		if r.entries == nil {
			return findMountpoint(mounts, r.dir, name)
		}
		sub := strings.TrimPrefix(name, namePrefix)
		typ, ok := r.entries[sub]
		switch {
		case !ok:
			// Nothing there: the probe fails.
		case typ.IsDir():
			// The probe wants a mount point (another device than
			// /sys/fs/cgroup) showing a v1 cgroup filesystem. A v1
			// cgroup mount listed at p, with statfs seeing a v1 cgroup
			// there (so nothing else is mounted over it), is exactly
			// that, unless /sys/fs/cgroup is a v1 cgroup mount itself
			// (possibly the same one): cgroupRootFor leaves the probe
			// to the library then.
			p := filepath.Join(cgroupRoot, sub)
			var fst unix.Statfs_t
			if slices.ContainsFunc(mounts, func(mi v1Mount) bool { return mi.Mountpoint == p }) &&
				unix.Statfs(p, &fst) == nil && fst.Type == unix.CGROUP_SUPER_MAGIC {
				return p, nil
			}
		default:
			// A symlink (cpu -> cpu,cpuacct): resolve it.
			return findMountpoint(mounts, r.dir, name)
		}
	}
	mi, err := findMount(mounts, r.dir, name)
	if err != nil {
		return "", err
	}
	return mi.Mountpoint, nil
}

// cgroupMount is one v1 hierarchy: where it is mounted, which part of it
// the mount shows, and its controllers (named hierarchies without the
// "name=" prefix).
type cgroupMount struct {
	Mountpoint string
	Root       string
	Subsystems []string
}

// cgroupMountsFrom is the library's GetCgroupMounts(all) on a v1 or hybrid
// host (getCgroupMountsHelper), from the cached mount table and a parsed
// /proc/self/cgroup.
func cgroupMountsFrom(mounts []v1Mount, own map[string]string, all bool) []cgroupMount {
	seen := make(map[string]bool, len(own))
	for s := range own {
		seen[s] = false
	}
	res := make([]cgroupMount, 0, len(seen))
	found := 0
	for _, mi := range mounts {
		m := cgroupMount{Mountpoint: mi.Mountpoint, Root: mi.Root}
		for _, opt := range mi.opts {
			s, known := seen[opt]
			if !known || (!all && s) {
				continue
			}
			seen[opt] = true
			m.Subsystems = append(m.Subsystems, strings.TrimPrefix(opt, namePrefix))
			found++
		}
		if len(m.Subsystems) > 0 || all {
			res = append(res, m)
		}
		if !all && found >= len(seen) {
			break
		}
	}
	return res
}

// findMountpoint is the library's FindCgroupMountpoint for a v1 or hybrid
// host: the mount point /sys/fs/cgroup/<name> names, if it is one
// (tryDefaultPath), else the first mount below root with the controller.
func findMountpoint(mounts []v1Mount, root, name string) (string, error) {
	if p := tryDefaultPath(root, name); p != "" {
		return p, nil
	}
	mi, err := findMount(mounts, root, name)
	if err != nil {
		return "", err
	}
	return mi.Mountpoint, nil
}

// tryDefaultPath is the library's probe of /sys/fs/cgroup/<name>, which
// must be a cgroup v1 mount point, resolving a symlink such as
// cpu -> cpu,cpuacct within /sys/fs/cgroup.
func tryDefaultPath(root, name string) string {
	if !strings.HasPrefix(cgroupRoot, root) {
		return ""
	}
	path, ok := scopedJoin(cgroupRoot, strings.TrimPrefix(name, namePrefix))
	if !ok {
		return ""
	}
	var st, pst unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return ""
	}
	// A mount point: another device than its parent.
	if unix.Lstat(filepath.Dir(path), &pst) != nil || st.Dev == pst.Dev {
		return ""
	}
	if fsType(path) != unix.CGROUP_SUPER_MAGIC {
		return ""
	}
	return path
}

// scopedJoin joins root and name resolving symlinks as if root were "/",
// so the result cannot leave root (what the library's securejoin does for
// this probe). ok is false for a symlink loop.
func scopedJoin(root, name string) (string, bool) {
	cur := "" // resolved part below root, "" or starting with "/"
	rest := name
	for links := 0; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "/")
		switch part {
		case "", ".":
			continue
		case "..":
			if cur = filepath.Dir(cur); cur == "/" || cur == "." {
				cur = ""
			}
			continue
		}
		next := cur + "/" + part
		target, err := os.Readlink(root + next)
		if err != nil {
			cur = next // not a link, or not there: taken as it is
			continue
		}
		if links++; links > 255 {
			return "", false
		}
		if filepath.IsAbs(target) {
			cur = ""
		}
		rest = target + "/" + rest
	}
	return root + cur, true
}
