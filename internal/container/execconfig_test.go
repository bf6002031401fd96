package container

import (
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/plan"
)

// exec reads the saved config through a narrow view (execConfig). Every
// field of linux is set here; exec's plan and namespaces must come out
// the same from the whole spec and from the view, so a field that exec
// starts to read and the view lacks fails this test rather than being
// silently zero.
func TestExecConfigKeepsWhatExecReads(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	i64 := func(v int64) *int64 { return &v }
	umask := uint32(0o027)
	adj := 300
	full := &specs.Spec{
		Version: "1.2.0",
		Process: &specs.Process{
			Args: []string{"sh"}, Env: []string{"PATH=/bin"}, Cwd: "/srv", NoNewPrivileges: true, OOMScoreAdj: &adj,
			User:         specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}, Umask: &umask},
			Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}},
			Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 20}},
			IOPriority:   &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_BE", Priority: 3},
			Scheduler:    &specs.Scheduler{Policy: "SCHED_OTHER", Nice: 2},
		},
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
			Sysctl:      map[string]string{"kernel.shmmax": "1"},
			Resources:   &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}},
			CgroupsPath: "/x",
			Namespaces:  []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}},
			Devices:     []specs.LinuxDevice{{Path: "/dev/x", Type: "c", Major: 1, Minor: 3, UID: u32(0)}},
			NetDevices:  map[string]specs.LinuxNetDevice{"eth9": {Name: "eth0"}},
			Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"reboot"}, Action: specs.ActErrno}}},
			RootfsPropagation: "rslave",
			MaskedPaths:       []string{"/proc/kcore"},
			ReadonlyPaths:     []string{"/proc/sys"},
			MountLabel:        "system_u:object_r:container_file_t:s0",
			IntelRdt:          &specs.LinuxIntelRdt{ClosID: "c"},
			MemoryPolicy:      &specs.LinuxMemoryPolicy{Mode: "MPOL_INTERLEAVE", Nodes: "0"},
			Personality:       &specs.LinuxPersonality{Domain: specs.PerLinux32},
			TimeOffsets:       map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}},
		},
	}
	lv := reflect.ValueOf(*full.Linux)
	for i := 0; i < lv.NumField(); i++ {
		if lv.Field(i).IsZero() {
			t.Fatalf("linux.%s is not set in this test: set it, so that exec's view is checked against it", lv.Type().Field(i).Name)
		}
	}
	data, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var view execConfig
	if err := json.Unmarshal(data, &view); err != nil {
		t.Fatal(err)
	}
	narrow := view.spec()
	if !reflect.DeepEqual(narrow.Process, full.Process) {
		t.Errorf("process differs:\n%+v\n%+v", narrow.Process, full.Process)
	}
	want, err := plan.ForExecWith(full.Process, full.Linux, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := plan.ForExecWith(narrow.Process, narrow.Linux, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("exec's plan from the narrow view differs:\n%v\nfrom the whole spec:\n%v", got.Lines(), want.Lines())
	}
	if !reflect.DeepEqual(narrow.Linux.Namespaces, full.Linux.Namespaces) || !reflect.DeepEqual(narrow.Linux.Seccomp, full.Linux.Seccomp) {
		t.Error("namespaces or seccomp differ")
	}
}
