package bwrap

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
)

// Host is what the compiler needs to know of the caller; the command
// fills it in, tests make it up.
type Host struct {
	UID, GID int
	Umask    int
	Cwd      string
	// TTY is the terminal on stdout, bound as the sandbox's /dev/console
	// by --dev (bubblewrap's host_tty_dev), or "".
	TTY string
	// Stat reports whether a bind source exists, following symlinks as
	// bubblewrap's realpath does; its error is what bwrap prints.
	Stat   func(path string) error
	ReadFD ReadFD
	// Realpath resolves a source as bubblewrap's realpath(3) does.
	Realpath func(path string) (string, error)
	// Inherited are the caller's open fds (3 and up, not close-on-exec)
	// that no option consumes: they reach the command.
	Inherited []int
	// Bounding is the caller's bounding set by name; root's sandbox
	// starts with it (nil: every capability).
	Bounding map[string]bool
}

// Sandbox is a compiled command line: what the engine runs.
type Sandbox struct {
	Plan             *plan.Plan
	Unshare          uintptr
	UIDMaps, GIDMaps []specs.LinuxIDMapping
	// FDs are the caller's fds the plan's steps index (--file,
	// --bind-data), in order.
	FDs []int
	// NsOptions are nsenter.Opt* bits for the namespace helper.
	NsOptions uint32
	// StatusFD, if not -1, is the index after FDs where the plan expects
	// the write end of a pipe on which the init reports the command's
	// exit status.
	StatusFD int
	// Join are namespaces to enter, by path (--userns, --pidns).
	Join []string
	// Namespaces are those listed in --info-fd/--json-status-fd, in
	// bubblewrap's order (ns_infos): the mount namespace and each one
	// unshared.
	Namespaces []string
}

// Base is where the new root's tmpfs is mounted inside the sandbox's mount
// namespace before the first pivot (bubblewrap's base_path); the host's
// root is then at OldRoot and the sandbox's at NewRoot.
const (
	Base    = "/tmp"
	OldRoot = "/oldroot"
	NewRoot = "/newroot"
)

// unchanged is setresuid's and setresgid's -1: leave the id as it is.
const unchanged = -1

// coverProcDirs are bound read-only over themselves in a --proc where they
// are writable (bubblewrap's cover_proc_dirs).
var coverProcDirs = []string{"sys", "sysrq-trigger", "irq", "bus"}

// devNodes are the host's device nodes --dev binds.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

type compiler struct {
	h      *Host
	o      *Options
	steps  []plan.Step
	fds    []int
	pidNS  bool
	userNS bool
	uid    int // in the sandbox
	// tmpOverlays numbers the --tmp-overlay mounts' directories.
	tmpOverlays int
}

func st(op plan.Op) plan.Step { return plan.Step{Op: op, FD: plan.NoFD} }

func (c *compiler) add(s plan.Step) { c.steps = append(c.steps, s) }

