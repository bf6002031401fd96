package initproc

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/plan"
)

type fakeSys struct {
	calls []string
	fail  string
}

func (f *fakeSys) rec(c string) error {
	f.calls = append(f.calls, c)
	if c == f.fail {
		return errors.New("EPERM (fake)")
	}
	return nil
}
func (f *fakeSys) Umask(m int)                  { f.rec("umask") }
func (f *fakeSys) Sethostname(n string) error   { return f.rec("sethostname " + n) }
func (f *fakeSys) Setdomainname(n string) error { return f.rec("setdomainname " + n) }
func (f *fakeSys) WriteFile(p, v string) error  { return f.rec("write " + p + "=" + v) }
func (f *fakeSys) Setsid() error                { return f.rec("setsid") }

func steps(ss ...plan.Step) []plan.Step {
	for i := range ss {
		ss[i].FD = plan.NoFD
	}
	return ss
}

// The applier makes the syscalls of the steps in the plan's order.
func TestApplyOrder(t *testing.T) {
	fs := &fakeSys{}
	a := &applier{sys: fs, plan: &plan.Plan{}}
	err := apply(a, steps(
		plan.Step{Op: plan.OpUmask},
		plan.Step{Op: plan.OpSysctl, Path: "net/ipv4/ip_forward", Value: "1"},
		plan.Step{Op: plan.OpHostname, Value: "h"},
		plan.Step{Op: plan.OpDomainname, Value: "d"},
		plan.Step{Op: plan.OpSetsid},
	), handlers)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"umask", "write /proc/sys/net/ipv4/ip_forward=1", "sethostname h", "setdomainname d", "setsid"}
	if !reflect.DeepEqual(fs.calls, want) {
		t.Fatalf("calls %q, want %q", fs.calls, want)
	}
}

// When step N fails, nothing after it runs, and the error names the step
// by number and kind and keeps the cause.
func TestApplyStopsAtFailingStep(t *testing.T) {
	fs := &fakeSys{fail: "sethostname h"}
	a := &applier{sys: fs, plan: &plan.Plan{}}
	err := apply(a, steps(
		plan.Step{Op: plan.OpSysctl, Path: "kernel/x", Value: "1"},
		plan.Step{Op: plan.OpHostname, Value: "h"},
		plan.Step{Op: plan.OpSetsid},
	), handlers)
	if err == nil || !strings.HasPrefix(err.Error(), "step 2 hostname: ") || !strings.Contains(err.Error(), "EPERM (fake)") {
		t.Fatalf("error %v", err)
	}
	if len(fs.calls) != 2 {
		t.Fatalf("ran on after the failure: %q", fs.calls)
	}
}

// Every step kind has a handler: a plan from any front end can be applied.
func TestEveryOpHasHandler(t *testing.T) {
	for _, op := range []plan.Op{plan.OpUmask, plan.OpPropagation, plan.OpParentPrivate, plan.OpBindRoot, plan.OpMount,
		plan.OpDev, plan.OpDir, plan.OpFile, plan.OpBindData, plan.OpSymlink, plan.OpChmod, plan.OpRemountRO, plan.OpMask,
		plan.OpReadonly, plan.OpLoopback, plan.OpSysctl, plan.OpHostname, plan.OpDomainname, plan.OpRuntimeHooks,
		plan.OpHooks, plan.OpPivotRoot, plan.OpMoveRoot, plan.OpChroot, plan.OpSetsid, plan.OpConsole, plan.OpKeyring,
		plan.OpPersonality, plan.OpCloseFds, plan.OpCwd, plan.OpCwdAsUser, plan.OpNoNewPrivs, plan.OpAppArmor,
		plan.OpSELinux, plan.OpRlimit, plan.OpSeccomp, plan.OpBounding, plan.OpUser, plan.OpCaps, plan.OpLookup,
		plan.OpReady, plan.OpWaitStart, plan.OpExec} {
		if handlers[op] == nil {
			t.Errorf("no handler for %s", op)
		}
	}
	a := &applier{sys: &fakeSys{}, plan: &plan.Plan{}}
	if err := apply(a, steps(plan.Step{Op: "teleport"}), handlers); err == nil || !strings.Contains(err.Error(), "step 1 teleport") {
		t.Fatalf("unknown kind: %v", err)
	}
}

// A mount step before the root is bound fails, naming itself, and closes
// the fd it was given rather than leak it past pivot_root.
func TestMountWithoutRoot(t *testing.T) {
	a := &applier{sys: &fakeSys{}, plan: &plan.Plan{}, fds: []int{-1}}
	s := steps(plan.Step{Op: plan.OpMount})
	s[0].FD = 0
	if err := apply(a, s, handlers); err == nil || !strings.HasPrefix(err.Error(), "step 1 mount") {
		t.Fatalf("%v", err)
	}
	if a.fds[0] != -1 {
		t.Fatalf("fd not taken")
	}
}
