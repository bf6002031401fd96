package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hako-runtime/hako/internal/console"
)

// sandboxer runs `hako sandbox` as root or as the unprivileged test user.
type sandboxer struct {
	name string
	bin  string
	cred *syscall.Credential
	dir  string // a directory the caller owns
}

// sandboxers are root and, where a user can be made, an unprivileged one:
// every property test runs as both.
func sandboxers(t *testing.T) []sandboxer {
	t.Helper()
	// Not below /tmp, which PrivateTmp hides.
	rootDir, err := os.MkdirTemp("/var/lib", "hako-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rootDir) })
	out := []sandboxer{{name: "root", bin: hakoBin, dir: rootDir}}
	if _, err := user.Lookup(rootlessUser); err != nil {
		if o, err := exec.Command("useradd", "-m", "-s", "/bin/sh", rootlessUser).CombinedOutput(); err != nil {
			t.Logf("no unprivileged user (useradd: %v %s): root only", err, o)
			return out
		}
	}
	u, _ := user.Lookup(rootlessUser)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp(u.HomeDir, "sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, _ := os.ReadFile(hakoBin)
	bin := filepath.Join(dir, "hako")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, uid, gid)
	return append(out, sandboxer{name: "rootless", bin: bin, dir: dir, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}})
}

func (s sandboxer) cmd(args ...string) *exec.Cmd {
	c := exec.Command(s.bin, append([]string{"sandbox"}, args...)...)
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return c
}

// run returns stdout, stderr and the exit status.
func (s sandboxer) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	c := s.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (s sandboxer) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := s.run(t, args...)
	if code != 0 {
		t.Fatalf("%s: hako sandbox %q: status %d\nstdout: %s\nstderr: %s", s.name, args, code, out, errs)
	}
	return out
}

func forEachSandboxer(t *testing.T, fn func(t *testing.T, s sandboxer)) {
	for _, s := range sandboxers(t) {
		t.Run(s.name, func(t *testing.T) { fn(t, s) })
	}
}

func TestSandboxAlwaysIsolated(t *testing.T) {
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	hostPid, _ := os.Readlink("/proc/self/ns/pid")
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		out := s.mustRun(t, "--", "sh", "-c", `readlink /proc/self/ns/mnt /proc/self/ns/pid; echo ppid=$PPID; ls /proc | grep -c '^[0-9]'`)
		lines := strings.Fields(out)
		if len(lines) != 4 {
			t.Fatalf("output %q", out)
		}
		if lines[0] == hostMnt || lines[1] == hostPid {
			t.Errorf("namespaces are the host's: %q", out)
		}
		// COMMAND runs under the sandbox's init (PID 1), which forwards
		// signals; seed 002/004: a fresh /proc shows only the sandbox
		// (the init, sh, ls, grep).
		if lines[2] != "ppid=1" {
			t.Errorf("COMMAND's parent is %s, want the sandbox's init (ppid=1)", lines[2])
		}
		if n, _ := strconv.Atoi(lines[3]); n > 5 {
			t.Errorf("/proc lists %d processes, want only the sandbox's", n)
		}
	})
}

func TestSandboxExitStatus(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		if _, _, code := s.run(t, "--", "sh", "-c", "exit 7"); code != 7 {
			t.Errorf("status %d, want 7", code)
		}
		_, errs, code := s.run(t, "--", "/nonexistent-command")
		if code == 0 || !strings.Contains(errs, "/nonexistent-command") {
			t.Errorf("missing command: status %d, stderr %q", code, errs)
		}
	})
}

// seed 000: PrivateTmp's /tmp is the sandbox's own, invisible to the host
// and gone afterwards.
func TestSandboxPrivateTmp(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		name := fmt.Sprintf("hako-sandbox-private-%d", time.Now().UnixNano())
		out := s.mustRun(t, "-p", "PrivateTmp=yes", "--", "sh", "-c",
			"echo x > /tmp/"+name+" && echo x > /var/tmp/"+name+" && ls /tmp && awk '$5==\"/tmp\"{print $9}' /proc/self/mountinfo")
		if !strings.Contains(out, name) || !strings.Contains(out, "tmpfs") {
			t.Fatalf("inside: %q", out)
		}
		for _, d := range []string{"/tmp", "/var/tmp"} {
			if _, err := os.Stat(filepath.Join(d, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("host sees %s/%s: %v", d, name, err)
			}
		}
		// Without the property the host's /tmp is the sandbox's.
		s.mustRun(t, "--", "sh", "-c", "echo x > /tmp/"+name)
		if _, err := os.Stat("/tmp/" + name); err != nil {
			t.Errorf("without PrivateTmp the host's /tmp is not shared: %v", err)
		}
		os.Remove("/tmp/" + name)
	})
}

