package cgroups

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// testPath returns a unique absolute cgroupsPath whose top directory only
// this test uses; cleanup removes it (and anything below) from every
// hierarchy, so a failing test leaves nothing behind.
func testPath(t *testing.T, sub string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	top := "/hako-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		roots, _ := filepath.Glob(cgroupRoot + "/*")
		roots = append(roots, cgroupRoot)
		for _, r := range roots {
			_ = removePath(r + top)
		}
	})
	return top + sub
}

// keepSubtreeControl puts dir's cgroup.subtree_control back as it was when
// the test ends: the manager enables controllers in ancestors (the hybrid
// root included) and, like runc, never turns them off, which would change
// what later tests and other runtimes on this host see. Cleanups run after
// the test's deferred Destroy, when no cgroup below dir uses the controller.
func keepSubtreeControl(t *testing.T, dir string) {
	t.Helper()
	before, err := hostFS{}.read(dir, "cgroup.subtree_control")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		now, err := hostFS{}.read(dir, "cgroup.subtree_control")
		if err != nil {
			t.Error(err)
			return
		}
		for _, c := range strings.Fields(now) {
			if !slices.Contains(strings.Fields(before), c) {
				if err := (hostFS{}).write(dir, "cgroup.subtree_control", "-"+c); err != nil {
					t.Errorf("restore %s/cgroup.subtree_control: %v", dir, err)
				}
			}
		}
	})
}

func readFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// testResources returns the limits the tests apply. On a cgroup2 host that
// does not offer some controller at the root (a nested or partial setup)
// its limit is left out, so the remaining behaviour can still be checked.
func testResources(t *testing.T) *specs.LinuxResources {
	r := fullTestResources()
	if !isUnified() {
		return r
	}
	data, err := os.ReadFile(cgroupRoot + "/cgroup.controllers")
	if err != nil {
		t.Fatal(err)
	}
	have := strings.Fields(string(data))
	if !slices.Contains(have, "memory") {
		r.Memory = nil
	}
	if !slices.Contains(have, "pids") {
		r.Pids = nil
	}
	if !slices.Contains(have, "cpu") {
		r.CPU.Shares = nil
	}
	if !slices.Contains(have, "cpuset") {
		r.CPU.Cpus = ""
	}
	if len(have) < 4 {
		t.Logf("cgroup2 root offers only %v; testing the rest", have)
	}
	return r
}

func fullTestResources() *specs.LinuxResources {
	return &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20)},
		Pids:   &specs.LinuxPids{Limit: ptr[int64](50)},
		CPU:    &specs.LinuxCPU{Shares: ptr[uint64](512), Cpus: "0"},
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](3), Access: "rwm"},
		},
	}
}

// startInCgroup starts a command directly in the container's cgroup2
// directory (as the runtime's parent does) when there is one.
func startInCgroup(t *testing.T, m *Manager, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if u := m.UnifiedPath(); u != "" {
		f, err := os.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func assertGone(t *testing.T, paths map[string]string) {
	t.Helper()
	for k, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q dir %s still exists (%v)", k, p, err)
		}
	}
}

func TestLifecycle(t *testing.T) {
	needRoot(t)
	m, err := New(Config{ID: "lifecycle", CgroupsPath: testPath(t, ""), Resources: testResources(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	t.Logf("paths: %v", paths)

	if m.v2 {
		u := m.UnifiedPath()
		res := testResources(t)
		want := map[string]string{}
		if res.Memory != nil {
			want["memory.max"] = "67108864"
		}
		if res.Pids != nil {
			want["pids.max"] = "50"
		}
		if res.CPU.Cpus != "" {
			want["cpuset.cpus"] = "0"
		}
		if res.CPU.Shares != nil {
			want["cpu.weight"] = readWeight(512)
		}
		for file, want := range want {
			if got := readFile(t, u, file); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
		if len(m.JoinFiles()) != 0 {
			t.Errorf("JoinFiles on v2: %v", m.JoinFiles())
		}
	} else {
		for _, c := range []struct{ ctl, file, want string }{
			{"memory", "memory.limit_in_bytes", "67108864"},
			{"pids", "pids.max", "50"},
			{"cpu", "cpu.shares", "512"},
			{"cpuset", "cpuset.cpus", "0"},
		} {
			if got := readFile(t, paths[c.ctl], c.file); got != c.want {
				t.Errorf("%s = %q, want %q", c.file, got, c.want)
			}
		}
		list := strings.Split(readFile(t, paths["devices"], "devices.list"), "\n")
		if !slices.Contains(list, "c 1:3 rwm") || slices.Contains(list, "a *:* rwm") {
			t.Errorf("devices.list = %q", list)
		}
		if isHybrid() && paths[""] == "" {
			t.Error("hybrid host but no unified dir")
		}
		if _, ok := paths["name=systemd"]; ok && !slices.Contains(m.JoinFiles(), paths["name=systemd"]+"/tasks") {
			t.Errorf("JoinFiles lacks name=systemd: %v", m.JoinFiles())
		}
		checkMounts(t, m, paths)
	}

	cmd := startInCgroup(t, m, "sleep", "100")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for _, f := range m.JoinFiles() {
		// The whole process, since we are not the process itself.
		procs := filepath.Join(filepath.Dir(f), "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
	pids, err := m.Pids()
	if err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Fatalf("Pids = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}

	if testResources(t).Pids != nil {
		if err := m.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](100)}}); err != nil {
			t.Fatal(err)
		}
		pidsDir := paths["pids"]
		if m.v2 {
			pidsDir = paths[""]
		}
		if got := readFile(t, pidsDir, "pids.max"); got != "100" {
			t.Errorf("after Update pids.max = %q", got)
		}
	}

	// Later commands work from the persisted paths.
	lm, err := Load(paths, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := lm.Freeze(); err != nil {
		t.Fatal(err)
	}
	if p, err := lm.Paused(); err != nil || !p {
		t.Fatalf("Paused after Freeze = %v, %v", p, err)
	}
	if err := lm.Thaw(); err != nil {
		t.Fatal(err)
	}
	if p, err := lm.Paused(); err != nil || p {
		t.Fatalf("Paused after Thaw = %v, %v", p, err)
	}

	if err := lm.Destroy(); err == nil {
		t.Error("Destroy succeeded with a live process")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := lm.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, paths)
	if err := lm.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if pids, err := lm.Pids(); err != nil || len(pids) != 0 {
		t.Errorf("Pids after Destroy = %v, %v", pids, err)
	}
}

func readWeight(shares uint64) string {
	return strconv.FormatUint(cpuSharesToWeight(shares), 10)
}

func checkMounts(t *testing.T, m *Manager, paths map[string]string) {
	t.Helper()
	ms := m.Mounts()
	byDir := map[string]MountSource{}
	for _, s := range ms {
		byDir[s.Dir] = s
	}
	if s := byDir["memory"]; s.HostPath != paths["memory"] || s.Type != "cgroup" {
		t.Errorf("memory mount = %+v", s)
	}
	if p := paths["name=systemd"]; p != "" && byDir["systemd"].HostPath != p {
		t.Errorf("systemd mount = %+v", byDir["systemd"])
	}
	if p := paths[""]; p != "" {
		if s := byDir["unified"]; s.HostPath != p || s.Type != "cgroup2" {
			t.Errorf("unified mount = %+v", s)
		}
	}
}

// TestJoinAndDevices lets a process join the way a container's init does
// and checks the device rules from its side.
func TestJoinAndDevices(t *testing.T) {
	needRoot(t)
	m, err := New(Config{ID: "join", CgroupsPath: testPath(t, ""), Resources: testResources(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Destroy() }()
	dev := forbiddenDevice(t)
	script := `for f in ` + strings.Join(m.JoinFiles(), " ") + `; do echo 0 > "$f" || exit 1; done
cat /dev/null || exit 2
(exec 3<` + dev + `) 2>/dev/null && exit 3
exit 0`
	cmd := startInCgroup(t, m, "sh", "-c", script)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("joining process: %v", err)
	}
}

func TestCreateRollback(t *testing.T) {
	needRoot(t)
	path := testPath(t, "/a/b")
	res := fullTestResources()
	res.CPU.Cpus = "999"
	m, err := New(Config{ID: "rollback", CgroupsPath: path, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Create()
	var ce *Error
	if !errors.As(err, &ce) || ce.Controller != "cpuset" {
		t.Fatalf("Create error = %v, want a cpuset error", err)
	}
	t.Log(err)
	paths := m.Paths()
	assertGone(t, paths)
	// The parents Create made for the nested path must be gone too.
	for k, p := range paths {
		top := strings.TrimSuffix(p, "/a/b")
		if _, err := os.Stat(top); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%q parent %s left behind", k, top)
		}
	}
}

func TestNotMounted(t *testing.T) {
	needRoot(t)
	m, err := New(Config{ID: "nm", CgroupsPath: testPath(t, ""), Resources: &specs.LinuxResources{
		Network: &specs.LinuxNetwork{ClassID: ptr[uint32](0x100001)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if m.v2 || m.Paths()["net_cls"] != "" {
		t.Skip("net_cls is not a missing v1 controller here")
	}
	if err := m.Create(); !errors.Is(err, ErrNotMounted) {
		t.Fatalf("Create = %v, want ErrNotMounted", err)
	}
	assertGone(t, m.Paths())
}

// TestHybridHugetlb checks that hugetlb limits land in the unified tree
// when hugetlb is not a v1 hierarchy.
func TestHybridHugetlb(t *testing.T) {
	needRoot(t)
	sizes := hugePageSizes(t)
	if isUnified() || !isHybrid() || !unifiedHas(hostFS{}, "hugetlb") || len(sizes) == 0 {
		t.Skip("needs a hybrid host with hugetlb only in cgroup2")
	}
	m, err := New(Config{ID: "huge", CgroupsPath: testPath(t, ""), Resources: &specs.LinuxResources{
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: sizes[0], Limit: 1 << 30}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Paths()["hugetlb"] != "" {
		t.Skip("hugetlb is a v1 hierarchy here")
	}
	keepSubtreeControl(t, hybridRoot)
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Destroy() }()
	if got := readFile(t, m.UnifiedPath(), "hugetlb."+sizes[0]+".max"); got != "1073741824" {
		t.Errorf("hugetlb.%s.max = %q", sizes[0], got)
	}
}

// TestDeviceFilterV2 exercises the eBPF device filter. On hybrid hosts the
// manager never uses it, so it is attached to the unified directory by hand.
func TestDeviceFilterV2(t *testing.T) {
	needRoot(t)
	m, err := New(Config{ID: "ebpf", CgroupsPath: testPath(t, "")})
	if err != nil {
		t.Fatal(err)
	}
	if m.UnifiedPath() == "" {
		t.Skip("no cgroup2 directory")
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Destroy() }()
	dev := forbiddenDevice(t)
	probe := func(rules *specs.LinuxResources) error {
		res, err := newResources(rules, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := setDevicesV2(m.UnifiedPath(), res); err != nil {
			t.Fatal(err)
		}
		cmd := startInCgroup(t, m, "sh", "-c", "cat /dev/null || exit 2; (exec 3<"+dev+") 2>/dev/null || exit 3")
		return cmd.Wait()
	}
	var ee *exec.ExitError
	if err := probe(nil); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("defaults: want %s denied, got %v", dev, err)
	}
	// Replacing the program must not leave the old one attached.
	allowAll := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}
	if err := probe(allowAll); err != nil {
		t.Errorf("allow all: %v", err)
	}
}

// forbiddenDevice is a device node root may open that runc's default rules
// do not allow.
func forbiddenDevice(t *testing.T) string {
	t.Helper()
	for _, d := range []string{"/dev/kmsg", "/dev/fuse", "/dev/loop-control"} {
		if _, err := os.Stat(d); err == nil {
			return d
		}
	}
	t.Skip("no suitable device node to probe")
	return ""
}

// hugePageSizes lists the kernel's huge page sizes as cgroup file names
// spell them ("2MB", "1GB").
func hugePageSizes(t *testing.T) []string {
	entries, _ := os.ReadDir("/sys/kernel/mm/hugepages")
	var sizes []string
	for _, e := range entries {
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(e.Name(), "hugepages-"), "kB"), 10, 64)
		if err != nil {
			t.Fatalf("unexpected entry %q", e.Name())
		}
		switch {
		case kb >= 1<<20 && kb%(1<<20) == 0:
			sizes = append(sizes, strconv.FormatUint(kb>>20, 10)+"GB")
		case kb >= 1<<10 && kb%(1<<10) == 0:
			sizes = append(sizes, strconv.FormatUint(kb>>10, 10)+"MB")
		default:
			sizes = append(sizes, strconv.FormatUint(kb, 10)+"KB")
		}
	}
	return sizes
}
