package integration

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// hakoAnd15 is hako with the env's --root and, when built, runc 1.5 with
// its own: the runtimes a side-by-side parity test runs.
func hakoAnd15(e *env) map[string][]string {
	rts := map[string][]string{"hako": {hakoBin, "--root", e.root}}
	if rc := runc15(e.t); rc != nil {
		rts["runc-1.5"] = rc
	}
	return rts
}

// rtPid is the init pid a runtime's state reports.
func rtPid(t *testing.T, rt []string, id string) int {
	t.Helper()
	so, se, code := rtCmd(t, rt, "state", id)
	var st struct{ Pid int }
	if code != 0 || json.Unmarshal([]byte(so), &st) != nil || st.Pid <= 0 {
		t.Fatalf("%v state %s: %d %s%s", rt[0], id, code, so, se)
	}
	return st.Pid
}

// user.* sysctls are the ucount limits of the container's own user
// namespace (runc 1.2+): set from inside, read back from inside, the
// host's limit untouched. Without a user namespace both refuse them.
func TestParitySysctlUserNamespace(t *testing.T) {
	e := newEnv(t)
	openUp(t, e.bundle)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 410000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 410000, Size: 65536}}
	e.spec.Linux.Sysctl = map[string]string{"user.max_user_namespaces": "7", "user/max_mnt_namespaces": "9"}
	e.spec.Process.Args = []string{"sh", "-c", "echo userns=$(cat /proc/sys/user/max_user_namespaces) mntns=$(cat /proc/sys/user/max_mnt_namespaces)"}
	e.write()
	host := readFile(t, "/proc/sys/user/max_user_namespaces")
	for who, rt := range hakoAnd15(e) {
		out, code := runWith(t, rt, e.bundle, "c-usysctl-"+strings.ReplaceAll(who, ".", ""))
		if code != 0 || !strings.Contains(out, "userns=7 mntns=9") {
			t.Errorf("%s: exit %d, want userns=7 mntns=9 read inside:\n%s", who, code, out)
		}
		if now := readFile(t, "/proc/sys/user/max_user_namespaces"); now != host {
			t.Errorf("%s changed the host's user.max_user_namespaces: %s -> %s", who, host, now)
		}
	}

	// No user namespace: the write would set the host's limit.
	e.spec.Linux.UIDMappings, e.spec.Linux.GIDMappings = nil, nil
	var nss []specs.LinuxNamespace
	for _, n := range e.spec.Linux.Namespaces {
		if n.Type != specs.UserNamespace {
			nss = append(nss, n)
		}
	}
	e.spec.Linux.Namespaces = nss
	e.spec.Linux.Sysctl = map[string]string{"user.max_user_namespaces": "7"}
	e.write()
	for who, rt := range hakoAnd15(e) {
		out, code := runWith(t, rt, e.bundle, "c-usysctl-host")
		if code == 0 {
			t.Errorf("%s accepted user.max_user_namespaces without a user namespace:\n%s", who, out)
		}
		if who == "hako" && !strings.Contains(out, "linux.sysctl") {
			t.Errorf("hako's refusal does not name linux.sysctl: %s", out)
		}
		t.Logf("%s: %s", who, strings.TrimSpace(out))
	}
	if now := readFile(t, "/proc/sys/user/max_user_namespaces"); now != host {
		t.Errorf("the host's user.max_user_namespaces changed: %s -> %s", host, now)
	}
}

