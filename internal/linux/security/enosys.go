package security

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// The -ENOSYS prologue, after runc's patchbpf.
//
// A profile lists the syscalls its author knew about. With a deny-by-default
// action, a syscall newer than the profile gets EPERM, and libc reads EPERM
// as "you may not" rather than "not here, fall back" (the clone3 and
// faccessat2 breakages). runc therefore puts a short program in front of
// libseccomp's: for each architecture in the profile, a syscall number
// above the largest one the profile names returns ENOSYS. hako does the
// same so that profiles behave as they do under runc.

// x32 syscalls are the x86_64 ones with this bit set; both share an
// AUDIT_ARCH value, so the prologue has to tell them apart by the number.
const x32SyscallBit = 0x40000000

var auditArch = map[libseccomp.ScmpArch]uint32{
	libseccomp.ArchX86:         unix.AUDIT_ARCH_I386,
	libseccomp.ArchAMD64:       unix.AUDIT_ARCH_X86_64,
	libseccomp.ArchX32:         unix.AUDIT_ARCH_X86_64,
	libseccomp.ArchARM:         unix.AUDIT_ARCH_ARM,
	libseccomp.ArchARM64:       unix.AUDIT_ARCH_AARCH64,
	libseccomp.ArchMIPS:        unix.AUDIT_ARCH_MIPS,
	libseccomp.ArchMIPS64:      unix.AUDIT_ARCH_MIPS64,
	libseccomp.ArchMIPS64N32:   unix.AUDIT_ARCH_MIPS64N32,
	libseccomp.ArchMIPSEL:      unix.AUDIT_ARCH_MIPSEL,
	libseccomp.ArchMIPSEL64:    unix.AUDIT_ARCH_MIPSEL64,
	libseccomp.ArchMIPSEL64N32: unix.AUDIT_ARCH_MIPSEL64N32,
	libseccomp.ArchPPC:         unix.AUDIT_ARCH_PPC,
	libseccomp.ArchPPC64:       unix.AUDIT_ARCH_PPC64,
	libseccomp.ArchPPC64LE:     unix.AUDIT_ARCH_PPC64LE,
	libseccomp.ArchS390:        unix.AUDIT_ARCH_S390,
	libseccomp.ArchS390X:       unix.AUDIT_ARCH_S390X,
	libseccomp.ArchRISCV64:     unix.AUDIT_ARCH_RISCV64,
	libseccomp.ArchLOONGARCH64: unix.AUDIT_ARCH_LOONGARCH64,
}

// needEnosysStub follows runc: no prologue when the default already says
// ENOSYS, nor when the default lets unknown syscalls through anyway.
func needEnosysStub(cfg *specs.LinuxSeccomp) bool {
	if cfg.DefaultErrnoRet != nil && *cfg.DefaultErrnoRet == uint(unix.ENOSYS) {
		return false
	}
	switch cfg.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
		return false
	}
	return true
}

func bpfStmt(code uint16, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k}
}

func bpfJump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

const (
	bpfLoadWord = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq      = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgt      = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	bpfJset     = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfJa       = unix.BPF_JMP | unix.BPF_JA
	bpfRet      = unix.BPF_RET | unix.BPF_K

	// offsets into struct seccomp_data
	offNr   = 0
	offArch = 4
)

// enosysStub builds the prologue for the profile's architectures (like
// runc, only those listed: the native one is not implied). Architectures
// the prologue has no AUDIT_ARCH value for, or for which no named syscall
// resolves, get no section and go straight to the filter.
func enosysStub(archs []libseccomp.ScmpArch, names []string) []unix.SockFilter {
	type group struct {
		audit uint32
		max   map[libseccomp.ScmpArch]uint32
	}
	var groups []*group
	byAudit := map[uint32]*group{}
	for _, arch := range archs {
		audit, ok := auditArch[arch]
		if !ok {
			continue
		}
		var hi int32
		for _, n := range names {
			// Negative numbers are libseccomp's stand-ins for syscalls
			// this architecture lacks.
			if nr, err := libseccomp.GetSyscallFromNameByArch(n, arch); err == nil && int32(nr) > hi {
				hi = int32(nr)
			}
		}
		if hi <= 0 {
			continue
		}
		g := byAudit[audit]
		if g == nil {
			g = &group{audit: audit, max: map[libseccomp.ScmpArch]uint32{}}
			byAudit[audit] = g
			groups = append(groups, g)
		}
		g.max[arch] = uint32(hi)
	}
	if len(groups) == 0 {
		return nil
	}

	// Each section ends in "ja filter; ret ENOSYS", so its own conditional
	// jumps are a few instructions long; only the ja needs a long reach.
	// Offsets to those two are patched once the layout is known.
	const toFilter, toEnosys = 0xfe, 0xff
	var sections [][]unix.SockFilter
	for _, g := range groups {
		s := []unix.SockFilter{bpfStmt(bpfLoadWord, offNr)}
		amd, hasAmd := g.max[libseccomp.ArchAMD64]
		x32, hasX32 := g.max[libseccomp.ArchX32]
		switch {
		case hasAmd && hasX32:
			s = append(s,
				bpfJump(bpfJset, x32SyscallBit, 1, 0),
				bpfJump(bpfJgt, amd, toEnosys, toFilter),
				bpfJump(bpfJgt, x32, toEnosys, toFilter))
		case hasAmd:
			s = append(s,
				bpfJump(bpfJset, x32SyscallBit, toFilter, 0),
				bpfJump(bpfJgt, amd, toEnosys, toFilter))
		case hasX32:
			s = append(s,
				bpfJump(bpfJset, x32SyscallBit, 0, toFilter),
				bpfJump(bpfJgt, x32, toEnosys, toFilter))
		default:
			for arch, hi := range g.max { // exactly one
				if arch == libseccomp.ArchS390 || arch == libseccomp.ArchS390X {
					// Numbers the kernel does not know arrive as 0, the
					// long-dead setup(2), on s390.
					s = append(s, bpfJump(bpfJeq, 0, toEnosys, 0))
				}
				s = append(s, bpfJump(bpfJgt, hi, toEnosys, toFilter))
			}
		}
		s = append(s, bpfStmt(bpfJa, 0), bpfStmt(bpfRet, retErrno|uint32(unix.ENOSYS)))
		jaAt, retAt := len(s)-2, len(s)-1
		for pc := range s[:jaAt] {
			for _, j := range []*uint8{&s[pc].Jt, &s[pc].Jf} {
				switch *j {
				case toFilter:
					*j = uint8(jaAt - pc - 1)
				case toEnosys:
					*j = uint8(retAt - pc - 1)
				}
			}
		}
		sections = append(sections, s)
	}

	// Header: load arch, then per group "jeq audit, 0, 1; ja section",
	// then "ja filter" for any other arch.
	header := 1 + 2*len(groups) + 1
	total := header
	for _, s := range sections {
		total += len(s)
	}
	prog := make([]unix.SockFilter, 0, total)
	prog = append(prog, bpfStmt(bpfLoadWord, offArch))
	start := header
	for i, g := range groups {
		prog = append(prog, bpfJump(bpfJeq, g.audit, 0, 1))
		prog = append(prog, bpfStmt(bpfJa, uint32(start-len(prog)-1)))
		start += len(sections[i])
	}
	prog = append(prog, bpfStmt(bpfJa, uint32(total-len(prog)-1)))
	for _, s := range sections {
		base := len(prog)
		s[len(s)-2].K = uint32(total - (base + len(s) - 2) - 1)
		prog = append(prog, s...)
	}
	return prog
}
