package plan

import (
	"fmt"
	"slices"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/spec"
)

// Step kinds for the runtime-spec 1.1 to 1.3 process and linux fields
// runc 1.5 applies. They live in this file so that the front ends being
// built beside config.json's (sandbox, bwrap) merge without conflict.
const (
	OpScheduler   Op = "scheduler"    // Sched: sched_setattr on the calling thread
	OpIOPriority  Op = "io-priority"  // Flags: the ioprio value (class<<13 | level), Value its text
	OpMemPolicy   Op = "mempolicy"    // Flags: mode|flags, Data: the node mask, Value its text
	OpCPUAffinity Op = "cpu-affinity" // Data: the CPU mask (nil: every CPU), Value what it is for
)

// SchedAttr is sched_setattr(2)'s struct, as the child passes it on.
type SchedAttr = unix.SchedAttr

// schedPolicies and schedFlags are the kernel's numbers (runc's
// configs.ToSchedAttr).
var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2, specs.SchedBatch: 3,
	specs.SchedISO: 4, specs.SchedIdle: 5, specs.SchedDeadline: 6,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: 0x01, specs.SchedFlagReclaim: 0x02, specs.SchedFlagDLOverrun: 0x04,
	specs.SchedFlagKeepPolicy: 0x08, specs.SchedFlagKeepParams: 0x10,
	specs.SchedFlagUtilClampMin: 0x20, specs.SchedFlagUtilClampMax: 0x40,
}

var ioprioClasses = map[specs.IOPriorityClass]uint64{
	specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3,
}

var mpolModes = map[specs.MemoryPolicyModeType]uint64{
	specs.MpolDefault: unix.MPOL_DEFAULT, specs.MpolPreferred: unix.MPOL_PREFERRED,
	specs.MpolBind: unix.MPOL_BIND, specs.MpolInterleave: unix.MPOL_INTERLEAVE,
	specs.MpolLocal: unix.MPOL_LOCAL, specs.MpolPreferredMany: unix.MPOL_PREFERRED_MANY,
	specs.MpolWeightedInterleave: unix.MPOL_WEIGHTED_INTERLEAVE,
}

var mpolFlags = map[specs.MemoryPolicyFlagType]uint64{
	specs.MpolFStaticNodes: unix.MPOL_F_STATIC_NODES, specs.MpolFRelativeNodes: unix.MPOL_F_RELATIVE_NODES,
	specs.MpolFNumaBalancing: unix.MPOL_F_NUMA_BALANCING,
}

