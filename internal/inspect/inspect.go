// Package inspect shows a process's isolation as the kernel holds it: its
// namespaces (nsfs inodes, owners, parents, pid_for_children), identity
// (maps, ids, capabilities, no_new_privs, seccomp, LSM label, cgroup), and
// its mounts as it sees them, each with propagation, the host path it
// shows, its idmap and the flags it cannot change. Every seed is someone
// who could not see one of these: Apache's /tmp that was a bind of
// /tmp/systemd-private-…/tmp (seed 000), a mount namespace that leaked
// because / was shared (seed 003), pid_for_children after unshare (001).
//
// It reads through internal/linux/ns, idmap and rootfs; it changes nothing.
//
// The --json form is Report below; its field names are stable:
//
//	pid, container, command, nspid[]            the target, its PID per PID namespace (outermost first)
//	namespaces[]: kind inode host for_children owner_userns parent error
//	identity: uid/gid (real effective saved fs), groups, uid_map/gid_map/setgroups,
//	          caps {bounding effective permitted inheritable ambient: [CAP_...]},
//	          no_new_privs, seccomp (disabled|strict|filter), seccomp_filters, lsm_label
//	cgroup: paths {controller: path}, limits {file: value} (hako containers)
//	root, cwd                                   as the target resolves them
//	mount_ns_owner                              inode of the user ns owning its mount ns
//	mounts[]: id parent target source fstype root options super_options
//	          propagation {type peer_group master propagate_from}
//	          host_path (where the mount's content is in the host's tree; "" when the
//	          filesystem is not mounted on the host), bind (root is not the fs root),
//	          idmapped, idmap {uid_map gid_map} or idmap_error, locked[]
//	properties[]: {name value in_force unknown reason}, with --properties: every
//	          property of `hako sandbox`'s table that can be read back, in its order
package inspect

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/state"
)

// HostPID is the process whose namespaces count as the host's.
const HostPID = 1

// Report is everything inspect says about one process.
type Report struct {
	PID          int        `json:"pid"`
	Container    string     `json:"container,omitempty"`
	Command      string     `json:"command"`
	NSpid        []int      `json:"nspid"`
	Namespaces   []ns.Info  `json:"namespaces"`
	Identity     Identity   `json:"identity"`
	Cgroup       Cgroup     `json:"cgroup"`
	Root         string     `json:"root"`
	Cwd          string     `json:"cwd"`
	MountNSOwner uint64     `json:"mount_ns_owner,omitempty"`
	Mounts       []Mount    `json:"mounts"`
	Properties   []Property `json:"properties,omitempty"`
	Diff         *Diff      `json:"diff,omitempty"`
	Errors       []string   `json:"errors,omitempty"`
	hostMounts   []*mountinfo.Info
}

// Identity is who the process is and what it may do.
type Identity struct {
	UID            []int               `json:"uid"` // real, effective, saved, fs
	GID            []int               `json:"gid"`
	Groups         []int               `json:"groups"`
	Maps           *idmap.Process      `json:"maps,omitempty"`
	Caps           map[string][]string `json:"caps"`
	NoNewPrivs     bool                `json:"no_new_privs"`
	Seccomp        string              `json:"seccomp"`
	SeccompFilters int                 `json:"seccomp_filters"`
	LSMLabel       string              `json:"lsm_label,omitempty"`
	capBnd         uint64
}

// Cgroup is the process's cgroups and, for a hako container, its limits.
type Cgroup struct {
	Paths  map[string]string `json:"paths"`
	Limits map[string]string `json:"limits,omitempty"`
}

// Mount is one mount as the target sees it.
type Mount struct {
	ID           int                `json:"id"`
	Parent       int                `json:"parent"`
	Target       string             `json:"target"`
	Source       string             `json:"source"`
	FSType       string             `json:"fstype"`
	Root         string             `json:"root"`
	Major        int                `json:"major"`
	Minor        int                `json:"minor"`
	Options      string             `json:"options"`
	SuperOptions string             `json:"super_options"`
	Propagation  rootfs.Propagation `json:"propagation"`
	HostPath     string             `json:"host_path"`
	Bind         bool               `json:"bind"`
	Idmapped     bool               `json:"idmapped"`
	IDMap        *rootfs.IDMap      `json:"idmap,omitempty"`
	IDMapError   string             `json:"idmap_error,omitempty"`
	Locked       []string           `json:"locked,omitempty"`
}

