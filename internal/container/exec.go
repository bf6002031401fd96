package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/cgroups"
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/resctrl"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/state"
	"github.com/hako-runtime/hako/internal/timing"
)

// ExecOpts are exec's inputs once the CLI has built the process.
type ExecOpts struct {
	Process       *specs.Process
	ConsoleSocket string
	ConsoleFile   *os.File
	// PidfdSocket receives a pidfd of the exec'd process (--pidfd-socket).
	PidfdSocket string
	PidFile     string
	PreserveFds int
	Stdin       *os.File
	Stdout      *os.File
	Stderr      *os.File
	// IgnorePaused execs into a paused container (--ignore-paused): the
	// process starts frozen and runs once the container is resumed.
	IgnorePaused bool
	// SubCgroups are exec --cgroup's sub-cgroups to join; nil joins the
	// container's own.
	SubCgroups *cgroups.Sub

	// config is the container's, when the caller has read it already.
	config *specs.Spec
	// timeline, when --debug is on, gathers exec's breakdown.
	timeline *timing.Timeline
}

// Exec starts a process beside the init: in exactly the namespaces the
// container's config lists, taken from the init (the user namespace
// included), and in its cgroups. It returns the new process's pid, which is
// a child of the caller.
func (c *Container) Exec(o *ExecOpts) (int, error) {
	switch s := c.Status(); s {
	case Running:
		if c.rt.Rootless {
			waitExeced(c.State.InitPid)
		}
	case Created:
	case Paused:
		if !o.IgnorePaused {
			return 0, fmt.Errorf("%w: cannot exec in a paused container (use --ignore-paused to override)", ErrWrongState)
		}
	default:
		return 0, fmt.Errorf("%w: cannot exec in a stopped container", ErrNotRunning)
	}
	cfg, err := o.config, error(nil)
	if cfg == nil {
		if cfg, err = c.ExecConfig(); err != nil {
			return 0, err
		}
	}
	tl := o.timeline
	if o.Process.Terminal && o.ConsoleSocket == "" && o.ConsoleFile == nil {
		return 0, errors.New("process.terminal is true: use --console-socket (or exec in the foreground)")
	}
	lx := cfg.Linux
	if lx == nil {
		lx = &specs.Linux{}
	}
	// The container's oom_score_adj, not the exec'd process's own: an
	// exec is a child of hako, not of the init, so it would otherwise run
	// with hako's (runc's bootstrapData sends it for exec too).
	req := nsenter.Request{Join: ns.PathsOf(c.State.InitPid, lx.Namespaces)}
	if cfg.Process != nil {
		req.OOMScoreAdj = cfg.Process.OOMScoreAdj
	}
	cgroup2 := ""
	var place func(pid int) error
	var stuck func() error
	if len(c.State.CgroupPaths) > 0 {
		cm, err := c.cgroupManager()
		if err != nil {
			return 0, err
		}
		if cm, err = cm.WithSub(o.SubCgroups); err != nil {
			return 0, err
		}
		req.CgroupTasks, cgroup2 = joinCgroups(cm, c.State.Rootless)
		place = cm.Placer()
		// Paused by someone meanwhile: the new process stops in it.
		// The container is not ours to thaw. With --ignore-paused that
		// is what was asked for: like runc, wait for the resume (up to
		// the sync socket's idle limit).
		if !o.IgnorePaused {
			stuck = func() error { return frozenErr(cm, "exec") }
		}
		c.rt.debug("exec %s: cgroups %v", c.State.ID, cm.Paths())
	}
	tl.Mark("cgroups")
	c.rt.debug("exec %s: into init %d; before Go, the constructor will do: %s", c.State.ID, c.State.InitPid, &req)
	console := o.ConsoleFile
	if o.ConsoleSocket != "" {
		if console, err = dialConsole(o.ConsoleSocket); err != nil {
			return 0, err
		}
		defer console.Close()
	}
	pidfdSock, err := dialPidfdSocket(o.PidfdSocket)
	if err != nil {
		return 0, err
	}
	if pidfdSock != nil {
		defer pidfdSock.Close()
	}
	preserved, err := preservedFiles(o.PreserveFds)
	if err != nil {
		return 0, err
	}
	filter, err := c.seccomp(lx.Seccomp)
	if err != nil {
		return 0, err
	}
	// With the config's linux section: personality and memoryPolicy are
	// every process's, as in runc's setns_init.
	pl, err := plan.ForExecWith(o.Process, lx, filter, o.PreserveFds)
	if err != nil {
		return 0, err
	}
	c.rt.debugPlan("exec "+c.State.ID, pl)
	pl.Timings = tl != nil
	// Applied by nsexec.c itself where every step is one it knows: no Go
	// runtime starts in the new process.
	cplan, inC := nsenter.EncodeCPlan(pl)
	if inC {
		req.Options |= nsenter.OptCPlan
		c.rt.debug("exec %s: the plan runs in nsexec.c, without Go", c.State.ID)
	}
	tl.Mark("plan")
	so := &spawnOpts{timeline: tl, cplan: cplan,
		req: req, cgroup2Dir: cgroup2, place: place, plan: pl, preserved: preserved, console: console,
		stdin: o.Stdin, stdout: o.Stdout, stderr: o.Stderr, sealDir: c.rt.sealDir(), rootless: c.rt.Rootless, warn: c.rt.Warn,
		stuck: stuck,
		// Before the plan is sent: the process cannot exec (or exit and
		// be reaped) yet, so the pidfd is of the process asked for.
		onPid: func(pid int) error {
			// runc 1.5 puts an exec'd process in the CLOS group too.
			if g := c.State.IntelRdt; g != nil {
				root, _ := resctrl.Root()
				if err := g.AddTask(root, pid); err != nil {
					return fmt.Errorf("linux.intelRdt: %w", err)
				}
			}
			return sendPidfd(pidfdSock, pid, "setns")
		},
	}
	// execCPUAffinity.initial holds from the fork on, for nsexec and
	// hako's own code in the container, as runc's startWithCPUAffinity.
	if so.initialCPUs, _, err = plan.AffinityMasks(o.Process.ExecCPUAffinity); err != nil {
		return 0, err
	}
	var p *proc
	so.onFd = func(fd int) error {
		return forwardListener(fd, p.pid, lx.Seccomp, c.specState(Running))
	}
	// The pid must stay the init's while we join its namespaces.
	if !alive(c.State.InitPid, c.State.InitStart) {
		return 0, ErrNotRunning
	}
	p, err = spawn(so)
	if err != nil {
		return 0, err
	}
	c.rt.debug("exec %s: process %d started: %v as %d:%d in %s", c.State.ID, p.pid, o.Process.Args, o.Process.User.UID, o.Process.User.GID, o.Process.Cwd)
	m, err := p.next()
	if err == nil && m != frame.TypeReady {
		err = fmt.Errorf("%w: unexpected message %q", ErrProcess, m)
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: exited before exec", ErrProcess)
	}
	if err != nil {
		p.kill()
		return 0, err
	}
	running := "Go"
	if inC {
		running = "C"
	}
	_, _ = tl.MarkReport("process", running, p.ready)
	// After "ready" the socket closes at exec; an error line means
	// execve itself failed.
	if _, err := p.next(); err != nil && !errors.Is(err, io.EOF) {
		p.kill()
		return 0, err
	}
	p.conn.Close()
	tl.Mark("execve")
	c.rt.debug("exec %s: process %d exec'd %s", c.State.ID, p.pid, o.Process.Args[0])
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, p.pid); err != nil {
			return 0, err
		}
	}
	return p.pid, nil
}