// attributes compiles what runc 1.5 applies to every process, the init and
// exec's alike, right after no_new_privs and before the early seccomp
// filter and the user switch (its standard_init and setns_init): the
// scheduler, the I/O priority, the personality (exec only: the init's is
// compiled where it always was), the NUMA memory policy. All of them are
// per thread and survive execve, so the child sets them on the thread
// that execs. Still root with every capability, as in runc: a negative
// nice or SCHED_FIFO needs CAP_SYS_NICE, which the container's own set
// may lack.
func attributes(proc *specs.Process, lx *specs.Linux, exec bool) ([]Step, error) {
	var out []Step
	// The CPU affinity first: runc sets the final one from outside right
	// after the process joined its cgroup, before its init code runs, so
	// that a seccomp profile cannot stand in the way; here the child sets
	// it on its own thread (the one that execs) before any filter loads.
	aff, err := finalAffinity(proc.ExecCPUAffinity, exec)
	if err != nil {
		return nil, err
	}
	if aff != nil {
		out = append(out, *aff)
	}
	if sc := proc.Scheduler; sc != nil {
		pol, ok := schedPolicies[sc.Policy]
		if !ok {
			return nil, fmt.Errorf("process.scheduler.policy %q: unknown", sc.Policy)
		}
		attr := &SchedAttr{
			Size: unix.SizeofSchedAttr, Policy: pol, Nice: sc.Nice, Priority: uint32(sc.Priority),
			Runtime: sc.Runtime, Deadline: sc.Deadline, Period: sc.Period,
		}
		for _, f := range sc.Flags {
			v, ok := schedFlags[f]
			if !ok {
				return nil, fmt.Errorf("process.scheduler.flags: unknown flag %q", f)
			}
			attr.Flags |= v
		}
		out = append(out, Step{Op: OpScheduler, Value: string(sc.Policy), Sched: attr, FD: NoFD})
	}
	if io := proc.IOPriority; io != nil {
		class, ok := ioprioClasses[io.Class]
		if !ok {
			return nil, fmt.Errorf("process.ioPriority.class %q: unknown", io.Class)
		}
		out = append(out, Step{Op: OpIOPriority, Value: fmt.Sprintf("%s %d", io.Class, io.Priority), Flags: class<<13 | uint64(io.Priority), FD: NoFD})
	}
	if lx == nil {
		return out, nil
	}
	if p := lx.Personality; p != nil && exec {
		st, err := personality(p)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if mp := lx.MemoryPolicy; mp != nil {
		mode, ok := mpolModes[mp.Mode]
		if !ok {
			return nil, fmt.Errorf("linux.memoryPolicy.mode %q: unknown", mp.Mode)
		}
		for _, f := range mp.Flags {
			v, ok := mpolFlags[f]
			if !ok {
				return nil, fmt.Errorf("linux.memoryPolicy.flags: unknown flag %q", f)
			}
			mode |= v
		}
		nodes, err := spec.CPUSet(mp.Nodes)
		if err != nil {
			return nil, fmt.Errorf("linux.memoryPolicy.nodes %q: %w", mp.Nodes, err)
		}
		st := Step{Op: OpMemPolicy, Value: fmt.Sprintf("%s %s", mp.Mode, mp.Nodes), Flags: mode, FD: NoFD}
		if nodes != nil {
			st.Data = cpuSetBytes(nodes)
		}
		out = append(out, st)
	}
	return out, nil
}

func personality(p *specs.LinuxPersonality) (Step, error) {
	st := Step{Op: OpPersonality, Value: string(p.Domain), FD: NoFD}
	switch p.Domain {
	case specs.PerLinux:
		st.Flags = 0x0000
	case specs.PerLinux32:
		st.Flags = 0x0008
	default:
		return Step{}, fmt.Errorf("linux.personality.domain %q: unknown", p.Domain)
	}
	return st, nil
}

// cpuSetBytes is a CPUSet as the bit mask sched_setaffinity and
// set_mempolicy read: bit n of byte n/8 is CPU (or node) n.
func cpuSetBytes(s *unix.CPUSet) []byte {
	out := make([]byte, 1024/8)
	for i := 0; i < len(out)*8; i++ {
		if s.IsSet(i) {
			out[i/8] |= 1 << (i % 8)
		}
	}
	return out
}

// CPUSetFromBytes is cpuSetBytes' inverse, for the child.
func CPUSetFromBytes(b []byte) *unix.CPUSet {
	s := new(unix.CPUSet)
	for i := 0; i < len(b)*8; i++ {
		if b[i/8]&(1<<(i%8)) != 0 {
			s.Set(i)
		}
	}
	return s
}

// AffinityMasks parses process.execCPUAffinity (validated already).
func AffinityMasks(a *specs.CPUAffinity) (initial, final *unix.CPUSet, err error) {
	if a == nil {
		return nil, nil, nil
	}
	if initial, err = spec.CPUSet(a.Initial); err != nil {
		return nil, nil, fmt.Errorf("process.execCPUAffinity.initial %q: %w", a.Initial, err)
	}
	if final, err = spec.CPUSet(a.Final); err != nil {
		return nil, nil, fmt.Errorf("process.execCPUAffinity.final %q: %w", a.Final, err)
	}
	return initial, final, nil
}

// finalAffinity is what the user's process runs with: it gets
// execCPUAffinity.final, or, with no affinity configured at all, every CPU
// its cpuset allows, so that it never inherits the affinity hako itself
// was started with (runc 1.4's tryResetCPUAffinity, for the init always,
// for exec when neither initial nor final is set). With only initial set,
// the process keeps initial, as in runc.
func finalAffinity(a *specs.CPUAffinity, exec bool) (*Step, error) {
	initial, final, err := AffinityMasks(a)
	if err != nil {
		return nil, err
	}
	if !exec {
		initial, final = nil, nil
	}
	switch {
	case final != nil:
		return &Step{Op: OpCPUAffinity, Value: "final " + a.Final, Data: cpuSetBytes(final), FD: NoFD}, nil
	case initial != nil:
		return nil, nil
	default:
		return &Step{Op: OpCPUAffinity, Value: "reset", FD: NoFD}, nil
	}
}

// ForExecWith is ForExec for a container whose config also sets linux
// fields that every process gets (personality, memoryPolicy).
func ForExecWith(proc *specs.Process, lx *specs.Linux, filter *security.Seccomp, preserveFds int) (*Plan, error) {
	return forExec(proc, lx, filter, preserveFds)
}

// Unapplied lists the mount options that runc 1.5 applies and hako does
// not yet: refused by name rather than dropped, so that nobody believes
// them in force. features leaves them out. (Empty since tmpcopyup is
// applied; kept for the next one.)
var Unapplied = map[string]string{}

func refuseUnapplied(i int, m specs.Mount) error {
	for _, o := range m.Options {
		if why, ok := Unapplied[o]; ok {
			return fmt.Errorf("mounts[%d].options: %q is not supported by hako (%s)", i, o, why)
		}
		// runc only looks at tmpcopyup for a tmpfs and drops it on
		// anything else; refused here, as an option accepted and
		// ignored is worse than an error.
		if o == "tmpcopyup" && (m.Type != "tmpfs" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")) {
			return fmt.Errorf("mounts[%d].options: \"tmpcopyup\" applies only to a tmpfs (type %q)", i, m.Type)
		}
	}
	return nil
}

// MemoryPolicyModes and MemoryPolicyFlags are what the compiler maps, for
// features: listed because they are applied.
func MemoryPolicyModes() []string { return sortedKeys(mpolModes) }

// MemoryPolicyFlags: see MemoryPolicyModes.
func MemoryPolicyFlags() []string { return sortedKeys(mpolFlags) }

func sortedKeys[K ~string, V any](m map[K]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}
