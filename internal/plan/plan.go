// Package plan is the contract between hako and a container process: an
// ordered list of typed setup steps that the parent compiles once, from an
// input it has validated, and that the child (internal/initproc) applies in
// order without reading a config or deciding anything again. Its model is
// bubblewrap's SetupOp list: one small operation per step, applied inside
// the new namespaces in the order given.
//
// Three front ends produce plans:
//
//   - config.json (OCI runtime-spec), compiled by FromSpec in this package,
//     used by create, run and exec;
//   - systemd unit properties for `hako sandbox` (PrivateTmp,
//     ProtectSystem, BindReadOnlyPaths, TemporaryFileSystem, ...), which
//     internal/sandbox turns into a spec for FromSpec plus the steps a
//     spec cannot say;
//   - bubblewrap's argv for `hako bwrap` (--bind, --ro-bind, --dev-bind,
//     --tmpfs with --size and --perms, --dir, --symlink, --file FD,
//     --bind-data FD, --chmod, --remount-ro, ...), compiled step by step by
//     internal/bwrap.
//
// The plan starts where the Go runtime starts in the child. What must
// happen before it, single-threaded (oom_score_adj, v1 cgroup joins,
// setns, unshare, id maps, time offsets, the fork into a new PID
// namespace), is internal/nsenter's Request, compiled from the same input
// and sent over the same framing (internal/frame) just before the plan.
// What the runtime-spec says happens outside the container stays in the
// parent: creating the cgroup and its limits, moving netDevices into the
// network namespace, and the prestart and createRuntime hooks, for which
// the child stops at a step (OpRuntimeHooks) until the parent has run them.
//
// Some step kinds (OpDir, OpFile, OpBindData, OpSymlink, OpChmod, a tmpfs's
// Size and Perms) exist for those front ends although config.json cannot
// yet express them; the child applies them all the same.
//
// Compiling is pure: no syscalls, so a plan can be printed (`hako --debug`)
// and tested without privilege.
package plan

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
)

// Kinds of plan: the container's first process, or one exec adds.
const (
	KindInit = "init"
	KindExec = "exec"
)

// Op is a step kind.
type Op string

