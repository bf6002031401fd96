package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/initproc"
	"github.com/hako-runtime/hako/internal/linux/resctrl"
	"github.com/hako-runtime/hako/internal/plan"
)

// compileOps compiles a config with the given process and linux fields
// and returns the step kinds of the plan.
func compileOps(t *testing.T, mut func(s *specs.Spec)) []plan.Op {
	t.Helper()
	s := &specs.Spec{Version: specs.Version, Process: &specs.Process{Args: []string{"true"}, Cwd: "/"}, Linux: &specs.Linux{}}
	mut(s)
	pl, err := plan.FromSpec(&plan.OCI{Spec: s, Bundle: "/b", Rootfs: "/b/rootfs"})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var ops []plan.Op
	for _, st := range pl.Steps {
		if !initproc.Handles(st.Op) {
			t.Errorf("plan step %s has no applier in the child", st.Op)
		}
		ops = append(ops, st.Op)
	}
	return ops
}

// TestFeaturesTellTheTruth: what `features` lists is compiled into a step
// the child applies; what it leaves out is refused, never dropped.
func TestFeaturesTellTheTruth(t *testing.T) {
	f := buildFeatures()
	for _, m := range f.Linux.MemoryPolicy.Modes {
		ops := compileOps(t, func(s *specs.Spec) {
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MemoryPolicyModeType(m), Flags: []specs.MemoryPolicyFlagType{specs.MemoryPolicyFlagType(f.Linux.MemoryPolicy.Flags[0])}}
		})
		if !slices.Contains(ops, plan.OpMemPolicy) {
			t.Errorf("features lists memoryPolicy mode %s, but nothing applies it", m)
		}
	}
	ops := compileOps(t, func(s *specs.Spec) {
		s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch}
		s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE}
		s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
	})
	for _, op := range []plan.Op{plan.OpScheduler, plan.OpIOPriority, plan.OpPersonality, plan.OpCPUAffinity} {
		if !slices.Contains(ops, op) {
			t.Errorf("no %s step compiled", op)
		}
	}
	for opt := range plan.Unapplied {
		if slices.Contains(f.MountOptions, opt) {
			t.Errorf("features lists mount option %q, which hako refuses", opt)
		}
		_, err := plan.FromSpec(&plan.OCI{Bundle: "/b", Rootfs: "/b/rootfs", Spec: &specs.Spec{
			Process: &specs.Process{Args: []string{"true"}, Cwd: "/"},
			Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}},
			Mounts:  []specs.Mount{{Destination: "/tmp", Type: "tmpfs", Options: []string{opt}}},
		}})
		if err == nil {
			t.Errorf("mount option %q is neither listed nor refused", opt)
		}
	}
	// intelRdt: what features lists passes resctrl's checks on a mount
	// offering every resource, and the group Apply makes carries it.
	if rdt := f.Linux.IntelRdt; *rdt.Enabled {
		root := t.TempDir()
		for _, d := range []string{"info/L3", "info/MB", "info/L3_MON"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		cfg := &specs.LinuxIntelRdt{L3CacheSchema: "L3:0=f", MemBwSchema: "MB:0=50"}
		if *rdt.Schemata {
			cfg.Schemata = []string{"L2:0=3"}
		}
		if err := resctrl.Check(root, cfg); err != nil {
			t.Errorf("features lists intelRdt, but resctrl refuses it: %v", err)
		}
		g, err := resctrl.Apply(root, "c", cfg, 1)
		if err != nil {
			t.Fatalf("features lists intelRdt, but resctrl.Apply fails: %v", err)
		}
		data, _ := os.ReadFile(filepath.Join(g.Path, "schemata"))
		if *rdt.Schemata && !strings.Contains(string(data), "L2:0=3") {
			t.Errorf("features lists intelRdt.schemata, but the group's schemata is %q", data)
		}
		if *rdt.Monitoring {
			// A plain directory has no mon_groups (the kernel makes it):
			// the monitoring group is refused here, which shows Apply
			// reads enableMonitoring.
			cfg.EnableMonitoring = true
			if _, err := resctrl.Apply(root, "m", cfg, 1); err == nil || !strings.Contains(err.Error(), "mon_groups") {
				t.Errorf("features lists intelRdt.monitoring, but enableMonitoring made no monitoring group: %v", err)
			}
		}
	}
}
