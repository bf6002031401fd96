package initproc

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/hooks"
	"github.com/hako-runtime/hako/internal/linux/netns"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/timing"
)

// sys is the handful of plain syscalls the simple steps make, behind an
// interface so that tests can watch them.
type sys interface {
	Umask(mask int)
	Sethostname(name string) error
	Setdomainname(name string) error
	WriteFile(path, value string) error
	Setsid() error
}

type realSys struct{}

func (realSys) Umask(m int) { unix.Umask(m) }
func (realSys) Sethostname(n string) error {
	if err := unix.Sethostname([]byte(n)); err != nil {
		return fmt.Errorf("sethostname %q: %w", n, err)
	}
	return nil
}
func (realSys) Setdomainname(n string) error {
	if err := unix.Setdomainname([]byte(n)); err != nil {
		return fmt.Errorf("setdomainname %q: %w", n, err)
	}
	return nil
}
func (realSys) WriteFile(p, v string) error { return os.WriteFile(p, []byte(v), 0) }
func (realSys) Setsid() error {
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	return nil
}

// applier is the child's state while it works through a plan.
type applier struct {
	conn *frame.Conn
	sys  sys
	plan *plan.Plan
	// fds came with the plan; a step's FD indexes them, -1 once taken.
	fds  []int
	root *rootfs.Root
	// cwdRefused: root could not enter the working directory, the user
	// tries again after the switch.
	cwdRefused bool
	// cwdFound: an OpCwd "try" succeeded, later tries are skipped.
	cwdFound bool
	exec     prepared
	// masker shares one empty tmpfs among consecutive masked directories.
	masker *rootfs.Masker
	// cgroupRead: the cgroup files OpCgroupProbe read, by check path.
	cgroupRead map[string]cgroupValue
	// taskCg: the cgroup the reaper forks the program into.
	taskCg taskCgroup
	// kept are the caller's fds that reach the program (OpCloseFds).
	kept []int
	// status is where a reaper reports the program's status (OpHoldFD),
	// or -1.
	status int
	// block is bwrap's --block-fd until OpBlock has read it, or -1.
	block int
	// held are the other fds OpHoldFD keeps for the process's life.
	held []int
	// number is added to a step's index to name it in errors: the
	// compiled plan's numbers, in a process that resumed one (resume).
	number int
	// exe is the binary OpEnterUserNS re-executes (OpHoldFD "exe"), and
	// userns the namespace it enters ("userns"); 0 when not held.
	exe, userns int
	// report is what --debug gets with ready: nil unless the plan asks.
	report *timing.Report
}

type cgroupValue struct {
	val string
	err error
}

type handler func(a *applier, s *plan.Step) error

// apply runs the steps in order; the first failure stops it, named by its
// number and kind.
func apply(a *applier, steps []plan.Step, hs map[plan.Op]handler) error {
	for i := range steps {
		s := &steps[i]
		h, ok := hs[s.Op]
		if !ok {
			return fmt.Errorf("step %d %s: unknown step kind", a.number+i+1, s.Op)
		}
		var t0 time.Time
		if a.report != nil {
			t0 = time.Now()
		}
		err := h(a, s)
		if a.report != nil && a.number+i < len(a.report.Steps) {
			a.report.Steps[a.number+i] = time.Since(t0)
		}
		// The masks of consecutive OpMask steps share one tmpfs; its fd
		// goes once they are done (or one failed).
		if a.masker != nil && (err != nil || i+1 == len(steps) || steps[i+1].Op != plan.OpMask) {
			a.masker.Close()
			a.masker = nil
		}
		var be *bwrapError
		if errors.As(err, &be) {
			return be
		}
		if err != nil {
			return fmt.Errorf("step %d %s: %w", a.number+i+1, s.Op, err)
		}
	}
	return nil
}

// takeFD hands a step its fd (-1 when it has none); the step owns it then.
func (a *applier) takeFD(s *plan.Step) int {
	if s.FD < 0 || s.FD >= len(a.fds) {
		return -1
	}
	fd := a.fds[s.FD]
	a.fds[s.FD] = -1
	return fd
}

// closeHostFds closes what is left of the host: the rootfs fd and fds no
// step took. Nothing of the host may stay open past the root change.
func (a *applier) closeHostFds() {
	if a.root != nil {
		a.root.Close()
		a.root = nil
	}
	for i, fd := range a.fds {
		if fd >= 0 {
			unix.Close(fd)
			a.fds[i] = -1
		}
	}
}

var handlers map[plan.Op]handler

