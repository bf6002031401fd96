package cgroups

import (
	"os"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

// wantDefaults is runc's specconv.AllowedDevices as cgroup rules, in order.
var wantDefaults = []string{
	"c *:* m", "b *:* m",
	"c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
	"c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm",
}

func ruleStrings(rules []devRule) []string {
	var out []string
	for _, r := range rules {
		s := r.cgroupString()
		if !r.allow {
			s = "deny " + s
		}
		out = append(out, s)
	}
	return out
}

func TestNewResourcesNil(t *testing.T) {
	res, err := newResources(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleStrings(res.devices); !reflect.DeepEqual(got, wantDefaults) {
		t.Fatalf("devices = %q, want %q", got, wantDefaults)
	}
	if res.skipDevices || res.spec == nil {
		t.Fatalf("unexpected resources: %+v", res)
	}
	// Update without devices leaves the kernel's rules alone.
	up, err := updateResources(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](5)}})
	if err != nil {
		t.Fatal(err)
	}
	if !up.skipDevices || len(up.devices) != 0 {
		t.Fatalf("update without devices: %+v", up)
	}
}

func TestDeviceRulesFromSpec(t *testing.T) {
	spec := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](10), Minor: ptr[int64](200), Access: "rw"},
			{Allow: true, Type: "b", Major: ptr[int64](8), Access: "r"},
			{Allow: false, Type: "a", Access: "m"},
		},
	}
	want := append([]string{"deny a *:* rwm", "c 10:200 rw", "b 8:* r", "deny a *:* m"}, wantDefaults...)
	for name, conv := range map[string]func(*specs.LinuxResources) (*resources, error){
		"new": func(r *specs.LinuxResources) (*resources, error) { return newResources(r, nil) },
	} {
		res, err := conv(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleStrings(res.devices); !reflect.DeepEqual(got, want) || res.skipDevices {
			t.Errorf("%s: devices = %q (skip %v)\nwant %q", name, got, res.skipDevices, want)
		}
		if res.spec != spec {
			t.Errorf("%s: spec not kept", name)
		}
	}
}

// TestConversions pins the v1 -> v2 conversions to the values runc's
// library (github.com/opencontainers/cgroups v0.1.0) computes for them.
func TestConversions(t *testing.T) {
	for _, c := range [][2]uint64{
		{0, 0}, {1, 1}, {2, 1}, {3, 2}, {10, 4}, {100, 17}, {512, 59}, {1024, 100}, {2048, 174},
		{4096, 303}, {10000, 627}, {100000, 4340}, {262143, 10000}, {262144, 10000}, {1048576, 10000},
	} {
		if got := cpuSharesToWeight(c[0]); got != c[1] {
			t.Errorf("cpuSharesToWeight(%d) = %d, want %d", c[0], got, c[1])
		}
	}
	for _, c := range []struct {
		w    uint16
		want uint64
	}{{0, 0}, {10, 1}, {11, 11}, {100, 910}, {500, 4950}, {999, 9989}, {1000, 10000}} {
		if got := blkioWeightToIOWeight(c.w); got != c.want {
			t.Errorf("blkioWeightToIOWeight(%d) = %d, want %d", c.w, got, c.want)
		}
	}
	for _, c := range []struct {
		swap, mem, want int64
		fails           bool
	}{
		{0, 0, 0, false}, {0, -1, -1, false}, {-1, -1, -1, false}, {-1, 100, -1, false},
		{0, 100, 0, false}, {300, 100, 200, false}, {100, 100, 0, false}, {300, -1, 300, false},
		{300, 0, 0, true}, {300, -5, 0, true}, {50, 100, 0, true},
	} {
		got, err := swapToV2(c.swap, c.mem)
		if got != c.want || (err != nil) != c.fails {
			t.Errorf("swapToV2(%d, %d) = %d, %v; want %d (error %v)", c.swap, c.mem, got, err, c.want, c.fails)
		}
	}
	for v, want := range map[int64]string{0: "", -1: "max", 5: "5"} {
		if got := v2Num(v); got != want {
			t.Errorf("v2Num(%d) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[int64]string{-1: "max", -7: "max", 0: "1", 1: "1", 50: "50"} {
		if got := pidsMax(v); got != want {
			t.Errorf("pidsMax(%d) = %q, want %q", v, got, want)
		}
	}
	for _, c := range []struct {
		quota  int64
		period uint64
		want   string
	}{{50000, 0, "50000 100000"}, {-1, 20000, "max 20000"}, {0, 20000, "max 20000"}, {1000, 5000, "1000 5000"}} {
		if got := cpuMax(c.quota, c.period); got != c.want {
			t.Errorf("cpuMax(%d, %d) = %q, want %q", c.quota, c.period, got, c.want)
		}
	}
}

func TestDeviceRuleErrors(t *testing.T) {
	for name, d := range map[string]specs.LinuxDeviceCgroup{
		"empty access": {Allow: true, Type: "c"},
		"bad type":     {Allow: true, Type: "p", Access: "r"},
	} {
		if _, err := newResources(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{d}}, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := New(Config{ID: "x", Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{d}}}); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestDefaultDeviceDedup(t *testing.T) {
	mode := os.FileMode(0o600)
	res, err := newResources(nil, []specs.LinuxDevice{
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: &mode},
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{}, wantDefaults[:2]...)
	want = append(want, wantDefaults[3:]...)
	if got := ruleStrings(res.devices); !reflect.DeepEqual(got, want) {
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
		if isUnified() {
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
			want = refOwnPath(t, "memory") + "/" + tc.inner
		}
		if mem != want {
			t.Errorf("%+v: memory dir %s, want %s", tc, mem, want)
		}
		if len(m.JoinFiles()) == 0 || !strings.HasSuffix(m.JoinFiles()[0], "/tasks") {
			t.Errorf("%+v: JoinFiles %v", tc, m.JoinFiles())
		}
	}
}

// runc's update sets SkipDevices: whatever resources.devices it is given
// decodes, is accepted and changes nothing, including access strings and
// types its create would refuse. Update must neither fail on them nor
// write any devices file, while the rest of r still applies.
func TestUpdateLeavesDevicesAlone(t *testing.T) {
	for _, d := range []specs.LinuxDeviceCgroup{
		{Allow: true, Type: "c", Major: ptr[int64](10), Minor: ptr[int64](200), Access: "mrw"},
		{Allow: true, Type: "c", Major: ptr[int64](10), Minor: ptr[int64](200), Access: "rrw"},
		{Allow: true, Type: "c", Major: ptr[int64](10), Minor: ptr[int64](200), Access: "rwx"},
		{Allow: true, Type: "c", Access: ""},
		{Allow: false, Type: "x", Access: "rwm"},
		{Allow: false, Access: "rwm"},
	} {
		f := newFake()
		m := &Manager{fs: f, v1: map[string]string{"devices": fakeRoot + "/devices", "pids": fakeRoot + "/pids"}}
		r := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{d}, Pids: &specs.LinuxPids{Limit: ptr[int64](9)}}
		if err := m.Update(r); err != nil {
			t.Errorf("update with device rule %+v: %v", d, err)
			continue
		}
		checkWrites(t, "update with device rule "+d.Access, f, "pids/pids.max=9")
	}
}
