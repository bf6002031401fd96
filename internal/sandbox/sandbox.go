// Package sandbox compiles `hako sandbox`'s systemd properties
// (systemd.exec(5): PrivateTmp=, ProtectSystem=, BindReadOnlyPaths=, ...)
// to the plan the engine runs (internal/plan): a specs.Spec whose root is
// a copy of the host's own, compiled by plan.FromSpec like any config.json,
// plus the few steps OCI cannot say (stage the host's root, make trees
// read-only, die with hako, verify). One table (props.go), one row per
// property; nothing here makes a syscall, so a sandbox can be printed
// (--print-spec) and tested without privilege.
//
// Always, whatever the properties: a new mount namespace made private
// before anything is mounted (seed 003: a mount inside never reaches the
// host), a new PID namespace with a fresh /proc (seeds 002 and 004), and
// for an unprivileged caller a user namespace with setgroups denied (the
// kernel's rule since CVE-2014-8989, seed 004's "setgroups deny").
package sandbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// Stage is where the copy of the host's root is attached in the sandbox's
// own mount namespace before the pivot: a directory every Linux host has.
// Mounting over it there changes nothing the host sees.
const Stage = "/tmp"

// Property is one NAME=VALUE and where it came from, for errors.
type Property struct {
	Name, Value string
	Where       string // "-p" or FILE:LINE
}

// Input is what the sandbox is compiled from: the caller's facts (looked up
// by the CLI) and the properties.
type Input struct {
	Args    []string
	Env     []string
	Cwd     string
	Home    string
	UID     uint32
	GID     uint32
	MapRoot bool
	Props   []Property
	// Overlays are --overlay's values, in order.
	Overlays []string
	// HostNS are the caller's namespace inodes by kind ("net", "pid"...),
	// which the receipt compares the sandbox's with.
	HostNS map[string]uint64
	// LookupUser and LookupGroup resolve User= and Group= (names or
	// numbers) on the host.
	LookupUser  func(name string) (uid, gid uint32, err error)
	LookupGroup func(name string) (uint32, error)
	// CgroupV2: the host's memory, pids and cpu controllers are cgroup
	// v2's (a pure cgroup2 host); MemTotal is its RAM in bytes, for
	// percentages. The resource properties depend on both.
	CgroupV2 bool
	MemTotal uint64
}

func (in *Input) lookupUser(v string) (uint32, uint32, error) {
	if in.LookupUser == nil {
		return 0, 0, fmt.Errorf("%q: cannot look users up", v)
	}
	return in.LookupUser(v)
}

func (in *Input) lookupGroup(v string) (uint32, error) {
	if in.LookupGroup == nil {
		return 0, fmt.Errorf("%q: cannot look groups up", v)
	}
	return in.LookupGroup(v)
}

// Sandbox is a compiled sandbox.
type Sandbox struct {
	Spec *specs.Spec
	// Trees are made read-only (or writable again) in order after the
	// pivot.
	Trees  []Tree
	Checks []receipt.Check
	// Optional are bind sources given as "-SRC": Prune drops their
	// mounts where the source is missing, as systemd does.
	Optional []string
	// CwdOptional: WorkingDirectory=-DIR, "/" when DIR is missing.
	CwdOptional bool
	// Filters are the seccomp properties' filters, one per property,
	// loaded in order (the spec has room for one only).
	Filters []specs.LinuxSeccomp
	// Root is RootDirectory=, a host path; "" is the host's root.
	Root string
	// Overlays are made right after the root is bound, before the
	// mounts, which may go on top of them.
	Overlays []Overlay
}