func TestSandboxProtectSystemStrict(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		rw := filepath.Join(s.dir, "rw")
		os.Mkdir(rw, 0o777)
		os.Chmod(rw, 0o777)
		out, errs, code := s.run(t, "-p", "ProtectSystem=strict", "-p", "PrivateTmp=yes", "-p", "ReadWritePaths="+rw, "--", "sh", "-c",
			"touch /usr/hako-x 2>&1; touch /var/lib/hako-ro-x 2>&1; touch /tmp/ok && echo tmp-ok; touch "+rw+"/ok && echo rw-ok; echo > /dev/null && echo dev-ok")
		if code != 0 {
			t.Fatalf("status %d: %s %s", code, out, errs)
		}
		if strings.Count(out, "Read-only file system") != 2 {
			t.Errorf("/usr or /var/lib writable: %q", out)
		}
		for _, want := range []string{"tmp-ok", "rw-ok", "dev-ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in %q", want, out)
			}
		}
		if _, err := os.Stat(filepath.Join(rw, "ok")); err != nil {
			t.Errorf("ReadWritePaths write not on the host: %v", err)
		}
	})
}

// ProtectSystem=strict leaves /home, /root and /run/user to ProtectHome,
// as systemd 252 does (seen side by side with systemd-run in the systemd
// VM, test/vm/testdata/sandbox-vs-systemd-run.sh).
func TestSandboxStrictLeavesHomeToProtectHome(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		dir := s.dir // the unprivileged user's is in its home
		if s.cred == nil {
			d, err := os.MkdirTemp("/home", "hako-strict-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			dir = d
		}
		if !strings.HasPrefix(dir, "/home/") {
			t.Fatalf("%s is not below /home", dir)
		}
		s.mustRun(t, "-p", "ProtectSystem=strict", "--", "touch", dir+"/strict-ok")
		if _, err := os.Stat(dir + "/strict-ok"); err != nil {
			t.Errorf("the write below /home did not reach the host: %v", err)
		}
		out, _, code := s.run(t, "-p", "ProtectSystem=strict", "-p", "ProtectHome=read-only", "--", "sh", "-c", "touch "+dir+"/ro-x 2>&1")
		if code == 0 || !strings.Contains(out, "Read-only file system") {
			t.Errorf("ProtectHome=read-only under strict: status %d %q", code, out)
		}
	})
}

// PrivateDevices=yes also loads systemd's implied ~@raw-io filter (EPERM)
// and mounts /dev noexec, as systemd 252 does (Seccomp: 2 under
// systemd-run in the systemd VM). On x86-64 every @raw-io call also needs
// the CAP_SYS_RAWIO the property drops, so the filter is seen in
// /proc/self/status, not in an errno.
func TestSandboxPrivateDevicesAsSystemd(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		out := s.mustRun(t, "-p", "PrivateDevices=yes", "--", "sh", "-c",
			"grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; awk '$5==\"/dev\"{o=$6} END{print \"dev-opts=\" o}' /proc/self/mountinfo")
		if !strings.Contains(out, "dev-opts=rw,nosuid,noexec\n") {
			t.Errorf("/dev's options, want rw,nosuid,noexec: %q", out)
		}
		if !strings.Contains(out, "Seccomp:\t2") {
			t.Errorf("no seccomp filter under PrivateDevices: %q", out)
		}
		if s.cred != nil && !strings.Contains(out, "NoNewPrivs:\t1") {
			t.Errorf("unprivileged, the filter needs no_new_privs, as systemd's: %q", out)
		}
	})
}

// A read-only tmpfs with mounts below it (TemporaryFileSystem=P:ro and
// BindPaths into it, the pattern of systemd.exec(5)'s examples): the
// mount points are made before the tmpfs becomes read-only, and a
// writable bind below stays writable.
func TestSandboxReadOnlyTmpfsWithBindsBelow(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		w := filepath.Join(s.dir, "w")
		os.Mkdir(w, 0o777)
		os.Chmod(w, 0o777)
		out, errs, code := s.run(t, "-p", "TemporaryFileSystem=/srv:ro", "-p", "BindReadOnlyPaths=/etc:/srv/etc", "-p", "BindPaths="+w+":/srv/w", "--", "sh", "-c",
			"ls /srv | tr '\\n' ' '; echo; cat /srv/etc/hostname >/dev/null && echo etc-ok; touch /srv/x 2>&1; touch /srv/etc/x 2>&1; touch /srv/w/y && echo w-ok; awk '$5==\"/srv\"{o=$6} END{print \"srv-opts=\" o}' /proc/self/mountinfo")
		if code != 0 {
			t.Fatalf("status %d: %s %s", code, out, errs)
		}
		if !strings.HasPrefix(out, "etc w \n") || strings.Count(out, "Read-only file system") != 2 || !strings.Contains(out, "etc-ok") || !strings.Contains(out, "w-ok") {
			t.Errorf("inside: %q", out)
		}
		// systemd.exec(5)'s defaults, nodev,strictatime, as systemd 252
		// mounts it (no nosuid).
		if !strings.Contains(out, "srv-opts=ro,nodev\n") {
			t.Errorf("the tmpfs's options, want ro,nodev: %q", out)
		}
		if _, err := os.Stat(filepath.Join(w, "y")); err != nil {
			t.Errorf("the writable bind's write is not on the host: %v", err)
		}
	})
}

