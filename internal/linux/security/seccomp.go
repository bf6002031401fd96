package security

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Kernel SECCOMP_RET_* values, for asking the kernel which actions it has.
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retUserNotif   = 0x7fc00000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// bpfMaxInsns is BPF_MAXINSNS: the kernel refuses longer classic BPF
// programs with a bare EINVAL, so we check first and say why.
const bpfMaxInsns = 4096

// flagTsync is not in the runtime spec, but runc accepts the name, so a
// config may carry it.
const flagTsync = "SECCOMP_FILTER_FLAG_TSYNC"

var seccompFlags = map[specs.LinuxSeccompFlag]uintptr{
	flagTsync:                              unix.SECCOMP_FILTER_FLAG_TSYNC,
	specs.LinuxSeccompFlagLog:              unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow:        unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	specs.LinuxSeccompFlagWaitKillableRecv: unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}

var seccompOps = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// The kernel probes are variables so tests can play an older kernel.
var (
	kernelHasAction = probeAction
	kernelHasFlag   = probeFlag
)

// probeAction asks SECCOMP_GET_ACTION_AVAIL (4.14+). When that operation
// itself is missing, the kernel is older than every action it would have
// been needed for, and has exactly the original five.
func probeAction(ret uint32) bool {
	avail := func(r uint32) bool {
		_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&r)))
		return e == 0
	}
	if avail(ret) {
		return true
	}
	if avail(retAllow) {
		return false
	}
	switch ret {
	case retKillThread, retTrap, retErrno, retTrace, retAllow:
		return true
	}
	return false
}

// probeFlag relies on the kernel validating flags before it reads the
// program: a NULL program gets EFAULT when the flags are acceptable and
// EINVAL when they are not. Nothing is loaded either way.
func probeFlag(flags uintptr) bool {
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, 0)
	return e == unix.EFAULT
}

// SeccompSupported reports whether the kernel can take a seccomp filter and
// the linked libseccomp is one libseccomp-golang works with.
func SeccompSupported() bool {
	if err := unix.Prctl(unix.PR_GET_SECCOMP, 0, 0, 0, 0); errors.Is(err, unix.EINVAL) {
		return false // CONFIG_SECCOMP is off
	}
	if !probeFlag(0) {
		return false // no filter mode, or no seccomp(2)
	}
	major, minor, micro := libseccomp.GetLibraryVersion()
	return major > 2 || major == 2 && (minor > 3 || minor == 3 && micro >= 1)
}

// LibseccompVersion is the linked libseccomp's version, for --version.
func LibseccompVersion() string {
	major, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}

// SupportedSeccompFlags lists the flag names LoadSeccomp accepts that the
// running kernel also has, for `features`.
func SupportedSeccompFlags() []string {
	var out []string
	for _, f := range []specs.LinuxSeccompFlag{flagTsync, specs.LinuxSeccompFlagSpecAllow,
		specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagWaitKillableRecv} {
		probe := seccompFlags[f]
		if f == specs.LinuxSeccompFlagWaitKillableRecv {
			probe |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		}
		if kernelHasFlag(probe) {
			out = append(out, string(f))
		}
	}
	return out
}

// seccompPlan is a built but not yet loaded filter.
type seccompPlan struct {
	filter *libseccomp.ScmpFilter
	flags  uintptr
	stub   []unix.SockFilter // the -ENOSYS prologue, if any
}

func (p *seccompPlan) release() { p.filter.Release() }

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("linux.seccomp.%s: %s", field, fmt.Sprintf(format, args...))
}

// parseAction maps the action name, with errnoRet, to libseccomp's value
// and the kernel's (for the availability check). As in runc, errnoRet
// defaults to EPERM and only ERRNO and TRACE carry it.
func parseAction(field string, a specs.LinuxSeccompAction, errnoRet *uint) (libseccomp.ScmpAction, error) {
	ret := uint(unix.EPERM)
	if errnoRet != nil {
		ret = *errnoRet
	}
	var act libseccomp.ScmpAction
	var kret uint32
	switch a {
	case specs.ActKill, specs.ActKillThread:
		act, kret = libseccomp.ActKillThread, retKillThread
	case specs.ActKillProcess:
		act, kret = libseccomp.ActKillProcess, retKillProcess
	case specs.ActTrap:
		act, kret = libseccomp.ActTrap, retTrap
	case specs.ActErrno, specs.ActTrace:
		if ret > 0xffff {
			return 0, fieldErr(field, "errnoRet %d does not fit in the 16 bits seccomp returns", ret)
		}
		act, kret = libseccomp.ActErrno, retErrno
		if a == specs.ActTrace {
			act, kret = libseccomp.ActTrace, retTrace
		}
		act = act.SetReturnCode(int16(uint16(ret)))
	case specs.ActAllow:
		act, kret = libseccomp.ActAllow, retAllow
	case specs.ActLog:
		act, kret = libseccomp.ActLog, retLog
	case specs.ActNotify:
		act, kret = libseccomp.ActNotify, retUserNotif
	default:
		return 0, fieldErr(field, "unknown action %q", a)
	}
	if !kernelHasAction(kret) {
		return 0, fieldErr(field, "the running kernel lacks seccomp action %s", a)
	}
	return act, nil
}

