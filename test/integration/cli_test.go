package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rtCmd runs one runtime's command line and returns stdout, stderr and the
// exit status.
func rtCmd(t *testing.T, rt []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(rt[0], append(append([]string{}, rt[1:]...), args...)...)
	so, se := tempOut(t), tempOut(t)
	cmd.Stdout, cmd.Stderr = so, se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return readAll(so), readAll(se), code
}

// TestCLIMatchesRunc runs the same command lines against hako and runc and
// compares what engines and scripts read: the exit status and runc's words.
func TestCLIMatchesRunc(t *testing.T) {
	e := newEnv(t)
	e.spec.Root.Path = filepath.Join(e.bundle, "rootfs")
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	rts := map[string][]string{"hako": {hakoBin, "--root", e.root}}
	if ref, ok := refRuntimes(t)["runc"]; ok {
		rts["runc"] = ref
	} else {
		t.Log("runc not installed: checking hako against runc's known answers only")
	}
	type step struct {
		name  string
		args  []string
		code  int
		words string // in stderr (runc's wording), "" for none
	}
	steps := []step{
		{"flags after the id", []string{"update", "cli1", "--pids-limit", "50"}, 0, ""},
		{"kill 0 probes", []string{"kill", "cli1", "0"}, 0, ""},
		{"pause", []string{"pause", "cli1"}, 0, ""},
		{"exec into paused", []string{"exec", "cli1", "true"}, 255, "cannot exec in a paused container"},
		{"resume", []string{"resume", "cli1"}, 0, ""},
		{"exec with a bad pid file dir", []string{"exec", "--pid-file", "/nonexistent/dir/pid", "cli1", "true"}, 255, "no such file or directory"},
		{"exec status passes through", []string{"exec", "cli1", "sh", "-c", "exit 7"}, 7, ""},
		{"kill", []string{"kill", "cli1", "KILL"}, 0, ""},
		{"wait until stopped", nil, 0, ""},
		{"kill a stopped container", []string{"kill", "cli1"}, 1, "container not running"},
		// containerd's shim kills --all after a pod-PID-namespace
		// container's init exits: runc says nothing and exits 0.
		{"kill --all a stopped container", []string{"kill", "--all", "cli1", "KILL"}, 0, ""},
		{"exec into a stopped container", []string{"exec", "cli1", "true"}, 255, "cannot exec in a stopped container"},
		{"delete", []string{"delete", "cli1"}, 0, ""},
		{"state of a missing container", []string{"state", "cli1"}, 1, "does not exist"},
		{"kill a missing container", []string{"kill", "cli1"}, 1, "does not exist"},
		{"unknown command", []string{"nope"}, 3, "No help topic for 'nope'"},
		{"help for an unknown command", []string{"help", "nope"}, 3, "No help topic for 'nope'"},
		{"help", []string{"help", "kill"}, 0, ""},
	}
	for name, rt := range rts {
		if _, se, code := rtCmd(t, rt, "run", "-d", "--bundle", e.bundle, "cli1"); code != 0 {
			t.Fatalf("%s run -d: %d %s", name, code, se)
		}
		for _, s := range steps {
			if s.args == nil {
				waitStopped(t, rt, "cli1")
				continue
			}
			_, se, code := rtCmd(t, rt, s.args...)
			if code != s.code {
				t.Errorf("%s %s (%v): exit %d, want %d\n%s", name, s.name, s.args, code, s.code, se)
			}
			if s.words != "" && !strings.Contains(se, s.words) {
				t.Errorf("%s %s (%v): stderr %q lacks %q", name, s.name, s.args, se, s.words)
			}
		}
		rtCmd(t, rt, "delete", "--force", "cli1")
	}
}

// waitStopped polls state until the runtime reports the container stopped:
// a SIGKILLed init takes a moment to die, and runc calls it running until
// then.
func waitStopped(t *testing.T, rt []string, id string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if so, _, _ := rtCmd(t, rt, "state", id); strings.Contains(so, `"stopped"`) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: %s not stopped after 2 s", rt[0], id)
}

