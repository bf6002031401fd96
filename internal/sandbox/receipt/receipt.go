// Package receipt is the fail-closed check of `hako sandbox`: each property
// the caller asked for becomes one or more Checks when it is compiled, and
// the sandbox's init runs them from inside, after every setup step and
// before execve, reading what the kernel says (mountinfo, /proc/self/status,
// the namespace links, access(2)). A check that fails stops COMMAND from
// running. The result is the receipt, which `--receipt` writes as JSON.
//
// Why: systemd ignored sandboxing properties of user units for years
// (systemd#3944, #9870, #25014), and Ubuntu 24.04's AppArmor restriction on
// unprivileged user namespaces makes bwrap-based sandboxes run unconfined.
// What was asked must be proved, not assumed.
package receipt

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Kinds of check.
const (
	KindReadOnly     = "read-only"      // Path: not writable (EROFS), and every mount below it read-only but Except
	KindWritable     = "writable"       // Path: its mount is not read-only
	KindFS           = "fs"             // Path is a mount point of type Value
	KindInaccessible = "inaccessible"   // Path is covered: an empty read-only directory or the null device
	KindNewNS        = "new-ns"         // Value: the namespace kind (pid, net, ...); Host: the host's inode
	KindOwnProc      = "own-proc"       // /proc is the sandbox's PID namespace's
	KindStatus       = "status"         // Path: a /proc/self/status field, Value: what it must be
	KindCapDropped   = "cap-dropped"    // Value: capability number absent from CapBnd
	KindHostname     = "hostname-fixed" // the UTS namespace is new (sethostname changes no host)
	KindStatusMin    = "status-min"     // Path: a numeric /proc/self/status field, Value: its least value
	KindCapAmbient   = "cap-ambient"    // Value: capability number present in CapAmb and CapEff
	KindMountOpt     = "mount-option"   // Path: the topmost mount there has super option Value (mountinfo)
	KindCgroup       = "cgroup"         // Path: [CONTROLLER:]FILE... relative to this process's cgroup (in CONTROLLER's v1 hierarchy, or cgroup2's); Value: their contents, space-separated
)

// Check is one thing verified for one property.
type Check struct {
	Property string   `json:"property"`
	Kind     string   `json:"kind"`
	Path     string   `json:"path,omitempty"`
	Value    string   `json:"value,omitempty"`
	Host     uint64   `json:"host,omitempty"`
	Except   []string `json:"except,omitempty"`
}

