package main

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/plan"
)

func init() {
	register("features", "print what this runtime supports as JSON", func(g *globals, args []string) error {
		if _, err := parse(newFlags("features"), args, 0, 0, ""); err != nil {
			return err
		}
		data, err := json.MarshalIndent(buildFeatures(), "", "    ")
		if err != nil {
			return err
		}
		fmt.Println(string(data))
		return nil
	})
}

func buildFeatures() *features.Features {
	t := true
	f := &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  rootfs.KnownOptions(),
		Linux: &features.Linux{
			Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Capabilities: security.KnownCapabilities(),
			Cgroup:       &features.Cgroup{V1: &t, V2: &t, Systemd: boolp(true), SystemdUser: boolp(true)},
			Seccomp:      seccompFeatures(),
			Apparmor:     &features.Apparmor{Enabled: &t},
			Selinux:      &features.Selinux{Enabled: &t},
			// Applied by internal/linux/resctrl where resctrl is mounted
			// (compiled in, as runc says, whatever this host has).
			IntelRdt:        &features.IntelRdt{Enabled: &t, Schemata: &t, Monitoring: &t},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &t}},
			// Applied by plan/linux13.go and internal/linux/netdev.
			MemoryPolicy: &features.MemoryPolicy{Modes: plan.MemoryPolicyModes(), Flags: plan.MemoryPolicyFlags()},
			NetDevices:   &features.NetDevices{Enabled: &t},
		},
		Annotations: map[string]string{
			"io.github.hako-runtime.version": version,
		},
	}
	return f
}

func boolp(b bool) *bool { return &b }

func seccompFeatures() *features.Seccomp {
	enabled := security.SeccompSupported()
	return &features.Seccomp{
		Enabled: &enabled,
		Actions: []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
			"SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"},
		Operators: []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
			"SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"},
		Archs: []string{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
			"SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
			"SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_X32",
			"SCMP_ARCH_X86", "SCMP_ARCH_X86_64"},
		KnownFlags:     []string{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
		SupportedFlags: security.SupportedSeccompFlags(),
	}
}