// CheckHost refuses what would make the engine create something on the
// host: the sandbox's root is the host's own tree, so a missing mount point
// or working directory would be made there, and outlive the sandbox. It runs
// after Prune; exists looks on the host.
func (sb *Sandbox) CheckHost(exists func(string) bool) error {
	if sb.Root != "" && !exists(sb.Root+"/.") {
		errno := unix.ENOTDIR
		if !exists(sb.Root) {
			errno = unix.ENOENT
		}
		return fmt.Errorf("RootDirectory %s: %w (cause: COMMAND's root must be a directory holding its files: create it, or mount the tree there)", sb.Root, errno)
	}
	if err := sb.checkOverlays(exists); err != nil {
		return err
	}
	for i, m := range sb.Spec.Mounts {
		if hp := sb.hostPath(m.Destination, i); hp != "" && !exists(hp) {
			hint := "create it first, or choose an existing directory"
			switch {
			case sb.Root != "" && strings.HasPrefix(m.Destination, "/dev/"):
				hint = "create it in RootDirectory " + sb.Root + ", or give MountAPIVFS=yes for the host's /dev"
			case sb.Root != "":
				hint = "create it in RootDirectory " + sb.Root
			}
			return fmt.Errorf("mount point %s: %w (cause: hako sandbox creates nothing on the host's tree: %s)", hp, unix.ENOENT, hint)
		}
		if m.Type == "bind" && !exists(m.Source) {
			return fmt.Errorf("bind source %s: %w (cause: missing: create it, or prefix it with - to skip it when missing)", m.Source, unix.ENOENT)
		}
	}
	if hp := sb.hostPath(sb.Spec.Process.Cwd, len(sb.Spec.Mounts)); hp != "" && !exists(hp) {
		return fmt.Errorf("working directory %s: %w (cause: hako sandbox creates nothing on the host's tree: create it first, or prefix WorkingDirectory= with -)", hp, unix.ENOENT)
	}
	return nil
}

// hostPath is where path p inside the sandbox lies on the host when the
// mounts before the one numbered before are made: below a bind mount, in
// its source; below one of the sandbox's own file systems (a tmpfs, its
// /proc), nowhere, and the engine may create it there ("").
func (sb *Sandbox) hostPath(p string, before int) string {
	for i := before - 1; i >= 0; i-- {
		m := sb.Spec.Mounts[i]
		rel, ok := strings.CutPrefix(p, m.Destination)
		if !ok || rel != "" && rel[0] != '/' && m.Destination != "/" {
			continue
		}
		if m.Type == "bind" {
			return m.Source + rel
		}
		return ""
	}
	return sb.Root + p
}

// WithTerminal prepares the sandbox for a pty of its own: the console is
// made in a new devpts instance (the host's /dev/pts/ptmx is not for
// unprivileged callers), unless PrivateDevices has made one already.
func (sb *Sandbox) WithTerminal() {
	if sb.Spec.Process.Terminal {
		return
	}
	sb.Spec.Process.Terminal = true
	if sb.privateDev() {
		return
	}
	sb.Spec.Mounts = append(sb.Spec.Mounts, specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}})
}

func (sb *Sandbox) privateDev() bool {
	for _, m := range sb.Spec.Mounts {
		if m.Destination == "/dev" {
			return true
		}
	}
	return false
}

// Prune drops the mounts of optional bind sources that do not exist, and
// their checks. exists looks on the host; the rest of the sandbox is pure.
func (sb *Sandbox) Prune(exists func(string) bool) {
	if sb.CwdOptional && !exists(sb.Root+sb.Spec.Process.Cwd) {
		sb.Spec.Process.Cwd = "/"
	}
	gone := map[string]bool{}
	for _, src := range sb.Optional {
		if !exists(src) {
			gone[src] = true
		}
	}
	if len(gone) == 0 {
		return
	}
	var mounts []specs.Mount
	dsts := map[string]bool{}
	for _, m := range sb.Spec.Mounts {
		if m.Type == "bind" && gone[m.Source] {
			dsts[m.Destination] = true
			continue
		}
		mounts = append(mounts, m)
	}
	sb.Spec.Mounts = mounts
	var checks []receipt.Check
	for _, c := range sb.Checks {
		if (c.Property == "BindPaths" || c.Property == "BindReadOnlyPaths") && dsts[c.Path] {
			continue
		}
		checks = append(checks, c)
	}
	sb.Checks = checks
}

