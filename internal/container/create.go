package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/console"
	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/hooks"
	"github.com/hako-runtime/hako/internal/linux/cgroups"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	"github.com/hako-runtime/hako/internal/linux/netdev"
	"github.com/hako-runtime/hako/internal/linux/netns"
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/resctrl"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/spec"
	"github.com/hako-runtime/hako/internal/state"
	"github.com/hako-runtime/hako/internal/timing"
)

// CreateOpts are create's flags.
type CreateOpts struct {
	ID            string
	Bundle        string
	PidFile       string
	ConsoleSocket string
	// PidfdSocket receives a pidfd of the init (--pidfd-socket).
	PidfdSocket  string
	NoPivot      bool
	NoNewKeyring bool
	PreserveFds  int
	// ListenFds are systemd socket-activation fds passed on before the
	// preserved ones (LISTEN_FDS).
	ListenFds int
	// ConsoleFile, when set, is used instead of dialling ConsoleSocket
	// (run in the foreground with a terminal makes its own socket).
	ConsoleFile *os.File
	// RelayTTY: with process.terminal and no console socket, make one
	// and return our end in RelaySocket (run and exec in the foreground).
	RelayTTY    bool
	RelaySocket *os.File
	Stdin       *os.File
	Stdout      *os.File
	Stderr      *os.File

	// timeline, when --debug is on, gathers the breakdown of this create
	// (and of the run around it, which starts it).
	timeline *timing.Timeline
	// afterPlan, if set, runs once the init has its plan (run's signal
	// subscription, forwardAhead).
	afterPlan func()
}

// Create builds the container and leaves its init waiting for start. On
// failure nothing is left: no process, cgroup, mount or state directory.
//
// It reads as the steps below, in the order they must happen; each step
// says why it sits where it does. What outlives a step (the lock, sockets,
// the undo list) is held here, so its lifetime is visible in one place.
func (r *Runtime) Create(o *CreateOpts) (c *Container, err error) {
	k := &creation{r: r, o: o}
	if o.timeline == nil && r.Debug != nil {
		o.timeline = timing.New()
		defer func() {
			if err == nil {
				r.debug("create %s: took %s", o.ID, o.timeline)
			}
		}()
	}
	tl := o.timeline
	if err := k.loadBundle(); err != nil {
		return nil, err
	}
	tl.Mark("config")
	if lx := k.spec.Linux; lx != nil && ns.IsNew(lx.Namespaces, specs.NetworkNamespace) && !ns.Has(lx.Namespaces, specs.UserNamespace) && !r.Rootless {
		// Made while the state and cgroups are, on the other CPU; see
		// netns.Ahead for why this is the same namespace.
		k.netAhead = netns.StartAhead()
		defer k.netAhead.Close()
	}
	theirs, err := k.makeRelaySocket()
	if err != nil {
		return nil, err
	}
	if theirs != nil {
		defer theirs.Close()
		// Our end is the caller's only when Create succeeds. (Before
		// this was split into steps, the close tested a shadowed err and
		// never ran: a failed foreground run leaked the socket.)
		defer func() {
			if err != nil && o.RelaySocket != nil {
				o.RelaySocket.Close()
				o.RelaySocket = nil
			}
		}()
	}
	if err := k.checkConsole(); err != nil {
		return nil, err
	}
	r.debug("create %s: config %s/config.json valid, rootfs %s", o.ID, k.bundle, k.rootfs)
	if err := k.checkNetDevices(); err != nil {
		return nil, err
	}
	lock, err := r.Store.Create(o.ID)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	defer func() {
		if err != nil {
			k.undo()
		}
	}()
	tl.Mark("lock")
	if err := k.makeState(); err != nil {
		return nil, err
	}
	tl.Mark("state")
	if err := k.makeCgroups(); err != nil {
		return nil, err
	}
	tl.Mark("cgroups")
	fifoDir, err := k.makeFifo()
	if err != nil {
		return nil, err
	}
	defer fifoDir.Close()

	consoleSock := o.ConsoleFile
	if o.ConsoleSocket != "" {
		if consoleSock, err = dialConsole(o.ConsoleSocket); err != nil {
			return nil, err
		}
		defer consoleSock.Close()
	}

	pidfdSock, err := dialPidfdSocket(o.PidfdSocket)
	if err != nil {
		return nil, err
	}
	if pidfdSock != nil {
		defer pidfdSock.Close()
	}

	req, cgroup2, err := k.nsRequest()
	if err != nil {
		return nil, err
	}
	pl, err := k.compilePlan()
	if err != nil {
		return nil, err
	}
	pl.Timings = tl != nil
	// Applied by nsexec.c itself where every step is one it knows: the
	// init's Go runtime starts only if a step is handed to it.
	_, k.inC = nsenter.EncodeCPlan(pl)
	if k.inC {
		req.Options |= nsenter.OptCPlan
		r.debug("create %s: the plan runs in nsexec.c, without Go", o.ID)
	}
	tl.Mark("plan")
	preserved, err := preservedFiles(o.ListenFds + o.PreserveFds)
	if err != nil {
		return nil, err
	}
	p, err := k.startProcess(&spawnOpts{
		req: req, cgroup2Dir: cgroup2, place: k.cm.Placer(), plan: pl, preserved: preserved,
		fifoDir: fifoDir, console: consoleSock, timeline: tl, cinit: k.inC, afterSend: o.afterPlan,
	}, pidfdSock)
	if err != nil {
		return nil, err
	}
	if err := k.runHooks(p); err != nil {
		return nil, err
	}
	k.debugReady(p, pl)
	p.conn.Close()
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, k.st.InitPid); err != nil {
			return nil, err
		}
	}
	return k.c, nil
}

