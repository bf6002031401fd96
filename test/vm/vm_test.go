// Package vm proves hako on a pure cgroup v2 host with an older kernel:
// the test packs hako, its shared libraries, a static busybox and a few
// bundles into an initramfs, boots Debian's 6.1 kernel on it under qemu
// (TCG: no KVM is assumed) and reads the verdicts testdata/init.sh prints
// on the serial console. The build machines run a hybrid cgroup layout and
// a newer kernel, so this is the only place the v2-only paths (eBPF device
// filter, cgroup.freeze, memory.max, ...) meet a 6.1 kernel.
package vm

import (
	"bufio"
	"bytes"
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

// bootTimeout bounds the whole VM run. Measured under TCG on 2 cores the
// VM finishes in well under this; it stays below go test's default
// 10-minute timeout so a hung VM is reported with its console, not as a
// bare test-binary panic.
const bootTimeout = 8 * time.Minute

// checks are the verdicts init.sh must print; one missing is a failure
// too (the script died or hung before reaching it).
var checks = []string{
	"host-pure-v2", "run-exit-code", "container-cgroup2-mount", "limits", "update", "pause", "resume", "pids-fork-loop",
	"kill-all-cgroup-kill", "delete-removes-cgroup", "devices-denied", "devices-allowed-rule", "doctor-v2", "inspect-container",
	"doctor-unprivileged", "inspect-unprivileged",
	"sandbox-private-tmp-strict", "sandbox-limits-v2", "sandbox-rootless-delegated", "sandbox-rootless-undelegated-refused", "sandbox-overlay-needs-6.13", "no-cgroups-left",
}

// vmTools skips unless the VM tests can run here (root, for why; qemu;
// Debian 12's 6.1 kernel) and returns qemu's path and the kernel's.
func vmTools(t *testing.T, why string) (qemu, kernel string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("needs qemu-system-x86_64 (apt-get install qemu-system-x86)")
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-6.1.*")
	if len(kernels) == 0 {
		t.Skip("needs a 6.1 kernel in /boot/vmlinuz-6.1.* (apt-get install linux-image-amd64 on Debian 12)")
	}
	return qemu, kernels[len(kernels)-1]
}

func TestHakoInVM(t *testing.T) {
	qemu, kernel := vmTools(t, "hako in the VM runs as root, and packing device nodes is simplest as root")
	busybox := staticBusybox()
	if busybox == "" {
		t.Skip("needs a static busybox (apt-get install busybox-static)")
	}

	dir := t.TempDir()
	hako := filepath.Join(dir, "hako")
	// Stripped: a smaller initramfs is noticeably faster to unpack and
	// copy under TCG.
	build := exec.Command("go", "build", "-tags", "netgo,osusergo", "-trimpath", "-ldflags=-s -w", "-o", hako, "../../cmd/hako")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hako: %v\n%s", err, out)
	}

	initrd := filepath.Join(dir, "initrd.gz")
	if err := buildInitramfs(t, initrd, hako, busybox, kernel); err != nil {
		t.Fatalf("building the initramfs: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-m", "1024", "-smp", "1",
		"-nographic", "-no-reboot", "-nic", "none", // no iPXE probe: faster boot
		"-kernel", kernel, "-initrd", initrd,
		// panic=-1: if init dies the kernel panics, reboots, and
		// -no-reboot turns that into qemu exiting rather than hanging.
		"-append", "console=ttyS0 panic=-1 quiet")
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)
	t.Logf("VM run (qemu start to exit) took %s, kernel %s", elapsed.Round(time.Second), filepath.Base(kernel))
	out := strings.ReplaceAll(console.String(), "\r", "")
	if err := os.WriteFile(filepath.Join(os.TempDir(), "hako-vm-console.log"), []byte(out), 0o644); err == nil {
		t.Logf("full console in %s", filepath.Join(os.TempDir(), "hako-vm-console.log"))
	}

	seen := map[string]bool{}
	done := false
	line := regexp.MustCompile(`HAKO-VM-CHECK (\S+) (PASS|FAIL) ?(.*)`)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "HAKO-VM-DONE") {
			done = true
		}
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		seen[m[1]] = true
		if m[2] == "PASS" {
			t.Logf("PASS %s: %s", m[1], m[3])
		} else {
			t.Errorf("FAIL %s: %s", m[1], m[3])
		}
	}
	for _, c := range checks {
		if !seen[c] {
			t.Errorf("check %s never reported", c)
		}
	}
	if !done {
		t.Errorf("HAKO-VM-DONE never appeared (qemu: %v, ctx: %v); console tail:\n%s", runErr, ctx.Err(), tail(out, 4000))
	} else if t.Failed() {
		t.Logf("console tail:\n%s", tail(out, 4000))
	}
}