// process.user.umask reaches the init, a plain exec (which takes the
// config's process) and exec -p (its own umask, or the container's without
// one, as runc 1.5), read from the kernel's view in /proc/self/status.
func TestParityUmask(t *testing.T) {
	e := newEnv(t)
	mask := uint32(0o027)
	e.spec.Process.User.Umask = &mask
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	status := []string{"grep", "Umask", "/proc/self/status"}
	for who, rt := range hakoAnd15(e) {
		id := "c-umask-" + strings.ReplaceAll(who, ".", "")
		if so, se, code := rtCmd(t, rt, "run", "-d", "--bundle", e.bundle, id); code != 0 {
			t.Fatalf("%s run -d: %d %s%s", who, code, so, se)
		}
		defer rtCmd(t, rt, "delete", "--force", id)
		if v := umaskOf(readFile(t, "/proc/"+itoa(rtPid(t, rt, id))+"/status")); v != "0027" {
			t.Errorf("%s: init's umask %q, want 0027", who, v)
		}
		so, se, _ := rtCmd(t, rt, append([]string{"exec", id}, status...)...)
		if v := umaskOf(so); v != "0027" {
			t.Errorf("%s exec: umask %q, want 0027 (%s)", who, v, se)
		}
		p := *e.spec.Process
		p.Args = status
		u := uint32(0o077)
		p.User.Umask = &u
		so, se, _ = rtCmd(t, rt, "exec", "-p", writeProcess(t, &p), id)
		// runc 1.5 drops process.json's umask for the container's
		// (setns_init_linux.go reads only the config's); hako applies
		// the field it accepted.
		wantOwn := map[string]string{"hako": "0077", "runc-1.5": "0027"}[who]
		if v := umaskOf(so); v != wantOwn {
			t.Errorf("%s exec -p with umask 0077: umask %q, want %s (%s)", who, v, wantOwn, se)
		}
		p.User.Umask = nil
		so, se, _ = rtCmd(t, rt, "exec", "-p", writeProcess(t, &p), id)
		if v := umaskOf(so); v != "0027" {
			t.Errorf("%s exec -p without umask: umask %q, want the container's 0027 (%s)", who, v, se)
		}
	}
}

func umaskOf(status string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// update --cpu-burst and per-device I/O limits (runc 1.5 has no flag for
// those: they come in update -r's blockIO) write the same cgroup files
// under hako and runc 1.5. On this hybrid host cpu and blkio are v1:
// cpu.cfs_burst_us and blkio.throttle.*_device.
func TestParityUpdateCPUBurstAndIODevices(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_burst_us"); err != nil {
		t.Skip("no v1 cpu.cfs_burst_us here")
	}
	dev := blockDevice(t)
	e := newEnv(t)
	quota, period := int64(50000), uint64(100000)
	e.spec.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}}
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	r := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(r, []byte(`{"blockIO":{"throttleReadBpsDevice":[{"major":`+dev[0]+`,"minor":`+dev[1]+`,"rate":1048576}],
		"throttleWriteIOPSDevice":[{"major":`+dev[0]+`,"minor":`+dev[1]+`,"rate":300}]}}`), 0o644)
	files := map[string]string{}
	for who, rt := range hakoAnd15(e) {
		id := "c-upd-" + strings.ReplaceAll(who, ".", "")
		if so, se, code := rtCmd(t, rt, "run", "-d", "--bundle", e.bundle, id); code != 0 {
			t.Fatalf("%s run -d: %d %s%s", who, code, so, se)
		}
		defer rtCmd(t, rt, "delete", "--force", id)
		pid := rtPid(t, rt, id)
		if so, se, code := rtCmd(t, rt, "update", "--cpu-burst", "20000", id); code != 0 {
			t.Fatalf("%s update --cpu-burst: %d %s%s", who, code, so, se)
		}
		if so, se, code := rtCmd(t, rt, "update", "-r", r, id); code != 0 {
			t.Fatalf("%s update -r blockIO: %d %s%s", who, code, so, se)
		}
		cpu, blkio := ownCgroupDir(t, pid, "cpu"), ownCgroupDir(t, pid, "blkio")
		var got []string
		for _, f := range []string{cpu + "/cpu.cfs_burst_us", cpu + "/cpu.cfs_quota_us", cpu + "/cpu.cfs_period_us",
			blkio + "/blkio.throttle.read_bps_device", blkio + "/blkio.throttle.write_iops_device",
			blkio + "/blkio.throttle.write_bps_device"} {
			got = append(got, filepath.Base(f)+"="+strings.Join(strings.Fields(readFile(t, f)), " "))
		}
		files[who] = strings.Join(got, "\n")
		want := strings.Join([]string{"cpu.cfs_burst_us=20000", "cpu.cfs_quota_us=50000", "cpu.cfs_period_us=100000",
			"blkio.throttle.read_bps_device=" + dev[0] + ":" + dev[1] + " 1048576",
			"blkio.throttle.write_iops_device=" + dev[0] + ":" + dev[1] + " 300",
			"blkio.throttle.write_bps_device="}, "\n")
		if files[who] != want {
			t.Errorf("%s: cgroup files after update:\n%s\nwant:\n%s", who, files[who], want)
		}
		// A burst over the quota is the kernel's EINVAL for both.
		if _, se, code := rtCmd(t, rt, "update", "--cpu-burst", "60000", id); code == 0 {
			t.Errorf("%s: a burst over the quota was accepted", who)
		} else {
			t.Logf("%s, burst over quota: %s", who, strings.TrimSpace(se))
		}
		// blkio.weight_device needs a weight-aware I/O scheduler (BFQ),
		// which this host does not have: both fail on the missing file.
		w := filepath.Join(t.TempDir(), "w.json")
		os.WriteFile(w, []byte(`{"blockIO":{"weightDevice":[{"major":`+dev[0]+`,"minor":`+dev[1]+`,"weight":200}]}}`), 0o644)
		_, se, code := rtCmd(t, rt, "update", "-r", w, id)
		if _, err := os.Stat(blkio + "/blkio.bfq.weight_device"); err != nil {
			if code == 0 {
				t.Errorf("%s: weightDevice accepted without a blkio weight file", who)
			}
			t.Logf("%s, weightDevice without BFQ: %s", who, strings.TrimSpace(se))
		}
	}
}

