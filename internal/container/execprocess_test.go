package container

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseUser(t *testing.T) {
	for in, want := range map[string][2]uint32{"0": {0, 0}, "1000": {1000, 0}, "1000:100": {1000, 100}} {
		u, g, err := parseUser(in)
		if err != nil || u != want[0] || g != want[1] {
			t.Errorf("parseUser(%q) = %d:%d %v", in, u, g, err)
		}
	}
	for _, bad := range []string{"", "root", "1000:", ":5", "-1", "1:2:3", "99999999999"} {
		if _, _, err := parseUser(bad); err == nil {
			t.Errorf("parseUser(%q) accepted", bad)
		}
	}
}

// exec --cap adds to bounding, effective and permitted only (CVE-2022-29162).
func TestAddCaps(t *testing.T) {
	c := addCaps(&specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}}, []string{"sys_admin", "CAP_KILL"})
	if strings.Join(c.Bounding, ",") != "CAP_KILL,CAP_SYS_ADMIN" || len(c.Effective) != 2 || len(c.Permitted) != 2 {
		t.Fatalf("addCaps = %+v", c)
	}
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Fatalf("addCaps touched inheritable/ambient: %+v", c)
	}
}

func FuzzParseUser(f *testing.F) {
	for _, s := range []string{"0", "1000:1000", "a:b", ":", "4294967295:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, g, err := parseUser(s)
		if err == nil && strings.Count(s, ":") > 1 {
			t.Fatalf("parseUser(%q) = %d:%d accepted two colons", s, u, g)
		}
	})
}

func FuzzAddCaps(f *testing.F) {
	f.Add("CAP_SYS_ADMIN,net_raw")
	f.Fuzz(func(t *testing.T, s string) {
		c := addCaps(nil, strings.Split(s, ","))
		if len(c.Inheritable)+len(c.Ambient) != 0 {
			t.Fatal("addCaps reached inheritable or ambient")
		}
		for _, n := range c.Bounding {
			if !strings.HasPrefix(n, "CAP_") {
				t.Fatalf("name %q without CAP_ prefix", n)
			}
		}
	})
}
