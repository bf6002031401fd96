package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSystemdDriverInVM proves the systemd cgroup driver against a real
// systemd: a VM whose PID 1 is Debian's systemd 252, booted on this
// machine's own userland (shared read-only over virtio 9p, with a tmpfs
// overlay on top; testdata/systemd-stage1.sh), once each on pure cgroup
// v2, the hybrid layout and pure v1. testdata/systemd-checks.sh runs hako
// (built here) by hand with --systemd-cgroup, and runc on the same bundles
// where it is installed, and prints one verdict per check; on v2 it also
// makes an unprivileged user with its own systemd, as whom
// testdata/systemd-rootless.sh runs the rootless checks from a login
// session.
func TestSystemdDriverInVM(t *testing.T) {
	qemu, kernel := vmTools(t, "qemu exports / over 9p as the file owners, and hako in the VM runs as root")
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skip("needs systemd installed on this machine (hack/deps.sh installs it): the VM boots this userland")
	}
	busybox := staticBusybox()
	if busybox == "" {
		t.Skip("needs a static busybox (apt-get install busybox-static)")
	}
	release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")

	share := t.TempDir() // /hakotest in the VM
	hako := filepath.Join(share, "hako")
	build := exec.Command("go", "build", "-tags", "netgo,osusergo", "-trimpath", "-ldflags=-s -w", "-o", hako, "../../cmd/hako")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hako: %v\n%s", err, out)
	}
	// The rootless checks run as a user of the VM, who must reach hako,
	// the scripts and the bundles: t.TempDir is 0700.
	if err := os.Chmod(share, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{"systemd-checks.sh": "checks.sh", "systemd-rootless.sh": "rootless.sh", "sandbox-vs-systemd-run.sh": "sbx.sh"} {
		data, err := os.ReadFile(filepath.Join("testdata", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(share, dst), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// runc 1.5 for the side-by-side checks, where this machine has it
	// (root's ~/go/bin is not the VM user's to read).
	if home, err := os.UserHomeDir(); err == nil {
		if data, err := os.ReadFile(filepath.Join(home, "go", "bin", "runc-1.5")); err == nil {
			if err := os.WriteFile(filepath.Join(share, "runc-1.5"), data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := systemdBundles(share, hako, busybox); err != nil {
		t.Fatalf("bundles: %v", err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	if err := stage1Initramfs(initrd, busybox, release); err != nil {
		t.Fatalf("initramfs: %v", err)
	}

	for _, mode := range []struct{ name, cmdline string }{
		{"v2", "systemd.unified_cgroup_hierarchy=1"},
		{"hybrid", "systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=0"},
		// Pure v1: no cgroup2 mount at all, systemd's own hierarchy is
		// the named v1 one (name=systemd).
		{"v1", "systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			out := bootSystemdVM(t, qemu, kernel, initrd, share,
				"console=ttyS0 panic=-1 quiet loglevel=3 systemd.show_status=0 systemd.unit=vmcheck.target "+
					"HAKO_VM_MODE="+mode.name+" "+mode.cmdline)
			var want []string
			if mode.name == "v2" {
				want = sandboxChecks()
			}
			verdicts(t, out, want...)
		})
	}
}

func bootSystemdVM(t *testing.T, qemu, kernel, initrd, share, cmdline string) string {
	// A hang guard, well above a boot's time (measured under TCG on 2
	// shared cores: v2 with the rootless checks 2m15s, hybrid 1m18s, v1
	// 1m12s; up to twice that with two other VMs running; the test logs
	// each section's HAKO-VM-AT time), and low enough that a hung boot
	// leaves the other VM tests inside hack/test.sh's -timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-m", "1536", "-smp", "2",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap",
		"-virtfs", "local,path="+share+",mount_tag=hakotest,security_model=passthrough,multidevs=remap")
	var console strings.Builder
	cmd.Stdout, cmd.Stderr = &console, &console
	start := time.Now()
	err := cmd.Run()
	t.Logf("VM (qemu start to exit) took %s; qemu: %v", time.Since(start).Round(time.Second), err)
	out := strings.ReplaceAll(console.String(), "\r", "")
	log := filepath.Join(os.TempDir(), "hako-systemd-vm-"+filepath.Base(t.Name())+".log")
	if os.WriteFile(log, []byte(out), 0o644) == nil {
		t.Logf("console in %s", log)
	}
	return out
}

// sandboxChecks are the verdicts testdata/sandbox-vs-systemd-run.sh must
// give on the v2 boot: each property set's sections, so that a set which
// stops being compared fails the test instead of passing unseen.
func sandboxChecks() []string {
	var names []string
	for _, set := range []string{"tmp-net-caps-homero", "strict", "home-yes", "home-tmpfs", "dev"} {
		for _, sec := range []string{"run", "ls", "w", "st", "link", "ns", "mnt"} {
			names = append(names, "sbx-"+set+"-"+sec)
		}
	}
	return names
}

// verdicts fails t for every FAIL line, for every check of want that
// gave no verdict, and if the script never finished.
func verdicts(t *testing.T, out string, want ...string) {
	line := regexp.MustCompile(`HAKO-VM-CHECK (\S+) (PASS|FAIL) ?(.*)`)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	done, n := false, 0
	seen := map[string]bool{}
	for sc.Scan() {
		if strings.Contains(sc.Text(), "HAKO-VM-DONE") {
			done = true
		}
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "HAKO-VM-AT" {
			t.Logf("at %ss since boot: %s", f[2], f[1])
		}
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n++
		seen[m[1]] = true
		if m[2] == "PASS" {
			t.Logf("PASS %s: %s", m[1], m[3])
		} else {
			t.Errorf("FAIL %s: %s", m[1], m[3])
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no verdict for %s", w)
		}
	}
	if !done || n == 0 {
		t.Errorf("the checks never finished (%d verdicts); console tail:\n%s", n, tail(out, 6000))
	}
}

// stage1Initramfs holds busybox, the modules for virtio 9p and overlay,
// and the stage-1 init that mounts the shared root and hands over to
// systemd.
func stage1Initramfs(path, busybox, release string) error {
	a := newInitramfs()
	script, err := os.ReadFile("testdata/systemd-stage1.sh")
	if err != nil {
		return err
	}
	a.file("init", script, 0o755)
	for _, d := range []string{"proc", "sys", "dev", "bin", "sbin"} {
		a.mkdirAll(d)
	}
	a.chardev("dev/console", 5, 1, 0o600)
	if err := a.copyFile("bin/busybox", busybox); err != nil {
		return err
	}
	for _, n := range []string{"sh", "mount", "umount", "insmod", "mkdir", "rm", "cat", "switch_root", "poweroff", "echo"} {
		a.symlink("bin/"+n, "busybox")
	}
	for _, m := range []string{
		"drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_pci_legacy_dev",
		"drivers/virtio/virtio_pci_modern_dev", "drivers/virtio/virtio_pci", "net/9p/9pnet", "net/9p/9pnet_virtio",
		"fs/netfs/netfs", "fs/fscache/fscache", "fs/9p/9p", "fs/overlayfs/overlay",
	} {
		p := filepath.Join("/lib/modules", release, "kernel", m+".ko")
		if _, err := os.Stat(p); err != nil {
			continue // built in, or not needed by this kernel
		}
		if err := a.copyFile("modules/"+filepath.Base(p), p); err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return a.writeTo(f)
}

// vmUserID is the uid and gid of the unprivileged user systemd-checks.sh
// makes in the VM for the rootless checks.
const vmUserID = 1500

// systemdBundles writes the bundles the checks use, from `hako spec`'s
// default, sharing one busybox rootfs.
func systemdBundles(share, hako, busybox string) error {
	rootfs := filepath.Join(share, "bundles", "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return err
	}
	for _, n := range strings.Fields(string(list)) {
		if n != "busybox" {
			_ = os.Symlink("busybox", filepath.Join(rootfs, "bin", n))
		}
	}
	tmp, err := os.MkdirTemp("", "hako-spec")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.Command(hako, "spec", "--bundle", tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("hako spec: %v: %s", err, out)
	}
	base, err := os.ReadFile(filepath.Join(tmp, "config.json"))
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(tmp, "config.json")); err != nil {
		return err
	}
	if out, err := exec.Command(hako, "spec", "--rootless", "--bundle", tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("hako spec --rootless: %v: %s", err, out)
	}
	rootlessBase, err := os.ReadFile(filepath.Join(tmp, "config.json"))
	if err != nil {
		return err
	}
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	limits := func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: i64(64 << 20)},
			Pids:   &specs.LinuxPids{Limit: i64(50)},
			CPU:    &specs.LinuxCPU{Quota: i64(50000), Period: u64(100000), Shares: u64(512)},
		}
	}
	bundles := map[string]func(*specs.Spec){
		"limits":  func(s *specs.Spec) { limits(s); s.Process.Args = []string{"sleep", "1000"} },
		"runonce": func(s *specs.Spec) { limits(s); s.Process.Args = []string{"true"} },
		"nested": func(s *specs.Spec) {
			s.Linux.CgroupsPath = "test-a-b.slice:pfx:c2"
			s.Process.Args = []string{"sleep", "1000"}
		},
		"badpath": func(s *specs.Spec) { s.Linux.CgroupsPath = "/not/systemd/form"; s.Process.Args = []string{"true"} },
		"slowhook": func(s *specs.Spec) {
			s.Process.Args = []string{"sleep", "1000"}
			// Holds create after the unit exists, for the kill -9 check.
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}}}}
		},
	}
	// The rootless user of systemd-checks.sh (uid and gid 1500) as root
	// of the container, with a cgroup namespace as on any v2 host (this
	// machine's `hako spec` leaves it out: it is hybrid).
	rootless := func(s *specs.Spec) {
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: vmUserID, Size: 1}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: vmUserID, Size: 1}}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		limits(s)
	}
	rootlessBundles := map[string]func(*specs.Spec){
		"rootless": func(s *specs.Spec) { rootless(s); s.Process.Args = []string{"sleep", "1000"} },
		"rootless-once": func(s *specs.Spec) {
			rootless(s)
			s.Process.Args = []string{"cat", "/sys/fs/cgroup/memory.max"}
		},
		"rootless-slowhook": func(s *specs.Spec) {
			rootless(s)
			s.Process.Args = []string{"sleep", "1000"}
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}}}}
		},
	}
	for name, edit := range rootlessBundles {
		bundles[name] = edit
	}
	for name, edit := range bundles {
		var s specs.Spec
		from := base
		if _, ok := rootlessBundles[name]; ok {
			from = rootlessBase
		}
		if err := json.Unmarshal(from, &s); err != nil {
			return err
		}
		s.Root = &specs.Root{Path: "/hakotest/bundles/rootfs", Readonly: true}
		s.Process.Terminal = false
		edit(&s)
		dir := filepath.Join(share, "bundles", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		out, err := json.MarshalIndent(&s, "", "\t")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}
