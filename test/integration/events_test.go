package integration

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// keys lists the paths of a JSON document's scalars, without the parts that
// vary with the kernel's raw counters and the number of CPUs.
func keys(t *testing.T, data string) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("%v: %q", err, data)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(prefix+"."+k, c)
			}
		case []any:
			if len(x) > 0 {
				walk(prefix+"[]", x[0])
			}
		default:
			if !strings.Contains(prefix, ".raw.") && !strings.Contains(prefix, "percpu") {
				out = append(out, prefix)
			}
		}
	}
	walk("", v)
	sort.Strings(out)
	return out
}

// events --stats gives runc's JSON: the same fields for the same container.
func TestEventsStatsMatchesRunc(t *testing.T) {
	runc, err := runcPath()
	if err != nil {
		t.Skip("runc not installed")
	}
	e := newEnv(t)
	e.spec.Root.Path = filepath.Join(e.bundle, "rootfs") // runc wants it absolute here
	limit := int64(64 << 20)
	e.spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	e.background("ev1")
	hako := e.hakoOK("events", "--stats", "ev1")
	runcRoot := t.TempDir()
	// No pipes: the detached container would hold them open.
	errf := tempOut(t)
	cmd := exec.Command(runc, "--root", runcRoot, "run", "-d", "--bundle", e.bundle, "ev1")
	cmd.Stderr = errf
	if err := cmd.Run(); err != nil {
		t.Skipf("runc cannot run here: %v %s", err, readAll(errf))
	}
	defer exec.Command(runc, "--root", runcRoot, "delete", "--force", "ev1").Run()
	theirs, err := exec.Command(runc, "--root", runcRoot, "events", "--stats", "ev1").Output()
	if err != nil {
		t.Fatal(err)
	}
	a, b := strings.Join(keys(t, hako), "\n"), strings.Join(keys(t, string(theirs)), "\n")
	if a != b {
		t.Fatalf("events --stats fields differ\nhako:\n%s\nrunc:\n%s", a, b)
	}
	if !strings.Contains(hako, `"limit":67108864`) {
		t.Errorf("memory limit missing from stats: %s", hako)
	}
}

