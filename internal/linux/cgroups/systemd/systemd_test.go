package systemd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in, id      string
		slice, unit string
		rootless    string // expected ParentSlice(true)
		err         string
	}{
		{in: "", id: "c1", slice: "", unit: "hako-c1.scope", rootless: "user.slice"},
		{in: "system.slice:docker:abc", unit: "docker-abc.scope", slice: "system.slice", rootless: "system.slice"},
		{in: "machine.slice:libpod:x1", unit: "libpod-x1.scope", slice: "machine.slice", rootless: "machine.slice"},
		{in: "kubepods-burstable-pod12.slice:cri-containerd:id9", unit: "cri-containerd-id9.scope", slice: "kubepods-burstable-pod12.slice", rootless: "kubepods-burstable-pod12.slice"},
		{in: ":hako:x", unit: "hako-x.scope", rootless: "user.slice"},
		// A name ending in .slice makes a slice unit; the prefix is ignored.
		{in: "system.slice:ignored:my-pod.slice", unit: "my-pod.slice", slice: "system.slice", rootless: "system.slice"},
		// runc does not special-case an empty prefix.
		{in: "system.slice::n", unit: "-n.scope", slice: "system.slice", rootless: "system.slice"},
		{in: "/a/b", id: "c", err: `linux.cgroupsPath "/a/b"`},
		{in: "a:b", err: "slice:prefix:name"},
		{in: "a.slice:b:c:d", err: "slice:prefix:name"},
		{in: "a.slice:b:", err: "empty name"},
		{in: "nodot:p:n", err: "invalid slice name"},
		{in: "a--b.slice:p:n", err: "empty component"},
		{in: "a/b.slice:p:n", err: "invalid slice name"},
		{in: "s.slice:p/q:n", err: "cannot contain '/'"},
	} {
		p, err := ParsePath(tc.in, tc.id)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePath(%q) = %+v, %v; want error containing %q", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tc.in, err)
			continue
		}
		if p.Slice != tc.slice || p.Unit != tc.unit || p.ParentSlice(true) != tc.rootless {
			t.Errorf("ParsePath(%q) = %+v (rootless parent %q); want slice %q unit %q rootless parent %q", tc.in, p, p.ParentSlice(true), tc.slice, tc.unit, tc.rootless)
		}
		if tc.slice == "" && p.ParentSlice(false) != "system.slice" {
			t.Errorf("ParsePath(%q).ParentSlice(false) = %q, want system.slice", tc.in, p.ParentSlice(false))
		}
	}
}

