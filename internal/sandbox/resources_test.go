package sandbox

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

func cgroupChecks(sb *Sandbox) string {
	var out []string
	for _, c := range sb.Checks {
		if c.Kind == receipt.KindCgroup {
			out = append(out, c.Property+" "+c.Path+"="+c.Value)
		}
	}
	return strings.Join(out, "; ")
}

func TestResourcesCompileToSpec(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		in := &Input{Args: []string{"sh"}, Cwd: "/", CgroupV2: v2, MemTotal: 8 << 30}
		sb, err := compileIn(t, in, "MemoryMax=512M", "CPUQuota=12.5%", "CPUWeight=50")
		if err != nil {
			t.Fatal(err)
		}
		r := sb.Spec.Linux.Resources
		if *r.Memory.Limit != 512<<20 || *r.CPU.Quota != 12500 || *r.CPU.Period != 100000 {
			t.Errorf("v2=%v: %+v %+v", v2, r.Memory, r.CPU)
		}
		if sb.SplitTasks() {
			t.Errorf("split without TasksMax")
		}
		want := "MemoryMax memory:memory.limit_in_bytes=536870912; CPUQuota cpu:cpu.cfs_quota_us cpu.cfs_period_us=12500 100000; CPUWeight cpu:cpu.shares=512"
		if v2 {
			want = "MemoryMax memory.max=536870912; CPUQuota cpu.max=12500 100000; CPUWeight cpu.weight=50"
			if r.Unified["cpu.weight"] != "50" || r.CPU.Shares != nil {
				t.Errorf("v2 weight: %v %v", r.Unified, r.CPU.Shares)
			}
		} else if *r.CPU.Shares != 512 {
			t.Errorf("v1 shares %d", *r.CPU.Shares)
		}
		if got := cgroupChecks(sb); got != want {
			t.Errorf("v2=%v checks\n got %s\nwant %s", v2, got, want)
		}
	}
}

// TasksMax splits the sandbox's cgroup: the checks read the limits from
// the init's cgroup's parent and COMMAND's sibling cgroup.
func TestTasksMaxSplits(t *testing.T) {
	in := &Input{Args: []string{"sh"}, Cwd: "/", CgroupV2: true}
	sb, err := compileIn(t, in, "TasksMax=7", "MemoryMax=25%", "MemoryMax=1G", "MemoryHigh=infinity")
	if err == nil {
		err = fmt.Errorf("no error")
	}
	if !strings.Contains(err.Error(), "the host's memory size is not known") {
		t.Errorf("percentage without MemTotal: %v", err)
	}
	in = &Input{Args: []string{"sh"}, Cwd: "/", CgroupV2: true, MemTotal: 4 << 30}
	if sb, err = compileIn(t, in, "TasksMax=7", "MemoryMax=25%", "MemoryHigh=infinity"); err != nil {
		t.Fatal(err)
	}
	if !sb.SplitTasks() || *sb.Spec.Linux.Resources.Pids.Limit != 7 {
		t.Errorf("pids %+v", sb.Spec.Linux.Resources.Pids)
	}
	if got, want := cgroupChecks(sb), "TasksMax ../command/pids.max=7; MemoryMax ../memory.max=1073741824"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	// infinity resets: no limit left, no cgroup.
	in = &Input{Args: []string{"sh"}, Cwd: "/", CgroupV2: true}
	if sb, err = compileIn(t, in, "TasksMax=7", "TasksMax=infinity"); err != nil || sb.HasResources() || sb.Spec.Linux.Resources != nil || cgroupChecks(sb) != "" {
		t.Errorf("reset: %v %+v %q", err, sb.Spec.Linux.Resources, cgroupChecks(sb))
	}
}

func TestResourceValuesRefused(t *testing.T) {
	for _, c := range []struct {
		prop, want string
		v2         bool
	}{
		{"MemoryMax=lots", `"lots": not a size (K, M, G, T), a percentage or infinity`, false},
		{"MemoryMax=0", `"0": must be above 0`, false},
		{"MemoryHigh=1G", "memory.high exists only in cgroup v2", false},
		{"TasksMax=10%", "a percentage of the system's task limit is not supported", false},
		{"TasksMax=0", "must be a number above 0 or infinity", false},
		{"CPUQuota=50", "must be a percentage", false},
		{"CPUQuota=0%", "must be above 0%", false},
		{"CPUQuota=1.234%", "at most two decimals", false},
		{"CPUWeight=0", "must be a weight 1..10000", true},
		{"CPUWeight=idle", "not supported (cpu.idle)", true},
		{"IPAddressDeny=any", "cgroup BPF", false},
	} {
		_, err := compileIn(t, &Input{Args: []string{"sh"}, Cwd: "/", CgroupV2: c.v2, MemTotal: 1 << 30}, c.prop)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "property "+strings.Split(c.prop, "=")[0]) {
			t.Errorf("%s: %v, want %q", c.prop, err, c.want)
		}
	}
}