// creation is what Create's steps share: what each step learns or makes,
// and the undo list that removes it all again if a later step fails.
type creation struct {
	r *Runtime
	o *CreateOpts

	bundle  string      // absolute bundle path
	spec    *specs.Spec // the bundle's config.json
	cfgData []byte      // its bytes, kept as the state's copy
	rootfs  string      // absolute rootfs path
	lx      *specs.Linux

	netAhead *netns.Ahead // the container's new network namespace, being made
	// inC: the init applies its plan in nsexec.c (nsenter.EncodeCPlan).
	inC bool

	dir string // the state directory
	cm  *cgroups.Manager
	st  *state.State
	c   *Container

	cleanups []func()
}

// undo runs the cleanups, last made first, when create fails.
func (k *creation) undo() {
	for i := len(k.cleanups) - 1; i >= 0; i-- {
		k.cleanups[i]()
	}
}

// loadBundle reads and validates config.json first: nothing is made for a
// container whose config is wrong.
func (k *creation) loadBundle() error {
	bundle, err := filepath.Abs(k.o.Bundle)
	if err != nil {
		return err
	}
	s, cfgData, err := spec.LoadBytes(bundle)
	if err != nil {
		return err
	}
	rootfsPath, err := spec.RootfsPath(s, bundle)
	if err != nil {
		return err
	}
	k.bundle, k.spec, k.cfgData, k.rootfs = bundle, s, cfgData, rootfsPath
	return nil
}

// makeRelaySocket makes the socket pair through which run and exec in the
// foreground receive the pty master when the process wants a terminal and
// nobody named a console socket. It returns the end the init gets (closed
// by Create when it returns); ours goes to the caller in o.RelaySocket.
func (k *creation) makeRelaySocket() (*os.File, error) {
	o, s := k.o, k.spec
	if s.Process.Terminal && o.ConsoleSocket == "" && o.ConsoleFile == nil && o.RelayTTY {
		theirs, ours, err := console.Socketpair()
		if err != nil {
			return nil, err
		}
		o.ConsoleFile, o.RelaySocket = theirs, ours
		return theirs, nil
	}
	return nil, nil
}

// checkConsole refuses a terminal nobody can receive, and a console socket
// for a process without a terminal, before anything is made.
func (k *creation) checkConsole() error {
	o, s := k.o, k.spec
	if s.Process.Terminal && o.ConsoleSocket == "" && o.ConsoleFile == nil {
		return errors.New("process.terminal is true: use --console-socket to receive the pty master (or run in the foreground)")
	}
	if !s.Process.Terminal && (o.ConsoleSocket != "" || o.ConsoleFile != nil) {
		return errors.New("--console-socket given but process.terminal is false")
	}
	return nil
}

// checkNetDevices refuses netDevices when rootless, before the state
// directory exists.
func (k *creation) checkNetDevices() error {
	s := k.spec
	if s.Linux != nil && len(s.Linux.NetDevices) > 0 && k.r.Rootless {
		// runc's words: moving host devices needs CAP_NET_ADMIN on the host.
		return errors.New("linux.netDevices: network devices are not supported for rootless containers")
	}
	return nil
}

