package cgroups

import (
	"maps"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
)

// TestV1PathsMatchLibrary checks the path computation against the library
// code it replaces, on whatever host the test runs on.
func TestV1PathsMatchLibrary(t *testing.T) {
	if cgroups.IsCgroup2UnifiedMode() {
		t.Skip("v1 paths only exist on v1 and hybrid hosts")
	}
	own, err := ownCgroups()
	if err != nil {
		t.Fatal(err)
	}
	libOwn, err := cgroups.ParseCgroupFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(own, libOwn) {
		t.Errorf("ownCgroups = %v, library %v", own, libOwn)
	}
	for _, tc := range []struct {
		name, path string
	}{
		{name: "ctr-id"},     // no cgroupsPath: the id below our own cgroup
		{path: "a/b"},        // relative cgroupsPath
		{path: "/a/b"},       // absolute cgroupsPath
		{path: "/../x/./y/"}, // cleaned first
		{name: "../escape"},
	} {
		cg := &cgroups.Cgroup{Name: tc.name, Path: tc.path, Resources: &cgroups.Resources{}}
		want, wantErr := fs.NewManager(cg, nil)
		inner := cleanPath(tc.path)
		if inner == "" {
			inner = cleanPath(tc.name)
		}
		got, err := v1Paths(inner, own)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%+v: error %v, library %v", tc, err, wantErr)
			continue
		}
		if err != nil {
			if err.Error() != wantErr.Error() {
				t.Errorf("%+v: error %q, library %q", tc, err, wantErr)
			}
			continue
		}
		if !maps.Equal(got, want.GetPaths()) {
			t.Errorf("%+v:\n got %v\nwant %v", tc, got, want.GetPaths())
		}
	}

	mounts, err := cgroupV1Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, all := range []bool{false, true} {
		want, err := cgroups.GetCgroupMounts(all)
		if err != nil {
			t.Fatal(err)
		}
		if got := cgroupMountsFrom(mounts, own, all); !reflect.DeepEqual(got, want) {
			t.Errorf("GetCgroupMounts(%v):\n got %v\nwant %v", all, got, want)
		}
	}
}

func BenchmarkV1Paths(b *testing.B) {
	if cgroups.IsCgroup2UnifiedMode() {
		b.Skip("v1 only")
	}
	for _, inner := range []string{"ctr-id", "/a/b"} {
		b.Run(inner, func(b *testing.B) {
			for b.Loop() {
				own, err := ownCgroups()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := v1Paths(inner, own); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("library"+inner, func(b *testing.B) {
			cg := &cgroups.Cgroup{Name: inner, Resources: &cgroups.Resources{}}
			if inner[0] == '/' {
				cg = &cgroups.Cgroup{Path: inner, Resources: &cgroups.Resources{}}
			}
			for b.Loop() {
				if _, err := fs.NewManager(cg, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestComputeV1PathsSynthetic pins the library's rules on a made-up host:
// a nested container (mount roots below /docker/abc), co-mounted cpu and
// cpuacct, name=systemd, a hybrid tree, and hugetlb mounted outside
// /sys/fs/cgroup.
func TestComputeV1PathsSynthetic(t *testing.T) {
	mounts, err := parseCgroupV1Mounts([]byte(`22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 /docker/abc /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 /docker/abc /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 /docker/abc /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 27 0:39 / /run/cg-hugetlb rw,relatime - cgroup cgroup rw,hugetlb
43 27 0:40 / /mnt/a\040-\040cgroup rw shared:7 - ext4 /dev/sda rw
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 6 {
		t.Fatalf("parsed %d cgroup mounts: %v", len(mounts), mounts)
	}
	own := map[string]string{
		"cpu": "/docker/abc/sub", "cpuacct": "/docker/abc/sub", "cpuset": "/docker/abc",
		"memory": "/docker/abc/sub", "devices": "/docker/abc", "name=systemd": "/docker/abc",
		"hugetlb": "/", "": "/",
	}
	// An empty listing: the probe of /sys/fs/cgroup/<name> (which would
	// look at this host) finds nothing, so the mount table decides.
	root := &v1Root{dir: "/sys/fs/cgroup", entries: map[string]os.FileMode{}}
	rootFn := func() (*v1Root, error) { return root, nil }
	for inner, want := range map[string]map[string]string{
		"ctr": {
			"cpuset":       "/sys/fs/cgroup/cpuset/ctr",
			"devices":      "/sys/fs/cgroup/devices/ctr",
			"memory":       "/sys/fs/cgroup/memory/sub/ctr",
			"cpu":          "/sys/fs/cgroup/cpu,cpuacct/sub/ctr",
			"cpuacct":      "/sys/fs/cgroup/cpu,cpuacct/sub/ctr",
			"hugetlb":      "/run/cg-hugetlb/ctr",
			"name=systemd": "/sys/fs/cgroup/systemd/ctr",
			"":             "/sys/fs/cgroup/unified/ctr",
		},
		// Absolute: from the root, named after the mount point; hugetlb
		// is not below the root and so is not found.
		"/a/b": {
			"cpuset":       "/sys/fs/cgroup/cpuset/a/b",
			"devices":      "/sys/fs/cgroup/devices/a/b",
			"memory":       "/sys/fs/cgroup/memory/a/b",
			"cpu":          "/sys/fs/cgroup/cpu,cpuacct/a/b",
			"cpuacct":      "/sys/fs/cgroup/cpu,cpuacct/a/b",
			"name=systemd": "/sys/fs/cgroup/systemd/a/b",
			"":             "/sys/fs/cgroup/unified/a/b",
		},
	} {
		got, err := computeV1Paths(mounts, own, inner, true, rootFn)
		if err != nil {
			t.Fatalf("%s: %v", inner, err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", inner, got, want)
		}
	}
	// Without a devices hierarchy there is no safe container.
	noDev := slices.DeleteFunc(slices.Clone(mounts), func(m v1Mount) bool { return m.Mountpoint == "/sys/fs/cgroup/devices" })
	if _, err := computeV1Paths(noDev, own, "ctr", true, rootFn); !cgroups.IsNotFound(err) {
		t.Errorf("no devices: err = %v", err)
	}
}
