package sandbox

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// The resource-control properties (systemd.resource-control(5)) compile to
// the spec's linux.resources, which the runtime's one cgroup manager
// applies, as for any config.json. Each also becomes a receipt check that
// reads the limit back from the cgroup the sandbox's init is in.

// cpuPeriod is systemd's default CPUQuotaPeriodSec= (100ms), in µs.
const cpuPeriod = 100000

func (b *builder) resources() *specs.LinuxResources {
	if b.spec.Linux.Resources == nil {
		b.spec.Linux.Resources = &specs.LinuxResources{}
	}
	return b.spec.Linux.Resources
}

// cgroupCheck records what the receipt reads back for prop: path is
// "CONTROLLER/FILE [FILE...]" on a v1 controller, "FILE" on cgroup2; ""
// drops it (a later assignment wins, as in systemd). finishResources
// turns them into checks once it is known which cgroup holds what.
func (b *builder) cgroupCheck(prop, path, value string) {
	if b.cgChecks == nil {
		b.cgChecks = map[string][2]string{}
	}
	if path == "" {
		delete(b.cgChecks, prop)
		return
	}
	if _, ok := b.cgChecks[prop]; !ok {
		b.cgOrder = append(b.cgOrder, prop)
	}
	b.cgChecks[prop] = [2]string{path, value}
}

// TasksCgroup is the cgroup, below the sandbox's, that COMMAND and its
// descendants run in when TasksMax= is set, with the pids limit; the init
// runs in InitCgroup beside it. The init is hako, whose Go runtime's
// threads are tasks too: under the limit, they would eat into COMMAND's
// count (TasksMax=5 would leave none), and the init would die when a
// fork bomb took the last one. Memory and CPU limits stay on the
// sandbox's cgroup, over both, as systemd puts them on the unit's.
const (
	TasksCgroup = "command"
	InitCgroup  = "init"
)

// SplitTasks reports whether the init and COMMAND get cgroups of their
// own below the sandbox's (TasksMax= is set).
func (sb *Sandbox) SplitTasks() bool {
	r := sb.Spec.Linux.Resources
	return r != nil && r.Pids != nil
}

// finishResources writes the receipt's cgroup checks, as paths relative
// to the cgroup the init is in (InitCgroup when split).
func (b *builder) finishResources() {
	split := b.spec.Linux.Resources != nil && b.spec.Linux.Resources.Pids != nil
	for _, prop := range b.cgOrder {
		c, ok := b.cgChecks[prop]
		if !ok {
			continue
		}
		prefix := ""
		if split {
			prefix = "../"
			if prop == "TasksMax" {
				prefix = "../" + TasksCgroup + "/"
			}
		}
		files := strings.Fields(c[0])
		ctrl, first, v1 := strings.Cut(files[0], "/")
		if v1 {
			files[0] = first
		}
		for i := range files {
			files[i] = prefix + files[i]
		}
		path := strings.Join(files, " ")
		if v1 {
			path = ctrl + ":" + path
		}
		b.check(receipt.Check{Property: prop, Kind: receipt.KindCgroup, Path: path, Value: c[1]})
	}
}

// memoryValue is systemd's parse_size (1024-based K, M, G, T), a
// percentage of the host's memory, or infinity (ok false).
func (b *builder) memoryValue(v string) (n uint64, limited bool, err error) {
	if v == "infinity" {
		return 0, false, nil
	}
	if p, ok := strings.CutSuffix(v, "%"); ok {
		pm, err := permyriad(p)
		if err != nil {
			return 0, false, err
		}
		if pm == 0 || pm > 10000 {
			return 0, false, fmt.Errorf("%q: a percentage above 0%% and at most 100%%", v)
		}
		if b.in.MemTotal == 0 {
			return 0, false, fmt.Errorf("%q: the host's memory size is not known", v)
		}
		hi, lo := bits.Mul64(b.in.MemTotal, pm)
		n, _ := bits.Div64(hi, lo, 10000) // hi < 10000: pm is at most 100.00% of a 64-bit size
		return n, true, nil
	}
	n, err = limitValue(v)
	if err != nil {
		return 0, false, fmt.Errorf("%q: not a size (K, M, G, T), a percentage or infinity", v)
	}
	if n == 0 {
		return 0, false, fmt.Errorf("%q: must be above 0", v)
	}
	return n, true, nil
}

