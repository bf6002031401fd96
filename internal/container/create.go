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
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/spec"
	"github.com/hako-runtime/hako/internal/state"
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
}

// Create builds the container and leaves its init waiting for start. On
// failure nothing is left: no process, cgroup, mount or state directory.
func (r *Runtime) Create(o *CreateOpts) (c *Container, err error) {
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	s, cfgData, err := spec.LoadBytes(bundle)
	if err != nil {
		return nil, err
	}
	rootfsPath, err := spec.RootfsPath(s, bundle)
	if err != nil {
		return nil, err
	}
	if s.Process.Terminal && o.ConsoleSocket == "" && o.ConsoleFile == nil && o.RelayTTY {
		theirs, ours, err := console.Socketpair()
		if err != nil {
			return nil, err
		}
		defer theirs.Close()
		defer func() {
			if err != nil {
				ours.Close()
			}
		}()
		o.ConsoleFile, o.RelaySocket = theirs, ours
	}
	if s.Process.Terminal && o.ConsoleSocket == "" && o.ConsoleFile == nil {
		return nil, errors.New("process.terminal is true: use --console-socket to receive the pty master (or run in the foreground)")
	}
	if !s.Process.Terminal && (o.ConsoleSocket != "" || o.ConsoleFile != nil) {
		return nil, errors.New("--console-socket given but process.terminal is false")
	}
	r.debug("create %s: config %s/config.json valid, rootfs %s", o.ID, bundle, rootfsPath)
	if s.Linux != nil && len(s.Linux.NetDevices) > 0 && r.Rootless {
		// runc's words: moving host devices needs CAP_NET_ADMIN on the host.
		return nil, errors.New("linux.netDevices: network devices are not supported for rootless containers")
	}
	lock, err := r.Store.Create(o.ID)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()

	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()
	dir := r.Store.Dir(o.ID)
	cleanups = append(cleanups, func() { r.Store.Remove(o.ID) })

	if err := state.WriteAtomic(filepath.Join(dir, state.ConfigName), cfgData, 0o600); err != nil {
		return nil, err
	}
	lx := s.Linux
	if lx == nil {
		lx = &specs.Linux{}
	}
	cm, err := cgroups.New(cgroups.Config{
		ID: o.ID, CgroupsPath: lx.CgroupsPath, Resources: lx.Resources, Devices: lx.Devices, Rootless: r.Rootless,
		Systemd: r.SystemdCgroup, Annotations: s.Annotations, Warn: r.warn,
	})
	if err != nil {
		return nil, err
	}
	st := &state.State{
		ID: o.ID, Bundle: bundle, Rootfs: rootfsPath, Created: time.Now().UTC(),
		Annotations: s.Annotations, CgroupPaths: cm.Paths(), Rootless: r.Rootless, CgroupUnit: cm.Unit(),
	}
	c = &Container{rt: r, State: st}
	// Saved before any cgroup or process exists: a hako killed from here
	// on leaves a state that `delete --force` can clean up completely.
	if err := r.Store.Save(st); err != nil {
		return nil, err
	}
	if err := cm.Create(); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { cm.Destroy() })
	r.debug("create %s: cgroups %v", o.ID, cm.Paths())
	// Checked after the cgroups exist: a v1 cgroup made under a frozen
	// parent is born frozen. A process joining a frozen cgroup stops
	// before it can report anything; runc refuses it, in these words.
	if err := frozenErr(cm, "create"); err != nil {
		return nil, err
	}
	// Allowed, as runc allows it, with runc's warning: `kill --all`,
	// `ps` and delete will treat those processes as the container's.
	if pids, err := cm.Pids(); err == nil && len(pids) > 0 {
		r.warn("container's cgroup is not empty: %d process(es) found", len(pids))
	}

	fifo := filepath.Join(dir, state.FifoName)
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
	if uid, gid := rootIDs(lx); uid != 0 || gid != 0 {
		if err := os.Chown(fifo, int(uid), int(gid)); err != nil {
			return nil, fmt.Errorf("chown exec fifo: %w", err)
		}
	}
	fifoDir, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
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

	unshare, join, err := ns.Split(lx.Namespaces)
	if err != nil {
		return nil, err
	}
	req := nsenter.Request{Join: join, Unshare: unshare}
	var cgroup2 string
	req.CgroupTasks, cgroup2 = joinCgroups(cm, r.Rootless)
	for clock, off := range lx.TimeOffsets {
		req.TimeOffsets = append(req.TimeOffsets, nsenter.TimeOffset{Clock: clock, Secs: off.Secs, Nanos: off.Nanosecs})
	}
	var cgMounts []rootfs.CgroupMount
	for _, m := range cm.Mounts() {
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
		if err := state.WriteAtomic(filepath.Join(dir, state.SeccompName), data, 0o600); err != nil {
			return nil, err
		}
	}
	pl, err := plan.FromSpec(&plan.OCI{
		Spec: s, Bundle: bundle, Rootfs: rootfsPath, NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring,
		Rootless: r.Rootless, HostInUserNS: idmap.RunningInUserNS(), Cgroups: cgMounts, Seccomp: filter,
		PreserveFds: o.ListenFds + o.PreserveFds, ListenFds: o.ListenFds,
	})
	if err != nil {
		return nil, err
	}
	r.debugPlan("create "+o.ID, pl)
	preserved, err := preservedFiles(o.ListenFds + o.PreserveFds)
	if err != nil {
		return nil, err
	}
	var so *spawnOpts
	so = &spawnOpts{
		req: req, cgroup2Dir: cgroup2, plan: pl, preserved: preserved,
		fifoDir: fifoDir, console: consoleSock, uidMaps: lx.UIDMappings, gidMaps: lx.GIDMappings,
		stdin: o.Stdin, stdout: o.Stdout, stderr: o.Stderr, sealDir: r.sealDir(), rootless: r.Rootless, warn: r.Warn,
		stuck: func() error { return frozenErr(cm, "create") },
		// The cgroup goes away with the failed container: what froze it
		// cannot want it back.
		thaw: func() { thawIfFrozen(cm) },
		onFd: func(fd int) error {
			return forwardListener(fd, st.InitPid, lx.Seccomp, c.specState(Creating))
		},
		onPid: func(pid int) error {
			// The process is in its cgroup from birth; a driver that
			// kept the cgroup alive until now may stop doing so.
			cm.Joined()
			start, _, err := procStart(pid)
			if err != nil {
				return fmt.Errorf("read start time of %d: %w", pid, err)
			}
			st.InitPid, st.InitStart = pid, start
			if err := r.Store.Save(st); err != nil {
				return err
			}
			if err := sendPidfd(pidfdSock, pid, "standard"); err != nil {
				return err
			}
			if s.Process.OOMScoreAdj != nil {
				p := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
				if err := os.WriteFile(p, []byte(strconv.Itoa(*s.Process.OOMScoreAdj)), 0); err != nil {
					return fmt.Errorf("write %s: %w", p, err)
				}
			}
			// Before the plan is sent, so that the devices are there, up
			// and addressed when the container's own code first runs
			// (runc moves them at the same point, procHooks).
			if ns.IsNew(lx.Namespaces, specs.NetworkNamespace) || ns.Has(lx.Namespaces, specs.NetworkNamespace) {
				if err := netdev.Move(fmt.Sprintf("/proc/%d/ns/net", pid), lx.NetDevices); err != nil {
					return err
				}
			}
			pl.SetHookState(c.stateJSON(Creating), c.stateJSON(Created))
			files, err := mountFds(pl, s, pid)
			if err != nil {
				return err
			}
			so.passFds = files
			return nil
		},
	}
	p, err := spawn(so)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, p.kill)
	r.debug("create %s: container process %d started (unshare %#x, join %v)", o.ID, p.pid, unshare, join)
	for {
		m, err := p.next()
		p.conn.idle = syncIdleTimeout
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: exited during create", ErrProcess)
		}
		if err != nil {
			return nil, err
		}
		switch m {
		case frame.TypeHooks:
			r.debug("create %s: running prestart and createRuntime hooks", o.ID)
			if err := hooks.RunIn(bundle, "prestart", s.Hooks.Prestart, c.stateJSON(Created)); err != nil { //nolint:staticcheck
				return nil, err
			}
			if err := hooks.RunIn(bundle, "createRuntime", s.Hooks.CreateRuntime, c.stateJSON(Created)); err != nil {
				return nil, err
			}
			if err := p.send(frame.TypeHooksDone); err != nil {
				return nil, err
			}
			continue
		case frame.TypeContainerHooks:
			p.conn.idle = 0
			continue
		case frame.TypeReady:
		default:
			return nil, fmt.Errorf("%w: unexpected message %q", ErrProcess, m)
		}
		break
	}
	p.conn.Close()
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, st.InitPid); err != nil {
			return nil, err
		}
	}
	return c, nil
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
