package sandbox

// The table in the other direction, for `hako inspect --properties`: which
// of the properties `hako sandbox` knows are in force in a running process,
// whoever started it (systemd, hako, a hand-made unshare). A property's
// meaning is its row's: a value is read back only if compiling that
// property with that value gives checks (internal/sandbox/receipt) that
// hold on the process, the checks the sandbox's own receipt runs. What the
// checks cannot see (systemd's PrivateTmp is a bind of
// /tmp/systemd-private-…/tmp, not hako's tmpfs) is added per row below;
// what is not readable at all (seccomp rules) is said so.

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// Live is a running process as the read-back sees it.
type Live struct {
	Proc *receipt.Probe // the process
	Host *receipt.Probe // the reference (PID 1): its namespaces, mounts, bounding set, limits
	// Origin says where the topmost mount at point comes from on the host:
	// the host path it shows, or ok false for a filesystem the host does
	// not mount (a tmpfs of its own).
	Origin func(point string) (hostPath string, ok bool)
	// Interfaces are the network interfaces in the process's namespace.
	Interfaces []string
}

// Observed is one property as the kernel shows it.
type Observed struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	InForce bool   `json:"in_force"`
	Unknown bool   `json:"unknown,omitempty"` // enforced where it cannot be read (seccomp)
	Reason  string `json:"reason"`
}

// readBack is how one row is read back.
type readBack struct {
	values []string // candidates, most specific first: compiled and verified
	off    string   // the value when none holds
	// alt is a form of the property the row's checks do not recognise
	// (nil: none); it returns the paths it accounts for.
	alt func(l *Live) (ok bool, why string, paths []string)
	// also is a further condition on a candidate that held.
	also func(l *Live) (ok bool, why string)
	// derived rows are computed from the process's state, then verified.
	derived func(l *Live, c *claims) []string
	seccomp bool   // enforced by a seccomp filter, whose rules are not readable
	limit   string // RLIMIT_*: compared with the host's
	skip    string // why the row is not read back
}

var yes = []string{"yes"}

