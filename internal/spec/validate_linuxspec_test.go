package spec

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/linux/resctrl"
)

func TestValidateNamespaces(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"time and cgroup", func(s *specs.Spec) { addNS(s, specs.TimeNamespace, specs.CgroupNamespace) }, ""},
		{"path", func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "/var/run/netns/x" }, ""},
		{"none", func(s *specs.Spec) {
			s.Hostname = ""
			s.Linux.Namespaces = nil
			s.Linux.MaskedPaths = nil
			s.Linux.ReadonlyPaths = nil
		}, ""},
		{"unknown", func(s *specs.Spec) { s.Linux.Namespaces[2].Type = "foo" }, `linux.namespaces[2].type: unknown namespace type "foo"`},
		{"duplicate", func(s *specs.Spec) { addNS(s, specs.PIDNamespace) }, `linux.namespaces[5].type: duplicate namespace "pid" (also at linux.namespaces[0])`},
		{"relative path", func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "netns" }, `linux.namespaces[1].path: must be an absolute path, got "netns"`},
	})
}

func TestValidateIDMappings(t *testing.T) {
	m := func(c, h, n uint32) specs.LinuxIDMapping {
		return specs.LinuxIDMapping{ContainerID: c, HostID: h, Size: n}
	}
	uids := func(maps ...specs.LinuxIDMapping) func(*specs.Spec) {
		return func(s *specs.Spec) { withUserNS(s); s.Linux.UIDMappings = maps }
	}
	tooMany := make([]specs.LinuxIDMapping, 341)
	for i := range tooMany {
		tooMany[i] = m(uint32(i), uint32(i), 1)
	}
	runValidateCases(t, []validateCase{
		{"userns", withUserNS, ""},
		{"several", uids(m(0, 1000, 1), m(1, 100000, 65536)), ""},
		{"adjacent", uids(m(0, 0, 10), m(10, 10, 10)), ""},
		{"max entries", uids(tooMany[:340]...), ""},
		{"joined userns needs no maps", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/1/ns/user"})
		}, ""},
		{"maps without userns", func(s *specs.Spec) { withUserNS(s); removeNS(s, specs.UserNamespace) },
			`linux.uidMappings: requires a new user namespace (linux.namespaces has no "user")`},
		{"gid maps without userns", func(s *specs.Spec) { s.Linux.GIDMappings = []specs.LinuxIDMapping{m(0, 0, 1)} },
			`linux.gidMappings: requires a new user namespace (linux.namespaces has no "user")`},
		{"no uid maps", func(s *specs.Spec) { withUserNS(s); s.Linux.UIDMappings = nil },
			"linux.uidMappings: must not be empty when creating a new user namespace (no uid mappings found)"},
		{"no gid maps", func(s *specs.Spec) { withUserNS(s); s.Linux.GIDMappings = nil },
			"linux.gidMappings: must not be empty when creating a new user namespace (no gid mappings found)"},
		{"size 0", uids(m(0, 0, 0)), "linux.uidMappings[0].size: must be greater than 0"},
		{"container overflow", uids(m(4294967295, 0, 1)), "linux.uidMappings[0]: containerID 4294967295 + size 1 exceeds the 32-bit ID range"},
		{"full container range", uids(m(0, 0, 4294967295)), ""},
		{"host overflow", uids(m(0, 1, 4294967295)), "linux.uidMappings[0]: hostID 1 + size 4294967295 exceeds the 32-bit ID range"},
		{"host overflow only", uids(m(0, 4294967290, 10)), "linux.uidMappings[0]: hostID 4294967290 + size 10 exceeds the 32-bit ID range"},
		{"container overlap", uids(m(0, 0, 10), m(5, 100, 10)), "linux.uidMappings[1]: containerID range [5, 15) overlaps linux.uidMappings[0]"},
		{"host overlap", uids(m(0, 100, 10), m(10, 105, 1)), "linux.uidMappings[1]: hostID range [105, 106) overlaps linux.uidMappings[0]"},
		{"too many", uids(tooMany...), "linux.uidMappings: too many entries (341 > 340)"},
		{"gid checked too", func(s *specs.Spec) { withUserNS(s); s.Linux.GIDMappings[0].Size = 0 }, "linux.gidMappings[0].size: must be greater than 0"},
	})
}

