package sandbox

import (
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

func compile(t *testing.T, uid uint32, props ...string) (*Sandbox, error) {
	t.Helper()
	return compileIn(t, &Input{Args: []string{"sh"}, Cwd: "/", UID: uid, GID: uid, HostNS: map[string]uint64{"pid": 1, "mnt": 2, "net": 3}}, props...)
}

func compileIn(t *testing.T, in *Input, props ...string) (*Sandbox, error) {
	t.Helper()
	for _, p := range props {
		pr, err := ParseAssignment(p, "-p")
		if err != nil {
			return nil, err
		}
		in.Props = append(in.Props, pr)
	}
	return Compile(in)
}

func TestEveryRowHasHelp(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Table() {
		if r.Help == "" || seen[r.Name] {
			t.Errorf("row %s: no help or duplicate", r.Name)
		}
		seen[r.Name] = true
		if r.Apply == nil && !strings.Contains(r.Help, "not supported") {
			t.Errorf("row %s: unimplemented but its help does not say so", r.Name)
		}
	}
}

func TestUnsupportedIsAnError(t *testing.T) {
	for _, r := range Table() {
		if r.Apply != nil {
			continue
		}
		_, err := compile(t, 0, r.Name+"=yes")
		want := "property " + r.Name + " is not supported yet"
		if r.Refuse != "" {
			want = "property " + r.Name + " is not supported (" + r.Refuse + ")"
		}
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v", r.Name, err)
		}
	}
}

func TestPrivateTmpAndStrict(t *testing.T) {
	sb, err := compile(t, 1000, "PrivateTmp=yes", "ProtectSystem=strict", "ReadWritePaths=/srv")
	if err != nil {
		t.Fatal(err)
	}
	var tmpfs []string
	for _, m := range sb.Spec.Mounts {
		if m.Type == "tmpfs" {
			tmpfs = append(tmpfs, m.Destination)
		}
	}
	if strings.Join(tmpfs, " ") != "/tmp /var/tmp" {
		t.Errorf("tmpfs mounts %v", tmpfs)
	}
	if sb.Trees[0] != (Tree{Path: "/", ReadOnly: true}) {
		t.Errorf("strict does not start with / read-only: %+v", sb.Trees)
	}
	last := map[string]bool{}
	for _, tr := range sb.Trees {
		last[tr.Path] = tr.ReadOnly
	}
	for _, p := range []string{"/dev", "/proc", "/sys", "/srv", "/tmp", "/var/tmp"} {
		if ro, ok := last[p]; !ok || ro {
			t.Errorf("%s not made writable again", p)
		}
	}
	if sb.Spec.Linux.UIDMappings[0].HostID != 1000 || sb.Spec.Linux.UIDMappings[0].ContainerID != 1000 {
		t.Errorf("unprivileged map %+v", sb.Spec.Linux.UIDMappings)
	}
	pl, err := sb.Plan(&plan.OCI{})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, s := range pl.Steps {
		ops = append(ops, string(s.Op))
	}
	o := strings.Join(ops, " ")
	for _, want := range []string{"propagation hold-bind-sources stage-host-root bind-root", "pivot-root tree-ro", "pdeathsig verify ready exec"} {
		if !strings.Contains(o, want) {
			t.Errorf("plan lacks %q: %s", want, o)
		}
	}
	if strings.Contains(o, "wait-start") {
		t.Errorf("plan waits for start: %s", o)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct{ prop, want string }{
		{"Nope=1", "property Nope: unknown (hako sandbox --help lists the properties)"},
		{"PrivateTmp=", "property PrivateTmp: empty value (resetting a list is not supported)"},
		{"ProtectHome=maybe", `property ProtectHome=maybe: "maybe": must be a boolean, read-only or tmpfs`},
		{"BindPaths=/a:/b:bogus", `property BindPaths=/a:/b:bogus: "/a:/b:bogus": option "bogus": must be rbind or norbind`},
		{"LimitNOFILE=10:5", `property LimitNOFILE=10:5: "10:5": soft limit above hard limit`},
		{"Environment=\"A=b", "property Environment=\"A=b: unterminated \" quote"},
		{"User=root", "property User=root: only root may run COMMAND as another user (you are uid 1000: hako sandbox runs as you)"},
		{"ReadOnlyPaths=/a/../b", `property ReadOnlyPaths=/a/../b: path "/a/../b" is not normalized (it would be "/b")`},
	} {
		_, err := compile(t, 1000, c.prop)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.prop, err, c.want)
		}
	}
}