func init() {
	handlers = map[plan.Op]handler{
		plan.OpUmask:         func(a *applier, s *plan.Step) error { a.sys.Umask(int(s.Mode)); return nil },
		plan.OpPropagation:   func(a *applier, s *plan.Step) error { return rootfs.SetPropagation(s.Path, uintptr(s.Flags)) },
		plan.OpParentPrivate: func(a *applier, s *plan.Step) error { return rootfs.MakeParentPrivate(s.Path) },
		plan.OpBindRoot:      bindRoot,
		plan.OpMount:         mountStep,
		plan.OpDev:           devStep,
		plan.OpDir:           mkdirStep,
		plan.OpFile:          fileStep,
		plan.OpBindData:      bindDataStep,
		plan.OpSymlink:       symlinkStep,
		plan.OpChmod:         chmodStep,
		plan.OpRemountRO:     func(a *applier, s *plan.Step) error { return rootfs.RemountReadonly(s.Path) },
		plan.OpMask:          maskStep,
		plan.OpReadonly:      func(a *applier, s *plan.Step) error { return rootfs.ReadonlyPath(s.Path) },
		plan.OpLoopback:      func(a *applier, s *plan.Step) error { return netns.LoopbackUp() },
		plan.OpSysctl:        sysctlStep,
		plan.OpHostname:      func(a *applier, s *plan.Step) error { return a.sys.Sethostname(s.Value) },
		plan.OpDomainname:    func(a *applier, s *plan.Step) error { return a.sys.Setdomainname(s.Value) },
		plan.OpRuntimeHooks:  runtimeHooks,
		plan.OpHooks:         hooksStep,
		plan.OpPivotRoot:     enterRoot(rootfs.PivotRoot),
		plan.OpMoveRoot:      enterRoot(rootfs.MoveRoot),
		plan.OpChroot:        enterRoot(rootfs.Chroot),
		plan.OpSetsid:        func(a *applier, s *plan.Step) error { return a.sys.Setsid() },
		plan.OpConsole:       consoleStep,
		plan.OpKeyring:       func(a *applier, s *plan.Step) error { joinSessionKeyring(); return nil },
		plan.OpPersonality:   personalityStep,
		plan.OpCloseFds:      closeFdsStep,
		plan.OpCwd:           cwdStep,
		plan.OpCwdAsUser:     cwdAsUserStep,
		plan.OpNoNewPrivs:    func(a *applier, s *plan.Step) error { return security.SetNoNewPrivileges() },
		plan.OpAppArmor:      func(a *applier, s *plan.Step) error { return security.ApplyAppArmor(s.Value) },
		plan.OpSELinux:       func(a *applier, s *plan.Step) error { return security.ApplySELinux(s.Value) },
		plan.OpRlimit:        rlimitStep,
		plan.OpSeccomp:       func(a *applier, s *plan.Step) error { return loadSeccomp(s.Seccomp, a.conn.Fd()) },
		plan.OpBounding:      func(a *applier, s *plan.Step) error { return security.DropBounding(s.Caps) },
		plan.OpUser:          userStep,
		plan.OpCaps:          func(a *applier, s *plan.Step) error { return security.ApplyCaps(s.Caps) },
		plan.OpLookup:        lookupStep,
		plan.OpReady:         readyStep,
		plan.OpWaitStart:     func(a *applier, s *plan.Step) error { return waitStart(a.plan.Fds.FifoDir) },
		plan.OpExec: func(a *applier, s *plan.Step) error {
			a.exec.cg = a.taskCg
			return a.exec.run()
		},
		plan.OpStageHostRoot: func(a *applier, s *plan.Step) error { return rootfs.StageHostRoot(s.Path) },
		plan.OpHoldSources:   holdSourcesStep,
		plan.OpCgroupProbe:   cgroupProbeStep,
		plan.OpTaskCgroup:    taskCgroupStep,
		plan.OpOverlay:       overlayStep,
		plan.OpTreeRO:        treeROStep,
		plan.OpVerify:        verifyStep,
	}
	handlers[plan.OpNewRoot] = newRootStep
	handlers[plan.OpParentDeathSignal] = parentDeathStep
	handlers[plan.OpLockFile] = lockFileStep
	handlers[plan.OpSameFile] = sameFileStep
	// The fd came close-on-exec with the plan; taking it keeps it from
	// closeHostFds.
	handlers[plan.OpHoldFD] = func(a *applier, s *plan.Step) error {
		if s.Value == "exe" {
			return holdExe(a)
		}
		fd := a.takeFD(s)
		switch s.Value {
		case "status":
			a.status = fd
		case "block":
			a.block = fd
		case "userns":
			a.userns = fd
		default:
			a.held = append(a.held, fd)
		}
		return nil
	}
	handlers[plan.OpEnterUserNS] = enterUserNSStep
	handlers[plan.OpBlock] = func(a *applier, s *plan.Step) error {
		if a.block < 0 {
			return errors.New("block step without its fd")
		}
		var b [1]byte
		for {
			if _, err := unix.Read(a.block, b[:]); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		unix.Close(a.block)
		a.block = -1
		return nil
	}
	handlers[plan.OpDumpable] = func(a *applier, s *plan.Step) error { return unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0) }
	addLinux13Handlers(handlers)
}

