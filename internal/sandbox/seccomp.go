package sandbox

//go:generate sh ../../hack/gen-syscall-groups.sh syscallgroups_gen.go

import (
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// The seccomp properties. Each compiles to a filter of its own, loaded
// one after the other, as systemd's exec_child loads one per property: the
// kernel runs every filter and the most restrictive answer wins, so one
// property can never loosen another. Every filter lists only the native
// architecture; a syscall made through another ABI (int 0x80 on x86_64)
// kills the process, which is stricter than systemd unless
// SystemCallArchitectures=native is also given, where it is the same.
//
// The filters are loaded by the sandbox's init after it has set COMMAND's
// credentials, just before the receipt is taken, so the init's last steps
// (the receipt, the fork of COMMAND and its reaping) run under them too: an
// allow list must leave what a Go program needs (@system-service does).

// sysFilter is SystemCallFilter= accumulated over its lines.
type sysFilter struct {
	set   bool
	allow bool
	names map[string]int // syscall -> errno for this entry, or -1: the default action
}

// seccompState is everything the seccomp properties asked for.
type seccompState struct {
	filter     sysFilter
	errno      string // SystemCallErrorNumber=: "" (kill), "kill", or a number
	native     bool
	afSet      bool
	afAllow    bool
	afs        map[int]bool
	nsRetain   *uint64 // RestrictNamespaces: the namespace flags that stay allowed
	lockPers   bool
	mdwe       bool
	realtime   bool
	suidSGID   bool
	rawIO      bool     // PrivateDevices: systemd's implied ~@raw-io
	properties []string // which properties load a filter, in order
}

func (s *seccompState) uses(prop string) {
	for _, p := range s.properties {
		if p == prop {
			return
		}
	}
	s.properties = append(s.properties, prop)
}

// errnoAliases are the names x/sys/unix's ErrnoName does not return for
// their number, which systemd's errno_from_name knows.
var errnoAliases = map[string]int{"EUCLEAN": 117, "EFSCORRUPTED": 117, "EDEADLOCK": 35, "EWOULDBLOCK": 11, "ENOTSUP": 95}

// errnoByName maps EPERM... to numbers, from the kernel's own table.
func errnoByName(name string) (int, bool) {
	if n, ok := errnoAliases[name]; ok {
		return n, true
	}
	for i := 1; i < 4096; i++ {
		if unix.ErrnoName(syscall.Errno(i)) == name {
			return i, true
		}
	}
	return 0, false
}

// parseErrno is systemd's errno_from_name or a number 0..4095.
func parseErrno(v string) (int, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 || n > 4095 {
			return 0, fmt.Errorf("errno %d: out of range 0..4095", n)
		}
		return n, nil
	}
	if n, ok := errnoByName(v); ok {
		return n, nil
	}
	return 0, fmt.Errorf("%q: not an errno name (EPERM, EACCES, ...) or number", v)
}

// expandSyscalls resolves @groups (nested ones too) to syscall names.
// A name unknown on this architecture is kept: the filter skips it, as
// systemd does; an unknown @group is refused, as a typo there would
// silently weaken the filter.
func expandSyscalls(item string, seen map[string]bool, out *[]string) error {
	if !strings.HasPrefix(item, "@") {
		*out = append(*out, item)
		return nil
	}
	members, ok := syscallGroups()[item]
	if !ok {
		return fmt.Errorf("%q: unknown syscall group (systemd %s's: systemd-analyze syscall-filter)", item, systemdVersion)
	}
	if seen[item] {
		return nil
	}
	seen[item] = true
	for _, m := range members {
		if err := expandSyscalls(m, seen, out); err != nil {
			return err
		}
	}
	return nil
}

// systemCallFilter follows systemd's config_parse_syscall_filter: the
// first line decides the mode (an allow list, which also gets @default,
// or a ~ deny list); a later line of the same mode adds, one of the other
// mode removes.
func systemCallFilter(b *builder, v string) error {
	f := &b.sec.filter
	invert := strings.HasPrefix(v, "~")
	ws, err := words(strings.TrimPrefix(v, "~"))
	if err != nil {
		return err
	}
	if !f.set {
		f.set, f.allow, f.names = true, !invert, map[string]int{}
		if f.allow {
			var def []string
			if err := expandSyscalls("@default", map[string]bool{}, &def); err != nil {
				return err
			}
			for _, n := range def {
				f.names[n] = -1
			}
		}
	}
	adding := invert != f.allow
	for _, w := range ws {
		item, errs, hasErrno := strings.Cut(w, ":")
		errno := -1
		if hasErrno {
			if !adding || f.allow {
				return fmt.Errorf("%q: an errno per entry is only for deny (~) lists", w)
			}
			if errno, err = parseErrno(errs); err != nil {
				return fmt.Errorf("%q: %w", w, err)
			}
		}
		var names []string
		if err := expandSyscalls(item, map[string]bool{}, &names); err != nil {
			return err
		}
		for _, n := range names {
			if adding {
				f.names[n] = errno
			} else {
				delete(f.names, n)
			}
		}
	}
	b.sec.uses("SystemCallFilter")
	return nil
}

