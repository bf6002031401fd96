package security

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

func errnoRet(e unix.Errno) *uint { v := uint(e); return &v }

func build(t *testing.T, cfg *specs.LinuxSeccomp) []unix.SockFilter {
	t.Helper()
	plan, err := buildSeccomp(cfg)
	if err != nil {
		t.Fatalf("buildSeccomp: %v", err)
	}
	defer plan.release()
	prog, err := plan.program()
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

func TestBuildSeccompErrors(t *testing.T) {
	allow := specs.ActAllow
	for _, tc := range []struct {
		name string
		cfg  specs.LinuxSeccomp
		want string
	}{
		{"default action", specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"},
			`linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"`},
		{"syscall action", specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActErrno},
			{Names: []string{"read"}, Action: specs.ActErrno},
			{Names: []string{"read"}, Action: specs.ActErrno},
			{Names: []string{"mkdir"}, Action: "X"},
		}}, `linux.seccomp.syscalls[3].action: unknown action "X"`},
		{"arch", specs.LinuxSeccomp{DefaultAction: allow, Architectures: []specs.Arch{specs.ArchX86_64, "SCMP_ARCH_VAX"}},
			`linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_VAX"`},
		{"arch without prefix", specs.LinuxSeccomp{DefaultAction: allow, Architectures: []specs.Arch{"amd64"}},
			`linux.seccomp.architectures[0]: unknown architecture "amd64"`},
		{"op", specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActErrno},
			{Names: []string{"mkdir"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo}, {Index: 1, Op: "SCMP_CMP_ALMOST"}}},
		}}, `linux.seccomp.syscalls[1].args[1].op: unknown operator "SCMP_CMP_ALMOST"`},
		{"arg index", specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}},
		}}, `linux.seccomp.syscalls[0].args[0].index: 6 is out of range`},
		{"flag", specs.LinuxSeccomp{DefaultAction: allow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, "SECCOMP_FILTER_FLAG_NOPE"}},
			`linux.seccomp.flags[1]: unknown flag "SECCOMP_FILTER_FLAG_NOPE"`},
		{"errnoRet", specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: errnoRet(70000)},
		}}, `linux.seccomp.syscalls[0].action: errnoRet 70000 does not fit`},
		{"notify default", specs.LinuxSeccomp{DefaultAction: specs.ActNotify},
			`linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action`},
		{"notify sendmsg", specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "sendmsg"}, Action: specs.ActNotify},
		}}, `linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall`},
		{"empty name", specs.LinuxSeccomp{DefaultAction: allow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", ""}, Action: specs.ActErrno},
		}}, `linux.seccomp.syscalls[0].names[1]: empty syscall name`},
		{"wait killable without notify", specs.LinuxSeccomp{DefaultAction: allow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}},
			`linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a SCMP_ACT_NOTIFY rule`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := buildSeccomp(&tc.cfg)
			if err == nil {
				plan.release()
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestBuildSeccompKernelLacks(t *testing.T) {
	defer func(a func(uint32) bool, f func(uintptr) bool) { kernelHasAction, kernelHasFlag = a, f }(kernelHasAction, kernelHasFlag)
	kernelHasAction = func(ret uint32) bool { return ret != retUserNotif && ret != retLog }
	kernelHasFlag = func(flags uintptr) bool { return flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV == 0 }

	for _, tc := range []struct {
		cfg  specs.LinuxSeccomp
		want string
	}{
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir"}, Action: specs.ActErrno},
			{Names: []string{"mkdirat"}, Action: specs.ActNotify},
		}}, "linux.seccomp.syscalls[1].action: the running kernel lacks seccomp action SCMP_ACT_NOTIFY"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActLog},
			"linux.seccomp.defaultAction: the running kernel lacks seccomp action SCMP_ACT_LOG"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}},
			"linux.seccomp.flags[0]: the running kernel lacks seccomp filter flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
	} {
		plan, err := buildSeccomp(&tc.cfg)
		if err == nil {
			plan.release()
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

func TestBuildSeccompFlags(t *testing.T) {
	defer func(f func(uintptr) bool) { kernelHasFlag = f }(kernelHasFlag)
	kernelHasFlag = func(uintptr) bool { return true }
	for _, tc := range []struct {
		flags []specs.LinuxSeccompFlag
		sys   []specs.LinuxSyscall
		want  uintptr
	}{
		// runc's default when flags are absent
		{nil, nil, unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW},
		{[]specs.LinuxSeccompFlag{}, nil, 0},
		{[]specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog}, nil, unix.SECCOMP_FILTER_FLAG_LOG},
		{[]specs.LinuxSeccompFlag{flagTsync}, nil, unix.SECCOMP_FILTER_FLAG_TSYNC},
		{[]specs.LinuxSeccompFlag{}, []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActNotify}},
			unix.SECCOMP_FILTER_FLAG_NEW_LISTENER},
		{[]specs.LinuxSeccompFlag{flagTsync}, []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActNotify}},
			unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER},
	} {
		plan, err := buildSeccomp(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: tc.flags, Syscalls: tc.sys})
		if err != nil {
			t.Errorf("flags %v: %v", tc.flags, err)
			continue
		}
		if plan.flags != tc.want {
			t.Errorf("flags %v: got %#x, want %#x", tc.flags, plan.flags, tc.want)
		}
		plan.release()
	}
}