func bindRoot(a *applier, s *plan.Step) error {
	r, err := rootfs.BindRoot(s.Path, s.Cgroups)
	if err != nil {
		return err
	}
	a.root = r
	return nil
}

func mountStep(a *applier, s *plan.Step) error {
	fd := a.takeFD(s)
	m := s.Mount
	if a.root == nil || m == nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return errors.New("mount step without a bound root or a mount")
	}
	if err := a.root.Mount(*m, fd); err != nil {
		if m.Type == "overlay" && strings.HasPrefix(s.Value, "--") {
			// bwrap's overlays fail in bwrap's words (hako's
			// explanation follows the kernel's error).
			return &bwrapError{fmt.Sprintf("Can't make overlay mount on %s with options %s: %v",
				filepath.Join("/newroot", m.Destination), strings.Join(m.Options.Data, ","), err)}
		}
		return fmt.Errorf("%s %s on %s: %w", s.Value, m.Type, m.Destination, err)
	}
	return nil
}

func devStep(a *applier, s *plan.Step) error {
	if a.root == nil {
		return errors.New("dev step without a bound root")
	}
	return a.root.Dev(s.Devices, s.InUserNS)
}

// mkdirStep: before the root change inside the rootfs, resolved from its
// fd; after it, "/" is the container's own.
func mkdirStep(a *applier, s *plan.Step) error {
	// The plan's mode is raw bits (bwrap --perms 01777); mkdir(2) keeps
	// only the sticky one of the three above 0777, as an os.FileMode.
	mode := os.FileMode(s.Mode & 0o777)
	if s.Mode&unix.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	if a.root != nil {
		return a.root.Mkdir(s.Path, mode)
	}
	if err := os.MkdirAll(s.Path, mode); err != nil {
		return fmt.Errorf("create %s: %w", s.Path, err)
	}
	return nil
}

// sysctlStep writes through the host's /proc/sys while already in the
// container's namespaces: the kernel picks the network, IPC and UTS
// namespace of the writer, so the values land in the container's.
func sysctlStep(a *applier, s *plan.Step) error {
	if err := a.sys.WriteFile("/proc/sys/"+s.Path, s.Value); err != nil {
		return fmt.Errorf("linux.sysctl %s=%s: %w", s.Path, s.Value, err)
	}
	return nil
}

func runtimeHooks(a *applier, s *plan.Step) error {
	if err := a.send(frame.TypeHooks, nil); err != nil {
		return err
	}
	return a.await(frame.TypeHooksDone)
}

func hooksStep(a *applier, s *plan.Step) error {
	if s.Value == "createContainer" {
		// The parent bounds how long it waits for word from us; a hook
		// runs for as long as its own timeout (or forever without one),
		// as in runc.
		if err := a.send(frame.TypeContainerHooks, nil); err != nil {
			return err
		}
	}
	if s.Path != "" {
		if err := unix.Chdir(s.Path); err != nil {
			return fmt.Errorf("chdir to %s for %s hooks: %w", s.Path, s.Value, err)
		}
	}
	return hooks.Run(s.Value, s.Hooks, s.State)
}

func enterRoot(fn func(string) error) handler {
	return func(a *applier, s *plan.Step) error {
		a.closeHostFds()
		return fn(s.Path)
	}
}

func consoleStep(a *applier, s *plan.Step) error {
	return setupConsole(a.plan.Fds.Console, int(s.UID), s.ConsoleSize, s.Value == "dev-console")
}

func personalityStep(a *applier, s *plan.Step) error {
	if _, _, errno := unix.Syscall(unix.SYS_PERSONALITY, uintptr(s.Flags), 0, 0); errno != 0 {
		return fmt.Errorf("personality %s: %w", s.Value, errno)
	}
	return nil
}

// closeFdsStep: no fd of hako's may reach the container (CVE-2024-21626):
// every fd above the preserved ones closes at exec. Done before a seccomp
// profile may forbid close_range; every fd opened after this is O_CLOEXEC.
func closeFdsStep(a *applier, s *plan.Step) error {
	if err := unix.CloseRange(uint(s.Flags), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	fds, err := s.KeepFds()
	if err != nil {
		return err
	}
	for _, fd := range fds {
		// The caller's fd, at its number since the start: it goes on
		// to the program.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keep fd %d open: %w", fd, err)
		}
		a.kept = append(a.kept, fd)
	}
	return nil
}

