package doctor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/nsenter"
)

func (p *prober) kernel() {
	var u unix.Utsname
	unix.Uname(&u)
	rel := unix.ByteSliceToString(u.Release[:])
	var maj, min int
	fmt.Sscanf(rel, "%d.%d", &maj, &min)
	v := maj*1000 + min
	switch {
	case v < 4018:
		p.add("kernel", Fail, rel+": older than 4.18, too old for rootless overlay-free containers and nsfs ioctls", "upgrade the kernel")
	case v < 5012:
		p.add("kernel", Warn, rel+": no idmapped mounts (5.12), no overlayfs in user namespaces (5.11)", "upgrade to 5.12+")
	case v < 6015:
		p.add("kernel", OK, rel+" (statmount without idmaps: inspect shows idmapped mounts but not their maps before 6.15)", "")
	default:
		p.add("kernel", OK, rel, "")
	}
}

// child runs argv in new namespaces (flags), mapping root to the caller
// when a user namespace is among them; Go's fork+exec writes the maps (and
// setgroups deny for an unprivileged caller), as a runtime would.
func child(flags uintptr, argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	if flags&unix.CLONE_NEWUSER != 0 {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := nsenter.WithCallerSlack(cmd.Start)
	if err == nil {
		err = cmd.Wait()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ee.Stderr = stderr.Bytes()
	}
	return err
}

func trueBin() string {
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/bin/true"
}

func (p *prober) namespaces() {
	var user uintptr
	if p.o.Rootless || os.Geteuid() != 0 {
		user = unix.CLONE_NEWUSER
	}
	for _, k := range ns.Kinds {
		if _, err := os.Stat("/proc/self/ns/" + k.Proc); err != nil {
			p.add("namespace "+k.Proc, Fail, "the kernel has no "+k.Proc+" namespaces", "enable CONFIG_"+strings.ToUpper(k.Proc)+"_NS")
			continue
		}
		err := child(user|k.Flag, trueBin())
		if err != nil {
			op := explain.UnshareOther
			if k.Flag == unix.CLONE_NEWUSER || user != 0 {
				op = explain.UnshareUser
			}
			d, fix := explainErr(op, err)
			p.add("namespace "+k.Proc, Fail, "cannot create: "+d, fix)
			continue
		}
		p.add("namespace "+k.Proc, OK, "created one", "")
	}
}

func (p *prober) userns() {
	max := explain.ReadInt("/proc/sys/user/max_user_namespaces")
	var notes []string
	notes = append(notes, "user.max_user_namespaces="+strconv.Itoa(max))
	if v := explain.ReadInt("/proc/sys/kernel/unprivileged_userns_clone"); v >= 0 {
		notes = append(notes, "kernel.unprivileged_userns_clone="+strconv.Itoa(v))
	}
	if v := explain.ReadInt("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); v >= 0 {
		notes = append(notes, "kernel.apparmor_restrict_unprivileged_userns="+strconv.Itoa(v))
	}
	detail := strings.Join(notes, ", ")
	// The probe: a user namespace with this user mapped to root, which
	// then mounts a tmpfs (what apparmor_restrict_unprivileged_userns
	// breaks after unshare itself succeeded).
	err := child(unix.CLONE_NEWUSER|unix.CLONE_NEWNS, "/bin/sh", "-c", "mount -t tmpfs none /tmp 2>&1 || mount -t tmpfs none /tmp")
	switch {
	case err == nil:
		p.add("user namespaces", OK, "created one, wrote its maps, mounted in it; "+detail, "")
	case max == 0:
		d, fix := explainErr(explain.UnshareUser, unix.ENOSPC)
		p.add("user namespaces", Fail, d+"; "+detail, fix)
	default:
		var errno unix.Errno
		if !errors.As(err, &errno) {
			// unshare worked, the mount inside did not: the AppArmor trap.
			fix := ""
			if x, ok := explain.Lookup(explain.UnshareUser, unix.EPERM, &explain.Facts{AppArmorRestrict: explain.ReadInt("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")}); ok && x.ID == "userns-apparmor-restrict" {
				fix = x.Fix
			}
			p.add("user namespaces", Fail, "created, but cannot mount inside: "+err.Error()+"; "+detail, fix)
			return
		}
		d, fix := explainErr(explain.UnshareUser, err)
		p.add("user namespaces", Fail, d+"; "+detail, fix)
	}
}

func subRange(file, name, uid string) (int, bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	total := 0
	found := false
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 3 && (f[0] == name || f[0] == uid) {
			n, _ := strconv.Atoi(f[2])
			total += n
			found = true
		}
	}
	return total, found
}

