package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestValidateVersion(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"current", nil, ""},
		{"older 1.x", func(s *specs.Spec) { s.Version = "1.0.2-dev" }, ""},
		{"empty", func(s *specs.Spec) { s.Version = "" }, "ociVersion: must not be empty"},
		{"major 2", func(s *specs.Spec) { s.Version = "2.0.0" }, `ociVersion: unsupported version "2.0.0" (want 1.x)`},
		{"garbage", func(s *specs.Spec) { s.Version = "v1" }, `ociVersion: unsupported version "v1" (want 1.x)`},
	})
}

func TestValidateNil(t *testing.T) {
	checkErr(t, Validate(nil, t.TempDir()), "config is empty")
}

func TestValidateRoot(t *testing.T) {
	bundle := newBundle(t)
	file := filepath.Join(bundle, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(bundle, "nope")
	cases := []validateCase{
		{"relative", nil, ""},
		{"absolute", func(s *specs.Spec) { s.Root.Path = filepath.Join(bundle, "rootfs") }, ""},
		{"nil", func(s *specs.Spec) { s.Root = nil }, "root: must not be empty"},
		{"empty path", func(s *specs.Spec) { s.Root.Path = "" }, "root.path: must not be empty"},
		{"missing", func(s *specs.Spec) { s.Root.Path = "nope" }, "root.path: " + missing + ": no such file or directory"},
		{"not a dir", func(s *specs.Spec) { s.Root.Path = file }, "root.path: " + file + ": not a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSpec()
			if tc.mut != nil {
				tc.mut(s)
			}
			checkErr(t, Validate(s, bundle), tc.want)
		})
	}
}

func TestValidateProcess(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"nil", func(s *specs.Spec) { s.Process = nil }, "process: must not be empty"},
		{"cwd empty", func(s *specs.Spec) { s.Process.Cwd = "" }, "process.cwd: must not be empty"},
		{"cwd relative", func(s *specs.Spec) { s.Process.Cwd = "tmp" }, `process.cwd: must be an absolute path, got "tmp"`},
		{"cwd absolute", func(s *specs.Spec) { s.Process.Cwd = "/tmp" }, ""},
		{"args empty", func(s *specs.Spec) { s.Process.Args = nil }, "process.args: must not be empty"},
		{"env ok", func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "EMPTY=", "A=b=c") }, ""},
		{"env no =", func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "FOO") }, `process.env[2]: missing '=' in "FOO"`},
		{"env empty name", func(s *specs.Spec) { s.Process.Env = []string{"=x"} }, `process.env[0]: empty variable name in "=x"`},
		{"env NUL", func(s *specs.Spec) { s.Process.Env = []string{"A=b\x00c"} }, "process.env[0]: contains a NUL byte"},
		{"oomScoreAdj ok", func(s *specs.Spec) { s.Process.OOMScoreAdj = ptr(-1000) }, ""},
		{"oomScoreAdj high", func(s *specs.Spec) { s.Process.OOMScoreAdj = ptr(1001) }, "process.oomScoreAdj: must be in [-1000, 1000], got 1001"},
		{"oomScoreAdj low", func(s *specs.Spec) { s.Process.OOMScoreAdj = ptr(-1001) }, "process.oomScoreAdj: must be in [-1000, 1000], got -1001"},
		{"umask and labels are free", func(s *specs.Spec) {
			s.Process.User.Umask = ptr(uint32(0o22))
			s.Process.ApparmorProfile = "anything at all"
			s.Process.SelinuxLabel = "system_u:system_r:container_t:s0"
		}, ""},
	})
}

