package plan

import (
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/linux/security"
	"github.com/hako-runtime/hako/internal/spec"
)

func ops(p *Plan) []Op {
	out := make([]Op, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Op
	}
	return out
}

func find(p *Plan, op Op) []Step {
	var out []Step
	for _, s := range p.Steps {
		if s.Op == op {
			out = append(out, s)
		}
	}
	return out
}

func baseSpec() *specs.Spec {
	return &specs.Spec{
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/", User: specs.User{UID: 1, GID: 2}},
		Root:    &specs.Root{Path: "rootfs"},
		Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}},
	}
}

func compile(t *testing.T, s *specs.Spec, edit func(*OCI)) *Plan {
	t.Helper()
	in := &OCI{Spec: s, Bundle: "/b", Rootfs: "/b/rootfs"}
	if edit != nil {
		edit(in)
	}
	p, err := FromSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runc's default config compiles to the order runc applies it in.
func TestFromSpecDefaultOrder(t *testing.T) {
	p := compile(t, spec.Default(false), nil)
	got := ops(p)
	idx := func(op Op) int {
		for i, o := range got {
			if o == op {
				return i
			}
		}
		t.Fatalf("no %s step in %v", op, got)
		return -1
	}
	order := []Op{OpUmask, OpPropagation, OpBindRoot, OpMount, OpDev, OpLoopback, OpHostname,
		OpPivotRoot, OpSetsid, OpDir, OpMask, OpReadonly, OpRemountRO, OpKeyring, OpCloseFds, OpCwd, OpNoNewPrivs,
		OpRlimit, OpBounding, OpUser, OpCaps, OpCwdAsUser, OpLookup, OpReady, OpWaitStart, OpExec}
	for i := 1; i < len(order); i++ {
		if idx(order[i-1]) > idx(order[i]) {
			t.Errorf("%s after %s: %v", order[i-1], order[i], got)
		}
	}
	if got[len(got)-1] != OpExec {
		t.Errorf("last step %s, want exec", got[len(got)-1])
	}
	for _, s := range p.Steps {
		if s.FD != NoFD {
			t.Errorf("%s: fd %d before the parent attached any", s.Op, s.FD)
		}
	}
}

func TestFromSpecFields(t *testing.T) {
	u := uint32(0o077)
	tests := []struct {
		name  string
		edit  func(s *specs.Spec, in *OCI)
		check func(t *testing.T, p *Plan)
	}{
		{"no mount namespace: chroot, no mounts", func(s *specs.Spec, in *OCI) { s.Linux.Namespaces = nil }, func(t *testing.T, p *Plan) {
			if len(find(p, OpChroot)) != 1 || len(find(p, OpMount)) != 0 || len(find(p, OpPivotRoot)) != 0 {
				t.Errorf("%v", ops(p))
			}
		}},
		{"--no-pivot", func(s *specs.Spec, in *OCI) { in.NoPivot = true }, func(t *testing.T, p *Plan) {
			if len(find(p, OpMoveRoot)) != 1 || len(find(p, OpPivotRoot)) != 0 {
				t.Errorf("%v", ops(p))
			}
		}},
		{"relative bind source joins the bundle", func(s *specs.Spec, in *OCI) {
			s.Mounts = []specs.Mount{{Destination: "/data", Source: "vol", Options: []string{"rbind", "ro"}}}
		}, func(t *testing.T, p *Plan) {
			m := find(p, OpMount)[0].Mount
			if m.Kind != rootfs.KindBind || m.Source != "/b/vol" || !m.Options.Recursive || m.Options.Attr&unix.MOUNT_ATTR_RDONLY == 0 {
				t.Errorf("%+v", m)
			}
		}},
		{"idmap mount", func(s *specs.Spec, in *OCI) {
			s.Mounts = []specs.Mount{{Destination: "/x", Source: "/src", Type: "bind", Options: []string{"idmap"}}}
		}, func(t *testing.T, p *Plan) {
			if m := find(p, OpMount)[0].Mount; m.Kind != rootfs.KindIDMap || !m.Options.Bind {
				t.Errorf("%+v", m)
			}
		}},
		{"uidMappings make an idmap mount", func(s *specs.Spec, in *OCI) {
			s.Mounts = []specs.Mount{{Destination: "/x", Source: "/src", Type: "bind", UIDMappings: []specs.LinuxIDMapping{{Size: 1}}}}
		}, func(t *testing.T, p *Plan) {
			if m := find(p, OpMount)[0].Mount; m.Kind != rootfs.KindIDMap || len(m.UIDMappings) != 1 {
				t.Errorf("%+v", m)
			}
		}},
		{"read-only /dev is made read-only after the masks' /dev/null exists", func(s *specs.Spec, in *OCI) {
			s.Mounts = []specs.Mount{{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro"}}}
		}, func(t *testing.T, p *Plan) {
			m := find(p, OpMount)[0].Mount
			if m.Options.Attr&unix.MOUNT_ATTR_RDONLY != 0 {
				t.Errorf("/dev mounted read-only at once")
			}
			ro := find(p, OpRemountRO)
			if len(ro) != 1 || ro[0].Path != "/dev" || len(find(p, OpDev)) != 1 {
				t.Errorf("%v", ops(p))
			}
		}},
		{"cgroup mount kind", func(s *specs.Spec, in *OCI) {
			s.Mounts = []specs.Mount{{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"}}
			in.Cgroups = []rootfs.CgroupMount{{HostPath: "/sys/fs/cgroup/x"}}
		}, func(t *testing.T, p *Plan) {
			if find(p, OpMount)[0].Mount.Kind != rootfs.KindCgroup || len(find(p, OpBindRoot)[0].Cgroups) != 1 {
				t.Errorf("%+v", p.Steps)
			}
		}},
		{"rootless without cgroupns: cgroup view read-only (CVE-2023-25809)", func(s *specs.Spec, in *OCI) {
			s.Mounts = []specs.Mount{{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"}}
			in.Rootless = true
		}, func(t *testing.T, p *Plan) {
			if find(p, OpMount)[0].Mount.Options.Attr&unix.MOUNT_ATTR_RDONLY == 0 {
				t.Errorf("writable")
			}
		}},
		{"rootless with cgroupns: as configured", func(s *specs.Spec, in *OCI) {
			s.Mounts = []specs.Mount{{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"}}
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
			in.Rootless = true
		}, func(t *testing.T, p *Plan) {
			if find(p, OpMount)[0].Mount.Options.Attr&unix.MOUNT_ATTR_RDONLY != 0 {
				t.Errorf("read-only")
			}
		}},
		{"propagation: unbindable early is rprivate, configured value last", func(s *specs.Spec, in *OCI) {
			s.Linux.RootfsPropagation = "runbindable"
		}, func(t *testing.T, p *Plan) {
			pr := find(p, OpPropagation)
			if len(pr) != 2 || pr[0].Flags != unix.MS_PRIVATE|unix.MS_REC || pr[1].Flags != unix.MS_UNBINDABLE|unix.MS_REC {
				t.Errorf("%+v", pr)
			}
		}},
		{"the rootfs's parent mount is checked only where / was not made rprivate or rslave", func(s *specs.Spec, in *OCI) {
			s.Linux.RootfsPropagation = "rshared"
		}, func(t *testing.T, p *Plan) {
			if len(find(p, OpParentPrivate)) != 1 {
				t.Errorf("rshared: %v", ops(p))
			}
			for prop, want := range map[string]int{"": 0, "rprivate": 0, "rslave": 0, "runbindable": 0, "private": 1, "slave": 1, "shared": 1} {
				s := spec.Default(false)
				s.Root.Path = "rootfs"
				s.Linux.RootfsPropagation = prop
				q, err := FromSpec(&OCI{Spec: s, Bundle: "/b", Rootfs: "/b/rootfs"})
				if err != nil {
					t.Fatal(err)
				}
				if got := len(find(q, OpParentPrivate)); got != want {
					t.Errorf("rootfsPropagation %q: %d parent-private steps, want %d", prop, got, want)
				}
			}
		}},
		{"sysctls in name order, in SysctlPath's form", func(s *specs.Spec, in *OCI) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "9", "net/ipv4/conf/eno2.100/rp_filter": "0"}
		}, func(t *testing.T, p *Plan) {
			var got []string
			for _, st := range find(p, OpSysctl) {
				got = append(got, st.Path+"="+st.Value)
			}
			want := []string{"kernel/shmmax=9", "net/ipv4/ip_forward=1", "net/ipv4/conf/eno2.100/rp_filter=0"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%v", got)
			}
		}},
		{"hostname only with a UTS namespace", func(s *specs.Spec, in *OCI) { s.Hostname = "h"; s.Domainname = "d" }, func(t *testing.T, p *Plan) {
			if len(find(p, OpHostname))+len(find(p, OpDomainname)) != 0 {
				t.Errorf("%v", ops(p))
			}
		}},
		{"hostname and domainname", func(s *specs.Spec, in *OCI) {
			s.Hostname, s.Domainname = "h", "d"
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace})
		}, func(t *testing.T, p *Plan) {
			if find(p, OpHostname)[0].Value != "h" || find(p, OpDomainname)[0].Value != "d" {
				t.Errorf("%v", ops(p))
			}
		}},
		{"network namespace joined: no loopback", func(s *specs.Spec, in *OCI) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"})
		}, func(t *testing.T, p *Plan) {
			if len(find(p, OpLoopback)) != 0 {
				t.Errorf("%v", ops(p))
			}
		}},
		{"hooks", func(s *specs.Spec, in *OCI) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/a"}}, CreateContainer: []specs.Hook{{Path: "/b"}}, StartContainer: []specs.Hook{{Path: "/c"}}}
		}, func(t *testing.T, p *Plan) {
			if len(find(p, OpRuntimeHooks)) != 1 {
				t.Errorf("%v", ops(p))
			}
			h := find(p, OpHooks)
			if len(h) != 2 || h[0].Value != "createContainer" || h[0].Path != "/b/rootfs" || h[1].Value != "startContainer" {
				t.Errorf("%+v", h)
			}
			p.SetHookState(func() []byte { return []byte("creating") }, func() []byte { return []byte("created") })
			h = find(p, OpHooks)
			if string(h[0].State) != "creating" || string(h[1].State) != "created" {
				t.Errorf("states %q %q", h[0].State, h[1].State)
			}
		}},
		{"terminal: console binds /dev/console", func(s *specs.Spec, in *OCI) { s.Process.Terminal = true }, func(t *testing.T, p *Plan) {
			c := find(p, OpConsole)
			if len(c) != 1 || c[0].Value != "dev-console" || c[0].UID != 1 {
				t.Errorf("%+v", c)
			}
		}},
		{"masked, read-only paths and root", func(s *specs.Spec, in *OCI) {
			s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Root.Readonly = []string{"/m"}, []string{"/r"}, true
		}, func(t *testing.T, p *Plan) {
			if find(p, OpMask)[0].Path != "/m" || find(p, OpReadonly)[0].Path != "/r" || find(p, OpRemountRO)[0].Path != "/" {
				t.Errorf("%v", ops(p))
			}
		}},
		{"--no-new-keyring", func(s *specs.Spec, in *OCI) { in.NoNewKeyring = true }, func(t *testing.T, p *Plan) {
			if len(find(p, OpKeyring)) != 0 {
				t.Errorf("%v", ops(p))
			}
		}},
		{"personality", func(s *specs.Spec, in *OCI) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, func(t *testing.T, p *Plan) {
			if find(p, OpPersonality)[0].Flags != 8 {
				t.Errorf("%+v", find(p, OpPersonality))
			}
		}},
		{"preserved and listen fds", func(s *specs.Spec, in *OCI) { in.PreserveFds, in.ListenFds = 3, 2 }, func(t *testing.T, p *Plan) {
			if find(p, OpCloseFds)[0].Flags != 6 {
				t.Errorf("close from %d", find(p, OpCloseFds)[0].Flags)
			}
			env := strings.Join(find(p, OpLookup)[0].Exec.Env, " ")
			if !strings.Contains(env, "LISTEN_FDS=2") || !strings.Contains(env, "LISTEN_PID=1") {
				t.Errorf("env %s", env)
			}
		}},
		{"umask, user, lsm labels, rlimits", func(s *specs.Spec, in *OCI) {
			s.Process.User.Umask = &u
			s.Process.ApparmorProfile, s.Process.SelinuxLabel = "prof", "label"
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NPROC", Soft: 1, Hard: 2}}
		}, func(t *testing.T, p *Plan) {
			um := find(p, OpUmask)
			if um[len(um)-1].Mode != 0o077 || find(p, OpAppArmor)[0].Value != "prof" || find(p, OpSELinux)[0].Value != "label" {
				t.Errorf("%+v", p.Steps)
			}
			if r := find(p, OpRlimit)[0].Rlimit; r.Resource != 6 || r.Soft != 1 || r.Hard != 2 {
				t.Errorf("%+v", r)
			}
			if us := find(p, OpUser)[0].User; us.UID != 1 || us.GID != 2 {
				t.Errorf("%+v", us)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSpec()
			in := &OCI{Spec: s, Bundle: "/b", Rootfs: "/b/rootfs"}
			tc.edit(s, in)
			p, err := FromSpec(in)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

func TestFromSpecErrors(t *testing.T) {
	for name, edit := range map[string]func(*specs.Spec){
		"personality": func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "PER_BSD"} },
		"rlimit":      func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}} },
		"propagation": func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" },
		"sysctl":      func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net..x": "1"} },
		"bind data": func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "bind", Source: "/s", Options: []string{"rbind", "size=1m"}})
		},
		"idmap= data": func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "bind", Source: "/s", Options: []string{"idmap=uids=0-1-1;gids=0-1-1", "mode=0755"}})
		},
		"idmap= bad": func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "bind", Source: "/s", Options: []string{"idmap=uids=0-1-1"}})
		},
	} {
		s := baseSpec()
		edit(s)
		if _, err := FromSpec(&OCI{Spec: s, Rootfs: "/r"}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Seccomp goes before the user switch without no_new_privs (loading then
// needs CAP_SYS_ADMIN), last with it; exec gets the same process steps.
func TestSeccompPlacement(t *testing.T) {
	f := &security.Seccomp{}
	for _, nnp := range []bool{false, true} {
		s := baseSpec()
		s.Process.NoNewPrivileges = nnp
		p := compile(t, s, func(in *OCI) { in.Seccomp = f })
		got := ops(p)
		sc, user, lookup := -1, -1, -1
		for i, o := range got {
			switch o {
			case OpSeccomp:
				sc = i
			case OpUser:
				user = i
			case OpLookup:
				lookup = i
			}
		}
		if !nnp && !(sc < user) || nnp && !(sc > lookup) {
			t.Errorf("nnp=%t: %v", nnp, got)
		}
		e, err := ForExec(s.Process, f, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(find(e, OpSeccomp)) != 1 || e.Kind != KindExec || len(find(e, OpWaitStart)) != 0 {
			t.Errorf("exec: %v", ops(e))
		}
	}
}

// The bwrap and systemd front ends' kinds print, so --debug shows them.
func TestStepStrings(t *testing.T) {
	perms := uint32(0o700)
	for _, c := range []struct {
		s    Step
		want string
	}{
		{Step{Op: OpMount, FD: NoFD, Mount: &rootfs.Mount{Kind: "tmpfs", Type: "tmpfs", Destination: "/tmp", Size: 1 << 20, Perms: &perms}}, "mount tmpfs on /tmp size=1048576 perms=0700"},
		{Step{Op: OpFile, FD: 0, Path: "/etc/passwd", Mode: 0o644}, "file /etc/passwd 0644 fd#0"},
		{Step{Op: OpBindData, FD: 1, Path: "/x", ReadOnly: true}, "bind-data /x fd#1 ro"},
		{Step{Op: OpSymlink, FD: NoFD, Path: "/lib", Value: "usr/lib"}, "symlink /lib usr/lib"},
		{Step{Op: OpChmod, FD: NoFD, Path: "/x", Mode: 0o755}, "chmod /x 0755"},
		{Step{Op: OpRemountRO, FD: NoFD, Path: "/usr"}, "remount-ro /usr"},
		{Step{Op: OpDir, FD: NoFD, Path: "/run/user", Mode: 0o700}, "dir /run/user 0700"},
	} {
		if got := c.s.String(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// The close-fds step's keep list is read in one place, by the Go handler
// and by nsexec.c's plan encoder alike.
func TestStepKeepFds(t *testing.T) {
	for v, want := range map[string][]int{"": nil, "3": {3}, "3,5,9": {3, 5, 9}} {
		s := Step{Op: OpCloseFds, Value: v}
		got, err := s.KeepFds()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %v, %v; want %v", v, got, err, want)
		}
	}
	if _, err := (&Step{Op: OpCloseFds, Value: "3,x"}).KeepFds(); err == nil || err.Error() != `fd "x" to keep: strconv.Atoi: parsing "x": invalid syntax` {
		t.Errorf("bad fd: %v", err)
	}
}
