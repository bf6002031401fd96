package integration

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestHooksAllSixKinds(t *testing.T) {
	e := newEnv(t)
	out := t.TempDir()
	openUp(t, out)
	hook := func(kind string) specs.Hook {
		// The hook binary and output dir are host paths; startContainer
		// runs inside the container, so it gets its own path there.
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + filepath.Join(out, kind)}}
	}
	e.spec.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{hook("prestart")}, //nolint:staticcheck
		CreateRuntime:   []specs.Hook{hook("createRuntime")},
		CreateContainer: []specs.Hook{hook("createContainer")},
		StartContainer:  []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > /tmp/startContainer"}}},
		Poststart:       []specs.Hook{hook("poststart")},
		Poststop:        []specs.Hook{hook("poststop")},
	}
	e.spec.Root.Readonly = false
	e.spec.Process.Args = []string{"sh", "-c", "cat /tmp/startContainer; sleep 1000"}
	e.write()
	e.hakoOK("create", "h1")
	for _, k := range []string{"prestart", "createRuntime", "createContainer"} {
		var st map[string]any
		if err := json.Unmarshal([]byte(readFile(t, filepath.Join(out, k))), &st); err != nil || st["id"] != "h1" {
			t.Fatalf("%s hook state: %v %v", k, st, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "poststart")); err == nil {
		t.Fatal("poststart ran before start")
	}
	e.hakoOK("start", "h1")
	if !strings.Contains(readFile(t, filepath.Join(out, "poststart")), `"status":"running"`) {
		t.Fatal("poststart state is not running")
	}
	// The init runs startContainer once start has woken it, and start
	// does not wait for that (nor does runc's): allow it a moment.
	started := filepath.Join(e.bundle, "rootfs/tmp/startContainer")
	for i := 0; i < 100 && !strings.Contains(readFileMaybe(started), `"id":"h1"`); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(readFile(t, started), `"id":"h1"`) {
		t.Fatal("startContainer hook did not run in the container")
	}
	e.hakoOK("delete", "--force", "h1")
	if !strings.Contains(readFile(t, filepath.Join(out, "poststop")), `"status":"stopped"`) {
		t.Fatal("poststop state is not stopped")
	}
}

func TestFailingCreateRuntimeHookLeavesNothing(t *testing.T) {
	e := newEnv(t)
	e.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
	e.write()
	_, se, code := e.hako("create", "hf")
	if code == 0 || !strings.Contains(se, "createRuntime") {
		t.Fatalf("create with a failing hook: exit %d, %q", code, se)
	}
	assertNothingLeft(t, e, "hf")
}

// assertNothingLeft checks that no state, cgroup, mount or process of the
// container id remains.
func assertNothingLeft(t *testing.T, e *env, id string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(e.root, id)); err == nil {
		t.Errorf("state dir of %s left behind", id)
	}
	for _, c := range []string{"pids", "memory", "cpu", "devices", "freezer"} {
		matches, _ := filepath.Glob("/sys/fs/cgroup/" + c + "/**/" + id)
		direct, _ := filepath.Glob("/sys/fs/cgroup/" + c + "/" + id)
		if len(matches)+len(direct) > 0 {
			t.Errorf("cgroup of %s left behind: %v %v", id, matches, direct)
		}
	}
	if strings.Contains(hostMounts(t), e.bundle) {
		t.Errorf("mounts under the bundle left behind")
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(s *specs.Spec)
		field string
	}{
		{"no-args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args"},
		{"bad-cap", func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_TEST")
		}, "CAP_TEST"},
		{"missing-binary", func(s *specs.Spec) { s.Process.Args = []string{"/nope"} }, "/nope"},
		{"bad-uidmap", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 0}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
		}, "uidMappings"},
		{"bad-ns-path", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "cgroup", Path: "/tmp"})
		}, "/tmp"},
		{"proc-symlink", nil, "symlink"},
		{"bad-memory", func(s *specs.Spec) {
			l := int64(-5)
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &l}
		}, "memory"},
		{"bad-bind-source", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: "/does/not/exist", Options: []string{"bind"}})
		}, "/does/not/exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.edit != nil {
				tc.edit(e.spec)
			} else {
				os.Remove(filepath.Join(e.bundle, "rootfs/proc"))
				os.Symlink("/", filepath.Join(e.bundle, "rootfs/proc"))
			}
			e.write()
			_, se, code := e.hako("create", "bad")
			if code == 0 {
				t.Fatal("create succeeded")
			}
			if strings.Count(strings.TrimSpace(se), "\n") != 0 || !strings.Contains(se, tc.field) {
				t.Errorf("error is not one line naming %q: %q", tc.field, se)
			}
			if strings.Contains(se, "panic") || strings.Contains(se, "goroutine") {
				t.Fatalf("panic: %s", se)
			}
			assertNothingLeft(t, e, "bad")
		})
	}
	e := newEnv(t)
	os.WriteFile(filepath.Join(e.bundle, "config.json"), []byte(`{"ociVersion": "1.0.0", "process": {"args": "sh"}}`), 0o644)
	if _, se, code := e.hako("create", "bad"); code == 0 || !strings.Contains(se, "process.args") {
		t.Fatalf("malformed JSON: %d %q", code, se)
	}
}

