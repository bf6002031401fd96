package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/console"
	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/cgroups"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/sandbox"
	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// SandboxOpts is one `hako sandbox` run.
type SandboxOpts struct {
	Sandbox *sandbox.Sandbox
	// Terminal: stdin is a terminal; the sandbox gets a pty of its own
	// (job control inside, no TIOCSTI into the caller's terminal).
	Terminal bool
	// Receipt, when set, receives the receipt as JSON.
	Receipt io.Writer
}

// RunSandbox runs a sandbox in the foreground and returns COMMAND's exit
// status. Unlike Create it keeps no state, makes no cgroup and no exec
// fifo: everything it makes lives in the sandbox's namespaces, so nothing
// is left on the host when it ends, or when hako is killed (the sandbox's
// PID 1 gets SIGKILL with hako, and its PID namespace dies with it).
func (r *Runtime) RunSandbox(o *SandboxOpts) (int, error) {
	// PR_SET_PDEATHSIG fires when the thread that forked the child ends:
	// this goroutine stays on the thread that spawns, which never exits
	// before the process does.
	runtime.LockOSThread()
	sigs := notifyForwarded()
	if o.Terminal {
		o.Sandbox.WithTerminal()
	}
	s := o.Sandbox.Spec
	unshare, join, err := ns.Split(s.Linux.Namespaces)
	if err != nil {
		return 0, err
	}
	rpipe, wpipe, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("pipe for the receipt: %w", err)
	}
	defer rpipe.Close()
	pl, err := o.Sandbox.Plan(&plan.OCI{Rootless: os.Geteuid() != 0, HostInUserNS: idmap.RunningInUserNS()})
	if err != nil {
		wpipe.Close()
		return 0, err
	}
	r.debugPlan("sandbox", pl)
	var consoleTheirs, consoleOurs *os.File
	if o.Terminal {
		if consoleTheirs, consoleOurs, err = console.Socketpair(); err != nil {
			wpipe.Close()
			return 0, err
		}
		defer consoleOurs.Close()
		defer consoleTheirs.Close()
	}
	receiptData := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(rpipe)
		receiptData <- data
	}()
	cg, err := r.sandboxCgroups(o.Sandbox)
	if err != nil {
		wpipe.Close()
		return 0, err
	}
	defer cg.destroy(r)
	if cg != nil && len(cg.steps) > 0 {
		pl.Steps = beforePivot(pl.Steps, cg.steps)
	}
	so := &spawnOpts{
		req: nsenter.Request{Join: join, Unshare: unshare}, plan: pl, console: consoleTheirs,
		uidMaps: s.Linux.UIDMappings, gidMaps: s.Linux.GIDMappings,
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		sealDir: r.sealDir(), rootless: os.Geteuid() != 0, warn: r.Warn,
		receipt: wpipe,
	}
	if cg != nil {
		so.req.CgroupTasks, so.cgroup2Dir = joinCgroups(cg.join, so.rootless)
		so.passFds, cg.fds = cg.fds, nil
	}
	p, err := spawn(so)
	// The child has its copy (or failed): ours must close for EOF.
	wpipe.Close()
	if err != nil {
		return 0, err
	}
	if consoleTheirs != nil {
		consoleTheirs.Close()
	}
	var relay *console.Relay
	ready := false
	for !ready {
		m, err := p.next()
		switch {
		case errors.Is(err, io.EOF):
			err = fmt.Errorf("%w: exited during setup", ErrProcess)
			fallthrough
		case err != nil:
			p.kill()
			writeReceipt(o.Receipt, <-receiptData)
			return 0, err
		case m == frame.TypeReady:
			ready = true
		default:
			p.kill()
			return 0, fmt.Errorf("%w: unexpected message %q", ErrProcess, m)
		}
	}
	p.conn.Close()
	writeReceipt(o.Receipt, <-receiptData)
	if consoleOurs != nil {
		if relay, err = console.StartRelay(consoleOurs); err != nil {
			unix.Kill(p.pid, unix.SIGKILL)
			reap(p.pid)
			return 0, err
		}
	}
	code, err := waitForward(p.pid, sigs)
	if relay != nil {
		relay.Close()
	}
	return code, err
}

func writeReceipt(w io.Writer, data []byte) {
	if w == nil || len(data) == 0 {
		return
	}
	var r receipt.Receipt
	if json.Unmarshal(data, &r) != nil {
		return
	}
	out, _ := json.MarshalIndent(r, "", "  ")
	w.Write(append(out, '\n')) //nolint:errcheck // best effort: the run's outcome does not depend on it
}

// sandboxCgroupPrefix names the cgroups of sandboxes, followed by the pid
// of the hako that made it.
const sandboxCgroupPrefix = "hako-sandbox-"