// Step kinds, in roughly the order a plan uses them.
const (
	OpUmask         Op = "umask"          // Mode
	OpPropagation   Op = "propagation"    // Path, Flags (MS_* propagation)
	OpParentPrivate Op = "parent-private" // Path: make the mount holding it private if shared
	OpBindRoot      Op = "bind-root"      // Path: bind the rootfs onto itself, open it for the mounts after
	OpMount         Op = "mount"          // Mount; FD: a source or idmapped tree the parent opened
	OpDev           Op = "dev"            // Devices, InUserNS: nodes and /dev's standard symlinks
	OpDir           Op = "dir"            // Path, Mode: mkdir -p (bwrap --dir, the process's cwd)
	OpFile          Op = "file"           // Path, Mode, Data or FD: a file with these contents (bwrap --file)
	OpBindData      Op = "bind-data"      // Path, Data or FD, ReadOnly: bind a file with these contents (bwrap --bind-data)
	OpSymlink       Op = "symlink"        // Path, Value (the target)
	OpChmod         Op = "chmod"          // Path, Mode
	OpRemountRO     Op = "remount-ro"     // Path: make the mount there read-only (bwrap --remount-ro)
	OpMask          Op = "mask"           // Path (linux.maskedPaths)
	OpReadonly      Op = "readonly"       // Path (linux.readonlyPaths)
	OpLoopback      Op = "loopback-up"    // bring lo up in a new network namespace
	OpSysctl        Op = "sysctl"         // Path (below /proc/sys, in spec.SysctlPath's form), Value
	OpHostname      Op = "hostname"       // Value
	OpDomainname    Op = "domainname"     // Value
	OpRuntimeHooks  Op = "runtime-hooks"  // ask the parent to run prestart/createRuntime, wait till done
	OpHooks         Op = "hooks"          // Value (the hook kind), Hooks, State, Path (cwd to run them in)
	OpPivotRoot     Op = "pivot-root"     // Path: pivot_root into it, detach the old root
	OpMoveRoot      Op = "move-root"      // Path: --no-pivot, MS_MOVE onto / and chroot
	OpChroot        Op = "chroot"         // Path: no new mount namespace
	OpSetsid        Op = "setsid"
	OpConsole       Op = "console" // UID, ConsoleSize, ReadOnly=false; Value "dev-console" binds /dev/console
	OpKeyring       Op = "session-keyring"
	OpPersonality   Op = "personality" // Flags (the persona value), Value (its name)
	OpCloseFds      Op = "close-fds"   // Flags: the first fd that closes at exec; Value: fds above it that stay open ("4,7")
	OpCwd           Op = "cwd"         // Path: enter it now, or as the user if refused to root
	OpCwdAsUser     Op = "cwd-as-user" // Path: the retry after the user switch
	OpNoNewPrivs    Op = "no-new-privs"
	OpAppArmor      Op = "apparmor"     // Value
	OpSELinux       Op = "selinux"      // Value
	OpRlimit        Op = "rlimit"       // Rlimit
	OpSeccomp       Op = "seccomp"      // Seccomp (compiled by the parent)
	OpBounding      Op = "bounding-set" // Caps
	OpUser          Op = "user"         // User: groups, gid, uid, with keepcaps around the switch
	OpCaps          Op = "caps"         // Caps
	OpLookup        Op = "lookup"       // Exec: HOME from /etc/passwd, the executable in PATH
	OpReady         Op = "ready"        // tell the parent everything that can fail has
	OpWaitStart     Op = "wait-start"   // block on the exec fifo until `start`
	OpExec          Op = "exec"         // execve what OpLookup found

	// For bwrap's argv (internal/bwrap).
	OpNewRoot           Op = "new-root"     // Path: a tmpfs there, pivoted into; the old root at /oldroot, the mounts go below /newroot; Flags: how many --tmp-overlay directory pairs it holds
	OpParentDeathSignal Op = "pdeathsig"    // Flags: the signal the process gets when its parent dies (bwrap --die-with-parent, every sandbox); after the last uid change, which clears it
	OpDumpable          Op = "dumpable"     // let the (unprivileged) parent read /proc/<pid>/ns for bwrap --info-fd
	OpLockFile          Op = "lock-file"    // Path: open it and hold a read lock while the process lives, close-on-exec (bwrap --lock-file)
	OpSameFile          Op = "same-file"    // Path, FD: the mount at Path must be the fd's file (bwrap --bind-fd's race check)
	OpHoldFD            Op = "hold-fd"      // FD: keep it past the root change, close-on-exec, while the process lives (bwrap --sync-fd, held by the sandbox's init); Value "status": a reaper reports the program's exit status on it; "block": OpBlock reads it; "userns": OpEnterUserNS enters it; "exe", no FD: open the binary this process runs (/proc/self/exe, while the host's /proc is in reach) for OpEnterUserNS
	OpEnterUserNS       Op = "enter-userns" // re-execute the held "exe" with nsexec.c armed to setns into the user namespace held as "userns", and go on with the steps after this one there (bwrap --userns2: the kernel refuses that setns to a multithreaded process)
	OpBlock             Op = "block"        // wait until the fd held as "block" has data (or EOF), then close it (bwrap --block-fd)

	// Steps of `hako sandbox` (internal/sandbox), whose root is the host's.
	OpHoldSources   Op = "hold-bind-sources" // open every later bind mount's source (and overlay layer) that came without an fd, before OpStageHostRoot covers its path
	OpStageHostRoot Op = "stage-host-root"   // Path: clone / and attach the copy there, to bind and pivot into
	OpTreeRO        Op = "tree-ro"           // Path, ReadOnly: make the tree there read-only (or writable again)
	OpVerify        Op = "verify"            // Data (receipt checks, JSON) -> Fds.Receipt; fail if one fails
	OpCgroupProbe   Op = "cgroup-probe"      // read the cgroup files OpVerify will check, while the host's /sys is in reach
	OpTaskCgroup    Op = "task-cgroup"       // FD, Value: where the reaper forks the program (TaskCgroup* values)
	OpOverlay       Op = "overlay"           // Path (in the root): an overlayfs over it; Layers: host upper and work dirs (FD, FD+1 once held), none: a throwaway tmpfs
)

