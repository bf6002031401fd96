package cgroups

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The v1 controllers' Set code. Each function is runc's fs.<X>Group.Set
// (github.com/opencontainers/cgroups/fs) for the spec's resources, with the
// same files, values and order, so that a container is limited exactly as
// runc's cgroupfs driver would limit it.

// v1Subsystem is one v1 hierarchy a container gets a directory in.
type v1Subsystem struct {
	name string
	// isSet reports whether r has something for set to write; it must
	// cover every field set reads, since set is skipped otherwise.
	isSet func(*resources) bool
	// needed reports whether a missing hierarchy is an error; nil means
	// isSet. It differs where a setting is best effort anyway.
	needed func(*resources) bool
	set    func(f cgfs, dir string, r *resources) error // nil: directory only
}

func (s *v1Subsystem) isNeeded(r *resources) bool {
	if s.needed != nil {
		return s.needed(r)
	}
	return s.isSet(r)
}

func specPred(p func(*specs.LinuxResources) bool) func(*resources) bool {
	return func(r *resources) bool { return p(r.spec) }
}

func never(*resources) bool { return false }

// v1Subsystems is runc's subsystem list, in its order: cpuset first so
// that parents get cpus and mems before anything else, and the order in
// which errors are found.
var v1Subsystems = []v1Subsystem{
	{name: "cpuset", isSet: specPred(cpusetSet), set: setCpusetV1},
	{name: "devices", isSet: func(r *resources) bool { return !r.skipDevices }, set: setDevicesV1},
	{name: "memory", isSet: specPred(memoryV1Set), needed: specPred(memoryV1Needed), set: setMemoryV1},
	{name: "cpu", isSet: specPred(cpuV1Set), set: setCPUV1},
	{name: "cpuacct", isSet: never},
	{name: "pids", isSet: specPred(pidsSet), set: setPids},
	{name: "blkio", isSet: specPred(blkioV1Set), set: setBlkioV1},
	{name: "hugetlb", isSet: specPred(hugetlbSet), set: setHugetlbV1},
	{name: "net_cls", isSet: specPred(netClsSet), set: setNetCls},
	{name: "net_prio", isSet: specPred(netPrioSet), set: setNetPrio},
	{name: "perf_event", isSet: never},
	{name: "freezer", isSet: never}, // only Freeze and Thaw write it
	{name: "rdma", isSet: specPred(rdmaSet), set: setRdma},
	{name: "name=systemd", isSet: never},
	{name: "misc", isSet: never},
}

// setCpusetV1 writes the requested cpus and mems. Create has already put
// them there (initCpuset must, before the copy-down to empty levels), so
// this only matters for Update.
func setCpusetV1(f cgfs, dir string, r *resources) error {
	return setCpusetFiles(f, dir, r.spec.CPU, cpusetFile(dir, "cpus"), cpusetFile(dir, "mems"))
}

func setCpusetFiles(f cgfs, dir string, c *specs.LinuxCPU, cpusFile, memsFile string) error {
	if c == nil {
		return nil
	}
	if c.Cpus != "" {
		if err := f.write(dir, cpusFile, c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := f.write(dir, memsFile, c.Mems); err != nil {
			return err
		}
	}
	return nil
}

const (
	memswLimitFile = "memory.memsw.limit_in_bytes"
	memLimitFile   = "memory.limit_in_bytes"
)

func setMemoryV1(f cgfs, dir string, r *resources) error {
	m := r.spec.Memory
	if m == nil {
		return nil
	}
	if err := setMemoryAndSwapV1(f, dir, num(m.Limit), num(m.Swap)); err != nil {
		return err
	}
	// Kernel memory limits are deprecated (and gone from recent kernels),
	// so runc ignores them; the TCP buffer limit still works where the
	// kernel has the file, and is written there as older runc did.
	if v := num(m.KernelTCP); v != 0 && f.exists(dir, "memory.kmem.tcp.limit_in_bytes") {
		if err := f.write(dir, "memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(v, 10)); err != nil {
			return err
		}
	}
	if v := num(m.Reservation); v != 0 {
		if err := f.write(dir, "memory.soft_limit_in_bytes", strconv.FormatInt(v, 10)); err != nil {
			return err
		}
	}
	if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
		if err := f.write(dir, "memory.oom_control", "1"); err != nil {
			return err
		}
	}
	// A uint64 of -1 is how some callers say "leave it".
	if m.Swappiness == nil || int64(*m.Swappiness) == -1 {
		return nil
	}
	if *m.Swappiness > 100 {
		return fmt.Errorf("invalid memory swappiness value: %d (valid range is 0-100)", *m.Swappiness)
	}
	return f.write(dir, "memory.swappiness", strconv.FormatUint(*m.Swappiness, 10))
}

