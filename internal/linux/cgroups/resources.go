package cgroups

import (
	"fmt"
	"maps"

	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// allowedDevices mirrors runc's specconv.AllowedDevices. runc appends these
// to every container's device rules and users cannot opt out; containers
// written for runc rely on them (e.g. /dev/null without a config entry), so
// we keep the list and its order identical.
var allowedDevices = []devices.Device{
	// mknod for any device; access is still gated by the rules below.
	{Rule: devices.Rule{Type: devices.CharDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "m", Allow: true}},
	{Rule: devices.Rule{Type: devices.BlockDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "m", Allow: true}},
	{Path: "/dev/null", FileMode: 0o666, Rule: devices.Rule{Type: devices.CharDevice, Major: 1, Minor: 3, Permissions: "rwm", Allow: true}},
	{Path: "/dev/random", FileMode: 0o666, Rule: devices.Rule{Type: devices.CharDevice, Major: 1, Minor: 8, Permissions: "rwm", Allow: true}},
	{Path: "/dev/full", FileMode: 0o666, Rule: devices.Rule{Type: devices.CharDevice, Major: 1, Minor: 7, Permissions: "rwm", Allow: true}},
	{Path: "/dev/tty", FileMode: 0o666, Rule: devices.Rule{Type: devices.CharDevice, Major: 5, Minor: 0, Permissions: "rwm", Allow: true}},
	{Path: "/dev/zero", FileMode: 0o666, Rule: devices.Rule{Type: devices.CharDevice, Major: 1, Minor: 5, Permissions: "rwm", Allow: true}},
	{Path: "/dev/urandom", FileMode: 0o666, Rule: devices.Rule{Type: devices.CharDevice, Major: 1, Minor: 9, Permissions: "rwm", Allow: true}},
	// /dev/pts/*
	{Rule: devices.Rule{Type: devices.CharDevice, Major: 136, Minor: devices.Wildcard, Permissions: "rwm", Allow: true}},
	// /dev/ptmx
	{Rule: devices.Rule{Type: devices.CharDevice, Major: 5, Minor: 2, Permissions: "rwm", Allow: true}},
}

// defaultDeviceRules returns fresh copies of the default rules, dropping
// those whose device node the spec lists itself. runc does this
// de-duplication (the spec entry takes priority), which means such a device
// is only accessible if resources.devices allows it; we match that.
func defaultDeviceRules(specDevices []specs.LinuxDevice) []*devices.Rule {
	rules := make([]*devices.Rule, 0, len(allowedDevices))
next:
	for _, ad := range allowedDevices {
		if ad.Path != "" {
			for _, sd := range specDevices {
				if sd.Path == ad.Path {
					continue next
				}
			}
		}
		rule := ad.Rule
		rules = append(rules, &rule)
	}
	return rules
}

// ToLibResources converts the spec's resources to the library's form the
// way runc's specconv.CreateCgroupConfig does, including runc's default
// device rules appended after the spec's. r may be nil.
func ToLibResources(r *specs.LinuxResources) (*cgroups.Resources, error) {
	return ToLibResourcesWithDevices(r, nil)
}

// ToLibResourcesWithDevices is ToLibResources for callers that also know
// linux.devices, which runc consults to de-duplicate its default rules.
func ToLibResourcesWithDevices(r *specs.LinuxResources, specDevices []specs.LinuxDevice) (*cgroups.Resources, error) {
	res, err := convertResources(r)
	if err != nil {
		return nil, err
	}
	res.Devices = append(res.Devices, defaultDeviceRules(specDevices)...)
	return res, nil
}

// convertResources converts everything except the default device rules,
// which only belong in a container's initial configuration.
func convertResources(r *specs.LinuxResources) (*cgroups.Resources, error) {
	c := &cgroups.Resources{}
	if r == nil {
		return c, nil
	}
	for i, d := range r.Devices {
		rule, err := deviceRule(i, d)
		if err != nil {
			return nil, err
		}
		c.Devices = append(c.Devices, rule)
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			c.Memory = *m.Limit
		}
		if m.Reservation != nil {
			c.MemoryReservation = *m.Reservation
		}
		if m.Swap != nil {
			c.MemorySwap = *m.Swap
		}
		// Kernel and KernelTCP are deliberately dropped: kernel memory
		// accounting limits are deprecated in the kernel and the library
		// has no field for them; runc only warns about them too.
		c.MemorySwappiness = m.Swappiness
		if m.DisableOOMKiller != nil {
			c.OomKillDisable = *m.DisableOOMKiller
		}
		if m.CheckBeforeUpdate != nil {
			c.MemoryCheckBeforeUpdate = *m.CheckBeforeUpdate
		}
	}
	if cpu := r.CPU; cpu != nil {
		if cpu.Shares != nil {
			c.CpuShares = *cpu.Shares
			// fs2 only reads CpuWeight and leaves the conversion to us.
			c.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(c.CpuShares)
		}
		if cpu.Quota != nil {
			c.CpuQuota = *cpu.Quota
		}
		c.CpuBurst = cpu.Burst
		if cpu.Period != nil {
			c.CpuPeriod = *cpu.Period
		}
		if cpu.RealtimeRuntime != nil {
			c.CpuRtRuntime = *cpu.RealtimeRuntime
		}
		if cpu.RealtimePeriod != nil {
			c.CpuRtPeriod = *cpu.RealtimePeriod
		}
		c.CpusetCpus = cpu.Cpus
		c.CpusetMems = cpu.Mems
		c.CPUIdle = cpu.Idle
	}
	if r.Pids != nil {
		c.PidsLimit = r.Pids.Limit
	}
	if b := r.BlockIO; b != nil {
		convertBlockIO(b, c)
	}
	for _, l := range r.HugepageLimits {
		c.HugetlbLimit = append(c.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: l.Pagesize, Limit: l.Limit})
	}
	if len(r.Rdma) > 0 {
		c.Rdma = make(map[string]cgroups.LinuxRdma, len(r.Rdma))
		for k, v := range r.Rdma {
			c.Rdma[k] = cgroups.LinuxRdma{HcaHandles: v.HcaHandles, HcaObjects: v.HcaObjects}
		}
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			c.NetClsClassid = *n.ClassID
		}
		for _, p := range n.Priorities {
			c.NetPrioIfpriomap = append(c.NetPrioIfpriomap, &cgroups.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
		}
	}
	if len(r.Unified) > 0 {
		// Copied so that later edits of the spec cannot change what we apply.
		c.Unified = maps.Clone(r.Unified)
	}
	return c, nil
}

