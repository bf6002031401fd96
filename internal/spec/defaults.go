package spec

import (
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Default returns the config `runc spec` writes (`runc spec --rootless` when
// rootless), field for field, so that bundles and docs written for runc work
// unchanged. It mirrors runc's specconv.Example and specconv.ToRootless as of
// runc 1.1/1.2, including the cgroup namespace being added only on a
// cgroup v2 (unified) host.
func Default(rootless bool) *specs.Spec {
	s := example()
	if rootless {
		toRootless(s)
	}
	return s
}

func example() *specs.Spec {
	caps := func() []string {
		return []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	}
	s := &specs.Spec{
		Version: specs.Version,
		Root: &specs.Root{
			Path:     "rootfs",
			Readonly: true,
		},
		Process: &specs.Process{
			Terminal: true,
			User:     specs.User{},
			Args:     []string{"sh"},
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"TERM=xterm",
			},
			Cwd:             "/",
			NoNewPrivileges: true,
			// runc >= 1.1.2 sets no inheritable (and no ambient) capabilities
			// in the example: CVE-2022-29162.
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps(),
				Permitted: caps(),
				Effective: caps(),
			},
			Rlimits: []specs.POSIXRlimit{{
				Type: "RLIMIT_NOFILE",
				Hard: 1024,
				Soft: 1024,
			}},
		},
		Hostname: "runc",
		Mounts: []specs.Mount{
			{
				Destination: "/proc",
				Type:        "proc",
				Source:      "proc",
				Options:     nil,
			},
			{
				Destination: "/dev",
				Type:        "tmpfs",
				Source:      "tmpfs",
				Options:     []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			},
			{
				Destination: "/dev/pts",
				Type:        "devpts",
				Source:      "devpts",
				Options:     []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			},
			{
				Destination: "/dev/shm",
				Type:        "tmpfs",
				Source:      "shm",
				Options:     []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"},
			},
			{
				Destination: "/dev/mqueue",
				Type:        "mqueue",
				Source:      "mqueue",
				Options:     []string{"nosuid", "noexec", "nodev"},
			},
			{
				Destination: "/sys",
				Type:        "sysfs",
				Source:      "sysfs",
				Options:     []string{"nosuid", "noexec", "nodev", "ro"},
			},
			{
				Destination: "/sys/fs/cgroup",
				Type:        "cgroup",
				Source:      "cgroup",
				Options:     []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
			},
		},
		Linux: &specs.Linux{
			MaskedPaths: []string{
				"/proc/acpi",
				"/proc/asound",
				"/proc/kcore",
				"/proc/keys",
				"/proc/latency_stats",
				"/proc/timer_list",
				"/proc/timer_stats",
				"/proc/sched_debug",
				"/sys/firmware",
				"/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus",
				"/proc/fs",
				"/proc/irq",
				"/proc/sys",
				"/proc/sysrq-trigger",
			},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{
					Allow:  false,
					Access: "rwm",
				}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
		},
	}
	// runc only asks for a cgroup namespace where /sys/fs/cgroup is cgroup2:
	// on v1 hosts the namespaced view of the many hierarchies confuses
	// tools inside the container more than it helps.
	if isCgroup2() {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return s
}

// toRootless is runc's specconv.ToRootless (runc >= 1.0): an unprivileged
// user can create a user namespace but cannot mount sysfs without owning the
// network namespace, nor pass uid=/gid= options for IDs it cannot map.
func toRootless(s *specs.Spec) {
	var namespaces []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		switch ns.Type {
		case specs.NetworkNamespace, specs.UserNamespace:
		default:
			namespaces = append(namespaces, ns)
		}
	}
	namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.Namespaces = namespaces

	s.Linux.UIDMappings = []specs.LinuxIDMapping{{
		HostID:      uint32(os.Geteuid()),
		ContainerID: 0,
		Size:        1,
	}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{
		HostID:      uint32(os.Getegid()),
		ContainerID: 0,
		Size:        1,
	}}

	var mounts []specs.Mount
	for _, m := range s.Mounts {
		// Replaced in place (not appended) so that /sys/fs/cgroup, which
		// follows it, is still mounted on top of it.
		if filepath.Clean(m.Destination) == "/sys" {
			mounts = append(mounts, specs.Mount{
				Source:      "/sys",
				Destination: "/sys",
				Type:        "none",
				Options:     []string{"rbind", "nosuid", "noexec", "nodev", "ro"},
			})
			continue
		}
		var options []string
		for _, o := range m.Options {
			if !strings.HasPrefix(o, "gid=") && !strings.HasPrefix(o, "uid=") {
				options = append(options, o)
			}
		}
		m.Options = options
		mounts = append(mounts, m)
	}
	s.Mounts = mounts

	// Without delegation a rootless runtime cannot write cgroup settings.
	s.Linux.Resources = nil
}