func TestProcessProperties(t *testing.T) {
	e := newEnv(t)
	e.spec.Hostname = "box"
	e.spec.Process.Env = append(e.spec.Process.Env, "FOO=bar")
	e.spec.Process.Cwd = "/tmp"
	e.spec.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{2000}}
	e.spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 123, Hard: 456}}
	adj := 500
	e.spec.Process.OOMScoreAdj = &adj
	e.spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	hostForward := readFile(t, "/proc/sys/net/ipv4/ip_forward")
	if hostForward == "1\n" {
		// Made 0 so that the container's 1 cannot be the host's.
		os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0)
		defer os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0)
		hostForward = "0\n"
	}
	out := e.run("sh", "-c", "hostname; echo $FOO; pwd; id; ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; cat /proc/sys/net/ipv4/ip_forward; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; grep NoNewPrivs /proc/self/status")
	for _, want := range []string{"box\n", "bar\n", "/tmp\n", "uid=1000 gid=1000 groups=2000", "\n123\n456\n", "500\n1\n", "CapInh:\t0000000000000000", "CapBnd:\t0000000020000420", "CapEff:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// Host namespaces untouched.
	if after := readFile(t, "/proc/sys/net/ipv4/ip_forward"); after != hostForward {
		t.Errorf("host net.ipv4.ip_forward changed from %q to %q", hostForward, after)
	}
	if h, _ := os.Hostname(); h == "box" {
		t.Fatal("hostname leaked to the host")
	}
}

func TestReadonlyRootMaskedAndReadonlyPaths(t *testing.T) {
	e := newEnv(t)
	out := e.run("sh", "-c", "touch /x 2>&1; cat /proc/kcore 2>&1 | wc -c; ls /proc/acpi | wc -l; echo 1 > /proc/sysrq-trigger 2>&1; grep ' /proc/sys ' /proc/self/mountinfo")
	if !strings.Contains(out, "Read-only file system") {
		t.Errorf("root not read-only:\n%s", out)
	}
	if !strings.Contains(out, " /proc/sys ro,") {
		t.Errorf("/proc/sys not read-only:\n%s", out)
	}
}

func TestNoHostFdLeaksAndPreserveFds(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"ls", "/proc/self/fd"}
	e.write()
	f, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(hakoBin, "--root", e.root, "run", "--preserve-fds", "1", "--bundle", e.bundle, "fd1")
	cmd.ExtraFiles = []*os.File{f}
	leak, _ := os.Open("/etc/passwd") // not passed: must not appear
	defer leak.Close()
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	// 0 1 2, the preserved 3, and ls's own directory fd.
	fds := strings.Fields(string(out))
	if len(fds) != 5 || fds[3] != "3" {
		t.Fatalf("fds in the container: %q (want 0 1 2 3 + ls's own)", fds)
	}
}

