package cgroups

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The tests in this file pin the cgroup2 file/value sequences, which are
// runc's fs2 (plus io.weight per-device weights), against a fake cgroupfs.

func TestMemoryV2(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *specs.LinuxResources
		want []string
	}{
		{"limit+swap", mem(100, 300), []string{"memory.swap.max=200", "memory.max=100"}},
		{"no swap", mem(100, 100), []string{"memory.swap.max=0", "memory.max=100"}},
		{"unlimited", mem(-1, 0), []string{"memory.swap.max=max", "memory.max=max"}},
		{"unlimited swap", mem(100, -1), []string{"memory.swap.max=max", "memory.max=100"}},
		{"limit only", mem(100, 0), []string{"memory.max=100"}},
		{"reservation", &specs.LinuxResources{Memory: &specs.LinuxMemory{
			Reservation: ptr[int64](50), Swappiness: ptr[uint64](10), DisableOOMKiller: ptr(true),
		}}, []string{"memory.low=50"}},
	} {
		f := newFake()
		if err := setMemoryV2(f, fakeRoot, res(tc.r)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkWrites(t, tc.name, f, tc.want...)
	}

	// Without swap accounting, "no swap" and "unlimited swap" hold anyway;
	// a real swap limit cannot.
	f := newFake()
	f.missing["memory.swap.max"] = true
	if err := setMemoryV2(f, fakeRoot, res(mem(-1, 0))); err != nil {
		t.Error(err)
	}
	checkWrites(t, "no swap file", f, "memory.max=max")
	wantErrno(t, "swap limit without file", setMemoryV2(f, fakeRoot, res(mem(100, 300))), unix.ENOENT)

	if err := setMemoryV2(newFake(), fakeRoot, res(mem(0, 300))); err == nil {
		t.Error("swap without a memory limit accepted")
	}
	if err := setMemoryV2(newFake(), fakeRoot, res(mem(200, 100))); err == nil {
		t.Error("memory+swap below memory accepted")
	}

	// checkBeforeUpdate refuses a limit below the current usage.
	r := mem(100, 0)
	r.Memory.CheckBeforeUpdate = ptr(true)
	f = newFake().with(map[string]string{"memory.current": "500\n"})
	if err := setMemoryV2(f, fakeRoot, res(r)); err == nil || !strings.Contains(err.Error(), "rejecting memory limit 100 <= usage 500") {
		t.Errorf("checkBeforeUpdate: %v", err)
	}
	checkWrites(t, "checkBeforeUpdate", f)
}

func TestCPUV2(t *testing.T) {
	f := newFake()
	r := &specs.LinuxResources{CPU: &specs.LinuxCPU{
		Shares: ptr[uint64](512), Quota: ptr[int64](50000), Burst: ptr[uint64](1000), Idle: ptr[int64](0),
		RealtimeRuntime: ptr[int64](1), RealtimePeriod: ptr[uint64](1), // no cgroup2 files: ignored
	}}
	if err := setCPUV2(f, fakeRoot, res(r)); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "cpu", f, "cpu.idle=0", "cpu.weight=59", "cpu.max.burst=1000", "cpu.max=50000 100000")

	f = newFake()
	f.fail["cpu.max.burst"] = unix.EINVAL
	r.CPU.Period, r.CPU.Quota = ptr[uint64](20000), ptr[int64](-1)
	if err := setCPUV2(f, fakeRoot, res(r)); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "burst retried", f, "cpu.idle=0", "cpu.weight=59", "cpu.max=max 20000", "cpu.max.burst=1000")

	f = newFake()
	if err := setCPUV2(f, fakeRoot, res(&specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr[int64](1)}})); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "rt only", f)
}

func TestIOV2(t *testing.T) {
	throttles := []string{"io.max=8:0 rbps=1", "io.max=8:0 wbps=2", "io.max=8:0 riops=3", "io.max=8:0 wiops=4"}
	// No BFQ: converted weights in io.weight.
	f := newFake()
	if err := setIOV2(f, fakeRoot, res(blockIO())); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "io.weight", f, append([]string{"io.weight=default 4950", "io.weight=8:0 2930"}, throttles...)...)
	// BFQ with per-device weights: the v1 values as they are.
	f = newFake().with(map[string]string{"io.bfq.weight": "default 100\n"})
	if err := setIOV2(f, fakeRoot, res(blockIO())); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "bfq", f, append([]string{"io.bfq.weight=500", "io.bfq.weight=8:0 300"}, throttles...)...)
	// Old BFQ (a bare number): per-device weights cannot be set, as in runc.
	f = newFake().with(map[string]string{"io.bfq.weight": "100\n"})
	if err := setIOV2(f, fakeRoot, res(blockIO())); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "old bfq", f, append([]string{"io.bfq.weight=500"}, throttles...)...)
}

