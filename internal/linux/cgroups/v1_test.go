package cgroups

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/moby/sys/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The tests in this file pin the file/value sequences the v1 setters
// produce, which are runc's (fs.<X>Group.Set), against a fake cgroupfs.

func res(r *specs.LinuxResources) *resources { return &resources{spec: r, skipDevices: true} }

func mem(limit, swap int64) *specs.LinuxResources {
	m := &specs.LinuxMemory{}
	if limit != 0 {
		m.Limit = &limit
	}
	if swap != 0 {
		m.Swap = &swap
	}
	return &specs.LinuxResources{Memory: m}
}

func TestMemoryV1Order(t *testing.T) {
	const limitFile, memsw = "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	for _, tc := range []struct {
		name  string
		r     *specs.LinuxResources
		files map[string]string
		want  []string
	}{
		// Raising: memsw must grow first, or the kernel refuses a
		// memory limit above the old memsw.
		{"raise", mem(200, 400), map[string]string{limitFile: "100\n", memsw: "100\n"},
			[]string{memsw + "=400", limitFile + "=200"}},
		// Lowering: the memory limit must shrink first.
		{"lower", mem(100, 200), map[string]string{limitFile: "1000\n", memsw: "1000\n"},
			[]string{limitFile + "=100", memsw + "=200"}},
		{"unlimited swap", mem(100, -1), map[string]string{limitFile: "1000\n", memsw: "1000\n"},
			[]string{memsw + "=-1", limitFile + "=100"}},
		// -1 without swap means both unlimited, where memsw exists.
		{"unlimited", mem(-1, 0), map[string]string{limitFile: "100\n", memsw: "100\n"},
			[]string{memsw + "=-1", limitFile + "=-1"}},
		{"unlimited no swap accounting", mem(-1, 0), map[string]string{limitFile: "100\n"},
			[]string{limitFile + "=-1"}},
		{"limit only", mem(64<<20, 0), nil, []string{limitFile + "=67108864"}},
		{"swap only", mem(0, 300), nil, []string{memsw + "=300"}},
		{"everything else", &specs.LinuxResources{Memory: &specs.LinuxMemory{
			Reservation: ptr[int64](32), KernelTCP: ptr[int64](16), Kernel: ptr[int64](8),
			DisableOOMKiller: ptr(true), Swappiness: ptr[uint64](10), CheckBeforeUpdate: ptr(true),
		}}, map[string]string{"memory.kmem.tcp.limit_in_bytes": "0"}, []string{
			"memory.kmem.tcp.limit_in_bytes=16", "memory.soft_limit_in_bytes=32",
			"memory.oom_control=1", "memory.swappiness=10",
		}},
		// kernelTCP only where the kernel has the file; swappiness -1
		// (as a uint64) means "leave it".
		{"no kmem.tcp", &specs.LinuxResources{Memory: &specs.LinuxMemory{
			KernelTCP: ptr[int64](16), Swappiness: ptr[uint64](math.MaxUint64), DisableOOMKiller: ptr(false),
		}}, nil, nil},
	} {
		f := newFake().with(tc.files)
		if err := setMemoryV1(f, fakeRoot, res(tc.r)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkWrites(t, tc.name, f, tc.want...)
	}
}

func TestMemoryV1Errors(t *testing.T) {
	f := newFake().with(map[string]string{"memory.usage_in_bytes": "5000\n", "memory.max_usage_in_bytes": "6000\n"})
	f.fail["memory.limit_in_bytes"] = unix.EBUSY
	err := setMemoryV1(f, fakeRoot, res(mem(100, 0)))
	if err == nil || !strings.Contains(err.Error(), "unable to set memory limit to 100 (current usage: 5000, peak usage: 6000)") {
		t.Errorf("EBUSY: %v", err)
	}
	wantErrno(t, "EBUSY", err, unix.EBUSY)

	err = setMemoryV1(newFake(), fakeRoot, res(&specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr[uint64](101)}}))
	if err == nil || !strings.Contains(err.Error(), "swappiness") {
		t.Errorf("swappiness 101: %v", err)
	}
	// Both set but the current limit unreadable: nothing is written.
	f = newFake()
	if err := setMemoryV1(f, fakeRoot, res(mem(100, 200))); err == nil {
		t.Error("unreadable memory.limit_in_bytes accepted")
	}
	checkWrites(t, "unreadable", f)
}

// TestErrorNamesControllerFileValue checks the message a user sees for a
// value the kernel refuses.
func TestErrorNamesControllerFileValue(t *testing.T) {
	f := newFake()
	dir := "/sys/fs/cgroup/memory/x"
	f.fail[dir+"/memory.limit_in_bytes=-5"] = unix.EINVAL
	m := &Manager{fs: f, v1: map[string]string{"memory": dir}}
	err := m.setV1(res(mem(-5, 0)))
	want := `cgroup memory: write /sys/fs/cgroup/memory/x/memory.limit_in_bytes "-5": invalid argument`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Controller != "memory" || !errors.Is(err, unix.EINVAL) {
		t.Errorf("error %#v lacks controller or errno", err)
	}
}

