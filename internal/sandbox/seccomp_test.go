package sandbox

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func filterNames(t *testing.T, props ...string) (bool, []string) {
	t.Helper()
	sb, err := compile(t, 0, props...)
	if err != nil {
		t.Fatal(err)
	}
	f := sb.Filters[len(sb.Filters)-1]
	var names []string
	for _, r := range f.Syscalls {
		names = append(names, r.Names...)
	}
	sort.Strings(names)
	return f.DefaultAction != specs.ActAllow, names
}

func has(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

// The generated table is systemd's: nested groups resolve, and an allow
// list gets @default as systemd adds it.
func TestSystemCallFilterGroups(t *testing.T) {
	if systemdVersion == "" || len(syscallGroups()["@system-service"]) == 0 || len(syscallGroups()["@default"]) == 0 {
		t.Fatal("generated syscall groups are empty")
	}
	allow, names := filterNames(t, "SystemCallFilter=@system-service")
	if !allow || !has(names, "execve") || !has(names, "write") || !has(names, "capset") || has(names, "mount") || has(names, "reboot") {
		t.Errorf("allow list @system-service: allow=%v, names %v", allow, names)
	}
	// A later ~ line removes from an allow list; a later allow line
	// removes from a deny list.
	_, names = filterNames(t, "SystemCallFilter=@system-service", "SystemCallFilter=~write")
	if has(names, "write") {
		t.Error("~write after an allow list left write allowed")
	}
	allow, names = filterNames(t, "SystemCallFilter=~@mount @swap", "SystemCallFilter=swapon")
	if allow || !has(names, "mount") || !has(names, "swapoff") || has(names, "swapon") {
		t.Errorf("deny list: allow=%v names %v", allow, names)
	}
}

func TestSeccompErrors(t *testing.T) {
	for prop, want := range map[string]string{
		"SystemCallFilter=@nope":               `property SystemCallFilter=@nope: "@nope": unknown syscall group`,
		"SystemCallFilter=write:EPERM":         `property SystemCallFilter=write:EPERM: "write:EPERM": an errno per entry is only for deny (~) lists`,
		"SystemCallErrorNumber=5000":           `property SystemCallErrorNumber=5000: errno 5000: out of range 0..4095`,
		"SystemCallArchitectures=x86":          `property SystemCallArchitectures=x86: "x86": only native`,
		"RestrictNamespaces=bogus":             `property RestrictNamespaces=bogus: "bogus": unknown namespace type`,
		"RestrictAddressFamilies=AF_BOGUS":     `property RestrictAddressFamilies=AF_BOGUS: "AF_BOGUS": unknown address family`,
		"AmbientCapabilities=CAP_BOGUS":        `property AmbientCapabilities=CAP_BOGUS: "CAP_BOGUS": unknown capability`,
		"ProtectProc=maybe":                    `property ProtectProc=maybe: "maybe": must be invisible, noaccess, ptraceable or default`,
		"ProcSubset=some":                      `property ProcSubset=some: "some": must be pid or all`,
		"MemoryDenyWriteExecute=perhaps":       `property MemoryDenyWriteExecute=perhaps: "perhaps" is not a boolean`,
		"SystemCallFilter=~write:ENOTANERRNO":  `"write:ENOTANERRNO": "ENOTANERRNO": not an errno name`,
		"RestrictNamespaces=~cgroup netfoo":    `"netfoo": unknown namespace type`,
		"AmbientCapabilities=~CAP_NOT_A_CAP_X": `"CAP_NOT_A_CAP_X": unknown capability`,
	} {
		_, err := compile(t, 0, prop)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", prop, err, want)
		}
	}
	if _, err := compile(t, 0, "CapabilityBoundingSet=~CAP_NET_RAW", "AmbientCapabilities=CAP_NET_RAW"); err == nil || !strings.Contains(err.Error(), "AmbientCapabilities=CAP_NET_RAW: dropped from the bounding set by CapabilityBoundingSet") {
		t.Errorf("ambient outside the bounding set: %v", err)
	}
}

func TestRestrictNamespacesRetain(t *testing.T) {
	for _, c := range []struct {
		props []string
		want  uint64
	}{
		{[]string{"RestrictNamespaces=yes"}, 0},
		{[]string{"RestrictNamespaces=net"}, 0x40000000},
		{[]string{"RestrictNamespaces=net", "RestrictNamespaces=uts"}, 0x44000000},
		{[]string{"RestrictNamespaces=~net"}, allNamespaces &^ 0x40000000},
		{[]string{"RestrictNamespaces=~net", "RestrictNamespaces=~uts"}, allNamespaces &^ 0x44000000},
	} {
		b := &builder{in: &Input{}}
		for _, p := range c.props {
			_, v, _ := strings.Cut(p, "=")
			if err := restrictNamespaces(b, v); err != nil {
				t.Fatal(err)
			}
		}
		if *b.sec.nsRetain != c.want {
			t.Errorf("%v: retain %#x, want %#x", c.props, *b.sec.nsRetain, c.want)
		}
	}
	// "no" loads no filter at all.
	sb, err := compile(t, 0, "RestrictNamespaces=no")
	if err != nil || len(sb.Filters) != 0 {
		t.Errorf("RestrictNamespaces=no: %v, %d filters", err, len(sb.Filters))
	}
}

// systemd implies NoNewPrivileges where the filter could not be loaded
// without it; root as root keeps it off, as systemd does.
func TestSeccompImpliesNoNewPrivs(t *testing.T) {
	for _, c := range []struct {
		uid   uint32
		props []string
		want  bool
	}{
		{0, []string{"LockPersonality=yes"}, false},
		{1000, []string{"LockPersonality=yes"}, true},
		{0, []string{"LockPersonality=yes", "CapabilityBoundingSet=~CAP_SYS_ADMIN"}, true},
		{1000, []string{"LockPersonality=no"}, false},
	} {
		sb, err := compile(t, c.uid, c.props...)
		if err != nil {
			t.Fatal(err)
		}
		if sb.Spec.Process.NoNewPrivileges != c.want {
			t.Errorf("uid %d %v: NoNewPrivileges %v", c.uid, c.props, sb.Spec.Process.NoNewPrivileges)
		}
	}
}

// SystemCallFilter's filter is the last one loaded, as in systemd.
func TestSystemCallFilterLoadsLast(t *testing.T) {
	sb, err := compile(t, 0, "SystemCallFilter=@system-service", "LockPersonality=yes", "SystemCallArchitectures=native")
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Filters) != 3 || sb.Filters[2].DefaultAction != specs.ActKillProcess {
		t.Fatalf("filters %+v", sb.Filters)
	}
	want := []specs.Arch{nativeScmpArch()}
	for _, f := range sb.Filters {
		if !reflect.DeepEqual(f.Architectures, want) {
			t.Errorf("architectures %v, want native only", f.Architectures)
		}
	}
}
