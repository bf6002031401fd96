package sandbox

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// Row is one property: its systemd name, one line of help, and how a value
// edits the sandbox being built. Apply nil: a property systemd has and hako
// does not honour yet, refused by name rather than ignored.
type Row struct {
	Name  string
	Help  string
	Apply func(b *builder, v string) error
	// Refuse, for a row without Apply, says why it is refused.
	Refuse string
}

// Table is every property `hako sandbox` knows, in systemd.exec(5)'s
// order. One row per property: the meaning of a property is decided here.
// Built on first use: every hako process (a container's init that runs Go
// included) would otherwise build its ~34 KB at start.
var Table = sync.OnceValue(func() []Row {
	t := []Row{
		{Name: "PrivateTmp", Help: "yes: fresh /tmp and /var/tmp only this sandbox sees, gone at exit", Apply: boolProp(func(b *builder) {
			for _, d := range []string{"/tmp", "/var/tmp"} {
				b.tmpfs("PrivateTmp", d, []string{"nosuid", "nodev", "mode=1777"}, false)
			}
		})},
		{Name: "PrivateDevices", Help: "yes: a minimal /dev (null zero full random urandom tty, pts, shm); no CAP_MKNOD, CAP_SYS_RAWIO; @raw-io denied", Apply: boolProp(func(b *builder) {
			b.privateDevices = true
			b.dropCaps("PrivateDevices", "CAP_MKNOD", "CAP_SYS_RAWIO")
			b.sec.rawIO = true
			b.sec.uses("PrivateDevices")
		})},
		{Name: "PrivateNetwork", Help: "yes: a new network namespace with only lo, up", Apply: boolProp(func(b *builder) { b.newNS("PrivateNetwork", specs.NetworkNamespace, "net") })},
		{Name: "PrivateIPC", Help: "yes: a new IPC namespace (SysV IPC, POSIX message queues)", Apply: boolProp(func(b *builder) { b.newNS("PrivateIPC", specs.IPCNamespace, "ipc") })},
		{Name: "PrivateUsers", Help: "yes: a new user namespace (always so for an unprivileged caller)", Apply: boolProp(func(b *builder) {
			b.privateUsers = true
			b.check(receipt.Check{Property: "PrivateUsers", Kind: receipt.KindNewNS, Value: "user", Host: b.in.HostNS["user"]})
		})},
		{Name: "ProtectHostname", Help: "yes: a new UTS namespace; hostname changes stay inside", Apply: boolProp(func(b *builder) { b.newNS("ProtectHostname", specs.UTSNamespace, "uts") })},
		{Name: "ProtectSystem", Help: "yes: /usr /boot /efi read-only; full: and /etc; strict: all but /dev /proc /sys", Apply: protectSystem},
		{Name: "ProtectHome", Help: "yes: /home /root /run/user empty; read-only; tmpfs: empty tmpfs, read-only", Apply: protectHome},
		{Name: "ProtectKernelTunables", Help: "yes: /proc/sys, /proc/sysrq-trigger and /sys read-only", Apply: boolProp(func(b *builder) {
			for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/sys"} {
				b.tree("ProtectKernelTunables", p, true, true)
			}
		})},
		{Name: "ProtectKernelModules", Help: "yes: no CAP_SYS_MODULE; /usr/lib/modules and /lib/modules inaccessible", Apply: boolProp(func(b *builder) {
			b.dropCaps("ProtectKernelModules", "CAP_SYS_MODULE")
			b.inaccessible("ProtectKernelModules", "/usr/lib/modules", "/lib/modules")
		})},
		{Name: "ProtectKernelLogs", Help: "yes: no CAP_SYSLOG; /proc/kmsg and /dev/kmsg inaccessible", Apply: boolProp(func(b *builder) {
			b.dropCaps("ProtectKernelLogs", "CAP_SYSLOG")
			b.inaccessible("ProtectKernelLogs", "/proc/kmsg", "/dev/kmsg")
		})},
		{Name: "ProtectControlGroups", Help: "yes: /sys/fs/cgroup read-only", Apply: boolProp(func(b *builder) { b.tree("ProtectControlGroups", "/sys/fs/cgroup", true, true) })},
		{Name: "ProtectProc", Help: "invisible, noaccess, ptraceable or default: /proc mounted with hidepid= (other users' processes)", Apply: protectProc},
		{Name: "ProcSubset", Help: "pid: /proc shows processes only (subset=pid: no /proc/sys, /proc/meminfo, ...); all: everything", Apply: procSubset},
		{Name: "ReadOnlyPaths", Help: "PATH...: read-only (submounts too); -PATH: ignore if missing", Apply: pathList(func(b *builder, p string, opt bool) { b.tree("ReadOnlyPaths", p, true, opt) })},
		{Name: "ReadWritePaths", Help: "PATH...: writable again below ProtectSystem=strict or ReadOnlyPaths", Apply: pathList(func(b *builder, p string, opt bool) { b.rwPaths = append(b.rwPaths, optPath{p, opt, "ReadWritePaths"}) })},
		{Name: "InaccessiblePaths", Help: "PATH...: covered by an empty read-only directory or the null device", Apply: pathList(func(b *builder, p string, opt bool) { b.inaccessible("InaccessiblePaths", p) })},
		{Name: "BindPaths", Help: "[-]SRC[:DEST[:rbind|norbind]]...: bind mounts", Apply: bindPaths(false)},
		{Name: "BindReadOnlyPaths", Help: "[-]SRC[:DEST[:rbind|norbind]]...: read-only bind mounts", Apply: bindPaths(true)},
		{Name: "TemporaryFileSystem", Help: "PATH[:OPTIONS]...: an empty tmpfs there (OPTIONS: ro, mode=, size=, ...)", Apply: temporaryFS},
		{Name: "WorkingDirectory", Help: "DIR, ~ or -DIR: COMMAND's working directory (default: the caller's)", Apply: workingDirectory},
		{Name: "RootDirectory", Help: "DIR: COMMAND's root; the other paths are inside it but BindPaths' sources and ReadOnly/ReadWrite/InaccessiblePaths (host paths; +PATH: inside)", Apply: rootDirectory},
		{Name: "RootImage", Help: "(not supported: a disk image needs loop devices and dm-verity; mount it and give RootDirectory=)", Refuse: "a disk image needs loop devices and dm-verity checks hako does not do; mount it and give RootDirectory="},
		{Name: "MountAPIVFS", Help: "yes: with RootDirectory, the host's /dev and /sys and an empty /run inside it (/proc is always the sandbox's own)", Apply: boolProp(func(b *builder) { b.apiVFS = true })},
		{Name: "Environment", Help: `"VAR=VALUE"...: set in COMMAND's environment (systemd's quoting)`, Apply: environment},
		{Name: "UnsetEnvironment", Help: "VAR or VAR=VALUE...: remove from COMMAND's environment", Apply: unsetEnvironment},
		{Name: "User", Help: "NAME or UID: run COMMAND as this user (root callers only)", Apply: userProp},
		{Name: "Group", Help: "NAME or GID: run COMMAND with this group (root callers only)", Apply: groupProp},
		{Name: "NoNewPrivileges", Help: "yes: no_new_privs, no privilege gained by execve (setuid, file caps)", Apply: boolProp(func(b *builder) {
			b.spec.Process.NoNewPrivileges = true
			b.check(receipt.Check{Property: "NoNewPrivileges", Kind: receipt.KindStatus, Path: "NoNewPrivs", Value: "1"})
		})},
		{Name: "CapabilityBoundingSet", Help: "[~]CAP...: keep only these capabilities (~: drop these)", Apply: capabilityBoundingSet},
		{Name: "AmbientCapabilities", Help: "[~]CAP...: ambient capabilities COMMAND keeps across execve, also as a non-root User=", Apply: ambientCapabilities},
		{Name: "SystemCallFilter", Help: "[~]SYSCALL|@GROUP...: seccomp allow list (plus @default) or ~deny list; SYSCALL:ERRNO in deny lists", Apply: systemCallFilter},
		{Name: "SystemCallErrorNumber", Help: "ERRNO (name or number) or kill: what a SystemCallFilter violation gets (default: killed by SIGSYS)", Apply: systemCallErrorNumber},
		{Name: "SystemCallArchitectures", Help: "native: syscalls through any other ABI kill the process", Apply: systemCallArchitectures},
		{Name: "RestrictNamespaces", Help: "yes, no, TYPE... or ~TYPE... (cgroup ipc net mnt pid user uts): seccomp on unshare, clone, setns; clone3 gets ENOSYS", Apply: restrictNamespaces},
		{Name: "LockPersonality", Help: "yes: personality(2) may not change the execution domain (EPERM)", Apply: seccompBool("LockPersonality", func(s *seccompState) { s.lockPers = true })},
		{Name: "MemoryDenyWriteExecute", Help: "yes: no writable+executable mmap, no mprotect/shmat to executable (EPERM)", Apply: seccompBool("MemoryDenyWriteExecute", func(s *seccompState) { s.mdwe = true })},
		{Name: "RestrictRealtime", Help: "yes: sched_setscheduler to SCHED_FIFO, SCHED_RR, SCHED_DEADLINE fails (EPERM)", Apply: seccompBool("RestrictRealtime", func(s *seccompState) { s.realtime = true })},
		{Name: "RestrictSUIDSGID", Help: "yes: no file made set-user-ID or set-group-ID (chmod, mkdir, mknod, open O_CREAT: EPERM; openat2: ENOSYS)", Apply: seccompBool("RestrictSUIDSGID", func(s *seccompState) { s.suidSGID = true })},
		{Name: "RestrictAddressFamilies", Help: "[~]AF_...| none: socket(2) of other (~: these) families fails with EAFNOSUPPORT", Apply: restrictAddressFamilies},
		{Name: "IPAddressAllow", Help: "(not supported: systemd's cgroup BPF address filter is not implemented)", Refuse: ipRefusal},
		{Name: "IPAddressDeny", Help: "(not supported: systemd's cgroup BPF address filter is not implemented)", Refuse: ipRefusal},
		{Name: "MemoryMax", Help: "BYTES[K|M|G|T], N% of RAM or infinity: cgroup memory limit (root, or a delegated cgroup v2)", Apply: memoryMax},
		{Name: "MemoryHigh", Help: "BYTES[K|M|G|T], N% or infinity: cgroup v2 memory.high, the throttling limit", Apply: memoryHigh},
		{Name: "TasksMax", Help: "N or infinity: at most N tasks (processes and threads) in the sandbox's cgroup", Apply: tasksMax},
		{Name: "CPUQuota", Help: "N%: CPU time per 100ms period (200% = two CPUs)", Apply: cpuQuota},
		{Name: "CPUWeight", Help: "1..10000: cgroup CPU weight (100 is the default; cpu.shares on cgroup v1)", Apply: cpuWeight},
	}
	// systemd's Limit* properties, one row each, in RLIMIT order.
	for _, l := range limits {
		name := l.prop
		res := l.res
		t = append(t, Row{Name: name, Help: "SOFT[:HARD], infinity: " + res, Apply: func(b *builder, v string) error { return b.limit(res, v) }})
	}
	return t
})

