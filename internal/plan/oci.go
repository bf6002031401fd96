package plan

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/spec"
)

// OCI is what FromSpec compiles: a validated config.json and what the
// parent knows besides (the flags, the cgroups it made, the filter it
// compiled). Nothing here is looked up on the host by the compiler.
type OCI struct {
	Spec   *specs.Spec
	Bundle string // absolute
	Rootfs string // absolute, symlink-free
	// NoPivot is --no-pivot, NoNewKeyring --no-new-keyring.
	NoPivot, NoNewKeyring bool
	// Rootless hako; HostInUserNS: hako itself runs in a user namespace
	// (then mknod is refused even without one in the config).
	Rootless, HostInUserNS bool
	Cgroups                []rootfs.CgroupMount
	Seccomp                *security.Seccomp
	// PreserveFds counts the fds from 3 up that the process keeps, the
	// ListenFds (LISTEN_FDS) among them.
	PreserveFds, ListenFds int
}

// Rlimits maps the spec's names to resource numbers.
var Rlimits = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
	"RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
	"RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
	"RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

func step(op Op) Step { return Step{Op: op, FD: NoFD} }

func pathStep(op Op, path string) Step { s := step(op); s.Path = path; return s }

// FromSpec compiles the container's first process: the order is runc's
// (its prepareRootfs, finalizeRootfs and finalizeNamespace).
func FromSpec(in *OCI) (*Plan, error) {
	s := in.Spec
	if s.Process == nil {
		return nil, fmt.Errorf("process: missing")
	}
	lx := s.Linux
	if lx == nil {
		lx = &specs.Linux{}
	}
	c := &compiler{in: in}
	var err error
	um := step(OpUmask)
	c.add(um)
	newMountNS := ns.Has(lx.Namespaces, specs.MountNamespace)
	prop, ok := rootfs.ParsePropagation(lx.RootfsPropagation)
	if !ok && lx.RootfsPropagation != "" {
		return nil, fmt.Errorf("linux.rootfsPropagation %q: unknown", lx.RootfsPropagation)
	}
	devRO := false
	if newMountNS {
		if devRO, err = c.mounts(s, lx, prop); err != nil {
			return nil, err
		}
	}
	if ns.IsNew(lx.Namespaces, specs.NetworkNamespace) {
		c.add(step(OpLoopback))
	}
	if err := c.sysctls(lx.Sysctl); err != nil {
		return nil, err
	}
	if ns.Has(lx.Namespaces, specs.UTSNamespace) {
		if s.Hostname != "" {
			c.add(Step{Op: OpHostname, Value: s.Hostname, FD: NoFD})
		}
		if s.Domainname != "" {
			c.add(Step{Op: OpDomainname, Value: s.Domainname, FD: NoFD})
		}
	}
	if h := s.Hooks; h != nil && (len(h.Prestart) > 0 || len(h.CreateRuntime) > 0) { //nolint:staticcheck // prestart is deprecated but still honoured
		c.add(step(OpRuntimeHooks))
	}
	if h := s.Hooks; h != nil && len(h.CreateContainer) > 0 {
		// runc runs them from the rootfs, and hooks rely on it.
		c.add(Step{Op: OpHooks, Value: "createContainer", Hooks: h.CreateContainer, Path: in.Rootfs, FD: NoFD})
	}
	switch {
	case !newMountNS:
		c.add(pathStep(OpChroot, in.Rootfs))
	case in.NoPivot:
		c.add(pathStep(OpMoveRoot, in.Rootfs))
	default:
		c.add(pathStep(OpPivotRoot, in.Rootfs))
	}
	// A new session: the container can never push input into the
	// caller's terminal with TIOCSTI (bubblewrap CVE-2017-5226).
	c.add(step(OpSetsid))
	if s.Process.Terminal {
		c.add(Step{Op: OpConsole, Value: "dev-console", UID: s.Process.User.UID, ConsoleSize: s.Process.ConsoleSize, FD: NoFD})
	}
	c.finalize(s, lx, prop, devRO)
	if !in.NoNewKeyring {
		c.add(step(OpKeyring))
	}
	if p := lx.Personality; p != nil {
		st, err := personality(p)
		if err != nil {
			return nil, err
		}
		c.add(st)
	}
	proc := s.Process
	if in.ListenFds > 0 {
		cp := *proc
		cp.Env = append(append([]string{}, proc.Env...), "LISTEN_FDS="+strconv.Itoa(in.ListenFds), "LISTEN_PID=1")
		proc = &cp
	}
	if c.attrs, err = attributes(proc, lx, false); err != nil {
		return nil, err
	}
	if err := c.process(proc, in.Seccomp, in.PreserveFds); err != nil {
		return nil, err
	}
	c.add(step(OpReady))
	c.add(step(OpWaitStart))
	if h := s.Hooks; h != nil && len(h.StartContainer) > 0 {
		c.add(Step{Op: OpHooks, Value: "startContainer", Hooks: h.StartContainer, FD: NoFD})
	}
	c.add(Step{Op: OpExec, FD: NoFD})
	return &Plan{Kind: KindInit, Steps: c.steps}, nil
}