// Compile turns parsed options into a plan with bubblewrap's defaults.
func Compile(o *Options, h *Host) (*Sandbox, error) {
	if len(o.Args) == 0 {
		return nil, die("No command specified")
	}
	// bubblewrap's checks, in its order; those on --unshare-user see only
	// what was asked, before an unprivileged caller's implied one.
	switch {
	case o.UsernsBlockFD >= 0 && !o.UnshareUser:
		return nil, die("--userns-block-fd requires --unshare-user")
	case o.UsernsBlockFD >= 0 && o.InfoFD < 0:
		return nil, die("--userns-block-fd requires --info-fd")
	case o.UsernsFD >= 0 && o.UnshareUser:
		return nil, die("--userns not compatible --unshare-user")
	case o.UsernsFD >= 0 && o.UnshareUserTry:
		return nil, die("--userns not compatible --unshare-user-try")
	case o.DisableUserns && !o.UnshareUser:
		return nil, die("--disable-userns requires --unshare-user")
	case o.DisableUserns && o.UsernsBlockFD >= 0:
		return nil, die("--disable-userns is not compatible with  --userns-block-fd")
	}
	joinUser := o.UsernsFD >= 0
	userNS := !joinUser && (o.UnshareUser || o.UnshareUserTry || h.UID != 0)
	if !userNS && !joinUser && o.UID >= 0 && o.UID != h.UID {
		return nil, die("Specifying --uid requires --unshare-user or --userns")
	}
	if !userNS && !joinUser && o.GID >= 0 && o.GID != h.GID {
		return nil, die("Specifying --gid requires --unshare-user or --userns")
	}
	if !o.UnshareUTS && o.Hostname != "" {
		return nil, die("Specifying --hostname requires --unshare-uts")
	}
	if o.AsPid1 && !o.UnsharePID {
		return nil, die("Specifying --as-pid-1 requires --unshare-pid")
	}
	if o.AsPid1 && len(o.LockFiles) > 0 {
		return nil, die("Specifying --as-pid-1 and --lock-file is not permitted")
	}
	sb := &Sandbox{}
	uid, gid := h.UID, h.GID
	if o.UID >= 0 {
		uid = o.UID
	}
	if o.GID >= 0 {
		gid = o.GID
	}
	var flags uintptr = unix.CLONE_NEWNS
	// keepIDs: the ids are the caller's as the user namespace sees them,
	// unless --uid/--gid say otherwise: a joined namespace, or one whose
	// maps the caller writes (bubblewrap never switches then).
	keepIDs := joinUser || o.UsernsBlockFD >= 0
	if userNS {
		flags |= unix.CLONE_NEWUSER
		if o.UsernsBlockFD < 0 {
			sb.UIDMaps = []specs.LinuxIDMapping{{ContainerID: uint32(uid), HostID: uint32(h.UID), Size: 1}}
			sb.GIDMaps = []specs.LinuxIDMapping{{ContainerID: uint32(gid), HostID: uint32(h.GID), Size: 1}}
		}
	}
	if keepIDs {
		// setresuid(-1) changes nothing.
		uid, gid = unchanged, unchanged
		if o.UID >= 0 {
			uid = o.UID
		}
		if o.GID >= 0 {
			gid = o.GID
		}
	}
	if joinUser {
		sb.Join = append(sb.Join, fmt.Sprintf("/proc/self/fd/%d", o.UsernsFD))
	}
	if o.PidnsFD >= 0 {
		sb.Join = append(sb.Join, fmt.Sprintf("/proc/self/fd/%d", o.PidnsFD))
	}
	ns := []struct {
		name string
		on   bool
		flag uintptr
	}{
		{"cgroup", o.UnshareCgroup || o.UnshareCgroupTry, unix.CLONE_NEWCGROUP},
		{"ipc", o.UnshareIPC, unix.CLONE_NEWIPC},
		{"mnt", true, 0},
		{"net", o.UnshareNet, unix.CLONE_NEWNET},
		{"pid", o.UnsharePID, unix.CLONE_NEWPID},
		{"uts", o.UnshareUTS, unix.CLONE_NEWUTS},
	}
	for _, n := range ns {
		if n.on {
			flags |= n.flag
			sb.Namespaces = append(sb.Namespaces, n.name)
		}
	}
	sb.Unshare = flags
	if o.DisableUserns {
		sb.NsOptions |= nsenter.OptDisableUserns | nsenter.OptAssertUsernsDisabled
	}
	if o.AssertUsernsDisabled {
		sb.NsOptions |= nsenter.OptAssertUsernsDisabled
	}
	if keepIDs {
		sb.NsOptions |= nsenter.OptKeepIDs
	}
	c := &compiler{h: h, o: o, pidNS: o.UnsharePID || o.PidnsFD >= 0, userNS: userNS || joinUser, uid: uid}

	// Setup runs with umask 0 so that --perms are exact, as bubblewrap's
	// umask(0) until just before exec.
	c.add(plan.Step{Op: plan.OpUmask, Mode: 0, FD: plan.NoFD})
	if h.UID != 0 {
		// An unprivileged parent reads the namespace ids for --info-fd
		// from /proc/<pid>/ns, which a non-dumpable process hides from
		// it. Nothing else runs in the sandbox yet; exec resets it.
		c.add(st(plan.OpDumpable))
	}
	// The parent writes --info-fd and waits for --block-fd here, with the
	// namespaces made and nothing of the sandbox set up yet.
	c.add(st(plan.OpRuntimeHooks))
	c.add(plan.Step{Op: plan.OpPropagation, Path: "/", Flags: unix.MS_SLAVE | unix.MS_REC, FD: plan.NoFD})
	c.add(plan.Step{Op: plan.OpNewRoot, Path: Base, Flags: uint64(o.TmpOverlays), FD: plan.NoFD})
	for i := range o.Ops {
		if err := c.op(&o.Ops[i]); err != nil {
			return nil, err
		}
		if filepath.Clean("/"+o.Ops[i].Dest) == "/" {
			// A mount on / itself covers the root the steps resolve in.
			c.add(plan.Step{Op: plan.OpNewRoot, Path: Base, Value: "reopen", FD: plan.NoFD})
		}
	}
	if o.UnshareNet {
		c.add(st(plan.OpLoopback))
	}
	if o.Hostname != "" {
		c.add(plan.Step{Op: plan.OpHostname, Value: o.Hostname, FD: plan.NoFD})
	}
	if o.Userns2FD > 0 {
		// Both held past the root change, the binary opened while the
		// host's /proc is in reach (fd 0 is no --userns2 to bubblewrap,
		// which tests fd > 0). Before the status
		// pipe, which the caller adds as the last fd.
		c.add(plan.Step{Op: plan.OpHoldFD, Value: "userns", FD: c.fd(o.Userns2FD)})
		c.add(plan.Step{Op: plan.OpHoldFD, Value: "exe", FD: plan.NoFD})
	}
	// An init stays to reap a PID namespace, and to hold the locks and the
	// --sync-fd while the sandbox runs. Its fds are taken before the root
	// change closes the rest.
	reaper := !o.AsPid1 && (o.UnsharePID || len(o.LockFiles) > 0 || o.SyncFD >= 0)
	if o.BlockFD >= 0 {
		c.add(plan.Step{Op: plan.OpHoldFD, Value: "block", FD: c.fd(o.BlockFD)})
	}
	sb.StatusFD = -1
	if reaper {
		if o.SyncFD >= 0 {
			c.add(plan.Step{Op: plan.OpHoldFD, FD: c.fd(o.SyncFD)})
		}
		// The status comes back as soon as the command ends, as
		// bubblewrap's monitor exits then; the init stays while
		// anything else in the sandbox lives, holding the locks.
		sb.StatusFD = len(c.fds)
		c.add(plan.Step{Op: plan.OpHoldFD, Value: "status", FD: sb.StatusFD})
	}
	c.add(plan.Step{Op: plan.OpPivotRoot, Path: NewRoot, FD: plan.NoFD})
	if o.Userns2FD > 0 {
		// bubblewrap enters it right after the root change, before it
		// drops its privileges.
		c.add(st(plan.OpEnterUserNS))
	}
	if o.NewSession {
		c.add(st(plan.OpSetsid))
	}
	if o.DieWithParent {
		c.add(plan.Step{Op: plan.OpParentDeathSignal, Flags: uint64(unix.SIGKILL), FD: plan.NoFD})
	}
	// Fds the caller leaves open reach the command at their numbers, as
	// bubblewrap closes none (Flatpak passes its own this way); the rest,
	// hako's, close at exec.
	c.add(plan.Step{Op: plan.OpCloseFds, Flags: 3, Value: keepList(h.Inherited), FD: plan.NoFD})
	c.cwd(c.userNS)
	// bubblewrap sets no_new_privs before anything else, always.
	c.add(st(plan.OpNoNewPrivs))
	caps, err := c.caps()
	if err != nil {
		return nil, err
	}
	bounding := caps
	if !c.userNS {
		// Root without a user namespace keeps its bounding set whatever
		// it drops (bubblewrap drops it only in a user namespace).
		bounding = &specs.LinuxCapabilities{Bounding: c.callerBounding()}
	}
	c.add(plan.Step{Op: plan.OpBounding, Caps: bounding, FD: plan.NoFD})
	user := plan.Step{Op: plan.OpUser, User: &specs.User{UID: uint32(uid), GID: uint32(gid)}, FD: plan.NoFD}
	if c.userNS {
		// setgroups is "deny" in a user namespace an unprivileged
		// caller made (seed 002), and bubblewrap calls setgroups in no
		// user namespace; the child may have no /proc to see it.
		user.Value = plan.UserNoSetgroups
	}
	c.add(user)
	c.add(plan.Step{Op: plan.OpCaps, Caps: caps, FD: plan.NoFD})
	if o.BlockFD >= 0 {
		// bubblewrap waits here, the sandbox set up and its privileges
		// dropped, before the seccomp filters and the exec.
		c.add(st(plan.OpBlock))
	}
	// The sandbox's init holds the locks (bubblewrap's do_init), opened as
	// the user from the working directory just entered; close-on-exec, so
	// the command does not hold them too.
	for _, l := range o.LockFiles {
		c.add(plan.Step{Op: plan.OpLockFile, Path: l, FD: plan.NoFD})
	}
	c.add(plan.Step{Op: plan.OpUmask, Mode: uint32(h.Umask), FD: plan.NoFD})
	c.add(plan.Step{Op: plan.OpLookup, Exec: &plan.Exec{Args: o.Args, Argv0: o.Argv0, Env: o.Env, UID: uint32(uid), Exact: true, Reaper: reaper}, FD: plan.NoFD})
	for _, fd := range o.SeccompFDs {
		f, err := c.seccomp(fd)
		if err != nil {
			return nil, err
		}
		c.add(plan.Step{Op: plan.OpSeccomp, Seccomp: f, FD: plan.NoFD})
	}
	c.add(st(plan.OpReady))
	c.add(st(plan.OpExec))
	sb.Plan = &plan.Plan{Kind: plan.KindInit, Steps: c.steps}
	sb.FDs = c.fds
	return sb, nil
}