func TestValidateMounts(t *testing.T) {
	bindMount := func(opts ...string) specs.Mount {
		return specs.Mount{Destination: "/data", Type: "bind", Source: "/srv/data", Options: opts}
	}
	add := func(mounts ...specs.Mount) func(*specs.Spec) {
		return func(s *specs.Spec) { s.Mounts = append(s.Mounts, mounts...) }
	}
	maps := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	runValidateCases(t, []validateCase{
		{"bind", add(bindMount("rbind", "ro")), ""},
		{"unknown option is fs data", add(specs.Mount{Destination: "/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"huge=within_size", "whatever"}}), ""},
		{"relative destination", add(specs.Mount{Destination: "tmp", Type: "tmpfs"}), `mounts[7].destination: must be an absolute path, got "tmp"`},
		{"empty destination", func(s *specs.Spec) { s.Mounts[3].Destination = "" }, "mounts[3].destination: must not be empty"},
		{"bind type without source", add(specs.Mount{Destination: "/x", Type: "bind"}), "mounts[7].source: must not be empty for a bind mount"},
		{"rbind option without source", add(specs.Mount{Destination: "/x", Type: "none", Options: []string{"rbind"}}), "mounts[7].source: must not be empty for a bind mount"},
		{"mount maps", add(specs.Mount{Destination: "/d", Type: "bind", Source: "/s", UIDMappings: maps, GIDMappings: maps}), ""},
		{"mount maps on tmpfs", add(specs.Mount{Destination: "/d", Type: "tmpfs", UIDMappings: maps, GIDMappings: maps}), "mounts[7].uidMappings: only supported for bind mounts"},
		{"uid maps only", add(specs.Mount{Destination: "/d", Type: "bind", Source: "/s", UIDMappings: maps}), "mounts[7].gidMappings: must be set together with uidMappings"},
		{"gid maps only", add(specs.Mount{Destination: "/d", Type: "bind", Source: "/s", GIDMappings: maps}), "mounts[7].uidMappings: must be set together with gidMappings"},
		{"bad mount map", add(specs.Mount{Destination: "/d", Type: "bind", Source: "/s", UIDMappings: maps,
			GIDMappings: []specs.LinuxIDMapping{{Size: 0}}}), "mounts[7].gidMappings[0].size: must be greater than 0"},
		{"idmap with userns", func(s *specs.Spec) { withUserNS(s); add(bindMount("rbind", "idmap"))(s) }, ""},
		{"ridmap with mount maps", add(specs.Mount{Destination: "/d", Source: "/s", Options: []string{"rbind", "ridmap"}, UIDMappings: maps, GIDMappings: maps}), ""},
		{"idmap without userns", add(bindMount("ro", "idmap")),
			`mounts[7].options[1]: "idmap" requires a user namespace (linux.namespaces has no "user") or mounts[7].uidMappings/gidMappings`},
		{"idmap on tmpfs", add(specs.Mount{Destination: "/t", Type: "tmpfs", Options: []string{"ridmap"}}), `mounts[7].options[0]: "ridmap" is only supported for bind mounts`},
		// crun's idmap with maps of the mount's own: no user namespace needed.
		{"crun idmap=", add(bindMount("ro", "idmap=uids=0-1000-10#10-2000-5;gids=0-1000-10")), ""},
		{"crun ridmap=", add(bindMount("ridmap=uids=0-1000-10;gids=0-1000-10")), ""},
		{"crun idmap= gids missing", add(bindMount("ro", "idmap=uids=0-1000-10")),
			`mounts[7]: option "idmap=uids=0-1000-10": needs both uids= and gids= (IDs left out would be unmapped)`},
		{"crun idmap= bad triplet", add(bindMount("idmap=uids=0-1000;gids=0-1000-10")),
			`mounts[7]: option "idmap=uids=0-1000;gids=0-1000-10": uids: "0-1000": want from-to-count`},
		{"crun idmap= not a number", add(bindMount("idmap=uids=0-x-1;gids=0-1000-10")),
			`mounts[7]: option "idmap=uids=0-x-1;gids=0-1000-10": uids: "0-x-1": "x" is not an ID`},
		{"crun idmap= unknown key", add(bindMount("idmap=users=0-1-1")),
			`mounts[7]: option "idmap=users=0-1-1": "users=0-1-1": want uids=... or gids=...`},
		{"crun idmap= overlap", add(bindMount("idmap=uids=0-1000-10#5-3000-1;gids=0-1000-10")),
			`mounts[7].options[0].uidMappings[1]: containerID range [5, 6) overlaps mounts[7].options[0].uidMappings[0]`},
		{"crun idmap= and mount maps", add(specs.Mount{Destination: "/d", Type: "bind", Source: "/s", UIDMappings: maps, GIDMappings: maps,
			Options: []string{"idmap=uids=0-1-1;gids=0-1-1"}}), `mounts[7]: option "idmap=uids=0-1-1;gids=0-1-1": the mount also has uidMappings/gidMappings; give the maps one way`},
		{"crun idmap= relative without userns", add(bindMount("idmap=uids=@0-0-10;gids=0-1000-10")),
			`mounts[7]: option "idmap=uids=@0-0-10;gids=0-1000-10": uids: "@0-0-10": a relative (@) map needs linux.uidMappings`},
		{"crun idmap= relative out of range", func(s *specs.Spec) { withUserNS(s); add(bindMount("idmap=uids=@0-70000-10;gids=0-1000-10"))(s) },
			`mounts[7]: option "idmap=uids=@0-70000-10;gids=0-1000-10": uids: "@0-70000-10": container ID 70000 is not in linux.uidMappings`},
		{"crun idmap= on tmpfs", add(specs.Mount{Destination: "/t", Type: "tmpfs", Options: []string{"idmap=uids=0-1-1;gids=0-1-1"}}),
			`mounts[7].options[0]: only supported for bind mounts`},
	})
}

func TestValidateLinuxPaths(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"propagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "rslave" }, ""},
		{"bad propagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "rsomething" },
			`linux.rootfsPropagation: unknown propagation "rsomething" (want one of shared, slave, private, unbindable, rshared, rslave, rprivate, runbindable)`},
		{"masked relative", func(s *specs.Spec) { s.Linux.MaskedPaths[2] = "proc/kcore" }, `linux.maskedPaths[2]: must be an absolute path, got "proc/kcore"`},
		{"readonly relative", func(s *specs.Spec) { s.Linux.ReadonlyPaths[0] = "" }, "linux.readonlyPaths[0]: must not be empty"},
		{"masked without mount ns", func(s *specs.Spec) { removeNS(s, specs.MountNamespace) },
			`linux.maskedPaths: requires a new mount namespace (linux.namespaces has no "mount")`},
		{"readonly without mount ns", func(s *specs.Spec) { s.Linux.MaskedPaths = nil; removeNS(s, specs.MountNamespace) },
			`linux.readonlyPaths: requires a new mount namespace (linux.namespaces has no "mount")`},
	})
}

func TestValidateSysctl(t *testing.T) {
	sysctl := func(kv ...string) func(*specs.Spec) {
		return func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				s.Linux.Sysctl[kv[i]] = kv[i+1]
			}
		}
	}
	without := func(t specs.LinuxNamespaceType, f func(*specs.Spec)) func(*specs.Spec) {
		return func(s *specs.Spec) { f(s); removeNS(s, t) }
	}
	joinNet := func(path string, f func(*specs.Spec)) func(*specs.Spec) {
		return func(s *specs.Spec) { f(s); s.Linux.Namespaces[1].Path = path }
	}
	runValidateCases(t, []validateCase{
		{"namespaced", sysctl("net.ipv4.ip_forward", "1", "kernel.shmmax", "1", "kernel.msgmni", "1",
			"fs.mqueue.msg_max", "10", "kernel.domainname", "x", "net/ipv4/conf/eth0.100/rp_filter", "1"), ""},
		{"net in joined netns", joinNet("/var/run/netns/nonexistent", sysctl("net.core.somaxconn", "1")), ""},
		{"net in host netns", joinNet("/proc/self/ns/net", sysctl("net.core.somaxconn", "1")),
			`linux.sysctl["net.core.somaxconn"]: not allowed in the host's network namespace (/proc/self/ns/net)`},
		{"net without netns", without(specs.NetworkNamespace, sysctl("net.ipv4.ip_forward", "1")),
			`linux.sysctl["net.ipv4.ip_forward"]: requires a new network namespace (linux.namespaces has no "network")`},
		{"slash form", without(specs.NetworkNamespace, sysctl("net/ipv4/ip_forward", "1")),
			`linux.sysctl["net/ipv4/ip_forward"]: requires a new network namespace (linux.namespaces has no "network")`},
		{"ipc without ipcns", without(specs.IPCNamespace, sysctl("kernel.sem", "1")),
			`linux.sysctl["kernel.sem"]: requires a new IPC namespace (linux.namespaces has no "ipc")`},
		{"mqueue without ipcns", without(specs.IPCNamespace, sysctl("fs.mqueue.queues_max", "1")),
			`linux.sysctl["fs.mqueue.queues_max"]: requires a new IPC namespace (linux.namespaces has no "ipc")`},
		{"hostname", sysctl("kernel.hostname", "x"),
			`linux.sysctl["kernel.hostname"]: conflicts with the "hostname" field; set hostname instead`},
		{"domainname without uts", func(s *specs.Spec) { s.Hostname = ""; without(specs.UTSNamespace, sysctl("kernel.domainname", "x"))(s) },
			`linux.sysctl["kernel.domainname"]: requires a new UTS namespace (linux.namespaces has no "uts")`},
		{"user with userns", func(s *specs.Spec) { withUserNS(s); sysctl("user.max_user_namespaces", "0")(s) }, ""},
		{"user without userns", sysctl("user.max_user_namespaces", "0"),
			`linux.sysctl["user.max_user_namespaces"]: requires a new user namespace (linux.namespaces has no "user")`},
		{"host-wide", sysctl("vm.swappiness", "1"), `linux.sysctl["vm.swappiness"]: sysctl "vm.swappiness" is not allowed in the container's namespaces`},
		{"kernel other", sysctl("kernel.pid_max", "1"), `linux.sysctl["kernel.pid_max"]: sysctl "kernel.pid_max" is not allowed in the container's namespaces`},
		{"empty", sysctl("", "1"), `linux.sysctl[""]: empty sysctl name`},
		{"dot-dot", sysctl("net/../../etc/shadow", "1"), `linux.sysctl["net/../../etc/shadow"]: sysctl name "net/../../etc/shadow": empty, "." or ".." component`},
		{"first in sorted order", sysctl("vm.b", "1", "vm.a", "1"), `linux.sysctl["vm.a"]: sysctl "vm.a" is not allowed in the container's namespaces`},
	})
}

