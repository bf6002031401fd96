package cgroups

import (
	"fmt"
	"math"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// resources is what a manager applies: the spec's resources as given, plus
// the device rules to install (already converted and validated, so that a
// bad rule fails New rather than half a Create).
type resources struct {
	spec *specs.LinuxResources // never nil
	// devices is the complete rule list, runc's defaults included;
	// skipDevices leaves the kernel's device rules as they are (Update
	// without devices, and every later command).
	devices     []devRule
	skipDevices bool
}

// newResources converts r for a container's initial configuration: the
// spec's device rules followed by runc's defaults. specDevices is
// linux.devices, which runc consults to de-duplicate its defaults.
func newResources(r *specs.LinuxResources, specDevices []specs.LinuxDevice) (*resources, error) {
	res, err := convertResources(r)
	if err != nil {
		return nil, err
	}
	res.devices = append(res.devices, defaultDeviceRules(specDevices)...)
	return res, nil
}

// updateResources converts r for Update. Device rules are never touched,
// as runc's update (which sets SkipDevices) never touches them: they are
// fixed at create, and a hook or plugin (a GPU runtime, say) may have added
// rules of its own that a rewrite from r would drop. So r.Devices is taken
// as runc takes it, whatever decodes, and ignored.
func updateResources(r *specs.LinuxResources) (*resources, error) {
	if r == nil {
		r = &specs.LinuxResources{}
	}
	return &resources{spec: r, skipDevices: true}, nil
}

// convertResources validates and converts the spec's own device rules.
func convertResources(r *specs.LinuxResources) (*resources, error) {
	if r == nil {
		r = &specs.LinuxResources{}
	}
	res := &resources{spec: r}
	for i, d := range r.Devices {
		rule, err := deviceRule(i, d)
		if err != nil {
			return nil, err
		}
		res.devices = append(res.devices, rule)
	}
	return res, nil
}

// The spec's optional numbers are pointers, but runc (specconv) copies them
// into plain fields where 0 means "unset", and its cgroup code only writes
// non-zero values. These helpers give the same reading, so that an explicit
// 0 behaves exactly as under runc.
func num[T ~int64 | ~uint64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

func u16(p *uint16) uint16 {
	if p == nil {
		return 0
	}
	return *p
}

func u32(p *uint32) uint32 {
	if p == nil {
		return 0
	}
	return *p
}

// cpuSharesToWeight is runc's ConvertCPUSharesToCgroupV2Value: a quadratic
// in log2(shares) mapping v1's [2, 262144] onto v2's [1, 10000] with the
// defaults (1024 and 100) matching, so that a spec written for v1 keeps
// its relative weights on v2. 0 stays "unset".
func cpuSharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares <= 2 {
		return 1
	}
	if shares >= 262144 {
		return 10000
	}
	l := math.Log2(float64(shares))
	exponent := (l*l+125*l)/612.0 - 7.0/34.0
	return uint64(math.Ceil(math.Pow(10, exponent)))
}

// blkioWeightToIOWeight is runc's ConvertBlkIOToIOWeightValue: v1's
// blkio weight range [10, 1000] mapped linearly onto io.weight's
// [1, 10000]. 0 stays "unset".
func blkioWeightToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	return 1 + (uint64(w)-10)*9999/990
}

// swapToV2 is runc's ConvertMemorySwapToCgroupV2Value. The spec's swap is
// v1's memsw, memory plus swap, while v2's memory.swap.max counts swap
// alone, so the limit is subtracted where both are real numbers.
func swapToV2(swap, memory int64) (int64, error) {
	switch {
	case memory == -1 && swap == 0:
		// As on v1: unlimited memory with swap unset means both
		// unlimited.
		return -1, nil
	case swap == -1, swap == 0:
		return swap, nil
	case memory == -1:
		return swap, nil
	case memory == 0:
		return 0, fmt.Errorf("unable to set swap limit without memory limit")
	case memory < 0:
		return 0, fmt.Errorf("invalid memory value: %d", memory)
	case swap < memory:
		return 0, fmt.Errorf("memory+swap limit should be >= memory limit")
	}
	return swap - memory, nil
}