// Tree is one ReadOnlyPaths-like step.
type Tree struct {
	Path     string
	ReadOnly bool
	Optional bool // "-PATH", or a path systemd lists that a host may lack
}

type optPath struct {
	path     string
	optional bool
	prop     string
}

type builder struct {
	in                   *Input
	spec                 *specs.Spec
	checks               []receipt.Check
	trees                []Tree
	rwPaths              []optPath
	writable             []string // mounts that stay writable under strict
	strict               bool
	privateDevices       bool
	protectHome          bool // ProtectHome= other than no
	privateUsers         bool
	cwdHome, cwdOptional bool
	userSet, groupSet    bool
	drop                 map[string]string // capability -> property
	optional             []string          // bind sources given as "-SRC"
	sec                  seccompState
	filters              []specs.LinuxSeccomp
	ambient              map[string]bool // AmbientCapabilities
	procHide             string          // ProtectProc: hidepid= value
	procSubset           bool            // ProcSubset=pid
	cgChecks             map[string][2]string
	cgOrder              []string
	root                 string // RootDirectory; "" is the host's
	apiVFS               bool   // MountAPIVFS
	cwdSet               bool   // WorkingDirectory
	overlays             []Overlay
}

func (b *builder) check(c receipt.Check) { b.checks = append(b.checks, c) }

func (b *builder) newNS(prop string, t specs.LinuxNamespaceType, kind string) {
	b.addNS(t)
	b.check(receipt.Check{Property: prop, Kind: receipt.KindNewNS, Value: kind, Host: b.in.HostNS[kind]})
}

func (b *builder) addNS(t specs.LinuxNamespaceType) {
	for _, n := range b.spec.Linux.Namespaces {
		if n.Type == t {
			return
		}
	}
	b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: t})
}

func (b *builder) tmpfs(prop, dst string, opts []string, ro bool) {
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: opts})
	b.check(receipt.Check{Property: prop, Kind: receipt.KindFS, Path: dst, Value: "tmpfs"})
	if ro {
		b.check(receipt.Check{Property: prop, Kind: receipt.KindReadOnly, Path: dst})
	} else {
		b.writable = append(b.writable, dst)
		b.check(receipt.Check{Property: prop, Kind: receipt.KindWritable, Path: dst})
	}
}

func (b *builder) bind(prop, src, dst string, opts []string, ro, optional bool) {
	if ro {
		opts = append(opts, "ro")
	}
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts})
	if optional {
		b.optional = append(b.optional, src)
	}
	if ro {
		b.check(receipt.Check{Property: prop, Kind: receipt.KindReadOnly, Path: dst})
	} else {
		b.writable = append(b.writable, dst)
		b.check(receipt.Check{Property: prop, Kind: receipt.KindWritable, Path: dst})
	}
}

func (b *builder) tree(prop, p string, ro, optional bool) {
	b.trees = append(b.trees, Tree{Path: p, ReadOnly: ro, Optional: optional})
	if ro {
		b.check(receipt.Check{Property: prop, Kind: receipt.KindReadOnly, Path: p})
	}
}

func (b *builder) inaccessible(prop string, paths ...string) {
	for _, p := range paths {
		b.spec.Linux.MaskedPaths = append(b.spec.Linux.MaskedPaths, p)
		b.check(receipt.Check{Property: prop, Kind: receipt.KindInaccessible, Path: p})
	}
}

func (b *builder) dropCaps(prop string, caps ...string) {
	for _, c := range caps {
		if _, ok := b.drop[c]; !ok {
			b.drop[c] = prop
		}
	}
}

