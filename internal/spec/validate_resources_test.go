package spec

import (
	"regexp"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestValidateResources(t *testing.T) {
	res := func(f func(r *specs.LinuxResources)) func(*specs.Spec) {
		return func(s *specs.Spec) { f(s.Linux.Resources) }
	}
	mem := func(m specs.LinuxMemory) func(*specs.Spec) {
		return res(func(r *specs.LinuxResources) { r.Memory = &m })
	}
	cpu := func(c specs.LinuxCPU) func(*specs.Spec) {
		return res(func(r *specs.LinuxResources) { r.CPU = &c })
	}
	blkio := func(b specs.LinuxBlockIO) func(*specs.Spec) {
		return res(func(r *specs.LinuxResources) { r.BlockIO = &b })
	}
	devRule := func(d specs.LinuxDeviceCgroup) func(*specs.Spec) {
		return res(func(r *specs.LinuxResources) { r.Devices = append(r.Devices, d) })
	}
	runValidateCases(t, []validateCase{
		{"nil resources", func(s *specs.Spec) { s.Linux.Resources = nil }, ""},
		// devices
		{"device rule", devRule(specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(-1)), Access: "rw"}), ""},
		{"device type", devRule(specs.LinuxDeviceCgroup{Type: "p", Access: "r"}), `linux.resources.devices[1].type: unknown device type "p" (want a, b or c)`},
		{"device access", devRule(specs.LinuxDeviceCgroup{Type: "a", Access: "rwx"}), `linux.resources.devices[1].access: invalid access "rwx" (only r, w and m are allowed)`},
		{"device major", devRule(specs.LinuxDeviceCgroup{Type: "b", Major: ptr(int64(-2))}), "linux.resources.devices[1]: major and minor must be -1 (any) or >= 0"},
		// memory
		{"memory", mem(specs.LinuxMemory{Limit: ptr(int64(1 << 30)), Reservation: ptr(int64(-1)), Swap: ptr(int64(2 << 30)), Swappiness: ptr(uint64(100))}), ""},
		{"swap unlimited", mem(specs.LinuxMemory{Limit: ptr(int64(1 << 30)), Swap: ptr(int64(-1))}), ""},
		{"swap equal", mem(specs.LinuxMemory{Limit: ptr(int64(1 << 30)), Swap: ptr(int64(1 << 30))}), ""},
		{"limit unlimited swap set", mem(specs.LinuxMemory{Limit: ptr(int64(-1)), Swap: ptr(int64(1 << 20))}), ""},
		{"limit", mem(specs.LinuxMemory{Limit: ptr(int64(-2))}), "linux.resources.memory.limit: must be -1 (unlimited) or >= 0, got -2"},
		{"reservation", mem(specs.LinuxMemory{Reservation: ptr(int64(-5))}), "linux.resources.memory.reservation: must be -1 (unlimited) or >= 0, got -5"},
		{"swap", mem(specs.LinuxMemory{Swap: ptr(int64(-3))}), "linux.resources.memory.swap: must be -1 (unlimited) or >= 0, got -3"},
		{"kernelTCP", mem(specs.LinuxMemory{KernelTCP: ptr(int64(-3))}), "linux.resources.memory.kernelTCP: must be -1 (unlimited) or >= 0, got -3"},
		{"swap below limit", mem(specs.LinuxMemory{Limit: ptr(int64(2048)), Swap: ptr(int64(1024))}),
			"linux.resources.memory.swap: must be >= memory.limit (2048) as it includes memory, got 1024"},
		{"swappiness", mem(specs.LinuxMemory{Swappiness: ptr(uint64(101))}), "linux.resources.memory.swappiness: must be in [0, 100], got 101"},
		// cpu
		{"cpu", cpu(specs.LinuxCPU{Shares: ptr(uint64(1024)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)),
			RealtimeRuntime: ptr(int64(-1)), Cpus: "0-3,5", Mems: "0", Idle: ptr(int64(1))}), ""},
		{"quota unlimited", cpu(specs.LinuxCPU{Quota: ptr(int64(-1))}), ""},
		{"quota", cpu(specs.LinuxCPU{Quota: ptr(int64(-2))}), "linux.resources.cpu.quota: must be -1 (unlimited) or > 0, got -2"},
		{"quota tiny", cpu(specs.LinuxCPU{Quota: ptr(int64(500))}), "linux.resources.cpu.quota: must be at least 1000 (1ms), got 500"},
		{"period zero is unset", cpu(specs.LinuxCPU{Period: ptr(uint64(0))}), ""},
		{"period", cpu(specs.LinuxCPU{Period: ptr(uint64(100))}), "linux.resources.cpu.period: must be in [1000, 1000000], got 100"},
		{"period high", cpu(specs.LinuxCPU{Period: ptr(uint64(2000000))}), "linux.resources.cpu.period: must be in [1000, 1000000], got 2000000"},
		{"rt runtime", cpu(specs.LinuxCPU{RealtimeRuntime: ptr(int64(-2))}), "linux.resources.cpu.realtimeRuntime: must be -1 (unlimited) or >= 0, got -2"},
		{"idle", cpu(specs.LinuxCPU{Idle: ptr(int64(2))}), "linux.resources.cpu.idle: must be 0 or 1, got 2"},
		{"cpus stride", cpu(specs.LinuxCPU{Cpus: "0-7:2/4"}), ""},
		{"cpus", cpu(specs.LinuxCPU{Cpus: "1-x"}), `linux.resources.cpu.cpus: invalid CPU list "1-x"`},
		{"cpus trailing comma", cpu(specs.LinuxCPU{Cpus: "1,"}), `linux.resources.cpu.cpus: invalid CPU list "1,"`},
		{"mems", cpu(specs.LinuxCPU{Mems: "0 1"}), `linux.resources.cpu.mems: invalid memory node list "0 1"`},
		// pids
		{"pids", res(func(r *specs.LinuxResources) { r.Pids = &specs.LinuxPids{Limit: ptr(int64(-1))} }), ""},
		{"pids zero", res(func(r *specs.LinuxResources) { r.Pids = &specs.LinuxPids{Limit: ptr(int64(0))} }), ""},
		{"pids negative", res(func(r *specs.LinuxResources) { r.Pids = &specs.LinuxPids{Limit: ptr(int64(-2))} }),
			"linux.resources.pids.limit: must be -1 (unlimited) or >= 0, got -2"},
		// blockIO
		{"blkio", blkio(specs.LinuxBlockIO{Weight: ptr(uint16(10)), LeafWeight: ptr(uint16(0)),
			WeightDevice: []specs.LinuxWeightDevice{{Weight: ptr(uint16(1000))}}}), ""},
		{"blkio weight", blkio(specs.LinuxBlockIO{Weight: ptr(uint16(5))}), "linux.resources.blockIO.weight: must be in [10, 1000], got 5"},
		{"blkio leafWeight", blkio(specs.LinuxBlockIO{LeafWeight: ptr(uint16(2000))}), "linux.resources.blockIO.leafWeight: must be in [10, 1000], got 2000"},
		{"blkio device weight", blkio(specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{}, {Weight: ptr(uint16(1))}}}),
			"linux.resources.blockIO.weightDevice[1].weight: must be in [10, 1000], got 1"},
		{"blkio device leafWeight", blkio(specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LeafWeight: ptr(uint16(1001))}}}),
			"linux.resources.blockIO.weightDevice[0].leafWeight: must be in [10, 1000], got 1001"},
		// hugetlb, unified
		{"hugepages", res(func(r *specs.LinuxResources) {
			r.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB"}, {Pagesize: "1GB"}}
		}), ""},
		{"hugepage size", res(func(r *specs.LinuxResources) { r.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2X"}} }),
			`linux.resources.hugepageLimits[0].pageSize: invalid page size "2X" (want e.g. "2MB")`},
		{"unified", res(func(r *specs.LinuxResources) { r.Unified = map[string]string{"memory.high": "1G"} }), ""},
		{"unified slash", res(func(r *specs.LinuxResources) { r.Unified = map[string]string{"../memory.max": "1"} }),
			`linux.resources.unified["../memory.max"]: must be a cgroup file name (no slashes)`},
	})
}

