package main

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/initproc"
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
	if *f.Linux.IntelRdt.Enabled {
		t.Errorf("features says intelRdt is enabled, but hako refuses linux.intelRdt")
	}
}