func TestSandboxProtectHomeAndInaccessible(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		out := s.mustRun(t, "-p", "ProtectHome=yes", "-p", "InaccessiblePaths=/etc/hostname", "--", "sh", "-c", "ls -A /home /root | grep -v -e : -e '^$' | wc -w; cat /etc/hostname | wc -c")
		if f := strings.Fields(out); len(f) != 2 || f[0] != "0" || f[1] != "0" {
			t.Errorf("home listed or /etc/hostname readable: %q", out)
		}
		if s.cred != nil {
			// Not rootless: /root (0700, the host root's) cannot be
			// opened to mount on by an unprivileged caller.
			return
		}
		out = s.mustRun(t, "-p", "ProtectHome=tmpfs", "--", "sh", "-c", "ls -A /home | wc -w; touch /home/x 2>&1; true")
		if !strings.HasPrefix(out, "0\n") || !strings.Contains(out, "Read-only") {
			t.Errorf("ProtectHome=tmpfs: %q", out)
		}
	})
}

// seed 001: under PrivateNetwork a local port is refused at once, even one
// the host listens on.
func TestSandboxPrivateNetwork(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	probe := "exec 3<>/dev/tcp/127.0.0.1/" + port + " && echo connected"
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		if out, _, _ := s.run(t, "--", "bash", "-c", probe); !strings.Contains(out, "connected") {
			t.Fatalf("without PrivateNetwork the host's port is unreachable: %q", out)
		}
		out, errs, code := s.run(t, "-p", "PrivateNetwork=yes", "--", "bash", "-c", probe+"; cat /proc/net/dev")
		if code != 0 || strings.Contains(out, "connected") || !strings.Contains(errs, "Connection refused") {
			t.Errorf("status %d\nout %q\nerr %q", code, out, errs)
		}
		if strings.Count(out, ":") != 1+1 || !strings.Contains(out, "lo:") {
			// The header has one colon-separated line pair; lo is the only interface.
			t.Logf("/proc/net/dev: %s", out)
		}
	})
}

func TestSandboxNamespaceProperties(t *testing.T) {
	host := map[string]string{}
	for _, k := range []string{"net", "ipc", "uts"} {
		host[k], _ = os.Readlink("/proc/self/ns/" + k)
	}
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		out := s.mustRun(t, "-p", "PrivateNetwork=yes", "-p", "PrivateIPC=yes", "-p", "ProtectHostname=yes", "--", "readlink", "/proc/self/ns/net", "/proc/self/ns/ipc", "/proc/self/ns/uts")
		for _, l := range strings.Fields(out) {
			for k, v := range host {
				if l == v {
					t.Errorf("%s namespace is the host's", k)
				}
			}
		}
	})
}

func TestSandboxBindPaths(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		src := filepath.Join(s.dir, "src")
		dst := filepath.Join(s.dir, "dst")
		os.MkdirAll(src, 0o777)
		os.MkdirAll(dst, 0o777)
		os.WriteFile(filepath.Join(src, "f"), []byte("hello"), 0o644)
		out := s.mustRun(t, "-p", "BindReadOnlyPaths="+src+":"+dst, "--", "sh", "-c", "cat "+dst+"/f; touch "+dst+"/g 2>&1; true")
		if !strings.Contains(out, "hello") || !strings.Contains(out, "Read-only") {
			t.Errorf("%q", out)
		}
		// A source below /tmp, where the sandbox stages the host's root
		// before binding: it must still name the host's /tmp/..., also for
		// an unprivileged caller, whose init resolves it itself.
		tmpSrc, err := os.MkdirTemp("/tmp", "hako-sandbox-bind-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmpSrc)
		os.WriteFile(filepath.Join(tmpSrc, "f"), []byte("from-tmp"), 0o644)
		os.Chmod(tmpSrc, 0o755)
		if out := s.mustRun(t, "-p", "BindPaths="+tmpSrc+":"+dst, "--", "cat", dst+"/f"); out != "from-tmp" {
			t.Errorf("bind source below /tmp: %q", out)
		}
		if out, _, code := s.run(t, "-p", "BindPaths=-/nonexistent-src:"+dst, "--", "true"); code != 0 {
			t.Errorf("optional missing source: status %d %s", code, out)
		}
	})
}

