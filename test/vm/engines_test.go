package vm

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hako-runtime/hako/test/internal/toolcache"
)

// TestEnginesSystemdInVM runs hako under the engines as a systemd host
// configures them, in the systemd VM of TestSystemdDriverInVM (pure cgroup
// v2, one boot for everything): containerd 2.x's CRI with SystemdCgroup =
// true as on kubeadm nodes, driven through crictl, and Docker with
// native.cgroupdriver=systemd. Each engine runs the same pod or container
// with hako and with runc (runc 1.5 under containerd, Debian's runc under
// Docker) and testdata/engines-checks.sh compares their units, limits and
// cleanup.
func TestEnginesSystemdInVM(t *testing.T) {
	qemu, kernel := vmTools(t, "qemu exports / over 9p as the file owners, and the engines in the VM run as root")
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skip("needs systemd installed on this machine (hack/deps.sh installs it): the VM boots this userland")
	}
	busybox := staticBusybox()
	if busybox == "" {
		t.Skip("needs a static busybox (apt-get install busybox-static)")
	}
	// Docker's own containerd and shim are Debian's (the VM runs this
	// machine's userland); dockerd starts that containerd itself.
	for _, p := range []string{"/usr/sbin/dockerd", "/usr/bin/docker", "/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc", "/usr/bin/systemd-run",
		"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s (hack/deps.sh installs docker.io, containerd, runc, systemd and containernetworking-plugins)", p)
		}
	}
	release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")

	share := t.TempDir() // /hakotest in the VM
	hako := filepath.Join(share, "hako")
	build := exec.Command("go", "build", "-tags", "netgo,osusergo", "-trimpath", "-ldflags=-s -w", "-o", hako, "../../cmd/hako")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hako: %v\n%s", err, out)
	}
	pause := filepath.Join(t.TempDir(), "pause")
	build = exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", pause, "../cri/testimage")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the pause program (test/cri/testimage): %v\n%s", err, out)
	}
	tl := engineTools(t, share)
	if err := writeImageArchive(filepath.Join(share, "images.tar"), busybox, pause); err != nil {
		t.Fatalf("image archive: %v", err)
	}
	// HAKO_VM_ENGINES ("cri", "docker") narrows the run while debugging one.
	env := fmt.Sprintf("CONTAINERD2=%s\nCTR=%s\nRUNC15=%s\nCRICTL=%s\nENGINES=%q\n", tl.containerd, tl.ctr, tl.runc, tl.crictl, os.Getenv("HAKO_VM_ENGINES"))
	if err := os.WriteFile(filepath.Join(share, "env.sh"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	checks, err := os.ReadFile("testdata/engines-checks.sh")
	if err != nil {
		t.Fatal(err)
	}
	// stage 1 starts /hakotest/checks.sh as the VM's one service.
	if err := os.WriteFile(filepath.Join(share, "checks.sh"), checks, 0o755); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	if err := stage1Initramfs(initrd, busybox, release); err != nil {
		t.Fatalf("initramfs: %v", err)
	}
	out := bootSystemdVM(t, qemu, kernel, initrd, share,
		"console=ttyS0 panic=-1 quiet loglevel=3 systemd.show_status=0 systemd.unit=vmcheck.target "+
			"HAKO_VM_MODE=v2 systemd.unified_cgroup_hierarchy=1")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "HAKO-VM-TIME ") {
			t.Log(sc.Text())
		}
	}
	verdicts(t, out)
}

type engines struct {
	containerd string // the directory with containerd 2.x and its shim
	ctr        string
	runc       string // runc 1.5
	crictl     string
}