// setMemoryAndSwapV1 is runc's setMemoryAndSwap. The kernel refuses a
// memory limit above memsw and a memsw below the memory limit, so the
// order depends on the direction of the change: when memsw grows beyond
// the current limit (or becomes unlimited) it goes first, otherwise the
// memory limit does.
func setMemoryAndSwapV1(f cgfs, dir string, limit, swap int64) error {
	// Unlimited memory with swap unset means unlimited memsw too, where
	// the kernel has swap accounting at all.
	if limit == -1 && swap == 0 && f.exists(dir, memswLimitFile) {
		swap = -1
	}
	if limit != 0 && swap != 0 {
		cur, err := readUint(f, dir, memLimitFile)
		if err != nil {
			return err
		}
		if swap == -1 || cur < uint64(swap) {
			if err := setSwapV1(f, dir, swap); err != nil {
				return err
			}
			return setMemoryLimitV1(f, dir, limit)
		}
	}
	if err := setMemoryLimitV1(f, dir, limit); err != nil {
		return err
	}
	return setSwapV1(f, dir, swap)
}

func setMemoryLimitV1(f cgfs, dir string, limit int64) error {
	if limit == 0 {
		return nil
	}
	err := f.write(dir, memLimitFile, strconv.FormatInt(limit, 10))
	if !errors.Is(err, unix.EBUSY) {
		return err
	}
	// EBUSY: the limit is below what the cgroup uses now, which the
	// bare errno does not tell.
	usage, uerr := readUint(f, dir, "memory.usage_in_bytes")
	peak, perr := readUint(f, dir, "memory.max_usage_in_bytes")
	if uerr != nil || perr != nil {
		return err
	}
	return fmt.Errorf("unable to set memory limit to %d (current usage: %d, peak usage: %d): %w", limit, usage, peak, err)
}

func setSwapV1(f cgfs, dir string, swap int64) error {
	if swap == 0 {
		return nil
	}
	return f.write(dir, memswLimitFile, strconv.FormatInt(swap, 10))
}

// setCPUV1 is runc's CpuGroup.Set.
func setCPUV1(f cgfs, dir string, r *resources) error {
	c := r.spec.CPU
	if c == nil {
		return nil
	}
	if shares := num(c.Shares); shares != 0 {
		if err := f.write(dir, "cpu.shares", strconv.FormatUint(shares, 10)); err != nil {
			return err
		}
		// The kernel clamps shares silently; read back to report it.
		got, err := readUint(f, dir, "cpu.shares")
		if err != nil {
			return err
		}
		if shares > got {
			return fmt.Errorf("the maximum allowed cpu-shares is %d", got)
		} else if shares < got {
			return fmt.Errorf("the minimum allowed cpu-shares is %d", got)
		}
	}
	quota := num(c.Quota)
	// A smaller period can be refused (EINVAL) while the old quota over
	// the new period exceeds the parent's; likewise a larger burst. When
	// a quota follows, such a write is retried after it.
	var period string
	if p := num(c.Period); p != 0 {
		period = strconv.FormatUint(p, 10)
		if err := f.write(dir, "cpu.cfs_period_us", period); err != nil {
			if !errors.Is(err, unix.EINVAL) || quota == 0 {
				return err
			}
		} else {
			period = ""
		}
	}
	var burst string
	if c.Burst != nil {
		burst = strconv.FormatUint(*c.Burst, 10)
		if err := f.write(dir, "cpu.cfs_burst_us", burst); err != nil {
			switch {
			case errors.Is(err, unix.ENOENT):
				burst = "" // kernel without burst: ignored, as runc does
			case !errors.Is(err, unix.EINVAL) || quota == 0:
				return err
			}
		} else {
			burst = ""
		}
	}
	if quota != 0 {
		if err := f.write(dir, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)); err != nil {
			return err
		}
		if period != "" {
			if err := f.write(dir, "cpu.cfs_period_us", period); err != nil {
				return err
			}
		}
		if burst != "" {
			if err := f.write(dir, "cpu.cfs_burst_us", burst); err != nil {
				return err
			}
		}
	}
	if c.Idle != nil {
		if err := f.write(dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			return err
		}
	}
	return setRtSched(f, dir, c)
}

// setRtSched writes the real-time bandwidth. It must be in place before a
// SCHED_RR/FIFO process joins (the join fails otherwise), which is why
// Create also calls it right after making the directory. Period and
// runtime depend on each other: a period the kernel refuses is retried
// after the runtime.
func setRtSched(f cgfs, dir string, c *specs.LinuxCPU) error {
	if c == nil {
		return nil
	}
	runtime := num(c.RealtimeRuntime)
	var period string
	if p := num(c.RealtimePeriod); p != 0 {
		period = strconv.FormatUint(p, 10)
		if err := f.write(dir, "cpu.rt_period_us", period); err != nil {
			if !errors.Is(err, unix.EINVAL) || runtime == 0 {
				return err
			}
		} else {
			period = ""
		}
	}
	if runtime != 0 {
		if err := f.write(dir, "cpu.rt_runtime_us", strconv.FormatInt(runtime, 10)); err != nil {
			return err
		}
		if period != "" {
			if err := f.write(dir, "cpu.rt_period_us", period); err != nil {
				return err
			}
		}
	}
	return nil
}