// bpfRun interprets the classic BPF subset libseccomp and the prologue
// use, so filters can be checked without loading them.
func bpfRun(t *testing.T, prog []unix.SockFilter, arch uint32, nr int32, args ...uint64) uint32 {
	t.Helper()
	var data [64]byte
	binary.NativeEndian.PutUint32(data[0:], uint32(nr))
	binary.NativeEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.NativeEndian.PutUint64(data[16+8*i:], a)
	}
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = binary.NativeEndian.Uint32(data[in.K:])
		case unix.BPF_LD | unix.BPF_IMM:
			a = in.K
		case unix.BPF_LD | unix.BPF_MEM:
			a = mem[in.K]
		case unix.BPF_LDX | unix.BPF_IMM:
			x = in.K
		case unix.BPF_LDX | unix.BPF_MEM:
			x = mem[in.K]
		case unix.BPF_ST:
			mem[in.K] = a
		case unix.BPF_STX:
			mem[in.K] = x
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= in.K
		case unix.BPF_MISC | unix.BPF_TAX:
			x = a
		case unix.BPF_MISC | unix.BPF_TXA:
			a = x
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var cond bool
			switch in.Code & 0xf0 {
			case unix.BPF_JEQ:
				cond = a == in.K
			case unix.BPF_JGT:
				cond = a > in.K
			case unix.BPF_JGE:
				cond = a >= in.K
			case unix.BPF_JSET:
				cond = a&in.K != 0
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("bpfRun: unsupported instruction %#x at %d", in.Code, pc)
		}
	}
	t.Fatal("bpfRun: fell off the end")
	return 0
}

func nr(t *testing.T, name string, arch libseccomp.ScmpArch) int32 {
	t.Helper()
	n, err := libseccomp.GetSyscallFromNameByArch(name, arch)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

func TestSeccompProgram(t *testing.T) {
	const (
		eperm  = retErrno | uint32(unix.EPERM)
		enosys = retErrno | uint32(unix.ENOSYS)
		eacces = retErrno | uint32(unix.EACCES)
	)
	cfg := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "openat2", "no_such_syscall_at_all"}, Action: specs.ActAllow},
			{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: errnoRet(unix.EACCES), Args: []specs.LinuxSeccompArg{
				{Index: 2, Op: specs.OpMaskedEqual, Value: 0o070, ValueTwo: 0o070},
			}},
			// Two conditions on one argument become alternatives.
			{Names: []string{"mkdirat"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 2, Op: specs.OpEqualTo, Value: 0o711}, {Index: 2, Op: specs.OpEqualTo, Value: 0o744},
			}},
		},
	}
	prog := build(t, cfg)
	amd, x86, x32 := libseccomp.ArchAMD64, libseccomp.ArchX86, libseccomp.ArchX32
	for _, tc := range []struct {
		name  string
		audit uint32
		nr    int32
		args  []uint64
		want  uint32
	}{
		{"amd64 read", unix.AUDIT_ARCH_X86_64, nr(t, "read", amd), nil, retAllow},
		{"amd64 unlisted", unix.AUDIT_ARCH_X86_64, nr(t, "getpid", amd), nil, eperm},
		{"amd64 beyond profile", unix.AUDIT_ARCH_X86_64, nr(t, "openat2", amd) + 1, nil, enosys},
		{"amd64 mkdirat 0770", unix.AUDIT_ARCH_X86_64, nr(t, "mkdirat", amd), []uint64{0, 0, 0o770}, eacces},
		{"amd64 mkdirat 0700", unix.AUDIT_ARCH_X86_64, nr(t, "mkdirat", amd), []uint64{0, 0, 0o700}, eperm},
		{"amd64 mkdirat 0711", unix.AUDIT_ARCH_X86_64, nr(t, "mkdirat", amd), []uint64{0, 0, 0o711}, retAllow},
		{"amd64 mkdirat 0744", unix.AUDIT_ARCH_X86_64, nr(t, "mkdirat", amd), []uint64{0, 0, 0o744}, retAllow},
		{"amd64 mkdirat mask high bits", unix.AUDIT_ARCH_X86_64, nr(t, "mkdirat", amd), []uint64{0, 0, 1<<32 | 0o070}, eacces},
		{"x32 read", unix.AUDIT_ARCH_X86_64, nr(t, "read", x32), nil, retAllow},
		{"x32 beyond profile", unix.AUDIT_ARCH_X86_64, nr(t, "openat2", x32) + 1, nil, enosys},
		{"i386 read", unix.AUDIT_ARCH_I386, nr(t, "read", x86), nil, retAllow},
		{"i386 beyond profile", unix.AUDIT_ARCH_I386, nr(t, "openat2", x86) + 1, nil, enosys},
		{"i386 unlisted", unix.AUDIT_ARCH_I386, nr(t, "getpid", x86), nil, eperm},
		{"foreign arch", unix.AUDIT_ARCH_AARCH64, 0, nil, retKillThread},
	} {
		if got := bpfRun(t, prog, tc.audit, tc.nr, tc.args...); got != tc.want {
			t.Errorf("%s: got %#x, want %#x", tc.name, got, tc.want)
		}
	}

	// runc's conditions for leaving the prologue out.
	for _, c := range []*specs.LinuxSeccomp{
		{DefaultAction: specs.ActErrno, DefaultErrnoRet: errnoRet(unix.ENOSYS), Architectures: cfg.Architectures, Syscalls: cfg.Syscalls},
		{DefaultAction: specs.ActAllow, Architectures: cfg.Architectures, Syscalls: cfg.Syscalls[1:]},
		{DefaultAction: specs.ActErrno, Syscalls: cfg.Syscalls}, // no architectures listed
	} {
		plan, err := buildSeccomp(c)
		if err != nil {
			t.Fatal(err)
		}
		if plan.stub != nil {
			t.Errorf("%+v: prologue present", c)
		}
		plan.release()
	}
}