// engineTools finds containerd 2.x, runc 1.5 and crictl in test/cri's
// cache ($HAKO_CRI_CACHE, default ~/.cache/hako-cri), building what is
// missing the way test/cri does. The VM sees this machine's files at the
// same paths, except under /tmp and /run (tmpfs in the VM): tools there
// are copied into the share.
func engineTools(t *testing.T, share string) engines {
	c := toolcache.Dir()
	var e engines
	for _, tool := range []struct {
		path  *string
		build func() (string, error)
	}{{&e.containerd, toolcache.Containerd}, {&e.ctr, toolcache.Ctr}, {&e.runc, toolcache.Runc}, {&e.crictl, toolcache.Crictl}} {
		p, err := tool.build()
		if err != nil {
			t.Fatal(err)
		}
		*tool.path = p
	}
	if hidden(c) {
		dir := filepath.Join(share, "tools")
		for _, p := range []*string{&e.ctr, &e.runc, &e.crictl} {
			*p = copyInto(t, dir, *p)
		}
		for _, n := range []string{"containerd", "containerd-shim-runc-v2"} {
			copyInto(t, filepath.Join(dir, "containerd"), filepath.Join(e.containerd, n))
		}
		e.containerd = filepath.Join(dir, "containerd")
		for _, p := range []*string{&e.containerd, &e.ctr, &e.runc, &e.crictl} {
			*p = "/hakotest/" + strings.TrimPrefix(*p, share+"/")
		}
	}
	return e
}

// hidden says whether the VM's own tmpfs covers path.
func hidden(path string) bool {
	p, _ := filepath.Abs(path)
	p, _ = filepath.EvalSymlinks(p)
	for _, d := range []string{"/tmp", "/run"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func copyInto(t *testing.T, dir, src string) string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeImageArchive writes two images in `docker save` form, which both
// `docker load` (Docker 20.10 reads only this form) and `ctr images
// import` take, so no registry is needed: the CRI's sandbox image and the
// busybox the checks run, sharing one layer (a static busybox with its
// applets, and the pause program at /pause).
func writeImageArchive(path, busybox, pause string) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: mode, Format: tar.FormatPAX})
	}
	reg := func(name, src string, data []byte) error {
		if src != "" {
			var err error
			if data, err = os.ReadFile(src); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data)), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "root", "var", "run"} {
		if err := dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := dir("tmp", 0o1777); err != nil {
		return err
	}
	if err := reg("bin/busybox", busybox, nil); err != nil {
		return err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %v", err)
	}
	for _, n := range strings.Fields(string(list)) {
		if n == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + n, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := reg("pause", pause, nil); err != nil {
		return err
	}
	if err := reg("etc/passwd", "", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	hex := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
	layerHex := hex(layer.Bytes())
	// One layer, two configs: the sandbox runs /pause, the containers sh.
	var manifest []map[string]any
	type blob struct {
		name string
		data []byte
	}
	var blobs []blob
	for _, im := range []struct {
		tag string
		cfg map[string]any
	}{
		{"registry.k8s.io/pause:3.10", map[string]any{"Entrypoint": []string{"/pause"}}},
		{"hako.test/busybox:latest", map[string]any{"Cmd": []string{"sh"}}},
	} {
		im.cfg["Env"] = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		config, err := json.Marshal(map[string]any{
			"architecture": "amd64",
			"os":           "linux",
			"created":      "2025-01-01T00:00:00Z",
			"config":       im.cfg,
			"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerHex}},
		})
		if err != nil {
			return err
		}
		name := hex(config) + ".json"
		blobs = append(blobs, blob{name, config})
		manifest = append(manifest, map[string]any{
			"Config":   name,
			"RepoTags": []string{im.tag},
			"Layers":   []string{layerHex + "/layer.tar"},
		})
	}
	mf, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	blobs = append(blobs, blob{layerHex + "/layer.tar", layer.Bytes()}, blob{"manifest.json", mf})
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	out := tar.NewWriter(f)
	for _, e := range blobs {
		if err := out.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.data))}); err != nil {
			return err
		}
		if _, err := io.Copy(out, bytes.NewReader(e.data)); err != nil {
			return err
		}
	}
	return out.Close()
}
