package cgroups

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"

	"github.com/hako-runtime/hako/internal/linux/cgroups/systemd"
)

// moveBus is a systemd that moves an attached process into procs (a stand-in
// cgroup.procs) after delay, as the system manager does when the user's
// manager passes the move on to it, or never when delay < 0.
type moveBus struct {
	procs string
	delay time.Duration
	calls []string
	err   error
}

func (b *moveBus) AttachProcessesToUnit(_ context.Context, unit, sub string, pids []uint32) error {
	b.calls = append(b.calls, unit+" "+strconv.Quote(sub)+" "+strconv.Itoa(int(pids[0])))
	if b.err != nil {
		return b.err
	}
	if b.delay >= 0 {
		time.AfterFunc(b.delay, func() {
			os.WriteFile(b.procs, []byte("1\n"+strconv.Itoa(int(pids[0]))+"\n"), 0o644)
		})
	}
	return nil
}

func (b *moveBus) StartTransientUnitContext(context.Context, string, string, []sd.Property, chan<- string) (int, error) {
	return 0, errors.New("unexpected")
}
func (b *moveBus) StopUnitContext(context.Context, string, string, chan<- string) (int, error) {
	return 0, errors.New("unexpected")
}
func (b *moveBus) ResetFailedUnitContext(context.Context, string) error { return nil }
func (b *moveBus) SetUnitPropertiesContext(context.Context, string, bool, ...sd.Property) error {
	return nil
}
func (b *moveBus) GetManagerProperty(string) (string, error) { return "", errors.New("unexpected") }
func (b *moveBus) Close()                                    {}

func TestPlacer(t *testing.T) {
	// cgroupfs: nothing but the kernel can place a process.
	if p := (&Manager{unified: "/sys/fs/cgroup/x"}).Placer(); p != nil {
		t.Error("cgroupfs manager has a placer")
	}

	dir := t.TempDir()
	procs := filepath.Join(dir, "cgroup.procs")
	os.WriteFile(procs, []byte("1\n"), 0o644)
	bus := &moveBus{procs: procs, delay: 30 * time.Millisecond}
	unit := &sdUnit{path: systemd.Path{Unit: "hako-c1.scope"}, bus: bus, unit: systemd.NewUnit(bus, "hako-c1.scope")}
	m := &Manager{v2: true, unified: dir, unit: unit}
	// systemd answers before the process has moved: the placer waits
	// until cgroup.procs lists it, so the process does not unshare its
	// cgroup namespace (or fork) in the cgroup it came from.
	start := time.Now()
	if err := m.Placer()(4242); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Error("placer returned before the process was in cgroup.procs")
	}
	if strings.Join(bus.calls, ";") != `hako-c1.scope "" 4242` {
		t.Errorf("calls: %v", bus.calls)
	}

	// exec --cgroup sub: systemd gets the sub-cgroup, as an absolute path
	// below the unit (runc's addPid).
	sub := filepath.Join(dir, "a")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "cgroup.procs"), nil, 0o644)
	bus.procs, bus.calls = filepath.Join(sub, "cgroup.procs"), nil
	n, err := m.WithSub(&Sub{All: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Placer()(77); err != nil || strings.Join(bus.calls, ";") != `hako-c1.scope "/a" 77` {
		t.Errorf("sub: %v, calls %v", err, bus.calls)
	}

	// Never moved (systemd logged why): a bounded wait, then an error
	// naming the process and the cgroup.
	defer func(d time.Duration) { placeTimeout = d }(placeTimeout)
	placeTimeout = 50 * time.Millisecond
	bus.procs, bus.delay = procs, -1
	if err := m.Placer()(99); err == nil || !strings.Contains(err.Error(), "process 99 into "+dir) {
		t.Errorf("never moved: %v", err)
	}
	// Refused: systemd's error, naming the unit.
	bus.err = errors.New("Access denied")
	if err := m.Placer()(99); err == nil || !strings.Contains(err.Error(), "hako-c1.scope") {
		t.Errorf("refused: %v", err)
	}
}
