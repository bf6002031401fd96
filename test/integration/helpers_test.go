// Package integration runs real containers with the hako binary, as root,
// against this machine's kernel. Each test builds a busybox bundle from the
// host's static busybox (Debian: busybox-static); nothing is downloaded.
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var hakoBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration tests skipped: they need root")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "hako-it-")
	if err != nil {
		panic(err)
	}
	hakoBin = filepath.Join(dir, "hako")
	out, err := exec.Command("go", "build", "-tags", "netgo,osusergo", "-o", hakoBin, "../../cmd/hako").CombinedOutput()
	if err != nil {
		fmt.Printf("build hako: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func busybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BUSYBOX"), "/bin/busybox", "/usr/bin/busybox"} {
		if p == "" {
			continue
		}
		if out, err := exec.Command("file", "-L", p).Output(); err == nil && !bytes.Contains(out, []byte("statically linked")) && !bytes.Contains(out, []byte("static-pie")) {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("needs a static busybox (apt-get install busybox-static)")
	return ""
}

// env is one test's bundle and private --root.
type env struct {
	t      *testing.T
	bundle string
	root   string
	spec   *specs.Spec
}

func newEnv(t *testing.T) *env {
	t.Helper()
	bb := busybox(t)
	dir := t.TempDir()
	e := &env{t: t, bundle: filepath.Join(dir, "bundle"), root: filepath.Join(dir, "state")}
	rootfs := filepath.Join(e.bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "mnt"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "ls", "echo", "sleep", "id", "mount", "readlink", "touch", "hostname", "grep", "true", "wc", "stat", "test", "ps", "ulimit"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"), 0o644)
	out := e.hakoOK("spec", "--bundle", e.bundle)
	_ = out
	data, err = os.ReadFile(filepath.Join(e.bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	e.spec = &specs.Spec{}
	if err := json.Unmarshal(data, e.spec); err != nil {
		t.Fatal(err)
	}
	e.spec.Process.Terminal = false
	t.Cleanup(func() {
		ids, _ := os.ReadDir(e.root)
		for _, id := range ids {
			exec.Command(hakoBin, "--root", e.root, "delete", "--force", id.Name()).Run()
		}
	})
	return e
}

func (e *env) write() {
	e.t.Helper()
	data, err := json.MarshalIndent(e.spec, "", " ")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.bundle, "config.json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// hako runs the binary with this env's --root; it returns stdout, stderr
// and the exit code.
func (e *env) hako(args ...string) (string, string, int) {
	e.t.Helper()
	return e.hakoWithFds(nil, args...)
}

func tempOut(t *testing.T) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readAll(f *os.File) string {
	data, _ := os.ReadFile(f.Name())
	return string(data)
}

// hakoWithFds runs hako with the given host paths open as fds 3, 4, ...,
// inherited without --preserve-fds, as a careless caller would.
// hakoEnv is added to the environment of every hako an env runs
// (bothSides sets it).
var hakoEnv []string

// bothSides runs fn twice: with the container process's plan applied by
// nsexec.c where it can be (as hako runs), and with every plan left to Go
// (nsenter.EnvTestNoCPlan). A defence both sides have is tested on each.
func bothSides(t *testing.T, fn func(t *testing.T)) {
	t.Run("C", fn)
	t.Run("Go", func(t *testing.T) {
		hakoEnv = []string{"_HAKO_TEST_NO_C_PLAN=1"}
		defer func() { hakoEnv = nil }()
		fn(t)
	})
}

func (e *env) hakoWithFds(paths []string, args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(hakoBin, append([]string{"--root", e.root}, args...)...)
	cmd.Dir = e.bundle
	if len(hakoEnv) > 0 {
		cmd.Env = append(os.Environ(), hakoEnv...)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			e.t.Fatal(err)
		}
		defer f.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	// Files, not pipes: a detached container keeps its stdio open, and
	// exec.Cmd would wait for a pipe's every writer to close.
	so, se := tempOut(e.t), tempOut(e.t)
	cmd.Stdout, cmd.Stderr = so, se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("hako %v: %v", args, err)
	}
	return readAll(so), readAll(se), code
}

func (e *env) hakoOK(args ...string) string {
	e.t.Helper()
	so, se, code := e.hako(args...)
	if code != 0 {
		e.t.Fatalf("hako %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, so, se)
	}
	return so
}

// run runs the container with args as its process and returns its output.
func (e *env) run(args ...string) string {
	e.t.Helper()
	e.spec.Process.Args = args
	e.write()
	return e.hakoOK("run", "--bundle", e.bundle, "c-"+sanitize(e.t.Name()))
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// background creates and starts a long-running container.
func (e *env) background(id string) int {
	e.t.Helper()
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	e.hakoOK("run", "-d", "--bundle", e.bundle, id)
	var st struct{ Pid int }
	json.Unmarshal([]byte(e.hakoOK("state", id)), &st)
	if st.Pid <= 0 {
		e.t.Fatalf("no pid for %s", id)
	}
	return st.Pid
}

func (e *env) addNS(t specs.LinuxNamespaceType) {
	e.spec.Linux.Namespaces = append(e.spec.Linux.Namespaces, specs.LinuxNamespace{Type: t})
}

// dropNS takes namespaces of type t out of the config: the container
// shares the host's.
func (e *env) dropNS(t specs.LinuxNamespaceType) {
	var nss []specs.LinuxNamespace
	for _, n := range e.spec.Linux.Namespaces {
		if n.Type != t {
			nss = append(nss, n)
		}
	}
	e.spec.Linux.Namespaces = nss
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
