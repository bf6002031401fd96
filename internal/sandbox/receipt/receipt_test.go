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