// Step values that modify a step kind.
const (
	// TaskCgroup2 (OpTaskCgroup's Value): FD is a cgroup2 directory the
	// program is cloned into (CLONE_INTO_CGROUP).
	TaskCgroup2 = "cgroup2"
	// TaskCgroupV1Into and TaskCgroupV1Back: FD is a v1 hierarchy's
	// "tasks" file; the forking thread moves into the first for the fork
	// (the child is born there) and back into the second after it.
	TaskCgroupV1Into = "v1-into"
	TaskCgroupV1Back = "v1-back"
	// UserNoSetgroups (OpUser's Value): setgroups is denied in this user
	// namespace, leave the groups alone.
	UserNoSetgroups = "no-setgroups"
	// CwdTry (OpCwd's Value): enter Path if possible and no try before
	// it succeeded.
	CwdTry = "try"
)

// Step is one operation. Which fields mean something depends on Op (see
// the Op constants); the rest stay zero.
type Step struct {
	Op       Op     `json:"op"`
	Path     string `json:"path,omitempty"`
	Value    string `json:"value,omitempty"`
	Mode     uint32 `json:"mode,omitempty"`
	Flags    uint64 `json:"flags,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	InUserNS bool   `json:"inUserNS,omitempty"`
	// FD is an index into the fds sent with the plan, or -1; 0 is the
	// first fd, so a step without one says -1 (NoFD).
	FD   int    `json:"fd"`
	Data []byte `json:"data,omitempty"`

	Cgroups     []rootfs.CgroupMount     `json:"cgroups,omitempty"`
	Mount       *rootfs.Mount            `json:"mount,omitempty"`
	Devices     []specs.LinuxDevice      `json:"devices,omitempty"`
	Hooks       []specs.Hook             `json:"hooks,omitempty"`
	State       []byte                   `json:"state,omitempty"`
	UID         uint32                   `json:"uid,omitempty"`
	ConsoleSize *specs.Box               `json:"consoleSize,omitempty"`
	Rlimit      *Rlimit                  `json:"rlimit,omitempty"`
	Seccomp     *security.Seccomp        `json:"seccomp,omitempty"`
	Caps        *specs.LinuxCapabilities `json:"caps,omitempty"`
	User        *specs.User              `json:"user,omitempty"`
	Exec        *Exec                    `json:"exec,omitempty"`
	Sched       *SchedAttr               `json:"sched,omitempty"`
	Layers      []string                 `json:"layers,omitempty"`
}

// NoFD marks a step without an fd.
const NoFD = -1

// Rlimit is one process.rlimits entry with its resource number resolved.
type Rlimit struct {
	Name       string `json:"name"`
	Resource   int    `json:"resource"`
	Soft, Hard uint64
}

// Exec is the program the process becomes.
type Exec struct {
	Args []string `json:"args"`
	// Argv0, if set, is the program's argv[0] in place of Args[0], which
	// still names what runs (bwrap --argv0).
	Argv0 string   `json:"argv0,omitempty"`
	Env   []string `json:"env"`
	UID   uint32   `json:"uid"`
	// Exact: the environment as given, PWD set to the working directory
	// (bwrap's), no HOME looked up.
	Exact bool `json:"exact,omitempty"`
	// Reaper: start the program as a child and stay as the PID
	// namespace's init, reaping orphans, exiting with the program's
	// status (bwrap without --as-pid-1).
	Reaper bool `json:"reaper,omitempty"`
	// ForwardSignals (with Reaper): the program gets its own process
	// group, the terminal's foreground one where stdin is a terminal, and
	// the signals the init receives are passed on to it (hako sandbox;
	// bwrap's init forwards nothing).
	ForwardSignals bool `json:"forwardSignals,omitempty"`
}

// Fds are the container process's own fd numbers for what the parent hands
// over by inheritance (not in a frame); spawn fills them in.
type Fds struct {
	FifoDir int `json:"fifoDir"`
	Console int `json:"console"`
	// Receipt is the write end of `hako sandbox`'s receipt pipe (OpVerify):
	// inherited, because the fds of the plan's frame close at the pivot.
	Receipt int `json:"receipt,omitempty"`
}

// Plan is what the parent sends the child, in one frame whose fds are the
// ones the steps' FD fields index.
type Plan struct {
	Kind  string `json:"kind"`
	Steps []Step `json:"steps"`
	Fds   Fds    `json:"fds"`
	// Timings asks the container process to time its Go start and each
	// step up to ready, and send that with its ready frame (--debug).
	Timings bool `json:"timings,omitempty"`
}

// KeepFds is an OpCloseFds step's Value: the caller's fds that stay open
// across exec, by number.
func (s *Step) KeepFds() ([]int, error) {
	if s.Value == "" {
		return nil, nil
	}
	var fds []int
	for _, f := range strings.Split(s.Value, ",") {
		fd, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("fd %q to keep: %w", f, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// Reaps says whether the init stays as a reaper of the program (a lookup
// step with Exec.Reaper) rather than exec it.
func (p *Plan) Reaps() bool {
	if p == nil {
		return false
	}
	for i := range p.Steps {
		if e := p.Steps[i].Exec; e != nil && e.Reaper {
			return true
		}
	}
	return false
}

// String renders a step on one line, for --debug and for errors.
func (s *Step) String() string {
	var b strings.Builder
	b.WriteString(string(s.Op))
	add := func(format string, args ...any) { b.WriteByte(' '); fmt.Fprintf(&b, format, args...) }
	switch s.Op {
	case OpMount:
		m := s.Mount
		if m == nil {
			break
		}
		add("%s", m.Kind)
		if m.Type != "" && m.Type != m.Kind {
			add("type=%s", m.Type)
		}
		if m.Source != "" {
			add("%s", m.Source)
		}
		add("on %s", m.Destination)
		if o := m.Options.String(); o != "" {
			add("[%s]", o)
		}
		if m.Size > 0 {
			add("size=%d", m.Size)
		}
		if m.Perms != nil {
			add("perms=%04o", *m.Perms)
		}
	case OpDev:
		names := make([]string, len(s.Devices))
		for i, d := range s.Devices {
			names[i] = d.Path
		}
		add("%s", strings.Join(names, " "))
	case OpHooks:
		add("%s (%d)", s.Value, len(s.Hooks))
	case OpRlimit:
		if s.Rlimit != nil {
			add("%s soft=%d hard=%d", s.Rlimit.Name, s.Rlimit.Soft, s.Rlimit.Hard)
		}
	case OpSeccomp:
		if s.Seccomp != nil {
			add("%s", s.Seccomp.Summary())
		}
	case OpBounding, OpCaps:
		if s.Caps != nil {
			add("bounding=%d effective=%d permitted=%d inheritable=%d ambient=%d", len(s.Caps.Bounding), len(s.Caps.Effective), len(s.Caps.Permitted), len(s.Caps.Inheritable), len(s.Caps.Ambient))
		}
	case OpUser:
		if s.User != nil {
			add("uid=%d gid=%d groups=%v", s.User.UID, s.User.GID, s.User.AdditionalGids)
		}
	case OpLookup, OpExec:
		if s.Exec != nil {
			add("%q", s.Exec.Args)
		}
	case OpPropagation:
		add("%s %s", s.Path, rootfs.PropagationName(uintptr(s.Flags)))
	case OpPersonality, OpCloseFds:
		add("%s", strings.TrimSpace(s.Value+" "+fmt.Sprint(s.Flags)))
	case OpUmask, OpDir, OpChmod, OpFile:
		if s.Path != "" {
			add("%s", s.Path)
		}
		add("%04o", s.Mode)
	default:
		if s.Path != "" {
			add("%s", s.Path)
		}
		if s.Value != "" {
			add("%s", s.Value)
		}
	}
	if s.FD >= 0 {
		add("fd#%d", s.FD)
	}
	if s.ReadOnly {
		add("ro")
	}
	return b.String()
}

// Lines renders the plan one numbered step a line.
func (p *Plan) Lines() []string {
	out := make([]string, len(p.Steps))
	for i := range p.Steps {
		out[i] = fmt.Sprintf("%2d %s", i+1, p.Steps[i].String())
	}
	return out
}

// SetHookState gives the hook steps the container state they pass on
// stdin: creating for createContainer, created for startContainer. The
// parent knows it only once the process exists; each is made (a JSON
// encoding of the state) only if a hook step needs it.
func (p *Plan) SetHookState(creating, created func() []byte) {
	var cr, cd []byte
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.Op != OpHooks {
			continue
		}
		if s.Value == "startContainer" {
			if cd == nil {
				cd = created()
			}
			s.State = cd
		} else {
			if cr == nil {
				cr = creating()
			}
			s.State = cr
		}
	}
}