// inNew is a path of the sandbox as seen before the final pivot.
func inNew(p string) string { return filepath.Join(NewRoot, filepath.Clean("/"+p)) }

func (c *compiler) mount(m *rootfs.Mount, what string) {
	c.add(plan.Step{Op: plan.OpMount, Value: what, Mount: m, FD: plan.NoFD})
}

func fsMount(fstype, dest string, opts ...string) *rootfs.Mount {
	return &rootfs.Mount{Kind: fstype, Type: fstype, Source: fstype, Destination: dest, Options: rootfs.ParseOptions(opts)}
}

func bindMount(src, dest string, opts ...string) *rootfs.Mount {
	return &rootfs.Mount{Kind: rootfs.KindBind, Source: filepath.Join(OldRoot, src), Destination: dest, Options: rootfs.ParseOptions(append([]string{"rbind"}, opts...))}
}

func (c *compiler) op(op *Op) error {
	what := "--" + string(op.Kind)
	switch op.Kind {
	case Bind, ROBind, DevBind:
		src := op.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(c.h.Cwd, src)
		}
		if err := c.h.Stat(src); err != nil {
			if op.Try {
				return nil
			}
			return die("Can't find source path %s: %s", op.Source, errText(err))
		}
		if op.BindFD {
			// The fd's path, bound by name as bubblewrap does (a tree
			// of another mount namespace cannot be cloned); then the
			// mount is checked to be the fd's file.
			real, err := c.h.Realpath(src)
			if err != nil {
				return die("Can't find source path %s: %s", op.Source, errText(err))
			}
			src = real
		}
		// bubblewrap's bind_mount: always nosuid, nodev but for
		// --dev-bind, read-only for --ro-bind, on every submount.
		opts := []string{"rnosuid"}
		if op.Kind != DevBind {
			opts = append(opts, "rnodev")
		}
		if op.Kind == ROBind {
			opts = append(opts, "rro")
		}
		c.mount(bindMount(src, op.Dest, opts...), what)
		if op.BindFD {
			c.add(plan.Step{Op: plan.OpSameFile, Path: inNew(op.Dest), FD: c.fd(op.FD)})
		}
	case Overlay, TmpOverlay, ROOverlay:
		return c.overlay(op)
	case RemountRO:
		c.add(plan.Step{Op: plan.OpRemountRO, Path: inNew(op.Dest), FD: plan.NoFD})
	case Proc:
		if c.pidNS {
			c.mount(fsMount("proc", op.Dest, "nosuid", "nodev", "noexec"), what)
		} else {
			// Sharing the PID namespace, the host's procfs is the
			// one that shows it (bubblewrap binds oldroot/proc).
			c.mount(bindMount("/proc", op.Dest), what)
		}
		// Where they are writable (to real root) they are covered
		// read-only; unprivileged they are not writable to begin with.
		if c.h.UID == 0 {
			for _, d := range coverProcDirs {
				if d == "sys" && c.userNS {
					// Not writable to root of a user namespace: bwrap's
					// access(W_OK) skips it.
					continue
				}
				c.add(plan.Step{Op: plan.OpReadonly, Path: inNew(filepath.Join(op.Dest, d)), FD: plan.NoFD})
			}
		}
	case Dev:
		c.dev(op.Dest)
	case Mqueue:
		c.mount(fsMount("mqueue", op.Dest), what)
	case Tmpfs:
		m := fsMount("tmpfs", op.Dest, "nosuid", "nodev")
		m.Size = op.Size
		perms := uint32(op.Perms)
		m.Perms = &perms
		c.mount(m, what)
	case Dir:
		c.add(plan.Step{Op: plan.OpDir, Path: op.Dest, Mode: uint32(op.Perms), FD: plan.NoFD})
	case File:
		c.add(plan.Step{Op: plan.OpFile, Path: op.Dest, Mode: uint32(op.Perms), FD: c.fd(op.FD)})
	case BindData, ROBindData:
		c.add(plan.Step{Op: plan.OpBindData, Path: op.Dest, Mode: uint32(op.Perms), ReadOnly: op.Kind == ROBindData, FD: c.fd(op.FD)})
	case Symlink:
		c.add(plan.Step{Op: plan.OpSymlink, Path: op.Dest, Value: op.Source, FD: plan.NoFD})
	case Chmod:
		c.add(plan.Step{Op: plan.OpChmod, Path: op.Dest, Mode: uint32(op.Perms), FD: plan.NoFD})
	default:
		return die("%s: unknown operation", what)
	}
	return nil
}