// A process the OOM killer kills under the memory limit is reported as an
// "oom" event.
func TestEventsOOM(t *testing.T) {
	e := newEnv(t)
	limit := int64(16 << 20)
	swap := limit
	e.spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	e.spec.Root.Readonly = false
	e.background("oom1")
	ev := exec.Command(hakoBin, "--root", e.root, "events", "--interval", "1s", "oom1")
	out := tempOut(t)
	ev.Stdout = out
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	defer ev.Process.Kill()
	time.Sleep(300 * time.Millisecond)
	// A tmpfs file is charged to the cgroup: grow one past the limit.
	e.hako("exec", "oom1", "sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs t /tmp/m 2>/dev/null; cat /dev/zero > /dev/shm/fill")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(readAll(out), `"type":"oom"`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no oom event; events printed:\n%s", readAll(out))
}

// update, pause and resume have runc's effects: the same cgroup values and
// the same states, container for container.
func TestUpdatePauseResumeMatchRunc(t *testing.T) {
	runc, err := runcPath()
	if err != nil {
		t.Skip("runc not installed")
	}
	e := newEnv(t)
	e.spec.Root.Path = filepath.Join(e.bundle, "rootfs")
	hakoPid := e.background("cmp1")
	runcRoot := t.TempDir()
	r := func(args ...string) string {
		t.Helper()
		errf := tempOut(t)
		cmd := exec.Command(runc, append([]string{"--root", runcRoot}, args...)...)
		cmd.Stderr = errf
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("runc %v: %v %s", args, err, readAll(errf))
		}
		return string(out)
	}
	// Another id: with the default cgroupsPath both would share a cgroup.
	cmd := exec.Command(runc, "--root", runcRoot, "run", "-d", "--bundle", e.bundle, "cmp1-runc")
	if err := cmd.Run(); err != nil {
		t.Skipf("runc cannot run here: %v", err)
	}
	defer exec.Command(runc, "--root", runcRoot, "delete", "--force", "cmp1-runc").Run()
	var st struct{ Pid int }
	json.Unmarshal([]byte(r("state", "cmp1-runc")), &st)

	args := []string{"update", "--memory", "128m", "--memory-swap", "256m", "--pids-limit", "77", "--cpu-share", "256", "--cpu-quota", "50000", "--cpu-period", "100000", "cmp1"}
	e.hakoOK(args...)
	args[len(args)-1] = "cmp1-runc"
	r(args...)
	files := map[string]string{
		"memory": "memory.limit_in_bytes", "pids": "pids.max", "cpu": "cpu.shares",
	}
	for ctrl, f := range files {
		mine := strings.TrimSpace(readFile(t, ownCgroupDir(t, hakoPid, ctrl)+"/"+f))
		theirs := strings.TrimSpace(readFile(t, ownCgroupDir(t, st.Pid, ctrl)+"/"+f))
		if mine != theirs {
			t.Errorf("%s after update: hako %s, runc %s", f, mine, theirs)
		}
	}
	for _, f := range []string{"memory.memsw.limit_in_bytes", "cpu.cfs_quota_us"} {
		ctrl := strings.SplitN(f, ".", 2)[0]
		mine := strings.TrimSpace(readFile(t, ownCgroupDir(t, hakoPid, ctrl)+"/"+f))
		theirs := strings.TrimSpace(readFile(t, ownCgroupDir(t, st.Pid, ctrl)+"/"+f))
		if mine != theirs {
			t.Errorf("%s after update: hako %s, runc %s", f, mine, theirs)
		}
	}
	status := func(out string) string {
		var s struct{ Status string }
		json.Unmarshal([]byte(out), &s)
		return s.Status
	}
	e.hakoOK("pause", "cmp1")
	r("pause", "cmp1-runc")
	if a, b := status(e.hakoOK("state", "cmp1")), status(r("state", "cmp1-runc")); a != "paused" || a != b {
		t.Errorf("after pause: hako %s, runc %s", a, b)
	}
	if a, b := readFile(t, ownCgroupDir(t, hakoPid, "freezer")+"/freezer.state"), readFile(t, ownCgroupDir(t, st.Pid, "freezer")+"/freezer.state"); a != b {
		t.Errorf("freezer.state: hako %q, runc %q", a, b)
	}
	e.hakoOK("resume", "cmp1")
	r("resume", "cmp1-runc")
	if a, b := status(e.hakoOK("state", "cmp1")), status(r("state", "cmp1-runc")); a != "running" || a != b {
		t.Errorf("after resume: hako %s, runc %s", a, b)
	}
}

// The limits have their effects: a fork loop stops at pids.max, and a
// frozen container is not scheduled.
func TestPidsLimitAndFreezeEffects(t *testing.T) {
	e := newEnv(t)
	limit := int64(10)
	e.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
	e.spec.Root.Readonly = false
	e.spec.Process.Args = []string{"sh", "-c", "while true; do :; done"}
	e.write()
	e.hakoOK("run", "-d", "eff1")
	out, _, _ := e.hako("exec", "eff1", "sh", "-c", "for i in $(seq 30); do sleep 100 & done 2>&1; echo spawned")
	if !strings.Contains(out, "can't fork") && !strings.Contains(out, "Resource temporarily unavailable") {
		t.Errorf("30 children under pids.max 10 did not fail:\n%s", out)
	}
	var st struct{ Pid int }
	json.Unmarshal([]byte(e.hakoOK("state", "eff1")), &st)
	usage := ownCgroupDir(t, st.Pid, "cpuacct") + "/cpuacct.usage"
	count := func() string { return strings.TrimSpace(readFile(t, usage)) }
	e.hakoOK("pause", "eff1")
	time.Sleep(100 * time.Millisecond)
	a := count()
	time.Sleep(300 * time.Millisecond)
	if b := count(); a != b {
		t.Errorf("a frozen container ran: cpu usage went from %s to %s ns", a, b)
	}
	e.hakoOK("resume", "eff1")
	time.Sleep(300 * time.Millisecond)
	if c := count(); c == a {
		t.Errorf("the container did not run again after resume (cpu usage %s ns)", c)
	}
}