// The pty master arrives over --console-socket as runc sends it.
func TestConsoleSocket(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Terminal = true
	e.spec.Process.Args = []string{"sh", "-c", "tty; readlink /proc/self/fd/0"}
	e.write()
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 256), make([]byte, 64)
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- err.Error()
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		fds, _ := unix.ParseUnixRights(&msgs[0])
		master := os.NewFile(uintptr(fds[0]), "master")
		defer master.Close()
		var all []byte
		master.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1024)
		for {
			n, err := master.Read(b)
			all = append(all, b[:n]...)
			if err != nil || strings.Count(string(all), "\n") >= 2 {
				break
			}
		}
		got <- string(all)
	}()
	e.hakoOK("create", "--console-socket", sock, "tty1")
	e.hakoOK("start", "tty1")
	out := <-got
	if !strings.Contains(out, "/dev/pts/0") {
		t.Fatalf("pty output %q", out)
	}
}

func TestExecFlags(t *testing.T) {
	e := newEnv(t)
	e.background("ex1")
	out := e.hakoOK("exec", "--user", "1000:1000", "--additional-gids", "33", "--env", "A=b", "--cwd", "/tmp", "ex1", "sh", "-c", "id; echo $A; pwd")
	for _, want := range []string{"uid=1000 gid=1000 groups=33", "b\n", "/tmp\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in %q", want, out)
		}
	}
	out = e.hakoOK("exec", "--cap", "CAP_SYS_ADMIN", "ex1", "grep", "Cap", "/proc/self/status")
	if !strings.Contains(out, "CapInh:\t0000000000000000") {
		t.Errorf("exec --cap reached the inheritable set (CVE-2022-29162):\n%s", out)
	}
	if _, _, code := e.hako("exec", "--cap", "CAP_NOPE", "ex1", "true"); code == 0 {
		t.Error("unknown capability accepted")
	}
	if _, _, code := e.hako("exec", "ex1", "sh", "-c", "exit 42"); code != 42 {
		t.Errorf("exec exit code %d, want 42", code)
	}
	if _, se, code := e.hako("exec", "ex1", "/no/such"); code == 0 || !strings.Contains(se, "/no/such") {
		t.Errorf("exec of a missing binary: %d %q", code, se)
	}
}

// exec joins the init's user namespace too (a multithreaded Go process
// cannot: the constructor in nsexec.c does it before the runtime starts).
func TestExecJoinsUserNamespace(t *testing.T) {
	e := newEnv(t)
	openUp(t, e.bundle)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
	pid := e.background("un1")
	want, _ := os.Readlink("/proc/" + itoa(pid) + "/ns/user")
	out := e.hakoOK("exec", "un1", "sh", "-c", "readlink /proc/self/ns/user; cat /proc/self/uid_map")
	if !strings.Contains(out, want) || !strings.Contains(out, "300000") {
		t.Fatalf("exec user ns %q, init's %s", out, want)
	}
}

func TestJoinNamespaceByPath(t *testing.T) {
	e := newEnv(t)
	pid := e.background("owner")
	e2 := newEnv(t)
	e2.root = e.root
	for i, n := range e2.spec.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace || n.Type == specs.UTSNamespace {
			e2.spec.Linux.Namespaces[i].Path = "/proc/" + itoa(pid) + "/ns/" + map[specs.LinuxNamespaceType]string{"network": "net", "uts": "uts"}[n.Type]
		}
	}
	e2.spec.Hostname = ""
	out := e2.run("sh", "-c", "readlink /proc/self/ns/net; hostname")
	want, _ := os.Readlink("/proc/" + itoa(pid) + "/ns/net")
	if !strings.Contains(out, want) || !strings.Contains(out, "runc") {
		t.Fatalf("joined %q, want %s and the owner's hostname", out, want)
	}
}

func TestNoPivot(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"sh", "-c", "ls /; cat /proc/self/mountinfo | head -1"}
	e.write()
	out := e.hakoOK("run", "--no-pivot", "np")
	if !strings.Contains(out, "bin") || !strings.Contains(out, " / ") {
		t.Fatalf("--no-pivot: %q", out)
	}
}

