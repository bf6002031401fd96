package security

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseCaps(t *testing.T) {
	set, err := ParseCaps(&specs.LinuxCapabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_KILL"},
		Effective: []string{"CAP_KILL"},
		Ambient:   []string{"CAP_CHECKPOINT_RESTORE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.Bounding, []capability.Cap{capability.CAP_CHOWN, capability.CAP_KILL}) ||
		!slices.Equal(set.Effective, []capability.Cap{capability.CAP_KILL}) ||
		!slices.Equal(set.Ambient, []capability.Cap{capability.CAP_CHECKPOINT_RESTORE}) ||
		len(set.Permitted) != 0 || len(set.Inheritable) != 0 {
		t.Errorf("ParseCaps = %+v", set)
	}

	for _, bad := range []struct{ name, field string }{
		{"CAP_TEST", "bounding"},
		{"chown", "permitted"},
		{"cap_chown", "inheritable"},
		{"CAP_CHOWN ", "ambient"},
	} {
		caps := &specs.LinuxCapabilities{}
		switch bad.field {
		case "bounding":
			caps.Bounding = []string{"CAP_KILL", bad.name}
		case "permitted":
			caps.Permitted = []string{bad.name}
		case "inheritable":
			caps.Inheritable = []string{bad.name}
		case "ambient":
			caps.Ambient = []string{bad.name}
		}
		_, err := ParseCaps(caps)
		want := fmt.Sprintf("process.capabilities.%s: unknown capability %q", bad.field, bad.name)
		if err == nil || err.Error() != want {
			t.Errorf("ParseCaps(%q in %s) error = %v, want %q", bad.name, bad.field, err, want)
		}
	}

	set, err = ParseCaps(nil)
	if err != nil || len(set.Bounding)+len(set.Effective)+len(set.Permitted)+len(set.Inheritable)+len(set.Ambient) != 0 {
		t.Errorf("ParseCaps(nil) = %+v, %v; want empty", set, err)
	}
	if !slices.Contains(KnownCapabilities(), "CAP_SYS_ADMIN") {
		t.Error("KnownCapabilities lacks CAP_SYS_ADMIN")
	}
}

// capsHelper drops to capsSpec's sets, optionally as uid 1000, and execs
// cat on its own status so the test sees what a container program gets.
func capsHelper(caps *specs.LinuxCapabilities, uid int) error {
	Warn = func(msg string) { fmt.Fprintln(os.Stderr, "warning:", msg) }
	if err := DropBounding(caps); err != nil {
		return err
	}
	if uid != 0 {
		if err := SetKeepCaps(); err != nil {
			return err
		}
		if err := syscall.Setuid(uid); err != nil {
			return err
		}
		if err := ClearKeepCaps(); err != nil {
			return err
		}
	}
	if err := ApplyCaps(caps); err != nil {
		return err
	}
	return syscall.Exec("/bin/cat", []string{"cat", "/proc/self/status"}, nil)
}

var onlyKill = &specs.LinuxCapabilities{
	Bounding:    []string{"CAP_KILL"},
	Effective:   []string{"CAP_KILL"},
	Inheritable: []string{"CAP_KILL"},
	Permitted:   []string{"CAP_KILL"},
	Ambient:     []string{"CAP_KILL"},
}

func init() {
	helpers["caps-kill-root"] = func() error { return capsHelper(onlyKill, 0) }
	helpers["caps-kill-user"] = func() error { return capsHelper(onlyKill, 1000) }
	helpers["caps-nil"] = func() error { return capsHelper(nil, 0) }
	helpers["caps-unavailable"] = func() error {
		// Ask for a capability this process does not hold (this host's root
		// lacks CAP_SYS_RESOURCE, for one) next to one it does.
		missing := os.Getenv("MISSING_CAP")
		c := &specs.LinuxCapabilities{}
		for _, s := range []*[]string{&c.Bounding, &c.Effective, &c.Inheritable, &c.Permitted, &c.Ambient} {
			*s = []string{"CAP_KILL", missing}
		}
		return capsHelper(c, 1000)
	}
}

const capKillMask = "0000000000000020"

func TestApplyCapsOnlyKill(t *testing.T) {
	for _, name := range []string{"caps-kill-root", "caps-kill-user"} {
		t.Run(name, func(t *testing.T) {
			got := parseKV(runHelper(t, name))
			expectKV(t, got, map[string]string{
				"CapInh": capKillMask, "CapPrm": capKillMask, "CapEff": capKillMask,
				"CapBnd": capKillMask, "CapAmb": capKillMask,
			})
			if name == "caps-kill-user" && !strings.HasPrefix(got["Uid"], "1000") {
				t.Errorf("Uid = %q, want 1000", got["Uid"])
			}
		})
	}
}

func TestApplyCapsNilDropsAll(t *testing.T) {
	got := parseKV(runHelper(t, "caps-nil"))
	zero := "0000000000000000"
	expectKV(t, got, map[string]string{"CapInh": zero, "CapPrm": zero, "CapEff": zero, "CapBnd": zero, "CapAmb": zero})
}

func TestApplyCapsSkipsUnavailable(t *testing.T) {
	needRoot(t)
	cur, err := readThreadCaps()
	if err != nil {
		t.Fatal(err)
	}
	last, err := capability.LastCap()
	if err != nil {
		t.Fatal(err)
	}
	missing := ""
	for c := capability.Cap(0); c <= last; c++ {
		if !cur.perm.has(c) && !cur.bnd.has(c) {
			missing = capName(c)
			break
		}
	}
	if missing == "" {
		t.Skip("this process holds every capability")
	}
	got := parseKV(runHelper(t, "caps-unavailable", "MISSING_CAP="+missing))
	expectKV(t, got, map[string]string{
		"CapInh": capKillMask, "CapPrm": capKillMask, "CapEff": capKillMask,
		"CapBnd": capKillMask, "CapAmb": capKillMask,
	})
}

func TestCapMask(t *testing.T) {
	m := maskOf([]capability.Cap{capability.CAP_KILL, capability.CAP_CHECKPOINT_RESTORE})
	if got := strconv.FormatUint(uint64(m), 16); got != "10000000020" {
		t.Errorf("mask = %s", got)
	}
	if got := m.names(); got != "CAP_KILL, CAP_CHECKPOINT_RESTORE" {
		t.Errorf("names = %q", got)
	}
}
