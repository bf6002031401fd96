package cgroups

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/hako-runtime/hako/internal/linux/cgroups/systemd"
)

// sdUnit is the systemd driver's part of a Manager: the container's unit.
// A Manager with one asks systemd for the unit and then does everything the
// cgroupfs driver does in the unit's cgroup, as runc's systemd driver is
// backed by its fs driver: the directories systemd does not make (v1
// controllers it does not manage) are made, and every resource is written
// to the files too.
//
// The order of Create, and why:
//  1. a placeholder process is started (systemd refuses a scope without a
//     process, and the container's own process does not exist yet);
//  2. the unit is started with the placeholder, Delegate=yes and the
//     resources as properties, waiting for systemd's job to finish, after
//     which the scope's cgroup exists in every hierarchy systemd manages;
//  3. the cgroupfs Create runs on the scope's directories;
//  4. the container's process is born into them (CLONE_INTO_CGROUP or the
//     v1 tasks files, exactly as with cgroupfs), or, where the kernel
//     refuses that (rootless from a login shell: see Placer), is born in
//     hako's cgroup and moved by systemd before its first namespace step;
//  5. Joined releases the placeholder, leaving the container's processes
//     alone in the unit.
//
// Only Create, Update and Destroy talk to systemd; pause, ps, events and
// stats read and write the same files as under cgroupfs (runc does the
// same), so they neither connect to a bus nor wait for one.
type sdUnit struct {
	path     systemd.Path
	rootless bool
	bus      systemd.Bus // connected on first use
	unit     *systemd.Unit
	holder   *systemd.Holder

	id          string
	annotations map[string]string
	warn        func(string, ...any)
}

// newSystemd resolves cfg's systemd path to the unit's cgroup directory
// (relative to the cgroup root): the slice's directory (below the user
// manager's own cgroup when rootless), then the unit.
func newSystemd(cfg Config, v2 bool) (*sdUnit, string, error) {
	p, err := systemd.ParsePath(cfg.CgroupsPath, cfg.ID)
	if err != nil {
		return nil, "", err
	}
	if cfg.Rootless && !v2 {
		// As runc: a user's systemd can delegate only on cgroup v2.
		return nil, "", fmt.Errorf("cgroup: the rootless systemd cgroup driver needs cgroup v2 (this host is v1 or hybrid)")
	}
	u := &sdUnit{path: p, rootless: cfg.Rootless, id: cfg.ID, annotations: cfg.Annotations, warn: cfg.Warn}
	bus, err := u.connect()
	if err != nil {
		return nil, "", err
	}
	dir, err := systemd.SliceDir(p, cfg.Rootless, bus)
	if err != nil {
		return nil, "", fmt.Errorf("cgroup: %w", err)
	}
	return u, filepath.Join(dir, p.Unit), nil
}

func (u *sdUnit) connect() (systemd.Bus, error) {
	if u.bus == nil {
		bus, err := systemd.Connect(u.rootless)
		if err != nil {
			return nil, err
		}
		u.bus = bus
		u.unit = systemd.NewUnit(bus, u.path.Unit)
	}
	return u.bus, nil
}

func (u *sdUnit) close() {
	if u.bus != nil {
		u.bus.Close()
		u.bus, u.unit = nil, nil
	}
}

func (u *sdUnit) warnf(format string, args ...any) {
	if u.warn != nil {
		u.warn(format, args...)
	}
}

// sdResources is r in the form the property mapping reads, converted by the
// same helpers the files are written with.
func (m *Manager) sdResources(r *resources) (*systemd.Resources, error) {
	s := r.spec
	out := &systemd.Resources{V2: m.v2, Unified: s.Unified}
	if mem := s.Memory; mem != nil {
		out.Memory, out.Reservation = num(mem.Limit), num(mem.Reservation)
		if m.v2 {
			swap, err := swapToV2(num(mem.Swap), num(mem.Limit))
			if err != nil {
				return nil, err
			}
			out.SwapV2 = swap
		}
	}
	if c := s.CPU; c != nil {
		out.CPUShares = num(c.Shares)
		if m.v2 {
			out.CPUWeight = cpuSharesToWeight(num(c.Shares))
		}
		out.CPUIdle = c.Idle
		out.Quota, out.Period = num(c.Quota), num(c.Period)
		out.Cpus, out.Mems = c.Cpus, c.Mems
	}
	if pidsSet(s) {
		switch l := *s.Pids.Limit; {
		case l > 0:
			out.PidsLimit = l
		case l == 0:
			out.PidsLimit = 1 // pidsMax's reading: runc's, with either driver
		default:
			out.PidsLimit = -1
		}
	}
	if s.BlockIO != nil {
		out.BlkioWeight = u16(s.BlockIO.Weight)
	}
	if !r.skipDevices {
		st, err := buildDevState(r.devices)
		if err != nil {
			return nil, err
		}
		d := &systemd.Devices{DefaultAllow: st.defaultAllow}
		for _, e := range st.exceptions {
			d.Exceptions = append(d.Exceptions, systemd.DeviceRule{Type: byte(e.typ), Major: e.major, Minor: e.minor, Perms: string(e.perms)})
		}
		out.Devices = d
	}
	return out, nil
}

// withQuota is r with the CPU quota systemd rounded it to, so the files
// agree with the unit (runc's addCPUQuota does the same).
func withQuota(r *resources, quota int64) *resources {
	if r.spec.CPU == nil || r.spec.CPU.Quota == nil || *r.spec.CPU.Quota == quota {
		return r
	}
	spec := *r.spec
	cpu := *spec.CPU
	cpu.Quota = &quota
	spec.CPU = &cpu
	cp := *r
	cp.spec = &spec
	return &cp
}