func systemCallErrorNumber(b *builder, v string) error {
	if v != "kill" {
		n, err := parseErrno(v)
		if err != nil {
			return err
		}
		v = strconv.Itoa(n)
	}
	b.sec.errno = v
	return nil
}

func systemCallArchitectures(b *builder, v string) error {
	ws, err := words(v)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if w != "native" && w != nativeArch() {
			return fmt.Errorf("%q: only native (%s) is supported", w, nativeArch())
		}
	}
	b.sec.native = true
	b.sec.uses("SystemCallArchitectures")
	return nil
}

// nativeArch is systemd's name for this architecture.
func nativeArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86-64"
	case "386":
		return "x86"
	}
	return runtime.GOARCH
}

func nativeScmpArch() specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return specs.ArchX86_64
	case "arm64":
		return specs.ArchAARCH64
	case "386":
		return specs.ArchX86
	case "riscv64":
		return specs.ArchRISCV64
	case "s390x":
		return specs.ArchS390X
	case "ppc64le":
		return specs.ArchPPC64LE
	}
	return specs.Arch("SCMP_ARCH_" + strings.ToUpper(runtime.GOARCH))
}

// addressFamilies: systemd's af_to_name table, as far as this kernel goes.
var addressFamilies = map[string]int{
	"AF_UNIX": unix.AF_UNIX, "AF_LOCAL": unix.AF_LOCAL, "AF_INET": unix.AF_INET, "AF_AX25": unix.AF_AX25,
	"AF_IPX": unix.AF_IPX, "AF_APPLETALK": unix.AF_APPLETALK, "AF_NETROM": unix.AF_NETROM, "AF_BRIDGE": unix.AF_BRIDGE,
	"AF_ATMPVC": unix.AF_ATMPVC, "AF_X25": unix.AF_X25, "AF_INET6": unix.AF_INET6, "AF_ROSE": unix.AF_ROSE,
	"AF_DECnet": unix.AF_DECnet, "AF_NETBEUI": unix.AF_NETBEUI, "AF_SECURITY": unix.AF_SECURITY, "AF_KEY": unix.AF_KEY,
	"AF_NETLINK": unix.AF_NETLINK, "AF_PACKET": unix.AF_PACKET, "AF_ASH": unix.AF_ASH, "AF_ECONET": unix.AF_ECONET,
	"AF_ATMSVC": unix.AF_ATMSVC, "AF_RDS": unix.AF_RDS, "AF_SNA": unix.AF_SNA, "AF_IRDA": unix.AF_IRDA,
	"AF_PPPOX": unix.AF_PPPOX, "AF_WANPIPE": unix.AF_WANPIPE, "AF_LLC": unix.AF_LLC, "AF_IB": unix.AF_IB,
	"AF_MPLS": unix.AF_MPLS, "AF_CAN": unix.AF_CAN, "AF_TIPC": unix.AF_TIPC, "AF_BLUETOOTH": unix.AF_BLUETOOTH,
	"AF_IUCV": unix.AF_IUCV, "AF_RXRPC": unix.AF_RXRPC, "AF_ISDN": unix.AF_ISDN, "AF_PHONET": unix.AF_PHONET,
	"AF_IEEE802154": unix.AF_IEEE802154, "AF_CAIF": unix.AF_CAIF, "AF_ALG": unix.AF_ALG, "AF_NFC": unix.AF_NFC,
	"AF_VSOCK": unix.AF_VSOCK, "AF_KCM": unix.AF_KCM, "AF_QIPCRTR": unix.AF_QIPCRTR, "AF_SMC": unix.AF_SMC,
	"AF_XDP": unix.AF_XDP, "AF_MCTP": unix.AF_MCTP,
}