// readBacks has an entry for every row that has Apply: the table test
// (TestReadBackCoversTable) fails for a new row without one.
var readBacks = sync.OnceValue(func() map[string]readBack {
	m := map[string]readBack{
		"PrivateTmp":            {values: yes, off: "no", alt: privateTmpBind, also: notHostTmp},
		"PrivateDevices":        {values: yes, off: "no"},
		"PrivateNetwork":        {values: yes, off: "no", also: onlyLoopback},
		"PrivateIPC":            {values: yes, off: "no"},
		"PrivateUsers":          {values: yes, off: "no"},
		"ProtectHostname":       {values: yes, off: "no"},
		"ProtectSystem":         {values: []string{"strict", "full", "yes"}, off: "no"},
		"ProtectHome":           {values: []string{"yes", "read-only", "tmpfs"}, off: "no"},
		"ProtectKernelTunables": {values: yes, off: "no"},
		"ProtectKernelModules":  {values: yes, off: "no"},
		"ProtectKernelLogs":     {values: yes, off: "no"},
		"ProtectControlGroups":  {values: yes, off: "no"},
		"ProtectProc":           {values: []string{"invisible", "noaccess", "ptraceable"}, off: "default"},
		"ProcSubset":            {values: []string{"pid"}, off: "all"},
		"ReadOnlyPaths":         {derived: residueOf("ReadOnlyPaths")},
		"ReadWritePaths":        {derived: residueOf("ReadWritePaths")},
		"InaccessiblePaths":     {derived: residueOf("InaccessiblePaths")},
		"BindPaths":             {derived: residueOf("BindPaths")},
		"BindReadOnlyPaths":     {derived: residueOf("BindReadOnlyPaths")},
		"TemporaryFileSystem":   {derived: residueOf("TemporaryFileSystem")},
		"NoNewPrivileges":       {values: yes, off: "no"},
		"CapabilityBoundingSet": {derived: boundingSet},
		"AmbientCapabilities":   {derived: ambientSet},

		"SystemCallFilter":        {seccomp: true},
		"SystemCallErrorNumber":   {seccomp: true},
		"SystemCallArchitectures": {seccomp: true},
		"RestrictNamespaces":      {seccomp: true},
		"LockPersonality":         {seccomp: true},
		"MemoryDenyWriteExecute":  {seccomp: true},
		"RestrictRealtime":        {seccomp: true},
		"RestrictSUIDSGID":        {seccomp: true},
		"RestrictAddressFamilies": {seccomp: true},

		"WorkingDirectory": {skip: "the report's cwd"},
		"Environment":      {skip: "COMMAND's input, not isolation (/proc/PID/environ)"},
		"UnsetEnvironment": {skip: "COMMAND's input, not isolation (/proc/PID/environ)"},
		"User":             {skip: "the report's identity"},
		"Group":            {skip: "the report's identity"},
		// Not read back as properties: the root and the limits are shown in
		// the report itself (its root, its cgroup and limits); IP filters are
		// cgroup BPF programs, not readable as addresses.
		"RootDirectory":  {skip: "the report's root"},
		"MountAPIVFS":    {skip: "the report's mounts (with RootDirectory only)"},
		"MemoryMax":      {skip: "the report's cgroup limits"},
		"MemoryHigh":     {skip: "the report's cgroup limits"},
		"TasksMax":       {skip: "the report's cgroup limits"},
		"CPUQuota":       {skip: "the report's cgroup limits"},
		"CPUWeight":      {skip: "the report's cgroup limits"},
		"IPAddressAllow": {skip: "cgroup BPF programs, not readable as addresses"},
		"IPAddressDeny":  {skip: "cgroup BPF programs, not readable as addresses"},
	}
	for _, l := range limits {
		m[l.prop] = readBack{limit: l.res}
	}
	return m
})

// claims are what in-force properties account for, so that the derived
// rows (ReadOnlyPaths, CapabilityBoundingSet, ...) state only the rest.
type claims struct {
	paths map[string]bool // mount points a property's checks name
	trees []string        // read-only trees: their submounts are read-only too
	fs    []string        // filesystems a property mounted: what is below is part of it
	caps  map[string]bool // capabilities a property drops
}

func within(p string, dirs []string) bool {
	for _, t := range dirs {
		if t == "/" || p == t || strings.HasPrefix(p, t+"/") {
			return true
		}
	}
	return false
}

// ReadBack states the process's isolation as the table's properties, in
// the table's order: every row that can be read back, in force or not.
func ReadBack(l *Live) []Observed {
	c := &claims{paths: map[string]bool{}, caps: map[string]bool{}}
	got := map[string]Observed{}
	// Candidates first: their checks are the claims the derived rows
	// subtract.
	for _, row := range Table() {
		rb, ok := readBacks()[row.Name]
		if !ok || row.Apply == nil || rb.values == nil {
			continue
		}
		got[row.Name] = l.candidates(row.Name, rb, c)
	}
	for _, row := range Table() {
		rb, ok := readBacks()[row.Name]
		if !ok || row.Apply == nil {
			continue
		}
		switch {
		case rb.derived != nil:
			got[row.Name] = l.derive(row.Name, rb.derived(l, c), c)
		case rb.seccomp:
			got[row.Name] = l.seccomp(row.Name)
		case rb.limit != "":
			v, h := l.Proc.Limits[rb.limit], l.Host.Limits[rb.limit]
			got[row.Name] = Observed{Name: row.Name, Value: v, InForce: v != "" && v != h, Reason: fmt.Sprintf("%s %s; process %d has %s", rb.limit, v, l.Host.Pid, h)}
		}
	}
	var out []Observed
	for _, row := range Table() {
		if o, ok := got[row.Name]; ok {
			out = append(out, o)
		}
	}
	return out
}