func (p *prober) subids() {
	u := currentUser()
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		n, ok := subRange(f, u.Username, u.Uid)
		switch {
		case !ok:
			x, _ := explain.Lookup(explain.NewUIDMap, unix.EPERM, &explain.Facts{})
			p.add(f, Warn, "no range for "+u.Username+": only your own id can be mapped", x.Fix)
		case n < 65536:
			p.add(f, Warn, fmt.Sprintf("%d ids for %s: fewer than the 65536 most images need", n, u.Username), "usermod --add-subuids/--add-subgids a range of 65536")
		default:
			p.add(f, OK, fmt.Sprintf("%d ids for %s", n, u.Username), "")
		}
	}
}

func (p *prober) uidmapTools() {
	for _, t := range []string{"newuidmap", "newgidmap"} {
		path, err := exec.LookPath(t)
		if err != nil {
			s := Warn
			if p.o.Rootless {
				s = Fail
			}
			p.add(t, s, "not installed: rootless containers can map only one id", "apt-get install uidmap")
			continue
		}
		if !explain.Privileged(path) {
			x, _ := explain.Lookup(explain.NewUIDMap, unix.EPERM, &explain.Facts{NewUIDMapNoPriv: true})
			p.add(t, Fail, path+": "+x.Cause, x.Fix)
			continue
		}
		p.add(t, OK, path+" is setuid or has file capabilities", "")
	}
}

func (p *prober) overlay() {
	opts := []string{}
	for _, o := range []string{"redirect_dir", "metacopy", "index", "xino_auto"} {
		if data, err := os.ReadFile("/sys/module/overlay/parameters/" + o); err == nil {
			opts = append(opts, o+"="+strings.TrimSpace(string(data)))
		}
	}
	dir, err := os.MkdirTemp("", "hako-doctor-ovl-")
	if err != nil {
		p.add("overlayfs in userns", Warn, err.Error(), "")
		return
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"l", "u", "w", "m"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	script := fmt.Sprintf("mount -t overlay -o lowerdir=%[1]s/l,upperdir=%[1]s/u,workdir=%[1]s/w,userxattr none %[1]s/m", dir)
	err = child(unix.CLONE_NEWUSER|unix.CLONE_NEWNS, "/bin/sh", "-c", script)
	defaults := "module defaults: " + strings.Join(opts, " ")
	if err != nil {
		d, fix := explainErr(explain.MountOverlay, err)
		p.add("overlayfs in userns", Warn, d+"; "+defaults, fix+" (fuse-overlayfs works without it)")
		return
	}
	p.add("overlayfs in userns", OK, "mounted one; "+defaults, "")
}

// idmapped clones the mount holding path and gives it an idmap from a
// fresh user namespace, without attaching it anywhere.
func (p *prober) idmapped(flag, path string) {
	name := "idmapped mount " + flag
	if path == "" {
		return
	}
	for {
		if _, err := os.Stat(path); err == nil || path == "/" {
			break
		}
		path = filepath.Dir(path)
	}
	var sfs unix.Statfs_t
	unix.Statfs(path, &sfs)
	fsname := fmt.Sprintf("fs magic 0x%x", sfs.Type)
	tree, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		d, fix := explainErr(explain.OpenTree, err)
		s := Fail
		if os.Geteuid() != 0 {
			s = Warn
		}
		p.add(name, s, path+": "+d, fix)
		return
	}
	defer unix.Close(tree)
	cmd := exec.Command("/bin/sh", "-c", "read x")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}}
	w, err := cmd.StdinPipe()
	if err == nil {
		err = nsenter.WithCallerSlack(cmd.Start)
	}
	if err != nil {
		p.add(name, Warn, "cannot make a user namespace for the idmap: "+err.Error(), "")
		return
	}
	defer func() { w.Close(); cmd.Wait() }()
	userns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		p.add(name, Warn, err.Error(), "")
		return
	}
	defer unix.Close(userns)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		f := explain.Gather()
		f.Tags = []string{"detached"}
		d := explain.WrapFacts(explain.MountSetattr, path, err, f).Error()
		x, _ := explain.Lookup(explain.MountSetattr, unix.EINVAL, f)
		p.add(name, Warn, d+" ("+fsname+")", x.Fix)
		return
	}
	p.add(name, OK, path+": the filesystem accepts idmapped mounts ("+fsname+")", "")
}