// nativeArch is the profile name of the architecture the tests run on.
func nativeArch(t *testing.T) specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return specs.ArchX86_64
	case "arm64":
		return specs.ArchAARCH64
	}
	t.Skip("no profile architecture name for " + runtime.GOARCH)
	return ""
}

// allSyscallsBut lists every syscall libseccomp knows on this architecture
// except the given ones, so a deny-by-default profile still lets the Go
// runtime work.
func allSyscallsBut(except ...string) []string {
	var names []string
	for i := 0; i < 1024; i++ {
		n, err := libseccomp.ScmpSyscall(i).GetName()
		if err != nil {
			continue
		}
		skip := false
		for _, e := range except {
			skip = skip || n == e
		}
		if !skip {
			names = append(names, n)
		}
	}
	return names
}

func errName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// threadSeccompModes returns this thread's seccomp mode and whether some
// other thread of the process has none.
func threadSeccompModes() (self string, otherUnfiltered bool, err error) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return "", false, err
	}
	self = parseKV(string(b))["Seccomp"]
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		return "", false, err
	}
	for _, p := range tasks {
		if b, err := os.ReadFile(p); err == nil && parseKV(string(b))["Seccomp"] == "0" {
			otherUnfiltered = true
		}
	}
	return self, otherUnfiltered, nil
}

func seccompHelper(cfg *specs.LinuxSeccomp, probe func(dir string, fd int)) error {
	fd, err := LoadSeccomp(cfg)
	if err != nil {
		return err
	}
	fmt.Println("fd:", fd)
	self, other, err := threadSeccompModes()
	if err != nil {
		return err
	}
	fmt.Println("seccomp:", self)
	fmt.Println("other thread unfiltered:", other)
	probe(os.Getenv("TEST_DIR"), fd)
	return nil
}