// sandboxCgroups makes the cgroups the resource properties need, through
// the same manager as a container's (linux.resources), next to hako's own
// cgroup; none when no property asks for one, so a sandbox without limits
// touches no cgroup at all. The init is in join from birth. With
// TasksMax= the sandbox's cgroup gets two children, the init's and
// COMMAND's, the pids limit on COMMAND's only (sandbox.TasksCgroup says
// why); then steps are the plan steps that fork COMMAND into it, with
// their fds.
type sandboxCgroups struct {
	all   []*cgroups.Manager // in creation order, destroyed in reverse
	join  *cgroups.Manager
	steps []plan.Step
	fds   []*os.File
}

func (r *Runtime) sandboxCgroups(sb *sandbox.Sandbox) (cg *sandboxCgroups, err error) {
	if !sb.HasResources() {
		return nil, nil
	}
	rootless := os.Geteuid() != 0
	name := sandboxCgroupPrefix + strconv.Itoa(os.Getpid())
	res := *sb.Spec.Linux.Resources
	type level struct {
		id  string
		res *specs.LinuxResources
	}
	levels := []level{{name, &res}}
	if sb.SplitTasks() {
		res.Pids = nil
		levels = append(levels,
			level{name + "/" + sandbox.InitCgroup, nil},
			level{name + "/" + sandbox.TasksCgroup, &specs.LinuxResources{Pids: sb.Spec.Linux.Resources.Pids}})
	}
	cg = &sandboxCgroups{}
	defer func() {
		if err != nil {
			cg.destroy(r)
			cg = nil
		}
	}()
	for i, l := range levels {
		cfg := cgroups.Config{ID: l.id, Resources: l.res, Rootless: rootless, Warn: r.warn}
		cm, err := cgroups.New(cfg)
		if err != nil {
			return cg, err
		}
		if i == 0 {
			sweepSandboxCgroups(cm, cfg)
		}
		if err := cm.Create(); err != nil {
			if rootless {
				return cg, fmt.Errorf("%w (cause: an unprivileged sandbox can limit resources only in a cgroup v2 subtree delegated to its user, as systemd-run --user -p MemoryMax= needs; run it inside a systemd user unit or scope with Delegate=yes, or as root)", err)
			}
			return cg, err
		}
		cg.all = append(cg.all, cm)
	}
	cg.join = cg.all[len(cg.all)-1]
	if !sb.SplitTasks() {
		return cg, nil
	}
	cg.join = cg.all[1]
	tasks := cg.all[2]
	open := func(p string, flags int, value string) error {
		f, err := os.OpenFile(p, flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open cgroup %s: %w", p, err)
		}
		cg.steps = append(cg.steps, plan.Step{Op: plan.OpTaskCgroup, Value: value, FD: len(cg.fds)})
		cg.fds = append(cg.fds, f)
		return nil
	}
	if cgroups.IsUnified() {
		return cg, open(tasks.UnifiedPath(), unix.O_PATH|unix.O_DIRECTORY, plan.TaskCgroup2)
	}
	if err := open(filepath.Join(tasks.Paths()["pids"], "tasks"), os.O_WRONLY, plan.TaskCgroupV1Into); err != nil {
		return cg, err
	}
	return cg, open(filepath.Join(cg.join.Paths()["pids"], "tasks"), os.O_WRONLY, plan.TaskCgroupV1Back)
}

// destroy removes the cgroups, children first; a failure is reported,
// not fatal: COMMAND's status is what the caller waits for.
func (cg *sandboxCgroups) destroy(r *Runtime) {
	if cg == nil {
		return
	}
	for _, f := range cg.fds {
		f.Close()
	}
	cg.fds = nil
	for i := len(cg.all) - 1; i >= 0; i-- {
		if err := cg.all[i].Destroy(); err != nil {
			r.warn("sandbox cgroup: %v", err)
		}
	}
}

// sweepSandboxCgroups removes the cgroups that sandboxes of a hako killed
// with SIGKILL left next to the one about to be made: their processes died
// with that hako (parent-death signal), the empty directories did not.
func sweepSandboxCgroups(cm *cgroups.Manager, cfg cgroups.Config) {
	seen := map[string]bool{}
	for _, dir := range cm.Paths() {
		entries, err := os.ReadDir(filepath.Dir(dir))
		if err != nil {
			continue
		}
		for _, e := range entries {
			pid, ok := strings.CutPrefix(e.Name(), sandboxCgroupPrefix)
			n, err := strconv.Atoi(pid)
			if !ok || err != nil || n == os.Getpid() || seen[e.Name()] || unix.Kill(n, 0) != unix.ESRCH {
				continue
			}
			seen[e.Name()] = true
			cfg.ID = e.Name()
			if old, err := cgroups.New(cfg); err == nil {
				_ = old.Destroy()
			}
		}
	}
}

// beforePivot inserts steps before the root change, while the fds they
// take are still wanted.
func beforePivot(steps, add []plan.Step) []plan.Step {
	for i, s := range steps {
		if s.Op == plan.OpPivotRoot {
			return append(steps[:i:i], append(add, steps[i:]...)...)
		}
	}
	return append(steps, add...)
}