func (p *prober) cgroups() {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		p.add("cgroups", Fail, "/sys/fs/cgroup: "+err.Error(), "mount cgroup2 on /sys/fs/cgroup")
		return
	}
	mode := "v1"
	unified := ""
	switch {
	case st.Type == unix.CGROUP2_SUPER_MAGIC:
		mode, unified = "v2", "/sys/fs/cgroup"
	default:
		var u unix.Statfs_t
		if unix.Statfs("/sys/fs/cgroup/unified", &u) == nil && u.Type == unix.CGROUP2_SUPER_MAGIC {
			mode, unified = "hybrid", "/sys/fs/cgroup/unified"
		}
	}
	var v1 []string
	if data, err := os.ReadFile("/proc/cgroups"); err == nil {
		for _, l := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) == 4 && f[1] != "0" && f[3] == "1" {
				v1 = append(v1, f[0])
			}
		}
	}
	var v2 string
	if unified != "" {
		data, _ := os.ReadFile(unified + "/cgroup.controllers")
		v2 = strings.TrimSpace(string(data))
	}
	s, fix := OK, ""
	if mode == "v1" {
		s, fix = Warn, "boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2"
	}
	p.add("cgroup mode", s, fmt.Sprintf("%s; v1 hierarchies: %s; cgroup2 controllers: %q", mode, strings.Join(v1, " "), v2), fix)
	if mode == "hybrid" && strings.Contains(" "+v2+" ", " hugetlb ") {
		p.add("hybrid hugetlb", Warn, "hugetlb is bound to the cgroup2 tree of a hybrid host; crun refuses such hosts, hako and runc manage it as v2", "pass cgroup_no_v1=hugetlb consistently or use pure v2")
	}
	if p.o.Rootless && unified != "" {
		data, _ := os.ReadFile("/proc/self/cgroup")
		own := ""
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "0::") {
				own = strings.TrimPrefix(l, "0::")
			}
		}
		dir := filepath.Join(unified, own)
		if unix.Access(dir+"/cgroup.procs", unix.W_OK) != nil {
			p.add("cgroup delegation", Warn, dir+" is not delegated to this user: rootless containers get no resource limits", "run under a systemd user session with Delegate=yes (systemd-run --user -p Delegate=yes)")
		} else {
			sub, _ := os.ReadFile(dir + "/cgroup.subtree_control")
			p.add("cgroup delegation", OK, dir+" is writable; delegated: "+strings.TrimSpace(string(sub)), "")
		}
	}
}

func (p *prober) systemd() {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		comm, _ := os.ReadFile("/proc/1/comm")
		p.add("systemd", OK, fmt.Sprintf("not running (PID 1 is %s): engines should use the cgroupfs driver", strings.TrimSpace(string(comm))), "")
		return
	}
	p.add("systemd", OK, "running: engines will ask for --systemd-cgroup, which hako's systemd driver handles (units over D-Bus)", "")
}

func (p *prober) capabilities() {
	mask, _ := strconv.ParseUint(explain.StatusField(0, "CapBnd"), 16, 64)
	all := security.AllCapsMask()
	if missing := security.CapNames(all &^ mask); len(missing) > 0 {
		detail := "missing from the bounding set: " + strings.Join(missing, " ")
		if mask&(1<<unix.CAP_SYS_RESOURCE) == 0 {
			detail += " (without CAP_SYS_RESOURCE rlimits above the current hard limits cannot be set)"
		}
		p.add("capability bounding set", Warn, detail, "containers here cannot be given these capabilities; keep rlimits within the current hard limits")
		return
	}
	p.add("capability bounding set", OK, "complete", "")
}

func (p *prober) seccomp() {
	if _, _, e := unix.Syscall(unix.SYS_PRCTL, unix.PR_GET_SECCOMP, 0, 0); e != 0 {
		p.add("seccomp", Fail, "prctl(PR_GET_SECCOMP): "+e.Error(), "enable CONFIG_SECCOMP_FILTER")
		return
	}
	acts, _ := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	a := strings.TrimSpace(string(acts))
	mode := explain.StatusField(0, "Seccomp")
	extra := ""
	if mode == "2" {
		extra = "; this process is itself under a seccomp filter (an outer container): unshare/clone3/mount may be refused"
	}
	if !strings.Contains(a, "user_notif") {
		p.add("seccomp", Warn, "no SECCOMP_RET_USER_NOTIF: "+a+extra, "Linux 5.0+")
		return
	}
	p.add("seccomp", OK, "filters and user notification: "+a+extra, "")
}

