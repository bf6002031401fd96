package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/linux/resctrl"
)

var namespaceTypes = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true,
	specs.IPCNamespace: true, specs.UTSNamespace: true, specs.UserNamespace: true,
	specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

func (v *validator) namespaces() error {
	if v.s.Linux == nil {
		return nil
	}
	first := map[specs.LinuxNamespaceType]int{}
	for i, ns := range v.s.Linux.Namespaces {
		f := at("linux.namespaces", i)
		if !namespaceTypes[ns.Type] {
			return fieldErr(f+".type", "unknown namespace type %q", string(ns.Type))
		}
		if j, dup := first[ns.Type]; dup {
			return fieldErr(f+".type", "duplicate namespace %q (also at %s)", string(ns.Type), at("linux.namespaces", j))
		}
		first[ns.Type] = i
		// Whether the path exists is checked when joining: it may be
		// created between validation and create.
		if ns.Path != "" && !filepath.IsAbs(ns.Path) {
			return notAbs(f+".path", ns.Path)
		}
		v.ns[ns.Type] = ns.Path
	}
	return nil
}

// maxIDMappings is the kernel's limit on uid_map/gid_map lines (since 4.15).
const maxIDMappings = 340

func (v *validator) idMappings() error {
	l := v.s.Linux
	if l == nil {
		return nil
	}
	userPath, userNS := v.ns[specs.UserNamespace]
	for _, m := range []struct {
		field, kind string
		maps        []specs.LinuxIDMapping
	}{
		{"linux.uidMappings", "uid", l.UIDMappings},
		{"linux.gidMappings", "gid", l.GIDMappings},
	} {
		if len(m.maps) > 0 && !userNS {
			return needNS(m.field, "user", specs.UserNamespace)
		}
		// A new user namespace without mappings would leave every ID
		// unmapped (nobody), and runc refuses it.
		if userNS && userPath == "" && len(m.maps) == 0 {
			return fieldErr(m.field, "must not be empty when creating a new user namespace (no %s mappings found)", m.kind)
		}
		if err := checkIDMappings(m.field, m.maps); err != nil {
			return err
		}
	}
	return nil
}

// checkIDMappings applies the kernel's uid_map rules (user_namespaces(7)) so
// that a bad map fails here with a field path instead of as EINVAL from a
// write to /proc/<pid>/uid_map.
func checkIDMappings(field string, maps []specs.LinuxIDMapping) error {
	if len(maps) > maxIDMappings {
		return fieldErr(field, "too many entries (%d > %d)", len(maps), maxIDMappings)
	}
	for i, m := range maps {
		f := at(field, i)
		if m.Size == 0 {
			return fieldErr(f+".size", "must be greater than 0")
		}
		// The kernel rejects ranges whose end wraps a u32, which also
		// keeps (uid_t)-1 unmappable.
		if uint64(m.ContainerID)+uint64(m.Size) > 1<<32-1 {
			return fieldErr(f, "containerID %d + size %d exceeds the 32-bit ID range", m.ContainerID, m.Size)
		}
		if uint64(m.HostID)+uint64(m.Size) > 1<<32-1 {
			return fieldErr(f, "hostID %d + size %d exceeds the 32-bit ID range", m.HostID, m.Size)
		}
		for j := range i {
			o := maps[j]
			if overlaps(m.ContainerID, o.ContainerID, m.Size, o.Size) {
				return fieldErr(f, "containerID range [%d, %d) overlaps %s", m.ContainerID, uint64(m.ContainerID)+uint64(m.Size), at(field, j))
			}
			if overlaps(m.HostID, o.HostID, m.Size, o.Size) {
				return fieldErr(f, "hostID range [%d, %d) overlaps %s", m.HostID, uint64(m.HostID)+uint64(m.Size), at(field, j))
			}
		}
	}
	return nil
}

func overlaps(a, b, asz, bsz uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsz) && uint64(b) < uint64(a)+uint64(asz)
}

