package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runcSpec is `runc spec` output (runc 1.1/1.2) with ociVersion and the
// host-dependent parts left as %s verbs.
const runcSpec = `{
	"ociVersion": %q,
	"process": {
		"terminal": true,
		"user": {"uid": 0, "gid": 0},
		"args": ["sh"],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
		},
		"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
		"noNewPrivileges": true
	},
	"root": {"path": "rootfs", "readonly": true},
	"hostname": "runc",
	"mounts": [
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
			"options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
			"options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"%s]},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
			"options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
			"options": ["nosuid", "noexec", "nodev"]},
		%s,
		{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
			"options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
	],
	"linux": {
		%s
		"namespaces": [%s],
		"maskedPaths": [
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
			"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
			"/proc/sched_debug", "/sys/firmware", "/proc/scsi"
		],
		"readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
	}
}`

func expectedDefault(rootless bool) string {
	cgroupNS := ""
	if isCgroup2() {
		cgroupNS = `, {"type": "cgroup"}`
	}
	if !rootless {
		return fmt.Sprintf(runcSpec, specs.Version, `, "gid=5"`,
			`{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}`,
			`"resources": {"devices": [{"allow": false, "access": "rwm"}]},`,
			`{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}`+cgroupNS)
	}
	maps := fmt.Sprintf(`"uidMappings": [{"containerID": 0, "hostID": %d, "size": 1}],
		"gidMappings": [{"containerID": 0, "hostID": %d, "size": 1}],`, os.Geteuid(), os.Getegid())
	return fmt.Sprintf(runcSpec, specs.Version, "",
		`{"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}`,
		maps,
		`{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}`+cgroupNS+`, {"type": "user"}`)
}

func TestDefaultMatchesRunc(t *testing.T) {
	for _, rootless := range []bool{false, true} {
		t.Run(fmt.Sprintf("rootless=%v", rootless), func(t *testing.T) {
			got, err := json.Marshal(Default(rootless))
			if err != nil {
				t.Fatal(err)
			}
			var gotV, wantV any
			if err := json.Unmarshal(got, &gotV); err != nil {
				t.Fatal(err)
			}
			want := expectedDefault(rootless)
			if err := json.Unmarshal([]byte(want), &wantV); err != nil {
				t.Fatalf("bad expectation: %v\n%s", err, want)
			}
			if !reflect.DeepEqual(gotV, wantV) {
				pretty, _ := json.MarshalIndent(gotV, "", "  ")
				t.Errorf("Default(%v) differs from runc spec:\n got: %s\nwant: %s", rootless, pretty, want)
			}
		})
	}
}

func TestDefaultValidates(t *testing.T) {
	bundle := newBundle(t)
	for _, rootless := range []bool{false, true} {
		if err := Validate(Default(rootless), bundle); err != nil {
			t.Errorf("Default(%v) does not validate: %v", rootless, err)
		}
	}
}

func TestDefaultIsFresh(t *testing.T) {
	// Callers edit the returned spec; no slice may be shared between calls.
	a := Default(false)
	a.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	a.Mounts[1].Options[0] = "changed"
	a.Linux.MaskedPaths[0] = "/changed"
	b := Default(false)
	if b.Process.Capabilities.Bounding[0] != "CAP_AUDIT_WRITE" || b.Mounts[1].Options[0] != "nosuid" ||
		b.Linux.MaskedPaths[0] != "/proc/acpi" {
		t.Error("Default shares state between calls")
	}
	if a.Process.Capabilities.Effective[0] != "CAP_AUDIT_WRITE" {
		t.Error("capability sets share a backing array")
	}
}

func TestDefaultRootlessHasNoNetwork(t *testing.T) {
	for _, ns := range Default(true).Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			t.Error("rootless default keeps the network namespace")
		}
	}
	for _, m := range Default(true).Mounts {
		for _, o := range m.Options {
			if strings.HasPrefix(o, "gid=") || strings.HasPrefix(o, "uid=") {
				t.Errorf("rootless mount %s keeps %s", m.Destination, o)
			}
		}
	}
}