// seccomp is the container's compiled filter, as create saved it; compiled
// again only where there is none saved (a profile without rules saves none).
func (c *Container) seccomp(sc *specs.LinuxSeccomp) (*security.Seccomp, error) {
	data, err := os.ReadFile(filepath.Join(c.rt.Store.Dir(c.State.ID), state.SeccompName))
	if err != nil {
		return security.BuildSeccomp(sc)
	}
	var f security.Seccomp
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("container %q: saved seccomp filter: %w", c.State.ID, err)
	}
	return &f, nil
}

// waitExeced waits, up to a second, until a started init has exec'd the
// container's program. Until then it is still hako's non-dumpable init
// (nsexec.c), and an unprivileged caller may not open its /proc/<pid>/ns/*
// (EACCES, ptrace rules): `start` returns once the init has been let go,
// before its execve, so an exec right after it would fail now and then (2 in
// 30 here, rootless). Root is not held to those rules and does not wait.
func waitExeced(pid int) {
	comm := "/proc/" + strconv.Itoa(pid) + "/comm"
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		name, err := os.ReadFile(comm)
		if err != nil || strings.TrimSpace(string(name)) != initComm {
			return
		}
	}
}

// initComm is the name nsexec.c gives the init until it execs.
const initComm = "hako:[init]"