// restrictAddressFamilies follows systemd's config_parse_address_families:
// "none" is an empty allow list; otherwise the first line decides the mode
// and a later line of the other mode removes from it.
func restrictAddressFamilies(b *builder, v string) error {
	s := &b.sec
	b.sec.uses("RestrictAddressFamilies")
	if v == "none" {
		s.afSet, s.afAllow, s.afs = true, true, map[int]bool{}
		return nil
	}
	invert := strings.HasPrefix(v, "~")
	ws, err := words(strings.TrimPrefix(v, "~"))
	if err != nil {
		return err
	}
	if !s.afSet {
		s.afSet, s.afAllow, s.afs = true, !invert, map[int]bool{}
	}
	for _, w := range ws {
		af, ok := addressFamilies[w]
		if !ok {
			return fmt.Errorf("%q: unknown address family (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, ...)", w)
		}
		if invert != s.afAllow {
			s.afs[af] = true
		} else {
			delete(s.afs, af)
		}
	}
	return nil
}

// namespaceFlags: systemd 252's namespace_info, in its order.
var namespaceFlags = []struct {
	name string
	flag uint64
}{
	{"cgroup", unix.CLONE_NEWCGROUP}, {"ipc", unix.CLONE_NEWIPC}, {"net", unix.CLONE_NEWNET},
	{"mnt", unix.CLONE_NEWNS}, {"pid", unix.CLONE_NEWPID}, {"user", unix.CLONE_NEWUSER}, {"uts", unix.CLONE_NEWUTS},
}

const allNamespaces = unix.CLONE_NEWCGROUP | unix.CLONE_NEWIPC | unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUSER | unix.CLONE_NEWUTS

// restrictNamespaces follows systemd's config_parse_restrict_namespaces:
// yes forbids all, no none; a list allows those kinds (lines OR), a ~list
// forbids them (lines remove).
func restrictNamespaces(b *builder, v string) error {
	var retain uint64
	if yes, err := parseBool(v); err == nil {
		if !yes {
			retain = allNamespaces
		}
		b.sec.nsRetain = &retain
		b.sec.uses("RestrictNamespaces")
		return nil
	}
	invert := strings.HasPrefix(v, "~")
	ws, err := words(strings.TrimPrefix(v, "~"))
	if err != nil {
		return err
	}
	var flags uint64
	for _, w := range ws {
		found := false
		for _, n := range namespaceFlags {
			if n.name == w {
				flags |= n.flag
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%q: unknown namespace type (cgroup ipc net mnt pid user uts)", w)
		}
	}
	prev := b.sec.nsRetain
	switch {
	case invert && prev == nil:
		retain = allNamespaces &^ flags
	case invert:
		retain = *prev &^ flags
	case prev == nil:
		retain = flags
	default:
		retain = *prev | flags
	}
	b.sec.nsRetain = &retain
	b.sec.uses("RestrictNamespaces")
	return nil
}

func seccompBool(prop string, set func(s *seccompState)) func(b *builder, v string) error {
	return boolProp(func(b *builder) {
		set(&b.sec)
		b.sec.uses(prop)
	})
}

func errnoRet(n int) *uint { u := uint(n); return &u }

func rule(names []string, act specs.LinuxSeccompAction, errno int, args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
	r := specs.LinuxSyscall{Names: names, Action: act, Args: args}
	if act == specs.ActErrno {
		r.ErrnoRet = errnoRet(errno)
	}
	return r
}

func masked(idx uint, bits uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: idx, Value: bits, ValueTwo: bits, Op: specs.OpMaskedEqual}
}

func argOp(idx uint, op specs.LinuxSeccompOperator, v uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: idx, Value: v, Op: op}
}

