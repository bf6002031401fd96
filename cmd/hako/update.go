package main

import "github.com/hako-runtime/hako/internal/container"

func init() {
	register("update", "change a running container's resource limits", updateCmd)
}

func updateCmd(g *globals, args []string) error {
	fs := newFlags("update")
	f := &container.UpdateFlags{}
	// runc's usage texts, so `--help` reads the same.
	str := func(p *string, usage string, names ...string) {
		for _, n := range names {
			fs.StringVar(p, n, "", usage)
		}
	}
	str(&f.Resources, "path to the file containing the resources to update or '-' to read from the standard input", "resources", "r")
	str(&f.BlkioWeight, "Specifies per cgroup weight, range is from 10 to 1000", "blkio-weight")
	str(&f.CpuPeriod, "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default", "cpu-period")
	str(&f.CpuQuota, "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period", "cpu-quota")
	str(&f.CpuBurst, "CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given period", "cpu-burst")
	str(&f.CpuIdle, "set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE", "cpu-idle")
	str(&f.CpuShares, "CPU shares (relative weight vs. other containers)", "cpu-share")
	str(&f.CpuRtPeriod, "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default", "cpu-rt-period")
	str(&f.CpuRtRuntime, "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period", "cpu-rt-runtime")
	str(&f.CpusetCpus, "CPU(s) to use", "cpuset-cpus")
	str(&f.CpusetMems, "Memory node(s) to use", "cpuset-mems")
	str(&f.Memory, "Memory limit (in bytes)", "memory")
	str(&f.MemoryReservation, "Memory reservation or soft_limit (in bytes)", "memory-reservation")
	str(&f.MemorySwap, "Total memory usage (memory + swap); set '-1' to enable unlimited swap", "memory-swap")
	str(&f.PidsLimit, "Maximum number of pids allowed in the container", "pids-limit")
	str(&f.L3Cache, "The string of Intel RDT/CAT L3 cache schema", "l3-cache-schema")
	str(&f.MemBw, "The string of Intel RDT/MBA memory bandwidth schema", "mem-bw-schema")
	rest, err := parse(fs, args, 1, 1, "<container-id>")
	if err != nil {
		return err
	}
	return g.runtime().UpdateFromFlags(rest[0], f)
}