func (v *validator) mounts() error {
	for i, m := range v.s.Mounts {
		f := at("mounts", i)
		// runc still accepts relative destinations with a deprecation
		// warning and treats them as relative to "/"; hako refuses them
		// so that the config means what it says.
		if !filepath.IsAbs(m.Destination) {
			return notAbs(f+".destination", m.Destination)
		}
		bind := m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
		if bind && m.Source == "" {
			return fieldErr(f+".source", "must not be empty for a bind mount")
		}
		uids, gids, err := MountIDMaps(m, v.s.Linux)
		if err != nil {
			return fieldErr(f, "%v", err)
		}
		mapped := len(uids) > 0 || len(gids) > 0
		// The maps of a crun-style idmap= option are checked under the
		// option's name.
		mf := f
		if len(m.UIDMappings) == 0 && len(m.GIDMappings) == 0 {
			for j, o := range m.Options {
				if _, _, ok := IDMapOption(o); ok {
					mf = at(f+".options", j)
				}
			}
		}
		if mapped {
			// mount_setattr(MOUNT_ATTR_IDMAP) needs a detached bind mount.
			if !bind && mf == f {
				return fieldErr(f+".uidMappings", "only supported for bind mounts")
			}
			if !bind {
				return fieldErr(mf, "only supported for bind mounts")
			}
			// One user namespace carries both maps; a missing half would
			// leave those IDs unmapped.
			if len(uids) == 0 {
				return fieldErr(mf+".uidMappings", "must be set together with gidMappings")
			}
			if len(gids) == 0 {
				return fieldErr(mf+".gidMappings", "must be set together with uidMappings")
			}
			if err := checkIDMappings(mf+".uidMappings", uids); err != nil {
				return err
			}
			if err := checkIDMappings(mf+".gidMappings", gids); err != nil {
				return err
			}
		}
		for j, o := range m.Options {
			if kind, _, ok := IDMapOption(o); ok {
				o = kind
			}
			if o != "idmap" && o != "ridmap" {
				continue
			}
			of := at(f+".options", j)
			if !bind {
				return fieldErr(of, "%q is only supported for bind mounts", o)
			}
			// Without mount-level maps the container's user namespace
			// maps are used, so there must be one.
			if !mapped && !v.has(specs.UserNamespace) {
				return fieldErr(of, "%q requires a user namespace (linux.namespaces has no \"user\") or %s.uidMappings/gidMappings", o, f)
			}
		}
	}
	return nil
}

var propagations = []string{"shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"}

func (v *validator) linuxPaths() error {
	l := v.s.Linux
	if l == nil {
		return nil
	}
	if p := l.RootfsPropagation; p != "" && !slices.Contains(propagations, p) {
		return fieldErr("linux.rootfsPropagation", "unknown propagation %q (want one of %s)", p, strings.Join(propagations, ", "))
	}
	for _, list := range []struct {
		field string
		paths []string
	}{
		{"linux.maskedPaths", l.MaskedPaths},
		{"linux.readonlyPaths", l.ReadonlyPaths},
	} {
		// The over-mounts would otherwise land in the host's mount table.
		if len(list.paths) > 0 && !v.has(specs.MountNamespace) {
			return needNS(list.field, "mount", specs.MountNamespace)
		}
		for i, p := range list.paths {
			if !filepath.IsAbs(p) {
				return notAbs(at(list.field, i), p)
			}
		}
	}
	return nil
}

// ipcSysctls are the kernel.* sysctls that live in the IPC namespace.
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true,
	"kernel.sem": true, "kernel.shmall": true, "kernel.shmmax": true,
	"kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// sysctl follows runc's validate.sysctl: /proc/sys is only partly
// namespaced, and writing a non-namespaced knob from a container changes the
// host.
func (v *validator) sysctl() error {
	if v.s.Linux == nil {
		return nil
	}
	keys := make([]string, 0, len(v.s.Linux.Sysctl))
	for k := range v.s.Linux.Sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, raw := range keys {
		f := keyed("linux.sysctl", raw)
		k := sysctlDots(raw)
		if k == "" {
			return fieldErr(f, "empty sysctl name")
		}
		if _, err := SysctlPath(raw); err != nil {
			return fieldErr(f, "%v", err)
		}
		switch {
		case ipcSysctls[k] || strings.HasPrefix(k, "fs.mqueue."):
			if !v.has(specs.IPCNamespace) {
				return needNS(f, "IPC", specs.IPCNamespace)
			}
		case strings.HasPrefix(k, "net."):
			if !v.has(specs.NetworkNamespace) {
				return needNS(f, "network", specs.NetworkNamespace)
			}
			if p := v.ns[specs.NetworkNamespace]; p != "" && isHostNetNS(p) {
				return fieldErr(f, "not allowed in the host's network namespace (%s)", p)
			}
		case k == "kernel.hostname":
			// runc refuses it even with a UTS namespace: it would fight
			// with the dedicated field.
			return fieldErr(f, "conflicts with the \"hostname\" field; set hostname instead")
		case k == "kernel.domainname":
			if !v.has(specs.UTSNamespace) {
				return needNS(f, "UTS", specs.UTSNamespace)
			}
		case strings.HasPrefix(k, "user."):
			// The user.max_* limits are per user namespace.
			if !v.has(specs.UserNamespace) {
				return needNS(f, "user", specs.UserNamespace)
			}
		default:
			return fieldErr(f, "sysctl %q is not allowed in the container's namespaces", k)
		}
	}
	return nil
}