// ipRefusal says why IPAddressAllow/Deny are refused rather than faked:
// PrivateNetwork or a seccomp filter on address families are not the same
// (they cut the loopback, or everything), and a sandbox that claims a
// filter it does not apply is worse than none.
const ipRefusal = "systemd filters addresses with cgroup BPF programs (BPF_CGROUP_INET_INGRESS/EGRESS with LPM maps), which hako does not implement; PrivateNetwork=yes cuts all networking but lo, RestrictAddressFamilies= whole families"

// limits: systemd's Limit* names and their resources.
var limits = []struct{ prop, res string }{
	{"LimitCPU", "RLIMIT_CPU"}, {"LimitFSIZE", "RLIMIT_FSIZE"}, {"LimitDATA", "RLIMIT_DATA"},
	{"LimitSTACK", "RLIMIT_STACK"}, {"LimitCORE", "RLIMIT_CORE"}, {"LimitRSS", "RLIMIT_RSS"},
	{"LimitNOFILE", "RLIMIT_NOFILE"}, {"LimitAS", "RLIMIT_AS"}, {"LimitNPROC", "RLIMIT_NPROC"},
	{"LimitMEMLOCK", "RLIMIT_MEMLOCK"}, {"LimitLOCKS", "RLIMIT_LOCKS"}, {"LimitSIGPENDING", "RLIMIT_SIGPENDING"},
	{"LimitMSGQUEUE", "RLIMIT_MSGQUEUE"}, {"LimitNICE", "RLIMIT_NICE"}, {"LimitRTPRIO", "RLIMIT_RTPRIO"},
	{"LimitRTTIME", "RLIMIT_RTTIME"},
}

