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
	// runc's usage texts, so `--help` reads the same.
	str := func(p *string, usage string, names ...string) {
		for _, n := range names {
			fs.StringVar(p, n, "", usage)
		}
	}
	str(&f.resources, "path to the file containing the resources to update or '-' to read from the standard input", "resources", "r")
	str(&f.blkioWeight, "Specifies per cgroup weight, range is from 10 to 1000", "blkio-weight")
	str(&f.cpuPeriod, "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default", "cpu-period")
	str(&f.cpuQuota, "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period", "cpu-quota")
	str(&f.cpuBurst, "CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given period", "cpu-burst")
	str(&f.cpuIdle, "set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE", "cpu-idle")
	str(&f.cpuShares, "CPU shares (relative weight vs. other containers)", "cpu-share")
	str(&f.cpuRtPeriod, "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default", "cpu-rt-period")
	str(&f.cpuRtRuntime, "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period", "cpu-rt-runtime")
	str(&f.cpusetCpus, "CPU(s) to use", "cpuset-cpus")
	str(&f.cpusetMems, "Memory node(s) to use", "cpuset-mems")
	str(&f.memory, "Memory limit (in bytes)", "memory")
	str(&f.memoryReservation, "Memory reservation or soft_limit (in bytes)", "memory-reservation")
	str(&f.memorySwap, "Total memory usage (memory + swap); set '-1' to enable unlimited swap", "memory-swap")
	str(&f.pidsLimit, "Maximum number of pids allowed in the container", "pids-limit")
	str(&f.l3Cache, "The string of Intel RDT/CAT L3 cache schema (not supported)", "l3-cache-schema")
	str(&f.memBw, "The string of Intel RDT/MBA memory bandwidth schema (not supported)", "mem-bw-schema")
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
