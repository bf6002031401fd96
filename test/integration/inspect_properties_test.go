package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type readBack struct {
	Name    string
	Value   string
	InForce bool `json:"in_force"`
	Unknown bool
	Reason  string
}

// inspectProps runs `hako inspect --json --properties PID` as cred (nil:
// root) with bin.
func inspectProps(t *testing.T, bin string, cred *syscall.Credential, pid int) map[string]readBack {
	t.Helper()
	cmd := exec.Command(bin, "inspect", "--json", "--properties", strconv.Itoa(pid))
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("inspect --properties %d: %v\n%s", pid, err, out)
	}
	var r struct {
		Properties []readBack
		Errors     []string
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(r.Errors) > 0 {
		t.Errorf("inspect errors: %v", r.Errors)
	}
	m := map[string]readBack{}
	for _, p := range r.Properties {
		m[p.Name] = p
	}
	return m
}

// startSandbox starts `hako sandbox ARGS -- sleep N` and returns the PID
// of sleep (PID 2 of the sandbox, under its init), found by its unique
// argument.
func startSandbox(t *testing.T, bin string, cred *syscall.Credential, args ...string) int {
	t.Helper()
	mark := strconv.Itoa(100000 + os.Getpid()%10000*10 + len(args))
	cmd := exec.Command(bin, append(append([]string{"sandbox"}, args...), "--", "sleep", mark)...)
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	errf := tempOut(t)
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for i := 0; i < 200; i++ {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if data, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); string(data) == "sleep\x00"+mark+"\x00" {
				return pid
			}
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("sandbox %v did not start: %s", args, readAll(errf))
	return 0
}

// inForce is NAME=VALUE of every property in force, sorted; Limit*
// properties are left to the caller.
func inForce(m map[string]readBack) []string {
	var out []string
	for _, p := range m {
		if p.InForce && !strings.HasPrefix(p.Name, "Limit") {
			out = append(out, p.Name+"="+p.Value)
		}
	}
	sort.Strings(out)
	return out
}