func TestCgroupLimitsApplied(t *testing.T) {
	e := newEnv(t)
	limit := int64(64 << 20)
	pids := int64(42)
	e.spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	e.spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	pid := e.background("cg1")
	mem := ownCgroupDir(t, pid, "memory")
	if v := strings.TrimSpace(readFile(t, mem+"/memory.limit_in_bytes")); v != itoa(int(limit)) {
		t.Errorf("memory.limit_in_bytes = %s", v)
	}
	if v := strings.TrimSpace(readFile(t, ownCgroupDir(t, pid, "pids")+"/pids.max")); v != "42" {
		t.Errorf("pids.max = %s", v)
	}
	e.hakoOK("delete", "--force", "cg1")
	if _, err := os.Stat(mem); err == nil {
		t.Errorf("memory cgroup %s left after delete", mem)
	}
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	e.background("p1")
	e.hakoOK("pause", "p1")
	if !strings.Contains(e.hakoOK("state", "p1"), `"paused"`) {
		t.Fatal("not paused")
	}
	e.hakoOK("resume", "p1")
	if !strings.Contains(e.hakoOK("state", "p1"), `"running"`) {
		t.Fatal("not running after resume")
	}
	e.hakoOK("pause", "p1")
	e.hakoOK("delete", "--force", "p1")
}

// A new time namespace gets its offsets before any process lives in it
// (they cannot be changed after), and a new cgroup namespace makes the
// container's cgroup its root.
func TestTimeAndCgroupNamespaces(t *testing.T) {
	e := newEnv(t)
	e.addNS(specs.TimeNamespace)
	e.addNS(specs.CgroupNamespace)
	e.spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 86400 * 365}}
	out := e.run("sh", "-c", "cat /proc/self/timens_offsets; cat /proc/uptime; cat /proc/self/cgroup | head -3")
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "boottime 31536000") {
		t.Errorf("time offsets not set:\n%s", out)
	}
	var up float64
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.Contains(f[0], ".") {
			fmtSscan(f[0], &up)
		}
	}
	if up < 86400*365 {
		t.Errorf("uptime %v does not include the boottime offset", up)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Count(l, ":") >= 2 && !strings.HasSuffix(l, ":/") {
			t.Errorf("cgroup namespace root is not the container's cgroup: %q", l)
		}
	}
}

// Idmapped mounts (seed 004's shiftfs, done with mount_setattr today): with
// the container's user namespace, and with maps of the mount's own.
func TestIdmappedMounts(t *testing.T) {
	e := newEnv(t)
	openUp(t, e.bundle)
	src := t.TempDir()
	openUp(t, src)
	os.WriteFile(filepath.Join(src, "root-owned"), nil, 0o644)
	os.WriteFile(filepath.Join(src, "owned-by-1000"), nil, 0o644)
	os.Chown(filepath.Join(src, "owned-by-1000"), 1000, 1000)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 400000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 400000, Size: 65536}}
	e.spec.Mounts = append(e.spec.Mounts,
		specs.Mount{Destination: "/mnt", Type: "bind", Source: src, Options: []string{"bind", "idmap"}},
		specs.Mount{Destination: "/tmp", Type: "bind", Source: src, Options: []string{"bind"},
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 5, HostID: 1000, Size: 1}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 5, HostID: 1000, Size: 1}}})
	out := e.run("sh", "-c", "stat -c '%n %u' /mnt/root-owned /mnt/owned-by-1000 /tmp/owned-by-1000; touch /mnt/made-inside")
	for _, want := range []string{"/mnt/root-owned 0", "/mnt/owned-by-1000 1000", "/tmp/owned-by-1000 65534"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// Container root writes through the idmapped mount as host root.
	if o := statOwner(t, filepath.Join(src, "made-inside")); o != [2]uint32{0, 0} {
		t.Errorf("file made through the idmapped mount is owned by %v on the host, want 0:0", o)
	}
}

