package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func needV1(t *testing.T) {
	t.Helper()
	needRoot(t)
	if isUnified() {
		t.Skip("v1 controllers only")
	}
}

// TestCpusetLevels checks what the library's cpuset Apply guarantees:
// every level below the hierarchy root ends up with cpus and mems, the
// requested ones for the container itself.
func TestCpusetLevels(t *testing.T) {
	needV1(t)
	path := testPath(t, "/a/b")
	top := strings.TrimSuffix(path, "/a/b")
	probe, err := New(Config{ID: "probe", CgroupsPath: path})
	if err != nil {
		t.Fatal(err)
	}
	rootDir := strings.TrimSuffix(probe.Paths()["cpuset"], path)
	if rootDir == probe.Paths()["cpuset"] || rootDir == "" {
		t.Skip("no cpuset hierarchy")
	}
	file := cpusetFile(rootDir, "cpus")
	memsFile := cpusetFile(rootDir, "mems")
	rootCpus := readFile(t, rootDir, file)
	rootMems := readFile(t, rootDir, memsFile)

	// An existing level left empty (made by someone else) is filled too.
	if err := os.Mkdir(rootDir+top, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, rootDir+top, file); got != "" && readFile(t, rootDir, "cgroup.clone_children") == "0" {
		t.Fatalf("new cpuset has cpus %q", got)
	}
	res := &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}}
	m, err := New(Config{ID: "cpuset", CgroupsPath: path, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Destroy() }()
	for _, c := range []struct{ dir, cpus string }{
		{rootDir + top, rootCpus},
		{rootDir + top + "/a", rootCpus},
		{rootDir + path, "0"},
	} {
		if got := readFile(t, c.dir, file); got != c.cpus {
			t.Errorf("%s: cpus %q, want %q", c.dir, got, c.cpus)
		}
		if got := readFile(t, c.dir, memsFile); got != rootMems {
			t.Errorf("%s: mems %q, want %q", c.dir, got, rootMems)
		}
	}
}

// TestDefaultDeviceList checks the kernel's view of the default rules.
func TestDefaultDeviceList(t *testing.T) {
	needV1(t)
	m, err := New(Config{ID: "devlist", CgroupsPath: testPath(t, ""), Resources: defaultSpecResources()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Destroy() }()
	got := strings.Split(readFile(t, m.Paths()["devices"], "devices.list"), "\n")
	want := []string{"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("devices.list = %q, want %q", got, want)
	}
}

// TestSubCgroups checks that Pids sees processes in sub-cgroups (which the
// container may make) and that Destroy removes those.
func TestSubCgroups(t *testing.T) {
	needRoot(t)
	m, err := New(Config{ID: "sub", CgroupsPath: testPath(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	u := m.UnifiedPath()
	if u == "" {
		t.Skip("no cgroup2 directory")
	}
	child := filepath.Join(u, "child")
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range paths {
		if d != u {
			_ = os.Mkdir(filepath.Join(d, "child"), 0o755)
		}
	}
	cmd := startInCgroup(t, &Manager{unified: child}, "sleep", "100")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pids, err := m.Pids()
	if err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Fatalf("Pids = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	if err := m.Destroy(); err == nil {
		t.Fatal("Destroy succeeded with a live process")
	}
	for k, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("failed Destroy removed %q dir: %v", k, err)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, paths)
}