func TestUnified(t *testing.T) {
	f := newFake()
	files := map[string]string{"memory.high": "1G", "cgroup.type": "threaded", "io.max": "8:0 rbps=1\n8:16 wbps=2\n"}
	if err := setUnified(f, fakeRoot, files); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "unified", f, "cgroup.type=threaded", "io.max=8:0 rbps=1\n", "io.max=8:16 wbps=2\n", "memory.high=1G")

	var ce *Error
	err := setUnified(newFake(), fakeRoot, map[string]string{"../x": "1"})
	if !errors.As(err, &ce) || ce.Controller != "unified" {
		t.Errorf("slash: %v", err)
	}
	f = newFake().with(map[string]string{"cgroup.controllers": "cpu io\n"})
	f.missing["memory.high"] = true
	err = setUnified(f, fakeRoot, map[string]string{"memory.high": "1G"})
	if !errors.As(err, &ce) || ce.Controller != "memory" || !errors.Is(err, ErrNotMounted) {
		t.Errorf("undelegated controller: %v", err)
	}
}

// TestSetV2Full runs a whole resource set through the cgroup2 manager, in
// fs2's controller order, with the conversions.
func TestSetV2Full(t *testing.T) {
	r := &specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: ptr[int64](64 << 20), Swap: ptr[int64](128 << 20), Reservation: ptr[int64](1 << 20)},
		CPU:            &specs.LinuxCPU{Shares: ptr[uint64](1024), Quota: ptr[int64](50000), Period: ptr[uint64](100000), Cpus: "0", Mems: "0"},
		Pids:           &specs.LinuxPids{Limit: ptr[int64](50)},
		BlockIO:        &specs.LinuxBlockIO{Weight: ptr[uint16](10)},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}},
		Rdma:           map[string]specs.LinuxRdma{"mlx": {HcaHandles: ptr[uint32](1)}},
		Unified:        map[string]string{"memory.high": "50000000"},
	}
	f := newFake()
	m := &Manager{fs: f, v2: true, unified: fakeRoot}
	if err := m.setV2(res(r)); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "full", f, "pids.max=50", "memory.swap.max=67108864", "memory.max=67108864", "memory.low=1048576",
		"io.weight=default 1", "cpu.weight=100", "cpu.max=50000 100000", "cpuset.cpus=0", "cpuset.mems=0",
		"hugetlb.2MB.max=2097152", "hugetlb.2MB.rsvd.max=2097152", "rdma.max=mlx hca_handle=1", "memory.high=50000000")

	f = newFake().with(map[string]string{"cgroup.controllers": "cpu memory\n"})
	m.fs = f
	err := m.checkV2(res(r))
	var ce *Error
	if !errors.As(err, &ce) || ce.Controller != "pids" || !errors.Is(err, ErrNotMounted) {
		t.Errorf("undelegated pids: %v", err)
	}
	f.files["cgroup.controllers"] = "cpuset cpu io memory hugetlb pids rdma misc\n"
	if err := m.checkV2(res(r)); err != nil {
		t.Error(err)
	}
	// A failure names the controller, the file and the value.
	f.fail["cpu.weight"] = unix.ERANGE
	err = m.setV2(res(r))
	if want := `cgroup cpu: write /cg/cpu.weight "100": numerical result out of range`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestCreateV2Path checks runc's cgroup2 directory creation: each missing
// level is made, controllers are enabled on the way down (but not in the
// container's own directory, and not where they already are), and a
// threaded level refuses domain controllers.
func TestCreateV2Path(t *testing.T) {
	var made []string
	exists := map[string]bool{cgroupRoot + "/a": true}
	mk := func(dir string, _ os.FileMode) error {
		if exists[dir] {
			return &os.PathError{Op: "mkdir", Path: dir, Err: unix.EEXIST}
		}
		made = append(made, dir)
		return nil
	}
	f := newFake().with(map[string]string{
		cgroupRoot + "/cgroup.controllers":       "cpu memory pids\n",
		cgroupRoot + "/cgroup.subtree_control":   "cpu memory pids\n",
		cgroupRoot + "/a/cgroup.subtree_control": "cpu\n",
	})
	tr := &tracker{mk: mk}
	if err := createV2Path(f, tr, cgroupRoot+"/a/b/c", res(mem(100, 0))); err != nil {
		t.Fatal(err)
	}
	if want := []string{cgroupRoot + "/a/b", cgroupRoot + "/a/b/c"}; !slices.Equal(made, want) || !slices.Equal(tr.dirs, want) {
		t.Errorf("made %v, tracked %v; want %v", made, tr.dirs, want)
	}
	checkWrites(t, "subtree_control", f,
		cgroupRoot+"/a/cgroup.subtree_control=+cpu +memory +pids",
		cgroupRoot+"/a/b/cgroup.subtree_control=+cpu +memory +pids")

	f = newFake().with(map[string]string{
		cgroupRoot + "/cgroup.controllers": "cpu memory\n",
		cgroupRoot + "/a/cgroup.type":      "threaded\n",
	})
	err := createV2Path(f, &tracker{mk: mk}, cgroupRoot+"/a/b", res(mem(100, 0)))
	if err == nil || !strings.Contains(err.Error(), "threaded mode") {
		t.Errorf("threaded parent: %v", err)
	}
	if err := createV2Path(f, &tracker{mk: mk}, "/elsewhere/x", res(mem(1, 0))); err == nil {
		t.Error("path outside /sys/fs/cgroup accepted")
	}
}