func TestValidateRlimits(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"several", func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_CORE", Soft: 0, Hard: 10})
		}, ""},
		{"unknown", func(s *specs.Spec) { s.Process.Rlimits[0].Type = "RLIMIT_FOO" }, `process.rlimits[0].type: unknown resource limit "RLIMIT_FOO"`},
		{"lower case", func(s *specs.Spec) { s.Process.Rlimits[0].Type = "rlimit_nofile" }, `process.rlimits[0].type: unknown resource limit "rlimit_nofile"`},
		{"duplicate", func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1})
		}, `process.rlimits[1].type: duplicate "RLIMIT_NOFILE" (also at process.rlimits[0])`},
		{"soft > hard", func(s *specs.Spec) { s.Process.Rlimits[0].Soft = 2048 }, "process.rlimits[0]: soft limit 2048 exceeds hard limit 1024"},
	})
}

func TestValidateCapabilities(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"all sets", func(s *specs.Spec) {
			c := s.Process.Capabilities
			c.Inheritable = []string{"CAP_CHOWN"}
			c.Ambient = []string{"CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"}
		}, ""},
		{"nil", func(s *specs.Spec) { s.Process.Capabilities = nil }, ""},
		{"bounding", func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding[:2], "CAP_TEST")
		}, `process.capabilities.bounding[2]: unknown capability "CAP_TEST"`},
		{"effective lower case", func(s *specs.Spec) { s.Process.Capabilities.Effective[0] = "cap_kill" }, `process.capabilities.effective[0]: unknown capability "cap_kill"`},
		{"inheritable no prefix", func(s *specs.Spec) { s.Process.Capabilities.Inheritable = []string{"KILL"} }, `process.capabilities.inheritable[0]: unknown capability "KILL"`},
		{"permitted", func(s *specs.Spec) { s.Process.Capabilities.Permitted[1] = "" }, `process.capabilities.permitted[1]: unknown capability ""`},
		{"ambient", func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"CAP_KILL", "CAP_NOPE"} }, `process.capabilities.ambient[1]: unknown capability "CAP_NOPE"`},
	})
}

func TestValidateScheduler(t *testing.T) {
	sched := func(sc specs.Scheduler) func(*specs.Spec) {
		return func(s *specs.Spec) { s.Process.Scheduler = &sc }
	}
	runValidateCases(t, []validateCase{
		{"fifo", sched(specs.Scheduler{Policy: specs.SchedFIFO, Priority: 10, Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork}}), ""},
		{"deadline", sched(specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 1, Deadline: 2, Period: 3}), ""},
		{"no policy", sched(specs.Scheduler{Nice: 1}), "process.scheduler.policy: must not be empty"},
		{"bad policy", sched(specs.Scheduler{Policy: "SCHED_FAST"}), `process.scheduler.policy: unknown policy "SCHED_FAST"`},
		{"nice", sched(specs.Scheduler{Policy: specs.SchedOther, Nice: 20}), "process.scheduler.nice: must be in [-20, 19], got 20"},
		{"priority", sched(specs.Scheduler{Policy: specs.SchedOther, Priority: 1}), "process.scheduler.priority: only allowed with SCHED_FIFO or SCHED_RR"},
		{"deadline fields", sched(specs.Scheduler{Policy: specs.SchedBatch, Runtime: 1}), "process.scheduler: runtime, deadline and period are only allowed with SCHED_DEADLINE"},
		{"flag", sched(specs.Scheduler{Policy: specs.SchedOther, Flags: []specs.LinuxSchedulerFlag{"X"}}), `process.scheduler.flags[0]: unknown flag "X"`},
	})
}

func TestValidateIOPriority(t *testing.T) {
	prio := func(c specs.IOPriorityClass, p int) func(*specs.Spec) {
		return func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: c, Priority: p} }
	}
	runValidateCases(t, []validateCase{
		{"ok", prio(specs.IOPRIO_CLASS_BE, 7), ""},
		{"class", prio("IOPRIO_CLASS_FAST", 0), `process.ioPriority.class: unknown class "IOPRIO_CLASS_FAST"`},
		{"priority", prio(specs.IOPRIO_CLASS_RT, 8), "process.ioPriority.priority: must be in [0, 7], got 8"},
	})
}

