package nsenter

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/spec"
)

// cplanRun re-executes the test binary through the real constructor with
// OptCPlan, sends it p as EncodeCPlan writes it, and returns what the
// exec'd program printed, or the error the C plan reported.
func cplanRun(t *testing.T, p *plan.Plan) (string, error) {
	t.Helper()
	b, ok := EncodeCPlan(p)
	if !ok {
		t.Fatal("EncodeCPlan refused the plan")
	}
	return cplanRunBytes(t, b)
}

// cplanRunBytes is cplanRun for a plan already encoded (or broken).
func cplanRunBytes(t *testing.T, b []byte) (string, error) {
	t.Helper()
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	parent, cmd := startConstructor(t, w)
	w.Close()
	defer cmd.Wait()
	frames, files, err := (&Request{Options: OptCPlan}).Frames()
	if err != nil {
		t.Fatal(err)
	}
	defer closeFiles(files)
	for _, f := range frames {
		if err := parent.Send(f); err != nil {
			t.Fatalf("send %s: %v", f.Type, err)
		}
	}
	pid, err := Wait(parent.Next, parent.Send, nil, func() error { return errors.New("no maps expected") })
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Wait4(pid, nil, 0, nil)
	if err := parent.Send(&frame.Frame{Type: frame.TypeNsCPlan, Payload: b}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := parent.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break // exec'd: the socket closed with it
		}
		if err != nil {
			t.Fatal(err)
		}
		switch f.Type {
		case frame.TypeNsCError:
			return "", errors.New(CError(f.Payload))
		case frame.TypeReady:
		default:
			t.Fatalf("unexpected %s frame", f.Type)
		}
	}
	data, _ := io.ReadAll(out)
	return string(data), nil
}

func execPlan(t *testing.T, proc *specs.Process) *plan.Plan {
	t.Helper()
	p, err := plan.ForExecWith(proc, &specs.Linux{}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The process nsexec.c sets up from an exec's plan is the one the Go
// handlers set up: ids, groups, rlimits, no_new_privs, capability sets,
// umask, working directory, HOME from /etc/passwd, PATH lookup, argv0.
func TestCPlanAppliesProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it switches to uid 1000 and sets capabilities")
	}
	umask := uint32(0o027)
	caps := []string{"CAP_KILL", "CAP_NET_RAW"}
	proc := &specs.Process{
		Args: []string{"sh", "-c", `umask; ulimit -n; ulimit -Hn; id -u; id -g; id -G; echo "$HOME $0"; pwd; grep -E "^(Cap(Prm|Eff|Inh|Bnd|Amb)|NoNewPrivs)" /proc/self/status`},
		Env:  []string{"PATH=/nonexistent::/usr/bin:/bin"},
		Cwd:  "/tmp", NoNewPrivileges: true,
		User:         specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{5, 7}, Umask: &umask},
		Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 123, Hard: 456}},
		Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps, Inheritable: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"}},
	}
	got, err := cplanRun(t, execPlan(t, proc))
	if err != nil {
		t.Fatal(err)
	}
	home := "/"
	if data, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Split(l, ":"); len(f) >= 6 && f[2] == "65534" && f[5] != "" {
				home = f[5]
				break
			}
		}
	}
	// A uid other than 0 keeps across execve only its ambient set
	// (CAP_KILL): CAP_NET_RAW, permitted and effective before the exec,
	// is left in the bounding set alone.
	want := "0027\n123\n456\n65534\n65534\n65534 5 7\n" + home + " sh\n/tmp\n" +
		"CapInh:\t0000000000000020\nCapPrm:\t0000000000000020\nCapEff:\t0000000000000020\nCapBnd:\t0000000000002020\nCapAmb:\t0000000000000020\nNoNewPrivs:\t1\n"
	if got != want {
		t.Fatalf("the exec'd process reports:\n%s\nwant:\n%s", got, want)
	}
}