// makeState writes the config copy and the first state.json. The state is
// saved before any cgroup or process exists, so that whatever happens next
// can be found and cleaned up.
func (k *creation) makeState() error {
	r, o, s := k.r, k.o, k.spec
	k.dir = r.Store.Dir(o.ID)
	k.cleanups = append(k.cleanups, func() { r.Store.Remove(o.ID) })

	if err := state.WriteAtomic(filepath.Join(k.dir, state.ConfigName), k.cfgData, 0o600); err != nil {
		return err
	}
	k.lx = s.Linux
	if k.lx == nil {
		k.lx = &specs.Linux{}
	}
	lx := k.lx
	cm, err := cgroups.New(cgroups.Config{
		ID: o.ID, CgroupsPath: lx.CgroupsPath, Resources: lx.Resources, Devices: lx.Devices, Rootless: r.Rootless,
		Systemd: r.SystemdCgroup, Annotations: s.Annotations, Warn: r.warn,
	})
	if err != nil {
		return err
	}
	k.cm = cm
	k.st = &state.State{
		ID: o.ID, Bundle: k.bundle, Rootfs: k.rootfs, Created: time.Now().UTC(),
		Annotations: s.Annotations, CgroupPaths: cm.Paths(), Rootless: r.Rootless, CgroupUnit: cm.Unit(),
	}
	k.c = &Container{rt: r, State: k.st}
	// Saved before any cgroup or process exists: a hako killed from here
	// on leaves a state that `delete --force` can clean up completely.
	return r.Store.Save(k.st)
}

// makeCgroups creates the container's cgroups (whose paths the state
// already names) and checks they can take a process.
func (k *creation) makeCgroups() error {
	r, cm := k.r, k.cm
	if err := cm.Create(); err != nil {
		return err
	}
	k.cleanups = append(k.cleanups, func() { cm.Destroy() })
	r.debug("create %s: cgroups %v", k.o.ID, cm.Paths())
	// Checked after the cgroups exist: a v1 cgroup made under a frozen
	// parent is born frozen. A process joining a frozen cgroup stops
	// before it can report anything; runc refuses it, in these words.
	if err := frozenErr(cm, "create"); err != nil {
		return err
	}
	// Allowed, as runc allows it, with runc's warning: `kill --all`,
	// `ps` and delete will treat those processes as the container's.
	if pids, err := cm.Pids(); err == nil && len(pids) > 0 {
		r.warn("container's cgroup is not empty: %d process(es) found", len(pids))
	}
	return nil
}