func staticBusybox() string {
	for _, p := range []string{os.Getenv("BUSYBOX"), "/bin/busybox", "/usr/bin/busybox"} {
		if p == "" {
			continue
		}
		// Debian's busybox (not -static) is dynamic; the VM has no libc
		// for it to use beyond hako's, and the bundle has none at all.
		out, err := exec.Command("file", "-L", p).Output()
		if err == nil && bytes.Contains(out, []byte("statically linked")) {
			return p
		}
		if err != nil && !bytes.Contains(mustRead(p, 4096), []byte("/lib64/ld-linux")) {
			// No file(1): accept a binary without an ELF interpreter.
			return p
		}
	}
	return ""
}

func mustRead(p string, n int) []byte {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, n)
	k, _ := f.Read(b)
	return b[:k]
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// buildInitramfs writes the VM's whole world into initrd.
func buildInitramfs(t *testing.T, initrd, hako, busybox, kernel string) error {
	a := newInitramfs()
	script, err := os.ReadFile("testdata/init.sh")
	if err != nil {
		return err
	}
	a.file("init", script, 0o755)
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc", "root"} {
		a.mkdirAll(d)
	}
	// The kernel opens /dev/console for init's stdio before /init can
	// mount devtmpfs; without the node init.sh's output is lost.
	a.chardev("dev/console", 5, 1, 0o600)

	// busybox and its applets, where busybox says they go.
	if err := a.copyFile("bin/busybox", busybox); err != nil {
		return err
	}
	list, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %v", err)
	}
	applets := strings.Fields(string(list))
	for _, p := range applets {
		if p != "bin/busybox" {
			a.symlink(p, "/bin/busybox")
		}
	}

	// hako, and what ldd says it loads, at the same paths: the loader
	// (its ELF interpreter) finds libc and libseccomp in its built-in
	// multiarch directories, so no ld.so.cache is needed. hako links
	// statically, and ldd then says so and fails: nothing more to pack.
	if err := a.copyFile("bin/hako", hako); err != nil {
		return err
	}
	ldd, err := exec.Command("ldd", hako).CombinedOutput()
	if err != nil && !strings.Contains(string(ldd), "not a dynamic executable") {
		return fmt.Errorf("ldd %s: %v: %s", hako, err, ldd)
	}
	if err != nil {
		ldd = nil
	}
	for _, f := range strings.Fields(string(ldd)) {
		if strings.HasPrefix(f, "/") {
			if err := a.copyFile(f, f); err != nil {
				return err
			}
			t.Logf("packing %s", f)
		}
	}

	// overlay is a module in Debian's 6.1; hako's tests do not need it
	// but other engines' bundles do, so load it when it is there.
	release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	for _, m := range []string{"kernel/fs/overlayfs/overlay.ko"} {
		p := filepath.Join("/lib/modules", release, m)
		if _, err := os.Stat(p); err == nil {
			if err := a.copyFile("modules/"+filepath.Base(p), p); err != nil {
				return err
			}
		}
	}

	// One rootfs shared by every bundle (read-only in each config).
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		a.mkdirAll("bundles/rootfs/" + d)
	}
	if err := a.copyFile("bundles/rootfs/bin/busybox", busybox); err != nil {
		return err
	}
	for _, p := range applets {
		if n := filepath.Base(p); n != "busybox" {
			a.symlink("bundles/rootfs/bin/"+n, "busybox")
		}
	}
	a.file("bundles/rootfs/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	// c 1:11 is /dev/kmsg: any process may write it, so in a container
	// only the device filter stands between a write and the kernel log.
	a.chardev("bundles/rootfs/xkmsg", 1, 11, 0o666)

	bundles, err := bundleConfigs(t, hako)
	if err != nil {
		return err
	}
	for name, data := range bundles {
		a.file("bundles/"+name+"/config.json", data, 0o644)
	}

	f, err := os.Create(initrd)
	if err != nil {
		return err
	}
	if err := a.writeTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if st, err := os.Stat(initrd); err == nil {
		t.Logf("initramfs: %d entries, %d KiB gzip'd", len(a.entries), st.Size()>>10)
	}
	return nil
}