func TestLimitsAndCaps(t *testing.T) {
	sb, err := compile(t, 0, "LimitNOFILE=1K:infinity", "ProtectKernelModules=yes")
	if err != nil {
		t.Fatal(err)
	}
	r := sb.Spec.Process.Rlimits[0]
	if r.Type != "RLIMIT_NOFILE" || r.Soft != 1024 || r.Hard != ^uint64(0) {
		t.Errorf("%+v", r)
	}
	for _, c := range sb.Spec.Process.Capabilities.Bounding {
		if c == "CAP_SYS_MODULE" {
			t.Error("CAP_SYS_MODULE still in the bounding set")
		}
	}
	found := false
	for _, c := range sb.Checks {
		found = found || (c.Kind == receipt.KindCapDropped && c.Value == "16")
	}
	if !found {
		t.Error("no receipt check for CAP_SYS_MODULE")
	}
}

func TestReadUnit(t *testing.T) {
	ps, err := ReadUnit(strings.NewReader("[Unit]\nDescription=a=b\n[Service]\n# c\nPrivateTmp=yes\nReadOnlyPaths=/a \\\n  /b\n[Install]\nWantedBy=x\n"), "u.service")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "PrivateTmp" || ps[1].Value != "/a  /b" || ps[1].Where != "u.service:6" {
		t.Errorf("%+v", ps)
	}
}

// FuzzCompile: no property line may panic the compiler, and every
// accepted one yields a plan.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"PrivateTmp=yes", "ProtectSystem=strict", "BindPaths=-/a:/b:norbind", "Environment=\"A=b c\" 'D=e'", "LimitCPU=1:2", "TemporaryFileSystem=/x:ro,mode=0700", "CapabilityBoundingSet=~CAP_SYS_ADMIN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		sb, err := compile(t, 0, line)
		if err != nil {
			return
		}
		if _, err := sb.Plan(&plan.OCI{}); err != nil {
			t.Errorf("%q compiled but its plan failed: %v", line, err)
		}
	})
}

// RootDirectory: the root and the properties' own paths move inside it;
// ReadOnlyPaths= and its kin are host paths (+PATH: inside), BindPaths'
// sources stay host paths. Order does not matter.
func TestRootDirectory(t *testing.T) {
	sb, err := compile(t, 0, "ReadOnlyPaths=/srv/r/etc -/srv/r/opt +/var", "BindPaths=/home/u/src:/mnt", "PrivateTmp=yes", "MountAPIVFS=yes", "RootDirectory=/srv/r")
	if err != nil {
		t.Fatal(err)
	}
	if sb.Spec.Root.Path != Stage+"/srv/r" || sb.Root != "/srv/r" || sb.Spec.Process.Cwd != "/" {
		t.Errorf("root %q %q cwd %q", sb.Spec.Root.Path, sb.Root, sb.Spec.Process.Cwd)
	}
	var trees, mounts []string
	for _, tr := range sb.Trees {
		trees = append(trees, tr.Path)
	}
	for _, m := range sb.Spec.Mounts {
		mounts = append(mounts, m.Source+">"+m.Destination)
	}
	if got := strings.Join(trees, " "); !strings.HasPrefix(got, "/etc /opt /var") {
		t.Errorf("trees %s", got)
	}
	if got, want := strings.Join(mounts, " "), "proc>/proc /sys>/sys /dev>/dev tmpfs>/run /home/u/src>/mnt tmpfs>/tmp tmpfs>/var/tmp"; got != want {
		t.Errorf("mounts\n got %s\nwant %s", got, want)
	}
	pl, err := sb.Plan(&plan.OCI{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pl.Steps {
		if s.Op == plan.OpBindRoot && s.Path != Stage+"/srv/r" || s.Op == plan.OpStageHostRoot && s.Path != Stage {
			t.Errorf("step %s %s", s.Op, s.Path)
		}
	}
	exists := func(p string) bool { return p != "/srv/r/mnt" }
	if err := sb.CheckHost(exists); err == nil || err.Error() != "mount point /srv/r/mnt: no such file or directory (cause: hako sandbox creates nothing on the host's tree: create it in RootDirectory /srv/r)" {
		t.Errorf("CheckHost: %v", err)
	}
	for _, bad := range []string{"ReadOnlyPaths=/etc", "InaccessiblePaths=/srv/rx", "ReadWritePaths=-/srv"} {
		if _, err := compile(t, 0, "RootDirectory=/srv/r", bad); err == nil || !strings.Contains(err.Error(), "is outside RootDirectory=/srv/r") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	// Without RootDirectory, +PATH is PATH; MountAPIVFS changes nothing.
	sb, err = compile(t, 0, "ReadOnlyPaths=+/etc", "MountAPIVFS=yes")
	if err != nil || sb.Trees[0].Path != "/etc" || len(sb.Spec.Mounts) != 1 || sb.Spec.Root.Path != Stage {
		t.Errorf("%v %+v %d", err, sb.Trees, len(sb.Spec.Mounts))
	}
}
