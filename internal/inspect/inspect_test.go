package inspect

import (
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
)

func TestHostOrigin(t *testing.T) {
	host := []*mountinfo.Info{
		{Major: 8, Minor: 1, Root: "/", Mountpoint: "/"},
		{Major: 8, Minor: 2, Root: "/", Mountpoint: "/var"},
		{Major: 8, Minor: 2, Root: "/lib/data", Mountpoint: "/srv/data"},
		{Major: 0, Minor: 40, Root: "/", Mountpoint: "/run"},
	}
	for _, c := range []struct {
		maj, min   int
		root, want string
	}{
		{8, 1, "/tmp/systemd-private-x-httpd.service-y/tmp", "/tmp/systemd-private-x-httpd.service-y/tmp"},
		{8, 2, "/lib/data/sub", "/srv/data/sub"}, // the longest root wins: a bind of a bind
		{8, 2, "/log", "/var/log"},
		{0, 99, "/", ""}, // a filesystem the host does not mount
	} {
		i := &mountinfo.Info{Major: c.maj, Minor: c.min, Root: c.root}
		got := ""
		if h := hostOrigin(i, host); h != nil {
			got = joinRoot(h.Mountpoint, h.Root, i.Root)
		}
		if got != c.want {
			t.Errorf("%d:%d %s: got %q, want %q", c.maj, c.min, c.root, got, c.want)
		}
	}
}

func TestPropagationFields(t *testing.T) {
	for in, want := range map[string]rootfs.Propagation{
		"":                  {Type: "private"},
		"shared:5":          {Type: "shared", PeerGroup: 5},
		"master:3":          {Type: "slave", Master: 3},
		"shared:7 master:3": {Type: "shared,slave", PeerGroup: 7, Master: 3},
		"unbindable":        {Type: "unbindable"},
	} {
		if got := rootfs.ParsePropagationFields(in); got != want {
			t.Errorf("%q: %+v, want %+v", in, got, want)
		}
	}
}

func TestLockedFlags(t *testing.T) {
	got := lockedFlags("ro,nosuid,nodev,relatime,idmapped")
	if len(got) != 4 || got[0] != "ro" || got[3] != "relatime" {
		t.Fatalf("%v", got)
	}
}