// SysctlPath is where a linux.sysctl name lives below /proc/sys. Both forms
// sysctl(8) and runc accept map to the same file: "net.ipv4.ip_forward" and
// "net/ipv4/ip_forward" are net/ipv4/ip_forward, and a dot inside a
// component ("eno2.100", an interface name) is written as "/" in the dot form
// and as "." in the slash form. It is the one place the name becomes a path;
// the container's init writes exactly what this returns.
func SysctlPath(name string) (string, error) {
	p := swapDotsSlashes(sysctlDots(name))
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("sysctl name %q: empty, \".\" or \"..\" component", name)
		}
	}
	return p, nil
}

// sysctlDots normalises the "/"-separated form sysctl(8) accepts, as runc
// does: "net/ipv4/conf/eno2.100/rp_filter" is "net.ipv4.conf.eno2/100.rp_filter".
func sysctlDots(s string) string {
	i := strings.IndexAny(s, "./")
	if i < 0 || s[i] == '.' {
		return s
	}
	return swapDotsSlashes(s)
}

func swapDotsSlashes(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}

// isHostNetNS reports whether path is the network namespace this process
// is in; a path that cannot be stat'ed is left for create to report.
func isHostNetNS(path string) bool {
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return false
	}
	target, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(self, target)
}

func (v *validator) devices() error {
	if v.s.Linux == nil {
		return nil
	}
	for i, d := range v.s.Linux.Devices {
		f := at("linux.devices", i)
		if !filepath.IsAbs(d.Path) {
			return notAbs(f+".path", d.Path)
		}
		switch d.Type {
		case "c", "b", "u":
			// The decoded spec cannot tell an omitted major/minor from 0,
			// and 0:0 is no real device, so it is taken as missing.
			if d.Major == 0 && d.Minor == 0 {
				return fieldErr(f, "major and minor are required for type %q", d.Type)
			}
		case "p":
		default:
			return fieldErr(f+".type", "unknown device type %q (want c, b, u or p)", d.Type)
		}
		if d.Major < 0 || d.Minor < 0 {
			return fieldErr(f, "major and minor must not be negative, got %d:%d", d.Major, d.Minor)
		}
	}
	return nil
}

// validIfName mirrors the kernel's dev_valid_name, as runc does for
// linux.netDevices.
func validIfName(name string) bool {
	if name == "" || len(name) >= 16 || name == "." || name == ".." {
		return false
	}
	return !strings.ContainsAny(name, "/: \t\n\v\f\r")
}

