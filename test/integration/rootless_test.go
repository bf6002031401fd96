package integration

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

const rootlessUser = "hako-rootless"

// An unprivileged user runs a container with `hako spec --rootless`: a user
// namespace mapping only their own ids (seed 002: hako writes setgroups
// "deny" before gid_map), no cgroups, state under XDG_RUNTIME_DIR.
func TestRootlessByUnprivilegedUser(t *testing.T) {
	dir, u := rootlessBundleDir(t)
	script := "cd " + dir + " && ./hako spec --rootless && " +
		`sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sh", "-c", "id; cat \/proc\/self\/uid_map \/proc\/self\/setgroups"/' config.json && ` +
		"XDG_RUNTIME_DIR=" + dir + "/run ./hako run r1"
	out, err := exec.Command("su", "-", rootlessUser, "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, out)
	}
	for _, want := range []string{"uid=0 gid=0", " " + u.Uid + " ", "deny"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "hako", "r1")); err == nil {
		t.Error("state left behind after run")
	}
}

// exec right after start, unprivileged: start returns before the init has
// exec'd, and until then its /proc/<pid>/ns/* are not the user's to open
// (the init is not dumpable). Without the wait for that execve, 2 in 30
// failed with "open namespace /proc/N/ns/user: permission denied".
func TestRootlessExecRightAfterStart(t *testing.T) {
	dir, _ := rootlessBundleDir(t)
	script := "cd " + dir + " && ./hako spec --rootless && " +
		`sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sleep", "100"/' config.json && ` +
		"export XDG_RUNTIME_DIR=" + dir + "/run; f=0; for i in $(seq 40); do " +
		"./hako create r$i || exit 1; ./hako start r$i || exit 1; " +
		"./hako exec r$i cat /proc/self/comm >/dev/null || f=$((f+1)); ./hako delete -f r$i; done; echo failures $f"
	out, err := exec.Command("su", "-", rootlessUser, "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "failures 0") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// rootlessBundleDir makes a directory the unprivileged rootlessUser owns,
// with hako, a busybox rootfs and an empty run/ for XDG_RUNTIME_DIR.
func rootlessBundleDir(t *testing.T) (string, *user.User) {
	t.Helper()
	for _, b := range []string{"useradd", "su"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s missing", b)
		}
	}
	if _, err := user.Lookup(rootlessUser); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", rootlessUser).CombinedOutput(); err != nil {
			t.Skipf("useradd: %v %s", err, out)
		}
	}
	u, _ := user.Lookup(rootlessUser)
	bb := busybox(t)
	dir, err := os.MkdirTemp(u.HomeDir, "rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	data, _ := os.ReadFile(bb)
	os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755)
	for _, a := range []string{"sh", "id", "cat", "sleep"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	bin := filepath.Join(dir, "hako")
	data, _ = os.ReadFile(hakoBin)
	os.WriteFile(bin, data, 0o755)
	os.MkdirAll(filepath.Join(dir, "run"), 0o700)
	exec.Command("chown", "-R", u.Uid+":"+u.Gid, dir).Run()
	return dir, u
}
