package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The parity tests run the runtime-spec 1.1 to 1.3 fields that runc 1.5
// applies in real containers, read them back from inside (a static probe,
// testdata/probe) and where it matters from the host, and run the same
// bundle under runc 1.5 when it is built (RUNC15, or ~/go/bin/runc-1.5):
// the same config must give the same observation, or the same refusal.

var (
	probeOnce sync.Once
	probeBin  string
	probeErr  error
)

// probe builds testdata/probe once and copies it into the env's rootfs.
func (e *env) probe() {
	e.t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hako-probe-")
		if err != nil {
			probeErr = err
			return
		}
		probeBin = filepath.Join(dir, "probe")
		cmd := exec.Command("go", "build", "-o", probeBin, "./testdata/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = err
			probeBin = string(out)
		}
	})
	if probeErr != nil {
		e.t.Fatalf("build probe: %v\n%s", probeErr, probeBin)
	}
	data, err := os.ReadFile(probeBin)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.bundle, "rootfs/bin/probe"), data, 0o755); err != nil {
		e.t.Fatal(err)
	}
}

// runc15 is runc 1.5's argv with a private --root, or nil when not built.
func runc15(t *testing.T) []string {
	t.Helper()
	p := os.Getenv("RUNC15")
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, "go/bin/runc-1.5")
	}
	if _, err := os.Stat(p); err != nil {
		t.Logf("runc 1.5 not built (%s): hako alone", p)
		return nil
	}
	return []string{p, "--root", t.TempDir()}
}

// probeValues parses the probe's key=value lines.
func probeValues(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			m[k] = v
		}
	}
	if len(m) == 0 {
		t.Fatalf("no probe output in %q", out)
	}
	return m
}

// want checks the named probe values.
func want(t *testing.T, who string, got map[string]string, exp map[string]string) {
	t.Helper()
	for k, v := range exp {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q (all: %v)", who, k, got[k], v, got)
		}
	}
}

// both runs the bundle's process under hako and, when built, runc 1.5,
// checks it succeeds and returns the probe values of each.
func (e *env) both(id string) map[string]map[string]string {
	e.t.Helper()
	e.write()
	out := map[string]map[string]string{}
	so, se, code := e.hako("run", "--bundle", e.bundle, id)
	if code != 0 {
		e.t.Fatalf("hako run: exit %d\n%s%s", code, so, se)
	}
	out["hako"] = probeValues(e.t, so)
	if rc := runc15(e.t); rc != nil {
		o, code := runWith(e.t, rc, e.bundle, id)
		if code != 0 {
			e.t.Fatalf("runc 1.5 run: exit %d\n%s", code, o)
		}
		out["runc-1.5"] = probeValues(e.t, o)
	}
	return out
}

func TestParitySchedulerIOPriorityMemoryPolicy(t *testing.T) {
	e := newEnv(t)
	e.probe()
	e.spec.Process.Args = []string{"/bin/probe"}
	e.spec.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 5}
	e.spec.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 0}
	e.spec.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0"}
	for who, got := range e.both("c-sched") {
		// SCHED_BATCH is 3, IOPRIO_CLASS_IDLE 3, MPOL_BIND 2 on node 0.
		want(t, who, got, map[string]string{"sched_policy": "3", "sched_nice": "5", "ioprio_class": "3",
			"mempolicy_mode": "2", "mempolicy_nodes": "0x1"})
	}
}

// An exec'd process gets the config's scheduler, and its own with -p.
func TestParitySchedulerOnExec(t *testing.T) {
	e := newEnv(t)
	e.probe()
	e.spec.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 3}
	e.spec.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6}
	e.spec.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolPreferred, Nodes: "0"}
	e.spec.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
	pid := e.background("c-sched-exec")
	// From the host: the init itself.
	stat := strings.Fields(readFile(t, "/proc/"+itoa(pid)+"/stat")[strings.LastIndex(readFile(t, "/proc/"+itoa(pid)+"/stat"), ")")+2:])
	// Fields from 3 on: nice is the 19th, policy the 41st.
	if stat[19-3] != "3" || stat[41-3] != "3" {
		t.Errorf("host view of init %d: nice %s policy %s, want 3 and 3", pid, stat[19-3], stat[41-3])
	}
	if cls, lvl := ioprioGet(t, pid); cls != 2 || lvl != 6 {
		t.Errorf("host view of init %d: ioprio class %d level %d, want 2 (BE) and 6", pid, cls, lvl)
	}
	got := probeValues(t, e.hakoOK("exec", "c-sched-exec", "/bin/probe"))
	// MPOL_PREFERRED is 1; PER_LINUX32 is 8.
	want(t, "hako exec", got, map[string]string{"sched_policy": "3", "sched_nice": "3", "ioprio_class": "2", "ioprio_level": "6",
		"mempolicy_mode": "1", "personality": "0x8"})

	p := *e.spec.Process
	p.Args = []string{"/bin/probe"}
	p.Scheduler = &specs.Scheduler{Policy: specs.SchedIdle}
	p.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE}
	data, _ := json.Marshal(&p)
	pj := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(pj, data, 0o644)
	got = probeValues(t, e.hakoOK("exec", "-p", pj, "c-sched-exec"))
	want(t, "hako exec -p", got, map[string]string{"sched_policy": "5", "ioprio_class": "3"})

	if rc := runc15(t); rc != nil {
		e.write()
		if so, se, code := rtCmd(t, rc, "run", "-d", "--bundle", e.bundle, "r-sched-exec"); code != 0 {
			t.Fatalf("runc 1.5 run -d: %d %s%s", code, so, se)
		}
		defer rtCmd(t, rc, "delete", "--force", "r-sched-exec")
		so, se, code := rtCmd(t, rc, "exec", "r-sched-exec", "/bin/probe")
		if code != 0 {
			t.Fatalf("runc 1.5 exec: %d %s%s", code, so, se)
		}
		// runc sets the I/O priority of the exec'd process's process
		// group, which is the caller's: the class shows all the same.
		want(t, "runc-1.5 exec", probeValues(t, so), map[string]string{"sched_policy": "3", "sched_nice": "3", "ioprio_class": "2", "ioprio_level": "6",
			"mempolicy_mode": "1", "personality": "0x8"})
	}
}