func TestSandboxEnvironmentAndCwd(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		out := s.mustRun(t, "-p", `Environment="A=b c" D=e`, "-p", "UnsetEnvironment=D", "-p", "WorkingDirectory=/usr", "--", "sh", "-c", `echo "$A|$D|$(pwd)"`)
		if strings.TrimSpace(out) != "b c||/usr" {
			t.Errorf("%q", out)
		}
	})
}

func TestSandboxCredentials(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		out := s.mustRun(t, "-p", "NoNewPrivileges=yes", "-p", "CapabilityBoundingSet=~CAP_SYS_ADMIN", "--", "sh", "-c", "id -u; grep -E '^(NoNewPrivs|CapBnd)' /proc/self/status")
		want := "0"
		if s.cred != nil {
			want = strconv.Itoa(int(s.cred.Uid))
		}
		if f := strings.Fields(out); len(f) < 5 || f[0] != want || f[4] != "1" {
			t.Errorf("%q", out)
		}
		if bnd := strings.Fields(out)[2]; bnd != "" {
			v, _ := strconv.ParseUint(bnd, 16, 64)
			if v&(1<<21) != 0 {
				t.Errorf("CAP_SYS_ADMIN still bounded: %s", bnd)
			}
		}
		if s.cred != nil {
			out = s.mustRun(t, "--map-root", "--", "id", "-u")
			if strings.TrimSpace(out) != "0" {
				t.Errorf("--map-root: %q", out)
			}
			_, errs, code := s.run(t, "-p", "User=root", "--", "true")
			if code == 0 || !strings.Contains(errs, "only root may run COMMAND as another user") {
				t.Errorf("User= unprivileged: %d %q", code, errs)
			}
		}
	})
}

