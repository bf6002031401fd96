package cgroups

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

// wantDefaults is runc's specconv.AllowedDevices as cgroup rules, in order.
var wantDefaults = []string{
	"c *:* m", "b *:* m",
	"c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
	"c 136:* rwm", "c 5:2 rwm",
}

func ruleStrings(rules []*devices.Rule) []string {
	var out []string
	for _, r := range rules {
		s := r.CgroupString()
		if !r.Allow {
			s = "deny " + s
		}
		out = append(out, s)
	}
	return out
}

func TestToLibResourcesNil(t *testing.T) {
	res, err := ToLibResources(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleStrings(res.Devices); !reflect.DeepEqual(got, wantDefaults) {
		t.Fatalf("devices = %q, want %q", got, wantDefaults)
	}
	res.Devices = nil
	if !reflect.DeepEqual(res, &cgroups.Resources{}) {
		t.Fatalf("unexpected non-device fields: %+v", res)
	}
}

func TestToLibResourcesFull(t *testing.T) {
	spec := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](10), Minor: ptr[int64](200), Access: "rw"},
			{Allow: true, Type: "b", Major: ptr[int64](8), Access: "r"},
			{Allow: false, Type: "a", Access: "m"},
		},
		Memory: &specs.LinuxMemory{
			Limit: ptr[int64](64 << 20), Reservation: ptr[int64](32 << 20), Swap: ptr[int64](128 << 20),
			Kernel: ptr[int64](1 << 20), KernelTCP: ptr[int64](1 << 20),
			Swappiness: ptr[uint64](10), DisableOOMKiller: ptr(true), CheckBeforeUpdate: ptr(true),
		},
		CPU: &specs.LinuxCPU{
			Shares: ptr[uint64](512), Quota: ptr[int64](50000), Burst: ptr[uint64](1000), Period: ptr[uint64](100000),
			RealtimeRuntime: ptr[int64](950000), RealtimePeriod: ptr[uint64](1000000),
			Cpus: "0-1", Mems: "0", Idle: ptr[int64](1),
		},
		Pids: &specs.LinuxPids{Limit: ptr[int64](50)},
		BlockIO: &specs.LinuxBlockIO{
			Weight: ptr[uint16](300), LeafWeight: ptr[uint16](200),
			WeightDevice: []specs.LinuxWeightDevice{
				{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Weight: ptr[uint16](500)},
				{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, LeafWeight: ptr[uint16](100)},
			},
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1}},
			ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 2}},
			ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 3}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 4}},
		},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 30}},
		Network: &specs.LinuxNetwork{
			ClassID:    ptr[uint32](0x100001),
			Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}},
		},
		Rdma:    map[string]specs.LinuxRdma{"mlx5_1": {HcaHandles: ptr[uint32](3), HcaObjects: ptr[uint32](10000)}},
		Unified: map[string]string{"memory.high": "1G"},
	}
	res, err := ToLibResources(spec)
	if err != nil {
		t.Fatal(err)
	}
	wantDev := append([]string{"deny a -1:-1 rwm", "c 10:200 rw", "b 8:* r", "deny a -1:-1 m"}, wantDefaults...)
	// CgroupString prints wildcard majors as "*" only for -1; type 'a'
	// keeps the numbers, so normalise for comparison.
	got := ruleStrings(res.Devices)
	for i := range got {
		got[i] = strings.ReplaceAll(got[i], "*:*", "-1:-1")
		wantDev[i] = strings.ReplaceAll(wantDev[i], "*:*", "-1:-1")
	}
	if !reflect.DeepEqual(got, wantDev) {
		t.Errorf("devices = %q\nwant %q", got, wantDev)
	}
	res.Devices = nil

	want := &cgroups.Resources{
		Memory: 64 << 20, MemoryReservation: 32 << 20, MemorySwap: 128 << 20,
		MemorySwappiness: ptr[uint64](10), OomKillDisable: true, MemoryCheckBeforeUpdate: true,
		CpuShares: 512, CpuWeight: cgroups.ConvertCPUSharesToCgroupV2Value(512),
		CpuQuota: 50000, CpuBurst: ptr[uint64](1000), CpuPeriod: 100000,
		CpuRtRuntime: 950000, CpuRtPeriod: 1000000, CpusetCpus: "0-1", CpusetMems: "0", CPUIdle: ptr[int64](1),
		PidsLimit:       ptr[int64](50),
		BlkioWeight:     300,
		BlkioLeafWeight: 200,
		BlkioWeightDevice: []*cgroups.WeightDevice{
			cgroups.NewWeightDevice(8, 0, 500, 0), cgroups.NewWeightDevice(8, 16, 0, 100),
		},
		BlkioThrottleReadBpsDevice:   []*cgroups.ThrottleDevice{cgroups.NewThrottleDevice(8, 0, 1)},
		BlkioThrottleWriteBpsDevice:  []*cgroups.ThrottleDevice{cgroups.NewThrottleDevice(8, 0, 2)},
		BlkioThrottleReadIOPSDevice:  []*cgroups.ThrottleDevice{cgroups.NewThrottleDevice(8, 0, 3)},
		BlkioThrottleWriteIOPSDevice: []*cgroups.ThrottleDevice{cgroups.NewThrottleDevice(8, 0, 4)},
		HugetlbLimit:                 []*cgroups.HugepageLimit{{Pagesize: "2MB", Limit: 1 << 30}},
		NetClsClassid:                0x100001,
		NetPrioIfpriomap:             []*cgroups.IfPrioMap{{Interface: "eth0", Priority: 5}},
		Rdma:                         map[string]cgroups.LinuxRdma{"mlx5_1": {HcaHandles: ptr[uint32](3), HcaObjects: ptr[uint32](10000)}},
		Unified:                      map[string]string{"memory.high": "1G"},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("resources =\n%+v\nwant\n%+v", res, want)
	}
	spec.Unified["memory.high"] = "2G"
	if res.Unified["memory.high"] != "1G" {
		t.Error("unified map is shared with the spec")
	}
}