// Lookup finds a property's row.
func Lookup(name string) (Row, bool) {
	for _, r := range Table() {
		if r.Name == name {
			return r, true
		}
	}
	return Row{}, false
}

// Names lists the properties, sorted.
func Names() []string {
	out := make([]string, len(Table()))
	for i, r := range Table() {
		out[i] = r.Name
	}
	sort.Strings(out)
	return out
}

// parseBool is systemd's parse_boolean.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (yes/no, true/false, on/off, 1/0)", v)
}

func boolProp(on func(b *builder)) func(b *builder, v string) error {
	return func(b *builder, v string) error {
		yes, err := parseBool(v)
		if err != nil {
			return err
		}
		if yes {
			on(b)
		}
		return nil
	}
}

// words splits a value as systemd's extract_first_word does for these
// properties: on whitespace, with "double" and 'single' quotes and
// backslash escapes.
func words(v string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in := false
	var quote rune
	esc := false
	for _, r := range v {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc, in = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if esc {
		return nil, fmt.Errorf("trailing backslash")
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// absPath checks one path of a property: absolute, clean, and without the
// prefixes systemd has and hako does not take ("+": relative to
// RootDirectory).
func absPath(p string) (string, error) {
	if strings.HasPrefix(p, "+") {
		return "", fmt.Errorf("path %q: the + prefix (relative to RootDirectory) is not supported yet", p)
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	if filepath.Clean(p) != p && filepath.Clean(p)+"/" != p {
		return "", fmt.Errorf("path %q is not normalized (it would be %q)", p, filepath.Clean(p))
	}
	return filepath.Clean(p), nil
}

// pathList is ReadOnlyPaths= and its kin: host paths, which RootDirectory=
// leaves outside unless they lie below it; "+PATH" is relative to
// RootDirectory= (without one the same as PATH). "-" comes before "+".
func pathList(each func(b *builder, p string, optional bool)) func(b *builder, v string) error {
	return func(b *builder, v string) error {
		ws, err := words(v)
		if err != nil {
			return err
		}
		for _, w := range ws {
			opt := strings.HasPrefix(w, "-")
			w = strings.TrimPrefix(w, "-")
			inRoot := strings.HasPrefix(w, "+")
			p, err := absPath(strings.TrimPrefix(w, "+"))
			if err != nil {
				return err
			}
			if !inRoot && b.root != "" {
				rel, ok := strings.CutPrefix(p, b.root)
				if !ok || rel != "" && rel[0] != '/' {
					return fmt.Errorf("path %q is outside RootDirectory=%s, so not in the sandbox (systemd would apply it there unseen); +PATH names a path inside it", p, b.root)
				}
				p = "/" + strings.TrimPrefix(rel, "/")
			}
			each(b, p, opt)
		}
		return nil
	}
}

// rootDirectory: the sandbox's root is DIR instead of the host's; read
// before the other properties (Compile), which it changes the meaning of.
func rootDirectory(b *builder, v string) error {
	p, err := absPath(v)
	if err != nil {
		return err
	}
	if p == "/" {
		b.root = ""
		return nil
	}
	b.root = p
	return nil
}

func protectSystem(b *builder, v string) error {
	var ro []string
	switch v {
	case "strict":
		b.strict = true
		return nil
	case "full":
		ro = []string{"/usr", "/boot", "/efi", "/etc"}
	default:
		yes, err := parseBool(v)
		if err != nil {
			return fmt.Errorf("%q: must be a boolean, full or strict", v)
		}
		if !yes {
			return nil
		}
		ro = []string{"/usr", "/boot", "/efi"}
	}
	for _, p := range ro {
		b.tree("ProtectSystem", p, true, true)
	}
	return nil
}

func protectHome(b *builder, v string) error {
	dirs := []string{"/home", "/root", "/run/user"}
	switch v {
	case "read-only":
		b.protectHome = true
		for _, d := range dirs {
			b.tree("ProtectHome", d, true, true)
		}
		return nil
	case "tmpfs":
		b.protectHome = true
		for _, d := range dirs {
			b.tmpfs("ProtectHome", d, []string{"ro", "nosuid", "nodev", "mode=0755"}, true)
		}
		return nil
	}
	yes, err := parseBool(v)
	if err != nil {
		return fmt.Errorf("%q: must be a boolean, read-only or tmpfs", v)
	}
	if yes {
		b.protectHome = true
		b.inaccessible("ProtectHome", dirs...)
	}
	return nil
}

func bindPaths(ro bool) func(b *builder, v string) error {
	name := "BindPaths"
	if ro {
		name = "BindReadOnlyPaths"
	}
	return func(b *builder, v string) error {
		ws, err := words(v)
		if err != nil {
			return err
		}
		for _, w := range ws {
			opt := strings.HasPrefix(w, "-")
			parts := strings.Split(strings.TrimPrefix(w, "-"), ":")
			if len(parts) > 3 {
				return fmt.Errorf("%q: at most SRC:DEST:OPTIONS", w)
			}
			src, err := absPath(parts[0])
			if err != nil {
				return err
			}
			dst := src
			if len(parts) > 1 && parts[1] != "" {
				if dst, err = absPath(parts[1]); err != nil {
					return err
				}
			}
			opts := []string{"rbind"}
			if len(parts) == 3 {
				switch parts[2] {
				case "rbind", "":
				case "norbind":
					opts = []string{"bind"}
				default:
					return fmt.Errorf("%q: option %q: must be rbind or norbind", w, parts[2])
				}
			}
			b.bind(name, src, dst, opts, ro, opt)
		}
		return nil
	}
}

func temporaryFS(b *builder, v string) error {
	ws, err := words(v)
	if err != nil {
		return err
	}
	for _, w := range ws {
		p, o, _ := strings.Cut(w, ":")
		p, err := absPath(p)
		if err != nil {
			return err
		}
		// systemd.exec(5)'s defaults (and systemd 252's mount, seen in
		// the VM comparison): no nosuid.
		opts := []string{"nodev", "strictatime", "mode=0755"}
		ro := false
		if o != "" {
			for _, x := range strings.Split(o, ",") {
				switch {
				case x == "ro":
					ro = true
				case x == "rw", strings.HasPrefix(x, "mode="), strings.HasPrefix(x, "size="), strings.HasPrefix(x, "nr_inodes="),
					x == "nosuid", x == "nodev", x == "noexec", x == "exec", x == "suid", x == "dev", x == "strictatime", x == "nostrictatime":
				default:
					return fmt.Errorf("%q: mount option %q not supported (ro, rw, mode=, size=, nr_inodes=, [no]exec, [no]suid, [no]dev, [no]strictatime)", w, x)
				}
				if x != "ro" && x != "rw" {
					opts = append(opts, x)
				}
			}
		}
		if ro {
			opts = append(opts, "ro")
		}
		b.tmpfs("TemporaryFileSystem", p, opts, ro)
	}
	return nil
}

func workingDirectory(b *builder, v string) error {
	b.cwdSet = true
	if strings.HasPrefix(v, "-") {
		b.cwdOptional = true
		v = v[1:]
	}
	if v == "~" {
		b.cwdHome = true
		return nil
	}
	p, err := absPath(v)
	if err != nil {
		return err
	}
	b.spec.Process.Cwd = p
	return nil
}

func environment(b *builder, v string) error {
	ws, err := words(v)
	if err != nil {
		return err
	}
	for _, w := range ws {
		k, _, ok := strings.Cut(w, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return fmt.Errorf("%q: not VAR=VALUE", w)
		}
		b.spec.Process.Env = setEnv(b.spec.Process.Env, w)
	}
	return nil
}

func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	out := env[:0:0]
	for _, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek != k {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

func unsetEnvironment(b *builder, v string) error {
	ws, err := words(v)
	if err != nil {
		return err
	}
	for _, w := range ws {
		out := b.spec.Process.Env[:0:0]
		for _, e := range b.spec.Process.Env {
			k, _, _ := strings.Cut(e, "=")
			if e == w || (!strings.Contains(w, "=") && k == w) {
				continue
			}
			out = append(out, e)
		}
		b.spec.Process.Env = out
	}
	return nil
}

func userProp(b *builder, v string) error {
	if b.in.UID != 0 {
		return fmt.Errorf("only root may run COMMAND as another user (you are uid %d: hako sandbox runs as you)", b.in.UID)
	}
	uid, gid, err := b.in.lookupUser(v)
	if err != nil {
		return err
	}
	b.spec.Process.User.UID = uid
	if !b.groupSet {
		b.spec.Process.User.GID = gid
	}
	b.userSet = true
	return nil
}

func groupProp(b *builder, v string) error {
	if b.in.UID != 0 {
		return fmt.Errorf("only root may run COMMAND with another group (you are uid %d)", b.in.UID)
	}
	gid, err := b.in.lookupGroup(v)
	if err != nil {
		return err
	}
	b.spec.Process.User.GID = gid
	b.groupSet = true
	return nil
}

// capByName maps CAP_* names to numbers, from the capability library.
func capByName(name string) (capability.Cap, bool) {
	for _, c := range capability.ListKnown() {
		if "CAP_"+strings.ToUpper(c.String()) == name {
			return c, true
		}
	}
	return 0, false
}

func capabilityBoundingSet(b *builder, v string) error {
	invert := strings.HasPrefix(v, "~")
	ws, err := words(strings.TrimPrefix(v, "~"))
	if err != nil {
		return err
	}
	named := map[string]bool{}
	for _, w := range ws {
		if _, ok := capByName(w); !ok {
			return fmt.Errorf("%q: unknown capability", w)
		}
		named[w] = true
	}
	var drop []string
	for _, c := range capability.ListKnown() {
		n := "CAP_" + strings.ToUpper(c.String())
		if named[n] == invert {
			drop = append(drop, n)
		}
	}
	b.dropCaps("CapabilityBoundingSet", drop...)
	return nil
}

// limit parses systemd's SOFT[:HARD] with "infinity" and, for sizes, the
// 1024-based K, M, G, T suffixes.
func (b *builder) limit(res, v string) error {
	soft, hard, two := strings.Cut(v, ":")
	s, err := limitValue(soft)
	if err != nil {
		return err
	}
	h := s
	if two {
		if h, err = limitValue(hard); err != nil {
			return err
		}
	}
	if s > h {
		return fmt.Errorf("%q: soft limit above hard limit", v)
	}
	for i, r := range b.spec.Process.Rlimits {
		if r.Type == res {
			b.spec.Process.Rlimits = append(b.spec.Process.Rlimits[:i], b.spec.Process.Rlimits[i+1:]...)
			break
		}
	}
	b.spec.Process.Rlimits = append(b.spec.Process.Rlimits, specs.POSIXRlimit{Type: res, Soft: s, Hard: h})
	return nil
}

func limitValue(v string) (uint64, error) {
	if v == "infinity" {
		return ^uint64(0), nil
	}
	mult := uint64(1)
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			v = v[:n-1]
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: not a number, a size (K, M, G, T) or infinity", v)
	}
	if n > ^uint64(0)/mult {
		return 0, fmt.Errorf("%q: too large", v)
	}
	return n * mult, nil
}

// ambientCapabilities follows systemd: a list adds (lines accumulate),
// ~list removes.
func ambientCapabilities(b *builder, v string) error {
	invert := strings.HasPrefix(v, "~")
	ws, err := words(strings.TrimPrefix(v, "~"))
	if err != nil {
		return err
	}
	if b.ambient == nil {
		b.ambient = map[string]bool{}
	}
	for _, w := range ws {
		if _, ok := capByName(w); !ok {
			return fmt.Errorf("%q: unknown capability", w)
		}
		if invert {
			delete(b.ambient, w)
		} else {
			b.ambient[w] = true
		}
	}
	return nil
}

// protectProc: systemd mounts the service's /proc with hidepid=; so does
// hako, on the sandbox's own /proc.
func protectProc(b *builder, v string) error {
	switch v {
	case "invisible", "noaccess", "ptraceable":
		b.procHide = v
	case "default":
		b.procHide = ""
	default:
		return fmt.Errorf("%q: must be invisible, noaccess, ptraceable or default", v)
	}
	return nil
}

func procSubset(b *builder, v string) error {
	switch v {
	case "pid":
		b.procSubset = true
	case "all":
		b.procSubset = false
	default:
		return fmt.Errorf("%q: must be pid or all", v)
	}
	return nil
}

func capabilityList() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}