func (p *prober) syscalls() {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		p.add("pidfd", Warn, "pidfd_open: "+err.Error(), "Linux 5.3+")
	} else {
		unix.Close(fd)
		p.add("pidfd", OK, "pidfd_open works", "")
	}
	// clone3 with a zero size is refused with EINVAL where it exists.
	_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	switch e {
	case unix.EINVAL, unix.E2BIG, unix.EFAULT:
		s, d := OK, "clone3 exists"
		var u unix.Statfs_t
		if unix.Statfs("/sys/fs/cgroup", &u) != nil || u.Type != unix.CGROUP2_SUPER_MAGIC {
			if unix.Statfs("/sys/fs/cgroup/unified", &u) != nil || u.Type != unix.CGROUP2_SUPER_MAGIC {
				s, d = Warn, "clone3 exists, but CLONE_INTO_CGROUP needs a cgroup2 hierarchy"
			}
		}
		p.add("clone3", s, d+" (CLONE_INTO_CGROUP since 5.7)", "")
	default:
		d, fix := explainErr(explain.Clone3, e)
		p.add("clone3", Warn, d, fix)
	}
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		d, fix := explainErr(explain.FSOpen, err)
		p.add("new mount API", Warn, d, fix)
	} else {
		unix.Close(fs)
		err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{})
		if errors.Is(err, unix.ENOSYS) {
			p.add("new mount API", Warn, "fsopen works, mount_setattr is missing (5.12)", "upgrade the kernel")
		} else {
			p.add("new mount API", OK, "fsopen, open_tree, move_mount, mount_setattr", "")
		}
	}
}

func (p *prober) lsm() {
	var on []string
	if security.AppArmorEnabled() {
		on = append(on, "AppArmor")
	}
	if security.SELinuxEnabled() {
		on = append(on, "SELinux")
	}
	lsms, _ := os.ReadFile("/sys/kernel/security/lsm")
	if len(on) == 0 {
		p.add("LSM", OK, "neither AppArmor nor SELinux is enforcing; active LSMs: "+strings.TrimSpace(string(lsms)), "")
		return
	}
	p.add("LSM", OK, strings.Join(on, ", ")+" enabled; active LSMs: "+strings.TrimSpace(string(lsms)), "")
}

func (p *prober) procMount() {
	dir, err := os.MkdirTemp("", "hako-doctor-proc-")
	if err != nil {
		return
	}
	defer os.RemoveAll(dir)
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS)
	if os.Geteuid() != 0 {
		flags |= unix.CLONE_NEWUSER
	}
	err = child(flags, "/bin/sh", "-c", "mount -t proc proc "+dir)
	if err != nil {
		f := explain.Gather()
		f.InitUserNS = flags&unix.CLONE_NEWUSER == 0 && f.InitUserNS
		d := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			d = strings.TrimSpace(string(ee.Stderr))
		}
		x, _ := explain.Lookup(explain.MountProc, unix.EPERM, f)
		p.add("proc mount", Fail, "a new proc cannot be mounted here: "+d+" ("+x.Cause+")", x.Fix)
		return
	}
	p.add("proc mount", OK, "mounted a new proc in a new PID namespace", "")
}

func (p *prober) propagation() {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 6 && f[4] == "/" {
			var o []string
			for _, x := range f[6:] {
				if x == "-" {
					break
				}
				o = append(o, x)
			}
			opt := strings.Join(o, " ")
			if strings.Contains(opt, "shared:") {
				p.add("/ propagation", OK, "/ is shared ("+opt+"): a new mount namespace leaks mounts to the host until it makes / rslave or rprivate, which hako does (seed 003)", "")
			} else {
				p.add("/ propagation", OK, "/ is not shared ("+"private"+")", "")
			}
			return
		}
	}
}

type account struct{ Username, Uid string }

// currentUser reads /etc/passwd itself: os/user would pull cgo's NSS
// lookups into hako's static binary.
func currentUser() account {
	uid := strconv.Itoa(os.Geteuid())
	a := account{Username: uid, Uid: uid}
	data, _ := os.ReadFile("/etc/passwd")
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[2] == uid {
			a.Username = f[0]
		}
	}
	return a
}