func TestSandboxReceipt(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		rf := filepath.Join(s.dir, "receipt.json")
		s.mustRun(t, "--receipt", rf, "-p", "PrivateTmp=yes", "-p", "ProtectSystem=strict", "-p", "NoNewPrivileges=yes", "--", "true")
		data, err := os.ReadFile(rf)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			OK      bool `json:"ok"`
			Results []struct {
				Property string `json:"property"`
				OK       bool   `json:"ok"`
			} `json:"results"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, x := range r.Results {
			seen[x.Property] = x.OK
		}
		for _, p := range []string{"PrivateTmp", "ProtectSystem", "NoNewPrivileges", "(always) PID namespace", "(always) fresh /proc"} {
			if !seen[p] {
				t.Errorf("receipt lacks a passed %s: %s", p, data)
			}
		}
		if !r.OK {
			t.Errorf("receipt not ok: %s", data)
		}
	})
}

func TestSandboxBadProperties(t *testing.T) {
	s := sandboxers(t)[0]
	unit := filepath.Join(s.dir, "bad.service")
	os.WriteFile(unit, []byte("[Unit]\nDescription=x\n[Service]\nPrivateTmp=yes\nProtectSystem=maybe\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "PrivateTemp=yes"}, "hako: sandbox: property PrivateTemp: unknown (hako sandbox --help lists the properties)\n"},
		{[]string{"-p", "PrivateTmp=maybe"}, "hako: sandbox: property PrivateTmp=maybe: \"maybe\" is not a boolean (yes/no, true/false, on/off, 1/0)\n"},
		{[]string{"-p", "IPAddressDeny=any"}, "hako: sandbox: property IPAddressDeny is not supported (systemd filters addresses with cgroup BPF programs (BPF_CGROUP_INET_INGRESS/EGRESS with LPM maps), which hako does not implement; PrivateNetwork=yes cuts all networking but lo, RestrictAddressFamilies= whole families)\n"},
		{[]string{"-p", "TasksMax=lots"}, "hako: sandbox: property TasksMax=lots: \"lots\": must be a number above 0 or infinity\n"},
		{[]string{"-p", "SystemCallFilter=@no-such-group"}, "hako: sandbox: property SystemCallFilter=@no-such-group: \"@no-such-group\": unknown syscall group (systemd 252's: systemd-analyze syscall-filter)\n"},
		{[]string{"-p", "SystemCallErrorNumber=ENOPE"}, "hako: sandbox: property SystemCallErrorNumber=ENOPE: \"ENOPE\": not an errno name (EPERM, EACCES, ...) or number\n"},
		{[]string{"-p", "RestrictAddressFamilies=AF_NOPE"}, "hako: sandbox: property RestrictAddressFamilies=AF_NOPE: \"AF_NOPE\": unknown address family (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, ...)\n"},
		{[]string{"-p", "ReadOnlyPaths=usr"}, "hako: sandbox: property ReadOnlyPaths=usr: path \"usr\" is not absolute\n"},
		{[]string{"-p", "noequals"}, "hako: sandbox: -p \"noequals\": not NAME=VALUE\n"},
		{[]string{"--properties", unit}, "hako: sandbox: " + unit + ":5: property ProtectSystem=maybe: \"maybe\": must be a boolean, full or strict\n"},
		{[]string{"-p", "TemporaryFileSystem=/nonexistent-hako-dir"}, "hako: sandbox: mount point /nonexistent-hako-dir: no such file or directory (cause: hako sandbox creates nothing on the host's tree: create it first, or choose an existing directory)\n"},
	} {
		out, errs, code := s.run(t, append(c.args, "--", "sh", "-c", "echo RAN")...)
		if code != 1 || out != "" || errs != c.want {
			t.Errorf("%q: status %d, stdout %q\nstderr %q\nwant   %q", c.args, code, out, errs, c.want)
		}
	}
}

// seed 003: a mount made inside never reaches the host, even when the
// host's / is shared (as systemd makes it).
func TestSandboxMountNeverReachesHost(t *testing.T) {
	// Make / shared for the test, and put it back as it was.
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	wasShared := false
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 6 && f[4] == "/" {
			wasShared = strings.Contains(l, " shared:")
		}
	}
	if !wasShared {
		if err := exec.Command("mount", "--make-shared", "/").Run(); err != nil {
			t.Skipf("make / shared: %v", err)
		}
		defer exec.Command("mount", "--make-private", "/").Run()
	}
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		mp := filepath.Join(s.dir, "mp")
		os.Mkdir(mp, 0o777)
		args := []string{"--", "sh", "-c", "mount -t tmpfs hako-seed3 " + mp + " && grep -c hako-seed3 /proc/self/mountinfo && sleep 1"}
		if s.cred != nil {
			args = append([]string{"--map-root"}, args...)
		}
		c := s.cmd(args...)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		// Look while the sandbox runs, and after.
		for i := 0; i < 2; i++ {
			if data, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(data, []byte("hako-seed3")) {
				t.Errorf("the sandbox's mount reached the host")
			}
			if i == 0 {
				c.Wait()
			}
		}
		if !strings.Contains(out.String(), "1") {
			t.Errorf("the mount was not made inside: %q", out.String())
		}
	})
}

// The sandbox dies with hako, even a SIGKILLed one, and leaves nothing.
func TestSandboxDiesWithHako(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		marker := fmt.Sprintf("%d.%d", 1000+time.Now().Nanosecond()%1000, os.Getpid())
		c := s.cmd("-p", "PrivateTmp=yes", "--", "sleep", marker)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		var pid int
		deadline := time.Now().Add(10 * time.Second)
		for pid == 0 && time.Now().Before(deadline) {
			pid = findProcess("sleep", marker)
			time.Sleep(20 * time.Millisecond)
		}
		if pid == 0 {
			c.Process.Kill()
			c.Wait()
			t.Fatal("the sandbox's sleep never appeared")
		}
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		for findProcess("sleep", marker) != 0 {
			if time.Now().After(deadline.Add(20 * time.Second)) {
				t.Fatalf("sandbox process %d outlived hako", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func findProcess(comm, arg string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.Equal(cmdline, []byte(comm+"\x00"+arg+"\x00")) {
			return pid
		}
	}
	return 0
}

// startReady starts c and returns once its command has said "ready" on
// stdout.
func startReady(t *testing.T, c *exec.Cmd) {
	t.Helper()
	pr, pw, _ := os.Pipe()
	// Open till the test ends: a later write must not meet a closed pipe.
	t.Cleanup(func() { pr.Close() })
	c.Stdout = pw
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	buf := make([]byte, 6)
	pr.Read(buf)
}

// Signals sent to hako reach COMMAND; its death by signal N is 128+N.
func TestSandboxSignalForwarded(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		c := s.cmd("--", "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done")
		startReady(t, c)
		c.Process.Signal(syscall.SIGTERM)
		err := c.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 42 {
			t.Errorf("status %v, want 42 (the trap's)", err)
		}
	})
}

// A COMMAND without a handler dies of the signal hako is sent (128+N), as
// it would outside: it is not PID 1, whose default actions the kernel drops.
func TestSandboxSignalDefaultAction(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		c := s.cmd("--", "sh", "-c", "echo ready; exec sleep 100")
		startReady(t, c)
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		c.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
				t.Errorf("status %v, want %d (killed by SIGTERM)", err, 128+int(syscall.SIGTERM))
			}
		case <-time.After(20 * time.Second):
			c.Process.Kill()
			t.Fatal("SIGTERM did not stop COMMAND")
		}
	})
}

// startOnPty starts `sh -c script` in a sandbox whose stdio is a new pty's
// slave, in a session of its own with that pty as its terminal, as a shell
// in a terminal would; it returns the command and the master.
func startOnPty(t *testing.T, s sandboxer, script string) (*exec.Cmd, *os.File) {
	t.Helper()
	master, slave, err := console.NewPty("/dev/ptmx")
	if err != nil {
		t.Skip(err)
	}
	c := s.cmd("--", "sh", "-c", script)
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	c.SysProcAttr.Setsid, c.SysProcAttr.Setctty = true, true
	if err := c.Start(); err != nil {
		master.Close()
		t.Fatal(err)
	}
	slave.Close()
	return c, master
}

// With a terminal on stdin the sandbox gets a pty of its own: COMMAND sees
// a terminal, and its output reaches ours.
func TestSandboxTerminal(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		c, master := startOnPty(t, s, "test -t 0 && test -t 1 && echo IS-A-TTY; tty")
		defer master.Close()
		var out bytes.Buffer
		done := make(chan struct{})
		go func() { out.ReadFrom(master); close(done) }()
		c.Wait()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			master.Close()
			<-done
		}
		if !strings.Contains(out.String(), "IS-A-TTY") || !strings.Contains(out.String(), "/dev/pts/") {
			t.Errorf("%q", out.String())
		}
	})
}

// A terminal on stdin with stdout into a pipe: no pty of the sandbox's own
// (its line discipline would turn \n into \r\n), the bytes reach the pipe
// as they are, and COMMAND still reads the terminal.
func TestSandboxTerminalStdinPipedStdout(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		master, slave, err := console.NewPty("/dev/ptmx")
		if err != nil {
			t.Skip(err)
		}
		defer master.Close()
		c := s.cmd("--", "sh", "-c", "printf 'a\\nb\\n'; test -t 0 && echo STDIN-TTY; read x; echo got=$x")
		var out bytes.Buffer
		c.Stdin, c.Stdout, c.Stderr = slave, &out, &out
		c.SysProcAttr.Setsid, c.SysProcAttr.Setctty = true, true
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		master.Write([]byte("typed\n"))
		go io.Copy(io.Discard, master)
		errc := make(chan error, 1)
		go func() { errc <- c.Wait() }()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("status: %v", err)
			}
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			t.Fatal("hung")
		}
		if out.String() != "a\nb\nSTDIN-TTY\ngot=typed\n" {
			t.Errorf("%q", out.String())
		}
	})
}

// Ctrl-C on the terminal interrupts COMMAND (the foreground process group
// of the sandbox's own terminal), which dies of SIGINT: status 130.
func TestSandboxCtrlC(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		c, master := startOnPty(t, s, "echo READY; exec sleep 100")
		defer master.Close()
		lines := make(chan string, 64)
		go func() {
			buf := make([]byte, 256)
			for {
				n, err := master.Read(buf)
				if err != nil {
					close(lines)
					return
				}
				lines <- string(buf[:n])
			}
		}()
		var seen string
		for !strings.Contains(seen, "READY") {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("terminal closed before READY: %q", seen)
				}
				seen += l
			case <-time.After(20 * time.Second):
				c.Process.Kill()
				t.Fatalf("no READY: %q", seen)
			}
		}
		// sh has exec'd sleep by now or about to; a few ^C in case the
		// first arrives before the terminal's foreground group is set.
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		for i := 0; ; i++ {
			master.Write([]byte{3})
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 130 {
					t.Errorf("status %v after Ctrl-C, want 130", err)
				}
				return
			case <-time.After(200 * time.Millisecond):
			}
			if i == 100 {
				c.Process.Kill()
				t.Fatal("Ctrl-C did not stop COMMAND")
			}
		}
	})
}

// perlErrno runs one syscall by number (x86_64) and prints its errno, 0
// when it worked.
func perlErrno(call string) string {
	return `perl -e '$! = 0; my $r = ` + call + `; print(($r < 0 ? $!+0 : 0), "\n")'`
}

// TestSandboxSeccompProperties: each case runs its script with the
// properties and without them; both outputs are asserted, so a case whose
// property did nothing (its row's Apply removed) fails.
func TestSandboxSeccompProperties(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("syscall numbers below are x86_64's")
	}
	const (
		swapoff     = `syscall(168, my $p = "/nonexistent-hako")`
		clone3      = `syscall(435, 0, 0)`
		rtPolicy    = `syscall(144, 0, 7, my $p = pack("i", 0))` // sched_setscheduler(0, 7, {0}): not a policy
		mmapRWX     = `syscall(9, 0, 4096, 7, 0x22, -1, 0)`
		mmapRW      = `syscall(9, 0, 4096, 3, 0x22, -1, 0)`
		socketInet  = `syscall(41, 2, 1, 0)`
		socketInet6 = `syscall(41, 10, 1, 0)`
		socketUnix  = `syscall(41, 1, 1, 0)`
	)
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		// swapoff of a missing file: ENOENT for root, EPERM (no
		// CAP_SYS_ADMIN in the host's namespace) rootless.
		swapBase := "2"
		if s.cred != nil {
			swapBase = "1"
		}
		for _, c := range []struct {
			name            string
			props           []string
			script          string
			wantOn, wantOff string
		}{
			{"allow list, errno by name", []string{"SystemCallFilter=@system-service", "SystemCallErrorNumber=EUCLEAN"},
				perlErrno(swapoff) + "; echo write-allowed", "117\nwrite-allowed\n", swapBase + "\nwrite-allowed\n"},
			{"deny list, errno by number", []string{"SystemCallFilter=~@swap @reboot", "SystemCallErrorNumber=42"},
				perlErrno(swapoff), "42\n", swapBase + "\n"},
			{"deny list, a later allow line removes", []string{"SystemCallFilter=~@swap @reboot", "SystemCallFilter=swapoff", "SystemCallErrorNumber=42"},
				perlErrno(swapoff) + "; " + perlErrno(`syscall(167, my $p = "/nonexistent-hako", 0)`), swapBase + "\n42\n", swapBase + "\n" + swapBase + "\n"},
			{"per-entry errno", []string{"SystemCallFilter=~swapoff:EXDEV"}, perlErrno(swapoff), "18\n", swapBase + "\n"},
			{"kill by default", []string{"SystemCallFilter=~swapoff"}, perlErrno(swapoff) + "; echo status=$?", "status=159\n", swapBase + "\nstatus=0\n"},
			{"architectures native", []string{"SystemCallArchitectures=native"}, "grep ^Seccomp: /proc/self/status", "Seccomp:\t2\n", "Seccomp:\t0\n"},
			{"address families allow", []string{"RestrictAddressFamilies=AF_UNIX AF_INET"},
				perlErrno(socketInet6) + "; " + perlErrno(socketUnix) + "; " + perlErrno(socketInet), "97\n0\n0\n", "0\n0\n0\n"},
			{"address families deny", []string{"RestrictAddressFamilies=~AF_INET6"},
				perlErrno(socketInet6) + "; " + perlErrno(socketInet), "97\n0\n", "0\n0\n"},
			{"address families none", []string{"RestrictAddressFamilies=none"}, perlErrno(socketUnix), "97\n", "0\n"},
			{"namespaces yes", []string{"RestrictNamespaces=yes"},
				"unshare -U true 2>/dev/null; echo $?; " + perlErrno(clone3), "1\n38\n", "0\n22\n"},
			{"namespaces list", []string{"RestrictNamespaces=user"},
				"unshare -U true 2>/dev/null; echo $?; unshare -U -u true 2>/dev/null; echo $?", "0\n1\n", "0\n0\n"},
			{"namespaces ~list", []string{"RestrictNamespaces=~uts"},
				"unshare -U true 2>/dev/null; echo $?; unshare -U -u true 2>/dev/null; echo $?", "0\n1\n", "0\n0\n"},
			{"lock personality", []string{"LockPersonality=yes"}, "setarch linux32 true 2>/dev/null; echo $?; setarch x86_64 true; echo $?", "1\n0\n", "0\n0\n"},
			{"memory deny write execute", []string{"MemoryDenyWriteExecute=yes"}, perlErrno(mmapRWX) + "; " + perlErrno(mmapRW), "1\n0\n", "0\n0\n"},
			{"restrict realtime", []string{"RestrictRealtime=yes"}, perlErrno(rtPolicy), "1\n", "22\n"},
			{"restrict suid sgid", []string{"RestrictSUIDSGID=yes"},
				"cd " + s.dir + " && rm -f f && touch f && chmod u+s f 2>/dev/null; echo $?; chmod g+s f 2>/dev/null; echo $?; chmod 0755 f; echo $?",
				"1\n1\n0\n", "0\n0\n0\n"},
		} {
			t.Run(c.name, func(t *testing.T) {
				var args []string
				for _, p := range c.props {
					args = append(args, "-p", p)
				}
				for _, on := range []bool{true, false} {
					a, want := append(args, "--", "sh", "-c", c.script), c.wantOn
					if !on {
						a, want = []string{"--", "sh", "-c", c.script}, c.wantOff
					}
					out, errs, code := s.run(t, a...)
					if code != 0 || out != want {
						t.Errorf("%s: %q: status %d, stdout %q, want %q\nstderr: %s", s.name, a, code, out, want, errs)
					}
				}
			})
		}
		if s.cred == nil {
			// Root: SCHED_FIFO itself works, and is refused with the property.
			out := s.mustRun(t, "--", "sh", "-c", "chrt -f 1 true; echo $?")
			out2, _, _ := s.run(t, "-p", "RestrictRealtime=yes", "--", "sh", "-c", "chrt -f 1 true 2>/dev/null; echo $?")
			if out != "0\n" || out2 != "1\n" {
				t.Errorf("chrt -f 1: %q without RestrictRealtime, %q with", out, out2)
			}
		}
	})
}

// TestSandboxSeccompReceipt: the receipt proves each filter loaded, and
// NoNewPrivs where it is implied (always for an unprivileged caller).
func TestSandboxSeccompReceipt(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		rf := filepath.Join(s.dir, "receipt-seccomp.json")
		props := []string{"SystemCallFilter=@system-service", "RestrictNamespaces=yes", "LockPersonality=yes", "MemoryDenyWriteExecute=yes", "RestrictRealtime=yes", "RestrictSUIDSGID=yes", "RestrictAddressFamilies=AF_UNIX", "SystemCallArchitectures=native"}
		args := []string{"--receipt", rf}
		for _, p := range props {
			args = append(args, "-p", p)
		}
		out := s.mustRun(t, append(args, "--", "grep", "-E", "^(NoNewPrivs|Seccomp|Seccomp_filters):", "/proc/self/status")...)
		wantNNP := "0"
		if s.cred != nil {
			wantNNP = "1"
		}
		if !strings.Contains(out, "NoNewPrivs:\t"+wantNNP+"\n") || !strings.Contains(out, "Seccomp:\t2\n") || !strings.Contains(out, "Seccomp_filters:\t8\n") {
			t.Errorf("status %q: want NoNewPrivs %s, Seccomp 2, 8 filters", out, wantNNP)
		}
		data, err := os.ReadFile(rf)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Results []struct {
				Property, Kind, Path, Value string
				OK                          bool
			}
		}
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		passed := map[string]bool{}
		for _, x := range r.Results {
			if x.OK && x.Kind == "status" {
				passed[x.Property+" "+x.Path+"="+x.Value] = true
			}
		}
		for _, p := range props {
			name, _, _ := strings.Cut(p, "=")
			if !passed[name+" Seccomp=2"] {
				t.Errorf("receipt lacks a passed Seccomp check for %s: %s", name, data)
			}
		}
		if s.cred != nil && !passed["SystemCallFilter (implies NoNewPrivileges) NoNewPrivs=1"] {
			t.Errorf("receipt lacks the implied NoNewPrivs: %s", data)
		}
		// A non-root User= as root also implies it.
		if s.cred == nil {
			out := s.mustRun(t, "-p", "User=nobody", "-p", "LockPersonality=yes", "--", "grep", "^NoNewPrivs:", "/proc/self/status")
			if out != "NoNewPrivs:\t1\n" {
				t.Errorf("User=nobody with LockPersonality: %q, want NoNewPrivs 1", out)
			}
		}
	})
}

func TestSandboxAmbientCapabilities(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		args := []string{"-p", "AmbientCapabilities=CAP_NET_RAW CAP_SYS_TIME", "-p", "AmbientCapabilities=~CAP_SYS_TIME"}
		if s.cred == nil {
			args = append(args, "-p", "User=nobody")
		}
		out := s.mustRun(t, append(args, "--", "grep", "-E", "^Cap(Amb|Eff):", "/proc/self/status")...)
		if out != "CapEff:\t0000000000002000\nCapAmb:\t0000000000002000\n" {
			t.Errorf("caps %q: want CAP_NET_RAW (bit 13) alone, effective and ambient", out)
		}
		out = s.mustRun(t, "--", "grep", "^CapAmb:", "/proc/self/status")
		if out != "CapAmb:\t0000000000000000\n" {
			t.Errorf("without the property: %q", out)
		}
	})
}

func TestSandboxProtectProcAndProcSubset(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		script := `awk '$5 == "/proc" { o = $NF } END { print o }' /proc/self/mountinfo; test -e /proc/sys; echo sys=$?`
		out := s.mustRun(t, "-p", "ProtectProc=invisible", "-p", "ProcSubset=pid", "--", "sh", "-c", script)
		if !strings.Contains(out, "hidepid=invisible") || !strings.Contains(out, "subset=pid") || !strings.HasSuffix(out, "sys=1\n") {
			t.Errorf("with ProtectProc=invisible ProcSubset=pid: %q", out)
		}
		out = s.mustRun(t, "-p", "ProtectProc=ptraceable", "--", "sh", "-c", script)
		if !strings.Contains(out, "hidepid=ptraceable") || !strings.HasSuffix(out, "sys=0\n") {
			t.Errorf("with ProtectProc=ptraceable: %q", out)
		}
		out = s.mustRun(t, "--", "sh", "-c", script)
		if strings.Contains(out, "hidepid") || strings.Contains(out, "subset") {
			t.Errorf("without: %q", out)
		}
	})
}