func TestValidateSeccomp(t *testing.T) {
	sc := func(f func(sc *specs.LinuxSeccomp)) func(*specs.Spec) {
		return func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{
				DefaultAction: specs.ActErrno,
				Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"read", "write"}, Action: specs.ActAllow},
					{Names: []string{"personality"}, Action: specs.ActAllow,
						Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpEqualTo}}},
				},
			}
			if f != nil {
				f(s.Linux.Seccomp)
			}
		}
	}
	notify := func(sc *specs.LinuxSeccomp) {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{Names: []string{"mount"}, Action: specs.ActNotify})
		sc.ListenerPath = "/run/agent.sock"
	}
	runValidateCases(t, []validateCase{
		{"ok", sc(nil), ""},
		{"all actions and flags", sc(func(sc *specs.LinuxSeccomp) {
			for _, a := range seccompActions {
				sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{Names: []string{"getpid"}, Action: a})
			}
			sc.Flags = slices.Clone(seccompFlags)
			sc.Architectures = slices.Clone(seccompArches)
			sc.ListenerPath = "/run/agent.sock"
		}), ""},
		{"notify", sc(notify), ""},
		{"no default", sc(func(sc *specs.LinuxSeccomp) { sc.DefaultAction = "" }), "linux.seccomp.defaultAction: must not be empty"},
		{"bad default", sc(func(sc *specs.LinuxSeccomp) { sc.DefaultAction = "SCMP_ACT_NOPE" }), `linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"`},
		{"notify default", sc(func(sc *specs.LinuxSeccomp) { sc.DefaultAction = specs.ActNotify; sc.ListenerPath = "/x" }),
			"linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as the default action"},
		{"arch", sc(func(sc *specs.LinuxSeccomp) { sc.Architectures[1] = "SCMP_ARCH_Z80" }), `linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z80"`},
		{"flag", sc(func(sc *specs.LinuxSeccomp) { sc.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_LOG", "FAST"} }), `linux.seccomp.flags[1]: unknown flag "FAST"`},
		{"no names", sc(func(sc *specs.LinuxSeccomp) { sc.Syscalls[1].Names = nil }), "linux.seccomp.syscalls[1].names: must not be empty"},
		{"empty name", sc(func(sc *specs.LinuxSeccomp) { sc.Syscalls[0].Names[1] = "" }), "linux.seccomp.syscalls[0].names[1]: must not be empty"},
		{"action", sc(func(sc *specs.LinuxSeccomp) { sc.Syscalls[0].Action = "ALLOW" }), `linux.seccomp.syscalls[0].action: unknown action "ALLOW"`},
		// write is notifiable: the listener fd is out before anything writes.
		{"notify write", sc(func(sc *specs.LinuxSeccomp) { sc.Syscalls[0].Action = specs.ActNotify; sc.ListenerPath = "/x" }), ""},
		{"notify sendmsg", sc(func(sc *specs.LinuxSeccomp) {
			sc.Syscalls[0].Names[1] = "sendmsg"
			sc.Syscalls[0].Action = specs.ActNotify
			sc.ListenerPath = "/x"
		}), "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall: the seccomp listener fd is passed on with it"},
		{"arg index", sc(func(sc *specs.LinuxSeccomp) { sc.Syscalls[1].Args[0].Index = 6 }), "linux.seccomp.syscalls[1].args[0].index: must be less than 6, got 6"},
		{"arg op", sc(func(sc *specs.LinuxSeccomp) { sc.Syscalls[1].Args[0].Op = "SCMP_CMP_XOR" }), `linux.seccomp.syscalls[1].args[0].op: unknown operator "SCMP_CMP_XOR"`},
		{"notify without listener", sc(func(sc *specs.LinuxSeccomp) { notify(sc); sc.ListenerPath = "" }),
			"linux.seccomp.listenerPath: must be set when an action is SCMP_ACT_NOTIFY"},
		// As runc: a listener with nothing to listen to gets no fd.
		{"listener without notify", sc(func(sc *specs.LinuxSeccomp) { sc.ListenerPath = "/run/agent.sock" }), ""},
	})
}

// validPageSize replaced a regexp compiled at every start; the regexp is
// the oracle.
func TestValidPageSizeMatchesRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[1-9][0-9]*[KMGTPE]B$`)
	for _, s := range []string{"", "B", "KB", "2MB", "1GB", "64KB", "10TB", "0MB", "02MB", "2mB", "2Mb", "2M", "2XB", "2MBB", "1 GB", "123456PB", "9EB", "-2MB"} {
		if got, want := validPageSize(s), re.MatchString(s); got != want {
			t.Errorf("validPageSize(%q) = %v, the regexp says %v", s, got, want)
		}
	}
}

func FuzzValidPageSize(f *testing.F) {
	re := regexp.MustCompile(`^[1-9][0-9]*[KMGTPE]B$`)
	f.Add("2MB")
	f.Fuzz(func(t *testing.T, s string) {
		if validPageSize(s) != re.MatchString(s) {
			t.Fatalf("validPageSize(%q) disagrees with the regexp", s)
		}
	})
}