func TestValidateDevices(t *testing.T) {
	dev := func(d specs.LinuxDevice) func(*specs.Spec) {
		return func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{d} }
	}
	runValidateCases(t, []validateCase{
		{"char", dev(specs.LinuxDevice{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}), ""},
		{"block", dev(specs.LinuxDevice{Path: "/dev/sda", Type: "b", Major: 8}), ""},
		{"unbuffered", dev(specs.LinuxDevice{Path: "/dev/u", Type: "u", Major: 0, Minor: 1}), ""},
		{"fifo", dev(specs.LinuxDevice{Path: "/dev/fifo", Type: "p"}), ""},
		{"relative", dev(specs.LinuxDevice{Path: "dev/null", Type: "c", Major: 1, Minor: 3}), `linux.devices[0].path: must be an absolute path, got "dev/null"`},
		{"type", dev(specs.LinuxDevice{Path: "/dev/x", Type: "s"}), `linux.devices[0].type: unknown device type "s" (want c, b, u or p)`},
		{"no major/minor", dev(specs.LinuxDevice{Path: "/dev/x", Type: "c"}), `linux.devices[0]: major and minor are required for type "c"`},
		{"negative", dev(specs.LinuxDevice{Path: "/dev/x", Type: "b", Major: -1, Minor: 2}), "linux.devices[0]: major and minor must not be negative, got -1:2"},
	})
}

