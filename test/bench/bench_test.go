// Package bench compares hako with runc and crun, when they are installed,
// on the same busybox bundle: `run` of /bin/true back to back and cold (100
// ms idle before each, as real starts are), `exec` into a running
// container, and the runtime's peak RSS (the maxrss-KiB metric, by GNU
// time). BenchmarkSideBySide prints all of them as one table.
//
//	sudo go test -run '^$' -bench . ./test/bench/
//
// crun refuses hybrid cgroup hosts while hugetlb sits on cgroup2; move it to
// v1 first to include it (see the README). Nothing here asserts a timing.
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

type runtime struct{ name, bin, root string }

var (
	runtimes []runtime
	bundle   string
	setupErr error
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("bench: needs root; skipped")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "hako-bench-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	hako := filepath.Join(dir, "hako")
	if out, err := exec.Command("go", "build", "-tags", "netgo,osusergo", "-o", hako, "../../cmd/hako").CombinedOutput(); err != nil {
		fmt.Printf("build hako: %v\n%s", err, out)
		os.Exit(1)
	}
	runtimes = append(runtimes, runtime{"hako", hako, filepath.Join(dir, "root-hako")})
	for _, n := range []string{"crun", "runc"} {
		if p, err := exec.LookPath(n); err == nil {
			runtimes = append(runtimes, runtime{n, p, filepath.Join(dir, "root-"+n)})
		}
	}
	bundle, setupErr = makeBundle(dir, hako)
	os.Exit(m.Run())
}

func makeBundle(dir, hako string) (string, error) {
	b := filepath.Join(dir, "bundle")
	rootfs := filepath.Join(b, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return "", err
		}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("needs busybox-static: %w", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755); err != nil {
		return "", err
	}
	for _, a := range []string{"sh", "true", "sleep"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	if out, err := exec.Command(hako, "spec", "--bundle", b).CombinedOutput(); err != nil {
		return "", fmt.Errorf("hako spec: %v %s", err, out)
	}
	var spec map[string]any
	raw, _ := os.ReadFile(filepath.Join(b, "config.json"))
	if err := json.Unmarshal(raw, &spec); err != nil {
		return "", err
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/bin/true"}
	// The ociVersion crun 1.8.1 accepts.
	spec["ociVersion"] = "1.0.2-dev"
	out, _ := json.MarshalIndent(spec, "", " ")
	return b, os.WriteFile(filepath.Join(b, "config.json"), out, 0o644)
}

func withArgs(b *testing.B, args ...string) string {
	b.Helper()
	raw, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
	var spec map[string]any
	json.Unmarshal(raw, &spec)
	spec["process"].(map[string]any)["args"] = args
	// The same rootfs, by absolute path: runc refuses a rootfs reached
	// through a symlink.
	spec["root"].(map[string]any)["path"] = filepath.Join(bundle, "rootfs")
	dir := filepath.Join(filepath.Dir(bundle), fmt.Sprintf("bundle-%d", time.Now().UnixNano()))
	os.MkdirAll(dir, 0o755)
	out, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, "config.json"), out, 0o644)
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (r runtime) cmd(args ...string) *exec.Cmd {
	return exec.Command(r.bin, append([]string{"--root", r.root}, args...)...)
}

func benchRun(b *testing.B, cold bool) {
	if setupErr != nil {
		b.Skip(setupErr)
	}
	for _, rt := range runtimes {
		b.Run(rt.name, func(b *testing.B) {
			if out, err := rt.cmd("run", "--bundle", bundle, "probe").CombinedOutput(); err != nil {
				b.Skipf("%s cannot run here: %v: %s", rt.name, err, out)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if cold {
					b.StopTimer()
					time.Sleep(100 * time.Millisecond)
					b.StartTimer()
				}
				c := rt.cmd("run", "--bundle", bundle, fmt.Sprintf("b%d", i))
				if err := c.Run(); err != nil {
					b.Fatalf("%s run: %v", rt.name, err)
				}
			}
			b.StopTimer()
			if kib, err := maxRSS(rt, "run", "--bundle", bundle, "rss"); err == nil {
				b.ReportMetric(float64(kib), "maxrss-KiB")
			}
		})
	}
}

func BenchmarkRun(b *testing.B)     { benchRun(b, false) }
func BenchmarkRunCold(b *testing.B) { benchRun(b, true) }

func BenchmarkExec(b *testing.B) {
	if setupErr != nil {
		b.Skip(setupErr)
	}
	sleeper := withArgs(b, "sleep", "100000")
	for _, rt := range runtimes {
		b.Run(rt.name, func(b *testing.B) {
			// No pipes: the detached container would hold them open.
			if err := rt.cmd("run", "-d", "--bundle", sleeper, "exec-target").Run(); err != nil {
				b.Skipf("%s cannot run here: %v", rt.name, err)
			}
			defer rt.cmd("delete", "--force", "exec-target").Run()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if out, err := rt.cmd("exec", "exec-target", "/bin/true").CombinedOutput(); err != nil {
					b.Fatalf("%s exec: %v: %s", rt.name, err, out)
				}
			}
		})
	}
}

// BenchmarkCycle is create + start + delete --force, one command each, as
// containerd's shim drives a runtime.
func BenchmarkCycle(b *testing.B) {
	if setupErr != nil {
		b.Skip(setupErr)
	}
	for _, rt := range runtimes {
		b.Run(rt.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				id := fmt.Sprintf("c%d", i)
				// No pipes: the created container's init holds its stdio
				// open until it ends, and CombinedOutput would wait for it.
				if err := rt.cmd("create", "--bundle", bundle, id).Run(); err != nil {
					b.Skipf("%s create: %v", rt.name, err)
				}
				if out, err := rt.cmd("start", id).CombinedOutput(); err != nil {
					b.Fatalf("%s start: %v: %s", rt.name, err, out)
				}
				if out, err := rt.cmd("delete", "--force", id).CombinedOutput(); err != nil {
					b.Fatalf("%s delete: %v: %s", rt.name, err, out)
				}
			}
		})
	}
}

// BenchmarkParallel20 is 20 `run`s started at once; one op is the wall
// time until all 20 have ended (the cost of contention: locks, RCU waits,
// cgroup creation under load).
func BenchmarkParallel20(b *testing.B) {
	if setupErr != nil {
		b.Skip(setupErr)
	}
	for _, rt := range runtimes {
		b.Run(rt.name, func(b *testing.B) {
			if out, err := rt.cmd("run", "--bundle", bundle, "probe").CombinedOutput(); err != nil {
				b.Skipf("%s cannot run here: %v: %s", rt.name, err, out)
			}
			for i := 0; i < b.N; i++ {
				errs := make(chan error, 20)
				for j := 0; j < 20; j++ {
					go func(j int) {
						out, err := rt.cmd("run", "--bundle", bundle, fmt.Sprintf("p%d-%d", i, j)).CombinedOutput()
						if err != nil {
							err = fmt.Errorf("%v: %s", err, out)
						}
						errs <- err
					}(j)
				}
				for j := 0; j < 20; j++ {
					if err := <-errs; err != nil {
						b.Fatalf("%s run: %v", rt.name, err)
					}
				}
			}
		})
	}
}