// --version and --help have runc's shape, which tools parse.
func TestVersionAndHelpShape(t *testing.T) {
	out, _, code := rtCmd(t, []string{hakoBin}, "--version")
	if code != 0 || !regexp.MustCompile(`^hako version \S+\ncommit: \S+\nspec: \S+\ngo: \S+\nlibseccomp: \S+\n$`).MatchString(out) {
		t.Errorf("--version: %d %q", code, out)
	}
	out, _, code = rtCmd(t, []string{hakoBin}, "--help")
	for _, h := range []string{"NAME:\n   hako - ", "\nUSAGE:\n   hako [global options] command", "\nCOMMANDS:\n", "\n   kill ", "\nGLOBAL OPTIONS:\n", "   --root value"} {
		if code != 0 || !strings.Contains(out, h) {
			t.Errorf("--help lacks %q:\n%s", h, out)
		}
	}
	out, _, code = rtCmd(t, []string{hakoBin}, "exec", "--help")
	for _, h := range []string{"NAME:\n   hako exec - ", "USAGE:\n   hako exec [command options] <container-id>", "OPTIONS:\n", "   --tty, -t", "   --cgroup value", "   --ignore-paused"} {
		if code != 0 || !strings.Contains(out, h) {
			t.Errorf("exec --help lacks %q:\n%s", h, out)
		}
	}
}

// list shows who owns each container, as runc does: the owner of its
// state directory.
func TestListOwner(t *testing.T) {
	e := newEnv(t)
	e.background("owner1")
	out := e.hakoOK("list")
	if !regexp.MustCompile(`(?m)^owner1\s+\d+\s+running\s+\S+\s+\S+\s+root$`).MatchString(out) {
		t.Errorf("list:\n%s", out)
	}
	if st := e.hakoOK("state", "owner1"); !strings.Contains(st, `"owner": ""`) {
		t.Errorf("state should leave owner empty, as runc: %s", st)
	}
}

// exec --cgroup puts the process in a sub-cgroup of the container's, in
// runc's v1 "controller:path" form and its plain "path" form.
func TestExecSubCgroup(t *testing.T) {
	e := newEnv(t)
	pid := e.background("subcg1")
	dir := ownCgroupDir(t, pid, "pids")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := e.hakoOK("exec", "--cgroup", "pids:sub", "subcg1", "cat", "/proc/self/cgroup")
	if !regexp.MustCompile(`(?m):pids:\S*/sub$`).MatchString(out) {
		t.Errorf("exec --cgroup pids:sub: not in the sub-cgroup:\n%s", out)
	}
	if regexp.MustCompile(`(?m):memory:\S*/sub$`).MatchString(out) {
		t.Errorf("exec --cgroup pids:sub moved other controllers too:\n%s", out)
	}
	if _, se, code := e.hako("exec", "--cgroup", "nope:sub", "subcg1", "true"); code != 255 || !strings.Contains(se, "unknown controller nope") {
		t.Errorf("unknown controller: %d %q", code, se)
	}
	if _, se, code := e.hako("exec", "--cgroup", "pids:../..", "subcg1", "true"); code != 255 || !strings.Contains(se, "not a sub cgroup path") {
		t.Errorf("escaping path: %d %q", code, se)
	}
	if _, se, code := e.hako("exec", "--cgroup", "missing", "subcg1", "true"); code != 255 || !strings.Contains(se, "does not exist") {
		t.Errorf("missing sub-cgroup: %d %q", code, se)
	}
	e.hakoOK("delete", "--force", "subcg1")
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s (with its sub-cgroup) left after delete", dir)
	}
}

