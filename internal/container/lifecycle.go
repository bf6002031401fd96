package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/hooks"
	"github.com/hako-runtime/hako/internal/linux/cgroups"
	"github.com/hako-runtime/hako/internal/linux/resctrl"
	"github.com/hako-runtime/hako/internal/state"
)

// Start releases a created container's init to exec the user's program.
func (r *Runtime) Start(id string) error {
	c, unlock, err := r.lockLoad(id)
	if err != nil {
		return err
	}
	defer unlock()
	switch s := c.Status(); s {
	case Created:
	case Stopped:
		return fmt.Errorf("%w: cannot start a container that has stopped", ErrWrongState)
	default:
		return fmt.Errorf("%w: cannot start an already %s container", ErrWrongState, s)
	}
	fifo := filepath.Join(r.Store.Dir(id), state.FifoName)
	// Non-blocking open: a blocking one would hang forever on an init
	// that died; instead wait for its byte while watching the init.
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	if err := awaitFifo(fd, c); err != nil {
		return err
	}
	// The fifo's absence is what says "started" (Status).
	os.Remove(fifo)
	if h, err := c.hooks(); err == nil && h != nil {
		if err := hooks.RunAll("poststart", h.Poststart, c.stateJSON(Running)); err != nil {
			r.warn("%v", err)
		}
	}
	return nil
}

func awaitFifo(fd int, c *Container) error {
	buf := make([]byte, 1)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		_, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		n, err := unix.Read(fd, buf)
		if n == 1 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("read exec fifo: %w", err)
		}
		if !alive(c.State.InitPid, c.State.InitStart) {
			return fmt.Errorf("%w: container init exited before start", ErrNotRunning)
		}
	}
}

// Kill sends sig to the init, or with all to every process in the
// container's cgroup.
func (r *Runtime) Kill(id string, sig unix.Signal, all bool) error {
	c, unlock, err := r.lockLoad(id)
	if err != nil {
		return err
	}
	defer unlock()
	if all {
		// runc's Signal(all): a stopped container is no error, its
		// cgroup's leftovers (if any) get the signal. containerd's shim
		// sends kill --all after the init of a container sharing the
		// pod's PID namespace has exited, and logs "failed to kill
		// init's children" for each refusal.
		return c.signalAll(sig)
	}
	if c.Status() == Stopped {
		return ErrNotRunning
	}
	return c.signalInit(sig)
}

// signalAll signals every process of the container. SIGKILL goes through
// cgroup.kill where there is one (runc 1.2+); otherwise, and for the v1
// hierarchies of a hybrid host, the cgroup is frozen meanwhile so that
// nothing forks a process that escapes the signal.
func (c *Container) signalAll(sig unix.Signal) error {
	cm, err := c.cgroupManager()
	if err != nil {
		return c.signalInit(sig)
	}
	if sig == unix.SIGKILL {
		complete, err := cm.KillAll()
		c.rt.debug("kill %s: SIGKILL through cgroup.kill: complete=%v err=%v", c.State.ID, complete, err)
		switch {
		case err == nil && complete:
			return nil
		case err != nil && !errors.Is(err, os.ErrNotExist):
			// runc returns this error too: a cgroup.kill that exists
			// and fails is not papered over.
			return fmt.Errorf("kill container processes: %w", err)
		}
	}
	wasPaused, _ := cm.Paused()
	if !wasPaused {
		_ = cm.Freeze()
	}
	pids, err := cm.Pids()
	for _, pid := range pids {
		_ = unix.Kill(pid, sig)
	}
	if !wasPaused || sig == unix.SIGKILL {
		_ = cm.Thaw()
	}
	if err != nil {
		return fmt.Errorf("list container processes: %w", err)
	}
	return nil
}

// Delete removes a container. A running one needs force (runc's rule), a
// created one is killed, a stopped one is cleaned up.
func (r *Runtime) Delete(id string, force bool) error {
	lock, err := r.Store.Lock(id)
	if err != nil {
		// runc's rule, which containerd's shim relies on when it cleans
		// up: --force on a container that is already gone succeeds.
		if force && errors.Is(err, state.ErrNotExist) {
			return nil
		}
		return err
	}
	defer lock.Unlock()
	c, err := r.Load(id)
	if err != nil {
		if errors.Is(err, state.ErrNotExist) {
			// A directory without state.json: a create that died
			// before its first save.
			if force {
				return r.Store.Remove(id)
			}
			return err
		}
		// A state that cannot be read (a crash mid-write) must still be
		// removable.
		if force {
			return r.Store.Remove(id)
		}
		return err
	}
	switch s := c.Status(); s {
	case Stopped:
	case Created:
		if err := c.killAndWait(); err != nil {
			return err
		}
	default:
		if !force {
			return fmt.Errorf("%w: cannot delete container %s that is not stopped: %s", ErrWrongState, id, s)
		}
		if err := c.killAndWait(); err != nil {
			return err
		}
	}
	return c.destroy()
}

func (c *Container) killAndWait() error {
	if len(c.State.CgroupPaths) > 0 {
		_ = c.signalAll(unix.SIGKILL)
	}
	_ = c.signalInit(unix.SIGKILL)
	if err := waitGone(c.State.InitPid, 10*time.Second); err != nil {
		return err
	}
	return nil
}