// wantInForce checks that exactly want is in force (Limit* aside), with
// PrivateUsers=yes too for an unprivileged caller, whose sandbox always
// has a user namespace.
func wantInForce(t *testing.T, m map[string]readBack, unprivileged bool, want []string) {
	t.Helper()
	if unprivileged {
		want = append(append([]string{}, want...), "PrivateUsers=yes")
		sort.Strings(want)
	}
	if got := inForce(m); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("in force:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// `hako inspect --properties` reads back the sandbox's own table: a
// sandbox started with properties reports exactly those (and what they
// imply on this host, named below), a process outside any sandbox reports
// them all off, and the seccomp-enforced ones are said to be unreadable.
func TestInspectPropertiesSandbox(t *testing.T) {
	base, err := os.MkdirTemp("/var/lib", "hako-props-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	for _, d := range []string{"rw", "ro", "src", "dst", "tmp", "hidden"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	os.WriteFile(filepath.Join(base, "hidden", "secret"), nil, 0o644)
	os.WriteFile(filepath.Join(base, "src", "f"), nil, 0o644)
	os.Chmod(base, 0o755)

	// Outside any sandbox: nothing but its limits, which are the test's.
	self := exec.Command("sleep", "1000")
	if err := self.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { self.Process.Kill(); self.Wait() }()
	plain := inspectProps(t, hakoBin, nil, self.Process.Pid)
	if got := inForce(plain); len(got) != 0 {
		t.Errorf("a process outside any sandbox reports %v", got)
	}
	for _, name := range []string{"PrivateTmp", "ProtectSystem", "PrivateNetwork", "NoNewPrivileges", "CapabilityBoundingSet", "ReadOnlyPaths", "SystemCallFilter"} {
		if p, ok := plain[name]; !ok || p.InForce || p.Unknown {
			t.Errorf("outside a sandbox %s: %+v (present %v)", name, p, ok)
		}
	}
	limits := func(m map[string]readBack, set string) {
		t.Helper()
		for name, p := range plain {
			if !strings.HasPrefix(name, "Limit") {
				continue
			}
			want := p.InForce
			if name == "LimitNOFILE" {
				want = true
			}
			if m[name].InForce != want {
				t.Errorf("%s: %+v, want in force %v (outside: %+v)", name, m[name], want, p)
			}
		}
		if v := m["LimitNOFILE"].Value; v != set {
			t.Errorf("LimitNOFILE=%s, want %s", v, set)
		}
	}

	seccomp := []string{"SystemCallFilter", "SystemCallErrorNumber", "SystemCallArchitectures", "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute", "RestrictRealtime", "RestrictSUIDSGID", "RestrictAddressFamilies"}
	dir, cred := rootlessHako(t)
	for _, who := range []struct {
		name string
		bin  string
		cred *syscall.Credential
	}{{"root", hakoBin, nil}, {"rootless", filepath.Join(dir, "hako"), cred}} {
		t.Run(who.name+"/strict", func(t *testing.T) {
			pid := startSandbox(t, who.bin, who.cred, "-p", "PrivateTmp=yes", "-p", "ProtectSystem=strict", "-p", "ProtectHome=read-only",
				"-p", "PrivateNetwork=yes", "-p", "PrivateDevices=yes", "-p", "NoNewPrivileges=yes", "-p", "ProtectKernelTunables=yes",
				"-p", "ProtectControlGroups=yes", "-p", "CapabilityBoundingSet=~CAP_SYS_PTRACE CAP_NET_RAW", "-p", "ReadWritePaths="+base+"/rw",
				"-p", "SystemCallFilter=@system-service", "-p", "LimitNOFILE=1234:5678")
			m := inspectProps(t, who.bin, who.cred, pid)
			want := []string{"CapabilityBoundingSet=~CAP_NET_RAW CAP_SYS_PTRACE", "NoNewPrivileges=yes", "PrivateDevices=yes", "PrivateNetwork=yes", "PrivateTmp=yes",
				"ProtectControlGroups=yes", "ProtectHome=read-only", "ProtectKernelTunables=yes", "ProtectSystem=strict", "ReadWritePaths=" + base + "/rw"}
			wantInForce(t, m, who.cred != nil, want)
			for _, s := range seccomp {
				if !m[s].Unknown || !strings.Contains(m[s].Reason, "seccomp filter") {
					t.Errorf("%s: %+v, want unknown (a filter is attached)", s, m[s])
				}
			}
			if !strings.Contains(m["PrivateNetwork"].Reason, "only lo") {
				t.Errorf("PrivateNetwork: %+v", m["PrivateNetwork"])
			}
			limits(m, "1234:5678")
		})
		t.Run(who.name+"/paths", func(t *testing.T) {
			pid := startSandbox(t, who.bin, who.cred, "-p", "ProtectSystem=full", "-p", "ReadOnlyPaths="+base+"/ro",
				"-p", "BindReadOnlyPaths="+base+"/src:"+base+"/dst", "-p", "TemporaryFileSystem="+base+"/tmp:ro",
				"-p", "InaccessiblePaths="+base+"/hidden", "-p", "ProtectHostname=yes", "-p", "PrivateIPC=yes",
				"-p", "ProtectKernelModules=yes", "-p", "ProtectKernelLogs=yes", "-p", "ProtectProc=invisible", "-p", "ProcSubset=pid",
				"-p", "LimitNOFILE=99:99")
			m := inspectProps(t, who.bin, who.cred, pid)
			want := []string{"BindReadOnlyPaths=" + base + "/src:" + base + "/dst", "InaccessiblePaths=" + base + "/hidden", "PrivateIPC=yes",
				"ProcSubset=pid", "ProtectHostname=yes", "ProtectKernelLogs=yes", "ProtectKernelModules=yes", "ProtectProc=invisible",
				"ProtectSystem=full", "ReadOnlyPaths=" + base + "/ro", "TemporaryFileSystem=" + base + "/tmp:ro"}
			wantInForce(t, m, who.cred != nil, want)
			for _, s := range seccomp {
				if m[s].InForce || m[s].Unknown {
					t.Errorf("%s: %+v, want off (no filter)", s, m[s])
				}
			}
			limits(m, "99:99")
		})
	}
}