func TestCPUWeightConversion(t *testing.T) {
	for shares, weight := range map[uint64]uint64{2: 1, 1024: 100, 262144: 10000} {
		res, err := ToLibResources(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(shares)}})
		if err != nil {
			t.Fatal(err)
		}
		if res.CpuShares != shares || res.CpuWeight != weight {
			t.Errorf("shares %d: got shares %d weight %d, want weight %d", shares, res.CpuShares, res.CpuWeight, weight)
		}
	}
	res, _ := ToLibResources(&specs.LinuxResources{CPU: &specs.LinuxCPU{}})
	if res.CpuWeight != 0 {
		t.Errorf("unset shares gave weight %d", res.CpuWeight)
	}
}

func TestToLibResourcesErrors(t *testing.T) {
	for name, d := range map[string]specs.LinuxDeviceCgroup{
		"empty access": {Allow: true, Type: "c"},
		"bad type":     {Allow: true, Type: "p", Access: "r"},
	} {
		if _, err := ToLibResources(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{d}}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDefaultDeviceDedup(t *testing.T) {
	mode := os.FileMode(0o600)
	res, err := ToLibResourcesWithDevices(nil, []specs.LinuxDevice{
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: &mode},
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{}, wantDefaults[:2]...)
	want = append(want, wantDefaults[3:]...)
	if got := ruleStrings(res.Devices); !reflect.DeepEqual(got, want) {
		t.Fatalf("devices = %q, want %q", got, want)
	}
	// The shared default table must not have been modified.
	if got := ruleStrings(defaultDeviceRules(nil)); !reflect.DeepEqual(got, wantDefaults) {
		t.Fatalf("defaults changed: %q", got)
	}
}

// TestNewPaths pins runc's cgroupfs path rules; New only computes paths,
// so this needs neither root nor a particular host layout.
func TestNewPaths(t *testing.T) {
	for _, tc := range []struct{ id, path, inner string }{
		{"ctr1", "", "ctr1"},
		{"ctr1", "/abs/ctr", "/abs/ctr"},
		{"ctr1", "rel/ctr", "rel/ctr"},
		{"ctr1", "/../x", "/x"},
	} {
		m, err := New(Config{ID: tc.id, CgroupsPath: tc.path})
		if err != nil {
			t.Fatal(err)
		}
		if cgroups.IsCgroup2UnifiedMode() {
			u := m.UnifiedPath()
			if !strings.HasSuffix(u, "/"+strings.TrimPrefix(tc.inner, "/")) {
				t.Errorf("%+v: unified %s", tc, u)
			}
			continue
		}
		mem := m.Paths()["memory"]
		if mem == "" {
			continue
		}
		want := "/sys/fs/cgroup/memory" + tc.inner
		if !strings.HasPrefix(tc.inner, "/") {
			own, err := cgroups.GetOwnCgroupPath("memory")
			if err != nil {
				t.Fatal(err)
			}
			want = own + "/" + tc.inner
		}
		if mem != want {
			t.Errorf("%+v: memory dir %s, want %s", tc, mem, want)
		}
		if len(m.JoinFiles()) == 0 || !strings.HasSuffix(m.JoinFiles()[0], "/tasks") {
			t.Errorf("%+v: JoinFiles %v", tc, m.JoinFiles())
		}
	}
}