// cwdStep enters the working directory as runc does: still root with every
// capability, the process may start in a directory its user could not
// enter (exec --user 0 into a container whose capabilities lack
// CAP_DAC_OVERRIDE, or a cwd only the runtime can reach). Refused here, it
// is tried again as the user after the switch (cwdAsUserStep), for a
// directory only that user may enter (root squashed on NFS, say).
func cwdStep(a *applier, s *plan.Step) error {
	if s.Value == plan.CwdTry {
		// Resolved from "/": the steps before left the cwd there.
		if !a.cwdFound {
			a.cwdFound = enterCwd(s.Path) == nil
		}
		return nil
	}
	if err := enterCwd(s.Path); err != nil {
		if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
			return err
		}
		a.cwdRefused = true
	}
	return nil
}

func cwdAsUserStep(a *applier, s *plan.Step) error {
	if !a.cwdRefused {
		return nil
	}
	if err := enterCwd(s.Path); err != nil {
		return fmt.Errorf("%w (refused as root, then as uid %d)", err, os.Getuid())
	}
	return nil
}

// rlimitStep goes through syscall (not x/sys) so that the Go runtime
// forgets its own start-up RLIMIT_NOFILE and does not restore it at exec.
func rlimitStep(a *applier, s *plan.Step) error {
	r := s.Rlimit
	if err := syscall.Setrlimit(r.Resource, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
		hint := ""
		if errors.Is(err, unix.EPERM) {
			hint = " (raising a hard limit needs CAP_SYS_RESOURCE, which this host's bounding set may lack)"
		}
		return fmt.Errorf("setrlimit %s soft=%d hard=%d: %w%s", r.Name, r.Soft, r.Hard, err, hint)
	}
	return nil
}

// userStep switches user with PR_SET_KEEPCAPS, so that the capability
// sets the next step applies are still there to apply.
func userStep(a *applier, s *plan.Step) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_KEEPCAPS: %w", err)
	}
	if err := setUser(*s.User, s.Value != plan.UserNoSetgroups, !a.plan.Reaps()); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_KEEPCAPS: %w", err)
	}
	return nil
}

// lookupStep finds the executable now, so that a missing binary fails
// `create`, not `start`.
func lookupStep(a *applier, s *plan.Step) error {
	e := s.Exec
	env := withHome(e.Env, e.UID)
	if e.Exact {
		env = withPWD(e.Env)
	}
	path, err := lookPath(e.Args[0], env)
	if err != nil {
		return err
	}
	args := e.Args
	if e.Argv0 != "" {
		args = append([]string{e.Argv0}, e.Args[1:]...)
	}
	a.exec = prepared{path: path, args: args, env: env, reaper: e.Reaper, forward: e.ForwardSignals, kept: a.kept, status: a.status}
	return nil
}

// pathRoot is where the path steps resolve: the rootfs before the root
// change, "/" after it. done closes what pathRoot opened.
func (a *applier) pathRoot() (r *rootfs.Root, done func(), err error) {
	if a.root != nil {
		return a.root, func() {}, nil
	}
	r, err = rootfs.OpenRoot("/")
	if err != nil {
		return nil, nil, err
	}
	return r, func() { r.Close() }, nil
}

func withRoot(a *applier, fn func(r *rootfs.Root) error) error {
	r, done, err := a.pathRoot()
	if err != nil {
		return err
	}
	defer done()
	return fn(r)
}

func fileStep(a *applier, s *plan.Step) error {
	fd := a.takeFD(s)
	return withRoot(a, func(r *rootfs.Root) error { return r.WriteFile(s.Path, os.FileMode(s.Mode), s.Data, fd) })
}

func bindDataStep(a *applier, s *plan.Step) error {
	fd := a.takeFD(s)
	return withRoot(a, func(r *rootfs.Root) error { return r.BindData(s.Path, s.Mode, s.Data, fd, s.ReadOnly) })
}

func symlinkStep(a *applier, s *plan.Step) error {
	return withRoot(a, func(r *rootfs.Root) error { return r.Symlink(s.Value, s.Path) })
}

func chmodStep(a *applier, s *plan.Step) error {
	return withRoot(a, func(r *rootfs.Root) error { return r.Chmod(s.Path, os.FileMode(s.Mode)) })
}

func maskStep(a *applier, s *plan.Step) error {
	if a.masker == nil {
		a.masker = rootfs.NewMasker()
	}
	return a.masker.Mask(s.Path)
}

// readyStep tells the parent that everything that can fail has; with
// --debug the frame carries the timings, measured up to here.
func readyStep(a *applier, s *plan.Step) error {
	var payload []byte
	if a.report != nil {
		payload = a.report.Encode()
	}
	return a.send(frame.TypeReady, payload)
}