// startUnit is steps 1 and 2 of the order above. On failure nothing is
// left in systemd.
func (m *Manager) startUnit() (r *resources, err error) {
	u := m.unit
	if _, err := u.connect(); err != nil {
		return nil, err
	}
	sr, err := m.sdResources(m.res)
	if err != nil {
		return nil, err
	}
	resProps, quota, err := systemd.Properties(sr, u.unit.Version(), u.warnf)
	if err != nil {
		return nil, err
	}
	extra, err := systemd.AnnotationProperties(u.annotations)
	if err != nil {
		return nil, err
	}
	pid := 0
	if !u.path.IsSlice() {
		if u.holder, err = systemd.Hold(); err != nil {
			return nil, err
		}
		pid = u.holder.Pid()
	}
	// Annotations before resources: runc sets them when it starts the
	// unit and the resources afterwards, so the resources win there too.
	props, err := systemd.StartProperties(u.path, u.rootless, m.v2, "hako container "+u.id, pid, m.res.spec.Unified["memory.oom.group"], extra)
	if err == nil {
		props = append(props, resProps...)
		err = u.unit.Start(props)
	}
	if err != nil {
		u.holder.Release()
		u.holder = nil
		return nil, err
	}
	return withQuota(m.res, quota), nil
}

// updateUnit sets r's properties on the running unit, returning r as the
// files must then get it.
func (m *Manager) updateUnit(r *resources) (*resources, error) {
	u := m.unit
	if _, err := u.connect(); err != nil {
		return nil, err
	}
	defer u.close()
	if m.v2 && r.spec.Memory != nil {
		// Before systemd gets the limit, or a too-low one has the
		// kernel OOM-kill the container and systemd remove the unit
		// before the file check would refuse it (runc's order).
		mem := r.spec.Memory
		swap, err := swapToV2(num(mem.Swap), num(mem.Limit))
		if err != nil {
			return nil, err
		}
		if err := checkMemoryUsage(m.fs, m.unified, num(mem.Limit), swap); err != nil {
			return nil, wrapErr("memory", err)
		}
	}
	sr, err := m.sdResources(r)
	if err != nil {
		return nil, err
	}
	props, quota, err := systemd.Properties(sr, u.unit.Version(), u.warnf)
	if err != nil {
		return nil, err
	}
	if err := u.unit.Set(props); err != nil {
		return nil, err
	}
	return withQuota(r, quota), nil
}

// stopUnit stops and forgets the unit (delete, and a failed create).
func (m *Manager) stopUnit() error {
	u := m.unit
	u.holder.Release()
	u.holder = nil
	if _, err := u.connect(); err != nil {
		return err
	}
	defer u.close()
	return u.unit.Stop()
}

// Joined is told that the container's first process is in its cgroup. The
// systemd driver lets its placeholder go then (see sdUnit); for cgroupfs
// there is nothing to do.
func (m *Manager) Joined() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unit != nil {
		m.unit.holder.Release()
		m.unit.holder = nil
		m.unit.close()
	}
}

// Placer returns how to move a process into the container's cgroup v2
// directory (the sub-cgroup of WithSub included) when the kernel refuses to
// clone it there, or nil where nothing can do better than the kernel: the
// cgroupfs driver, whose directories are hako's own.
//
// The refusal is cgroup v2's migration rule: the mover must be able to
// write cgroup.procs of the common ancestor of the process's cgroup and the
// target. A rootless hako started from a login shell is in session-N.scope
// below user-UID.slice, which is root's; its unit is below user@UID.service,
// the user's. systemd can: the user's manager asks the system manager to
// move a process of the user's into its delegated subtree, which is how
// runc's init gets into its unit (it starts the scope with the init's pid)
// and runc 1.5's exec into an existing one (AttachProcessesToUnit).
func (m *Manager) Placer() func(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unit == nil || m.unified == "" {
		return nil
	}
	u, dir, sub := m.unit, m.unified, m.unitSub
	return func(pid int) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if u.bus == nil {
			// exec: the one call this command makes to systemd.
			if _, err := u.connect(); err != nil {
				return err
			}
			defer u.close()
		}
		if err := u.unit.Attach(sub, pid); err != nil {
			return err
		}
		return waitPlaced(dir, pid)
	}
}

// waitPlaced waits until pid is listed in dir's cgroup.procs. systemd's
// answer does not mean the process has moved: when the user's manager
// cannot move it itself it sends the system manager the request without
// waiting for its answer (unit_attach_pid_to_cgroup_via_bus), and the
// process must not go on (into its cgroup namespace) before it is there.
func waitPlaced(dir string, pid int) error {
	deadline := time.Now().Add(placeTimeout)
	for {
		pids, err := readProcs(dir)
		if err != nil {
			return wrapErr("", err)
		}
		if slices.Contains(pids, pid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: systemd did not move process %d into %s within %s (see journalctl --user and journalctl -b for its reason)", pid, dir, placeTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// placeTimeout bounds waitPlaced as the systemd jobs are bounded: systemd
// moves a process in milliseconds unless the move failed, which it reports
// only to its journal.
var placeTimeout = 10 * time.Second

// Unit is the container's systemd unit, "" under the cgroupfs driver; the
// state store keeps it so that later commands use the same driver.
func (m *Manager) Unit() string {
	if m.unit == nil {
		return ""
	}
	return m.unit.path.Unit
}

// withoutHolder drops the placeholder from a pid list: it is hako's, not
// the container's.
func (m *Manager) withoutHolder(pids []int) []int {
	if m.unit == nil || m.unit.holder == nil {
		return pids
	}
	hp := m.unit.holder.Pid()
	return slices.DeleteFunc(pids, func(p int) bool { return p == hp })
}
