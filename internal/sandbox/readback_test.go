package sandbox

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// Every property hako sandbox applies is read back by inspect, or says why
// not: a row added to the table without a read-back fails here.
func TestReadBackCoversTable(t *testing.T) {
	var missing []string
	for _, r := range Table() {
		if _, ok := readBacks()[r.Name]; !ok && r.Apply != nil {
			missing = append(missing, r.Name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("no read-back (readback.go's readBacks) for %s", strings.Join(missing, ", "))
	}
	for name := range readBacks() {
		if _, ok := Lookup(name); !ok {
			t.Errorf("read-back for %s, which is not in the table", name)
		}
	}
	// Each candidate value is one the row accepts.
	for name, rb := range readBacks() {
		for _, v := range rb.values {
			if _, err := Compile(&Input{Args: []string{"true"}, Props: []Property{{Name: name, Value: v}}}); err != nil {
				t.Errorf("%s=%s: %v", name, v, err)
			}
		}
	}
}

// fake is a probe of a process with these mounts (point, fstype, ro) and
// namespaces; every path exists and is writable unless on a read-only
// mount.
func fake(ns map[string]uint64, mounts ...receipt.Mount) *receipt.Probe {
	p := &receipt.Probe{Pid: 42, Mounts: mounts, Status: map[string]string{"NoNewPrivs": "0", "Seccomp": "0", "CapBnd": "000001ffffffffff", "CapAmb": "0"}}
	p.NS = func(kind string) (uint64, error) { return ns[kind], nil }
	p.Access = func(path string) error {
		if m, ok := p.Covering(path); ok && m.ReadOnly {
			return unix.EROFS
		}
		return nil
	}
	p.Stat = func(string) (unix.Stat_t, error) { return unix.Stat_t{Mode: unix.S_IFDIR}, nil }
	p.ReadDir = func(string) ([]string, error) { return []string{"x"}, nil }
	p.ProcSelf = func() (string, error) { return "", errors.New("none") }
	return p
}

func get(obs []Observed, name string) Observed {
	for _, o := range obs {
		if o.Name == name {
			return o
		}
	}
	return Observed{}
}

// PrivateTmp in its two forms (hako's tmpfs, systemd's bind of a
// directory of the host's /tmp), and not for the host's own tmpfs /tmp.
func TestReadBackPrivateTmp(t *testing.T) {
	hostNS := map[string]uint64{"mnt": 1, "net": 2}
	root := receipt.Mount{Point: "/", FSType: "ext4"}
	host := fake(hostNS, root, receipt.Mount{Point: "/tmp", FSType: "tmpfs"})
	origins := map[string]string{}
	live := func(proc *receipt.Probe) *Live {
		return &Live{Proc: proc, Host: host, Interfaces: []string{"lo", "eth0"}, Origin: func(p string) (string, bool) {
			o, ok := origins[p]
			return o, ok
		}}
	}
	own := map[string]uint64{"mnt": 10, "net": 2}
	for _, c := range []struct {
		name    string
		mounts  []receipt.Mount
		origins map[string]string
		want    bool
	}{
		{"hako tmpfs", []receipt.Mount{root, {Point: "/tmp", FSType: "tmpfs"}, {Point: "/var/tmp", FSType: "tmpfs"}}, map[string]string{"/": "/"}, true},
		{"systemd bind", []receipt.Mount{root, {Point: "/tmp", FSType: "ext4"}, {Point: "/var/tmp", FSType: "ext4"}},
			map[string]string{"/": "/", "/tmp": "/tmp/systemd-private-x-httpd.service-y/tmp", "/var/tmp": "/var/tmp/systemd-private-x-httpd.service-y/tmp"}, true},
		{"host's own tmpfs /tmp", []receipt.Mount{root, {Point: "/tmp", FSType: "tmpfs"}, {Point: "/var/tmp", FSType: "tmpfs"}}, map[string]string{"/": "/", "/tmp": "/tmp"}, false},
		{"only /tmp", []receipt.Mount{root, {Point: "/tmp", FSType: "ext4"}}, map[string]string{"/": "/", "/tmp": "/tmp/systemd-private-x/tmp"}, false},
	} {
		origins = c.origins
		o := get(ReadBack(live(fake(own, c.mounts...))), "PrivateTmp")
		if o.InForce != c.want {
			t.Errorf("%s: %+v, want in force %v", c.name, o, c.want)
		}
	}
}