// TestExpandSlice uses the cases of runc's TestExpandSlice.
func TestExpandSlice(t *testing.T) {
	for in, want := range map[string]string{
		"-.slice":             "/",
		"system.slice":        "/system.slice",
		"test-a-b.slice":      "/test.slice/test-a.slice/test-a-b.slice",
		"user-1000.slice":     "/user.slice/user-1000.slice",
		"kubepods-pod1.slice": "/kubepods.slice/kubepods-pod1.slice",
		"":                    "",
		".slice":              "",
		"-test.slice":         "",
		"test--a.slice":       "",
		"test-.slice":         "",
		"test.slice/foo":      "",
		"test/foo.slice":      "",
		"test":                "",
	} {
		got, err := ExpandSlice(in)
		if want == "" {
			if err == nil {
				t.Errorf("ExpandSlice(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestRangeToBits(t *testing.T) {
	for in, want := range map[string][]byte{
		"0":        {1},
		"1":        {2},
		"0-3":      {0x0f},
		"0,2":      {0x05},
		"8":        {0, 1},
		"0-1, 9 ,": {0x03, 0x02},
		"4-15":     {0xf0, 0xff},
		"63":       {0, 0, 0, 0, 0, 0, 0, 0x80},
		"":         nil,
		"3-1":      nil,
		"x":        nil,
	} {
		got, err := RangeToBits(in)
		if want == nil {
			if err == nil {
				t.Errorf("RangeToBits(%q) = %v, want an error", in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("RangeToBits(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func i64(v int64) *int64 { return &v }

// propMap flattens properties for comparison; a later duplicate wins, as
// in systemd.
func propMap(props []sd.Property) map[string]any {
	m := map[string]any{}
	for _, p := range props {
		m[p.Name] = p.Value.Value()
	}
	return m
}

// TestProperties is runc's documented mapping (docs/systemd.md, the v1 and
// v2 tables) plus its version gates and quota rounding.
func TestProperties(t *testing.T) {
	inf := uint64(math.MaxUint64)
	for _, tc := range []struct {
		name  string
		r     Resources
		ver   int
		want  map[string]any
		quota int64
	}{
		{"v2 memory", Resources{V2: true, Memory: 1 << 20, Reservation: 1 << 19, SwapV2: 1 << 21}, 252,
			map[string]any{"MemoryMax": uint64(1 << 20), "MemoryLow": uint64(1 << 19), "MemorySwapMax": uint64(1 << 21)}, 0},
		{"v2 unlimited", Resources{V2: true, Memory: -1, SwapV2: -1, PidsLimit: -1}, 252,
			map[string]any{"MemoryMax": inf, "MemorySwapMax": inf, "TasksMax": inf}, 0},
		{"v1 memory and shares", Resources{Memory: 1 << 20, CPUShares: 512, BlkioWeight: 300}, 252,
			map[string]any{"MemoryLimit": uint64(1 << 20), "CPUShares": uint64(512), "BlockIOWeight": uint64(300)}, 0},
		{"v2 weight, not shares", Resources{V2: true, CPUShares: 512, CPUWeight: 59, BlkioWeight: 300}, 252,
			map[string]any{"CPUWeight": uint64(59)}, 0},
		{"quota and period", Resources{V2: true, Quota: 50000, Period: 100000}, 252,
			map[string]any{"CPUQuotaPeriodUSec": uint64(100000), "CPUQuotaPerSecUSec": uint64(500000)}, 50000},
		{"quota default period", Resources{Quota: 20000}, 252,
			map[string]any{"CPUQuotaPerSecUSec": uint64(200000)}, 20000},
		// 12345/100000 s per s = 123450 us, rounded up to 130000 (13%);
		// the file gets the quota that matches: 13000.
		{"quota rounded to whole percent", Resources{V2: true, Quota: 12345, Period: 100000}, 252,
			map[string]any{"CPUQuotaPeriodUSec": uint64(100000), "CPUQuotaPerSecUSec": uint64(130000)}, 13000},
		{"period only: no quota", Resources{V2: true, Period: 50000}, 252,
			map[string]any{"CPUQuotaPeriodUSec": uint64(50000), "CPUQuotaPerSecUSec": inf}, 0},
		{"period needs 242", Resources{V2: true, Quota: 50000, Period: 100000}, 241,
			map[string]any{"CPUQuotaPerSecUSec": uint64(500000)}, 50000},
		{"pids", Resources{V2: true, PidsLimit: 50}, 252, map[string]any{"TasksMax": uint64(50)}, 0},
		{"cpuset", Resources{V2: true, Cpus: "0-1", Mems: "0"}, 252,
			map[string]any{"AllowedCPUs": []byte{3}, "AllowedMemoryNodes": []byte{1}}, 0},
		{"cpuset needs 244", Resources{V2: true, Cpus: "0-1"}, 243, map[string]any{}, 0},
		{"idle", Resources{V2: true, CPUIdle: i64(1), CPUWeight: 100}, 252, map[string]any{"CPUWeight": uint64(0)}, 0},
		{"idle needs 252", Resources{V2: true, CPUIdle: i64(1), CPUWeight: 100}, 251, map[string]any{"CPUWeight": uint64(100)}, 0},
		{"unified", Resources{V2: true, Unified: map[string]string{
			"memory.high": "1000", "memory.min": "10", "memory.max": "max", "pids.max": "9",
			"cpu.max": "20000 100000", "cpu.weight": "7", "cpuset.cpus": "1", "io.weight": "50", "memory.oom.group": "1"}}, 252,
			map[string]any{"MemoryHigh": uint64(1000), "MemoryMin": uint64(10), "MemoryMax": inf, "TasksMax": uint64(9),
				"CPUQuotaPeriodUSec": uint64(100000), "CPUQuotaPerSecUSec": uint64(200000), "CPUWeight": uint64(7), "AllowedCPUs": []byte{2}}, 0},
		{"nothing set", Resources{V2: true}, 252, map[string]any{}, 0},
	} {
		props, quota, err := Properties(&tc.r, tc.ver, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := propMap(props); !reflect.DeepEqual(got, tc.want) || quota != tc.quota {
			t.Errorf("%s:\n got %v quota %d\nwant %v quota %d", tc.name, got, quota, tc.want, tc.quota)
		}
	}
	for _, bad := range []map[string]string{{"cpu.max": "a b c"}, {"memory.max": "lots"}, {"a/b": "1"}, {"nodot": "1"}, {"cpuset.cpus": "z"}} {
		if _, _, err := Properties(&Resources{V2: true, Unified: bad}, 252, nil); err == nil {
			t.Errorf("unified %v: no error", bad)
		}
	}
}

func TestDeviceProperties(t *testing.T) {
	dir := t.TempDir()
	procDevices = filepath.Join(dir, "devices")
	defer func() { procDevices = "/proc/devices" }()
	os.WriteFile(procDevices, []byte("Character devices:\n  1 mem\n  5 /dev/tty\n136 pts\n\nBlock devices:\n  8 sd\n"), 0o644)

	allowAll := propMap(deviceProperties(&Devices{DefaultAllow: true}, 252, nil))
	if !reflect.DeepEqual(allowAll, map[string]any{"DevicePolicy": "auto", "DeviceAllow": []deviceAllow{}}) {
		t.Errorf("allow all: %v", allowAll)
	}
	deny := propMap(deviceProperties(&Devices{DefaultAllow: true, Exceptions: []DeviceRule{{'c', 1, 3, "rwm"}}}, 252, nil))
	if !reflect.DeepEqual(deny, map[string]any{"DevicePolicy": "strict", "DeviceAllow": []deviceAllow{}}) {
		t.Errorf("deny list: %v", deny)
	}
	// runc's default rules as an allow list.
	rules := []DeviceRule{{'c', -1, -1, "m"}, {'b', -1, -1, "m"}, {'c', 1, 3, "rwm"}, {'c', 136, -1, "rwm"}, {'c', 99, -1, "r"}, {'b', 8, 0, "r"}}
	props := deviceProperties(&Devices{Exceptions: rules}, 252, nil)
	if props[0].Name != "DeviceAllow" || len(props[0].Value.Value().([]deviceAllow)) != 0 || props[1].Name != "DevicePolicy" {
		t.Errorf("the list is not cleared first: %v", props)
	}
	got := propMap(props)["DeviceAllow"]
	want := []deviceAllow{{"char-*", "m"}, {"block-*", "m"}, {"/dev/char/1:3", "rwm"}, {"char-pts", "rwm"}, {"/dev/block/8:0", "r"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DeviceAllow = %v, want %v (99 has no group: left to the cgroup)", got, want)
	}
	old := propMap(deviceProperties(&Devices{Exceptions: rules}, 239, nil))["DeviceAllow"]
	if !reflect.DeepEqual(old, []deviceAllow{{"char-pts", "rwm"}}) {
		t.Errorf("systemd 239 DeviceAllow = %v", old)
	}
	// The D-Bus signature systemd requires.
	if s := dbus.MakeVariant(want).Signature().String(); s != "a(ss)" {
		t.Errorf("DeviceAllow signature %s, want a(ss)", s)
	}
}

func TestAnnotationProperties(t *testing.T) {
	props, err := AnnotationProperties(map[string]string{
		"org.systemd.property.TimeoutStopUSec": "uint64 123456789",
		"org.systemd.property.CollectMode":     "'inactive-or-failed'",
		"org.systemd.property.TimeoutStopSec":  "uint64 5",
		"org.systemd.property.RuntimeMaxSec":   "1.5",
		"unrelated":                            "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	var names []string
	for _, p := range props {
		got[p.Name] = p.Value.Value()
		names = append(names, p.Name)
	}
	// TimeoutStopSec sorts before TimeoutStopUSec, so the latter wins.
	want := map[string]any{"TimeoutStopUSec": uint64(123456789), "CollectMode": "inactive-or-failed", "RuntimeMaxUSec": uint64(1500000)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Sorted by annotation key, so the result does not depend on map order.
	if strings.Join(names, ",") != "CollectMode,RuntimeMaxUSec,TimeoutStopUSec,TimeoutStopUSec" {
		t.Errorf("order %v", names)
	}
	for _, bad := range []map[string]string{
		{"org.systemd.property.Ab": "1"},
		{"org.systemd.property.Foo_Bar": "1"},
		{"org.systemd.property.Foo": "not gvariant ("},
		{"org.systemd.property.TimeoutSec": "'str'"},
	} {
		if _, err := AnnotationProperties(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestStartProperties(t *testing.T) {
	scope, _ := ParsePath("", "c1")
	props, err := StartProperties(scope, false, true, "hako container c1", 42, "1", []sd.Property{prop("CollectMode", "inactive-or-failed")})
	if err != nil {
		t.Fatal(err)
	}
	m := propMap(props)
	want := map[string]any{
		"Description": "hako container c1", "Slice": "system.slice", "Delegate": true, "PIDs": []uint32{42},
		"MemoryAccounting": true, "CPUAccounting": true, "IOAccounting": true, "TasksAccounting": true,
		"DefaultDependencies": false, "CollectMode": "inactive-or-failed", "OOMPolicy": "kill",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("scope:\n got %v\nwant %v", m, want)
	}
	slice, _ := ParsePath("machine.slice:x:pod.slice", "c1")
	m = propMap(mustStart(t, slice, false))
	if _, ok := m["Slice"]; ok || !reflect.DeepEqual(m["Wants"], []string{"machine.slice"}) || m["Delegate"] != nil || m["BlockIOAccounting"] != true {
		t.Errorf("v1 slice unit: %v", m)
	}
}

func mustStart(t *testing.T, p Path, v2 bool) []sd.Property {
	props, err := StartProperties(p, false, v2, "d", 0, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return props
}

// fakeBus records calls and answers as scripted.
type fakeBus struct {
	calls     []string
	startErr  []error  // per start call
	results   []string // job results per start/stop
	stopErr   error
	resetErr  error
	attachErr error
	mgr       map[string]string
}

func (f *fakeBus) job(ch chan<- string) {
	r := "done"
	if len(f.results) > 0 {
		r, f.results = f.results[0], f.results[1:]
	}
	ch <- r
}

func (f *fakeBus) StartTransientUnitContext(_ context.Context, name, mode string, props []sd.Property, ch chan<- string) (int, error) {
	f.calls = append(f.calls, fmt.Sprintf("start %s %s %d", name, mode, len(props)))
	if len(f.startErr) > 0 {
		err := f.startErr[0]
		f.startErr = f.startErr[1:]
		if err != nil {
			return 0, err
		}
	}
	f.job(ch)
	return 1, nil
}

func (f *fakeBus) StopUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	f.calls = append(f.calls, "stop "+name)
	if f.stopErr != nil {
		return 0, f.stopErr
	}
	f.job(ch)
	return 1, nil
}

func (f *fakeBus) ResetFailedUnitContext(_ context.Context, name string) error {
	f.calls = append(f.calls, "reset "+name)
	return f.resetErr
}

func (f *fakeBus) SetUnitPropertiesContext(_ context.Context, name string, runtime bool, props ...sd.Property) error {
	var names []string
	for _, p := range props {
		names = append(names, p.Name)
	}
	f.calls = append(f.calls, fmt.Sprintf("set %s %v %s", name, runtime, strings.Join(names, ",")))
	return nil
}

func (f *fakeBus) AttachProcessesToUnit(_ context.Context, unit, sub string, pids []uint32) error {
	f.calls = append(f.calls, fmt.Sprintf("attach %s %q %v", unit, sub, pids))
	return f.attachErr
}

func (f *fakeBus) GetManagerProperty(name string) (string, error) {
	f.calls = append(f.calls, "get "+name)
	if v, ok := f.mgr[name]; ok {
		return v, nil
	}
	return "", errors.New("no such property")
}

func (f *fakeBus) Close() {}

func dbusErr(name string) error { return dbus.Error{Name: name, Body: []any{name + ": message"}} }

func TestUnitLifecycle(t *testing.T) {
	// A leftover unit of the same name: reset and retried once.
	f := &fakeBus{startErr: []error{dbusErr("org.freedesktop.systemd1.UnitExists")}}
	u := NewUnit(f, "hako-c1.scope")
	if err := u.Start([]sd.Property{prop("Delegate", true)}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, "; "); got != "start hako-c1.scope replace 1; reset hako-c1.scope; start hako-c1.scope replace 1" {
		t.Errorf("calls: %s", got)
	}
	// Still there after the retry: the error names the unit.
	f = &fakeBus{startErr: []error{dbusErr("org.freedesktop.systemd1.UnitExists"), dbusErr("org.freedesktop.systemd1.UnitExists")}}
	if err := NewUnit(f, "u.scope").Start(nil); err == nil || !strings.Contains(err.Error(), "u.scope") {
		t.Errorf("second UnitExists: %v", err)
	}
	// A job that fails is an error, and the failed unit is reset.
	f = &fakeBus{results: []string{"failed"}}
	if err := NewUnit(f, "u.scope").Start(nil); err == nil || !strings.Contains(err.Error(), `"failed"`) {
		t.Errorf("failed job: %v", err)
	}
	if f.calls[len(f.calls)-1] != "reset u.scope" {
		t.Errorf("failed job not reset: %v", f.calls)
	}
	// Stop waits and resets; a unit systemd forgot is already stopped.
	f = &fakeBus{}
	if err := NewUnit(f, "u.scope").Stop(); err != nil || strings.Join(f.calls, "; ") != "stop u.scope; reset u.scope" {
		t.Errorf("stop: %v %v", err, f.calls)
	}
	f = &fakeBus{stopErr: dbusErr("org.freedesktop.systemd1.NoSuchUnit"), resetErr: dbusErr("org.freedesktop.systemd1.NoSuchUnit")}
	if err := NewUnit(f, "u.scope").Stop(); err != nil {
		t.Errorf("stop of a gone unit: %v", err)
	}
	f = &fakeBus{stopErr: dbusErr("org.freedesktop.DBus.Error.AccessDenied")}
	if err := NewUnit(f, "u.scope").Stop(); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("stop denied: %v", err)
	}
	// Set is runtime-only; nothing to set is no call.
	f = &fakeBus{}
	u = NewUnit(f, "u.scope")
	if err := u.Set(nil); err != nil || len(f.calls) != 0 {
		t.Errorf("empty set: %v %v", err, f.calls)
	}
	u.Set([]sd.Property{prop("MemoryMax", uint64(1))})
	if f.calls[0] != "set u.scope true MemoryMax" {
		t.Errorf("set: %v", f.calls)
	}
	// Attach names the unit, the sub-cgroup and the pid; a refusal
	// names them too.
	f = &fakeBus{}
	if err := NewUnit(f, "u.scope").Attach("/sub", 42); err != nil || strings.Join(f.calls, "; ") != `attach u.scope "/sub" [42]` {
		t.Errorf("attach: %v %v", err, f.calls)
	}
	f = &fakeBus{attachErr: dbusErr("org.freedesktop.DBus.Error.AccessDenied")}
	if err := NewUnit(f, "u.scope").Attach("", 42); err == nil || !strings.Contains(err.Error(), "process 42 into unit u.scope") {
		t.Errorf("attach denied: %v", err)
	}
}

func TestVersionAndSliceDir(t *testing.T) {
	for in, want := range map[string]int{`"252.22-1~deb12u1"`: 252, "v245.4-1.fc32": 245, "245": 245, "x": -1} {
		if got := parseVersion(in); got != want {
			t.Errorf("parseVersion(%q) = %d, want %d", in, got, want)
		}
	}
	f := &fakeBus{mgr: map[string]string{"Version": `"252.22-1"`, "ControlGroup": `"/user.slice/user-1000.slice/user@1000.service"`}}
	u := NewUnit(f, "x.scope")
	if u.Version() != 252 || u.Version() != 252 || len(f.calls) != 1 {
		t.Errorf("Version asked %d times: %v", len(f.calls), f.calls)
	}
	p, _ := ParsePath("", "c1")
	if d, err := SliceDir(p, true, f); err != nil || d != "/user.slice/user-1000.slice/user@1000.service/user.slice" {
		t.Errorf("rootless SliceDir = %q, %v", d, err)
	}
	p, _ = ParsePath("a-b.slice:p:n", "c1")
	if d, err := SliceDir(p, false, f); err != nil || d != "/a.slice/a-b.slice" {
		t.Errorf("SliceDir = %q, %v", d, err)
	}
}

func TestMapToParent(t *testing.T) {
	m := "         0       1000          1\n         1     100000      65536\n"
	for uid, want := range map[int]int{0: 1000, 1: 100000, 100: 100099} {
		if got, err := mapToParent(m, uid); err != nil || got != want {
			t.Errorf("mapToParent(%d) = %d, %v; want %d", uid, got, err, want)
		}
	}
	if _, err := mapToParent(m, 70000); err == nil {
		t.Error("unmapped uid: no error")
	}
	if got, _ := mapToParent("0 0 4294967295\n", 1000); got != 1000 {
		t.Errorf("initial namespace: %d", got)
	}
}
