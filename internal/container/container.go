// Package container is the lifecycle: create, start, kill, delete and exec
// as operations on a container in the state store, the hooks around them,
// and the parent's side of the conversation with the container's processes.
package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/cgroups"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/state"
)

// Status is a container's runtime-spec status (plus runc's "paused").
type Status string

// Statuses.
const (
	Creating Status = "creating"
	Created  Status = "created"
	Running  Status = "running"
	Paused   Status = "paused"
	Stopped  Status = "stopped"
)

// Sentinel errors for callers.
var (
	// ErrNotRunning's text is runc's: containerd's shim matches
	// "container not running" after kill to decide that the task is gone.
	ErrNotRunning = errors.New("container not running")
	ErrWrongState = errors.New("container is in the wrong state")
)

// Runtime is the set of global options every command shares.
type Runtime struct {
	Store    *state.Store
	Rootless bool
	// SystemdCgroup (--systemd-cgroup) makes create use the systemd
	// cgroup driver; later commands follow the state, not the flag.
	SystemdCgroup bool
	// Warn receives non-fatal problems (failing poststart/poststop hooks).
	Warn func(string)
	// Debug, when set (--debug), receives a line per step.
	Debug func(string)
}

// sealDir is the empty layer of exeseal's overlay; "@" keeps it from ever
// being taken for a container id.
func (r *Runtime) sealDir() string {
	return filepath.Join(r.Store.Root, "@exeseal-empty")
}

// debugPlan logs a compiled plan, one step a line.
func (r *Runtime) debugPlan(what string, pl *plan.Plan) {
	if r.Debug == nil {
		return
	}
	r.debug("%s: plan (%s, %d steps):", what, pl.Kind, len(pl.Steps))
	for _, l := range pl.Lines() {
		r.debug("%s: plan %s", what, l)
	}
}

func (r *Runtime) debug(format string, args ...any) {
	if r.Debug != nil {
		r.Debug(fmt.Sprintf(format, args...))
	}
}

func (r *Runtime) warn(format string, args ...any) {
	if r.Warn != nil {
		r.Warn(fmt.Sprintf(format, args...))
	}
}

// Container is a loaded container.
type Container struct {
	rt    *Runtime
	State *state.State
}

// Load reads a container from the store.
func (r *Runtime) Load(id string) (*Container, error) {
	st, err := r.Store.Load(id)
	if err != nil {
		return nil, err
	}
	return &Container{rt: r, State: st}, nil
}

// Config reads the config the container was created from.
func (c *Container) Config() (*specs.Spec, error) {
	var s specs.Spec
	if err := c.readConfig(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// readConfig decodes the saved config into v: the whole spec, or the part
// of it a command needs (ExecConfig, hooks).
func (c *Container) readConfig(v any) error {
	data, err := os.ReadFile(filepath.Join(c.rt.Store.Dir(c.State.ID), state.ConfigName))
	if err != nil {
		return fmt.Errorf("container %q: read saved config: %w", c.State.ID, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("container %q: saved config: %w", c.State.ID, err)
	}
	return nil
}

// execConfig is the part of the saved config that exec reads: the process
// it starts from and the linux fields its plan and namespaces come from.
// Decoding only these skips the first-use reflection of every other type
// of the spec, ~0.35 ms of an exec that starts a fresh process each time.
// TestExecConfigKeepsWhatExecReads holds the plans the two views give
// equal, so that a field exec starts to read cannot be left out here.
type execConfig struct {
	Process *specs.Process `json:"process,omitempty"`
	Linux   *struct {
		Namespaces   []specs.LinuxNamespace   `json:"namespaces,omitempty"`
		Seccomp      *specs.LinuxSeccomp      `json:"seccomp,omitempty"`
		Personality  *specs.LinuxPersonality  `json:"personality,omitempty"`
		MemoryPolicy *specs.LinuxMemoryPolicy `json:"memoryPolicy,omitempty"`
	} `json:"linux,omitempty"`
}

// ExecConfig reads the saved config as exec needs it (execConfig).
func (c *Container) ExecConfig() (*specs.Spec, error) {
	var e execConfig
	if err := c.readConfig(&e); err != nil {
		return nil, err
	}
	return e.spec(), nil
}

// spec is the view as a spec, with only the fields it decoded.
func (e *execConfig) spec() *specs.Spec {
	s := &specs.Spec{Process: e.Process}
	if l := e.Linux; l != nil {
		s.Linux = &specs.Linux{Namespaces: l.Namespaces, Seccomp: l.Seccomp, Personality: l.Personality, MemoryPolicy: l.MemoryPolicy}
	}
	return s
}

// hooks reads only the config's hooks: start and delete need nothing else
// of it, and decoding the whole spec (its every type's first use in a
// fresh process) was ~0.5 ms of each.
func (c *Container) hooks() (*specs.Hooks, error) {
	var s struct {
		Hooks *specs.Hooks `json:"hooks"`
	}
	if err := c.readConfig(&s); err != nil {
		return nil, err
	}
	return s.Hooks, nil
}

// Status works out the container's status from the kernel, not from what
// was last written: the init may have died since.
func (c *Container) Status() Status {
	if !alive(c.State.InitPid, c.State.InitStart) {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(c.rt.Store.Dir(c.State.ID), state.FifoName)); err == nil {
		return Created
	}
	if len(c.State.CgroupPaths) > 0 {
		if cm, err := c.cgroupManager(); err == nil {
			if p, _ := cm.Paused(); p {
				return Paused
			}
		}
	}
	return Running
}

// cgroupManager is the container's cgroups, from the paths its state saved.
func (c *Container) cgroupManager() (*cgroups.Manager, error) {
	return cgroups.Load(c.State.CgroupPaths, c.State.Rootless, c.State.CgroupUnit)
}

// joinCgroups says how a new container process joins cm: the v1 tasks files
// its constructor writes "0" to, and the cgroup2 directory it is cloned
// into. Rootless creation skips the cgroups it may not make, so those that
// do not exist are left out rather than failing the join.
func joinCgroups(cm *cgroups.Manager, rootless bool) (tasks []string, cgroup2 string) {
	tasks, cgroup2 = cm.JoinFiles(), cm.UnifiedPath()
	if rootless {
		tasks = existing(tasks)
		if len(existing([]string{cgroup2})) == 0 {
			cgroup2 = ""
		}
	}
	return tasks, cgroup2
}

func existing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil && p != "" {
			out = append(out, p)
		}
	}
	return out
}

// alive reports whether pid is still the process started at start (pids
// are reused) and not a zombie.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, zombie, err := procStart(pid)
	return err == nil && !zombie && (start == 0 || st == start)
}

