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
	runc, err := exec.LookPath("runc")
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