// checksFor compiles NAME=VALUE alone and returns its checks: the row's
// meaning, as the sandbox's receipt would verify it.
func (l *Live) checksFor(name, value string) ([]receipt.Check, error) {
	hostNS := map[string]uint64{}
	for _, k := range []string{"mnt", "pid", "net", "ipc", "uts", "user", "cgroup"} {
		if ino, err := l.Host.NS(k); err == nil {
			hostNS[k] = ino
		}
	}
	sb, err := Compile(&Input{Args: []string{"true"}, Cwd: "/", HostNS: hostNS, Props: []Property{{Name: name, Value: value, Where: "read-back"}}})
	if err != nil {
		return nil, err
	}
	var out []receipt.Check
	for _, ch := range sb.Checks {
		if ch.Property == name {
			out = append(out, ch)
		}
	}
	return out, nil
}

// holds verifies checks on the process: all must hold, and at least one
// on something that exists (a check of a missing path passes, which says
// nothing about the process).
func (l *Live) holds(checks []receipt.Check, c *claims) (bool, string) {
	var why []string
	real := false
	for _, ch := range checks {
		var writable []string
		if ch.Kind == receipt.KindReadOnly && ch.Path == "/" {
			// ProtectSystem=strict: what is writable below / is so on
			// purpose (ReadWritePaths, PrivateTmp, a bind), as systemd
			// documents; the check is that / itself is read-only.
			for _, m := range l.Proc.Topmost() {
				if m.Point != "/" && !m.ReadOnly {
					writable = append(writable, m.Point)
				}
			}
			ch.Except = append(append([]string(nil), ch.Except...), writable...)
		}
		if ch.Kind == receipt.KindNewNS && ch.Host == 0 {
			return false, "the host's " + ch.Value + " namespace is not readable here"
		}
		ok, detail := l.Proc.Check(ch)
		detail = strings.ReplaceAll(detail, "/proc/self/", fmt.Sprintf("/proc/%d/", l.Proc.Pid))
		if ch.Path != "" {
			detail = ch.Path + ": " + detail
		}
		if !ok {
			return false, detail
		}
		if strings.HasSuffix(detail, "does not exist") {
			continue
		}
		if ch.Kind == receipt.KindReadOnly && ch.Path != "/" && within(ch.Path, c.trees) && count(l.Proc, ch.Path) <= count(l.Host, ch.Path) {
			// Read-only because a property already counted made a
			// tree above it so (ProtectHome=read-only under
			// ProtectSystem=strict): nothing was mounted for this one.
			continue
		}
		real = true
		why = append(why, detail)
	}
	if !real {
		return false, "nothing it names exists or was mounted for it"
	}
	return true, strings.Join(why, "; ")
}

func (l *Live) candidates(name string, rb readBack, c *claims) Observed {
	var reasons []string
	for _, v := range rb.values {
		checks, err := l.checksFor(name, v)
		if err != nil {
			return Observed{Name: name, Value: rb.off, Reason: err.Error()}
		}
		ok, why := l.holds(checks, c)
		var paths []string
		if !ok && rb.alt != nil {
			var altWhy string
			if ok, altWhy, paths = rb.alt(l); ok {
				why = altWhy
			}
		}
		if ok && rb.also != nil {
			var more string
			ok, more = rb.also(l)
			if !ok {
				why = more
			} else if more != "" {
				why += "; " + more
			}
		}
		if !ok {
			reasons = append(reasons, v+": "+why)
			continue
		}
		c.claim(checks, paths)
		return Observed{Name: name, Value: v, InForce: true, Reason: why}
	}
	return Observed{Name: name, Value: rb.off, Reason: strings.Join(reasons, "; ")}
}