// blockDevice is a whole disk's major and minor, for throttle rules.
func blockDevice(t *testing.T) [2]string {
	t.Helper()
	out, err := exec.Command("lsblk", "-dn", "-o", "MAJ:MIN,TYPE").Output()
	if err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && f[1] == "disk" {
				if a, b, ok := strings.Cut(f[0], ":"); ok && a != "253" { // not zram
					return [2]string{a, b}
				}
			}
		}
	}
	t.Skip("no block disk for throttle rules")
	return [2]string{}
}

// seccompAgent answers every notification on the listener fd it receives
// at sock with EXDEV, until the container goes.
func seccompAgent(t *testing.T, sock string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			buf, oob := make([]byte, 8192), make([]byte, unix.CmsgSpace(4))
			_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			c.Close()
			if err != nil {
				continue
			}
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			if len(msgs) != 1 {
				continue
			}
			fds, _ := unix.ParseUnixRights(&msgs[0])
			go func(fd libseccomp.ScmpFd) {
				defer unix.Close(int(fd))
				for {
					req, err := libseccomp.NotifReceive(fd)
					if err != nil {
						return
					}
					libseccomp.NotifRespond(fd, &libseccomp.ScmpNotifResp{ID: req.ID, Error: int32(unix.EXDEV)})
				}
			}(libseccomp.ScmpFd(fds[0]))
		}
	}()
}

// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV reaches seccomp(2): strace shows
// the flag on the filter hako loads, next to NEW_LISTENER, and the filter
// works (the agent's answer comes back). runc 1.5 takes the flag through
// libseccomp's SetWaitKill, which needs libseccomp 2.6 (API level 7): with
// the 2.5.4 it is built with here it refuses the config, though the kernel
// has the flag. hako builds the seccomp(2) flags itself, so it applies it
// wherever the kernel does, and refuses it, naming the flag, where not.
func TestParitySeccompWaitKillableRecv(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("needs strace")
	}
	e := newEnv(t)
	e.spec.Root.Readonly = false
	sock := filepath.Join(t.TempDir(), "agent.sock")
	seccompAgent(t, sock)
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  sock,
		Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	e.spec.Process.Args = []string{"sh", "-c", "mkdir /tmp/x 2>&1; echo done"}
	e.write()
	trace := filepath.Join(t.TempDir(), "strace")
	cmd := exec.Command("strace", "-f", "-qq", "-e", "trace=seccomp", "-e", "signal=none", "-o", trace,
		hakoBin, "--root", e.root, "run", "--bundle", e.bundle, "c-waitkill")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cross-device") {
		t.Fatalf("hako under strace: %v, want the agent's EXDEV:\n%s", err, out)
	}
	var loads []string
	for _, l := range strings.Split(readFile(t, trace), "\n") {
		if strings.Contains(l, "SECCOMP_SET_MODE_FILTER") {
			loads = append(loads, l)
		}
	}
	found := false
	for _, l := range loads {
		// The probes of which flags the kernel has pass no filter and
		// fail with EFAULT; the real load returns the listener fd.
		if strings.Contains(l, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") && strings.Contains(l, "SECCOMP_FILTER_FLAG_NEW_LISTENER") && !strings.Contains(l, "= -1") {
			found = true
		}
	}
	if !found {
		t.Errorf("no seccomp(SECCOMP_SET_MODE_FILTER) with WAIT_KILLABLE_RECV|NEW_LISTENER; filter loads:\n%s", strings.Join(loads, "\n"))
	}

	// Without the flag the same load has no WAIT_KILLABLE_RECV: the
	// check above reads the config, not a constant.
	e.spec.Linux.Seccomp.Flags = nil
	e.write()
	cmd = exec.Command("strace", "-f", "-qq", "-e", "trace=seccomp", "-e", "signal=none", "-o", trace,
		hakoBin, "--root", e.root, "run", "--bundle", e.bundle, "c-waitkill2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hako without the flag: %v\n%s", err, out)
	}
	if strings.Contains(readFile(t, trace), "WAIT_KILLABLE_RECV") {
		t.Errorf("WAIT_KILLABLE_RECV passed without the config asking for it")
	}

	if rc := runc15(t); rc != nil {
		e.spec.Linux.Seccomp.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}
		e.write()
		out, code := runWith(t, rc, e.bundle, "r-waitkill")
		t.Logf("runc 1.5 (libseccomp %s): exit %d: %s", libseccompVersion(), code, strings.TrimSpace(out))
		if code == 0 && !strings.Contains(out, "cross-device") {
			t.Errorf("runc 1.5 ran without the agent's answer: %s", out)
		}
	}
}