func init() {
	helpers["seccomp-mkdir"] = func() error {
		return seccompHelper(&specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
		}, func(dir string, _ int) {
			fmt.Println("mkdir:", errName(unix.Mkdir(filepath.Join(dir, "a"), 0o755)))
		})
	}
	helpers["seccomp-default-errno"] = func() error {
		var archs []specs.Arch
		if a := os.Getenv("TEST_ARCH"); a != "" {
			archs = []specs.Arch{specs.Arch(a)}
		}
		return seccompHelper(&specs.LinuxSeccomp{
			DefaultAction:   specs.ActErrno,
			DefaultErrnoRet: errnoRet(unix.EACCES),
			Architectures:   archs,
			Flags:           []specs.LinuxSeccompFlag{},
			Syscalls:        []specs.LinuxSyscall{{Names: allSyscallsBut("mkdir", "mkdirat"), Action: specs.ActAllow}},
		}, func(dir string, _ int) {
			fmt.Println("mkdir:", errName(unix.Mkdir(filepath.Join(dir, "a"), 0o755)))
			_, _, e := unix.Syscall(1000, 0, 0, 0)
			fmt.Println("syscall 1000:", errName(e))
		})
	}
	helpers["seccomp-args"] = func() error {
		return seccompHelper(&specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{
					{Index: 2, Op: specs.OpEqualTo, Value: 0o700}}},
				{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: errnoRet(unix.EACCES), Args: []specs.LinuxSeccompArg{
					{Index: 2, Op: specs.OpMaskedEqual, Value: 0o070, ValueTwo: 0o070}}},
				{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: errnoRet(unix.EXDEV), Args: []specs.LinuxSeccompArg{
					{Index: 2, Op: specs.OpEqualTo, Value: 0o711}, {Index: 2, Op: specs.OpEqualTo, Value: 0o744}}},
			},
		}, func(dir string, _ int) {
			for _, mode := range []uint32{0o700, 0o770, 0o711, 0o744, 0o755} {
				err := unix.Mkdir(filepath.Join(dir, fmt.Sprintf("d%o", mode)), mode)
				fmt.Printf("mkdir %o: %s\n", mode, errName(err))
			}
		})
	}
}

func TestLoadSeccompErrno(t *testing.T) {
	got := parseKV(runHelper(t, "seccomp-mkdir", "TEST_DIR="+t.TempDir()))
	expectKV(t, got, map[string]string{
		"fd": "-1", "seccomp": "2", "other thread unfiltered": "true", "mkdir": "EPERM",
	})
}

func TestLoadSeccompDefaultErrnoRet(t *testing.T) {
	arch := nativeArch(t)
	// With the architecture listed the prologue answers ENOSYS beyond the
	// profile; without, the default action answers, as under runc.
	for _, tc := range []struct{ arch, beyond string }{{string(arch), "ENOSYS"}, {"", "EACCES"}} {
		got := parseKV(runHelper(t, "seccomp-default-errno", "TEST_DIR="+t.TempDir(), "TEST_ARCH="+tc.arch))
		expectKV(t, got, map[string]string{"seccomp": "2", "mkdir": "EACCES", "syscall 1000": tc.beyond})
	}
}

func TestLoadSeccompArgs(t *testing.T) {
	got := parseKV(runHelper(t, "seccomp-args", "TEST_DIR="+t.TempDir()))
	expectKV(t, got, map[string]string{
		"mkdir 700": "EPERM", "mkdir 770": "EACCES", "mkdir 711": "EXDEV", "mkdir 744": "EXDEV", "mkdir 755": "ok",
	})
}

func init() {
	helpers["seccomp-notify"] = func() error {
		return seccompHelper(&specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActNotify}},
		}, func(dir string, fd int) {
			l, _ := os.Readlink(fmt.Sprintf("/proc/thread-self/fd/%d", fd))
			fmt.Println("listener:", l)
			// Answer from another goroutine, hence another thread: this one
			// is about to block in the notified mkdirat.
			go func() {
				req, err := libseccomp.NotifReceive(libseccomp.ScmpFd(fd))
				if err != nil {
					fmt.Fprintln(os.Stderr, "receive:", err)
					return
				}
				resp := &libseccomp.ScmpNotifResp{ID: req.ID, Error: int32(unix.EXDEV)}
				if err := libseccomp.NotifRespond(libseccomp.ScmpFd(fd), resp); err != nil {
					fmt.Fprintln(os.Stderr, "respond:", err)
				}
			}()
			fmt.Println("mkdir:", errName(unix.Mkdir(filepath.Join(dir, "n"), 0o755)))
		})
	}
}

func TestLoadSeccompNotify(t *testing.T) {
	got := parseKV(runHelper(t, "seccomp-notify", "TEST_DIR="+t.TempDir()))
	if fd := got["fd"]; fd == "-1" || fd == "" {
		t.Errorf("fd = %q, want a listener", fd)
	}
	expectKV(t, got, map[string]string{"listener": "anon_inode:seccomp notify", "mkdir": "EXDEV"})
}

func TestLoadSeccompNil(t *testing.T) {
	for _, cfg := range []*specs.LinuxSeccomp{nil, {}} {
		if fd, err := LoadSeccomp(cfg); fd != -1 || err != nil {
			t.Errorf("LoadSeccomp(%v) = %d, %v; want -1, nil", cfg, fd, err)
		}
	}
}

func TestSeccompSupported(t *testing.T) {
	if !SeccompSupported() {
		t.Skip("no seccomp here")
	}
	t.Logf("supported flags: %v", SupportedSeccompFlags())
}