// bundleConfigs makes each check's config.json from `hako spec`'s default,
// so the VM exercises the same defaults users get.
func bundleConfigs(t *testing.T, hako string) (map[string][]byte, error) {
	dir := t.TempDir()
	if out, err := exec.Command(hako, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hako spec: %v: %s", err, out)
	}
	base, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	mk := func(edit func(s *specs.Spec)) ([]byte, error) {
		s := &specs.Spec{}
		if err := json.Unmarshal(base, s); err != nil {
			return nil, err
		}
		s.Process.Terminal = false
		s.Root.Path = "/bundles/rootfs"
		s.Root.Readonly = true
		edit(s)
		return json.MarshalIndent(s, "", "\t")
	}
	i64 := func(v int64) *int64 { return &v }
	limits := func(s *specs.Spec, mem, pids int64) {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		if mem > 0 {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(mem)}
		}
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(pids)}
	}
	// devScript reports "mknod=RC write=RC pre=RC": a fresh kmsg node
	// (needs CAP_MKNOD; written only if it could be made) and the packed
	// one.
	devScript := `mknod /dev/xk c 1 11; m=$?; w=n/a; if [ -c /dev/xk ]; then echo hako-vm-test >/dev/xk; w=$?; fi; ` +
		`echo hako-vm-test >/xkmsg; p=$?; echo "mknod=$m write=$w pre=$p"`
	withMknod := func(s *specs.Spec) {
		c := s.Process.Capabilities
		c.Bounding = append(c.Bounding, "CAP_MKNOD")
		c.Effective = append(c.Effective, "CAP_MKNOD")
		c.Permitted = append(c.Permitted, "CAP_MKNOD")
		s.Process.Args = []string{"sh", "-c", devScript}
	}
	edits := map[string]func(s *specs.Spec){
		"echo": func(s *specs.Spec) {
			s.Process.Args = []string{"sh", "-c", "echo hello-from-container; exit 7"}
		},
		"cgmount": func(s *specs.Spec) {
			s.Process.Args = []string{"grep", " /sys/fs/cgroup ", "/proc/self/mountinfo"}
		},
		"limits": func(s *specs.Spec) {
			s.Process.Args = []string{"sleep", "600"}
			limits(s, 64<<20, 20)
		},
		// The inner shell forks sleeps until pids.max stops it (ash exits
		// on a failed fork); the outer one then execs, needing no fork, so
		// the cgroup stays full for the host to inspect.
		"forkbomb": func(s *specs.Spec) {
			s.Process.Args = []string{"sh", "-c",
				`sh -c 'for i in $(seq 60); do sleep 300 & done; echo unreachable' 2>&1; echo spawned; exec sleep 300`}
			limits(s, 0, 20)
		},
		"devdeny": withMknod,
		"devallow": func(s *specs.Spec) {
			withMknod(s)
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: "c", Major: i64(1), Minor: i64(11), Access: "rwm"})
		},
	}
	res := map[string][]byte{}
	for name, e := range edits {
		data, err := mk(e)
		if err != nil {
			return nil, err
		}
		res[name] = data
	}
	return res, nil
}