// Creating into a cgroup that already holds a process works, with runc's
// warning.
func TestCreateIntoNonEmptyCgroupWarns(t *testing.T) {
	e := newEnv(t)
	cg := "/hako-test-nonempty-" + sanitize(t.Name())
	e.spec.Linux.CgroupsPath = cg
	e.spec.Root.Path = filepath.Join(e.bundle, "rootfs")
	e.spec.Process.Args = []string{"true"}
	e.write()
	// runc looks in the devices hierarchy on v1, hako in pids.
	dirs := []string{"/sys/fs/cgroup/pids" + cg, "/sys/fs/cgroup/devices" + cg}
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err != nil {
		dirs = []string{"/sys/fs/cgroup" + cg}
	}
	t.Cleanup(func() {
		matches, _ := filepath.Glob("/sys/fs/cgroup/*" + cg)
		for _, m := range append(matches, "/sys/fs/cgroup"+cg) {
			os.Remove(m)
		}
	})
	// A process of someone else's in the cgroup; delete --force kills it
	// with the container's, so each runtime gets its own.
	occupy := func() {
		sleeper := exec.Command("sleep", "100")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(itoa(sleeper.Process.Pid)), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	rts := hakoAndRunc(e)
	for name, rt := range rts {
		occupy()
		_, se, code := rtCmd(t, rt, "run", "--bundle", e.bundle, "nonempty")
		if code != 0 || !regexp.MustCompile(`container's cgroup is not empty: [0-9]+ process\(es\) found`).MatchString(se) {
			t.Errorf("%s run into a non-empty cgroup: exit %d, %q", name, code, se)
		}
		rtCmd(t, rt, "delete", "--force", "nonempty")
	}
}

// --debug logs create's and exec's steps at debug level: to stderr, or to
// --log in its format.
func TestDebugLogsCreateAndExec(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	_, se, code := e.hako("--debug", "run", "-d", "--bundle", e.bundle, "dbg1")
	if code != 0 || !strings.Contains(se, `level=debug msg="create dbg1: cgroups`) || !strings.Contains(se, "container process") {
		t.Errorf("--debug run -d: exit %d, stderr:\n%s", code, se)
	}
	log := filepath.Join(t.TempDir(), "log.json")
	_, se, code = e.hako("--debug", "--log", log, "--log-format", "json", "exec", "dbg1", "true")
	if code != 0 || se != "" {
		t.Errorf("--debug --log exec: exit %d, stderr %q (want everything in the log)", code, se)
	}
	data := readFile(t, log)
	// An exec's plain plan is applied by nsexec.c, no Go runtime started;
	// the breakdown's process steps are what it measured and sent with
	// ready.
	for _, want := range []string{`"level":"debug"`, `exec dbg1: into init `, `exec dbg1: process `, `exec dbg1: the plan runs in nsexec.c, without Go`,
		`exec dbg1: took total `, `, process C start `, `, process steps `} {
		if !strings.Contains(data, want) {
			t.Errorf("log lacks %q:\n%s", want, data)
		}
	}
	e.hakoOK("delete", "--force", "dbg1")
}

// --debug breaks a run down into where its time went: the runtime's own
// phases, and what the container process measured and sent with ready.
func TestDebugTimingBreakdown(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"true"}
	e.write()
	_, se, code := e.hako("--debug", "run", "--bundle", e.bundle, "dbgt")
	if code != 0 {
		t.Fatalf("--debug run: exit %d, stderr:\n%s", code, se)
	}
	// A plain config's plan is applied by nsexec.c: the init's start is
	// C's.
	run := regexp.MustCompile(`run dbgt: took total [0-9.]+ ms: config [0-9.]+, .*, init C start [0-9.]+, init plan decode [0-9.]+, init steps [0-9.]+, .*container ran [0-9.]+, delete [0-9.]+"`)
	// The slowest steps are named by number and as the plan names them.
	steps := regexp.MustCompile(`create dbgt: init steps took [0-9.]+ ms; slowest: [0-9]+ [a-z-]+ .* [0-9.]+, [0-9]+ [a-z-]+ `)
	inC := regexp.MustCompile(`create dbgt: the plan runs in nsexec.c, without Go`)
	for _, re := range []*regexp.Regexp{run, steps, inC} {
		if !re.MatchString(se) {
			t.Errorf("stderr does not match %s:\n%s", re, se)
		}
	}
	// Without --debug the container process measures nothing and the
	// runtime prints nothing.
	_, se, code = e.hako("run", "--bundle", e.bundle, "dbgt2")
	if code != 0 || se != "" {
		t.Errorf("run without --debug: exit %d, stderr %q", code, se)
	}
}

