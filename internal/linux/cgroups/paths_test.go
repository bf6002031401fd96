package cgroups

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// refMount is a cgroup v1 mountinfo entry as the reference reads it.
type refMount struct {
	root, mountpoint string
	opts             []string
}

// refHost reads this host's v1 mounts and our own cgroups with the
// plainest possible parsing, as an independent reference for the path
// code (which used to be checked against runc's library itself).
func refHost(t testing.TB) ([]refMount, map[string]string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mounts []refMount
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 3 && g[0] == "cgroup" {
			mounts = append(mounts, refMount{root: f[3], mountpoint: f[4], opts: strings.Split(g[2], ",")})
		}
	}
	data, err = os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	return mounts, own
}

// refOwnPath is our own cgroup directory in a v1 hierarchy.
func refOwnPath(t testing.TB, name string) string {
	mounts, own := refHost(t)
	for _, m := range mounts {
		if slices.Contains(m.opts, name) {
			rel, err := filepath.Rel(m.root, own[name])
			if err != nil {
				t.Fatal(err)
			}
			return filepath.Join(m.mountpoint, rel)
		}
	}
	t.Fatalf("no %s hierarchy", name)
	return ""
}

// refV1Paths is the library's rule on a host whose hierarchies are mounted
// directly below /sys/fs/cgroup (or, for relative paths, anywhere).
func refV1Paths(t testing.TB, inner string) map[string]string {
	mounts, own := refHost(t)
	names := slices.Clone(v1SubsystemNames)
	if isHybrid() {
		names = append(names, "")
	}
	paths := map[string]string{}
	for _, name := range names {
		if name == "" {
			if _, ok := own[""]; ok || filepath.IsAbs(inner) {
				paths[""] = filepath.Join(hybridRoot, inner)
			}
			continue
		}
		i := slices.IndexFunc(mounts, func(m refMount) bool {
			return slices.Contains(m.opts, name) && (!filepath.IsAbs(inner) || strings.HasPrefix(m.mountpoint, cgroupRoot+"/"))
		})
		if i < 0 {
			continue
		}
		if filepath.IsAbs(inner) {
			paths[name] = filepath.Join(cgroupRoot, filepath.Base(mounts[i].mountpoint), inner)
		} else if cg, ok := own[name]; ok {
			rel, _ := filepath.Rel(mounts[i].root, cg)
			paths[name] = filepath.Join(mounts[i].mountpoint, rel, inner)
		}
	}
	return paths
}

// TestV1PathsOnHost checks the path computation against the reference on
// whatever host the test runs on.
func TestV1PathsOnHost(t *testing.T) {
	if isUnified() {
		t.Skip("v1 paths only exist on v1 and hybrid hosts")
	}
	own, err := ownCgroups()
	if err != nil {
		t.Fatal(err)
	}
	mounts, refOwn := refHost(t)
	if !maps.Equal(own, refOwn) {
		t.Errorf("ownCgroups = %v, reference %v", own, refOwn)
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
		inner := cleanPath(tc.path)
		if inner == "" {
			inner = cleanPath(tc.name)
		}
		got, err := v1Paths(inner, own)
		if err != nil {
			t.Errorf("%+v: %v", tc, err)
			continue
		}
		if want := refV1Paths(t, inner); !maps.Equal(got, want) {
			t.Errorf("%+v:\n got %v\nwant %v", tc, got, want)
		}
	}

	v1m, err := cgroupV1Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, all := range []bool{false, true} {
		var want []cgroupMount
		for _, m := range mounts {
			cm := cgroupMount{Mountpoint: m.mountpoint, Root: m.root}
			for _, o := range m.opts {
				if _, ok := own[o]; ok {
					cm.Subsystems = append(cm.Subsystems, strings.TrimPrefix(o, "name="))
				}
			}
			if all || len(cm.Subsystems) > 0 {
				want = append(want, cm)
			}
		}
		if got := cgroupMountsFrom(v1m, own, all); !reflect.DeepEqual(got, want) {
			t.Errorf("cgroupMountsFrom(%v):\n got %v\nwant %v", all, got, want)
		}
	}
}

func BenchmarkV1Paths(b *testing.B) {
	if isUnified() {
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
	}
}

// TestScopedJoin checks the symlink resolution of the /sys/fs/cgroup probe:
// links resolve as if the directory were the root, so nothing escapes it.
func TestScopedJoin(t *testing.T) {
	root := t.TempDir()
	for name, target := range map[string]string{
		"cpu": "cpu,cpuacct", "abs": "/cpu,cpuacct", "up": "../../etc", "loop": "loop", "chain": "cpu",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{
		"cpu": root + "/cpu,cpuacct", "abs": root + "/cpu,cpuacct", "up": root + "/etc",
		"chain": root + "/cpu,cpuacct", "memory": root + "/memory", "": root,
	} {
		if got, ok := scopedJoin(root, name); !ok || got != want {
			t.Errorf("scopedJoin(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := scopedJoin(root, "loop"); ok {
		t.Error("symlink loop resolved")
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
	if _, err := computeV1Paths(noDev, own, "ctr", true, rootFn); !isNotFound(err) {
		t.Errorf("no devices: err = %v", err)
	}
}