// Options for Inspect.
type Options struct {
	StateRoot  string // hako's --root, for container ids
	Properties bool
	Diff       bool
	DiffPID    int // 0: the host (PID 1)
}

// Resolve turns a PID or a hako container id into a PID.
func Resolve(arg, stateRoot string) (pid int, container string, err error) {
	if n, err := strconv.Atoi(arg); err == nil && n > 0 {
		return n, "", nil
	}
	st, err := (&state.Store{Root: stateRoot}).Load(arg)
	if err != nil {
		return 0, "", fmt.Errorf("%s is neither a PID nor a container in %s: %w", arg, stateRoot, err)
	}
	if st.InitPid <= 0 {
		return 0, "", fmt.Errorf("container %s has no init process", arg)
	}
	return st.InitPid, arg, nil
}

// Inspect reads the report for target (a PID or a container id).
func Inspect(target string, o Options) (*Report, error) {
	pid, cid, err := Resolve(target, o.StateRoot)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	r := &Report{PID: pid, Container: cid}
	proc := fmt.Sprintf("/proc/%d/", pid)
	if data, err := os.ReadFile(proc + "cmdline"); err == nil {
		r.Command = strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
	}
	r.NSpid, _ = ns.NSpid(pid)
	r.Namespaces = ns.Describe(pid, HostPID)
	r.Root, _ = os.Readlink(proc + "root")
	r.Cwd, _ = os.Readlink(proc + "cwd")
	r.MountNSOwner, _ = ns.Related(ns.ProcPath(pid, "mnt"), 0xb701) // NS_GET_USERNS
	r.readIdentity()
	r.readCgroup(o.StateRoot)
	if err := r.readMounts(); err != nil {
		r.Errors = append(r.Errors, err.Error())
	}
	if o.Properties {
		if r.Properties, err = properties(r); err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
	}
	if o.Diff {
		other := o.DiffPID
		if other == 0 {
			other = HostPID
		}
		d, err := diff(r, other)
		if err != nil {
			return nil, err
		}
		r.Diff = d
	}
	return r, nil
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Fields(s) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

func (r *Report) readIdentity() {
	id := &r.Identity
	id.UID = ints(explain.StatusField(r.PID, "Uid"))
	id.GID = ints(explain.StatusField(r.PID, "Gid"))
	id.Groups = ints(explain.StatusField(r.PID, "Groups"))
	if id.Groups == nil {
		id.Groups = []int{}
	}
	if m, err := idmap.Read(r.PID); err == nil {
		id.Maps = m
	} else {
		r.Errors = append(r.Errors, "id maps: "+err.Error())
	}
	id.Caps = map[string][]string{}
	for _, c := range []struct{ field, name string }{
		{"CapBnd", "bounding"}, {"CapEff", "effective"}, {"CapPrm", "permitted"}, {"CapInh", "inheritable"}, {"CapAmb", "ambient"},
	} {
		mask, _ := strconv.ParseUint(explain.StatusField(r.PID, c.field), 16, 64)
		if c.field == "CapBnd" {
			id.capBnd = mask
		}
		names := security.CapNames(mask)
		if names == nil {
			names = []string{}
		}
		id.Caps[c.name] = names
	}
	id.NoNewPrivs = explain.StatusField(r.PID, "NoNewPrivs") == "1"
	switch explain.StatusField(r.PID, "Seccomp") {
	case "1":
		id.Seccomp = "strict"
	case "2":
		id.Seccomp = "filter"
	default:
		id.Seccomp = "disabled"
	}
	id.SeccompFilters, _ = strconv.Atoi(explain.StatusField(r.PID, "Seccomp_filters"))
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/attr/current", r.PID)); err == nil {
		id.LSMLabel = strings.TrimRight(string(data), "\x00\n")
	}
}