// claim records what a property in force accounts for: the mount points
// its checks name (and what is mounted below a filesystem it made), the
// trees it made read-only, the capabilities it drops.
func (c *claims) claim(checks []receipt.Check, paths []string) {
	for _, ch := range checks {
		switch ch.Kind {
		case receipt.KindCapDropped:
			c.caps[ch.Path] = true
			continue
		case receipt.KindReadOnly:
			c.trees = append(c.trees, ch.Path)
		case receipt.KindFS, receipt.KindInaccessible:
			c.fs = append(c.fs, ch.Path)
		}
		if ch.Path != "" {
			c.paths[ch.Path] = true
		}
		for _, e := range ch.Except {
			c.paths[e] = true
		}
	}
	for _, p := range paths {
		c.paths[p] = true
	}
}

// derive verifies each derived value by compiling it, as the candidates
// are; a value whose checks fail is left out.
func (l *Live) derive(name string, values []string, c *claims) Observed {
	o := Observed{Name: name}
	var kept, why []string
	for _, v := range values {
		checks, err := l.checksFor(name, v)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if ok, w := l.holds(checks, c); ok {
			kept = append(kept, v)
			why = append(why, w)
		}
	}
	if len(kept) == 0 {
		o.Reason = "nothing beyond what other properties and the host account for"
		return o
	}
	o.Value, o.InForce, o.Reason = strings.Join(kept, " "), true, strings.Join(why, "; ")
	return o
}

// seccomp rows: with no filter attached none of them can be in force; with
// filters the kernel does not say which rules they hold (as root,
// PTRACE_SECCOMP_GET_FILTER dumps the BPF, not the properties).
func (l *Live) seccomp(name string) Observed {
	n, _ := strconv.Atoi(l.Proc.Status["Seccomp_filters"])
	switch l.Proc.Status["Seccomp"] {
	case "0", "":
		return Observed{Name: name, Reason: "no seccomp filter attached"}
	case "1":
		return Observed{Name: name, Unknown: true, Reason: "seccomp strict mode: only read, write, _exit, sigreturn"}
	}
	return Observed{Name: name, Unknown: true, Value: "?", Reason: fmt.Sprintf("%d seccomp filter(s) attached; their rules are not readable", n)}
}

// privateTmpBind is systemd's PrivateTmp: /tmp and /var/tmp binds of
// /tmp/systemd-private-…-UNIT-…/tmp and /var/tmp/…, not tmpfs.
func privateTmpBind(l *Live) (bool, string, []string) {
	var why []string
	for _, d := range []string{"/tmp", "/var/tmp"} {
		if !isPoint(l.Proc, d) {
			return false, d + " is not a mount point of its own", nil
		}
		hp, ok := l.Origin(d)
		if !ok {
			why = append(why, d+" is a filesystem of its own")
		} else {
			why = append(why, d+" is a bind of the host's "+hp)
		}
	}
	return true, strings.Join(why, "; "), []string{"/tmp", "/var/tmp"}
}

// notHostTmp: the host's own /tmp (a tmpfs on many hosts) passes the
// checks too; a private one is another.
func notHostTmp(l *Live) (bool, string) {
	for _, d := range []string{"/tmp", "/var/tmp"} {
		if hp, ok := l.Origin(d); ok && hp == d {
			return false, d + " is the host's own"
		}
	}
	return true, ""
}

func onlyLoopback(l *Live) (bool, string) {
	if len(l.Interfaces) == 1 && l.Interfaces[0] == "lo" {
		return true, "only lo"
	}
	return false, "interfaces " + strings.Join(l.Interfaces, ", ")
}