func TestValidateNetDevices(t *testing.T) {
	nd := func(host, name string) func(*specs.Spec) {
		return func(s *specs.Spec) { s.Linux.NetDevices = map[string]specs.LinuxNetDevice{host: {Name: name}} }
	}
	runValidateCases(t, []validateCase{
		{"ok", nd("eth1", "eth0"), ""},
		{"keep name", nd("eth1", ""), ""},
		{"without netns", func(s *specs.Spec) { nd("eth1", "")(s); removeNS(s, specs.NetworkNamespace) },
			`linux.netDevices: requires a new network namespace (linux.namespaces has no "network")`},
		{"bad host name", nd("a/b", ""), `linux.netDevices["a/b"]: invalid network device name "a/b"`},
		{"bad name", nd("eth1", "averyveryverylongname"), `linux.netDevices["eth1"].name: invalid network device name "averyveryverylongname"`},
	})
}

func TestValidateTimeOffsets(t *testing.T) {
	off := func(clock string, o specs.LinuxTimeOffset) func(*specs.Spec) {
		return func(s *specs.Spec) {
			addNS(s, specs.TimeNamespace)
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{clock: o}
		}
	}
	runValidateCases(t, []validateCase{
		{"monotonic", off("monotonic", specs.LinuxTimeOffset{Secs: -10, Nanosecs: 5}), ""},
		{"boottime", off("boottime", specs.LinuxTimeOffset{Secs: 86400}), ""},
		{"without timens", func(s *specs.Spec) { off("boottime", specs.LinuxTimeOffset{})(s); removeNS(s, specs.TimeNamespace) },
			`linux.timeOffsets: requires a new time namespace (linux.namespaces has no "time")`},
		{"unknown clock", off("realtime", specs.LinuxTimeOffset{}), `linux.timeOffsets["realtime"]: unknown clock (want "monotonic" or "boottime")`},
		{"nanosecs", off("boottime", specs.LinuxTimeOffset{Nanosecs: 1e9}), `linux.timeOffsets["boottime"].nanosecs: must be less than 1000000000, got 1000000000`},
	})
}