func TestCPUV1(t *testing.T) {
	full := &specs.LinuxResources{CPU: &specs.LinuxCPU{
		Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000), Burst: ptr[uint64](1000),
		Idle: ptr[int64](1), RealtimeRuntime: ptr[int64](950000), RealtimePeriod: ptr[uint64](1000000),
		Cpus: "0", Mems: "0", // cpuset's, not written here
	}}
	f := newFake()
	if err := setCPUV1(f, fakeRoot, res(full)); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "full", f, "cpu.shares=512", "cpu.cfs_period_us=100000", "cpu.cfs_burst_us=1000",
		"cpu.cfs_quota_us=50000", "cpu.idle=1", "cpu.rt_period_us=1000000", "cpu.rt_runtime_us=950000")

	// Period and burst refused until the quota is in: retried after it.
	f = newFake()
	f.fail["cpu.cfs_period_us=100000"] = unix.EINVAL
	f.fail["cpu.cfs_burst_us=1000"] = unix.EINVAL
	f.fail["cpu.rt_period_us=1000000"] = unix.EINVAL
	if err := setCPUV1(f, fakeRoot, res(full)); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "retry", f, "cpu.shares=512", "cpu.cfs_quota_us=50000", "cpu.cfs_period_us=100000",
		"cpu.cfs_burst_us=1000", "cpu.idle=1", "cpu.rt_runtime_us=950000", "cpu.rt_period_us=1000000")

	// Without a quota to follow, a refused period is an error.
	f = newFake()
	f.fail["cpu.cfs_period_us"] = unix.EINVAL
	err := setCPUV1(f, fakeRoot, res(&specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr[uint64](1)}}))
	wantErrno(t, "period alone", err, unix.EINVAL)

	// A kernel without burst ignores it.
	f = newFake()
	f.missing["cpu.cfs_burst_us"] = true
	if err := setCPUV1(f, fakeRoot, res(&specs.LinuxResources{CPU: &specs.LinuxCPU{Burst: ptr[uint64](5), Quota: ptr[int64](-1)}})); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "no burst", f, "cpu.cfs_quota_us=-1")

	// The kernel clamps shares; the read-back reports it.
	f = newFake()
	f.script["cpu.shares"] = []string{"262144\n"}
	err = setCPUV1(f, fakeRoot, res(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr[uint64](1 << 20)}}))
	if err == nil || !strings.Contains(err.Error(), "maximum allowed cpu-shares is 262144") {
		t.Errorf("clamped shares: %v", err)
	}
}

func TestPidsV1V2(t *testing.T) {
	for limit, want := range map[int64]string{50: "50", 0: "1", -1: "max"} {
		f := newFake()
		if err := setPids(f, fakeRoot, res(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}})); err != nil {
			t.Fatal(err)
		}
		checkWrites(t, "pids", f, "pids.max="+want)
	}
	f := newFake()
	if err := setPids(f, fakeRoot, res(&specs.LinuxResources{Pids: &specs.LinuxPids{}})); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "pids unset", f)
}

func blockIO() *specs.LinuxResources {
	dev := func(maj, min int64) specs.LinuxBlockIODevice { return specs.LinuxBlockIODevice{Major: maj, Minor: min} }
	return &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
		Weight: ptr[uint16](500), LeafWeight: ptr[uint16](200),
		WeightDevice: []specs.LinuxWeightDevice{
			{LinuxBlockIODevice: dev(8, 0), Weight: ptr[uint16](300)},
			{LinuxBlockIODevice: dev(8, 16), LeafWeight: ptr[uint16](100)},
		},
		ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 1}},
		ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 2}},
		ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 3}},
		ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 4}},
	}}
}

func TestBlkioV1(t *testing.T) {
	throttles := []string{
		"blkio.throttle.read_bps_device=8:0 1", "blkio.throttle.write_bps_device=8:0 2",
		"blkio.throttle.read_iops_device=8:0 3", "blkio.throttle.write_iops_device=8:0 4",
	}
	f := newFake().with(map[string]string{"blkio.weight": "100"})
	if err := setBlkioV1(f, fakeRoot, res(blockIO())); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "cfq", f, append([]string{"blkio.weight=500", "blkio.leaf_weight=200",
		"blkio.weight_device=8:0 300", "blkio.leaf_weight_device=8:16 100"}, throttles...)...)
	// Without CFQ only BFQ's files take weights.
	f = newFake()
	if err := setBlkioV1(f, fakeRoot, res(blockIO())); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "bfq", f, append([]string{"blkio.bfq.weight=500", "blkio.leaf_weight=200",
		"blkio.bfq.weight_device=8:0 300", "blkio.leaf_weight_device=8:16 100"}, throttles...)...)
}

