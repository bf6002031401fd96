package resctrl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeRoot lays out a resctrl mount as the kernel does, offering the
// resources named (info/L3, info/MB, info/L3_MON); tasks and schemata are
// plain files here. Its mkdir makes a group as the kernel does (with
// mon_groups where monitoring is on), its rmdir removes one with its files.
func fakeRoot(t *testing.T, info ...string) string {
	t.Helper()
	root := t.TempDir()
	mon := false
	for _, d := range info {
		mon = mon || d == "L3_MON"
	}
	mkdir = func(p string, m os.FileMode) error {
		if err := os.Mkdir(p, m); err != nil {
			return err
		}
		if mon && filepath.Dir(p) == root {
			return os.Mkdir(filepath.Join(p, "mon_groups"), 0o755)
		}
		return nil
	}
	rmdir = func(p string) error {
		if _, err := os.Stat(p); err != nil {
			return err
		}
		return os.RemoveAll(p)
	}
	t.Cleanup(func() { mkdir, rmdir = os.Mkdir, os.Remove })
	for _, d := range info {
		if err := os.MkdirAll(filepath.Join(root, "info", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "info", "last_cmd_status"), []byte("ok\n"), 0o644)
	os.WriteFile(filepath.Join(root, "schemata"), []byte("L3:0=fffff\nMB:0=100\n"), 0o644)
	os.WriteFile(filepath.Join(root, "tasks"), nil, 0o644)
	return root
}

func read(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestApplyOwnGroup(t *testing.T) {
	root := fakeRoot(t, "L3", "MB", "L3_MON")
	r := &specs.LinuxIntelRdt{L3CacheSchema: "L3:0=f0", MemBwSchema: "MB:0=20", Schemata: []string{"L2:0=3"}, EnableMonitoring: true}
	if err := Check(root, r); err != nil {
		t.Fatal(err)
	}
	g, err := Apply(root, "ctr1", r, 4242)
	if err != nil {
		t.Fatal(err)
	}
	if g.Path != filepath.Join(root, "ctr1") || !g.Created || g.Named {
		t.Errorf("group %+v", g)
	}
	if s := read(t, filepath.Join(root, "ctr1/schemata")); s != "L3:0=f0\nMB:0=20\nL2:0=3\n" {
		t.Errorf("schemata %q", s)
	}
	if s := read(t, filepath.Join(root, "ctr1/tasks")); s != "4242" {
		t.Errorf("tasks %q", s)
	}
	if g.MonPath != filepath.Join(root, "ctr1/mon_groups/ctr1") {
		t.Errorf("mon path %q", g.MonPath)
	}
	if s := read(t, filepath.Join(g.MonPath, "tasks")); s != "4242" {
		t.Errorf("mon tasks %q", s)
	}
	if s := read(t, filepath.Join(root, "schemata")); s != "L3:0=fffff\nMB:0=100\n" {
		t.Errorf("the default group's schemata changed: %q", s)
	}
	if err := g.AddTask(root, 4343); err != nil {
		t.Fatal(err)
	}
	if s := read(t, filepath.Join(g.MonPath, "tasks")); s != "4343" {
		t.Errorf("exec'd pid not in the monitoring group: %q", s)
	}
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Path); !os.IsNotExist(err) {
		t.Errorf("the container's own group outlived delete: %v", err)
	}
}

// A named CLOS is someone else's: the container joins it, gets only its
// monitoring group removed, and without schemata it must exist already.
func TestApplyNamedGroup(t *testing.T) {
	root := fakeRoot(t, "L3", "L3_MON")
	r := &specs.LinuxIntelRdt{ClosID: "gold"}
	_, err := Apply(root, "ctr2", r, 1)
	if err == nil || !strings.Contains(err.Error(), "clos dir not accessible (must be pre-created when schemata, l3CacheSchema and memBwSchema are empty)") {
		t.Fatalf("missing named CLOS: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "gold")); !os.IsNotExist(err) {
		t.Error("a refused named CLOS was made")
	}
	mkdir(filepath.Join(root, "gold"), 0o755)
	r.EnableMonitoring = true
	g, err := Apply(root, "ctr2", r, 77)
	if err != nil {
		t.Fatal(err)
	}
	if g.Created || !g.Named {
		t.Errorf("group %+v", g)
	}
	if _, err := os.Stat(filepath.Join(root, "gold/schemata")); !os.IsNotExist(err) {
		t.Error("schemata written with no schema in the config")
	}
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "gold")); err != nil {
		t.Errorf("the named CLOS was removed: %v", err)
	}
	if _, err := os.Stat(g.MonPath); !os.IsNotExist(err) {
		t.Errorf("the monitoring group outlived delete: %v", err)
	}
	// With a schema the named group is made, and still never removed.
	g, err = Apply(root, "ctr3", &specs.LinuxIntelRdt{ClosID: "silver", L3CacheSchema: "L3:0=3"}, 78)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "silver")); err != nil {
		t.Errorf("a named CLOS hako made was removed: %v", err)
	}
}