// v2Num is how runc writes a number to a cgroup2 .max/.low/.high file:
// -1, v1's "unlimited", is "max", and 0 means "do not write" ("").
func v2Num(v int64) string {
	switch v {
	case 0:
		return ""
	case -1:
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// pidsMax is runc's pids.max value for both versions: a non-positive limit
// is "max", except 0, which systemd cannot express and runc therefore maps
// to 1 with either driver; hako does the same so that a spec means the same
// under both runtimes.
func pidsMax(limit int64) string {
	switch {
	case limit > 0:
		return strconv.FormatInt(limit, 10)
	case limit == 0:
		return "1"
	}
	return "max"
}

// Which controllers a resource set needs. Each must cover every field the
// matching setter reads, since a controller nobody needs is not written.

func memoryV1Set(r *specs.LinuxResources) bool {
	m := r.Memory
	return m != nil && (num(m.Limit) != 0 || num(m.Reservation) != 0 || num(m.Swap) != 0 ||
		(m.DisableOOMKiller != nil && *m.DisableOOMKiller) ||
		(m.Swappiness != nil && int64(*m.Swappiness) != -1) || num(m.KernelTCP) != 0)
}

// memoryV1Needed leaves out kernelTCP, which is only honoured where the
// kernel still has the file and so cannot make a missing memory hierarchy
// an error.
func memoryV1Needed(r *specs.LinuxResources) bool {
	if !memoryV1Set(r) {
		return false
	}
	m := *r.Memory
	m.KernelTCP = nil
	return memoryV1Set(&specs.LinuxResources{Memory: &m})
}

func memoryV2Set(r *specs.LinuxResources) bool {
	m := r.Memory
	return m != nil && (num(m.Limit) != 0 || num(m.Reservation) != 0 || num(m.Swap) != 0)
}

func cpuV1Set(r *specs.LinuxResources) bool {
	c := r.CPU
	return c != nil && (num(c.Shares) != 0 || num(c.Quota) != 0 || num(c.Period) != 0 || c.Burst != nil ||
		num(c.RealtimeRuntime) != 0 || num(c.RealtimePeriod) != 0 || c.Idle != nil)
}

// cpuV2Set leaves out the real-time settings: cgroup2 has no RT bandwidth
// files, and runc's fs2 ignores them too.
func cpuV2Set(r *specs.LinuxResources) bool {
	c := r.CPU
	return c != nil && (num(c.Shares) != 0 || num(c.Quota) != 0 || num(c.Period) != 0 || c.Burst != nil || c.Idle != nil)
}

func cpusetSet(r *specs.LinuxResources) bool {
	return r.CPU != nil && (r.CPU.Cpus != "" || r.CPU.Mems != "")
}

func pidsSet(r *specs.LinuxResources) bool { return r.Pids != nil && r.Pids.Limit != nil }

func blkioV1Set(r *specs.LinuxResources) bool {
	b := r.BlockIO
	return b != nil && (u16(b.LeafWeight) != 0 || ioV2Set(r))
}

// ioV2Set leaves out the leaf weight, which cgroup2 does not have.
func ioV2Set(r *specs.LinuxResources) bool {
	b := r.BlockIO
	return b != nil && (u16(b.Weight) != 0 || len(b.WeightDevice) > 0 ||
		len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
		len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0)
}

func hugetlbSet(r *specs.LinuxResources) bool { return len(r.HugepageLimits) > 0 }

func netClsSet(r *specs.LinuxResources) bool { return r.Network != nil && u32(r.Network.ClassID) != 0 }

func netPrioSet(r *specs.LinuxResources) bool {
	return r.Network != nil && len(r.Network.Priorities) > 0
}

func rdmaSet(r *specs.LinuxResources) bool { return len(r.Rdma) > 0 }
