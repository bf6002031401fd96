package cgroups

import (
	"bufio"
	"strconv"
	"strings"

	"github.com/hako-runtime/hako/internal/linux/resctrl"
)

// Stats is runc's stats JSON (types/events.go), which docker and podman
// read from `events --stats`; fields this host cannot fill stay zero.
type Stats struct {
	CPU               CPU                `json:"cpu"`
	CPUSet            CPUSet             `json:"cpuset"`
	Memory            Memory             `json:"memory"`
	Pids              PidsStats          `json:"pids"`
	Blkio             Blkio              `json:"blkio"`
	Hugetlb           map[string]Hugetlb `json:"hugetlb"`
	IntelRdt          resctrl.Stats      `json:"intel_rdt"`
	NetworkInterfaces []struct{}         `json:"network_interfaces"`
}

// CPU is cpu usage and throttling, in nanoseconds.
type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
}

// CPUUsage is cpu time used.
type CPUUsage struct {
	Percpu []uint64 `json:"percpu,omitempty"`
	Total  uint64   `json:"total,omitempty"`
	Kernel uint64   `json:"kernel"`
	User   uint64   `json:"user"`
}

// Throttling is CFS bandwidth throttling.
type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

// CPUSet is the cpuset controller's settings, as runc reports them.
type CPUSet struct {
	CPUs                  []uint16 `json:"cpus,omitempty"`
	CPUExclusive          uint64   `json:"cpu_exclusive"`
	Mems                  []uint16 `json:"mems,omitempty"`
	MemHardwall           uint64   `json:"mem_hardwall"`
	MemExclusive          uint64   `json:"mem_exclusive"`
	MemoryMigrate         uint64   `json:"memory_migrate"`
	MemorySpreadPage      uint64   `json:"memory_spread_page"`
	MemorySpreadSlab      uint64   `json:"memory_spread_slab"`
	MemoryPressure        uint64   `json:"memory_pressure"`
	SchedLoadBalance      uint64   `json:"sched_load_balance"`
	SchedRelaxDomainLevel int64    `json:"sched_relax_domain_level"`
}

// Memory is memory usage in bytes.
type Memory struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage,omitempty"`
	Swap      MemoryEntry       `json:"swap,omitempty"`
	Kernel    MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
}

// MemoryEntry is one memory counter.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// PidsStats is the pids controller.
type PidsStats struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