func TestValidatePersonalityRdtMempolicy(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"linux32", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, ""},
		{"bad domain", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "BSD"} },
			`linux.personality.domain: unknown domain "BSD" (want LINUX or LINUX32)`},
		{"flags", func(s *specs.Spec) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux, Flags: []specs.LinuxPersonalityFlag{"ADDR_NO_RANDOMIZE"}}
		}, `linux.personality.flags: not supported: [ADDR_NO_RANDOMIZE] (no personality flag is applied)`},
		// In runc's words where resctrl is absent, as on this project's
		// hosts (internal/linux/resctrl tests the rest on a fake tree).
		{"closID", func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "gold"} }, rdtRefusal()},
		{"mempolicy", func(s *specs.Spec) {
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0-1,3", Flags: []specs.MemoryPolicyFlagType{specs.MpolFStaticNodes}}
		}, ""},
		{"mempolicy mode", func(s *specs.Spec) { s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: "MPOL_X"} }, `linux.memoryPolicy.mode: unknown mode "MPOL_X"`},
		{"mempolicy flag", func(s *specs.Spec) {
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolLocal, Flags: []specs.MemoryPolicyFlagType{"F"}}
		}, `linux.memoryPolicy.flags[0]: unknown flag "F"`},
		{"mempolicy stride", func(s *specs.Spec) {
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0-7:2/4"}
		}, `linux.memoryPolicy.nodes: "0-7:2/4": invalid number "7:2/4"`},
		{"affinity abc", func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: "abc"} },
			`process.execCPUAffinity.initial: "abc": invalid number "abc"`},
		{"affinity final range", func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Final: "3-1"} },
			`process.execCPUAffinity.final: "3-1": invalid range: 3-1`},
		{"affinity too big", func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Final: "1024"} },
			`process.execCPUAffinity.final: "1024": values larger than 1023 are not supported`},
		{"affinity ok", func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: " 0, 1-1,", Final: "0"} }, ""},
		{"mempolicy nodes", func(s *specs.Spec) {
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "3-1"}
		},
			`linux.memoryPolicy.nodes: invalid node list "3-1"`},
	})
}

func TestSysctlPath(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"net.ipv4.ip_forward", "net/ipv4/ip_forward"},
		{"net/ipv4/ip_forward", "net/ipv4/ip_forward"},
		{"net/ipv4/conf/eno2.100/rp_filter", "net/ipv4/conf/eno2.100/rp_filter"},
		{"net.ipv4.conf.eno2/100.rp_filter", "net/ipv4/conf/eno2.100/rp_filter"},
		{"kernel.shmmax", "kernel/shmmax"},
		{"net/../../etc/x", ""},
		{"net..ipv4", ""},
		{"net.ipv4.", ""},
		{"/net/ipv4", ""},
	} {
		got, err := SysctlPath(c.name)
		if c.want == "" {
			if err == nil {
				t.Errorf("SysctlPath(%q) = %q, want an error", c.name, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("SysctlPath(%q) = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func FuzzSysctlPath(f *testing.F) {
	for _, s := range []string{"net.ipv4.ip_forward", "net/ipv4/conf/eno2.100/rp_filter", "a/../b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := SysctlPath(name)
		if err != nil {
			return
		}
		for _, c := range strings.Split(p, "/") {
			if c == "" || c == "." || c == ".." {
				t.Fatalf("SysctlPath(%q) = %q: escapes /proc/sys", name, p)
			}
		}
	})
}

// rdtRefusal is what a closID alone gets on this host: runc's refusal
// without resctrl, nothing with it (the named group is looked for when
// the container starts).
func rdtRefusal() string {
	if _, err := resctrl.Root(); err == nil {
		return ""
	}
	return "linux.intelRdt: intelRdt is specified in config, but Intel RDT is not enabled"
}