// overlay is bubblewrap's overlay mount: the layers read from the host
// (realpath'd as bind sources are), the upper and work directories the
// caller's or, for --tmp-overlay, a pair on the setup tmpfs that nothing in
// the sandbox can reach. userxattr, as bubblewrap always asks.
func (c *compiler) overlay(op *Op) error {
	real := func(p string) (string, error) {
		abs := p
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(c.h.Cwd, abs)
		}
		r, err := c.h.Realpath(abs)
		if err != nil {
			return "", die("Can't find source path %s: %s", p, errText(err))
		}
		return r, nil
	}
	var opts []string
	switch op.Kind {
	case Overlay:
		up, err := real(op.Source)
		if err != nil {
			return err
		}
		work, err := real(op.Work)
		if err != nil {
			return err
		}
		opts = append(opts, "upperdir="+OldRoot+up, "workdir="+OldRoot+work)
	case TmpOverlay:
		opts = append(opts, fmt.Sprintf("upperdir=/tmp-overlay-upper-%d", c.tmpOverlays), fmt.Sprintf("workdir=/tmp-overlay-work-%d", c.tmpOverlays))
		c.tmpOverlays++
	}
	var lower []string
	for _, s := range op.Sources {
		r, err := real(s)
		if err != nil {
			return err
		}
		lower = append(lower, OldRoot+escapeLayer(r))
	}
	opts = append(opts, "lowerdir="+strings.Join(lower, ":"), "userxattr")
	m := &rootfs.Mount{Kind: "overlay", Type: "overlay", Source: "overlay", Destination: op.Dest, Options: rootfs.ParseOptions(opts)}
	c.mount(m, "--"+string(op.Kind))
	return nil
}