// filters compiles the seccomp properties, one filter each, in
// systemd's order (exec_child's apply_* calls).
func (s *seccompState) filters() []specs.LinuxSeccomp {
	native := []specs.Arch{nativeScmpArch()}
	allowAll := func(rules ...specs.LinuxSyscall) specs.LinuxSeccomp {
		return specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: native, Syscalls: rules}
	}
	var out []specs.LinuxSeccomp
	if s.native {
		// Only the native ABI in the filter: libseccomp's bad-arch action
		// kills a syscall made through any other, as systemd's
		// seccomp_restrict_archs does.
		out = append(out, allowAll())
	}
	if s.afSet {
		out = append(out, allowAll(s.addressFamilyRules()...))
	}
	if s.nsRetain != nil && *s.nsRetain != allNamespaces {
		out = append(out, allowAll(namespaceRules(*s.nsRetain)...))
	}
	if s.mdwe {
		// systemd's seccomp_memory_deny_write_execute.
		out = append(out, allowAll(
			rule([]string{"mmap", "mmap2"}, specs.ActErrno, int(unix.EPERM), masked(2, unix.PROT_WRITE|unix.PROT_EXEC)),
			rule([]string{"mprotect", "pkey_mprotect"}, specs.ActErrno, int(unix.EPERM), masked(2, unix.PROT_EXEC)),
			rule([]string{"shmat"}, specs.ActErrno, int(unix.EPERM), masked(2, shmExec)),
		))
	}
	if s.realtime {
		// systemd's seccomp_restrict_realtime: every policy below the
		// highest non-realtime one (SCHED_IDLE) that is not a
		// non-realtime one, and every one above it (which also catches
		// SCHED_RESET_ON_FORK), gets EPERM.
		var rules []specs.LinuxSyscall
		for p := 0; p < unix.SCHED_IDLE; p++ {
			if p == unix.SCHED_NORMAL || p == unix.SCHED_BATCH {
				continue
			}
			rules = append(rules, rule([]string{"sched_setscheduler"}, specs.ActErrno, int(unix.EPERM), argOp(1, specs.OpEqualTo, uint64(p))))
		}
		rules = append(rules, rule([]string{"sched_setscheduler"}, specs.ActErrno, int(unix.EPERM), argOp(1, specs.OpGreaterThan, unix.SCHED_IDLE)))
		out = append(out, allowAll(rules...))
	}
	if s.suidSGID {
		out = append(out, allowAll(suidSGIDRules()...))
	}
	if s.rawIO {
		// systemd's PrivateDevices=yes also denies @raw-io with EPERM
		// (systemd.exec(5); Seccomp: 2 under systemd-run in the VM
		// comparison).
		var names []string
		_ = expandSyscalls("@raw-io", map[string]bool{}, &names)
		out = append(out, allowAll(rule(names, specs.ActErrno, int(unix.EPERM))))
	}
	if s.lockPers {
		// systemd's seccomp_lock_personality: only the personality the
		// sandbox starts with (PER_LINUX) may be set.
		out = append(out, allowAll(rule([]string{"personality"}, specs.ActErrno, int(unix.EPERM), argOp(0, specs.OpNotEqual, 0))))
	}
	// SystemCallFilter last, as in systemd's exec_child: loading the
	// other filters needs seccomp(2), which an allow list may not leave.
	if s.filter.set {
		// systemd: a violation kills the process unless
		// SystemCallErrorNumber= names an errno.
		deny, errno := specs.ActKillProcess, 0
		if s.errno != "" && s.errno != "kill" {
			deny, errno = specs.ActErrno, mustAtoi(s.errno)
		}
		names := make([]string, 0, len(s.filter.names))
		for n := range s.filter.names {
			names = append(names, n)
		}
		sort.Strings(names)
		f := specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: native}
		if s.filter.allow {
			f.DefaultAction = deny
			if deny == specs.ActErrno {
				f.DefaultErrnoRet = errnoRet(errno)
			}
			f.Syscalls = []specs.LinuxSyscall{rule(names, specs.ActAllow, 0)}
		} else {
			byErrno := map[int][]string{}
			for _, n := range names {
				byErrno[s.filter.names[n]] = append(byErrno[s.filter.names[n]], n)
			}
			keys := make([]int, 0, len(byErrno))
			for k := range byErrno {
				keys = append(keys, k)
			}
			sort.Ints(keys)
			for _, k := range keys {
				if k < 0 {
					f.Syscalls = append(f.Syscalls, rule(byErrno[k], deny, errno))
				} else {
					f.Syscalls = append(f.Syscalls, rule(byErrno[k], specs.ActErrno, k))
				}
			}
		}
		out = append(out, f)
	}
	return out
}

func mustAtoi(s string) int { n, _ := strconv.Atoi(s); return n }

// addressFamilyRules: systemd's seccomp_restrict_address_families. Only
// socket(2) is filtered (socketpair is not: it makes no endpoint), with
// EAFNOSUPPORT, the errno of a family the kernel lacks.
func (s *seccompState) addressFamilyRules() []specs.LinuxSyscall {
	eaf := int(unix.EAFNOSUPPORT)
	sock := []string{"socket"}
	var rules []specs.LinuxSyscall
	var fams []int
	for f := range s.afs {
		fams = append(fams, f)
	}
	sort.Ints(fams)
	if !s.afAllow {
		for _, f := range fams {
			rules = append(rules, rule(sock, specs.ActErrno, eaf, argOp(0, specs.OpEqualTo, uint64(f))))
		}
		return rules
	}
	if len(fams) == 0 {
		return []specs.LinuxSyscall{rule(sock, specs.ActErrno, eaf)}
	}
	first, last := fams[0], fams[len(fams)-1]
	rules = append(rules,
		rule(sock, specs.ActErrno, eaf, argOp(0, specs.OpLessThan, uint64(first))),
		rule(sock, specs.ActErrno, eaf, argOp(0, specs.OpGreaterThan, uint64(last))))
	for f := first + 1; f < last; f++ {
		if !s.afs[f] {
			rules = append(rules, rule(sock, specs.ActErrno, eaf, argOp(0, specs.OpEqualTo, uint64(f))))
		}
	}
	return rules
}

