package systemd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Bus is the part of go-systemd's *dbus.Conn the driver uses, so unit tests
// can record the calls on a fake.
type Bus interface {
	StartTransientUnitContext(ctx context.Context, name, mode string, props []sd.Property, ch chan<- string) (int, error)
	StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ResetFailedUnitContext(ctx context.Context, name string) error
	SetUnitPropertiesContext(ctx context.Context, name string, runtime bool, props ...sd.Property) error
	AttachProcessesToUnit(ctx context.Context, unit, subcgroup string, pids []uint32) error
	GetManagerProperty(name string) (string, error)
	Close()
}

// jobTimeout bounds the wait for a job's result, as runc's 30 s: systemd
// answers in milliseconds unless it is wedged, and then an error naming
// the unit is better than a hang.
const jobTimeout = 30 * time.Second

// Unit is one container's systemd unit.
type Unit struct {
	Name string // "hako-<id>.scope"
	bus  Bus
	ver  int // systemd's version; 0 until asked
}

// NewUnit wraps name on bus.
func NewUnit(bus Bus, name string) *Unit { return &Unit{Name: name, bus: bus} }

// Version is systemd's version number (252 for "252.22-1~deb12u1"), -1
// when it cannot be had; asked once.
func (u *Unit) Version() int {
	if u.ver == 0 {
		u.ver = -1
		if s, err := u.bus.GetManagerProperty("Version"); err == nil {
			u.ver = parseVersion(s)
		}
	}
	return u.ver
}

// parseVersion is runc's systemdVersionAtoi: the leading number of
// "v245.4-1.fc32", `"252.22-1"`, "245".
func parseVersion(s string) int {
	s = strings.TrimLeft(s, `"v`)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil {
		return -1
	}
	return n
}

// StartProperties are the properties a unit is started with besides the
// resources: runc's (Description, Slice= and Delegate=yes for a scope or
// Wants= for a slice, the process, accounting on, no default
// dependencies), then OOMPolicy from unified memory.oom.group, then the
// annotations' properties last so that they win.
func StartProperties(p Path, rootless, v2 bool, description string, pid int, oomGroup string, extra []sd.Property) ([]sd.Property, error) {
	props := []sd.Property{sd.PropDescription(description)}
	parent := p.ParentSlice(rootless)
	if p.IsSlice() {
		props = append(props, sd.PropWants(parent))
	} else {
		props = append(props, sd.PropSlice(parent), prop("Delegate", true))
	}
	if pid > 0 {
		props = append(props, prop("PIDs", []uint32{uint32(pid)}))
	}
	io := "IOAccounting"
	if !v2 {
		io = "BlockIOAccounting"
	}
	props = append(props,
		prop("MemoryAccounting", true), prop("CPUAccounting", true),
		prop(io, true), prop("TasksAccounting", true),
		prop("DefaultDependencies", false))
	props = append(props, extra...)
	if v2 && oomGroup != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(oomGroup), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("unified resource %q value conversion error: %w", "memory.oom.group", err)
		}
		switch n {
		case 0:
			props = append(props, prop("OOMPolicy", "continue"))
		case 1:
			props = append(props, prop("OOMPolicy", "kill"))
		}
	}
	return props, nil
}

// Start starts the unit and waits for its job, as runc's startUnit: a unit
// of the same name left over in the failed state is reset and the start
// retried once; a job ending in anything but "done" is an error (and the
// failed unit is reset so nothing is left behind).
func (u *Unit) Start(props []sd.Property) error {
	retried := false
	for {
		ch := make(chan string, 1)
		_, err := u.bus.StartTransientUnitContext(context.Background(), u.Name, "replace", props, ch)
		if err != nil {
			if isDBusError(err, "org.freedesktop.systemd1.UnitExists") && !retried {
				retried = true
				_ = u.bus.ResetFailedUnitContext(context.Background(), u.Name)
				continue
			}
			return fmt.Errorf("systemd: start transient unit %s: %w", u.Name, err)
		}
		if res, err := waitJob(ch); err != nil || res != "done" {
			_ = u.bus.ResetFailedUnitContext(context.Background(), u.Name)
			if err == nil {
				err = fmt.Errorf("job result %q (see journalctl -u %s)", res, u.Name)
			}
			return fmt.Errorf("systemd: start transient unit %s: %w", u.Name, err)
		}
		return nil
	}
}