// Hugetlb is one page size's usage.
type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// Stats reads the container's usage from its cgroups.
func (m *Manager) Stats() (*Stats, error) {
	s := &Stats{Hugetlb: map[string]Hugetlb{}}
	if m.v2 {
		m.statsV2(s, m.unified)
		return s, nil
	}
	if d := m.v1["cpuacct"]; d != "" {
		s.CPU.Usage.Total = m.u(d, "cpuacct.usage")
		for _, f := range strings.Fields(m.str(d, "cpuacct.usage_percpu")) {
			v, _ := strconv.ParseUint(f, 10, 64)
			s.CPU.Usage.Percpu = append(s.CPU.Usage.Percpu, v)
		}
		kv := m.kv(d, "cpuacct.stat")
		// USER_HZ ticks to nanoseconds, as runc converts them.
		s.CPU.Usage.User = kv["user"] * 10_000_000
		s.CPU.Usage.Kernel = kv["system"] * 10_000_000
	}
	if d := m.v1["cpu"]; d != "" {
		kv := m.kv(d, "cpu.stat")
		s.CPU.Throttling = Throttling{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_time"]}
	}
	if d := m.v1["memory"]; d != "" {
		entry := func(prefix string) MemoryEntry {
			return MemoryEntry{
				Limit: m.u(d, prefix+".limit_in_bytes"), Usage: m.u(d, prefix+".usage_in_bytes"),
				Max: m.u(d, prefix+".max_usage_in_bytes"), Failcnt: m.u(d, prefix+".failcnt"),
			}
		}
		s.Memory.Usage = entry("memory")
		s.Memory.Swap = entry("memory.memsw")
		s.Memory.Kernel = entry("memory.kmem")
		s.Memory.KernelTCP = entry("memory.kmem.tcp")
		s.Memory.Raw = m.kv(d, "memory.stat")
		s.Memory.Cache = s.Memory.Raw["cache"]
	}
	if d := m.v1["pids"]; d != "" {
		s.Pids = PidsStats{Current: m.u(d, "pids.current"), Limit: pidsLimit(m.u(d, "pids.max"))}
	}
	if d := m.v1["cpuset"]; d != "" {
		c := &s.CPUSet
		c.CPUs = parseList(m.str(d, "cpuset.cpus"))
		c.Mems = parseList(m.str(d, "cpuset.mems"))
		c.CPUExclusive = m.u(d, "cpuset.cpu_exclusive")
		c.MemHardwall = m.u(d, "cpuset.mem_hardwall")
		c.MemExclusive = m.u(d, "cpuset.mem_exclusive")
		c.MemoryMigrate = m.u(d, "cpuset.memory_migrate")
		c.MemorySpreadPage = m.u(d, "cpuset.memory_spread_page")
		c.MemorySpreadSlab = m.u(d, "cpuset.memory_spread_slab")
		c.MemoryPressure = m.u(d, "cpuset.memory_pressure")
		c.SchedLoadBalance = m.u(d, "cpuset.sched_load_balance")
		c.SchedRelaxDomainLevel, _ = strconv.ParseInt(m.str(d, "cpuset.sched_relax_domain_level"), 10, 64)
	}
	if d := m.v1["hugetlb"]; d != "" {
		m.hugetlbV1(s, d)
	}
	if d := m.v1["blkio"]; d != "" {
		m.blkioV1(s, d)
	}
	// On a hybrid host the cgroup2 tree is not read: runc reports only
	// the v1 hierarchies there (hugetlb:{} when hugetlb lives in cgroup2),
	// and engines parse its output. Whether the files exist in the
	// container's unified directory depends on which runtime last enabled
	// hugetlb in the hybrid root, so reading them would make the output
	// depend on the host's history rather than the container.
	return s, nil
}

func (m *Manager) statsV2(s *Stats, d string) {
	kv := m.kv(d, "cpu.stat")
	s.CPU.Usage = CPUUsage{Total: kv["usage_usec"] * 1000, User: kv["user_usec"] * 1000, Kernel: kv["system_usec"] * 1000}
	s.CPU.Throttling = Throttling{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_usec"] * 1000}
	s.Memory.Raw = m.kv(d, "memory.stat")
	s.Memory.Cache = s.Memory.Raw["file"]
	ev := m.kv(d, "memory.events")
	s.Memory.Usage = MemoryEntry{Usage: m.u(d, "memory.current"), Limit: m.u(d, "memory.max"), Max: m.u(d, "memory.peak"), Failcnt: ev["max"]}
	s.Memory.Swap = MemoryEntry{Usage: m.u(d, "memory.swap.current"), Limit: m.u(d, "memory.swap.max")}
	s.Pids = PidsStats{Current: m.u(d, "pids.current"), Limit: pidsLimit(m.u(d, "pids.max"))}
	c := &s.CPUSet
	c.CPUs = parseList(m.str(d, "cpuset.cpus.effective"))
	c.Mems = parseList(m.str(d, "cpuset.mems.effective"))
	m.hugetlbV2(s, d)
	m.ioV2(s, d)
}

// OOMKills is the number of processes the kernel's OOM killer has killed
// in the container's cgroup (v1 memory.oom_control, v2 memory.events).
func (m *Manager) OOMKills() uint64 {
	if m.v2 {
		return m.kv(m.unified, "memory.events")["oom_kill"]
	}
	if d := m.v1["memory"]; d != "" {
		return m.kv(d, "memory.oom_control")["oom_kill"]
	}
	return 0
}

// pidsLimit reports "max" as 0, as runc does.
func pidsLimit(v uint64) uint64 {
	if v == ^uint64(0) {
		return 0
	}
	return v
}

// parseList expands a cpu or node list such as "0-2,4".
func parseList(s string) []uint16 {
	var out []uint16
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a || b-a > 4096 {
				continue
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, uint16(i))
		}
	}
	return out
}

// u reads a counter, 0 where the file is missing (a controller or
// feature this kernel lacks).
func (m *Manager) u(dir, file string) uint64 {
	v, _ := readUint(m.fs, dir, file)
	return v
}

func (m *Manager) str(dir, file string) string {
	s, _ := m.fs.read(dir, file)
	return strings.TrimSpace(s)
}

// kv reads "key value" lines (memory.stat, cpu.stat, memory.events).
func (m *Manager) kv(dir, file string) map[string]uint64 {
	out := map[string]uint64{}
	data, err := m.fs.read(dir, file)
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}
