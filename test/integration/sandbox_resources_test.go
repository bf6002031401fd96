package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgShell defines cg CONTROLLER: the directory of the caller's cgroup in
// the hierarchy holding CONTROLLER, v1 or cgroup2.
const cgShell = `cg() { l=$(grep -E "^[0-9]+:([^:]*,)?$1(,[^:]*)?:" /proc/self/cgroup); if [ -n "$l" ]; then echo /sys/fs/cgroup/$(echo "$l" | cut -d: -f2)$(echo "$l" | cut -d: -f3); else echo /sys/fs/cgroup$(grep '^0::' /proc/self/cgroup | cut -d: -f3); fi; }; `

// receiptCgroupDirs are the cgroup directories the receipt read limits in.
func receiptCgroupDirs(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Results []struct {
			Kind   string `json:"kind"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"results"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, x := range r.Results {
		if x.Kind != "cgroup" {
			continue
		}
		if !x.OK {
			t.Errorf("receipt: cgroup check failed: %s", x.Detail)
		}
		if i := strings.LastIndex(x.Detail, " in /sys/fs/cgroup/"); i >= 0 {
			dirs = append(dirs, x.Detail[i+4:])
		}
	}
	return dirs
}

func TestSandboxResourceLimits(t *testing.T) {
	s := sandboxers(t)[0]
	rf := filepath.Join(s.dir, "receipt.json")
	// Read back from inside; then a fork storm (perl: a shell retries a
	// fork that fails for seconds) counts what it got.
	script := cgShell + `P=$(cg pids); M=$(cg memory); C=$(cg cpu)
read pmax < $P/pids.max; echo pids.max=$pmax
if [ -e $M/../memory.max ]; then read m < $M/../memory.max; else read m < $M/../memory.limit_in_bytes; fi; echo memory=$m
if [ -e $C/../cpu.max ]; then read q < $C/../cpu.max; else read q < $C/../cpu.cfs_quota_us; fi; echo cpu=$q
P=$P exec perl -e 'my $n = 0; for (1..40) { my $p = fork(); next unless defined $p; if ($p == 0) { sleep 3; exit 0 } $n++ } open(my $f, "<", "$ENV{P}/pids.current"); print "forked=$n current=", <$f>;'`
	out := s.mustRun(t, "--receipt", rf, "-p", "MemoryMax=64M", "-p", "TasksMax=8", "-p", "CPUQuota=50%", "--", "sh", "-c", script)
	for _, want := range []string{"pids.max=8\n", "memory=67108864\n", "forked=7 current=8\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("inside: no %q in\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`cpu=(50000 100000|50000)\n`).MatchString(out) {
		t.Errorf("inside: CPUQuota=50%%: %s", out)
	}
	dirs := receiptCgroupDirs(t, rf)
	if len(dirs) != 3 {
		t.Errorf("receipt: %d cgroup checks, want 3: %v", len(dirs), dirs)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind: %v", d, err)
		}
	}

	// A fork bomb (every child forks on) stays within TasksMax; the
	// sandbox's init is outside COMMAND's count, and still there to end
	// the sandbox.
	bomb := cgShell + `P=$(cg pids) exec perl -e 'my $top = $$; for (1..300) { fork() } if ($$ == $top) { sleep 1; open(my $f, "<", "$ENV{P}/pids.current"); print "bounded=", <$f> } else { sleep 5 }'`
	start := time.Now()
	out = s.mustRun(t, "-p", "TasksMax=16", "--", "sh", "-c", bomb)
	if m := regexp.MustCompile(`bounded=(\d+)`).FindStringSubmatch(out); m == nil {
		t.Errorf("fork bomb: %q", out)
	} else if n, _ := strconv.Atoi(m[1]); n != 16 {
		t.Errorf("fork bomb: %d tasks under TasksMax=16", n)
	}
	t.Logf("fork bomb under TasksMax=16: %s in %v", strings.TrimSpace(out), time.Since(start))

	// Over MemoryMax the kernel's OOM killer ends COMMAND: 128+9.
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		if _, _, code := s.run(t, "-p", "MemoryMax=32M", "--", "python3", "-c", "x = bytearray(200 << 20)"); code != 137 {
			t.Errorf("200 MiB under MemoryMax=32M: status %d, want 137", code)
		}
	}
}

// A hako killed with SIGKILL leaves an empty cgroup; the next sandbox with
// limits removes it.
func TestSandboxResourceCgroupSwept(t *testing.T) {
	s := sandboxers(t)[0]
	c := s.cmd("-p", "TasksMax=4", "--", "sleep", "60")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("/sys/fs/cgroup/pids", fmt.Sprintf("hako-sandbox-%d", c.Process.Pid))
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("pure cgroup v2 host: the VM test covers it")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "command")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			c.Wait()
			t.Fatalf("%s never appeared", dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	s.mustRun(t, "-p", "TasksMax=4", "--", "true")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left after the next sandbox: %v", dir, err)
	}
}

// Unprivileged, limits need a delegated cgroup v2 subtree: none on this
// host's v1 controllers, and the refusal comes before anything runs.
func TestSandboxResourceLimitsRootless(t *testing.T) {
	ss := sandboxers(t)
	if len(ss) < 2 {
		t.Skip("no unprivileged user")
	}
	s := ss[1]
	for _, p := range []string{"MemoryMax=64M", "TasksMax=8", "CPUQuota=20%"} {
		out, errs, code := s.run(t, "-p", p, "--", "echo", "RAN")
		if code == 0 && strings.Contains(out, "RAN") {
			continue // delegated: ran under the limit (the receipt proves it)
		}
		if code != 1 || out != "" || !strings.Contains(errs, "delegated to its user") || !strings.HasPrefix(errs, "hako: sandbox: cgroup ") {
			t.Errorf("%s: status %d stdout %q stderr %q", p, code, out, errs)
		}
	}
}