// Failures read as the Go handlers word them, errno included.
func TestCPlanErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, as the exec it stands for")
	}
	dir := t.TempDir()
	noExec := filepath.Join(dir, "noexec")
	os.WriteFile(noExec, []byte("#!/bin/sh\n"), 0o644)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a program\n"), 0o755)
	for name, tc := range map[string]struct {
		proc specs.Process
		want string
	}{
		"not in PATH": {specs.Process{Args: []string{"no-such-program"}, Env: []string{"PATH=/usr/bin:/bin"}},
			`lookup: exec "no-such-program": executable file not found in $PATH`},
		"no PATH": {specs.Process{Args: []string{"sh"}},
			`lookup: exec "sh": executable file not found in $PATH`},
		"missing": {specs.Process{Args: []string{"/no/such"}},
			`lookup: exec "/no/such": stat /no/such: no such file or directory`},
		"directory": {specs.Process{Args: []string{dir}},
			`lookup: exec "` + dir + `": is a directory`},
		"not executable": {specs.Process{Args: []string{noExec}},
			`lookup: exec "` + noExec + `": permission denied`},
		"cwd": {specs.Process{Args: []string{"/bin/true"}, Cwd: "/no/such/dir"},
			`cwd: process.cwd /no/such/dir: no such file or directory`},
		"cwd magic link": {specs.Process{Args: []string{"/bin/true"}, Cwd: "/proc/self/cwd"},
			`cwd: process.cwd /proc/self/cwd: too many levels of symbolic links (it goes through a /proc magic link, which could lead outside the container)`},
		"exec fails": {specs.Process{Args: []string{garbage}},
			`exec: exec ` + garbage + `: exec format error`},
	} {
		_, err := cplanRun(t, execPlan(t, &tc.proc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

// EncodeCPlan hands to Go every plan with a step, or a detail of one,
// that cplan.c does not apply.
func TestEncodeCPlanLeavesToGo(t *testing.T) {
	base := func() *specs.Process { return &specs.Process{Args: []string{"true"}, Env: []string{"PATH=/bin"}} }
	if _, ok := EncodeCPlan(execPlan(t, base())); !ok {
		t.Fatal("a plain exec plan was left to Go")
	}
	for name, mod := range map[string]func(p *specs.Process){
		"terminal":     func(p *specs.Process) { p.Terminal = true },
		"apparmor":     func(p *specs.Process) { p.ApparmorProfile = "unconfined" },
		"selinux":      func(p *specs.Process) { p.SelinuxLabel = "system_u:system_r:container_t:s0" },
		"ioprio":       func(p *specs.Process) { p.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_BE", Priority: 4} },
		"quoted name":  func(p *specs.Process) { p.Args = []string{"a\"b"} },
		"newline name": func(p *specs.Process) { p.Args = []string{"a\nb"} },
		"eff not perm": func(p *specs.Process) { p.Capabilities = &specs.LinuxCapabilities{Effective: []string{"CAP_KILL"}} },
		"unknown cap":  func(p *specs.Process) { p.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_NOPE"}} },
	} {
		p := base()
		mod(p)
		pl, err := plan.ForExecWith(p, &specs.Linux{}, nil, 0)
		if err != nil {
			continue // refused before a plan exists: nothing to hand on
		}
		if _, ok := EncodeCPlan(pl); ok {
			t.Errorf("%s: EncodeCPlan took a plan it cannot apply", name)
		}
	}
	if _, ok := EncodeCPlan(&plan.Plan{Kind: "sandbox", Steps: []plan.Step{{Op: plan.OpExec}}}); ok {
		t.Error("EncodeCPlan took a plan of another kind")
	}
}

// An init's plan as runc's default config compiles goes to nsexec.c, with
// the plan in Go's wire form for a hand-over; one with a step or a detail
// only Go applies does not.
func TestEncodeCPlanInit(t *testing.T) {
	compile := func(mod func(s *specs.Spec, in *plan.OCI)) (*plan.Plan, error) {
		s := spec.Default(false)
		s.Process.Terminal = false
		in := &plan.OCI{Spec: s, Bundle: "/b", Rootfs: "/b/rootfs",
			Cgroups: []rootfs.CgroupMount{{Dir: "cpu", HostPath: "/sys/fs/cgroup/cpu/c", Symlinks: []string{"cpuacct"}}}}
		if mod != nil {
			mod(s, in)
		}
		return plan.FromSpec(in)
	}
	p, err := compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := EncodeCPlan(p)
	if !ok {
		t.Fatalf("runc's default config was left to Go: %v", p.Lines())
	}
	if wire := plan.Encode(p); !strings.Contains(string(b), string(wire)) {
		t.Error("the C plan does not carry the plan's wire form")
	}
	for name, mod := range map[string]func(s *specs.Spec, in *plan.OCI){
		"terminal": func(s *specs.Spec, in *plan.OCI) { s.Process.Terminal = true },
		"hooks": func(s *specs.Spec, in *plan.OCI) {
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/true"}}}
		},
		"prestart": func(s *specs.Spec, in *plan.OCI) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/true"}}}
		},
		"tmpcopyup": func(s *specs.Spec, in *plan.OCI) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup"}})
		},
		"idmap": func(s *specs.Spec, in *plan.OCI) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/m", Type: "bind", Source: "/tmp", Options: []string{"rbind", "idmap"}, UIDMappings: []specs.LinuxIDMapping{{Size: 1}}, GIDMappings: []specs.LinuxIDMapping{{Size: 1}}})
		},
		"no pivot":           func(s *specs.Spec, in *plan.OCI) { in.NoPivot = true },
		"shared propagation": func(s *specs.Spec, in *plan.OCI) { s.Linux.RootfsPropagation = "shared" },
		"apparmor":           func(s *specs.Spec, in *plan.OCI) { s.Process.ApparmorProfile = "unconfined" },
		"personality": func(s *specs.Spec, in *plan.OCI) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
		},
	} {
		p, err := compile(mod)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, ok := EncodeCPlan(p); ok {
			t.Errorf("%s: EncodeCPlan took a plan it cannot apply: %v", name, p.Lines())
		}
	}
}

func TestCError(t *testing.T) {
	for _, tc := range []struct {
		p    []byte
		want string
	}{
		{append([]byte{2, 0, 0, 0}, "step 3 cwd: process.cwd /x\x00 (hint)"...), "step 3 cwd: process.cwd /x: no such file or directory (hint)"},
		{append([]byte{0, 0, 0, 0}, "step 11 lookup: exec \"x\": executable file not found in $PATH\x00"...), "step 11 lookup: exec \"x\": executable file not found in $PATH"},
		{[]byte{1}, `malformed c-plan error report "\x01"`},
	} {
		if got := CError(tc.p); got != tc.want {
			t.Errorf("CError(%q) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// cplan.c's lookup joins PATH entries and names as Go's lookup does.
func TestCCleanMatchesFilepath(t *testing.T) {
	for _, p := range []string{"", ".", "/", "//", "/usr/bin/", "/usr//bin/./true", "./x", "x", "../x", "a/../..", "/../a", "a/b/../../..", ".//x/.", "/a/b/c/../../d"} {
		if got, want := cClean(p), filepath.Clean(p); got != want {
			t.Errorf("hako_clean(%q) = %q, filepath.Clean says %q", p, got, want)
		}
	}
}

func FuzzCClean(f *testing.F) {
	f.Add("/usr//bin/../x")
	f.Fuzz(func(t *testing.T, p string) {
		if strings.IndexByte(p, 0) >= 0 {
			return // a C string ends there
		}
		if got, want := cClean(p), filepath.Clean(p); got != want {
			t.Fatalf("hako_clean(%q) = %q, filepath.Clean says %q", p, got, want)
		}
	})
}

// A plan cut short anywhere is refused as malformed, never read past its
// end (the parent is its only writer, but a bug there must not become one
// here).
func TestCPlanTruncated(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, as the exec it stands for")
	}
	b, ok := EncodeCPlan(execPlan(t, &specs.Process{Args: []string{"/bin/true"}, Env: []string{"PATH=/bin"}, Cwd: "/"}))
	if !ok {
		t.Fatal("EncodeCPlan refused the plan")
	}
	for _, n := range []int{0, 3, 15, len(b) / 3, len(b) / 2, len(b) - 30, len(b) - 1} {
		if n < 0 || n >= len(b) {
			continue
		}
		_, err := cplanRunBytes(t, b[:n])
		if err == nil || !strings.Contains(err.Error(), "malformed c-plan") && !strings.Contains(err.Error(), "returned without exec") {
			t.Errorf("plan cut at %d of %d bytes: %v", n, len(b), err)
		}
	}
}