// parseArch turns "SCMP_ARCH_X86_64" into libseccomp's token; the names
// differ only in case and for the three below.
func parseArch(field string, a specs.Arch) (libseccomp.ScmpArch, error) {
	name, ok := strings.CutPrefix(string(a), "SCMP_ARCH_")
	if !ok || name == "NATIVE" {
		return 0, fieldErr(field, "unknown architecture %q", a)
	}
	switch name {
	case "X86_64":
		name = "amd64"
	case "AARCH64":
		name = "arm64"
	case "LOONGARCH64":
		name = "loong64"
	}
	arch, err := libseccomp.GetArchFromString(strings.ToLower(name))
	if err != nil {
		return 0, fieldErr(field, "unknown architecture %q", a)
	}
	return arch, nil
}

// buildSeccomp turns the spec into a libseccomp filter plus the seccomp(2)
// flags to load it with, checking everything it can without loading.
func buildSeccomp(cfg *specs.LinuxSeccomp) (plan *seccompPlan, err error) {
	defAct, err := parseAction("defaultAction", cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	// Every syscall of the init process itself would wait for an agent that
	// cannot have the listener fd yet.
	if defAct == libseccomp.ActNotify {
		return nil, fieldErr("defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
	}

	var flags uintptr
	if cfg.Flags == nil {
		// runc's default when the config says nothing: do not force the
		// Speculative Store Bypass mitigation on every sandboxed process.
		if kernelHasFlag(unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW) {
			flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		}
	}
	for i, f := range cfg.Flags {
		bit, ok := seccompFlags[f]
		if !ok {
			return nil, fieldErr(fmt.Sprintf("flags[%d]", i), "unknown flag %q", f)
		}
		probe := bit
		if bit == unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
			probe |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER // only valid with it
		}
		if !kernelHasFlag(probe) {
			return nil, fieldErr(fmt.Sprintf("flags[%d]", i), "the running kernel lacks seccomp filter flag %s", f)
		}
		flags |= bit
	}

	filter, err := libseccomp.NewFilter(defAct)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: creating filter: %w", err)
	}
	defer func() {
		if err != nil {
			filter.Release()
		}
	}()

	var archs []libseccomp.ScmpArch
	for i, a := range cfg.Architectures {
		field := fmt.Sprintf("architectures[%d]", i)
		arch, err := parseArch(field, a)
		if err != nil {
			return nil, err
		}
		if err := filter.AddArch(arch); err != nil {
			return nil, fieldErr(field, "adding %s: %v", a, err)
		}
		archs = append(archs, arch)
	}

	var names []string
	notify := false
	nrules := 0
	for i := range cfg.Syscalls {
		nrules += len(cfg.Syscalls[i].Names)
	}
	// No SetOptimize(2): libseccomp 2.5.4's binary tree fails with ENOMEM
	// on multi-architecture profiles (seen with the runtime-tools suite's
	// x86_64+x86+x32 profile); a linear filter is only slower.
	_ = nrules
	for i, sc := range cfg.Syscalls {
		field := fmt.Sprintf("syscalls[%d]", i)
		act, err := parseAction(field+".action", sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, err
		}
		if act == libseccomp.ActNotify {
			notify = true
			// The loading process passes the listener fd on with a
			// sendmsg(2) before anyone can answer a notification; a
			// notified sendmsg would hang it. (runc's init uses write(2)
			// there, and refuses that instead.)
			for _, n := range sc.Names {
				if n == "sendmsg" {
					return nil, fieldErr(field+".action", "SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall: the seccomp listener fd is passed on with it")
				}
			}
		}
		conds, err := parseArgs(field, sc.Args)
		if err != nil {
			return nil, err
		}
		for j, name := range sc.Names {
			if name == "" {
				return nil, fieldErr(fmt.Sprintf("%s.names[%d]", field, j), "empty syscall name")
			}
			names = append(names, name)
			// libseccomp rejects a rule that restates the default action;
			// runc drops it, and so does the filter's meaning.
			if act == defAct {
				continue
			}
			nr, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				// Like runc: a name libseccomp does not know is a syscall
				// this host cannot have, so there is nothing to filter.
				continue
			}
			if err := addRule(filter, nr, act, conds); err != nil {
				// A negative number is libseccomp's pseudo-syscall for a
				// name that exists only on another architecture (e.g.
				// getegid32 on x86_64); such a rule can never match here.
				if nr < 0 {
					continue
				}
				return nil, fieldErr(field, "adding rule for %q: %v", name, err)
			}
		}
	}
	if notify {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		if !kernelHasFlag(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER) {
			return nil, fieldErr("syscalls", "the running kernel lacks seccomp user notification (SECCOMP_FILTER_FLAG_NEW_LISTENER) needed by SCMP_ACT_NOTIFY")
		}
		// With TSYNC a listener needs TSYNC_ESRCH, or the kernel could not
		// tell a thread id from the listener fd in its return value.
		if flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			flags |= unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
			if !kernelHasFlag(flags) {
				return nil, fieldErr("flags", "the running kernel lacks SECCOMP_FILTER_FLAG_TSYNC_ESRCH, needed to combine SECCOMP_FILTER_FLAG_TSYNC with SCMP_ACT_NOTIFY")
			}
		}
	}
	if flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 && !notify {
		return nil, fieldErr("flags", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a SCMP_ACT_NOTIFY rule")
	}

	plan = &seccompPlan{filter: filter, flags: flags}
	if needEnosysStub(cfg) {
		plan.stub = enosysStub(archs, names)
	}
	return plan, nil
}