func libseccompVersion() string {
	a, b, c := libseccomp.GetLibraryVersion()
	return itoa(int(a)) + "." + itoa(int(b)) + "." + itoa(int(c))
}

// crun's idmapped mount with maps of its own, idmap=uids=...;gids=...
// (and ridmap=): a real idmapped mount, ownership read back inside and
// what the container writes read back on the host. No user namespace is
// needed: the maps make their own. runc 1.5 has no such syntax and its
// answer is logged; crun's is compared where it makes the mount.
func TestParityCrunIdmapOption(t *testing.T) {
	src := t.TempDir()
	openUp(t, src)
	for name, id := range map[string]int{"root-owned": 0, "owned-by-1000": 1000, "owned-by-1005": 1005} {
		p := filepath.Join(src, name)
		os.WriteFile(p, nil, 0o644)
		os.Chown(p, id, id)
	}
	os.Chmod(src, 0o777)
	e := newEnv(t)
	// uid_map's order, file system ID then host ID: on-disk 0 and 1000
	// swap places, 1005 shows as 2005, anything else is unmapped.
	opt := "idmap=uids=0-1000-1#1000-0-1#1005-2005-1;gids=0-1000-1#1000-0-1#1005-2005-1"
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: src, Options: []string{"rbind", opt}})
	e.spec.Process.Args = []string{"sh", "-c", "stat -c '%n %u:%g' /mnt/root-owned /mnt/owned-by-1000 /mnt/owned-by-1005; touch /mnt/made-inside-$RT"}
	rts := hakoAnd15(e)
	if p, err := exec.LookPath("crun"); err == nil {
		rts["crun"] = []string{p, "--root", t.TempDir()}
	}
	for who, rt := range rts {
		e.spec.Process.Env = append(e.spec.Process.Env[:len(e.spec.Process.Env):len(e.spec.Process.Env)], "RT="+who)
		version := e.spec.Version
		if who == "crun" {
			// crun 1.8 knows runtime-spec 1.0 only, and says "unknown
			// version specified" to hako's 1.3.0.
			e.spec.Version = "1.0.2"
		}
		e.write()
		e.spec.Version = version
		out, code := runWith(t, rt, e.bundle, "c-idmapopt-"+strings.ReplaceAll(who, ".", ""))
		owner := [2]uint32{^uint32(0), ^uint32(0)} // not made
		var st unix.Stat_t
		if unix.Stat(filepath.Join(src, "made-inside-"+who), &st) == nil {
			owner = [2]uint32{st.Uid, st.Gid}
		}
		if who == "runc-1.5" {
			t.Logf("runc 1.5: exit %d, owner of its file %v:\n%s", code, owner, out)
			continue
		}
		if code != 0 {
			if who == "crun" {
				t.Logf("crun: exit %d:\n%s", code, out)
				continue
			}
			t.Fatalf("%s: exit %d:\n%s", who, code, out)
		}
		for _, w := range []string{"/mnt/root-owned 1000:1000", "/mnt/owned-by-1000 0:0", "/mnt/owned-by-1005 2005:2005"} {
			if !strings.Contains(out, w) {
				t.Errorf("%s: missing %q in:\n%s", who, w, out)
			}
		}
		// Container root writes through the mount as host 1000.
		if owner != [2]uint32{1000, 1000} {
			t.Errorf("%s: the file made through the idmapped mount is %v on the host, want 1000:1000", who, owner)
		}
	}

	// ridmap= with '@': host IDs are the container's own user namespace
	// IDs (container 0 is host 420000), so on-disk 1000 is the
	// container's root, and root's files are written as 1000. On-disk 0
	// (the directory's owner) shows as container 1: the kernel refuses
	// writes into a directory whose owner an idmap leaves unmapped.
	e.addNS(specs.UserNamespace)
	openUp(t, e.bundle)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 420000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 420000, Size: 65536}}
	e.spec.Mounts[len(e.spec.Mounts)-1].Options = []string{"rbind", "ridmap=uids=@1000-0-1#@0-1-1;gids=@1000-0-1#@0-1-1"}
	e.spec.Process.Args = []string{"sh", "-c", "stat -c '%n %u:%g' /mnt/root-owned /mnt/owned-by-1000; touch /mnt/made-in-userns"}
	e.write()
	out := e.hakoOK("run", "--bundle", e.bundle, "c-ridmap")
	for _, w := range []string{"/mnt/root-owned 1:1", "/mnt/owned-by-1000 0:0"} {
		if !strings.Contains(out, w) {
			t.Errorf("ridmap=@: missing %q in:\n%s", w, out)
		}
	}
	if o := statOwner(t, filepath.Join(src, "made-in-userns")); o != [2]uint32{1000, 1000} {
		t.Errorf("ridmap=@: file made by the container's root is %v on the host, want 1000:1000", o)
	}

	// A bad map names the mount and the option, and leaves nothing behind.
	e.spec.Mounts[len(e.spec.Mounts)-1].Options = []string{"rbind", "idmap=uids=0-1000;gids=0-1000-10"}
	e.write()
	before := hostMounts(t)
	so, se, code := e.hako("run", "--bundle", e.bundle, "c-idmapopt-bad")
	if code == 0 || !strings.Contains(se, `mounts[`) || !strings.Contains(se, `"0-1000": want from-to-count`) {
		t.Errorf("bad idmap= option: exit %d: %s%s", code, so, se)
	}
	if _, _, code := e.hako("state", "c-idmapopt-bad"); code == 0 {
		t.Error("a refused container left its state behind")
	}
	if hostMounts(t) != before {
		t.Error("host mounts changed after a refused idmap= option")
	}
}