func TestOverlayMount(t *testing.T) {
	e := newEnv(t)
	d := t.TempDir()
	lower, upper, work := filepath.Join(d, "lower"), filepath.Join(d, "upper"), filepath.Join(d, "work")
	for _, p := range []string{lower, upper, work} {
		os.MkdirAll(p, 0o755)
	}
	os.WriteFile(filepath.Join(lower, "from-lower"), []byte("l"), 0o644)
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "overlay", Source: "overlay",
		Options: []string{"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work}})
	out := e.run("sh", "-c", "cat /mnt/from-lower; echo u > /mnt/new; grep ' /mnt ' /proc/self/mountinfo")
	if !strings.Contains(out, "l") || !strings.Contains(out, "overlay") {
		t.Fatalf("overlay: %q", out)
	}
	if readFile(t, filepath.Join(upper, "new")) != "u\n" {
		t.Fatal("write did not land in upperdir")
	}
	if _, err := os.Stat(filepath.Join(lower, "new")); err == nil {
		t.Fatal("write went to lowerdir")
	}
}

func TestKillAllAndExecProcessJSON(t *testing.T) {
	e := newEnv(t)
	// No PID namespace: killing the init alone would leave its children.
	e.dropNS(specs.PIDNamespace)
	e.spec.Process.Args = []string{"sh", "-c", "sleep 1000 & sleep 1000 & wait"}
	e.write()
	e.hakoOK("run", "-d", "ka")
	p := specs.Process{Args: []string{"sh", "-c", "echo from-process-json $X"}, Env: []string{"X=y", "PATH=/bin"}, Cwd: "/"}
	data, _ := json.Marshal(p)
	pj := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(pj, data, 0o644)
	if out := e.hakoOK("exec", "--process", pj, "ka"); out != "from-process-json y\n" {
		t.Fatalf("exec --process: %q", out)
	}
	var pids []int
	json.Unmarshal([]byte(e.hakoOK("ps", "--format", "json", "ka")), &pids)
	if len(pids) < 3 {
		t.Fatalf("want init and two sleeps, got %v", pids)
	}
	e.hakoOK("kill", "--all", "ka", "KILL")
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for {
			st, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
			if err != nil || strings.Contains(string(st), ") Z") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d survived kill --all", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestLogFormatJSON(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(t.TempDir(), "log.json")
	_, _, code := e.hako("--log", log, "--log-format", "json", "start", "no-such-container")
	if code == 0 {
		t.Fatal("start of a missing container succeeded")
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, log)), "\n")
	var entry map[string]string
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &entry); err != nil || entry["level"] != "error" || !strings.Contains(entry["msg"], "no-such-container") {
		t.Fatalf("last log line %q: %v", lines[len(lines)-1], err)
	}
}

func TestUpdate(t *testing.T) {
	e := newEnv(t)
	pid := e.background("up1")
	e.hakoOK("update", "--memory", "128m", "--pids-limit", "77", "--cpu-share", "256", "up1")
	mem := ownCgroupDir(t, pid, "memory")
	if v := strings.TrimSpace(readFile(t, mem+"/memory.limit_in_bytes")); v != "134217728" {
		t.Errorf("memory.limit_in_bytes = %s after update", v)
	}
	if v := strings.TrimSpace(readFile(t, ownCgroupDir(t, pid, "pids")+"/pids.max")); v != "77" {
		t.Errorf("pids.max = %s after update", v)
	}
	r := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(r, []byte(`{"pids":{"limit":99}}`), 0o644)
	e.hakoOK("update", "-r", r, "up1")
	if v := strings.TrimSpace(readFile(t, ownCgroupDir(t, pid, "pids")+"/pids.max")); v != "99" {
		t.Errorf("pids.max = %s after update -r", v)
	}
	if _, se, code := e.hako("update", "--memory", "lots", "up1"); code == 0 || !strings.Contains(se, "--memory") {
		t.Errorf("bad --memory: %d %q", code, se)
	}
}

