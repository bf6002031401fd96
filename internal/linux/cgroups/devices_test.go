package cgroups

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func rule(allow bool, typ devType, major, minor int64, perms string) devRule {
	return devRule{typ: typ, major: major, minor: minor, perms: devPerms(perms), allow: allow}
}

// runProgram interprets the instruction subset program() emits, so the
// generated filter can be checked without loading it into a kernel.
func runProgram(t *testing.T, p []bpfInsn, typ, access, major, minor uint32) bool {
	t.Helper()
	ctx := [3]uint32{typ | access<<16, major, minor}
	var reg [11]uint64
	for pc := 0; pc < len(p); pc++ {
		in := p[pc]
		dst, src := in.regs&0xf, in.regs>>4
		switch in.code {
		case unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W:
			if src != r1 || in.off%4 != 0 {
				t.Fatalf("pc %d: unexpected load", pc)
			}
			reg[dst] = uint64(ctx[in.off/4])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			reg[dst] = uint64(uint32(reg[dst]) & uint32(in.imm))
		case unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K:
			reg[dst] = uint64(uint32(reg[dst]) >> uint32(in.imm))
		case unix.BPF_ALU | unix.BPF_MOV | unix.BPF_K:
			reg[dst] = uint64(uint32(in.imm))
		case unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X:
			reg[dst] = uint64(uint32(reg[src]))
		case unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K:
			if reg[dst] != uint64(int64(in.imm)) {
				pc += int(in.off)
			}
		case unix.BPF_JMP | bpfJEQ | unix.BPF_K:
			if reg[dst] == uint64(int64(in.imm)) {
				pc += int(in.off)
			}
		case unix.BPF_JMP | unix.BPF_JNE | unix.BPF_X:
			if reg[dst] != reg[src] {
				pc += int(in.off)
			}
		case unix.BPF_JMP | unix.BPF_EXIT:
			return reg[r0] == 1
		default:
			t.Fatalf("pc %d: unknown opcode %#x", pc, in.code)
		}
	}
	t.Fatal("program ran off the end")
	return false
}

const (
	accR   = unix.BPF_DEVCG_ACC_READ
	accW   = unix.BPF_DEVCG_ACC_WRITE
	accM   = unix.BPF_DEVCG_ACC_MKNOD
	chr    = unix.BPF_DEVCG_DEV_CHAR
	blk    = unix.BPF_DEVCG_DEV_BLOCK
	accRW  = accR | accW
	accRWM = accR | accW | accM
)

func TestDeviceFilterProgram(t *testing.T) {
	defaults := defaultDeviceRules(nil)
	type check struct {
		typ, access, major, minor uint32
		want                      bool
	}
	for name, tc := range map[string]struct {
		rules  []devRule
		checks []check
	}{
		"empty denies all": {nil, []check{{chr, accR, 1, 3, false}, {blk, accM, 8, 0, false}}},
		"container defaults": {
			append([]devRule{rule(false, wildcardDevice, -1, -1, "rwm")}, defaults...),
			[]check{
				{chr, accRW, 1, 3, true}, {chr, accR, 1, 5, true}, {chr, accRW, 136, 7, true},
				{chr, accR, 10, 229, false}, {chr, accM, 10, 229, true}, {chr, accRW, 10, 200, true}, {blk, accM, 8, 0, true},
				{blk, accR, 8, 0, false}, {chr, accRWM, 5, 2, true},
			},
		},
		"partial allow must cover request": {
			[]devRule{rule(true, charDevice, 1, 3, "r")},
			[]check{{chr, accR, 1, 3, true}, {chr, accRW, 1, 3, false}, {blk, accR, 1, 3, false}},
		},
		"allows for one node merge": {
			[]devRule{rule(true, charDevice, 1, 3, "r"), rule(true, charDevice, 1, 3, "w")},
			[]check{{chr, accRW, 1, 3, true}, {chr, accM, 1, 3, false}},
		},
		"deny narrows exact match": {
			[]devRule{rule(true, charDevice, 1, 3, "rwm"), rule(false, charDevice, 1, 3, "w")},
			[]check{{chr, accR, 1, 3, true}, {chr, accW, 1, 3, false}},
		},
		"allow all then deny overlapping": {
			[]devRule{rule(true, wildcardDevice, -1, -1, "rwm"), rule(false, charDevice, 1, -1, "w")},
			[]check{{chr, accR, 1, 3, true}, {chr, accRW, 1, 3, false}, {chr, accW, 2, 3, true}, {blk, accW, 1, 3, true}},
		},
		"later wildcard resets": {
			[]devRule{rule(true, charDevice, 1, 3, "rwm"), rule(false, wildcardDevice, -1, -1, "rwm")},
			[]check{{chr, accR, 1, 3, false}},
		},
	} {
		s, err := buildDevState(tc.rules)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, err := s.program()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range tc.checks {
			if got := runProgram(t, p, c.typ, c.access, c.major, c.minor); got != c.want {
				t.Errorf("%s: type %d access %#x %d:%d = %v, want %v", name, c.typ, c.access, c.major, c.minor, got, c.want)
			}
		}
	}
}

func TestDevStateRejectsBadRules(t *testing.T) {
	for _, r := range []devRule{
		rule(true, fifoDevice, 1, 1, "r"),
		rule(true, charDevice, 1, 1, "rx"),
	} {
		if _, err := buildDevState([]devRule{r}); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	we := &writeError{Path: "/sys/fs/cgroup/memory/x/memory.limit_in_bytes", Value: "-5", Err: unix.EINVAL}
	err := wrapErr("memory", we)
	want := `cgroup memory: write /sys/fs/cgroup/memory/x/memory.limit_in_bytes "-5": invalid argument`
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Error("errno lost")
	}
	if again := wrapErr("cpu", err); again != err {
		t.Error("re-wrapping replaced the controller")
	}
	if got := wrapErr("", errors.New("x")).Error(); got != "cgroup: x" {
		t.Errorf("unlabelled: %q", got)
	}
	if !errors.Is(&writeError{Err: unix.ENOENT}, os.ErrNotExist) {
		t.Error("ENOENT is not ErrNotExist")
	}
	for file, want := range map[string]string{"cgroup.freeze": "freezer", "cpu.max": "cpu", "io.weight": "io", "weird": ""} {
		if got := controllerOfFile(file); got != want {
			t.Errorf("controllerOfFile(%q) = %q, want %q", file, got, want)
		}
	}
	if !errors.Is(&Error{Controller: "hugetlb", Err: ErrNotMounted}, ErrNotMounted) {
		t.Error("ErrNotMounted not matched")
	}
}

func TestNewRejectsSharedPaths(t *testing.T) {
	for _, cfg := range []Config{{}, {ID: ".."}, {CgroupsPath: "/"}, {CgroupsPath: "/../.."}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestLoadRejectsForeignPaths(t *testing.T) {
	for _, p := range []string{"/tmp/x", "/sys/fs/cgroup/../../tmp", "relative"} {
		if _, err := Load(map[string]string{"memory": p, "": p}, false, ""); err == nil {
			t.Errorf("Load accepted %q", p)
		}
	}
}