func TestValidateUTS(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"hostname", func(s *specs.Spec) { s.Hostname = strings.Repeat("h", 64) }, ""},
		{"domainname", func(s *specs.Spec) { s.Domainname = "example.org" }, ""},
		{"no uts, no names", func(s *specs.Spec) { s.Hostname = ""; removeNS(s, specs.UTSNamespace) }, ""},
		{"hostname without uts", func(s *specs.Spec) { removeNS(s, specs.UTSNamespace) },
			`hostname: requires a new UTS namespace (linux.namespaces has no "uts")`},
		{"domainname without uts", func(s *specs.Spec) {
			s.Hostname = ""
			s.Domainname = "x"
			removeNS(s, specs.UTSNamespace)
		}, `domainname: requires a new UTS namespace (linux.namespaces has no "uts")`},
		{"no linux section", func(s *specs.Spec) { s.Linux = nil },
			`hostname: requires a new UTS namespace (linux.namespaces has no "uts")`},
		{"hostname too long", func(s *specs.Spec) { s.Hostname = strings.Repeat("h", 65) }, "hostname: must be at most 64 bytes, got 65"},
		{"domainname too long", func(s *specs.Spec) { s.Domainname = strings.Repeat("d", 100) }, "domainname: must be at most 64 bytes, got 100"},
	})
}

func TestValidateHooks(t *testing.T) {
	hook := func(h specs.Hook) func(*specs.Spec) {
		return func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{
				CreateRuntime: []specs.Hook{{Path: "/bin/true"}},
				Poststop:      []specs.Hook{{Path: "/bin/true"}, h},
			}
		}
	}
	runValidateCases(t, []validateCase{
		{"ok", hook(specs.Hook{Path: "/usr/bin/hook", Args: []string{"hook", "x"}, Env: []string{"A=1"}, Timeout: ptr(5)}), ""},
		{"relative", hook(specs.Hook{Path: "hook"}), `hooks.poststop[1].path: must be an absolute path, got "hook"`},
		{"empty", hook(specs.Hook{}), "hooks.poststop[1].path: must not be empty"},
		{"timeout 0", hook(specs.Hook{Path: "/h", Timeout: ptr(0)}), "hooks.poststop[1].timeout: must be greater than 0, got 0"},
		{"timeout negative", hook(specs.Hook{Path: "/h", Timeout: ptr(-3)}), "hooks.poststop[1].timeout: must be greater than 0, got -3"},
		{"env", hook(specs.Hook{Path: "/h", Env: []string{"X"}}), `hooks.poststop[1].env[0]: missing '=' in "X"`},
		{"prestart", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "rel"}}} //nolint:staticcheck // deprecated field is still validated
		}, `hooks.prestart[0].path: must be an absolute path, got "rel"`},
		{"startContainer", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "rel"}}}
		}, `hooks.startContainer[0].path: must be an absolute path, got "rel"`},
	})
}

func TestFieldError(t *testing.T) {
	err := error(&FieldError{Field: "a.b[1]", Msg: "bad\nthing"})
	if got, want := err.Error(), `a.b[1]: bad\nthing`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	checkErrShape(t, err)
	if got := (&FieldError{Msg: "whole"}).Error(); got != "whole" {
		t.Errorf("Error() without field = %q", got)
	}
}

func TestValidateErrorsAreOneLine(t *testing.T) {
	bundle := newBundle(t)
	s := baseSpec()
	s.Mounts[0].Destination = "a\nb"
	err := Validate(s, bundle)
	checkErr(t, err, `mounts[0].destination: must be an absolute path, got "a\nb"`)

	s = baseSpec()
	s.Root.Path = "x\ny"
	err = Validate(s, bundle)
	if err == nil {
		t.Fatal("expected an error")
	}
	checkErrShape(t, err)
}