// destroy removes what the container owns: its cgroups (after every
// process in them is gone), the state directory, then poststop hooks.
func (c *Container) destroy() error {
	// Read before the state directory, which holds the config, goes.
	h, hooksErr := c.hooks()
	if len(c.State.CgroupPaths) > 0 {
		cm, err := c.cgroupManager()
		if err == nil {
			if pids, _ := cm.Pids(); len(pids) > 0 {
				_ = c.signalAll(unix.SIGKILL)
			}
			err = cm.Destroy()
		}
		if err != nil {
			return fmt.Errorf("remove cgroups of %s: %w", c.State.ID, err)
		}
	}
	if err := c.State.IntelRdt.Destroy(); err != nil {
		return fmt.Errorf("remove resctrl group of %s: %w", c.State.ID, err)
	}
	// The state poststop hooks read, made (a JSON encoding) only for them.
	var st []byte
	poststop := hooksErr == nil && h != nil && len(h.Poststop) > 0
	if poststop {
		st = c.stateJSON(Stopped)
	}
	if err := c.rt.Store.Remove(c.State.ID); err != nil {
		return err
	}
	if poststop {
		if err := hooks.RunAll("poststop", h.Poststop, st); err != nil {
			c.rt.warn("%v", err)
		}
	}
	return nil
}

// Pids lists the container's processes.
func (c *Container) Pids() ([]int, error) {
	cm, err := c.cgroupManager()
	if err != nil {
		return nil, err
	}
	return cm.Pids()
}

// Pause freezes the container's cgroup.
func (r *Runtime) Pause(id string) error {
	return r.freeze(id, true)
}

// Resume thaws it.
func (r *Runtime) Resume(id string) error {
	return r.freeze(id, false)
}

func (r *Runtime) freeze(id string, freeze bool) error {
	c, unlock, err := r.lockLoad(id)
	if err != nil {
		return err
	}
	defer unlock()
	s := c.Status()
	if freeze && s != Running {
		return fmt.Errorf("%w: cannot pause a %s container", ErrWrongState, s)
	}
	if !freeze && s != Paused {
		return fmt.Errorf("%w: container %s is not paused (%s)", ErrWrongState, id, s)
	}
	cm, err := c.cgroupManager()
	if err != nil {
		return err
	}
	if freeze {
		return cm.Freeze()
	}
	return cm.Thaw()
}

// lockLoad takes the container's lock and loads it; every command that
// changes a container holds the lock for its whole run.
func (r *Runtime) lockLoad(id string) (*Container, func(), error) {
	lock, err := r.Store.Lock(id)
	if err != nil {
		return nil, nil, err
	}
	c, err := r.Load(id)
	if err != nil {
		lock.Unlock()
		return nil, nil, err
	}
	return c, lock.Unlock, nil
}

// Update applies new resource limits to a created, running or paused
// container.
func (r *Runtime) Update(id string, res *specs.LinuxResources) error {
	return r.update(id, res, "", "")
}

// UpdateFromFlags is `hako update`: the resources from -r and the flags,
// and the Intel RDT schemata of --l3-cache-schema and --mem-bw-schema.
func (r *Runtime) UpdateFromFlags(id string, f *UpdateFlags) error {
	res, err := f.Build()
	if err != nil {
		return err
	}
	return r.update(id, res, f.L3Cache, f.MemBw)
}

// update applies res to the container's cgroups, then the schemata, with
// runc 1.5's checks and words, all made before anything is written. Only
// the schemata given are written: resctrl keeps the other resources' lines
// (runc writes them all again, from its saved config).
func (r *Runtime) update(id string, res *specs.LinuxResources, l3, mb string) error {
	var root string
	if l3 != "" || mb != "" {
		root, _ = resctrl.Root()
		f := resctrl.Features{}
		if root != "" {
			f = resctrl.Probe(root)
		}
		if l3 != "" && !f.CAT {
			return errors.New("Intel RDT/CAT: l3 cache schema is not enabled")
		}
		if mb != "" && !f.MBA {
			return errors.New("Intel RDT/MBA: memory bandwidth schema is not enabled")
		}
	}
	c, unlock, err := r.lockLoad(id)
	if err != nil {
		return err
	}
	defer unlock()
	if c.Status() == Stopped {
		return fmt.Errorf("%w: cannot update a stopped container", ErrNotRunning)
	}
	if (l3 != "" || mb != "") && c.State.IntelRdt == nil {
		return errors.New("updating a non-existent Intel RDT configuration is not supported")
	}
	cm, err := c.cgroupManager()
	if err != nil {
		return err
	}
	if err := cm.Update(res); err != nil {
		return err
	}
	if l3 != "" || mb != "" {
		return c.State.IntelRdt.Set(root, &specs.LinuxIntelRdt{L3CacheSchema: l3, MemBwSchema: mb})
	}
	return nil
}

// Stats reads the container's resource usage from its cgroups, and its
// resctrl figures where it has a group.
func (c *Container) Stats() (*cgroups.Stats, error) {
	cm, err := c.cgroupManager()
	if err != nil {
		return nil, err
	}
	st, err := cm.Stats()
	if err != nil || c.State.IntelRdt == nil {
		return st, err
	}
	root, err := resctrl.Root()
	if err != nil {
		return nil, fmt.Errorf("linux.intelRdt: %w", err)
	}
	rdt, err := c.State.IntelRdt.Stats(root)
	if err != nil {
		return nil, fmt.Errorf("intelrdt stats: %w", err)
	}
	st.IntelRdt = *rdt
	return st, nil
}

// OOMKills is the kernel's count of OOM kills in the container's cgroup.
func (c *Container) OOMKills() uint64 {
	cm, err := c.cgroupManager()
	if err != nil {
		return 0
	}
	return cm.OOMKills()
}
