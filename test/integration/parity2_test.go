package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Masking N directories shares one read-only tmpfs (runc 1.5, crun 1.24):
// Kubernetes masks hundreds of per-CPU sysfs directories, and a superblock
// each costs kernel memory. Every mask is a mount of the same superblock
// (one major:minor in mountinfo), read-only and empty.
func TestParityMaskedPathsShareOneTmpfs(t *testing.T) {
	e := newEnv(t)
	var masked []string
	for i := 0; i < 50; i++ {
		d := fmt.Sprintf("/mnt/m%02d", i)
		if err := os.MkdirAll(filepath.Join(e.bundle, "rootfs", d), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(e.bundle, "rootfs", d, "secret"), []byte("x"), 0o644)
		masked = append(masked, d)
	}
	// A file mask still binds the container's /dev/null.
	os.WriteFile(filepath.Join(e.bundle, "rootfs/etc/hidden"), []byte("x"), 0o644)
	masked = append(masked, "/etc/hidden", "/mnt/m00")
	e.spec.Linux.MaskedPaths = masked
	e.spec.Process.Args = []string{"sh", "-c", "cat /proc/self/mountinfo; ls -A /mnt/m07 | wc -l; touch /mnt/m07/x 2>/dev/null && echo WRITABLE; true"}
	e.write()
	rts := hakoAnd15(e)
	for who, rt := range rts {
		out, code := runWith(t, rt, e.bundle, "c-mask-"+strings.ReplaceAll(who, ".", ""))
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", who, code, out)
		}
		devs, n := map[string]bool{}, 0
		var hidden string
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 5 {
				continue
			}
			if strings.HasPrefix(f[4], "/mnt/m") {
				devs[f[2]] = true
				n++
				if !strings.HasPrefix(f[5], "ro") {
					t.Errorf("%s: mask %s is not read-only: %s", who, f[4], l)
				}
			}
			if f[4] == "/etc/hidden" {
				hidden = l
			}
		}
		if n != 50 {
			t.Errorf("%s: %d masks of /mnt/m*, want 50 (a duplicate masked once)\n%s", who, n, out)
		}
		if len(devs) != 1 {
			t.Errorf("%s: masks use %d superblocks (%v), want 1 shared tmpfs", who, len(devs), devs)
		}
		if !strings.Contains(hidden, " - devtmpfs ") && !strings.Contains(hidden, " - tmpfs ") {
			t.Errorf("%s: /etc/hidden not masked by /dev/null: %q", who, hidden)
		}
		if strings.Contains(out, "WRITABLE") {
			t.Errorf("%s: a masked directory is writable", who)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if last := strings.TrimSpace(lines[len(lines)-1]); last != "0" {
			t.Errorf("%s: masked directory lists %s entries, want 0", who, last)
		}
	}
}

// pidfdListener listens on a unix socket for one --pidfd-socket message
// and returns a channel with the payload and the pid the received pidfd
// refers to (its fdinfo's Pid:, in our PID namespace), after checking the
// fd is a live pidfd (pidfd_send_signal 0).
func pidfdListener(t *testing.T) (string, <-chan [2]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pidfd.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan [2]string, 1)
	go func() {
		defer close(ch)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4*4))
		n, oobn, _, _, err := c.(*net.UnixConn).ReadMsgUnix(buf, oob)
		if err != nil {
			ch <- [2]string{"recvmsg: " + err.Error(), ""}
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			ch <- [2]string{fmt.Sprintf("control messages %d: %v", len(msgs), err), ""}
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			ch <- [2]string{fmt.Sprintf("rights %v: %v", fds, err), ""}
			return
		}
		defer unix.Close(fds[0])
		if err := unix.PidfdSendSignal(fds[0], 0, nil, 0); err != nil {
			ch <- [2]string{"pidfd_send_signal 0: " + err.Error(), ""}
			return
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fds[0]))
		pid := ""
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "Pid:"); ok {
				pid = strings.TrimSpace(v)
			}
		}
		ch <- [2]string{string(buf[:n]), pid}
	}()
	return path, ch
}