// procStart reads a process's start time (field 22 of /proc/<pid>/stat)
// and whether it is a zombie.
func procStart(pid int) (uint64, bool, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name may hold spaces and parentheses: parse after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	// A process past exit(2) but not yet a zombie has already dropped its
	// namespaces; a PID namespace's init stays so while the kernel reaps
	// the namespace. It can take no signal, exec or join: it has stopped.
	flags, _ := strconv.ParseUint(f[6], 10, 64)
	return v, f[0] == "Z" || f[0] == "X" || flags&pfExiting != 0, nil
}

// pfExiting is PF_EXITING of include/linux/sched.h, in /proc/<pid>/stat's
// flags field.
const pfExiting = 0x4

// OCIState is the state JSON of `state`, `list --format json` and hooks:
// the runtime-spec's fields plus runc's rootfs, created and owner.
type OCIState struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      Status            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Owner is empty in `state` and hooks' state, as in runc; `list` sets
	// it from its state directory (ListState).
	Owner string `json:"owner"`
}

// OCIState reports the container's state.
func (c *Container) OCIState() OCIState {
	return c.ociState(c.Status())
}

func (c *Container) ociState(s Status) OCIState {
	pid := c.State.InitPid
	if s == Stopped {
		pid = 0
	}
	return OCIState{
		Version: specs.Version, ID: c.State.ID, Pid: pid, Status: s,
		Bundle: c.State.Bundle, Rootfs: c.State.Rootfs, Created: c.State.Created,
		Annotations: c.State.Annotations,
	}
}

// ListState is OCIState as `list` shows it, with runc's owner: the user
// owning the container's state directory (who created it), by name where
// /etc/passwd has one, "#uid" otherwise.
func (c *Container) ListState() OCIState {
	s := c.OCIState()
	var st unix.Stat_t
	if err := unix.Stat(c.rt.Store.Dir(c.State.ID), &st); err == nil {
		s.Owner = userName(st.Uid)
	}
	return s
}

// userName reads /etc/passwd itself: os/user would call glibc's NSS
// through cgo, which a static binary cannot load.
func userName(uid uint32) string {
	data, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == strconv.FormatUint(uint64(uid), 10) {
			return f[0]
		}
	}
	return "#" + strconv.FormatUint(uint64(uid), 10)
}

func (c *Container) stateJSON(s Status) []byte {
	data, _ := json.Marshal(c.ociState(s))
	return data
}

// waitGone waits until pid has exited, up to timeout.
func waitGone(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("process %d did not exit within %s", pid, timeout)
		}
		return nil
	}
}

// signalInit sends sig to the init through a pidfd, so a recycled pid can
// never receive it.
func (c *Container) signalInit(sig unix.Signal) error {
	fd, err := unix.PidfdOpen(c.State.InitPid, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer unix.Close(fd)
	if !alive(c.State.InitPid, c.State.InitStart) {
		return ErrNotRunning
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("signal %d to init %d: %w", sig, c.State.InitPid, err)
	}
	return nil
}