func hasOpt(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// count is how many mounts are stacked at path.
func count(p *receipt.Probe, path string) int {
	n := 0
	for _, m := range p.Mounts {
		if m.Point == path {
			n++
		}
	}
	return n
}

func isPoint(p *receipt.Probe, path string) bool {
	for _, m := range p.Topmost() {
		if m.Point == path {
			return true
		}
	}
	return false
}

func capSet(p *receipt.Probe, field string) map[string]bool {
	bits, _ := strconv.ParseUint(p.Status[field], 16, 64)
	out := map[string]bool{}
	for _, c := range capabilityList() {
		n, _ := capByName(c)
		if bits&(1<<uint(n)) != 0 {
			out[c] = true
		}
	}
	return out
}

// boundingSet: the capabilities the process's bounding set lacks and the
// host's (PID 1's) has, less those a property in force drops.
func boundingSet(l *Live, c *claims) []string {
	proc, host := capSet(l.Proc, "CapBnd"), capSet(l.Host, "CapBnd")
	var drop []string
	for _, name := range capabilityList() {
		if host[name] && !proc[name] && !c.caps[name] {
			drop = append(drop, name)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	return []string{"~" + strings.Join(drop, " ")}
}

func ambientSet(l *Live, _ *claims) []string {
	amb := capSet(l.Proc, "CapAmb")
	var out []string
	for _, name := range capabilityList() {
		if amb[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// residueOf derives the path properties from the mounts that differ from
// the host's and that no property in force accounts for.
func residueOf(name string) func(l *Live, c *claims) []string {
	return func(l *Live, c *claims) []string { return l.residue(c)[name] }
}

func (l *Live) residue(c *claims) map[string][]string {
	out := map[string][]string{}
	host := map[string]receipt.Mount{}
	for _, m := range l.Host.Topmost() {
		host[m.Point] = m
	}
	for _, m := range l.Proc.Topmost() {
		p := m.Point
		if c.paths[p] || within(p, c.fs) || m.FSType == "proc" && p == "/proc" {
			continue
		}
		hp, onHost := l.Origin(p)
		h, hostHas := host[p]
		if hostHas && onHost && hp == p {
			// The host's own mount, copied: only its flag can differ.
			switch {
			case m.ReadOnly == h.ReadOnly, m.ReadOnly && within(p, c.trees):
			case m.ReadOnly:
				out["ReadOnlyPaths"] = append(out["ReadOnlyPaths"], p)
			default:
				out["ReadWritePaths"] = append(out["ReadWritePaths"], p)
			}
			continue
		}
		parent, _ := l.Proc.Covering(filepath.Dir(p))
		masked, detail := l.Proc.Check(receipt.Check{Kind: receipt.KindInaccessible, Path: p})
		switch {
		case onHost && hp == p && m.ReadOnly:
			// The path bound on itself and made read-only:
			// ReadOnlyPaths's step.
			out["ReadOnlyPaths"] = append(out["ReadOnlyPaths"], p)
		case onHost && hp == p:
			if parent.ReadOnly {
				out["ReadWritePaths"] = append(out["ReadWritePaths"], p)
			}
		case onHost && masked && detail == "covered by the null device":
			out["InaccessiblePaths"] = append(out["InaccessiblePaths"], p)
		case onHost && m.ReadOnly:
			out["BindReadOnlyPaths"] = append(out["BindReadOnlyPaths"], hp+":"+p)
		case onHost:
			out["BindPaths"] = append(out["BindPaths"], hp+":"+p)
		case m.FSType != "tmpfs":
			// Another filesystem of its own (proc, mqueue, devpts):
			// no property of the table makes one.
		case masked && !hasOpt(m.Options, "nodev"):
			// An empty read-only tmpfs is both a mask and a read-only
			// TemporaryFileSystem; systemd 252 and the sandbox mount
			// the latter nodev (ProtectHome=tmpfs too), their masks
			// without it (systemd: ro,noexec; the sandbox: ro).
			out["InaccessiblePaths"] = append(out["InaccessiblePaths"], p)
		case m.ReadOnly:
			out["TemporaryFileSystem"] = append(out["TemporaryFileSystem"], p+":ro")
		default:
			out["TemporaryFileSystem"] = append(out["TemporaryFileSystem"], p)
		}
	}
	return out
}