// exec --ignore-paused into a paused container starts the process frozen;
// it runs once the container is resumed, as with runc.
func TestExecIgnorePaused(t *testing.T) {
	e := newEnv(t)
	e.background("ignp")
	e.hakoOK("pause", "ignp")
	out := tempOut(t)
	cmd := exec.Command(hakoBin, "--root", e.root, "exec", "--ignore-paused", "ignp", "sh", "-c", "echo ran")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("exec --ignore-paused finished while the container was paused: %v %q", err, readAll(out))
	case <-time.After(500 * time.Millisecond):
	}
	e.hakoOK("resume", "ignp")
	select {
	case err := <-done:
		if err != nil || !strings.Contains(readAll(out), "ran") {
			t.Errorf("after resume: %v %q", err, readAll(out))
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("exec did not finish after resume")
	}
}

// update --cpu-idle sets cpu.idle (0 or 1 only), as runc 1.2+.
func TestUpdateCPUIdle(t *testing.T) {
	e := newEnv(t)
	pid := e.background("idle1")
	dir := ownCgroupDir(t, pid, "cpu")
	if _, err := os.Stat(filepath.Join(dir, "cpu.idle")); err != nil {
		t.Skip("no cpu.idle in this kernel's cpu controller")
	}
	e.hakoOK("update", "--cpu-idle", "1", "idle1")
	if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "cpu.idle"))); got != "1" {
		t.Errorf("cpu.idle = %q, want 1", got)
	}
	if _, se, code := e.hako("update", "--cpu-idle", "2", "idle1"); code == 0 || !strings.Contains(se, "--cpu-idle") {
		t.Errorf("--cpu-idle 2: exit %d, %q", code, se)
	}
}

// An init's plan applied by nsexec.c hands a step it cannot apply to Go,
// which goes on from there. Handed over at each step in turn (the test
// hook makes nsexec.c hand it over unapplied), the container is the same
// as the one whose plan ran in C from end to end: its mounts, devices,
// hostname, ids, capabilities and limits.
func TestInitPlanHandedToGoAtEachStep(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"sh", "-c", `cut -d' ' -f4- /proc/self/mountinfo; hostname; stat -c '%A %u %g %t:%T %N' /dev/* /dev/pts/* /sys/fs/cgroup/* /proc/acpi /proc/timer_list; grep -E 'Cap|NoNewPrivs' /proc/self/status; ulimit -n; id; umask; pwd; cat /proc/sys/kernel/domainname`}
	e.spec.Linux.Sysctl = map[string]string{"kernel.domainname": "hako.test"}
	e.write()
	run := func(bailAt int) (string, string) {
		t.Helper()
		cmd := exec.Command(hakoBin, "--root", e.root, "--debug", "run", "--bundle", e.bundle, "handover")
		cmd.Env = append(os.Environ(), fmt.Sprintf("_HAKO_TEST_C_BAIL_AT=%d", bailAt))
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("handed over at step %d: %v\n%s", bailAt, err, errb.String())
		}
		return out.String(), errb.String()
	}
	want, se := run(0)
	if !strings.Contains(se, "the plan runs in nsexec.c, without Go") || !strings.Contains(se, "init C start") {
		t.Fatalf("the plan did not run in C:\n%s", se)
	}
	m := regexp.MustCompile(`plan \(init, ([0-9]+) steps\)`).FindStringSubmatch(se)
	if m == nil {
		t.Fatalf("no plan in the debug log:\n%s", se)
	}
	n, _ := strconv.Atoi(m[1])
	handed := 0
	for k := 1; k <= n; k++ {
		got, se := run(k)
		// The mount steps are handed over; the process steps report
		// their own failures and ignore the hook.
		if strings.Contains(se, fmt.Sprintf("nsexec.c handed step %d ", k)) {
			handed++
		}
		if got != want {
			t.Errorf("handed over at step %d, the container differs:\n%s", k, lineDiff(want, got))
		}
	}
	// Every step from the first to the session keyring's.
	if handed < 20 {
		t.Errorf("only %d of %d steps were handed to Go", handed, n)
	}
}

