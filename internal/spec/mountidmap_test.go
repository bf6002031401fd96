package spec

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestMountIDMaps(t *testing.T) {
	l := &specs.Linux{
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 1, HostID: 2, Size: 1000}},
		GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	m := specs.Mount{Destination: "/d", Type: "bind", Source: "/s",
		Options: []string{"rbind", "ridmap=uids=0-1-10#@10-3-10;gids=@0-5-1"}}
	uids, gids, err := MountIDMaps(m, l)
	if err != nil {
		t.Fatal(err)
	}
	// crun(1)'s example: @1-3-10 with container 1 at host 2 is 1-4-10.
	wantU := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1, Size: 10}, {ContainerID: 10, HostID: 4, Size: 10}}
	wantG := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100005, Size: 1}}
	if !reflect.DeepEqual(uids, wantU) || !reflect.DeepEqual(gids, wantG) {
		t.Errorf("maps %v %v, want %v %v", uids, gids, wantU, wantG)
	}
	// The runtime-spec fields pass through; no maps give none.
	m = specs.Mount{Options: []string{"idmap"}, UIDMappings: wantU, GIDMappings: wantG}
	if u, g, err := MountIDMaps(m, nil); err != nil || !reflect.DeepEqual(u, wantU) || !reflect.DeepEqual(g, wantG) {
		t.Errorf("spec maps: %v %v %v", u, g, err)
	}
	if u, g, err := MountIDMaps(specs.Mount{Options: []string{"idmap"}}, l); err != nil || u != nil || g != nil {
		t.Errorf("plain idmap: %v %v %v", u, g, err)
	}
	for _, bad := range []string{"idmap=", "idmap=uids=1-2-3;uids=1-2-3;gids=1-2-3", "idmap=uids=1-2-3-4;gids=1-2-3", "idmap=uids=-1-2-3;gids=1-2-3",
		"idmap=uids=1-2-3#;gids=1-2-3", "idmap=uids=1-2-99999999999;gids=1-2-3"} {
		if _, _, err := MountIDMaps(specs.Mount{Options: []string{bad}}, l); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, _, err := MountIDMaps(specs.Mount{Options: []string{"idmap=uids=1-2-3;gids=1-2-3", "ridmap=uids=1-2-3;gids=1-2-3"}}, l); err == nil {
		t.Error("two idmap= options accepted")
	}
}