// ForExec compiles a process `exec` adds to a running container.
func ForExec(proc *specs.Process, filter *security.Seccomp, preserveFds int) (*Plan, error) {
	return forExec(proc, nil, filter, preserveFds)
}

func forExec(proc *specs.Process, lx *specs.Linux, filter *security.Seccomp, preserveFds int) (*Plan, error) {
	c := &compiler{}
	var err error
	if c.attrs, err = attributes(proc, lx, true); err != nil {
		return nil, err
	}
	c.add(Step{Op: OpUmask, Mode: 0o022, FD: NoFD})
	if proc.Terminal {
		c.add(step(OpSetsid))
		c.add(Step{Op: OpConsole, UID: proc.User.UID, ConsoleSize: proc.ConsoleSize, FD: NoFD})
	}
	if err := c.process(proc, filter, preserveFds); err != nil {
		return nil, err
	}
	c.add(step(OpReady))
	c.add(Step{Op: OpExec, FD: NoFD})
	return &Plan{Kind: KindExec, Steps: c.steps}, nil
}

type compiler struct {
	in    *OCI
	steps []Step
	// attrs are attributes' steps, which process places after
	// no_new_privs.
	attrs []Step
}

func (c *compiler) add(s Step) { c.steps = append(c.steps, s) }

// mounts compiles everything before the spec's sysctls in a new mount
// namespace. It reports whether /dev is to be made read-only at the end.
func (c *compiler) mounts(s *specs.Spec, lx *specs.Linux, prop uintptr) (bool, error) {
	// An unbindable / would refuse the rootfs bind; it is applied to the
	// new / after pivot_root, like every configured propagation.
	early := prop
	if early == 0 || early&unix.MS_UNBINDABLE != 0 {
		early = unix.MS_PRIVATE | unix.MS_REC
	}
	c.add(Step{Op: OpPropagation, Path: "/", Flags: uint64(early), FD: NoFD})
	// After a recursive private or slave propagation on /, no mount of
	// the namespace is shared, and the parent mount of the rootfs cannot
	// be: its check (a parse of the whole mountinfo) is for a shared or a
	// non-recursive propagation only.
	if early&unix.MS_REC == 0 || early&unix.MS_SHARED != 0 {
		c.add(pathStep(OpParentPrivate, c.in.Rootfs))
	}
	br := pathStep(OpBindRoot, c.in.Rootfs)
	br.Cgroups = c.in.Cgroups
	c.add(br)
	devRO := false
	for i, m := range s.Mounts {
		if err := refuseUnapplied(i, m); err != nil {
			return false, err
		}
		mnt, ro, err := c.mount(s, m)
		if err != nil {
			return false, fmt.Errorf("mounts[%d]: %w", i, err)
		}
		devRO = devRO || ro
		c.add(Step{Op: OpMount, Value: "mounts[" + strconv.Itoa(i) + "]", Mount: mnt, FD: NoFD})
	}
	if rootfs.NeedsDev(s) {
		inUserNS := ns.Has(lx.Namespaces, specs.UserNamespace) || c.in.HostInUserNS
		c.add(Step{Op: OpDev, Devices: rootfs.Devices(s), InUserNS: inUserNS, FD: NoFD})
	}
	return devRO, nil
}

// mount decides how one of config.json's mounts is made.
//
// Rootless without a cgroup namespace, every cgroup mount is made read-only
// whatever the config says: the cgroups visible there are the user's
// delegated ones, which the container must not write (CVE-2023-25809).
func (c *compiler) mount(s *specs.Spec, m specs.Mount) (*rootfs.Mount, bool, error) {
	opts := m.Options
	if (m.Type == "cgroup" || m.Type == "cgroup2") && readOnlyCgroups(c.in.Rootless, s) {
		opts = append(append([]string(nil), m.Options...), "ro")
	}
	o := rootfs.ParseOptions(opts)
	uids, gids, err := spec.MountIDMaps(m, s.Linux)
	if err != nil {
		return nil, false, err
	}
	mnt := &rootfs.Mount{Type: m.Type, Source: m.Source, Destination: m.Destination, UIDMappings: uids, GIDMappings: gids}
	switch {
	case o.IDMap || len(uids) > 0:
		mnt.Kind, o.Bind = rootfs.KindIDMap, true
	case o.Bind || m.Type == "bind":
		mnt.Kind = rootfs.KindBind
	case m.Type == "cgroup":
		mnt.Kind = rootfs.KindCgroup
	default:
		mnt.Kind = m.Type
	}
	// A bind mount makes no superblock, so filesystem data would be
	// dropped without a word; runc 1.5 refuses it in these words.
	if (mnt.Kind == rootfs.KindBind || mnt.Kind == rootfs.KindIDMap) && len(o.Data) > 0 {
		return nil, false, fmt.Errorf("options %q: bind mounts cannot have any filesystem-specific options applied", o.Data)
	}
	if (mnt.Kind == rootfs.KindBind || mnt.Kind == rootfs.KindIDMap) && !filepath.IsAbs(mnt.Source) {
		mnt.Source = filepath.Join(c.in.Bundle, mnt.Source)
	}
	devRO := false
	if filepath.Clean(m.Destination) == "/dev" && o.Attr&unix.MOUNT_ATTR_RDONLY != 0 {
		// /dev gets submounts (pts, shm, mqueue), device nodes and
		// symlinks after this, and /dev/console at the end: runc makes
		// it read-only last (its finalizeRootfs), and so does the plan.
		o.Attr &^= unix.MOUNT_ATTR_RDONLY
		devRO = true
	}
	mnt.Options = o
	return mnt, devRO, nil
}