func deviceRule(i int, d specs.LinuxDeviceCgroup) (*devices.Rule, error) {
	major, minor := int64(devices.Wildcard), int64(devices.Wildcard)
	if d.Major != nil {
		major = *d.Major
	}
	if d.Minor != nil {
		minor = *d.Minor
	}
	if d.Access == "" {
		return nil, fmt.Errorf("device access at %d field cannot be empty", i)
	}
	var t devices.Type
	switch d.Type {
	case "", "a":
		t = devices.WildcardDevice
	case "b":
		t = devices.BlockDevice
	case "c":
		t = devices.CharDevice
	default:
		return nil, fmt.Errorf("invalid cgroup device type %q", d.Type)
	}
	return &devices.Rule{Type: t, Major: major, Minor: minor, Permissions: devices.Permissions(d.Access), Allow: d.Allow}, nil
}

func convertBlockIO(b *specs.LinuxBlockIO, c *cgroups.Resources) {
	if b.Weight != nil {
		c.BlkioWeight = *b.Weight
	}
	if b.LeafWeight != nil {
		c.BlkioLeafWeight = *b.LeafWeight
	}
	for _, wd := range b.WeightDevice {
		var weight, leaf uint16
		if wd.Weight != nil {
			weight = *wd.Weight
		}
		if wd.LeafWeight != nil {
			leaf = *wd.LeafWeight
		}
		c.BlkioWeightDevice = append(c.BlkioWeightDevice, cgroups.NewWeightDevice(wd.Major, wd.Minor, weight, leaf))
	}
	throttle := func(in []specs.LinuxThrottleDevice) []*cgroups.ThrottleDevice {
		var out []*cgroups.ThrottleDevice
		for _, td := range in {
			out = append(out, cgroups.NewThrottleDevice(td.Major, td.Minor, td.Rate))
		}
		return out
	}
	c.BlkioThrottleReadBpsDevice = throttle(b.ThrottleReadBpsDevice)
	c.BlkioThrottleWriteBpsDevice = throttle(b.ThrottleWriteBpsDevice)
	c.BlkioThrottleReadIOPSDevice = throttle(b.ThrottleReadIOPSDevice)
	c.BlkioThrottleWriteIOPSDevice = throttle(b.ThrottleWriteIOPSDevice)
}