// setPids is the same for both versions.
func setPids(f cgfs, dir string, r *resources) error {
	if !pidsSet(r.spec) {
		return nil
	}
	return f.write(dir, "pids.max", pidsMax(*r.spec.Pids.Limit))
}

func devString(major, minor int64, v string) string {
	return strconv.FormatInt(major, 10) + ":" + strconv.FormatInt(minor, 10) + " " + v
}

// setBlkioV1 is runc's BlkioGroup.Set. Kernels without CFQ (5.0 and
// later, or blk-mq) only have BFQ's weight files, under other names.
func setBlkioV1(f cgfs, dir string, r *resources) error {
	b := r.spec.BlockIO
	if b == nil {
		return nil
	}
	weightFile, weightDevFile := "blkio.weight", "blkio.weight_device"
	if !f.exists(dir, weightFile) {
		weightFile, weightDevFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	if w := u16(b.Weight); w != 0 {
		if err := f.write(dir, weightFile, strconv.FormatUint(uint64(w), 10)); err != nil {
			return err
		}
	}
	if w := u16(b.LeafWeight); w != 0 {
		if err := f.write(dir, "blkio.leaf_weight", strconv.FormatUint(uint64(w), 10)); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if w := u16(wd.Weight); w != 0 {
			if err := f.write(dir, weightDevFile, devString(wd.Major, wd.Minor, strconv.FormatUint(uint64(w), 10))); err != nil {
				return err
			}
		}
		if w := u16(wd.LeafWeight); w != 0 {
			if err := f.write(dir, "blkio.leaf_weight_device", devString(wd.Major, wd.Minor, strconv.FormatUint(uint64(w), 10))); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, td := range t.devs {
			if err := f.write(dir, t.file, devString(td.Major, td.Minor, strconv.FormatUint(td.Rate, 10))); err != nil {
				return err
			}
		}
	}
	return nil
}

// setHugetlbV1 writes hugetlb.<size>.limit_in_bytes, and the same value to
// the reservation limit where the kernel has one (5.7+), so that pages
// reserved by mmap but not yet faulted count too.
func setHugetlbV1(f cgfs, dir string, r *resources) error {
	return setHugetlb(f, dir, r.spec.HugepageLimits, ".limit_in_bytes")
}

func setHugetlb(f cgfs, dir string, limits []specs.LinuxHugepageLimit, suffix string) error {
	skipRsvd := false
	for _, l := range limits {
		prefix := "hugetlb." + l.Pagesize
		val := strconv.FormatUint(l.Limit, 10)
		if err := f.write(dir, prefix+suffix, val); err != nil {
			return err
		}
		if skipRsvd {
			continue
		}
		if err := f.write(dir, prefix+".rsvd"+suffix, val); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				return err
			}
			skipRsvd = true
		}
	}
	return nil
}

func setNetCls(f cgfs, dir string, r *resources) error {
	if !netClsSet(r.spec) {
		return nil
	}
	return f.write(dir, "net_cls.classid", strconv.FormatUint(uint64(*r.spec.Network.ClassID), 10))
}

func setNetPrio(f cgfs, dir string, r *resources) error {
	if r.spec.Network == nil {
		return nil
	}
	for _, p := range r.spec.Network.Priorities {
		if err := f.write(dir, "net_prio.ifpriomap", p.Name+" "+strconv.FormatUint(uint64(p.Priority), 10)); err != nil {
			return err
		}
	}
	return nil
}

// setRdma writes one rdma.max line per device (both versions), in device
// order so that a failure is reproducible.
func setRdma(f cgfs, dir string, r *resources) error {
	devs := make([]string, 0, len(r.spec.Rdma))
	for d := range r.spec.Rdma {
		devs = append(devs, d)
	}
	slices.Sort(devs)
	for _, d := range devs {
		l := r.spec.Rdma[d]
		line := d
		if l.HcaHandles != nil {
			line += " hca_handle=" + strconv.FormatUint(uint64(*l.HcaHandles), 10)
		}
		if l.HcaObjects != nil {
			line += " hca_object=" + strconv.FormatUint(uint64(*l.HcaObjects), 10)
		}
		if err := f.write(dir, "rdma.max", line); err != nil {
			return err
		}
	}
	return nil
}