// linux.intelRdt where resctrl is not mounted (this host: no resctrl in
// /proc/filesystems): refused by both in runc 1.5's words before the
// closID is looked at, and update's schema flags refused in runc's words
// too. internal/linux/resctrl checks the group, schemata, tasks and
// monitoring group written, on a fake resctrl tree.
func TestParityIntelRdtWithoutResctrl(t *testing.T) {
	if strings.Contains(readFile(t, "/proc/filesystems"), "resctrl") {
		if _, err := os.Stat("/sys/fs/resctrl/info"); err == nil {
			t.Skip("resctrl is mounted here: the refusal cannot be seen")
		}
	}
	e := newEnv(t)
	e.spec.Process.Args = []string{"true"}
	e.spec.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "../bad", L3CacheSchema: "L3:0=f"}
	e.write()
	for who, rt := range hakoAnd15(e) {
		out, code := runWith(t, rt, e.bundle, "c-rdt")
		if code == 0 || !strings.Contains(out, "intelRdt is specified in config, but Intel RDT is not enabled") {
			t.Errorf("%s: exit %d, want runc's refusal: %s", who, code, out)
		}
	}
	if ids, _ := os.ReadDir(e.root); len(ids) != 0 {
		t.Errorf("a refused intelRdt container left state: %v", ids)
	}
	e.spec.Linux.IntelRdt = nil
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	for who, rt := range hakoAnd15(e) {
		id := "c-rdt-upd-" + strings.ReplaceAll(who, ".", "")
		if so, se, code := rtCmd(t, rt, "run", "-d", "--bundle", e.bundle, id); code != 0 {
			t.Fatalf("%s run -d: %d %s%s", who, code, so, se)
		}
		defer rtCmd(t, rt, "delete", "--force", id)
		for flag, words := range map[string]string{"--l3-cache-schema": "Intel RDT/CAT: l3 cache schema is not enabled",
			"--mem-bw-schema": "Intel RDT/MBA: memory bandwidth schema is not enabled"} {
			_, se, code := rtCmd(t, rt, "update", flag, "X:0=1", id)
			if code == 0 || !strings.Contains(se, words) {
				t.Errorf("%s update %s: exit %d, want %q: %s", who, flag, code, words, se)
			}
		}
	}
}
