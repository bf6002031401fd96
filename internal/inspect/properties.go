package inspect

import (
	"fmt"
	"os"
	"strings"

	"github.com/hako-runtime/hako/internal/linux/security"
)

// Property is one systemd property that describes what is in force, with
// the kernel fact it was read from.
type Property struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// properties reads the process's effective isolation in systemd.exec(5)
// words: the direction opposite to a unit file, from the kernel's state.
func properties(r *Report) []Property {
	var out []Property
	add := func(name, value, reason string) { out = append(out, Property{name, value, reason}) }
	nsHost := map[string]bool{}
	for _, n := range r.Namespaces {
		nsHost[n.Kind] = n.Host
	}
	if m := r.MountAt("/tmp"); m != nil && m.Target == "/tmp" && !nsHost["mnt"] {
		switch {
		case m.HostPath != "" && m.HostPath != "/tmp":
			add("PrivateTmp", "yes", "/tmp is a bind of the host's "+m.HostPath)
		case m.HostPath == "":
			add("PrivateTmp", "yes", "/tmp is a "+m.FSType+" of its own")
		}
	}
	ro := func(p string) bool {
		m := r.MountAt(p)
		return m != nil && hasOpt(m.Options, "ro")
	}
	switch {
	case ro("/") && ro("/usr") && ro("/etc"):
		add("ProtectSystem", "strict", "/, /usr and /etc are read-only")
	case ro("/usr") && ro("/etc") && ro("/boot"):
		add("ProtectSystem", "full", "/usr, /boot and /etc are read-only")
	case ro("/usr") && ro("/boot"):
		add("ProtectSystem", "yes", "/usr and /boot are read-only")
	}
	if m := r.MountAt("/home"); m != nil && m.Target == "/home" && !nsHost["mnt"] {
		if hasOpt(m.Options, "ro") {
			add("ProtectHome", "read-only", "/home is read-only")
		} else if m.FSType == "tmpfs" {
			add("ProtectHome", "tmpfs", "/home is an empty tmpfs")
		}
	}
	if m := r.MountAt("/dev"); m != nil && m.Target == "/dev" && m.FSType == "tmpfs" {
		add("PrivateDevices", "yes", "/dev is a tmpfs, not the host's devtmpfs")
	}
	if ro("/proc/sys") && ro("/sys") {
		add("ProtectKernelTunables", "yes", "/proc/sys and /sys are read-only")
	}
	if !nsHost["net"] {
		if ifs := interfaces(r.PID); len(ifs) == 1 && ifs[0] == "lo" {
			add("PrivateNetwork", "yes", "its network namespace has only lo")
		} else {
			add("PrivateNetwork", "no", "own network namespace with "+strings.Join(ifs, ", "))
		}
	}
	for _, p := range []struct{ kind, name string }{{"user", "PrivateUsers"}, {"uts", "ProtectHostname"}, {"ipc", "PrivateIPC"}, {"pid", "PrivatePIDs"}, {"mnt", "PrivateMounts"}, {"cgroup", "ProtectControlGroups"}} {
		if !nsHost[p.kind] {
			add(p.name, "yes", "own "+p.kind+" namespace")
		}
	}
	if r.Identity.NoNewPrivs {
		add("NoNewPrivileges", "yes", "no_new_privs is set")
	}
	if all := security.AllCapsMask(); r.Identity.capBnd&all != all {
		add("CapabilityBoundingSet", strings.Join(r.Identity.Caps["bounding"], " "), "the bounding set lacks "+strings.Join(security.CapNames(all&^r.Identity.capBnd), " "))
	}
	if amb := r.Identity.Caps["ambient"]; len(amb) > 0 {
		add("AmbientCapabilities", strings.Join(amb, " "), "ambient set")
	}
	if r.Identity.Seccomp == "filter" {
		add("SystemCallFilter", "present", fmt.Sprintf("%d seccomp filter(s) attached (the rules themselves are not readable)", r.Identity.SeccompFilters))
	}
	if r.Identity.LSMLabel != "" && r.Identity.LSMLabel != "unconfined" {
		add("AppArmorProfile/SELinuxContext", r.Identity.LSMLabel, "LSM label of the process")
	}
	return out
}

// interfaces lists the network interfaces in the process's namespace.
func interfaces(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n")[2:] {
		if name, _, ok := strings.Cut(l, ":"); ok {
			out = append(out, strings.TrimSpace(name))
		}
	}
	return out
}