// Compile builds the sandbox: the always-on isolation, then each property
// in the order given (a later assignment of a list property adds to it, an
// empty one is refused rather than silently resetting).
func Compile(in *Input) (*Sandbox, error) {
	if len(in.Args) == 0 {
		return nil, fmt.Errorf("no COMMAND given")
	}
	rootless := in.UID != 0
	uid, gid := in.UID, in.GID
	if in.MapRoot {
		uid, gid = 0, 0
	}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: Stage},
		Process: &specs.Process{
			Args: in.Args, Env: append([]string(nil), in.Env...), Cwd: in.Cwd,
			User: specs.User{UID: uid, GID: gid},
		},
		Hostname: "",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}},
		},
	}
	b := &builder{in: in, spec: s, drop: map[string]string{}}
	// RootDirectory first, wherever it is given: it decides what the
	// paths of the others mean, and a unit's lines have no order.
	for _, p := range in.Props {
		if p.Name == "RootDirectory" {
			if err := b.apply(p); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range in.Props {
		if p.Name == "RootDirectory" {
			continue
		}
		if err := b.apply(p); err != nil {
			return nil, err
		}
	}
	for _, v := range in.Overlays {
		o, err := ParseOverlay(v)
		if err != nil {
			return nil, err
		}
		b.overlay(o)
	}
	if b.root != "" {
		s.Root.Path = Stage + b.root
		if !b.cwdSet {
			// The caller's directory is a host path.
			s.Process.Cwd = "/"
		}
	}
	if rootless || b.privateUsers || in.MapRoot {
		b.addNS(specs.UserNamespace)
		// The caller's own ids only: an unprivileged process may map
		// nothing else (and must deny setgroups to map its gid).
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: uid, HostID: in.UID, Size: 1}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: gid, HostID: in.GID, Size: 1}}
	}
	b.always()
	b.finishProc()
	b.finishFS()
	if err := b.finishCaps(uid); err != nil {
		return nil, err
	}
	b.finishSeccomp(s.Process.User.UID)
	b.finishResources()
	if r := s.Linux.Resources; r != nil && !(&Sandbox{Spec: s}).HasResources() {
		s.Linux.Resources = nil
	}
	if b.cwdHome {
		s.Process.Cwd = in.Home
	}
	if s.Process.Cwd == "" {
		s.Process.Cwd = "/"
	}
	return &Sandbox{Spec: s, Trees: b.trees, Checks: b.checks, Optional: b.optional, CwdOptional: b.cwdOptional, Filters: b.filters, Root: b.root, Overlays: b.overlays}, nil
}

func (b *builder) apply(p Property) error {
	where := ""
	if p.Where != "" && p.Where != "-p" {
		where = p.Where + ": "
	}
	row, ok := Lookup(p.Name)
	if !ok {
		return fmt.Errorf("%sproperty %s: unknown (hako sandbox --help lists the properties)", where, p.Name)
	}
	if row.Apply == nil {
		if row.Refuse != "" {
			return fmt.Errorf("%sproperty %s is not supported (%s)", where, p.Name, row.Refuse)
		}
		return fmt.Errorf("%sproperty %s is not supported yet", where, p.Name)
	}
	if p.Value == "" {
		return fmt.Errorf("%sproperty %s: empty value (resetting a list is not supported)", where, p.Name)
	}
	if err := row.Apply(b, p.Value); err != nil {
		return fmt.Errorf("%sproperty %s=%s: %w", where, p.Name, p.Value, err)
	}
	return nil
}

// always is what every sandbox gets and its receipt proves.
func (b *builder) always() {
	b.check(receipt.Check{Property: "(always) mount namespace", Kind: receipt.KindNewNS, Value: "mnt", Host: b.in.HostNS["mnt"]})
	b.check(receipt.Check{Property: "(always) PID namespace", Kind: receipt.KindNewNS, Value: "pid", Host: b.in.HostNS["pid"]})
	b.check(receipt.Check{Property: "(always) fresh /proc", Kind: receipt.KindOwnProc, Path: "/proc"})
	if b.spec.Linux.UIDMappings != nil {
		b.check(receipt.Check{Property: "(always, unprivileged) user namespace", Kind: receipt.KindNewNS, Value: "user", Host: b.in.HostNS["user"]})
	}
}