// permyriad parses systemd's percentages with up to two decimals ("12.5")
// as parts per ten thousand.
func permyriad(p string) (uint64, error) {
	whole, frac, _ := strings.Cut(p, ".")
	if len(frac) > 2 {
		return 0, fmt.Errorf("%q: at most two decimals", p+"%")
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err1 := strconv.ParseUint(whole, 10, 32)
	f, err2 := strconv.ParseUint(frac, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q: not a percentage", p+"%")
	}
	return w*100 + f, nil
}

func memoryMax(b *builder, v string) error {
	n, limited, err := b.memoryValue(v)
	if err != nil {
		return err
	}
	r := b.resources()
	if !limited {
		if r.Memory != nil {
			r.Memory.Limit = nil
		}
		b.cgroupCheck("MemoryMax", "", "")
		return nil
	}
	if n > 1<<62 {
		return fmt.Errorf("%q: too large", v)
	}
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	l := int64(n)
	r.Memory.Limit = &l
	if b.in.CgroupV2 {
		b.cgroupCheck("MemoryMax", "memory.max", fmt.Sprint(n))
	} else {
		b.cgroupCheck("MemoryMax", "memory/memory.limit_in_bytes", fmt.Sprint(n))
	}
	return nil
}

// memoryHigh: memory.high exists in cgroup v2 only; systemd ignores it on
// a v1 memory controller, hako refuses.
func memoryHigh(b *builder, v string) error {
	if !b.in.CgroupV2 {
		return fmt.Errorf("memory.high exists only in cgroup v2, and this host's memory controller is cgroup v1 (MemoryMax= works on both)")
	}
	n, limited, err := b.memoryValue(v)
	if err != nil {
		return err
	}
	r := b.resources()
	if !limited {
		delete(r.Unified, "memory.high")
		b.cgroupCheck("MemoryHigh", "", "")
		return nil
	}
	if r.Unified == nil {
		r.Unified = map[string]string{}
	}
	r.Unified["memory.high"] = fmt.Sprint(n)
	b.cgroupCheck("MemoryHigh", "memory.high", fmt.Sprint(n))
	return nil
}

func tasksMax(b *builder, v string) error {
	r := b.resources()
	if v == "infinity" {
		r.Pids = nil
		b.cgroupCheck("TasksMax", "", "")
		return nil
	}
	if strings.HasSuffix(v, "%") {
		return fmt.Errorf("%q: a percentage of the system's task limit is not supported: give a number or infinity", v)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("%q: must be a number above 0 or infinity", v)
	}
	r.Pids = &specs.LinuxPids{Limit: &n}
	if b.in.CgroupV2 {
		b.cgroupCheck("TasksMax", "pids.max", fmt.Sprint(n))
	} else {
		b.cgroupCheck("TasksMax", "pids/pids.max", fmt.Sprint(n))
	}
	return nil
}

// cpuQuota: N% of one CPU per 100ms period, as systemd writes it.
func cpuQuota(b *builder, v string) error {
	p, ok := strings.CutSuffix(v, "%")
	if !ok {
		return fmt.Errorf("%q: must be a percentage (20%%; above 100%% for more than one CPU)", v)
	}
	pm, err := permyriad(p)
	if err != nil {
		return err
	}
	if pm == 0 {
		return fmt.Errorf("%q: must be above 0%%", v)
	}
	// systemd's floor: a quota under 1ms per period is 1ms.
	q := max(int64(pm)*cpuPeriod/10000, 1000)
	r := b.resources()
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	period := uint64(cpuPeriod)
	r.CPU.Quota, r.CPU.Period = &q, &period
	if b.in.CgroupV2 {
		b.cgroupCheck("CPUQuota", "cpu.max", fmt.Sprintf("%d %d", q, period))
	} else {
		b.cgroupCheck("CPUQuota", "cpu/cpu.cfs_quota_us cpu.cfs_period_us", fmt.Sprintf("%d %d", q, period))
	}
	return nil
}

// cpuWeight: cgroup v2's cpu.weight as it is; on a v1 cpu controller
// systemd's conversion to cpu.shares (weight 100 = 1024 shares).
func cpuWeight(b *builder, v string) error {
	if v == "idle" {
		return fmt.Errorf("%q: not supported (cpu.idle): give a weight 1..10000", v)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < 1 || n > 10000 {
		return fmt.Errorf("%q: must be a weight 1..10000", v)
	}
	r := b.resources()
	if b.in.CgroupV2 {
		if r.Unified == nil {
			r.Unified = map[string]string{}
		}
		r.Unified["cpu.weight"] = fmt.Sprint(n)
		b.cgroupCheck("CPUWeight", "cpu.weight", fmt.Sprint(n))
		return nil
	}
	shares := min(max(n*1024/100, 2), 262144)
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	r.CPU.Shares = &shares
	b.cgroupCheck("CPUWeight", "cpu/cpu.shares", fmt.Sprint(shares))
	return nil
}

// HasResources reports whether the sandbox needs a cgroup of its own.
func (sb *Sandbox) HasResources() bool {
	r := sb.Spec.Linux.Resources
	return r != nil && (r.Memory != nil && r.Memory.Limit != nil || r.Pids != nil || r.CPU != nil || len(r.Unified) > 0)
}
