package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunOutputAndExitCodes(t *testing.T) {
	e := newEnv(t)
	if out := e.run("echo", "hello"); out != "hello\n" {
		t.Fatalf("output %q", out)
	}
	e.spec.Process.Args = []string{"sh", "-c", "exit 3"}
	e.write()
	if _, _, code := e.hako("run", "x1"); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	// A signal from outside: the PID namespace's init ignores SIGKILL
	// sent from inside it.
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	cmd := exec.Command(hakoBin, "--root", e.root, "run", "--bundle", e.bundle, "x2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if so, _, _ := e.hako("state", "x2"); strings.Contains(so, "running") {
			break
		}
		if i > 200 {
			t.Fatal("x2 never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.hakoOK("kill", "x2", "KILL")
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 128+9 {
		t.Fatalf("exit code %d, want 137 (128+SIGKILL)", code)
	}
	ids, _ := os.ReadDir(e.root)
	for _, id := range ids {
		// The binary seal's empty layer is hako's, not a container's.
		if id.Name() != "@exeseal-empty" {
			t.Fatalf("run left state behind: %v", ids)
		}
	}
}

func TestLifecycleStates(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	pidFile := filepath.Join(t.TempDir(), "pid")
	e.hakoOK("create", "--pid-file", pidFile, "life")
	status := func() (string, int) {
		var st struct {
			Status string
			Pid    int
		}
		if err := json.Unmarshal([]byte(e.hakoOK("state", "life")), &st); err != nil {
			t.Fatal(err)
		}
		return st.Status, st.Pid
	}
	s, pid := status()
	if s != "created" || pid <= 0 {
		t.Fatalf("after create: %s %d", s, pid)
	}
	if strings.TrimSpace(readFile(t, pidFile)) != itoa(pid) {
		t.Fatalf("pid file %q, state pid %d", readFile(t, pidFile), pid)
	}
	// The init waits in hako, not in the user's program, until start.
	if comm := readFile(t, "/proc/"+itoa(pid)+"/comm"); strings.TrimSpace(comm) == "sleep" {
		t.Fatal("user process running before start")
	}
	e.hakoOK("start", "life")
	if s, _ := status(); s != "running" {
		t.Fatalf("after start: %s", s)
	}
	if _, _, code := e.hako("start", "life"); code == 0 {
		t.Fatal("second start succeeded")
	}
	if _, _, code := e.hako("delete", "life"); code == 0 {
		t.Fatal("delete of a running container without --force succeeded")
	}
	e.hakoOK("kill", "life", "KILL")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s, _ := status(); s == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not stopped after SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, code := e.hako("kill", "life", "TERM"); code == 0 {
		t.Fatal("kill of a stopped container succeeded")
	}
	e.hakoOK("delete", "life")
	if _, _, code := e.hako("state", "life"); code == 0 {
		t.Fatal("state after delete succeeded")
	}
}

func TestDeleteCreatedAndForce(t *testing.T) {
	e := newEnv(t)
	// runc's rule, which containerd's shim relies on: --force on a
	// container that is gone succeeds, a plain delete does not.
	e.hakoOK("delete", "--force", "never-existed")
	if _, _, code := e.hako("delete", "never-existed"); code == 0 {
		t.Fatal("delete of a missing container succeeded")
	}
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	e.hakoOK("create", "c1")
	e.hakoOK("delete", "c1")
	pid := e.background("c2")
	e.hakoOK("delete", "--force", "c2")
	if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
		if s := readFile(t, "/proc/"+itoa(pid)+"/stat"); !strings.Contains(s, ") Z") {
			t.Fatalf("init %d still alive after delete --force", pid)
		}
	}
}

// A hako killed mid-way, or an init killed with SIGKILL, leaves a state
// that delete --force removes completely, cgroups included.
func TestDeleteForceAfterInitKilled(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	e.hakoOK("create", "k1")
	var st struct{ Pid int }
	json.Unmarshal([]byte(e.hakoOK("state", "k1")), &st)
	cg := ownCgroupDir(t, st.Pid, "pids")
	if err := killPid(st.Pid); err != nil {
		t.Fatal(err)
	}
	e.hakoOK("delete", "--force", "k1")
	if _, err := os.Stat(cg); err == nil {
		t.Fatalf("cgroup %s left behind", cg)
	}
	if _, err := os.Stat(filepath.Join(e.root, "k1")); err == nil {
		t.Fatal("state dir left behind")
	}
}

func TestListAndPs(t *testing.T) {
	e := newEnv(t)
	pid := e.background("l1")
	out := e.hakoOK("list")
	if !strings.HasPrefix(out, "ID") || !strings.Contains(out, "l1") || !strings.Contains(out, "running") {
		t.Fatalf("list:\n%s", out)
	}
	if q := e.hakoOK("list", "-q"); q != "l1\n" {
		t.Fatalf("list -q: %q", q)
	}
	var states []map[string]any
	if err := json.Unmarshal([]byte(e.hakoOK("list", "--format", "json")), &states); err != nil || len(states) != 1 || states[0]["id"] != "l1" {
		t.Fatalf("list json: %v %v", states, err)
	}
	var pids []int
	if err := json.Unmarshal([]byte(e.hakoOK("ps", "--format", "json", "l1")), &pids); err != nil || len(pids) != 1 || pids[0] != pid {
		t.Fatalf("ps json: %v %v (init %d)", pids, err, pid)
	}
}

// hako killed in the middle of create (here while a createRuntime hook
// runs) leaves a state that delete --force removes completely: the init
// waiting for it, its cgroups and the state directory.
func TestDeleteForceAfterHakoKilledMidCreate(t *testing.T) {
	e := newEnv(t)
	mark := filepath.Join(t.TempDir(), "hook-started")
	// The hook is hako's child on the host, as it is runc's: killing hako
	// orphans it, so the test ends it (it says its pid in mark).
	e.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo $$ > " + mark + ".tmp && mv " + mark + ".tmp " + mark + "; exec sleep 30"}}}}
	e.write()
	cmd := exec.Command(hakoBin, "--root", e.root, "create", "--bundle", e.bundle, "mid1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if i > 500 {
			t.Fatal("the hook never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hook, err := strconv.Atoi(strings.TrimSpace(readFile(t, mark))); err == nil {
		defer syscall.Kill(hook, syscall.SIGKILL)
	}
	var st struct{ Pid int }
	json.Unmarshal([]byte(e.hakoOK("state", "mid1")), &st)
	if st.Pid <= 0 {
		t.Fatal("no init pid in the state of a half-created container")
	}
	cg := ownCgroupDir(t, st.Pid, "pids")
	cmd.Process.Kill()
	cmd.Wait()
	e.hakoOK("delete", "--force", "mid1")
	if _, err := os.Stat(cg); err == nil {
		t.Errorf("cgroup %s left behind", cg)
	}
	if s, err := os.ReadFile("/proc/" + itoa(st.Pid) + "/stat"); err == nil && !strings.Contains(string(s), ") Z") {
		t.Errorf("init %d still alive", st.Pid)
	}
	assertNothingLeft(t, e, "mid1")
}

// `run` makes itself the subreaper of a container without a PID namespace
// of its own, so that the container's orphans are its children (and reaped
// by it); --no-subreaper leaves them to the host's init, as runc does.
func TestRunNoSubreaper(t *testing.T) {
	e := newEnv(t)
	e.dropNS(specs.PIDNamespace)
	shared := t.TempDir()
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/shared", Type: "bind", Source: shared, Options: []string{"rbind"}})
	// The subshell's sleep is orphaned at once, while the init lives on.
	e.spec.Process.Args = []string{"sh", "-c", "(sleep 30 & echo $! > /shared/orphan); sleep 30"}
	e.write()
	rts := hakoAndRunc(e)
	for who, rt := range rts {
		for _, noSub := range []bool{false, true} {
			os.Remove(filepath.Join(shared, "orphan"))
			id := fmt.Sprintf("c-subreaper-%s-%v", who, noSub)
			args := append(append([]string{}, rt[1:]...), "run", "--bundle", e.bundle)
			if noSub {
				args = append(args, "--no-subreaper")
			}
			cmd := exec.Command(rt[0], append(args, id)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var ppid string
			for i := 0; i < 100 && ppid == ""; i++ {
				time.Sleep(50 * time.Millisecond)
				pid := strings.TrimSpace(readFileMaybe(filepath.Join(shared, "orphan")))
				if pid == "" {
					continue
				}
				for _, l := range strings.Split(readFileMaybe("/proc/"+pid+"/status"), "\n") {
					if v, ok := strings.CutPrefix(l, "PPid:"); ok {
						ppid = strings.TrimSpace(v)
					}
				}
			}
			rtCmd(t, rt, "delete", "--force", id)
			cmd.Wait()
			runPid := fmt.Sprint(cmd.Process.Pid)
			switch {
			case ppid == "":
				t.Errorf("%s (no-subreaper %v): the orphan's parent was never seen", who, noSub)
			case !noSub && ppid != runPid:
				t.Errorf("%s run: the orphan's parent is %s, want the run process %s", who, ppid, runPid)
			case noSub && ppid == runPid:
				t.Errorf("%s run --no-subreaper: the orphan's parent is the run process %s", who, runPid)
			}
		}
	}
}

func readFileMaybe(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