// Result is a check with its outcome.
type Result struct {
	Check
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Receipt is what ran: every check and whether all held.
type Receipt struct {
	OK      bool     `json:"ok"`
	Pid     int      `json:"pid"`
	Results []Result `json:"results"`
}

// Err names the first property that is not in effect, or nil.
func (r *Receipt) Err() error {
	for _, res := range r.Results {
		if !res.OK {
			return fmt.Errorf("%w: %s: %s %s: %s", ErrNotInEffect, res.Property, res.Kind, strings.TrimSpace(res.Path+" "+res.Value), res.Detail)
		}
	}
	return nil
}

// ErrNotInEffect is wrapped when a requested property was not in effect.
var ErrNotInEffect = errors.New("refusing to run COMMAND: property not in effect")

// Mount is one line of mountinfo, as far as checks need it.
type Mount struct {
	Point    string
	FSType   string
	ReadOnly bool
	Super    string // the super options, comma-separated (mountinfo's last field)
	Options  string // the per-mount options (mountinfo's sixth field)
}

// Probe is what the checks read; Self reads this process's.
type Probe struct {
	Mounts   []Mount
	Status   map[string]string
	NS       func(kind string) (uint64, error)
	Access   func(path string) error // access(path, W_OK)
	Stat     func(path string) (unix.Stat_t, error)
	ReadDir  func(path string) ([]string, error)
	ProcSelf func() (string, error)
	// Cgroup reads a KindCgroup Path (ReadCgroup); the sandbox's init
	// reads them before it leaves the host's /sys behind.
	Cgroup func(path string) (string, error)
	Pid    int
	// Limits are RLIMIT_* → "SOFT:HARD" (Of only; nil for Self).
	Limits map[string]string
}

// Self probes this process.
func Self() *Probe {
	p := &Probe{Pid: os.Getpid(), Status: map[string]string{}}
	p.Mounts, _ = readMountinfo("/proc/self/mountinfo")
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok {
				p.Status[k] = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	p.NS = func(kind string) (uint64, error) {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/ns/"+kind, &st); err != nil {
			return 0, err
		}
		return st.Ino, nil
	}
	p.Access = func(path string) error { return unix.Access(path, unix.W_OK) }
	p.Stat = func(path string) (unix.Stat_t, error) {
		var st unix.Stat_t
		err := unix.Stat(path, &st)
		return st, err
	}
	p.ReadDir = func(path string) ([]string, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return f.Readdirnames(-1)
	}
	p.ProcSelf = func() (string, error) { return os.Readlink("/proc/self") }
	p.Cgroup = ReadCgroup
	return p
}

// ReadCgroup reads path, "[CONTROLLER:]FILE [FILE...]", relative to the
// cgroup this process is in (/proc/self/cgroup): in the v1 hierarchy
// holding CONTROLLER, or the cgroup2 one without it. It returns the
// directory read and the values, as "DIR: VALUE...".
func ReadCgroup(path string) (string, error) {
	files := strings.Fields(path)
	if len(files) == 0 {
		return "", errors.New("no cgroup file named")
	}
	ctrl, first, v1 := strings.Cut(files[0], ":")
	if !v1 {
		ctrl, first = "", files[0]
	}
	files[0] = first
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	dir := ""
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if ctrl == "" && parts[0] == "0" && parts[1] == "" {
			base := "/sys/fs/cgroup"
			var st unix.Statfs_t
			if unix.Statfs(base, &st) == nil && st.Type != unix.CGROUP2_SUPER_MAGIC {
				base += "/unified"
			}
			dir = base + parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if ctrl != "" && c == ctrl {
				dir = "/sys/fs/cgroup/" + parts[1] + parts[2]
			}
		}
	}
	if dir == "" {
		return "", fmt.Errorf("no %s cgroup in /proc/self/cgroup", cmp(ctrl, "cgroup2"))
	}
	var vals []string
	read := dir
	for _, f := range files {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		read = filepath.Dir(p)
		vals = append(vals, strings.TrimSpace(string(b)))
	}
	return read + ": " + strings.Join(vals, " "), nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func readMountinfo(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 6 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		ro := false
		for _, o := range strings.Split(fields[5], ",") {
			ro = ro || o == "ro"
		}
		super := ""
		if sep+3 < len(fields) {
			super = fields[sep+3]
		}
		out = append(out, Mount{Point: unescape(fields[4]), FSType: fields[sep+1], ReadOnly: ro, Super: super, Options: fields[5]})
	}
	return out, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// covering is the mount that path lies on: the last mounted with the
// longest mount point that is path or a parent of it.
func (p *Probe) covering(path string) (Mount, bool) {
	best, found := Mount{}, false
	for _, m := range p.Mounts {
		if below(path, m.Point) && (!found || len(m.Point) >= len(best.Point)) {
			best, found = m, true
		}
	}
	return best, found
}

// below reports whether path is dir or inside it.
func below(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// Verify runs the checks.
func Verify(checks []Check, p *Probe) Receipt {
	r := Receipt{OK: true, Pid: p.Pid}
	for _, c := range checks {
		ok, detail := p.check(c)
		r.OK = r.OK && ok
		r.Results = append(r.Results, Result{Check: c, OK: ok, Detail: detail})
	}
	return r
}

func (p *Probe) check(c Check) (bool, string) {
	switch c.Kind {
	case KindReadOnly:
		return p.readOnly(c)
	case KindWritable:
		m, ok := p.covering(c.Path)
		if !ok {
			return false, "no mount in mountinfo"
		}
		if m.ReadOnly {
			return false, "mount " + m.Point + " is read-only"
		}
		return true, "mount " + m.Point + " is rw (mountinfo)"
	case KindFS:
		for i := len(p.Mounts) - 1; i >= 0; i-- {
			if m := p.Mounts[i]; m.Point == c.Path {
				if m.FSType != c.Value {
					return false, "topmost mount is " + m.FSType
				}
				return true, "mount point of type " + m.FSType + " (mountinfo)"
			}
		}
		return false, "not a mount point"
	case KindInaccessible:
		return p.inaccessible(c.Path)
	case KindNewNS, KindHostname:
		kind := c.Value
		if c.Kind == KindHostname {
			kind = "uts"
		}
		ino, err := p.NS(kind)
		if err != nil {
			return false, err.Error()
		}
		if ino == c.Host {
			return false, fmt.Sprintf("%s namespace is the host's (inode %d)", kind, ino)
		}
		return true, fmt.Sprintf("%s namespace inode %d, host's %d", kind, ino, c.Host)
	case KindOwnProc:
		self, err := p.ProcSelf()
		if err != nil {
			return false, "readlink /proc/self: " + err.Error()
		}
		if self != strconv.Itoa(p.Pid) {
			return false, fmt.Sprintf("/proc/self is %s but getpid() is %d: /proc is another PID namespace's", self, p.Pid)
		}
		return true, "/proc/self is " + self + " = getpid()"
	case KindStatus:
		v, ok := p.Status[c.Path]
		if !ok {
			return false, "no " + c.Path + " in /proc/self/status"
		}
		if v != c.Value {
			return false, c.Path + " is " + v
		}
		return true, "/proc/self/status " + c.Path + ": " + v
	case KindStatusMin:
		v, err := strconv.Atoi(p.Status[c.Path])
		if err != nil {
			return false, c.Path + " in /proc/self/status: " + p.Status[c.Path]
		}
		if want, _ := strconv.Atoi(c.Value); v < want {
			return false, fmt.Sprintf("%s is %d, want at least %s", c.Path, v, c.Value)
		}
		return true, fmt.Sprintf("/proc/self/status %s: %d", c.Path, v)
	case KindCapAmbient:
		n, err := strconv.Atoi(c.Value)
		if err != nil {
			return false, err.Error()
		}
		for _, set := range []string{"CapAmb", "CapEff"} {
			bits, err := strconv.ParseUint(p.Status[set], 16, 64)
			if err != nil {
				return false, set + ": " + err.Error()
			}
			if bits&(1<<uint(n)) == 0 {
				return false, "not in " + set + " " + p.Status[set]
			}
		}
		return true, "in CapAmb " + p.Status["CapAmb"] + " and CapEff " + p.Status["CapEff"]
	case KindMountOpt:
		for i := len(p.Mounts) - 1; i >= 0; i-- {
			if m := p.Mounts[i]; m.Point == c.Path {
				for _, o := range strings.Split(m.Super, ",") {
					if o == c.Value {
						return true, "super option " + o + " (mountinfo)"
					}
				}
				return false, "super options " + m.Super
			}
		}
		return false, "not a mount point"
	case KindCgroup:
		return p.cgroup(c)
	case KindCapDropped:
		n, err := strconv.Atoi(c.Value)
		if err != nil {
			return false, err.Error()
		}
		bnd, err := strconv.ParseUint(p.Status["CapBnd"], 16, 64)
		if err != nil {
			return false, "CapBnd: " + err.Error()
		}
		if bnd&(1<<uint(n)) != 0 {
			return false, "still in CapBnd " + p.Status["CapBnd"]
		}
		return true, "not in CapBnd " + p.Status["CapBnd"]
	}
	return false, "unknown check kind " + c.Kind
}

func (p *Probe) readOnly(c Check) (bool, string) {
	how := "access(W_OK) = EROFS"
	// The kernel checks the file's permission before the mount's flag: a
	// caller who may not write anyway gets EACCES, and then the covering
	// mount's flag in mountinfo is the evidence.
	switch err := p.Access(c.Path); {
	case errors.Is(err, unix.ENOENT):
		return true, "does not exist"
	case errors.Is(err, unix.EROFS):
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		m, ok := p.covering(c.Path)
		if !ok || !m.ReadOnly {
			return false, "mount " + m.Point + " is not read-only (mountinfo)"
		}
		how = "mount " + m.Point + " read-only"
	default:
		return false, fmt.Sprintf("access(W_OK) = %v, not EROFS", err)
	}
	for _, m := range p.Mounts {
		if !below(m.Point, c.Path) || m.ReadOnly {
			continue
		}
		exempt := false
		for _, e := range c.Except {
			exempt = exempt || below(m.Point, e)
		}
		// A mount point hidden by a later mount on a parent is not
		// reachable: only the topmost mount at each point counts.
		if !exempt && p.topmost(m) {
			return false, "submount " + m.Point + " (" + m.FSType + ") is writable"
		}
	}
	return true, how + ", every mount below read-only (mountinfo)"
}

// topmost reports whether m is the last mount at its point.
func (p *Probe) topmost(m Mount) bool {
	seen := false
	for _, o := range p.Mounts {
		if o == m && !seen {
			seen = true
			continue
		}
		if seen && o.Point == m.Point {
			return false
		}
	}
	return true
}

func (p *Probe) inaccessible(path string) (bool, string) {
	st, err := p.Stat(path)
	if errors.Is(err, unix.ENOENT) {
		return true, "does not exist"
	}
	if err != nil {
		return false, err.Error()
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3) {
		return true, "covered by the null device"
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		names, err := p.ReadDir(path)
		if err != nil {
			return true, "cannot be listed: " + err.Error()
		}
		if len(names) > 0 {
			return false, fmt.Sprintf("lists %d entries", len(names))
		}
		if err := p.Access(path); !errors.Is(err, unix.EROFS) {
			return false, "empty but writable"
		}
		return true, "empty and read-only"
	}
	return false, "neither an empty read-only directory nor the null device"
}

// Abs cleans a path a check names; property paths are absolute already.
func Abs(p string) string { return filepath.Clean(p) }

// cgroup compares a cgroup file with the limit asked for; a memory size
// counts as equal when the kernel rounded it down to whole pages.
func (p *Probe) cgroup(c Check) (bool, string) {
	if p.Cgroup == nil {
		return false, "cgroup not read"
	}
	got, err := p.Cgroup(c.Path)
	if err != nil {
		return false, err.Error()
	}
	dir, val, _ := strings.Cut(got, ": ")
	want := c.Value
	if strings.Contains(c.Path, "memory.") {
		if n, err := strconv.ParseUint(want, 10, 64); err == nil {
			page := uint64(os.Getpagesize())
			want = strconv.FormatUint(n/page*page, 10)
		}
	}
	if val != want {
		return false, fmt.Sprintf("%s in %s is %q, want %q", c.Path, dir, val, want)
	}
	return true, c.Path + " = " + val + " in " + dir
}