func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("-%s\n+%s", x, y))
		}
	}
	return strings.Join(out, "\n")
}

// hako runs with a large timer slack of its own (nsexec.c's set_slack);
// what it starts gets the caller's back: the container's init, an exec'd
// process, a hook.
func TestTimerSlackIsTheCallers(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(t.TempDir(), "hook-slack")
	e.spec.Process.Args = []string{"cat", "/proc/self/timerslack_ns"}
	e.spec.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat /proc/self/timerslack_ns > " + out}}}}
	e.write()
	// os/exec forks from the calling thread, whose slack the child gets.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 123456, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(orig), 0, 0, 0)
	if got := strings.TrimSpace(e.hakoOK("run", "--bundle", e.bundle, "slack")); got != "123456" {
		t.Errorf("the container's init has timer slack %s ns, want the caller's 123456", got)
	}
	if got := strings.TrimSpace(readFile(t, out)); got != "123456" {
		t.Errorf("a poststop hook has timer slack %s ns, want the caller's 123456", got)
	}
	e.spec.Hooks = nil
	e.background("slack2")
	if got := strings.TrimSpace(e.hakoOK("exec", "slack2", "cat", "/proc/self/timerslack_ns")); got != "123456" {
		t.Errorf("an exec'd process has timer slack %s ns, want the caller's 123456", got)
	}
	// And hako's own, without which the checks above would pass as well.
	e.spec.Process.Args = []string{"sleep", "2"}
	e.write()
	cmd := exec.Command(hakoBin, "--root", e.root, "run", "--bundle", e.bundle, "slack3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	time.Sleep(300 * time.Millisecond)
	own := strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/timerslack_ns", cmd.Process.Pid)))
	if own != "1000000" {
		t.Errorf("hako run's own timer slack is %s ns, want 1000000", own)
	}
}

// A mount step nsexec.c hands to Go after it failed runs again in Go with
// everything it had: here the bind source the parent opened for an init in
// a user namespace (the directory is root's alone, out of the mapped
// root's reach by path). The failure reads as it does with the plan in Go
// from the start.
func TestInitPlanHandOverKeepsStepFd(t *testing.T) {
	e := newEnv(t)
	openUp(t, e.bundle)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 430000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 430000, Size: 65536}}
	// Below a directory only root may search.
	hidden := t.TempDir()
	if err := os.Chmod(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(hidden, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	// A directory bound over a file: the step fails once it has its fd.
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/etc/passwd", Type: "bind", Source: src, Options: []string{"rbind"}})
	e.spec.Process.Args = []string{"true"}
	e.write()
	var got [2]string
	for i, env := range [][]string{nil, {"_HAKO_TEST_NO_C_PLAN=1"}} {
		hakoEnv = env
		_, se, code := e.hako("run", "handfd")
		hakoEnv = nil
		if code == 0 {
			t.Fatalf("a directory bound over a file: exit 0 (env %v)", env)
		}
		got[i] = se
	}
	if got[0] != got[1] {
		t.Errorf("the plan begun in C fails with\n%s\nthe plan in Go with\n%s", got[0], got[1])
	}
}
