package container

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// UpdateFlags are runc's update flags, as the CLI parsed them; each set
// flag overrides the -r file's value. Turning them into resources lives
// here so that the CLI only registers flags.
type UpdateFlags struct {
	Resources                                               string
	BlkioWeight, CpuShares, CpuPeriod, CpuRtPeriod          string
	CpuQuota, CpuRtRuntime, Memory, MemoryReservation       string
	MemorySwap, PidsLimit, CpusetCpus, CpusetMems, CpuBurst string
	L3Cache, MemBw, CpuIdle                                 string
}

// Build turns the flags into the resources to apply: the -r file (or
// stdin for "-") first, then each set flag over it, as runc does. The
// Intel RDT schemata are not resources: Runtime.UpdateFromFlags takes them.
func (f *UpdateFlags) Build() (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{}
	if f.Resources != "" {
		var data []byte
		var err error
		if f.Resources == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(f.Resources)
		}
		if err != nil {
			return nil, fmt.Errorf("--resources: %w", err)
		}
		if err := json.Unmarshal(data, r); err != nil {
			return nil, fmt.Errorf("--resources %s: %w", f.Resources, err)
		}
	}
	var firstErr error
	i64 := func(flagName, v string, ram bool) *int64 {
		if v == "" || firstErr != nil {
			return nil
		}
		n, err := parseSize(v, ram)
		if err != nil {
			firstErr = fmt.Errorf("--%s %q: %w", flagName, v, err)
			return nil
		}
		return &n
	}
	u64 := func(flagName, v string) *uint64 {
		p := i64(flagName, v, false)
		if p == nil {
			return nil
		}
		if *p < 0 {
			firstErr = fmt.Errorf("--%s %q: must not be negative", flagName, v)
			return nil
		}
		u := uint64(*p)
		return &u
	}
	setMem := func() *specs.LinuxMemory {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		return r.Memory
	}
	setCPU := func() *specs.LinuxCPU {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		return r.CPU
	}
	if v := i64("memory", f.Memory, true); v != nil {
		setMem().Limit = v
	}
	if v := i64("memory-reservation", f.MemoryReservation, true); v != nil {
		setMem().Reservation = v
	}
	if v := i64("memory-swap", f.MemorySwap, true); v != nil {
		setMem().Swap = v
	}
	if v := u64("cpu-share", f.CpuShares); v != nil {
		setCPU().Shares = v
	}
	if v := u64("cpu-period", f.CpuPeriod); v != nil {
		setCPU().Period = v
	}
	if v := i64("cpu-quota", f.CpuQuota, false); v != nil {
		setCPU().Quota = v
	}
	if v := u64("cpu-burst", f.CpuBurst); v != nil {
		setCPU().Burst = v
	}
	if v := i64("cpu-idle", f.CpuIdle, false); v != nil {
		if *v != 0 && *v != 1 {
			return nil, fmt.Errorf("--cpu-idle %q: must be 0 or 1", f.CpuIdle)
		}
		setCPU().Idle = v
	}
	if v := u64("cpu-rt-period", f.CpuRtPeriod); v != nil {
		setCPU().RealtimePeriod = v
	}
	if v := i64("cpu-rt-runtime", f.CpuRtRuntime, false); v != nil {
		setCPU().RealtimeRuntime = v
	}
	if f.CpusetCpus != "" {
		setCPU().Cpus = f.CpusetCpus
	}
	if f.CpusetMems != "" {
		setCPU().Mems = f.CpusetMems
	}
	if v := i64("pids-limit", f.PidsLimit, false); v != nil {
		r.Pids = &specs.LinuxPids{Limit: v}
	}
	if v := u64("blkio-weight", f.BlkioWeight); v != nil {
		w := uint16(*v)
		if *v > 1000 {
			return nil, fmt.Errorf("--blkio-weight %q: must be 10-1000", f.BlkioWeight)
		}
		r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	}
	return r, firstErr
}

// parseSize parses a number, with ram a size such as 64m or 1G (what runc
// accepts through docker's units.RAMInBytes); -1 means unlimited.
func parseSize(s string, ram bool) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if !ram {
		return 0, fmt.Errorf("not a number")
	}
	ls := strings.ToLower(strings.TrimSuffix(strings.ToLower(s), "b"))
	mult := int64(1)
	switch {
	case strings.HasSuffix(ls, "k"):
		mult = 1 << 10
	case strings.HasSuffix(ls, "m"):
		mult = 1 << 20
	case strings.HasSuffix(ls, "g"):
		mult = 1 << 30
	case strings.HasSuffix(ls, "t"):
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("not a size")
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(ls[:len(ls)-1]), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size")
	}
	return int64(n * float64(mult)), nil
}