func waitJob(ch <-chan string) (string, error) {
	t := time.NewTimer(jobTimeout)
	defer t.Stop()
	select {
	case s := <-ch:
		return s, nil
	case <-t.C:
		return "", fmt.Errorf("no job result after %s", jobTimeout)
	}
}

// Set changes the running unit's properties (runtime only, as runc: they
// describe this container, not the unit file of a boot).
func (u *Unit) Set(props []sd.Property) error {
	if len(props) == 0 {
		return nil
	}
	if err := u.bus.SetUnitPropertiesContext(context.Background(), u.Name, true, props...); err != nil {
		return fmt.Errorf("systemd: set properties of %s: %w", u.Name, err)
	}
	return nil
}

// Attach asks systemd to move pid into the unit's cgroup, or into sub (a
// path below it, "/a/b") when not empty. systemd refuses it for a unit
// without Delegate=yes, and for a process of another user.
func (u *Unit) Attach(sub string, pid int) error {
	if err := u.bus.AttachProcessesToUnit(context.Background(), u.Name, sub, []uint32{uint32(pid)}); err != nil {
		return fmt.Errorf("systemd: move process %d into unit %s: %w", pid, u.Name, err)
	}
	return nil
}

// Stop stops the unit and waits for it, then resets it in case it failed,
// so that systemd forgets it (runc's stopUnit). A unit systemd no longer
// knows (its scope emptied and was collected, or create died before
// starting it) is already stopped.
func (u *Unit) Stop() error {
	ch := make(chan string, 1)
	_, err := u.bus.StopUnitContext(context.Background(), u.Name, "replace", ch)
	switch {
	case err == nil:
		if _, werr := waitJob(ch); werr != nil {
			return fmt.Errorf("systemd: stop unit %s: %w", u.Name, werr)
		}
	case isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit"):
	default:
		return fmt.Errorf("systemd: stop unit %s: %w", u.Name, err)
	}
	if err := u.bus.ResetFailedUnitContext(context.Background(), u.Name); err != nil &&
		!isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") && !isDBusError(err, "org.freedesktop.systemd1.UnitNotLoaded") {
		// Not failed, or already gone: nothing to reset. Anything else
		// would leave a failed unit behind, which delete must report.
		if !strings.Contains(err.Error(), "not failed") && !strings.Contains(err.Error(), "not loaded") {
			return fmt.Errorf("systemd: reset failed unit %s: %w", u.Name, err)
		}
	}
	return nil
}

func isDBusError(err error, name string) bool {
	var de dbus.Error
	return errors.As(err, &de) && strings.Contains(de.Name, name)
}

// SliceDir is the cgroup directory, relative to the cgroup root, of the
// slice p's unit goes in: the expanded slice, below the user manager's own
// cgroup for a user instance (runc's getSliceFull: the manager's
// ControlGroup property, "/user.slice/user-1000.slice/user@1000.service").
func SliceDir(p Path, rootless bool, bus Bus) (string, error) {
	dir, err := ExpandSlice(p.ParentSlice(rootless))
	if err != nil {
		return "", err
	}
	if rootless {
		cg, err := bus.GetManagerProperty("ControlGroup")
		if err != nil {
			return "", fmt.Errorf("systemd: user manager's ControlGroup: %w", err)
		}
		if cg, err = strconv.Unquote(cg); err != nil || !strings.HasPrefix(cg, "/") {
			return "", fmt.Errorf("systemd: user manager's ControlGroup %q is not a cgroup path", cg)
		}
		dir = filepath.Join(cg, dir)
	}
	return dir, nil
}