func TestHugetlbNetRdma(t *testing.T) {
	r := &specs.LinuxResources{
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 30}, {Pagesize: "1GB", Limit: 1 << 31}},
		Network: &specs.LinuxNetwork{ClassID: ptr[uint32](0x100001),
			Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}, {Name: "lo", Priority: 1}}},
		Rdma: map[string]specs.LinuxRdma{
			"mlx5_1": {HcaHandles: ptr[uint32](3), HcaObjects: ptr[uint32](10000)},
			"a":      {HcaObjects: ptr[uint32](7)},
		},
	}
	f := newFake()
	if err := setHugetlbV1(f, fakeRoot, res(r)); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "hugetlb", f, "hugetlb.2MB.limit_in_bytes=1073741824", "hugetlb.2MB.rsvd.limit_in_bytes=1073741824",
		"hugetlb.1GB.limit_in_bytes=2147483648", "hugetlb.1GB.rsvd.limit_in_bytes=2147483648")
	// A kernel without reservation limits: tried once, then skipped.
	f = newFake()
	f.missing["hugetlb.2MB.rsvd.limit_in_bytes"] = true
	if err := setHugetlbV1(f, fakeRoot, res(r)); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "no rsvd", f, "hugetlb.2MB.limit_in_bytes=1073741824", "hugetlb.1GB.limit_in_bytes=2147483648")

	f = newFake()
	for _, set := range []func(cgfs, string, *resources) error{setNetCls, setNetPrio, setRdma} {
		if err := set(f, fakeRoot, res(r)); err != nil {
			t.Fatal(err)
		}
	}
	checkWrites(t, "net/rdma", f, "net_cls.classid=1048577", "net_prio.ifpriomap=eth0 5", "net_prio.ifpriomap=lo 1",
		"rdma.max=a hca_object=7", "rdma.max=mlx5_1 hca_handle=3 hca_object=10000")
}

func TestDevicesV1Writes(t *testing.T) {
	if userns.RunningInUserNS() {
		t.Skip("device rules are not written in a user namespace")
	}
	r, err := newResources(defaultSpecResources(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake().with(map[string]string{"devices.list": "c 1:3 rwm\n"})
	if err := setDevicesV1(f, fakeRoot, r); err != nil {
		t.Fatal(err)
	}
	want := []string{"devices.deny=a"}
	for _, d := range wantDefaults {
		want = append(want, "devices.allow="+d)
	}
	checkWrites(t, "defaults", f, want...)
	// An allow-all list the kernel did not take is detected.
	r, _ = newResources(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}, nil)
	r.devices = r.devices[:1]
	f = newFake().with(map[string]string{"devices.list": "c 1:3 rwm\n"})
	if err := setDevicesV1(f, fakeRoot, r); err == nil || !strings.Contains(err.Error(), "target mode") {
		t.Errorf("mode mismatch: %v", err)
	}
	checkWrites(t, "allow all", f, "devices.allow=a")
}

// TestSetV1Full runs a whole resource set through the v1 manager: which
// controllers are written, in runc's subsystem order, and that a limit for
// a hierarchy the host lacks is refused by name before anything is made.
func TestSetV1Full(t *testing.T) {
	dirs := map[string]string{}
	for _, s := range v1Subsystems {
		dirs[s.name] = fakeRoot + "/" + strings.TrimPrefix(s.name, "name=")
	}
	r := &specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: ptr[int64](64 << 20)},
		CPU:            &specs.LinuxCPU{Shares: ptr[uint64](512), Cpus: "0-1", Mems: "0"},
		Pids:           &specs.LinuxPids{Limit: ptr[int64](50)},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}},
		Network:        &specs.LinuxNetwork{ClassID: ptr[uint32](1)},
	}
	f := newFake()
	f.missing["hugetlb/hugetlb.2MB.rsvd.limit_in_bytes"] = true
	m := &Manager{fs: f, v1: dirs}
	if err := m.setV1(res(r)); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "full", f, "cpuset/cpuset.cpus=0-1", "cpuset/cpuset.mems=0",
		"memory/memory.limit_in_bytes=67108864", "cpu/cpu.shares=512", "pids/pids.max=50",
		"hugetlb/hugetlb.2MB.limit_in_bytes=2097152", "net_cls/net_cls.classid=1")

	delete(dirs, "net_cls")
	err := m.checkV1(res(r))
	var ce *Error
	if !errors.As(err, &ce) || ce.Controller != "net_cls" || !errors.Is(err, ErrNotMounted) {
		t.Errorf("missing net_cls: %v", err)
	}
	// Best-effort settings do not need their hierarchy.
	delete(dirs, "memory")
	if err := m.checkV1(res(&specs.LinuxResources{Memory: &specs.LinuxMemory{KernelTCP: ptr[int64](1)}})); err != nil {
		t.Errorf("kernelTCP alone: %v", err)
	}
	err = m.checkV1(res(&specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}))
	if !errors.As(err, &ce) || ce.Controller != "unified" || !strings.Contains(err.Error(), "cgroup v2") {
		t.Errorf("unified on v1: %v", err)
	}
}