// makeFifo makes the exec fifo that start opens to let the init run the
// user's process, and returns the state directory opened O_PATH, through
// which the init reaches the fifo.
func (k *creation) makeFifo() (*os.File, error) {
	fifo := filepath.Join(k.dir, state.FifoName)
	// 0622 as runc: the init opens it after switching to the process's
	// user, and the state dir (0711, root's) keeps others from finding it
	// by listing.
	if err := unix.Mkfifo(fifo, 0o622); err != nil {
		return nil, fmt.Errorf("create exec fifo: %w", err)
	}
	if err := os.Chmod(fifo, 0o622); err != nil {
		return nil, err
	}
	// The init opens it as the container's root, which a user namespace
	// maps to some other host uid.
	if uid, gid := rootIDs(k.lx); uid != 0 || gid != 0 {
		if err := os.Chown(fifo, int(uid), int(gid)); err != nil {
			return nil, fmt.Errorf("chown exec fifo: %w", err)
		}
	}
	return os.OpenFile(k.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// nsRequest is what nsexec.c is asked to do before Go runs in the child:
// the namespaces to unshare and join, the cgroups to enter, the time
// offsets; and the cgroup v2 directory to clone into.
func (k *creation) nsRequest() (nsenter.Request, string, error) {
	lx := k.lx
	unshare, join, err := ns.Split(lx.Namespaces)
	if err != nil {
		return nsenter.Request{}, "", err
	}
	req := nsenter.Request{Join: join, Unshare: unshare, OOMScoreAdj: k.spec.Process.OOMScoreAdj}
	if k.netAhead != nil {
		f, err := k.netAhead.File()
		if err != nil {
			return nsenter.Request{}, "", err
		}
		req.Unshare &^= unix.CLONE_NEWNET
		req.JoinFiles = append(req.JoinFiles, nsenter.NamedFile{File: f, Name: "new network namespace"})
	}
	var cgroup2 string
	req.CgroupTasks, cgroup2 = joinCgroups(k.cm, k.r.Rootless)
	for clock, off := range lx.TimeOffsets {
		req.TimeOffsets = append(req.TimeOffsets, nsenter.TimeOffset{Clock: clock, Secs: off.Secs, Nanos: off.Nanosecs})
	}
	return req, cgroup2, nil
}

// compilePlan turns the spec into the init's plan, with the seccomp filter
// compiled here (and saved for exec) so the init only loads it.
func (k *creation) compilePlan() (*plan.Plan, error) {
	r, o, lx := k.r, k.o, k.lx
	var cgMounts []rootfs.CgroupMount
	for _, m := range k.cm.Mounts() {
		cgMounts = append(cgMounts, rootfs.CgroupMount{Dir: m.Dir, HostPath: m.HostPath, Symlinks: m.Symlinks})
	}
	filter, err := r.compileSeccomp(lx.Seccomp)
	if err != nil {
		return nil, err
	}
	if filter != nil {
		data, err := json.Marshal(filter)
		if err != nil {
			return nil, err
		}
		if err := state.WriteAtomic(filepath.Join(k.dir, state.SeccompName), data, 0o600); err != nil {
			return nil, err
		}
	}
	pl, err := plan.FromSpec(&plan.OCI{
		Spec: k.spec, Bundle: k.bundle, Rootfs: k.rootfs, NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring,
		Rootless: r.Rootless, HostInUserNS: idmap.RunningInUserNS(), Cgroups: cgMounts, Seccomp: filter,
		PreserveFds: o.ListenFds + o.PreserveFds, ListenFds: o.ListenFds,
	})
	if err != nil {
		return nil, err
	}
	r.debugPlan("create "+o.ID, pl)
	return pl, nil
}

// startProcess spawns the container's init with so (which Create filled
// with what it holds open) completed from the container's config; the init
// is killed if a later step fails. pidfdSock (may be nil) gets its pidfd.
func (k *creation) startProcess(so *spawnOpts, pidfdSock *os.File) (*proc, error) {
	r, o, lx, cm := k.r, k.o, k.lx, k.cm
	so.uidMaps, so.gidMaps = lx.UIDMappings, lx.GIDMappings
	so.stdin, so.stdout, so.stderr = o.Stdin, o.Stdout, o.Stderr
	so.sealDir, so.rootless, so.warn = r.sealDir(), r.Rootless, r.Warn
	so.stuck = func() error { return frozenErr(cm, "create") }
	// The cgroup goes away with the failed container: what froze it
	// cannot want it back.
	so.thaw = func() { thawIfFrozen(cm) }
	so.onFd = func(fd int) error {
		return forwardListener(fd, k.st.InitPid, lx.Seccomp, k.c.specState(Creating))
	}
	so.onPid = func(pid int) error { return k.onInitPid(so, pidfdSock, pid) }
	p, err := spawn(so)
	if err != nil {
		return nil, err
	}
	k.cleanups = append(k.cleanups, p.kill)
	r.debug("create %s: container process %d started; before Go, its constructor did: %s", o.ID, p.pid, &so.req)
	return p, nil
}

// onInitPid runs once the init's pid is known and before it is sent its
// plan: everything done to the init from outside must be done by then.
func (k *creation) onInitPid(so *spawnOpts, pidfdSock *os.File, pid int) error {
	r, s, lx, st, pl := k.r, k.spec, k.lx, k.st, so.plan
	// The process is in its cgroup from birth; a driver that
	// kept the cgroup alive until now may stop doing so.
	k.cm.Joined()
	start, _, err := procStart(pid)
	if err != nil {
		return fmt.Errorf("read start time of %d: %w", pid, err)
	}
	st.InitPid, st.InitStart = pid, start
	// Where runc 1.5 applies it: in its cgroups, before the init runs
	// anything of the container's.
	if lx.IntelRdt != nil {
		root, err := resctrl.Root()
		if err != nil {
			return fmt.Errorf("linux.intelRdt: %w", err)
		}
		g, err := resctrl.Apply(root, k.o.ID, lx.IntelRdt, pid)
		if err != nil {
			return fmt.Errorf("linux.intelRdt: %w", err)
		}
		k.cleanups = append(k.cleanups, func() { g.Destroy() })
		st.IntelRdt = g
		r.debug("create %s: resctrl group %s (monitoring %q)", k.o.ID, g.Path, g.MonPath)
	}
	if err := r.Store.Save(st); err != nil {
		return err
	}
	if err := sendPidfd(pidfdSock, pid, "standard"); err != nil {
		return err
	}
	// Before the plan is sent, so that the devices are there, up
	// and addressed when the container's own code first runs
	// (runc moves them at the same point, procHooks).
	if ns.IsNew(lx.Namespaces, specs.NetworkNamespace) || ns.Has(lx.Namespaces, specs.NetworkNamespace) {
		if err := netdev.Move(fmt.Sprintf("/proc/%d/ns/net", pid), lx.NetDevices); err != nil {
			return err
		}
	}
	pl.SetHookState(func() []byte { return k.c.stateJSON(Creating) }, func() []byte { return k.c.stateJSON(Created) })
	files, err := mountFds(pl, s, pid)
	if err != nil {
		return err
	}
	so.passFds = files
	return nil
}

// runHooks serves the init until it is ready: the prestart and
// createRuntime hooks run here, in the host's namespaces, when the init
// asks; createContainer hooks run in the init, with no idle timeout.
func (k *creation) runHooks(p *proc) error {
	r, o, s, c := k.r, k.o, k.spec, k.c
	for {
		m, err := p.next()
		p.conn.idle = syncIdleTimeout
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: exited during create", ErrProcess)
		}
		if err != nil {
			return err
		}
		switch m {
		case frame.TypeHooks:
			r.debug("create %s: running prestart and createRuntime hooks", o.ID)
			if err := hooks.RunIn(k.bundle, "prestart", s.Hooks.Prestart, c.stateJSON(Created)); err != nil { //nolint:staticcheck
				return err
			}
			if err := hooks.RunIn(k.bundle, "createRuntime", s.Hooks.CreateRuntime, c.stateJSON(Created)); err != nil {
				return err
			}
			if err := p.send(frame.TypeHooksDone); err != nil {
				return err
			}
			continue
		case frame.TypeContainerHooks:
			p.conn.idle = 0
			continue
		case frame.TypeReady:
		default:
			return fmt.Errorf("%w: unexpected message %q", ErrProcess, m)
		}
		break
	}
	return nil
}

// frozenErr says why a container process in cm cannot run: its cgroup is
// frozen (by someone else: hako does not freeze a container it creates).
// A freezer state it cannot read counts as not frozen.
func frozenErr(cm *cgroups.Manager, op string) error {
	if paused, err := cm.Paused(); err != nil || !paused {
		return nil
	}
	dir := cm.Paths()["freezer"]
	if dir == "" {
		dir = cm.UnifiedPath()
	}
	return fmt.Errorf("%s: cgroup %s: container's cgroup unexpectedly frozen", op, dir)
}

func thawIfFrozen(cm *cgroups.Manager) {
	if paused, err := cm.Paused(); err == nil && paused {
		_ = cm.Thaw()
	}
}

// preservedFiles wraps fds 3..3+n-1 of this process.
func preservedFiles(n int) ([]*os.File, error) {
	var fs []*os.File
	for i := 0; i < n; i++ {
		fd := 3 + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("--preserve-fds: fd %d is not open", fd)
		}
		fs = append(fs, os.NewFile(uintptr(fd), "preserved-"+strconv.Itoa(fd)))
	}
	return fs, nil
}