// finishFS puts the read-only trees in systemd's order: ProtectSystem
// first (strict: all of /, then /dev, /proc and /sys writable again), the
// other read-only paths, then what must stay writable (ReadWritePaths, and
// the sandbox's own writable mounts under a read-only parent).
func (b *builder) finishFS() {
	if b.apiVFS && b.root != "" {
		// Right after /proc: the properties' mounts may go below.
		api := []specs.Mount{{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "nodev", "noexec"}}}
		if !b.privateDevices {
			api = append(api, specs.Mount{Destination: "/dev", Type: "bind", Source: "/dev", Options: []string{"rbind", "nosuid"}})
		}
		api = append(api, specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=0755"}})
		b.spec.Mounts = append(b.spec.Mounts[:1:1], append(api, b.spec.Mounts[1:]...)...)
		// /dev is whatever the host's is (devtmpfs, or a tmpfs in a
		// container); its bind failing fails the setup.
		b.check(receipt.Check{Property: "MountAPIVFS", Kind: receipt.KindFS, Path: "/sys", Value: "sysfs"})
		b.check(receipt.Check{Property: "MountAPIVFS", Kind: receipt.KindFS, Path: "/run", Value: "tmpfs"})
	}
	if b.privateDevices {
		s := b.spec
		// noexec as systemd 252's private /dev (seen beside
		// systemd-run in the VM); systemd's is also read-only, this
		// one stays writable (README).
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "strictatime", "mode=755", "size=65536k"}},
			specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		)
		b.check(receipt.Check{Property: "PrivateDevices", Kind: receipt.KindFS, Path: "/dev", Value: "tmpfs"})
		b.writable = append(b.writable, "/dev")
	}
	var trees []Tree
	var except []string
	if b.strict {
		trees = append(trees, Tree{Path: "/", ReadOnly: true})
		for _, p := range []string{"/dev", "/proc", "/sys"} {
			trees = append(trees, Tree{Path: p, ReadOnly: false, Optional: true})
		}
		except = []string{"/dev", "/proc", "/sys"}
		// systemd 252's strict table leaves /home, /root and /run/user
		// as they are ("ProtectHome= is responsible for these"; seen
		// writable under systemd-run in the VM comparison). Writable
		// again recursively would also undo a read-only mount a
		// property put below them, so such a directory stays read-only
		// (stricter than systemd, never looser).
		if !b.protectHome {
			for _, p := range []string{"/home", "/root", "/run/user"} {
				if !b.readOnlyBelow(p) {
					trees = append(trees, Tree{Path: p, ReadOnly: false, Optional: true})
					except = append(except, p)
				}
			}
		}
	}
	trees = append(trees, b.deferReadOnlyTmpfs()...)
	trees = append(trees, b.trees...)
	for _, p := range b.rwPaths {
		trees = append(trees, Tree{Path: p.path, ReadOnly: false, Optional: p.optional})
		except = append(except, p.path)
		b.check(receipt.Check{Property: p.prop, Kind: receipt.KindWritable, Path: p.path})
	}
	if len(trees) > 0 {
		for _, w := range b.writable {
			trees = append(trees, Tree{Path: w, ReadOnly: false, Optional: true})
			except = append(except, w)
		}
	}
	if b.strict {
		b.check(receipt.Check{Property: "ProtectSystem", Kind: receipt.KindReadOnly, Path: "/", Except: append(except, b.spec.Linux.MaskedPaths...)})
	}
	// A read-only check of a tree below a writable one stays; a
	// read-only tree's check must not count writable mounts that a
	// later step made on purpose.
	for i := range b.checks {
		if b.checks[i].Kind == receipt.KindReadOnly && b.checks[i].Path != "/" {
			for _, e := range except {
				if e != b.checks[i].Path && strings.HasPrefix(e, b.checks[i].Path+"/") {
					b.checks[i].Except = append(b.checks[i].Except, e)
				}
			}
		}
	}
	b.trees = trees
}

