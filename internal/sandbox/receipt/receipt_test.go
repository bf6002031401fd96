package receipt

import (
	"testing"

	"golang.org/x/sys/unix"
)

func probe(mounts []Mount, access error) *Probe {
	return &Probe{
		Mounts: mounts, Pid: 1, Status: map[string]string{"NoNewPrivs": "0", "CapBnd": "000001ffffffffff"},
		Access:   func(string) error { return access },
		NS:       func(string) (uint64, error) { return 7, nil },
		ProcSelf: func() (string, error) { return "1", nil },
	}
}

func TestReadOnlyFindsWritableSubmount(t *testing.T) {
	p := probe([]Mount{{Point: "/", ReadOnly: true}, {Point: "/data", FSType: "ext4"}, {Point: "/dev", FSType: "devtmpfs"}}, unix.EROFS)
	r := Verify([]Check{{Property: "ProtectSystem", Kind: KindReadOnly, Path: "/", Except: []string{"/dev"}}}, p)
	if r.OK || r.Results[0].Detail != "submount /data (ext4) is writable" {
		t.Errorf("%+v", r)
	}
	p.Mounts[1].ReadOnly = true
	if r := Verify([]Check{{Property: "ProtectSystem", Kind: KindReadOnly, Path: "/", Except: []string{"/dev"}}}, p); !r.OK {
		t.Errorf("%+v", r)
	}
}

func TestFailsClosed(t *testing.T) {
	p := probe([]Mount{{Point: "/"}}, nil)
	for _, c := range []Check{
		{Property: "ProtectSystem", Kind: KindReadOnly, Path: "/usr"},
		{Property: "NoNewPrivileges", Kind: KindStatus, Path: "NoNewPrivs", Value: "1"},
		{Property: "PrivateNetwork", Kind: KindNewNS, Value: "net", Host: 7},
		{Property: "PrivateTmp", Kind: KindFS, Path: "/tmp", Value: "tmpfs"},
		{Property: "ProtectKernelModules", Kind: KindCapDropped, Value: "16"},
		{Property: "x", Kind: "bogus"},
	} {
		r := Verify([]Check{c}, p)
		if r.OK || r.Err() == nil {
			t.Errorf("%s %s passed: %+v", c.Property, c.Kind, r)
		}
	}
}

// The checks the seccomp, capability and /proc properties add: each fails
// closed when what it proves is absent, and passes when present.
func TestSeccompCapProcChecks(t *testing.T) {
	p := probe([]Mount{{Point: "/"}, {Point: "/proc", FSType: "proc", Super: "rw"}}, nil)
	p.Status["Seccomp"], p.Status["Seccomp_filters"] = "0", "0"
	p.Status["CapAmb"], p.Status["CapEff"] = "0000000000000000", "0000000000002000"
	checks := []Check{
		{Property: "LockPersonality", Kind: KindStatus, Path: "Seccomp", Value: "2"},
		{Property: "LockPersonality", Kind: KindStatusMin, Path: "Seccomp_filters", Value: "1"},
		{Property: "AmbientCapabilities", Kind: KindCapAmbient, Path: "CAP_NET_RAW", Value: "13"},
		{Property: "ProtectProc", Kind: KindMountOpt, Path: "/proc", Value: "hidepid=invisible"},
	}
	for _, c := range checks {
		if r := Verify([]Check{c}, p); r.OK || r.Err() == nil {
			t.Errorf("%s %s passed: %+v", c.Property, c.Kind, r)
		}
	}
	p.Status["Seccomp"], p.Status["Seccomp_filters"], p.Status["CapAmb"] = "2", "3", "0000000000002000"
	p.Mounts = append(p.Mounts, Mount{Point: "/proc", FSType: "proc", Super: "rw,hidepid=invisible,subset=pid"})
	for _, c := range checks {
		if r := Verify([]Check{c}, p); !r.OK {
			t.Errorf("%s %s failed: %+v", c.Property, c.Kind, r)
		}
	}
}

func TestCgroupLimit(t *testing.T) {
	p := probe(nil, nil)
	read := "/sys/fs/cgroup/memory/s: 67108864"
	p.Cgroup = func(string) (string, error) { return read, nil }
	// The kernel keeps memory limits in whole pages.
	c := Check{Property: "MemoryMax", Kind: KindCgroup, Path: "memory:../memory.limit_in_bytes", Value: "67108865"}
	if r := Verify([]Check{c}, p); !r.OK {
		t.Errorf("%+v", r)
	}
	read = "/sys/fs/cgroup/memory/s: 9223372036854771712"
	if r := Verify([]Check{c}, p); r.OK || r.Results[0].Detail != `memory:../memory.limit_in_bytes in /sys/fs/cgroup/memory/s is "9223372036854771712", want "67108864"` {
		t.Errorf("%+v", r)
	}
	p.Cgroup = nil
	if r := Verify([]Check{c}, p); r.OK {
		t.Errorf("unread cgroup passed: %+v", r)
	}
}