// writePidFile writes atomically: engines poll for the file and must never
// read it half written.
func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := state.WriteAtomic(abs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	return nil
}

func dialConsole(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to --console-socket %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// rootIDs is the host uid and gid of the container's root.
func rootIDs(lx *specs.Linux) (uint32, uint32) {
	uid, ok := idmap.ToHost(lx.UIDMappings, 0)
	if !ok {
		uid = uint32(os.Geteuid())
	}
	gid, ok := idmap.ToHost(lx.GIDMappings, 0)
	if !ok {
		gid = uint32(os.Getegid())
	}
	return uid, gid
}

// debugReady adds what the init measured to the timeline (--debug): its Go
// start, the plan's decoding, its steps; and names the slowest steps.
func (k *creation) debugReady(p *proc, pl *plan.Plan) {
	if k.o.timeline == nil {
		return
	}
	running := "Go"
	if k.inC {
		running = "C"
	}
	rep, err := k.o.timeline.MarkReport("init", running, p.ready)
	if err != nil {
		k.r.debug("create %s: init's timings: %v", k.o.ID, err)
		return
	}
	if rep.GoFrom > 0 {
		k.r.debug("create %s: nsexec.c handed step %d %s to Go, which went on from there", k.o.ID, rep.GoFrom, pl.Steps[rep.GoFrom-1].String())
	}
	k.r.debug("create %s: init steps took %.2f ms; slowest: %s", k.o.ID, float64(rep.Total().Microseconds())/1000,
		rep.Slowest(8, func(i int) string { return pl.Steps[i].String() }))
}