// namespaceRules: systemd's seccomp_restrict_namespaces. clone3(2) passes
// its flags in a struct seccomp cannot read, so it gets ENOSYS and libc
// falls back to clone(2), whose flags it can.
func namespaceRules(retain uint64) []specs.LinuxSyscall {
	eperm := int(unix.EPERM)
	rules := []specs.LinuxSyscall{rule([]string{"clone3"}, specs.ActErrno, int(unix.ENOSYS))}
	if retain&allNamespaces == 0 {
		rules = append(rules, rule([]string{"setns"}, specs.ActErrno, eperm))
	} else {
		// setns(fd, 0) joins whatever fd is: forbidden unless all are allowed.
		rules = append(rules, rule([]string{"setns"}, specs.ActErrno, eperm, argOp(1, specs.OpEqualTo, 0)))
	}
	for _, n := range namespaceFlags {
		if retain&n.flag != 0 {
			continue
		}
		rules = append(rules,
			rule([]string{"unshare", "clone"}, specs.ActErrno, eperm, masked(0, n.flag)))
		if retain&allNamespaces != 0 {
			rules = append(rules, rule([]string{"setns"}, specs.ActErrno, eperm, masked(1, n.flag)))
		}
	}
	return rules
}

// suidSGIDRules: systemd's seccomp_restrict_suid_sgid: no file is made
// set-user-ID or set-group-ID, by chmod or by creating it so. openat2(2)
// hides its mode in a struct: ENOSYS, and libc falls back to openat.
func suidSGIDRules() []specs.LinuxSyscall {
	eperm := int(unix.EPERM)
	rules := []specs.LinuxSyscall{rule([]string{"openat2"}, specs.ActErrno, int(unix.ENOSYS))}
	for _, m := range []uint64{unix.S_ISUID, unix.S_ISGID} {
		rules = append(rules,
			rule([]string{"chmod", "fchmod", "mkdir", "mknod", "creat"}, specs.ActErrno, eperm, masked(1, m)),
			rule([]string{"fchmodat", "mkdirat", "mknodat"}, specs.ActErrno, eperm, masked(2, m)),
			rule([]string{"open"}, specs.ActErrno, eperm, masked(1, unix.O_CREAT), masked(2, m)),
			rule([]string{"openat"}, specs.ActErrno, eperm, masked(2, unix.O_CREAT), masked(3, m)),
		)
	}
	return rules
}

// finishSeccomp puts the filters in the sandbox and their checks in the
// receipt. systemd implies NoNewPrivileges= for these properties where the
// caller could not load a filter without it (no CAP_SYS_ADMIN: an
// unprivileged manager, or a service whose user is not root); hako does
// where COMMAND's credentials lack CAP_SYS_ADMIN, since the filters are
// loaded after they are set.
func (b *builder) finishSeccomp(uid uint32) {
	b.filters = b.sec.filters()
	if len(b.filters) == 0 {
		return
	}
	_, sysAdminDropped := b.drop["CAP_SYS_ADMIN"]
	if b.in.UID != 0 || uid != 0 || sysAdminDropped {
		if !b.spec.Process.NoNewPrivileges {
			b.spec.Process.NoNewPrivileges = true
			b.check(receipt.Check{Property: b.sec.properties[0] + " (implies NoNewPrivileges)", Kind: receipt.KindStatus, Path: "NoNewPrivs", Value: "1"})
		}
	}
	for _, p := range b.sec.properties {
		b.check(receipt.Check{Property: p, Kind: receipt.KindStatus, Path: "Seccomp", Value: "2"})
	}
	// At least one filter per property: hako may itself run under some.
	b.check(receipt.Check{Property: strings.Join(b.sec.properties, ", "), Kind: receipt.KindStatusMin, Path: "Seccomp_filters", Value: strconv.Itoa(len(b.filters))})
}

// shmExec is SHM_EXEC (linux/shm.h), which x/sys/unix lacks.
const shmExec = 0o100000