// readOnlyBelow says whether a read-only mount, a masked path or a
// read-only tree of the properties lies at or below p.
func (b *builder) readOnlyBelow(p string) bool {
	under := func(d string) bool { return d == p || strings.HasPrefix(d, p+"/") }
	for _, m := range b.spec.Mounts {
		if under(m.Destination) && slices.Contains(m.Options, "ro") {
			return true
		}
	}
	for _, m := range b.spec.Linux.MaskedPaths {
		if under(m) {
			return true
		}
	}
	for _, t := range b.trees {
		if under(t.Path) && t.ReadOnly {
			return true
		}
	}
	return false
}

// deferReadOnlyTmpfs mounts a read-only tmpfs (TemporaryFileSystem=P:ro,
// ProtectHome=tmpfs) writable when another mount goes below it, and makes
// it read-only afterwards as a tree, as systemd does: mounted read-only at
// once, the mount point of e.g. BindReadOnlyPaths=/etc:/srv/etc could not
// be made in it. A writable bind below is writable again after it (the
// builder's writable list). The printed spec shows such a tmpfs without
// ro: a config.json cannot say "read-only after the mounts below" (runc
// too makes a read-only tmpfs so at once).
func (b *builder) deferReadOnlyTmpfs() []Tree {
	var trees []Tree
	for i := range b.spec.Mounts {
		m := &b.spec.Mounts[i]
		if m.Type != "tmpfs" || !slices.Contains(m.Options, "ro") {
			continue
		}
		below := false
		for _, l := range b.spec.Mounts[i+1:] {
			if strings.HasPrefix(l.Destination, strings.TrimSuffix(m.Destination, "/")+"/") {
				below = true
			}
		}
		if !below {
			continue
		}
		m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		trees = append(trees, Tree{Path: m.Destination, ReadOnly: true})
	}
	return trees
}

// finishCaps: root in the sandbox keeps every capability it had (as a
// systemd service running as root does) less what the properties drop; any
// other user has none, as after a plain setuid.
func (b *builder) finishCaps(uid uint32) error {
	var keep []string
	if uid == 0 {
		for _, c := range allCaps() {
			if _, dropped := b.drop[c]; !dropped {
				keep = append(keep, c)
			}
		}
	}
	var bounding []string
	for _, c := range allCaps() {
		if _, dropped := b.drop[c]; !dropped {
			bounding = append(bounding, c)
		}
	}
	caps := &specs.LinuxCapabilities{Bounding: bounding, Effective: keep, Permitted: keep}
	// AmbientCapabilities: as systemd, raised in the inheritable and
	// permitted sets too (the kernel's rule for ambient), so that a
	// non-root User= keeps them across execve.
	var ambient []string
	for _, c := range allCaps() {
		if !b.ambient[c] {
			continue
		}
		if prop, dropped := b.drop[c]; dropped {
			return fmt.Errorf("property AmbientCapabilities=%s: dropped from the bounding set by %s", c, prop)
		}
		ambient = append(ambient, c)
		n, _ := capByName(c)
		b.check(receipt.Check{Property: "AmbientCapabilities", Kind: receipt.KindCapAmbient, Path: c, Value: fmt.Sprint(int(n))})
	}
	if len(ambient) > 0 {
		caps.Ambient, caps.Inheritable = ambient, ambient
		if b.spec.Process.User.UID != 0 {
			caps.Effective, caps.Permitted = ambient, ambient
		}
	}
	b.spec.Process.Capabilities = caps
	for _, c := range allCaps() {
		if prop, dropped := b.drop[c]; dropped {
			n, _ := capByName(c)
			b.check(receipt.Check{Property: prop, Kind: receipt.KindCapDropped, Path: c, Value: fmt.Sprint(int(n))})
		}
	}
	return nil
}