// The working directory is entered before the switch to the process's
// user, with the runtime's privileges, as runc does: exec --user 0 reaches
// a cwd only the configured user may enter even without CAP_DAC_OVERRIDE,
// and a container starts in a cwd its user could not enter.
func TestCwdEnteredBeforeUserSwitch(t *testing.T) {
	e := newEnv(t)
	rootfs := filepath.Join(e.bundle, "rootfs")
	for dir, owner := range map[string]int{"home/u": 1000, "secret": 0} {
		p := filepath.Join(rootfs, dir)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, owner, owner)
		os.Chmod(p, 0o700)
	}
	e.spec.Process.User = specs.User{UID: 1000, GID: 1000}
	runtimes := map[string]string{"hako": hakoBin}
	if p, err := runcPath(); err == nil {
		runtimes["runc"] = p
	}
	for name, bin := range runtimes {
		rt := func(args ...string) (string, error) {
			cmd := exec.Command(bin, append([]string{"--root", e.root + "-" + name}, args...)...)
			cmd.Dir = e.bundle
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		e.spec.Process.Cwd = "/home/u"
		e.spec.Process.Args = []string{"sleep", "1000"}
		e.write()
		id := "d-cwd-" + name
		// Detached, with stdio on a file: the container keeps its
		// stdio, and a pipe would never see its last writer close.
		cmd := exec.Command(bin, "--root", e.root+"-"+name, "run", "-d", id)
		cmd.Dir = e.bundle
		so := tempOut(t)
		cmd.Stdout, cmd.Stderr = so, so
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s run -d: %v %s", name, err, readAll(so))
		}
		t.Cleanup(func() { rt("delete", "--force", id) })
		out, err := rt("exec", "--user", "0", id, "sh", "-c", "pwd; id -u")
		if err != nil || out != "/home/u\n0\n" {
			t.Errorf("%s exec --user 0 into a cwd only uid 1000 may enter: %v %q", name, err, out)
		}
		e.spec.Process.Cwd = "/secret"
		e.spec.Process.Args = []string{"sh", "-c", "pwd; id -u"}
		e.write()
		out, err = rt("run", id+"-2")
		if err != nil || out != "/secret\n1000\n" {
			t.Errorf("%s run as uid 1000 in a cwd only root may enter: %v %q", name, err, out)
		}
	}
}

// consoleOutput listens on a console socket and returns what the first pty
// master sent to it carries, up to the first line holding want (or EOF).
func consoleOutput(t *testing.T, want string) (string, <-chan string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		defer l.Close()
		c, err := l.AcceptUnix()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 256), make([]byte, 64)
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- err.Error()
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			got <- "no fd received"
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		master := os.NewFile(uintptr(fds[0]), "master")
		defer master.Close()
		// A bound on a broken container, not a timing assert.
		master.SetReadDeadline(time.Now().Add(20 * time.Second))
		var all []byte
		b := make([]byte, 1024)
		for {
			if i := strings.Index(string(all), want); i >= 0 && strings.Contains(string(all[i:]), "\n") {
				break
			}
			n, err := master.Read(b)
			all = append(all, b[:n]...)
			if err != nil {
				break
			}
		}
		got <- string(all)
	}()
	return sock, got
}

