package spec

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var seccompActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

var seccompArches = []specs.Arch{
	specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
	specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
	specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
	specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
	specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
	specs.ArchSH, specs.ArchSHEB,
}

var seccompOps = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
}

// seccompFlags includes TSYNC, which the runtime-spec does not list but runc
// accepts (libseccomp always synchronises threads anyway).
var seccompFlags = []specs.LinuxSeccompFlag{
	"SECCOMP_FILTER_FLAG_TSYNC",
	specs.LinuxSeccompFlagLog,
	specs.LinuxSeccompFlagSpecAllow,
	specs.LinuxSeccompFlagWaitKillableRecv,
}

// maxSyscallArgs is the number of syscall argument registers seccomp can
// inspect.
const maxSyscallArgs = 6

func (v *validator) seccomp() error {
	if v.s.Linux == nil || v.s.Linux.Seccomp == nil {
		return nil
	}
	sc := v.s.Linux.Seccomp
	const base = "linux.seccomp"
	switch {
	case sc.DefaultAction == "":
		return fieldErr(base+".defaultAction", "must not be empty")
	case !slices.Contains(seccompActions, sc.DefaultAction):
		return fieldErr(base+".defaultAction", "unknown action %q", string(sc.DefaultAction))
	case sc.DefaultAction == specs.ActNotify:
		// Every syscall, including the ones the agent needs to answer,
		// would block on the agent: runc refuses it.
		return fieldErr(base+".defaultAction", "SCMP_ACT_NOTIFY cannot be used as the default action")
	}
	for i, a := range sc.Architectures {
		if !slices.Contains(seccompArches, a) {
			return fieldErr(at(base+".architectures", i), "unknown architecture %q", string(a))
		}
	}
	for i, f := range sc.Flags {
		if !slices.Contains(seccompFlags, f) {
			return fieldErr(at(base+".flags", i), "unknown flag %q", string(f))
		}
	}
	notify := false
	for i, call := range sc.Syscalls {
		f := at(base+".syscalls", i)
		if len(call.Names) == 0 {
			return fieldErr(f+".names", "must not be empty")
		}
		if !slices.Contains(seccompActions, call.Action) {
			return fieldErr(f+".action", "unknown action %q", string(call.Action))
		}
		for j, name := range call.Names {
			if name == "" {
				return fieldErr(at(f+".names", j), "must not be empty")
			}
			// The listener fd leaves the container process with a
			// sendmsg(2) right after the filter is loaded; notified, that
			// sendmsg would wait for an answer only the fd's receiver
			// could give. (runc refuses write(2) instead, which its init
			// uses there; hako's uses nothing else.)
			if call.Action == specs.ActNotify && name == "sendmsg" {
				return fieldErr(at(f+".names", j), "SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall: the seccomp listener fd is passed on with it")
			}
		}
		notify = notify || call.Action == specs.ActNotify
		for j, arg := range call.Args {
			af := at(f+".args", j)
			if arg.Index >= maxSyscallArgs {
				return fieldErr(af+".index", "must be less than %d, got %d", maxSyscallArgs, arg.Index)
			}
			if !slices.Contains(seccompOps, arg.Op) {
				return fieldErr(af+".op", "unknown operator %q", string(arg.Op))
			}
		}
	}
	// The listener is where the notify fd is sent; without one nobody
	// answers and the syscalls hang. One without notify rules is
	// accepted, as runc does: engines set it for every container and
	// let the profile decide, and there is simply no fd to send.
	if notify && sc.ListenerPath == "" {
		return fieldErr(base+".listenerPath", "must be set when an action is SCMP_ACT_NOTIFY")
	}
	return nil
}