func parseArgs(field string, args []specs.LinuxSeccompArg) ([]libseccomp.ScmpCondition, error) {
	conds := make([]libseccomp.ScmpCondition, 0, len(args))
	for k, a := range args {
		afield := fmt.Sprintf("%s.args[%d]", field, k)
		op, ok := seccompOps[a.Op]
		if !ok {
			return nil, fieldErr(afield+".op", "unknown operator %q", a.Op)
		}
		if a.Index > 5 {
			return nil, fieldErr(afield+".index", "%d is out of range: syscalls have 6 arguments", a.Index)
		}
		// For SCMP_CMP_MASKED_EQ value is the mask and valueTwo the datum,
		// which is libseccomp's operand order too.
		c, err := libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
		if err != nil {
			return nil, fieldErr(afield, "%v", err)
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// addRule adds the conditions as one rule, whose conditions must all hold.
// libseccomp cannot express two conditions on the same argument in one
// rule, so then, as runc does, each condition becomes a rule of its own,
// which turns AND into OR.
func addRule(f *libseccomp.ScmpFilter, nr libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds []libseccomp.ScmpCondition) error {
	if len(conds) == 0 {
		return f.AddRule(nr, act)
	}
	var seen [6]bool
	split := false
	for _, c := range conds {
		if seen[c.Argument] {
			split = true
		}
		seen[c.Argument] = true
	}
	if !split {
		return f.AddRuleConditional(nr, act, conds)
	}
	for _, c := range conds {
		if err := f.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
			return err
		}
	}
	return nil
}

// program exports the filter as classic BPF with the -ENOSYS prologue in
// front. libseccomp only writes to a file descriptor (the in-memory
// export needs libseccomp 2.6), so a pipe it is.
func (p *seccompPlan) program() ([]unix.SockFilter, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(r)
		done <- result{b, err}
	}()
	err = p.filter.ExportBPF(w)
	w.Close()
	res := <-done
	if err != nil {
		return nil, fmt.Errorf("exporting seccomp filter: %w", err)
	}
	if res.err != nil {
		return nil, fmt.Errorf("exporting seccomp filter: %w", res.err)
	}
	if len(res.b)%8 != 0 {
		return nil, fmt.Errorf("exporting seccomp filter: %d bytes is not a whole number of instructions", len(res.b))
	}
	body := make([]unix.SockFilter, len(res.b)/8)
	if err := binary.Read(bytes.NewReader(res.b), binary.NativeEndian, body); err != nil {
		return nil, fmt.Errorf("exporting seccomp filter: %w", err)
	}
	return append(append([]unix.SockFilter{}, p.stub...), body...), nil
}

// LoadSeccomp builds the filter cfg describes and installs it on the
// calling thread, which passes it to the program it execs. A nil cfg, or
// one with neither a default action nor rules, means no seccomp (as in
// runc). When some rule uses SCMP_ACT_NOTIFY it returns the listener fd
// (close-on-exec, for the caller to hand to the seccomp agent), else -1.
//
// The filter is loaded with seccomp(2) by this package rather than by
// libseccomp, whose Go binding always asks for SECCOMP_FILTER_FLAG_TSYNC:
// that would put the container's filter on every thread of the runtime.
// TSYNC is used only when cfg.Flags names it. no_new_privs is left alone
// (see SetNoNewPrivileges); without it the thread needs CAP_SYS_ADMIN.
func LoadSeccomp(cfg *specs.LinuxSeccomp) (notifyFd int, err error) {
	p, err := BuildSeccomp(cfg)
	if err != nil || p == nil {
		return -1, err
	}
	return p.Load()
}

// Seccomp is a compiled filter, ready to load.
type Seccomp struct {
	prog  []unix.SockFilter
	flags uintptr
}

// BuildSeccomp compiles the filter without loading it. The init compiles
// early and loads late: between the two, rlimits such as a small RLIMIT_AS
// may already forbid the allocations libseccomp needs. nil means no filter.
func BuildSeccomp(cfg *specs.LinuxSeccomp) (*Seccomp, error) {
	if cfg == nil || cfg.DefaultAction == "" && len(cfg.Syscalls) == 0 {
		return nil, nil
	}
	plan, err := buildSeccomp(cfg)
	if err != nil {
		return nil, err
	}
	defer plan.release()
	prog, err := plan.program()
	if err != nil {
		return nil, err
	}
	return &Seccomp{prog: prog, flags: plan.flags}, nil
}

// Load loads the filter on the calling thread and returns the notify fd,
// or -1.
func (s *Seccomp) Load() (int, error) {
	runtime.LockOSThread()
	return loadProgram(s.prog, s.flags)
}

func loadProgram(prog []unix.SockFilter, flags uintptr) (int, error) {
	if len(prog) > bpfMaxInsns {
		return -1, fmt.Errorf("seccomp filter is %d instructions long; the kernel takes at most %d", len(prog), bpfMaxInsns)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	var r uintptr
	var errno unix.Errno
	if flags == 0 {
		// prctl also works on kernels without seccomp(2) (before 3.17).
		r, _, errno = unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0, 0)
	} else {
		r, _, errno = unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	}
	runtime.KeepAlive(prog)
	switch {
	case errno == unix.EACCES:
		return -1, fmt.Errorf("loading seccomp filter: %w (no_new_privs is not set and the thread lacks CAP_SYS_ADMIN)", errno)
	case errno != 0:
		return -1, fmt.Errorf("loading seccomp filter (flags %#x): %w", flags, errno)
	case flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0:
		return int(r), nil
	case r != 0:
		// TSYNC without a listener returns the id of a thread it could not
		// move onto the filter; the filter is on no thread then.
		return -1, fmt.Errorf("loading seccomp filter: thread %d could not be synchronised (SECCOMP_FILTER_FLAG_TSYNC)", r)
	}
	return -1, nil
}

// seccompWire is how a compiled filter travels from hako to the container
// process: the parent compiles once, so the child neither runs libseccomp
// nor parses the profile.
type seccompWire struct {
	BPF   []byte  `json:"bpf"`
	Flags uintptr `json:"flags"`
}

// AppendBinary appends the program as 8-byte little-endian instructions
// (struct sock_filter's layout), the form the filter travels in: in the
// plan's wire form and, base64'd, in the state dir's seccomp.json.
func (s *Seccomp) AppendBinary(b []byte) []byte {
	for _, f := range s.prog {
		b = binary.LittleEndian.AppendUint16(b, f.Code)
		b = append(b, f.Jt, f.Jf)
		b = binary.LittleEndian.AppendUint32(b, f.K)
	}
	return b
}

// SeccompFromBinary is AppendBinary's inverse, with the flags that travel
// beside the program.
func SeccompFromBinary(bpf []byte, flags uintptr) (*Seccomp, error) {
	if len(bpf)%8 != 0 || len(bpf) == 0 {
		return nil, fmt.Errorf("seccomp program: %d bytes is not a whole number of instructions", len(bpf))
	}
	prog := make([]unix.SockFilter, len(bpf)/8)
	for i := range prog {
		b := bpf[8*i:]
		prog[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])}
	}
	return &Seccomp{prog: prog, flags: flags}, nil
}

// Flags are the filter's seccomp(2) flags.
func (s *Seccomp) Flags() uintptr { return s.flags }

// MarshalJSON encodes the program in AppendBinary's form.
func (s *Seccomp) MarshalJSON() ([]byte, error) {
	return json.Marshal(seccompWire{BPF: s.AppendBinary(make([]byte, 0, 8*len(s.prog))), Flags: s.flags})
}

// UnmarshalJSON is MarshalJSON's inverse.
func (s *Seccomp) UnmarshalJSON(data []byte) error {
	var w seccompWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	f, err := SeccompFromBinary(w.BPF, w.Flags)
	if err != nil {
		return err
	}
	*s = *f
	return nil
}

// Notify reports whether the filter has SCMP_ACT_NOTIFY rules, whose fd
// goes to the seccomp agent at linux.seccomp.listenerPath.
func (s *Seccomp) Notify() bool { return s.flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 }

// Summary describes the compiled filter in a few words, for --debug.
func (s *Seccomp) Summary() string {
	return fmt.Sprintf("%d BPF instructions, flags %#x, notify=%t", len(s.prog), s.flags, s.Notify())
}