func (v *validator) netDevices() error {
	l := v.s.Linux
	if l == nil || len(l.NetDevices) == 0 {
		return nil
	}
	// Moving a device into the namespace the runtime runs in is a no-op
	// at best; runc refuses it.
	if !v.has(specs.NetworkNamespace) {
		return needNS("linux.netDevices", "network", specs.NetworkNamespace)
	}
	names := make([]string, 0, len(l.NetDevices))
	for k := range l.NetDevices {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, host := range names {
		f := keyed("linux.netDevices", host)
		if !validIfName(host) {
			return fieldErr(f, "invalid network device name %q", host)
		}
		if n := l.NetDevices[host].Name; n != "" && !validIfName(n) {
			return fieldErr(f+".name", "invalid network device name %q", n)
		}
	}
	return nil
}

func (v *validator) timeOffsets() error {
	l := v.s.Linux
	if l == nil || len(l.TimeOffsets) == 0 {
		return nil
	}
	if !v.has(specs.TimeNamespace) {
		return needNS("linux.timeOffsets", "time", specs.TimeNamespace)
	}
	clocks := make([]string, 0, len(l.TimeOffsets))
	for k := range l.TimeOffsets {
		clocks = append(clocks, k)
	}
	sort.Strings(clocks)
	for _, c := range clocks {
		f := keyed("linux.timeOffsets", c)
		// Only these two clocks can be offset (time_namespaces(7)).
		if c != "monotonic" && c != "boottime" {
			return fieldErr(f, "unknown clock (want \"monotonic\" or \"boottime\")")
		}
		if ns := l.TimeOffsets[c].Nanosecs; ns >= 1e9 {
			return fieldErr(f+".nanosecs", "must be less than 1000000000, got %d", ns)
		}
	}
	return nil
}

func (v *validator) personality() error {
	l := v.s.Linux
	if l == nil || l.Personality == nil {
		return nil
	}
	if len(l.Personality.Flags) > 0 {
		// runc ignores them with a warning; a field accepted and not
		// applied is refused here instead (the spec defines no flag yet).
		return fieldErr("linux.personality.flags", "not supported: %v (no personality flag is applied)", l.Personality.Flags)
	}
	switch d := l.Personality.Domain; d {
	case specs.PerLinux, specs.PerLinux32:
		return nil
	default:
		return fieldErr("linux.personality.domain", "unknown domain %q (want LINUX or LINUX32)", string(d))
	}
}

func (v *validator) intelRdt() error {
	l := v.s.Linux
	if l == nil || l.IntelRdt == nil {
		return nil
	}
	// runc 1.5's checks, words and order: without resctrl the config is
	// refused before its closID is looked at.
	root, _ := resctrl.Root()
	if err := resctrl.Check(root, l.IntelRdt); err != nil {
		return fieldErr("linux.intelRdt", "%v", err)
	}
	return nil
}

func (v *validator) memoryPolicy() error {
	l := v.s.Linux
	if l == nil || l.MemoryPolicy == nil {
		return nil
	}
	mp := l.MemoryPolicy
	switch mp.Mode {
	case specs.MpolDefault, specs.MpolBind, specs.MpolInterleave, specs.MpolWeightedInterleave,
		specs.MpolPreferred, specs.MpolPreferredMany, specs.MpolLocal:
	default:
		return fieldErr("linux.memoryPolicy.mode", "unknown mode %q", string(mp.Mode))
	}
	for i, fl := range mp.Flags {
		switch fl {
		case specs.MpolFNumaBalancing, specs.MpolFRelativeNodes, specs.MpolFStaticNodes:
		default:
			return fieldErr(at("linux.memoryPolicy.flags", i), "unknown flag %q", string(fl))
		}
	}
	if mp.Nodes != "" && !validList(mp.Nodes) {
		return fieldErr("linux.memoryPolicy.nodes", "invalid node list %q", mp.Nodes)
	}
	// set_mempolicy takes a node mask: what runc cannot turn into one
	// (a ":used/group" stride) it refuses, and so does hako.
	if _, err := CPUSet(mp.Nodes); err != nil {
		return fieldErr("linux.memoryPolicy.nodes", "%q: %v", mp.Nodes, err)
	}
	return nil
}

// validList checks the kernel's list format ("0-3,8,10-11", with an optional
// ":used/group" stride on ranges) used by cpusets and NUMA node lists.
func validList(s string) bool {
	for part := range strings.SplitSeq(s, ",") {
		rng, stride, hasStride := strings.Cut(part, ":")
		lo, hi, isRange := strings.Cut(rng, "-")
		a, err := strconv.ParseUint(lo, 10, 31)
		if err != nil {
			return false
		}
		if !isRange {
			if hasStride {
				return false
			}
			continue
		}
		b, err := strconv.ParseUint(hi, 10, 31)
		if err != nil || a > b {
			return false
		}
		if hasStride {
			used, group, ok := strings.Cut(stride, "/")
			u, err1 := strconv.ParseUint(used, 10, 31)
			g, err2 := strconv.ParseUint(group, 10, 31)
			if !ok || err1 != nil || err2 != nil || u == 0 || u > g {
				return false
			}
		}
	}
	return true
}