func readOnlyCgroups(rootless bool, s *specs.Spec) bool {
	if rootless && (s.Linux == nil || !ns.IsNew(s.Linux.Namespaces, specs.CgroupNamespace)) {
		return true
	}
	return false
}

// sysctls in name order, so that a plan is the same for the same config.
func (c *compiler) sysctls(sysctls map[string]string) error {
	keys := make([]string, 0, len(sysctls))
	for k := range sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rel, err := spec.SysctlPath(k)
		if err != nil {
			return fmt.Errorf("linux.sysctl: %w", err)
		}
		c.add(Step{Op: OpSysctl, Path: rel, Value: sysctls[k], FD: NoFD})
	}
	return nil
}

// finalize compiles what follows pivot_root: the working directory, masked
// and read-only paths, a read-only root, the configured propagation of /.
func (c *compiler) finalize(s *specs.Spec, lx *specs.Linux, prop uintptr, devRO bool) {
	if s.Process.Cwd != "" {
		c.add(Step{Op: OpDir, Path: s.Process.Cwd, Mode: 0o755, FD: NoFD})
	}
	if devRO {
		c.add(pathStep(OpRemountRO, "/dev"))
	}
	for _, p := range lx.MaskedPaths {
		c.add(pathStep(OpMask, p))
	}
	for _, p := range lx.ReadonlyPaths {
		c.add(pathStep(OpReadonly, p))
	}
	if s.Root != nil && s.Root.Readonly {
		c.add(pathStep(OpRemountRO, "/"))
	}
	if prop != 0 {
		c.add(Step{Op: OpPropagation, Path: "/", Flags: uint64(prop), FD: NoFD})
	}
}

// process compiles the process's properties in runc's order (its
// finalizeNamespace): rlimits and no_new_privs while still root, an early
// seccomp filter when no_new_privs is off (loading one then needs
// CAP_SYS_ADMIN), the bounding set, the user, the other capability sets,
// the working directory, then the executable lookup so a missing binary
// fails `create`, not `start`; with no_new_privs the filter last.
func (c *compiler) process(proc *specs.Process, filter *security.Seccomp, preserveFds int) error {
	// No fd of hako's may reach the container (CVE-2024-21626).
	c.add(Step{Op: OpCloseFds, Flags: uint64(3 + preserveFds), FD: NoFD})
	if proc.Cwd != "" {
		c.add(pathStep(OpCwd, proc.Cwd))
	}
	if proc.NoNewPrivileges {
		c.add(step(OpNoNewPrivs))
	}
	c.steps = append(c.steps, c.attrs...)
	if proc.ApparmorProfile != "" {
		c.add(Step{Op: OpAppArmor, Value: proc.ApparmorProfile, FD: NoFD})
	}
	if proc.SelinuxLabel != "" {
		c.add(Step{Op: OpSELinux, Value: proc.SelinuxLabel, FD: NoFD})
	}
	for _, r := range proc.Rlimits {
		res, ok := Rlimits[r.Type]
		if !ok {
			return fmt.Errorf("process.rlimits: unknown type %q", r.Type)
		}
		c.add(Step{Op: OpRlimit, Rlimit: &Rlimit{Name: r.Type, Resource: res, Soft: r.Soft, Hard: r.Hard}, FD: NoFD})
	}
	if filter != nil && !proc.NoNewPrivileges {
		c.add(Step{Op: OpSeccomp, Seccomp: filter, FD: NoFD})
	}
	c.add(Step{Op: OpBounding, Caps: proc.Capabilities, FD: NoFD})
	u := proc.User
	c.add(Step{Op: OpUser, User: &u, FD: NoFD})
	c.add(Step{Op: OpCaps, Caps: proc.Capabilities, FD: NoFD})
	if proc.Cwd != "" {
		c.add(pathStep(OpCwdAsUser, proc.Cwd))
	}
	umask := uint32(0o022)
	if proc.User.Umask != nil {
		umask = *proc.User.Umask
	}
	c.add(Step{Op: OpUmask, Mode: umask, FD: NoFD})
	c.add(Step{Op: OpLookup, Exec: &Exec{Args: proc.Args, Env: proc.Env, UID: proc.User.UID}, FD: NoFD})
	if filter != nil && proc.NoNewPrivileges {
		// As late as runc 1.2+ loads it: after everything that sets the
		// process up, before the init reports ready and waits for start.
		c.add(Step{Op: OpSeccomp, Seccomp: filter, FD: NoFD})
	}
	return nil
}
