package engines

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const rootlessUser = "hako-rootless"

// rootlessPodman runs podman as an unprivileged user with /etc/subuid and
// /etc/subgid ranges; podman runs hako inside its user namespace.
func rootlessPodman(t *testing.T) func(script string) (string, int) {
	need(t, "podman", "newuidmap", "useradd", "su")
	if _, err := user.Lookup(rootlessUser); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", rootlessUser).CombinedOutput(); err != nil {
			t.Skipf("useradd: %v %s", err, out)
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		data, _ := os.ReadFile(f)
		if !strings.Contains(string(data), rootlessUser+":") {
			fh, err := os.OpenFile(f, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			fh.WriteString(rootlessUser + ":300000:65536\n")
			fh.Close()
		}
	}
	u, _ := user.Lookup(rootlessUser)
	// The user must be able to execute hako and read the image.
	bin := filepath.Join(u.HomeDir, "hako")
	data, _ := os.ReadFile(hakoBin)
	os.WriteFile(bin, data, 0o755)
	img := filepath.Join(u.HomeDir, "bb.tar")
	data, _ = os.ReadFile(imgTar)
	os.WriteFile(img, data, 0o644)
	base := "podman --cgroup-manager cgroupfs --events-backend file --runtime " + bin + " "
	sh := func(script string) (string, int) {
		script = strings.ReplaceAll(script, "PODMAN ", base)
		return run(t, "su", "-", rootlessUser, "-c", script)
	}
	if out, code := sh("PODMAN import " + img + " bb:latest"); code != 0 {
		t.Fatalf("podman import: %s", out)
	}
	t.Cleanup(func() { sh("PODMAN rm -af -t 0; PODMAN system reset -f") })
	return sh
}

func TestPodmanRootless(t *testing.T) {
	sh := rootlessPodman(t)
	out, code := sh("PODMAN run --rm --network none bb:latest sh -c 'echo hello; id; cat /proc/self/uid_map'")
	if code != 0 {
		t.Fatalf("rootless run: %d\n%s", code, out)
	}
	contains(t, out, "hello", "uid=0(root)", " "+subuidStart(t)+" ")
	if _, code := sh("PODMAN run --rm --network none bb:latest sh -c 'exit 5'"); code != 5 {
		t.Errorf("exit code %d, want 5", code)
	}
	if out, code := sh("PODMAN run -d --name r1 --network none --user 1000:1000 --read-only bb:latest sh -c 'echo started; sleep 1000'"); code != 0 {
		t.Fatalf("run -d: %s", out)
	}
	time.Sleep(300 * time.Millisecond)
	out, _ = sh("PODMAN exec r1 sh -c 'id; touch /x'")
	contains(t, out, "uid=1000", "Read-only file system")
	out, _ = sh("PODMAN logs r1")
	contains(t, out, "started")
	if out, code := sh("PODMAN stop -t 0 r1 && PODMAN rm r1"); code != 0 {
		t.Errorf("stop, rm: %s", out)
	}
	out, _ = sh("script -qec \"PODMAN run --rm -it --network none bb:latest sh -c 'sleep 0.5; tty'\" /dev/null")
	contains(t, out, "/dev/pts/0")
	out, _ = sh("PODMAN run --rm --network none --userns=keep-id bb:latest id")
	u, _ := user.Lookup(rootlessUser)
	contains(t, out, "uid="+u.Uid)
}

// subuidStart is the first host uid of the user's /etc/subuid range
// (useradd may have given one before this test added its own).
func subuidStart(t *testing.T) string {
	data, _ := os.ReadFile("/etc/subuid")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Split(l, ":"); len(f) == 3 && f[0] == rootlessUser {
			return f[1]
		}
	}
	t.Fatal("no /etc/subuid range")
	return ""
}