func recvPidfd(t *testing.T, who string, ch <-chan [2]string) (payload, pid string) {
	t.Helper()
	select {
	case got, ok := <-ch:
		if !ok {
			t.Fatalf("%s: no pidfd message", who)
		}
		return got[0], got[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no pidfd sent within 30s", who)
	}
	return "", ""
}

// --pidfd-socket on create (and run) and exec: the caller gets a pidfd of
// the init, payload "standard", and of the exec'd process, "setns", as
// from runc 1.5.
func TestParityPidfdSocket(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	rts := hakoAnd15(e)
	for who, rt := range rts {
		id := "c-pidfd-" + strings.ReplaceAll(who, ".", "")
		sock, ch := pidfdListener(t)
		if so, se, code := rtCmd(t, rt, "create", "--bundle", e.bundle, "--pidfd-socket", sock, id); code != 0 {
			t.Fatalf("%s create: %d %s%s", who, code, so, se)
		}
		defer rtCmd(t, rt, "delete", "--force", id)
		payload, pid := recvPidfd(t, who+" create", ch)
		var st struct{ Pid int }
		so, _, _ := rtCmd(t, rt, "state", id)
		json.Unmarshal([]byte(so), &st)
		if payload != "standard" || pid != itoa(st.Pid) {
			t.Errorf("%s create: payload %q pidfd of pid %q, want \"standard\" and the init %d", who, payload, pid, st.Pid)
		}
		rtCmd(t, rt, "start", id)

		sock, ch = pidfdListener(t)
		pidFile := filepath.Join(t.TempDir(), "exec.pid")
		if so, se, code := rtCmd(t, rt, "exec", "-d", "--pid-file", pidFile, "--pidfd-socket", sock, id, "sleep", "999"); code != 0 {
			t.Fatalf("%s exec: %d %s%s", who, code, so, se)
		}
		payload, pid = recvPidfd(t, who+" exec", ch)
		if want := strings.TrimSpace(readFile(t, pidFile)); payload != "setns" || pid != want {
			t.Errorf("%s exec: payload %q pidfd of pid %q, want \"setns\" and the exec'd %s", who, payload, pid, want)
		}

		// A socket nobody listens on fails the command before anything runs.
		bad := filepath.Join(t.TempDir(), "none.sock")
		so, se, code := rtCmd(t, rt, "exec", "-d", "--pidfd-socket", bad, id, "true")
		if code == 0 || !strings.Contains(so+se, bad) {
			t.Errorf("%s exec with a dead --pidfd-socket: exit %d %q, want a failure naming %s", who, code, so+se, bad)
		}
	}
}

// runc's iversion, noiversion, silent and loud are mount(2) flags, never
// filesystem data: a tmpfs with them mounts (tmpfs would refuse them as
// parameters); "nosilent" is no mount option, and both runtimes pass it
// to the filesystem, which refuses it.
func TestParityMountFlagsIVersionSilent(t *testing.T) {
	e := newEnv(t)
	e.spec.Mounts = append(e.spec.Mounts,
		specs.Mount{Destination: "/mnt/a", Type: "tmpfs", Source: "tmpfs", Options: []string{"iversion", "silent", "nosuid"}},
		specs.Mount{Destination: "/mnt/b", Type: "tmpfs", Source: "tmpfs", Options: []string{"noiversion", "loud", "nodev"}})
	e.spec.Process.Args = []string{"sh", "-c", "grep -E ' /mnt/(a|b) ' /proc/self/mountinfo"}
	e.write()
	rts := hakoAnd15(e)
	for who, rt := range rts {
		out, code := runWith(t, rt, e.bundle, "c-iv-"+strings.ReplaceAll(who, ".", ""))
		if code != 0 || strings.Count(out, " - tmpfs ") != 2 {
			t.Errorf("%s: exit %d, want both tmpfs mounted:\n%s", who, code, out)
		}
		if strings.Contains(out, "iversion") || strings.Contains(out, "silent") {
			t.Errorf("%s: a flag reached the filesystem's options:\n%s", who, out)
		}
	}
	e.spec.Mounts = append(e.spec.Mounts[:len(e.spec.Mounts)-2],
		specs.Mount{Destination: "/mnt/c", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosilent"}})
	e.write()
	for who, rt := range rts {
		out, code := runWith(t, rt, e.bundle, "c-ns-"+strings.ReplaceAll(who, ".", ""))
		if code == 0 {
			t.Errorf("%s: nosilent accepted, want tmpfs to refuse it as runc 1.5 does:\n%s", who, out)
		}
	}
}

// kill --all KILL on this hybrid host: cgroup.kill empties the container's
// unified directory (runc 1.2+), and the v1 freeze-signal-thaw path still
// runs for the v1 hierarchies, which can hold a process the unified
// directory does not (one that joined through v1 files only; runc 1.5
// writes cgroup.kill alone there and leaves it running).
func TestParityKillAllHybrid(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err != nil {
		t.Skip("needs a hybrid host (cgroup2 at /sys/fs/cgroup/unified)")
	}
	e := newEnv(t)
	init := e.background("c-killall")
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	e.hakoOK("exec", "-d", "--pid-file", pidFile, "c-killall", "sleep", "999")
	execPid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	var st struct {
		CgroupPaths map[string]string `json:"cgroup_paths"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(e.root, "c-killall", "state.json"))), &st); err != nil {
		t.Fatal(err)
	}
	hasKill := false
	for _, dir := range st.CgroupPaths {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil {
			hasKill = true
		}
	}
	if !hasKill {
		t.Skip("the container's unified directory has no cgroup.kill (Linux < 5.14)")
	}
	// A host process in the container's v1 cgroups only.
	stray := exec.Command("sleep", "999")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	defer stray.Process.Kill()
	go stray.Wait()
	v1 := 0
	for name, dir := range st.CgroupPaths {
		if strings.HasPrefix(dir, "/sys/fs/cgroup/unified") || name == "" || name == "unified" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(itoa(stray.Process.Pid)), 0); err != nil {
			t.Fatalf("move stray into %s: %v", dir, err)
		}
		v1++
	}
	if v1 == 0 {
		t.Fatalf("no v1 cgroup paths in %v", st.CgroupPaths)
	}
	_, se, code := e.hako("--debug", "kill", "--all", "c-killall", "KILL")
	if code != 0 {
		t.Fatalf("kill --all: exit %d: %s", code, se)
	}
	if !strings.Contains(se, "cgroup.kill: complete=false err=<nil>") {
		t.Errorf("kill --all KILL did not write the unified cgroup.kill:\n%s", se)
	}
	for what, pid := range map[string]int{"init": init, "exec'd": execPid, "v1-only stray": stray.Process.Pid} {
		gone := false
		for i := 0; i < 300 && !gone; i++ {
			b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
			gone = err != nil || strings.Contains(string(b), ") Z ")
			if !gone {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !gone {
			t.Errorf("%s process %d survived kill --all KILL", what, pid)
		}
	}
}

// tmpcopyup: the tmpfs starts with a copy of the directory it covers,
// owners and modes kept, symlinks copied as symlinks (never followed: one
// points at "/"), the same as runc 1.5 shows.
func TestParityTmpcopyup(t *testing.T) {
	e := newEnv(t)
	run := filepath.Join(e.bundle, "rootfs/run")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(run, "d/e"), 0o755))
	must(os.WriteFile(filepath.Join(run, "a"), []byte("alpha"), 0o604))
	must(os.WriteFile(filepath.Join(run, "d/x"), []byte("deep"), 0o604))
	must(os.WriteFile(filepath.Join(run, "s"), []byte("#!"), 0o755))
	must(os.Symlink("/etc/passwd", filepath.Join(run, "l")))
	must(os.Symlink("/", filepath.Join(run, "esc")))
	must(os.Lchown(filepath.Join(run, "a"), 1000, 1001))
	must(os.Lchown(filepath.Join(run, "d"), 12, 34))
	must(os.Chmod(filepath.Join(run, "d"), 0o751))
	must(unix.Chmod(filepath.Join(run, "s"), 0o4755)) // os.Chmod would drop the raw set-uid bit
	must(os.Lchown(filepath.Join(run, "l"), 5, 6))
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"tmpcopyup", "nosuid", "mode=755"}})
	e.spec.Process.Args = []string{"sh", "-c", "grep -c ' /run .* - tmpfs ' /proc/self/mountinfo; " +
		"stat -c '%n %a %u %g %F' /run/a /run/d /run/d/e /run/d/x /run/s /run/l /run/esc; " +
		"readlink /run/l; readlink /run/esc; cat /run/a /run/d/x; echo; touch /run/new && echo writable"}
	e.write()
	rts := hakoAnd15(e)
	want := `1
/run/a 604 1000 1001 regular file
/run/d 751 12 34 directory
/run/d/e 755 0 0 directory
/run/d/x 604 0 0 regular file
/run/s 4755 0 0 regular file
/run/l 777 5 6 symbolic link
/run/esc 777 0 0 symbolic link
/etc/passwd
/
alphadeep
writable`
	for who, rt := range rts {
		out, code := runWith(t, rt, e.bundle, "c-copyup-"+strings.ReplaceAll(who, ".", ""))
		if code != 0 || strings.TrimSpace(out) != want {
			t.Errorf("%s: exit %d\n%s\nwant:\n%s", who, code, out, want)
		}
	}
	// A fifo is copied too; runc 1.5 fails on one (fileutils.CopyFile
	// never makes it, then lchowns it: ENOENT), so hako alone.
	must(unix.Mkfifo(filepath.Join(run, "fifo"), 0o620))
	must(unix.Chmod(filepath.Join(run, "fifo"), 0o620)) // past the umask
	e.spec.Process.Args = []string{"stat", "-c", "%n %a %F", "/run/fifo"}
	e.write()
	if out := strings.TrimSpace(e.hakoOK("run", "--bundle", e.bundle, "c-copyup-fifo")); out != "/run/fifo 620 fifo" {
		t.Errorf("hako: fifo copied as %q, want \"/run/fifo 620 fifo\"", out)
	}
	// The image's directory itself is untouched.
	if data, err := os.ReadFile(filepath.Join(run, "a")); err != nil || string(data) != "alpha" {
		t.Errorf("rootfs /run/a after run: %q %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(run, "new")); err == nil {
		t.Errorf("a write to the tmpfs reached the rootfs")
	}
	// tmpcopyup on anything but a tmpfs is refused, naming the option.
	e.spec.Mounts[len(e.spec.Mounts)-1] = specs.Mount{Destination: "/run", Type: "bind", Source: t.TempDir(), Options: []string{"bind", "tmpcopyup"}}
	e.write()
	_, se, code := e.hako("run", "--bundle", e.bundle, "c-copyup-bind")
	if code == 0 || !strings.Contains(se, "tmpcopyup") {
		t.Errorf("tmpcopyup on a bind mount: exit %d %q, want a refusal naming it", code, se)
	}
}

// process.oomScoreAdj is written by the namespace constructor, first of
// all, and is the container's for every process in it: the init and each
// exec (which is hako's child, not the init's, and would otherwise keep
// hako's score). runc 1.1.5 and 1.5 send it in the bootstrap data of both.
func TestParityOOMScoreAdjInitAndExec(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"sleep", "1000"}
	adj := 123
	e.spec.Process.OOMScoreAdj = &adj
	e.write()
	rts := hakoAnd15(e)
	if ref, ok := refRuntimes(t)["runc"]; ok {
		rts["runc"] = ref
	}
	for who, rt := range rts {
		id := "c-oom-" + strings.ReplaceAll(who, ".", "")
		if so, se, code := rtCmd(t, rt, "run", "-d", "--bundle", e.bundle, id); code != 0 {
			t.Fatalf("%s run: %d %s%s", who, code, so, se)
		}
		defer rtCmd(t, rt, "delete", "--force", id)
		var st struct{ Pid int }
		so, _, _ := rtCmd(t, rt, "state", id)
		json.Unmarshal([]byte(so), &st)
		if got := strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/oom_score_adj", st.Pid))); got != "123" {
			t.Errorf("%s: the init's oom_score_adj is %s, want 123", who, got)
		}
		so, se, code := rtCmd(t, rt, "exec", id, "cat", "/proc/self/oom_score_adj")
		if code != 0 || strings.TrimSpace(so) != "123" {
			t.Errorf("%s exec: oom_score_adj %q (exit %d, %s), want 123", who, so, code, se)
		}
	}
}
