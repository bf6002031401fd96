package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func init() {
	register("update", "change a running container's resource limits", updateCmd)
}

// updateFlags are runc's; each set flag overrides the -r file's value.
type updateFlags struct {
	resources                                               string
	blkioWeight, cpuShares, cpuPeriod, cpuRtPeriod          string
	cpuQuota, cpuRtRuntime, memory, memoryReservation       string
	memorySwap, pidsLimit, cpusetCpus, cpusetMems, cpuBurst string
	l3Cache, memBw, cpuIdle                                 string
}

func updateCmd(g *globals, args []string) error {
	fs := newFlags("update")
	f := &updateFlags{}
	str := func(p *string, names ...string) {
		for _, n := range names {
			fs.StringVar(p, n, "", "")
		}
	}
	str(&f.resources, "resources", "r")
	str(&f.blkioWeight, "blkio-weight")
	str(&f.cpuPeriod, "cpu-period")
	str(&f.cpuQuota, "cpu-quota")
	str(&f.cpuBurst, "cpu-burst")
	str(&f.cpuIdle, "cpu-idle")
	str(&f.cpuShares, "cpu-share")
	str(&f.cpuRtPeriod, "cpu-rt-period")
	str(&f.cpuRtRuntime, "cpu-rt-runtime")
	str(&f.cpusetCpus, "cpuset-cpus")
	str(&f.cpusetMems, "cpuset-mems")
	str(&f.memory, "memory")
	str(&f.memoryReservation, "memory-reservation")
	str(&f.memorySwap, "memory-swap")
	str(&f.pidsLimit, "pids-limit")
	str(&f.l3Cache, "l3-cache-schema")
	str(&f.memBw, "mem-bw-schema")
	rest, err := parse(fs, args, 1, 1, "<container-id>")
	if err != nil {
		return err
	}
	r, err := f.build(fs)
	if err != nil {
		return err
	}
	return g.runtime().Update(rest[0], r)
}

func (f *updateFlags) build(fs *flag.FlagSet) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{}
	if f.resources != "" {
		var data []byte
		var err error
		if f.resources == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(f.resources)
		}
		if err != nil {
			return nil, fmt.Errorf("--resources: %w", err)
		}
		if err := json.Unmarshal(data, r); err != nil {
			return nil, fmt.Errorf("--resources %s: %w", f.resources, err)
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
	if v := i64("memory", f.memory, true); v != nil {
		setMem().Limit = v
	}
	if v := i64("memory-reservation", f.memoryReservation, true); v != nil {
		setMem().Reservation = v
	}
	if v := i64("memory-swap", f.memorySwap, true); v != nil {
		setMem().Swap = v
	}
	if v := u64("cpu-share", f.cpuShares); v != nil {
		setCPU().Shares = v
	}
	if v := u64("cpu-period", f.cpuPeriod); v != nil {
		setCPU().Period = v
	}
	if v := i64("cpu-quota", f.cpuQuota, false); v != nil {
		setCPU().Quota = v
	}
	if v := u64("cpu-burst", f.cpuBurst); v != nil {
		setCPU().Burst = v
	}
	if v := i64("cpu-idle", f.cpuIdle, false); v != nil {
		if *v != 0 && *v != 1 {
			return nil, fmt.Errorf("--cpu-idle %q: must be 0 or 1", f.cpuIdle)
		}
		setCPU().Idle = v
	}
	if v := u64("cpu-rt-period", f.cpuRtPeriod); v != nil {
		setCPU().RealtimePeriod = v
	}
	if v := i64("cpu-rt-runtime", f.cpuRtRuntime, false); v != nil {
		setCPU().RealtimeRuntime = v
	}
	if f.cpusetCpus != "" {
		setCPU().Cpus = f.cpusetCpus
	}
	if f.cpusetMems != "" {
		setCPU().Mems = f.cpusetMems
	}
	if v := i64("pids-limit", f.pidsLimit, false); v != nil {
		r.Pids = &specs.LinuxPids{Limit: v}
	}
	if v := u64("blkio-weight", f.blkioWeight); v != nil {
		w := uint16(*v)
		if *v > 1000 {
			return nil, fmt.Errorf("--blkio-weight %q: must be 10-1000", f.blkioWeight)
		}
		r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	}
	if f.l3Cache != "" || f.memBw != "" {
		return nil, fmt.Errorf("--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported")
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
