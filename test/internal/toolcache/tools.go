package toolcache

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// The versions test/cri and test/vm build, in one place so that the two
// tests run the same tools and share their cache entries.
const (
	CriToolsVersion   = "v1.34.0"
	ContainerdVersion = "v2.4.2"
	RuncVersion       = "v1.5.3" // runc for containerd 2.x (Debian's 1.1.5 has no idmapped mounts)
)

const containerdCmd = "github.com/containerd/containerd/v2/cmd/"

// Go runs the go command in dir, with env added to the environment.
func Go(dir string, env []string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Containerd returns the directory holding containerd 2.x and its runc
// shim.
func Containerd() (string, error) {
	d, err := Cached(filepath.Join(Dir(), "containerd-"+ContainerdVersion), func(tmp string) error {
		return Go(os.TempDir(), []string{"GOBIN=" + filepath.Join(tmp, "bin")}, "install", "-tags", "no_btrfs",
			containerdCmd+"containerd@"+ContainerdVersion, containerdCmd+"containerd-shim-runc-v2@"+ContainerdVersion)
	})
	return filepath.Join(d, "bin"), err
}

// Ctr returns containerd's ctr, an entry of its own (Containerd's has none).
func Ctr() (string, error) {
	d, err := Cached(filepath.Join(Dir(), "ctr-"+ContainerdVersion), func(tmp string) error {
		return Go(os.TempDir(), []string{"GOBIN=" + tmp}, "install", containerdCmd+"ctr@"+ContainerdVersion)
	})
	return filepath.Join(d, "ctr"), err
}

// Runc returns runc 1.5, built with seccomp.
func Runc() (string, error) {
	d, err := Cached(filepath.Join(Dir(), "runc-"+RuncVersion), func(tmp string) error {
		return Go(os.TempDir(), []string{"GOBIN=" + tmp, "CGO_ENABLED=1"}, "install", "-tags", "seccomp", "github.com/opencontainers/runc@"+RuncVersion)
	})
	return filepath.Join(d, "runc"), err
}

// Critest returns cri-tools' critest, its test package built as a test
// binary, as its Makefile does.
func Critest() (string, error) {
	return criTool("critest", "test", "-c")
}

// Crictl returns cri-tools' crictl.
func Crictl() (string, error) {
	return criTool("crictl", "build")
}

func criTool(name string, goArgs ...string) (string, error) {
	d, err := Cached(filepath.Join(Dir(), name+"-"+CriToolsVersion), func(tmp string) error {
		out, err := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/cri-tools@"+CriToolsVersion).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go mod download cri-tools: %v: %s", err, out)
		}
		m := regexp.MustCompile(`"Dir": "([^"]+)"`).FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("no module dir in %s", out)
		}
		return Go(string(m[1]), nil, append(goArgs, "-o", filepath.Join(tmp, name), "./cmd/"+name)...)
	})
	return filepath.Join(d, name), err
}