func (r *Report) readCgroup(stateRoot string) {
	r.Cgroup.Paths = map[string]string{}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", r.PID))
	if err != nil {
		r.Errors = append(r.Errors, "cgroup: "+err.Error())
		return
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		name := f[1]
		if name == "" {
			name = "unified"
		}
		r.Cgroup.Paths[name] = f[2]
	}
	if r.Container == "" {
		return
	}
	st, err := (&state.Store{Root: stateRoot}).Load(r.Container)
	if err != nil {
		return
	}
	r.Cgroup.Limits = map[string]string{}
	for _, dir := range st.CgroupPaths {
		for _, f := range []string{"memory.limit_in_bytes", "memory.max", "memory.swap.max", "pids.max", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max", "cpu.shares", "cpu.weight", "cpuset.cpus", "io.max"} {
			if v, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				r.Cgroup.Limits[f] = strings.TrimSpace(string(v))
			}
		}
	}
}

// readMounts reads the target's mount table and traces each mount to the
// host's.
func (r *Report) readMounts() error {
	infos, err := rootfs.MountsOf(r.PID)
	if err != nil {
		return fmt.Errorf("mounts: %w", err)
	}
	host, err := rootfs.MountsOf(HostPID)
	if err != nil {
		return fmt.Errorf("host mounts: %w", err)
	}
	r.hostMounts = host
	owned := r.MountNSOwner != 0 && !r.userNSIsHost()
	for _, i := range infos {
		m := Mount{
			ID: i.ID, Parent: i.Parent, Target: i.Mountpoint, Source: i.Source, FSType: i.FSType,
			Root: i.Root, Major: i.Major, Minor: i.Minor, Options: i.Options, SuperOptions: i.VFSOptions,
			Propagation: rootfs.ParsePropagationFields(i.Optional),
			Bind:        i.Root != "/",
		}
		hm := hostOrigin(i, host)
		if hm != nil {
			m.HostPath = joinRoot(hm.Mountpoint, hm.Root, i.Root)
		}
		m.Idmapped = hasOpt(i.Options, "idmapped")
		if m.Idmapped {
			idm, err := rootfs.MountIDMap(r.PID, i.Mountpoint)
			switch {
			case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
				// mountinfo is world-readable, the path to the mount
				// and statmount of another's mount namespace are not.
				m.IDMapError = err.Error() + " (reading the map needs root or the process's owner)"
			case err != nil:
				m.IDMapError = err.Error()
			}
			m.IDMap = idm
		}
		if owned && hm != nil {
			m.Locked = lockedFlags(i.Options)
		}
		r.Mounts = append(r.Mounts, m)
	}
	return nil
}

// userNSIsHost reports whether the mount namespace's owner is the host's
// user namespace (then no flag is locked).
func (r *Report) userNSIsHost() bool {
	h, ok := ns.HostInode(HostPID, "user")
	return ok && h == r.MountNSOwner
}

// hostOrigin finds the host mount of the same filesystem whose root
// contains this mount's root, the longest such (a bind of a bind).
func hostOrigin(i *mountinfo.Info, host []*mountinfo.Info) *mountinfo.Info {
	var best *mountinfo.Info
	for _, h := range host {
		if h.Major != i.Major || h.Minor != i.Minor || !within(i.Root, h.Root) {
			continue
		}
		if best == nil || len(h.Root) > len(best.Root) || (len(h.Root) == len(best.Root) && h.Mountpoint == i.Mountpoint) {
			best = h
		}
	}
	return best
}

func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

func joinRoot(mountpoint, hostRoot, root string) string {
	rel := strings.TrimPrefix(root, hostRoot)
	if hostRoot == "/" {
		rel = root
	}
	return filepath.Clean(filepath.Join(mountpoint, rel))
}

func hasOpt(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// lockedFlags are the per-mount flags a mount copied into a mount namespace
// owned by a less privileged user namespace keeps (MNT_LOCK_*): a remount
// inside that clears one fails with EPERM.
func lockedFlags(opts string) []string {
	var out []string
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime"} {
		if hasOpt(opts, o) {
			out = append(out, o)
		}
	}
	return out
}

// MountAt returns the mount that holds path in the target's view.
func (r *Report) MountAt(path string) *Mount {
	var best *Mount
	for k := range r.Mounts {
		m := &r.Mounts[k]
		if within(path, m.Target) && (best == nil || len(m.Target) >= len(best.Target)) {
			best = m
		}
	}
	return best
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