// finishProc adds ProtectProc's hidepid= and ProcSubset's subset= to the
// sandbox's own /proc, and checks them in its mountinfo.
func (b *builder) finishProc() {
	for i := range b.spec.Mounts {
		m := &b.spec.Mounts[i]
		if m.Destination != "/proc" || m.Type != "proc" {
			continue
		}
		if b.procHide != "" {
			m.Options = append(m.Options, "hidepid="+b.procHide)
			b.check(receipt.Check{Property: "ProtectProc", Kind: receipt.KindMountOpt, Path: "/proc", Value: "hidepid=" + b.procHide})
		}
		if b.procSubset {
			m.Options = append(m.Options, "subset=pid")
			b.check(receipt.Check{Property: "ProcSubset", Kind: receipt.KindMountOpt, Path: "/proc", Value: "subset=pid"})
		}
	}
}

func allCaps() []string { return capabilityList() }

// Plan compiles the sandbox to the engine's plan: FromSpec's, with the
// host's root staged before it is bound, the trees after the pivot, no
// wait for `start`, and the parent-death signal and verify steps before ready.
func (sb *Sandbox) Plan(oci *plan.OCI) (*plan.Plan, error) {
	oci.Spec = sb.Spec
	oci.Rootfs = sb.Spec.Root.Path
	oci.NoNewKeyring = false
	pl, err := plan.FromSpec(oci)
	if err != nil {
		return nil, err
	}
	var filters []plan.Step
	for i := range sb.Filters {
		f, err := security.BuildSeccomp(&sb.Filters[i])
		if err != nil {
			return nil, fmt.Errorf("seccomp filter %d: %w", i, err)
		}
		filters = append(filters, plan.Step{Op: plan.OpSeccomp, Seccomp: f, FD: plan.NoFD})
	}
	checks, err := json.Marshal(sb.Checks)
	if err != nil {
		return nil, err
	}
	var out []plan.Step
	for _, s := range pl.Steps {
		switch s.Op {
		case plan.OpBindRoot:
			out = append(out, plan.Step{Op: plan.OpHoldSources, FD: plan.NoFD},
				plan.Step{Op: plan.OpStageHostRoot, Path: Stage, FD: plan.NoFD})
		case plan.OpWaitStart:
			continue
		case plan.OpConsole:
			if !sb.privateDev() {
				// The host's /dev: its /dev/console stays the host's
				// (and an unprivileged caller may not cover it).
				s.Value = ""
			}
		case plan.OpLookup:
			// COMMAND runs as PID 2 under a small init, not as PID 1:
			// the kernel drops SIGTERM and SIGINT sent to a PID 1 that
			// has no handler for them, so Ctrl-C and the signals hako
			// forwards would not stop a program that relies on the
			// default action. The init forwards them and reaps orphans.
			e := *s.Exec
			e.Reaper, e.ForwardSignals = true, true
			s.Exec = &e
		case plan.OpReady:
			// The filters last, after COMMAND's credentials and before
			// the receipt, which proves them loaded.
			out = append(out, filters...)
			out = append(out, plan.Step{Op: plan.OpParentDeathSignal, Flags: uint64(unix.SIGKILL), FD: plan.NoFD},
				plan.Step{Op: plan.OpVerify, Data: checks, FD: plan.NoFD})
		}
		if s.Op == plan.OpPivotRoot && sb.HasResources() {
			out = append(out, plan.Step{Op: plan.OpCgroupProbe, FD: plan.NoFD})
		}
		out = append(out, s)
		if s.Op == plan.OpBindRoot {
			for _, o := range sb.Overlays {
				st := plan.Step{Op: plan.OpOverlay, Path: o.Path, FD: plan.NoFD}
				if o.Upper != "" {
					st.Layers = []string{o.Upper, o.Work}
				}
				out = append(out, st)
			}
		}
		if s.Op == plan.OpPivotRoot {
			for _, t := range sb.Trees {
				st := plan.Step{Op: plan.OpTreeRO, Path: t.Path, ReadOnly: t.ReadOnly, FD: plan.NoFD}
				if t.Optional {
					st.Value = "optional"
				}
				out = append(out, st)
			}
		}
	}
	pl.Steps = out
	return pl, nil
}
