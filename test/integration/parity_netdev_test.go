package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ifb makes a host ifb device with an address and removes it after the
// test if the container did not take it along (this kernel has no dummy).
func ifb(t *testing.T, name, addr string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "add", name, "type", "ifb").CombinedOutput(); err != nil {
		t.Skipf("cannot make an ifb device: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	if out, err := exec.Command("ip", "addr", "add", addr, "dev", name).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v %s", err, out)
	}
}

func hostHas(name string) bool { return exec.Command("ip", "link", "show", name).Run() == nil }

// A host device moves in, renamed, with its address, up; when the
// container goes, the kernel destroys the virtual device with the
// namespace. Under runc 1.5 too.
func TestParityNetDevices(t *testing.T) {
	rts := map[string][]string{}
	if rc := runc15(t); rc != nil {
		rts["runc-1.5"] = rc
	}
	rts["hako"] = nil
	for who, rt := range rts {
		t.Run(who, func(t *testing.T) {
			e := newEnv(t)
			if rt == nil {
				rt = []string{hakoBin, "--root", e.root}
			}
			ifb(t, "hkifb0", "10.99.0.1/24")
			netEnv(e)
			e.spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{"hkifb0": {Name: "eth9"}}
			e.spec.Process.Args = []string{"sh", "-c", "ip -4 addr show eth9"}
			e.write()
			out, code := runWith(t, rt, e.bundle, "c-netdev")
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", who, code, out)
			}
			if !strings.Contains(out, "inet 10.99.0.1/24") || !strings.Contains(out, ",UP") {
				t.Errorf("%s: eth9 inside should be up with 10.99.0.1/24: %s", who, out)
			}
			if hostHas("hkifb0") || hostHas("eth9") {
				t.Errorf("%s: the ifb device should be gone with the container's namespace", who)
			}
		})
	}
}

// hako does better than runc 1.5.3 with "eth%d" (runc moves the device,
// then fails looking for the literal name), and refuses clearly a missing
// device and a name taken inside.
func TestParityNetDevicesErrors(t *testing.T) {
	e := newEnv(t)
	netEnv(e)
	ifb(t, "hkifb1", "10.99.1.1/24")
	e.spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{"hkifb1": {Name: "eth%d"}}
	if out := e.run("ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, "10.99.1.1/24") || !strings.Contains(out, ",UP") {
		t.Errorf("eth%%d: want eth0 with the address: %s", out)
	}
	ifb(t, "hkifb2", "10.99.2.1/24")
	for _, tc := range []struct {
		devs  map[string]specs.LinuxNetDevice
		words string
	}{
		{map[string]specs.LinuxNetDevice{"hknosuch0": {}}, `linux.netDevices["hknosuch0"]: no network device "hknosuch0" on the host`},
		{map[string]specs.LinuxNetDevice{"hkifb2": {Name: "lo"}}, `linux.netDevices["hkifb2"]: a device named "lo" already exists in the container's network namespace`},
	} {
		e.spec.Linux.NetDevices = tc.devs
		e.spec.Process.Args = []string{"true"}
		e.write()
		so, se, code := e.hako("run", "--bundle", e.bundle, "c-netdev-err")
		if code == 0 || !strings.Contains(se, tc.words) {
			t.Errorf("exit %d, want failure with %q: %s%s", code, tc.words, so, se)
		}
	}
	if !hostHas("hkifb2") {
		t.Errorf("hkifb2 was refused before the move: it should still be on the host")
	}
	// No network namespace of its own: refused by validation.
	e.spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.UTSNamespace}}
	e.spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{"hkifb2": {}}
	e.write()
	if _, se, code := e.hako("run", "--bundle", e.bundle, "c-netdev-err"); code == 0 || !strings.Contains(se, "linux.netDevices: requires a new network namespace") {
		t.Errorf("without a network namespace: exit %d %s", code, se)
	}
}

// netEnv gives the env's container its own network namespace and ip(8).
func netEnv(e *env) {
	os.Symlink("busybox", filepath.Join(e.bundle, "rootfs/bin/ip"))
	for _, n := range e.spec.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			return
		}
	}
	e.addNS(specs.NetworkNamespace)
}