// escapeLayer escapes what overlayfs would split a lowerdir list on.
func escapeLayer(p string) string {
	r := strings.NewReplacer(`\`, `\\`, ":", `\:`)
	return r.Replace(p)
}

// keepList renders the caller's fds for OpCloseFds.
func keepList(fds []int) string {
	s := make([]string, len(fds))
	for i, fd := range fds {
		s[i] = strconv.Itoa(fd)
	}
	return strings.Join(s, ",")
}

func (c *compiler) fd(fd int) int {
	c.fds = append(c.fds, fd)
	return len(c.fds) - 1
}

// dev is bubblewrap's SETUP_MOUNT_DEV, step for step: a tmpfs, the host's
// harmless nodes bound in, the standard links, shm, a private devpts.
func (c *compiler) dev(dest string) {
	c.mount(fsMount("tmpfs", dest, "nosuid", "nodev", "mode=0755"), "--dev")
	for _, n := range devNodes {
		c.mount(bindMount(filepath.Join("/dev", n), filepath.Join(dest, n), "rnosuid"), "--dev")
	}
	links := [][2]string{{"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"/proc/self/fd", "fd"}, {"/proc/kcore", "core"}}
	for _, l := range links {
		c.add(plan.Step{Op: plan.OpSymlink, Value: l[0], Path: filepath.Join(dest, l[1]), FD: plan.NoFD})
	}
	c.add(plan.Step{Op: plan.OpDir, Path: filepath.Join(dest, "shm"), Mode: 0o755, FD: plan.NoFD})
	c.mount(fsMount("devpts", filepath.Join(dest, "pts"), "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=620"), "--dev")
	c.add(plan.Step{Op: plan.OpSymlink, Value: "pts/ptmx", Path: filepath.Join(dest, "ptmx"), FD: plan.NoFD})
	if c.h.TTY != "" {
		c.mount(bindMount(c.h.TTY, filepath.Join(dest, "console"), "rnosuid"), "--dev")
	}
}

// cwd is bubblewrap's choice of working directory: --chdir, or the
// caller's if the sandbox has it, or $HOME, or /: the first try that
// works wins.
func (c *compiler) cwd(userNS bool) {
	if c.o.Chdir != "" {
		c.add(plan.Step{Op: plan.OpCwd, Path: c.o.Chdir, FD: plan.NoFD})
		return
	}
	if c.h.Cwd != "" {
		c.add(plan.Step{Op: plan.OpCwd, Path: c.h.Cwd, Value: plan.CwdTry, FD: plan.NoFD})
	}
	for _, e := range c.o.Env {
		if home, ok := strings.CutPrefix(e, "HOME="); ok && home != "" {
			c.add(plan.Step{Op: plan.OpCwd, Path: home, Value: plan.CwdTry, FD: plan.NoFD})
		}
	}
}

// caps is bubblewrap's requested_caps: every capability for root, none
// otherwise, then each --cap-add and --cap-drop in order.
func (c *compiler) caps() (*specs.LinuxCapabilities, error) {
	all := security.KnownCapabilities()
	set := map[string]bool{}
	if c.h.UID == 0 {
		for _, n := range all {
			set[n] = c.h.Bounding == nil || c.h.Bounding[n]
		}
	}
	for _, op := range c.o.CapOps {
		if op.Name == "ALL" {
			for _, n := range all {
				set[n] = op.Add
			}
			continue
		}
		set[op.Name] = op.Add
	}
	var names []string
	for _, n := range all {
		if set[n] {
			names = append(names, n)
		}
	}
	caps := &specs.LinuxCapabilities{Bounding: names, Effective: names, Permitted: names, Inheritable: names}
	if c.uid != 0 {
		// Only a non-root user needs them ambient to keep them past exec.
		caps.Ambient = names
	}
	return caps, nil
}

func (c *compiler) callerBounding() []string {
	var names []string
	for _, n := range security.KnownCapabilities() {
		if c.h.Bounding == nil || c.h.Bounding[n] {
			names = append(names, n)
		}
	}
	return names
}

// capName is libcap's cap_from_name: "cap_sys_admin", any case; "ALL" too.
func capName(s string) (string, bool) {
	u := strings.ToUpper(s)
	if u == "ALL" {
		return u, true
	}
	for _, n := range security.KnownCapabilities() {
		if n == u {
			return n, true
		}
	}
	return "", false
}

// seccomp reads a compiled classic-BPF program (struct sock_filter[], as
// Flatpak and the coding-agent sandboxes write it) from fd.
func (c *compiler) seccomp(fd int) (*security.Seccomp, error) {
	data, err := c.h.ReadFD(fd)
	if err != nil {
		return nil, die("Can't read seccomp data: %s", errText(err))
	}
	if len(data) == 0 || len(data)%8 != 0 {
		return nil, die("Invalid seccomp data, must be multiple of 8")
	}
	wire, _ := json.Marshal(map[string]any{"bpf": base64.StdEncoding.EncodeToString(data), "flags": 0})
	var f security.Seccomp
	if err := json.Unmarshal(wire, &f); err != nil {
		return nil, die("Invalid seccomp data: %v", err)
	}
	return &f, nil
}
