package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fileWant is an interface file and the value the kernel should show.
type fileWant struct{ ctl, file, want string }

func checkFiles(t *testing.T, stage string, paths map[string]string, wants []fileWant) {
	t.Helper()
	for _, w := range wants {
		dir := paths[w.ctl]
		if dir == "" {
			continue // hierarchy not on this host
		}
		if _, err := os.Stat(filepath.Join(dir, w.file)); err != nil {
			t.Logf("%s: %s: %v (skipped)", stage, w.file, err)
			continue
		}
		if got := readFile(t, dir, w.file); got != w.want {
			t.Errorf("%s: %s = %q, want %q", stage, w.file, got, w.want)
		}
	}
}

// firstDisk is the major:minor of a whole disk, for throttle rules.
func firstDisk(t *testing.T) (string, bool) {
	entries, _ := os.ReadDir("/sys/block")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "loop") || strings.HasPrefix(e.Name(), "zram") {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev")); err == nil {
			return strings.TrimSpace(string(b)), true
		}
	}
	return "", false
}

// TestResourcesV1 applies most v1 settings to a real hierarchy and reads
// the kernel's view back, then raises and lowers memory+swap with Update:
// the kernel refuses the wrong write order in either direction, so both
// passing shows the memsw/limit ordering works.
func TestResourcesV1(t *testing.T) {
	needV1(t)
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{
			Limit: ptr[int64](64 << 20), Swap: ptr[int64](128 << 20), Reservation: ptr[int64](32 << 20),
			Swappiness: ptr[uint64](10), DisableOOMKiller: ptr(true), KernelTCP: ptr[int64](16 << 20),
		},
		CPU: &specs.LinuxCPU{
			Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000),
			Burst: ptr[uint64](1000), Idle: ptr[int64](0), Cpus: "0", Mems: "0",
		},
		Pids:    &specs.LinuxPids{Limit: ptr[int64](0)}, // runc's 0 -> 1
		Devices: fullTestResources().Devices,
	}
	wants := []fileWant{
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"memory", "memory.memsw.limit_in_bytes", "134217728"},
		{"memory", "memory.soft_limit_in_bytes", "33554432"},
		{"memory", "memory.swappiness", "10"},
		{"memory", "memory.kmem.tcp.limit_in_bytes", "16777216"},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_burst_us", "1000"},
		{"cpu", "cpu.idle", "0"},
		{"cpuset", "cpuset.cpus", "0"},
		{"cpuset", "cpuset.mems", "0"},
		{"pids", "pids.max", "1"},
	}
	disk, haveDisk := firstDisk(t)
	if haveDisk {
		var maj, min int64
		if _, err := fmt.Sscanf(disk, "%d:%d", &maj, &min); err == nil {
			dev := specs.LinuxBlockIODevice{Major: maj, Minor: min}
			r.BlockIO = &specs.LinuxBlockIO{
				ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 1 << 20}},
				ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 100}},
			}
			wants = append(wants,
				fileWant{"blkio", "blkio.throttle.read_bps_device", disk + " 1048576"},
				fileWant{"blkio", "blkio.throttle.write_iops_device", disk + " 100"})
		}
	}
	m, err := New(Config{ID: "res", CgroupsPath: testPath(t, ""), Resources: r})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Destroy() }()
	paths := m.Paths()
	checkFiles(t, "create", paths, wants)
	if p := paths["memory"]; p != "" && !strings.Contains(readFile(t, p, "memory.oom_control"), "oom_kill_disable 1") {
		t.Error("memory.oom_control: OOM killer not disabled")
	}
	if _, err := os.Stat(filepath.Join(paths["memory"], "memory.memsw.limit_in_bytes")); err != nil {
		t.Skip("no swap accounting: memory+swap ordering not testable here")
	}
	const unlimited = "9223372036854771712" // -1 as v1 shows it
	for _, c := range []struct {
		limit, swap          int64
		wantLimit, wantMemsw string
	}{
		{256 << 20, 512 << 20, "268435456", "536870912"}, // raise: memsw must go first
		{32 << 20, 64 << 20, "33554432", "67108864"},     // lower: the limit must go first
		{-1, 0, unlimited, unlimited},                    // -1 alone: both unlimited
	} {
		lm := &specs.LinuxMemory{Limit: &c.limit}
		if c.swap != 0 {
			lm.Swap = &c.swap
		}
		if err := m.Update(&specs.LinuxResources{Memory: lm}); err != nil {
			t.Fatalf("update to %d/%d: %v", c.limit, c.swap, err)
		}
		checkFiles(t, "update", paths, []fileWant{
			{"memory", "memory.limit_in_bytes", c.wantLimit},
			{"memory", "memory.memsw.limit_in_bytes", c.wantMemsw},
		})
	}
	// A value the kernel refuses names controller, file and value.
	bad := int64(-5)
	err = m.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &bad}})
	want := `cgroup memory: write ` + paths["memory"] + `/memory.limit_in_bytes "-5": invalid argument`
	if err == nil || err.Error() != want {
		t.Errorf("bad limit: %v\nwant %s", err, want)
	}
}

// TestUnifiedOnHybrid covers the cgroup2 side of a hybrid host: a
// linux.resources.unified key lands in the unified directory, and the
// cgroup2 freezer works there.
func TestUnifiedOnHybrid(t *testing.T) {
	needV1(t)
	if !isHybrid() {
		t.Skip("needs a hybrid host")
	}
	m, err := New(Config{ID: "uni", CgroupsPath: testPath(t, ""), Resources: &specs.LinuxResources{
		Unified: map[string]string{"cgroup.max.descendants": "5"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Destroy() }()
	u := m.UnifiedPath()
	if got := readFile(t, u, "cgroup.max.descendants"); got != "5" {
		t.Errorf("cgroup.max.descendants = %q", got)
	}
	if _, err := os.Stat(filepath.Join(u, "cgroup.freeze")); err != nil {
		t.Skip("no cgroup2 freezer")
	}
	cmd := startInCgroup(t, m, "sleep", "100")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := setFrozenV2(hostFS{}, u, true); err != nil {
		t.Fatal(err)
	}
	if p, err := pausedV2(hostFS{}, u); err != nil || !p {
		t.Errorf("paused after freeze = %v, %v", p, err)
	}
	if err := setFrozenV2(hostFS{}, u, false); err != nil {
		t.Fatal(err)
	}
	if p, err := pausedV2(hostFS{}, u); err != nil || p {
		t.Errorf("paused after thaw = %v, %v", p, err)
	}
}