// The init never keeps hako's own CPU affinity (runc 1.4); exec applies
// execCPUAffinity.final, or keeps initial when only that is set.
func TestParityExecCPUAffinity(t *testing.T) {
	if n := strings.TrimSpace(readFile(t, "/sys/devices/system/cpu/online")); n == "0" {
		t.Skip("needs two CPUs")
	}
	all := strings.TrimSpace(readFile(t, "/sys/fs/cgroup/cpuset/cpuset.effective_cpus"))
	e := newEnv(t)
	e.probe()
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	rts := hakoAnd15(e)
	for who, rt := range rts {
		id := "c-aff-" + strings.ReplaceAll(who, ".", "")
		// hako and runc themselves pinned to CPU 0.
		// Files, not pipes: the detached container keeps its stdio.
		pinned := append([]string{"taskset", "-c", "0"}, rt...)
		if so, se, code := rtCmd(t, pinned, "run", "-d", "--bundle", e.bundle, id); code != 0 {
			t.Fatalf("%s run -d under taskset: %d %s%s", who, code, so, se)
		}
		defer rtCmd(t, rt, "delete", "--force", id)
		so, _, _ := rtCmd(t, rt, "exec", id, "/bin/probe")
		want(t, who+" init (via exec without affinity)", probeValues(t, so), map[string]string{"cpus": all})
		so, _, code := rtCmd(t, rt, "exec", id, "cat", "/proc/1/status")
		if code != 0 || !strings.Contains(so, "Cpus_allowed_list:\t"+all) {
			t.Errorf("%s: init's affinity, want %s: %s", who, all, so)
		}
		p := *e.spec.Process
		p.Args = []string{"/bin/probe"}
		p.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0", Final: "1"}
		pj := writeProcess(t, &p)
		so, se, code := rtCmd(t, rt, "exec", "-p", pj, id)
		if code != 0 {
			t.Fatalf("%s exec -p: %d %s", who, code, se)
		}
		want(t, who+" final", probeValues(t, so), map[string]string{"cpus": "1"})
		p.ExecCPUAffinity = &specs.CPUAffinity{Initial: "1"}
		so, _, _ = rtCmd(t, rt, "exec", "-p", writeProcess(t, &p), id)
		want(t, who+" initial only", probeValues(t, so), map[string]string{"cpus": "1"})
	}
}

func writeProcess(t *testing.T, p *specs.Process) string {
	data, _ := json.Marshal(p)
	pj := filepath.Join(t.TempDir(), "process.json")
	if err := os.WriteFile(pj, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return pj
}

// Refusals: the same config is refused by both, and hako names the field.
func TestParityRefusals(t *testing.T) {
	cases := []struct {
		name  string
		mut   func(s *specs.Spec)
		words string // in hako's error
	}{
		{"intelRdt", func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "gold"} },
			"linux.intelRdt: intelRdt is specified in config, but Intel RDT is not enabled"},
		{"affinity abc", func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: "abc"} },
			`process.execCPUAffinity.initial: "abc"`},
		{"unknown policy", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_X"} },
			`process.scheduler.policy: unknown policy "SCHED_X"`},
		{"ioprio out of range", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 9}
		}, "process.ioPriority.priority: must be in [0, 7], got 9"},
		{"bind mount with filesystem data", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: "/tmp", Options: []string{"rbind", "size=1m"}})
		}, `options ["size=1m"]: bind mounts cannot have any filesystem-specific options applied`},
		{"mempolicy no such node", func(s *specs.Spec) {
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "7"}
		}, "linux.memoryPolicy (MPOL_BIND 7): set_mempolicy: invalid argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.spec.Process.Args = []string{"true"}
			tc.mut(e.spec)
			e.write()
			so, se, code := e.hako("run", "--bundle", e.bundle, "c-refuse")
			if code == 0 || !strings.Contains(se, tc.words) {
				t.Errorf("hako: exit %d, want failure with %q: %s%s", code, tc.words, so, se)
			}
			if rc := runc15(t); rc != nil {
				out, code := runWith(t, rc, e.bundle, "c-refuse")
				if code == 0 {
					t.Errorf("runc 1.5 accepted what hako refuses: %s", out)
				}
				t.Logf("runc 1.5: %s", strings.TrimSpace(out))
			}
		})
	}
}

// ioprioGet reads a process's I/O priority from the host.
func ioprioGet(t *testing.T, pid int) (class, level int) {
	t.Helper()
	const ioprioWhoProcess = 1
	v, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(pid), 0)
	if e != 0 {
		t.Fatalf("ioprio_get %d: %v", pid, e)
	}
	return int(v >> 13), int(v & 0x1fff)
}