// The pty slave belongs to the process's user, the group staying devpts'
// gid=5, as runc leaves it (its fixStdioPermissions): for the init and for
// exec -t.
func TestTerminalOwnedByProcessUser(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Terminal = true
	e.spec.Process.User = specs.User{UID: 1000, GID: 1000}
	e.spec.Process.Args = []string{"sh", "-c", "stat -L -c 'init=%u:%g' /proc/self/fd/0; sleep 1000"}
	e.write()
	runtimes := map[string]string{"hako": hakoBin}
	if p, err := runcPath(); err == nil {
		runtimes["runc"] = p
	}
	for name, bin := range runtimes {
		rt := func(args ...string) {
			t.Helper()
			cmd := exec.Command(bin, append([]string{"--root", e.root + "-" + name}, args...)...)
			cmd.Dir = e.bundle
			so := tempOut(t)
			cmd.Stdout, cmd.Stderr = so, so
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s %v: %v %s", name, args, err, readAll(so))
			}
		}
		id := "d-tty-" + name
		sock, got := consoleOutput(t, "init=")
		rt("create", "--console-socket", sock, id)
		t.Cleanup(func() {
			cmd := exec.Command(bin, "--root", e.root+"-"+name, "delete", "--force", id)
			cmd.Run()
		})
		rt("start", id)
		if out := <-got; !strings.Contains(out, "init=1000:5") {
			t.Errorf("%s: the init's pty is not 1000:5: %q", name, out)
		}
		sock, got = consoleOutput(t, "exec=")
		rt("exec", "-d", "-t", "--console-socket", sock, "--user", "1000:1000", id, "stat", "-L", "-c", "exec=%u:%g", "/proc/self/fd/0")
		if out := <-got; !strings.Contains(out, "exec=1000:5") {
			t.Errorf("%s: exec -t's pty is not 1000:5: %q", name, out)
		}
	}
}

// A bind source below a directory only host root may enter, in a container
// whose root maps to an unprivileged host uid: runc opens bind sources from
// outside the user namespace, so the bind works; hako's parent does too.
func TestUserNSBindSourceBelowRootOnlyDir(t *testing.T) {
	e := newEnv(t)
	openUp(t, e.bundle)
	hidden := filepath.Join(t.TempDir(), "root-only")
	src := filepath.Join(hidden, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(hidden, 0o700)
	os.WriteFile(filepath.Join(src, "f"), []byte("reached\n"), 0o644)
	os.WriteFile(filepath.Join(hidden, "file"), []byte("file-reached\n"), 0o644)
	// The mapped root cannot create a mount point in a rootfs of host root's.
	os.WriteFile(filepath.Join(e.bundle, "rootfs/etc/file"), nil, 0o644)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 330000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 330000, Size: 65536}}
	e.spec.Mounts = append(e.spec.Mounts,
		specs.Mount{Destination: "/mnt", Type: "bind", Source: src, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/etc/file", Type: "bind", Source: filepath.Join(hidden, "file"), Options: []string{"bind", "ro"}})
	e.spec.Process.Args = []string{"sh", "-c", "cat /mnt/f /etc/file"}
	e.write()
	runtimes := map[string]string{"hako": hakoBin}
	if p, err := runcPath(); err == nil {
		runtimes["runc"] = p
	}
	for name, bin := range runtimes {
		cmd := exec.Command(bin, "--root", e.root+"-"+name, "run", "d-bindsrc-"+name)
		cmd.Dir = e.bundle
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "reached\nfile-reached\n" {
			t.Errorf("%s: bind of a source the mapped root cannot reach: %v %q", name, err, out)
		}
	}

	// Opened from outside, the rbind must still keep the locks the kernel
	// puts on mounts copied into a less privileged namespace: even with
	// CAP_SYS_ADMIN in its user namespace, the container can neither
	// unmount a host submount (revealing what it covers) nor make it
	// writable. A tree cloned in the host's namespace would carry no locks.
	inner := filepath.Join(src, "inner")
	os.MkdirAll(inner, 0o755)
	if err := unix.Mount("tmpfs", inner, "tmpfs", unix.MS_RDONLY, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(inner, unix.MNT_DETACH) })
	addCaps(e.spec, "CAP_SYS_ADMIN")
	e.spec.Process.Args = []string{"sh", "-c", "umount /mnt/inner && echo unmounted; mount -o remount,rw,bind /mnt/inner && echo made-rw; grep -c ' /mnt/inner ' /proc/self/mountinfo"}
	e.write()
	for name, bin := range runtimes {
		cmd := exec.Command(bin, "--root", e.root+"-"+name, "run", "d-bindlock-"+name)
		cmd.Dir = e.bundle
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(out), "unmounted") || strings.Contains(string(out), "made-rw") || !regexp.MustCompile(`(?m)^1$`).MatchString(string(out)) {
			t.Errorf("%s: a host submount of the rbind is not locked: %v %q", name, err, out)
		}
	}
}