func TestCheck(t *testing.T) {
	full := fakeRoot(t, "L3", "MB")
	noMBA := fakeRoot(t, "L3")
	noCAT := fakeRoot(t, "MB")
	for _, tc := range []struct {
		root string
		r    specs.LinuxIntelRdt
		want string
	}{
		{"", specs.LinuxIntelRdt{ClosID: "../x"}, "intelRdt is specified in config, but Intel RDT is not enabled"},
		{full, specs.LinuxIntelRdt{ClosID: "a/b"}, `invalid intelRdt.ClosID "a/b"`},
		{full, specs.LinuxIntelRdt{ClosID: ".."}, `invalid intelRdt.ClosID ".."`},
		{full, specs.LinuxIntelRdt{ClosID: "/"}, ""},
		{noMBA, specs.LinuxIntelRdt{MemBwSchema: "MB:0=10"}, "intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not enabled"},
		{noCAT, specs.LinuxIntelRdt{L3CacheSchema: "L3:0=1"}, "intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled"},
		{full, specs.LinuxIntelRdt{L3CacheSchema: "L3:0=1", MemBwSchema: "MB:0=10"}, ""},
	} {
		err := Check(tc.root, &tc.r)
		if (err == nil) != (tc.want == "") || err != nil && err.Error() != tc.want {
			t.Errorf("%+v on %q: %v, want %q", tc.r, tc.root, err, tc.want)
		}
	}
}

// A failed write carries the kernel's last_cmd_status, and Apply removes
// the group it made.
func TestApplyErrorCleansUp(t *testing.T) {
	root := fakeRoot(t, "L3")
	os.WriteFile(filepath.Join(root, "info", "last_cmd_status"), []byte("Invalid schema\n"), 0o644)
	// A directory where the schemata file would be makes the write fail.
	mkdirHook := filepath.Join(root, "ctr4")
	os.MkdirAll(filepath.Join(mkdirHook, "schemata"), 0o755)
	_, err := Apply(root, "ctr4", &specs.LinuxIntelRdt{L3CacheSchema: "L3:0=zz"}, 5)
	if err == nil || !strings.Contains(err.Error(), `intelrdt: unable to write "L3:0=zz\n"`) || !strings.Contains(err.Error(), "last_cmd_status: Invalid schema") {
		t.Fatalf("err %v", err)
	}
	// The directory existed (not made by Apply): it stays.
	if _, err := os.Stat(mkdirHook); err != nil {
		t.Errorf("a group Apply did not make was removed: %v", err)
	}
	// One it made goes again: here the monitoring group cannot be made
	// (a group has no mon_groups without L3_MON), after the group and
	// its tasks were.
	_, err = Apply(root, "ctr5", &specs.LinuxIntelRdt{EnableMonitoring: true}, 6)
	if err == nil || !strings.Contains(err.Error(), "mon_groups") {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "ctr5")); !os.IsNotExist(err) {
		t.Errorf("the group of a failed Apply is left: %v", err)
	}
}

func TestStats(t *testing.T) {
	root := fakeRoot(t, "L3", "MB", "L3_MON")
	for f, v := range map[string]string{"L3/cbm_mask": "fffff\n", "L3/min_cbm_bits": "1\n", "L3/num_closids": "16\n",
		"MB/bandwidth_gran": "10\n", "MB/delay_linear": "1\n", "MB/min_bandwidth": "10\n", "MB/num_closids": "8\n",
		"L3_MON/mon_features": "llc_occupancy\nmbm_total_bytes\nmbm_local_bytes\n"} {
		os.WriteFile(filepath.Join(root, "info", f), []byte(v), 0o644)
	}
	g, err := Apply(root, "ctr6", &specs.LinuxIntelRdt{L3CacheSchema: "L3:0=f0", MemBwSchema: "MB:0=20", EnableMonitoring: true}, 9)
	if err != nil {
		t.Fatal(err)
	}
	for dom, v := range map[string][3]string{"mon_L3_00": {"100", "60", "4096"}, "mon_L3_01": {"7", "5", "0"}} {
		d := filepath.Join(g.MonPath, "mon_data", dom)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "mbm_total_bytes"), []byte(v[0]+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "mbm_local_bytes"), []byte(v[1]+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "llc_occupancy"), []byte(v[2]+"\n"), 0o644)
	}
	s, err := g.Stats(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.L3CacheSchema != "L3:0=f0" || s.L3CacheSchemaRoot != "L3:0=fffff" || s.MemBwSchema != "MB:0=20" || s.MemBwSchemaRoot != "MB:0=100" {
		t.Errorf("schemas %+v", s)
	}
	if *s.L3CacheInfo != (L3CacheInfo{CbmMask: "fffff", MinCbmBits: 1, NumClosids: 16}) || *s.MemBwInfo != (MemBwInfo{10, 1, 10, 8}) {
		t.Errorf("info %+v %+v", *s.L3CacheInfo, *s.MemBwInfo)
	}
	if len(s.Schemata) != 2 {
		t.Errorf("schemata %q", s.Schemata)
	}
	if s.MBMStats == nil || len(*s.MBMStats) != 2 || (*s.MBMStats)[0] != (MBMNumaNodeStats{100, 60}) ||
		s.CMTStats == nil || (*s.CMTStats)[0].LLCOccupancy != 4096 {
		t.Errorf("monitoring %v %v", s.MBMStats, s.CMTStats)
	}
}
