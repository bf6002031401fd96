package bwrap

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/hako-runtime/hako/internal/plan"
)

func noFD(int) ([]byte, error) { return nil, os.ErrNotExist }

func TestParseErrors(t *testing.T) {
	for argv, want := range map[string]string{
		"--bind /":                         "--bind takes two arguments",
		"--tmpfs":                          "--tmpfs takes an argument",
		"--chdir":                          "--chdir takes one argument",
		"--frob x":                         "Unknown option --frob",
		"--perms 8 --dir /x":               "--perms takes an octal argument <= 07777",
		"--perms 0700 --bind / /":          "--perms must be followed by an option that creates a file",
		"--size 10 --dir /x":               "--size must be followed by --tmpfs",
		"--size 0 --tmpfs /x":              "--size takes a non-zero number of bytes",
		"--file x /y":                      "Invalid fd: x",
		"--uid -1":                         "Invalid uid: -1",
		"--cap-add nope":                   "unknown cap: nope",
		"--seccomp 3 --add-seccomp-fd 4":   "--add-seccomp-fd cannot be combined with --seccomp",
		"--userns2 x":                      "Invalid fd: x",
		"--userns x":                       "Invalid fd: x",
		"--overlay-src /a":                 "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
		"--overlay-src /a --dir /x":        "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
		"--overlay-src":                    "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
		"--tmp-overlay /x":                 "--tmp-overlay requires at least one --overlay-src",
		"--overlay-src /a --ro-overlay /x": "--ro-overlay requires at least two --overlay-src",
		"--overlay-src /a --overlay /u /w": "--overlay takes three arguments",
		"--overlay /u /w /x":               "--overlay requires at least one --overlay-src",
		"--argv0 a --argv0 b":              "--argv0 used multiple times",
		"--argv0":                          "--argv0 takes one argument",
		"--lock-file":                      "--lock-file takes an argument",
		"--ro-bind-fd 3":                   "--bind-fd takes two arguments",
		"--bind-fd x /y":                   "Invalid fd: x",
	} {
		_, err := Parse(strings.Fields(argv), nil, noFD)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", argv, err, want)
		}
	}
}

// The overlay layers go to overlayfs top first: the last --overlay-src is
// the top one.
func TestParseOverlayOrder(t *testing.T) {
	o, err := Parse(strings.Fields("--overlay-src /a --overlay-src /b --tmp-overlay /x --overlay-src /c --overlay /u /w /y true"), nil, noFD)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Ops) != 2 || strings.Join(o.Ops[0].Sources, " ") != "/b /a" || o.Ops[1].Source != "/u" || o.Ops[1].Work != "/w" ||
		strings.Join(o.Ops[1].Sources, " ") != "/c" || o.TmpOverlays != 1 {
		t.Errorf("overlays: %+v", o.Ops)
	}
}

func TestParseOrderAndModifiers(t *testing.T) {
	args := "--ro-bind /usr /usr --perms 0700 --size 4096 --tmpfs /tmp --symlink usr/lib /lib --dir /d --clearenv --setenv A 1 -- sh -c x"
	o, err := Parse(strings.Fields(args), []string{"HOME=/h"}, noFD)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []Kind{ROBind, Tmpfs, Symlink, Dir}
	if len(o.Ops) != len(kinds) {
		t.Fatalf("ops %+v", o.Ops)
	}
	for i, k := range kinds {
		if o.Ops[i].Kind != k {
			t.Errorf("op %d: %s, want %s", i, o.Ops[i].Kind, k)
		}
	}
	if o.Ops[1].Perms != 0o700 || o.Ops[1].Size != 4096 || o.Ops[3].Perms != 0o755 {
		t.Errorf("modifiers: %+v", o.Ops)
	}
	if strings.Join(o.Env, " ") != "A=1" || strings.Join(o.Args, " ") != "sh -c x" {
		t.Errorf("env %q args %q", o.Env, o.Args)
	}
}

func TestArgsFD(t *testing.T) {
	read := func(fd int) ([]byte, error) {
		if fd != 7 {
			return nil, errors.New("bad fd")
		}
		return []byte("--unshare-pid\x00--setenv\x00K\x00v w\x00"), nil
	}
	o, err := Parse([]string{"--args", "7", "true"}, nil, read)
	if err != nil {
		t.Fatal(err)
	}
	if !o.UnsharePID || len(o.Env) != 1 || o.Env[0] != "K=v w" || o.Args[0] != "true" {
		t.Errorf("--args: %+v", o)
	}
	if _, err := Parse([]string{"--args", "7", "true"}, nil, func(int) ([]byte, error) { return []byte("--args\x007\x00"), nil }); err == nil || err.Error() != "--args not supported in arguments file" {
		t.Errorf("nested --args: %v", err)
	}
}

// One plan step per setup operation, in the order given, between the new
// root and the final pivot; a missing source fails with bwrap's words
// unless it is a -try.
// A --lock-file and --sync-fd make an init even without a PID namespace;
// it holds the sync fd, the command gets it only with --as-pid-1.
func TestCompileInit(t *testing.T) {
	h := &Host{UID: 0, GID: 0, Cwd: "/", Stat: func(string) error { return nil }}
	for argv, want := range map[string]string{
		"--sync-fd 5 true":                          "hold-fd:5 hold-fd:status reaper",
		"--lock-file /l true":                       "hold-fd:status lock-file reaper",
		"--unshare-pid --as-pid-1 --sync-fd 5 true": "",
		"true": "",
	} {
		o, err := Parse(strings.Fields(argv), nil, noFD)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := Compile(o, h)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range sb.Plan.Steps {
			switch {
			case s.Op == plan.OpHoldFD && s.Value == "status":
				got = append(got, "hold-fd:status")
			case s.Op == plan.OpHoldFD:
				got = append(got, fmt.Sprintf("hold-fd:%d", sb.FDs[s.FD]))
			case s.Op == plan.OpLockFile:
				got = append(got, "lock-file")
			case s.Op == plan.OpLookup && s.Exec.Reaper:
				got = append(got, "reaper")
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: %q, want %q", argv, strings.Join(got, " "), want)
		}
	}
}

func TestCompile(t *testing.T) {
	o, err := Parse(strings.Fields("--ro-bind /usr /usr --bind-try /missing /m --symlink usr/lib /lib --tmpfs /tmp --dir /tmp/x --chmod 0700 /tmp/x --unshare-all true"), nil, noFD)
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{UID: 1000, GID: 1000, Umask: 0o022, Cwd: "/", Stat: func(p string) error {
		if p == "/missing" {
			return &os.PathError{Op: "stat", Path: p, Err: syscall.ENOENT}
		}
		return nil
	}}
	sb, err := Compile(o, h)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	inside := false
	for _, s := range sb.Plan.Steps {
		switch s.Op {
		case plan.OpNewRoot:
			inside = true
			continue
		case plan.OpPivotRoot:
			inside = false
		}
		if inside {
			got = append(got, string(s.Op))
		}
	}
	// --unshare-all's PID namespace has an init, which reports the
	// status on the fd it holds.
	want := "mount symlink mount dir chmod loopback-up hold-fd"
	if strings.Join(got, " ") != want || sb.StatusFD != 0 {
		t.Errorf("steps %q, want %q", strings.Join(got, " "), want)
	}
	if sb.UIDMaps[0].HostID != 1000 || sb.UIDMaps[0].ContainerID != 1000 {
		t.Errorf("uid map %+v", sb.UIDMaps)
	}
	o2, _ := Parse(strings.Fields("--ro-bind /missing /m true"), nil, noFD)
	if _, err := Compile(o2, h); err == nil || err.Error() != "Can't find source path /missing: No such file or directory" {
		t.Errorf("missing source: %v", err)
	}
}

// FuzzParse: any argv either parses or fails with a bwrap-style error; it
// never panics, and what parses compiles or fails the same way.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"--ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent true",
		"--perms 0700 --size 1024 --tmpfs /x sh",
		"--args 3 --file 4 /f --bind-data 5 /d --chmod 0755 /d --symlink a b --",
		"--cap-drop ALL --cap-add cap_net_raw --uid 0 --gid 0 --unshare-user --hostname h --unshare-uts x",
		"--seccomp 3 --info-fd 4 --json-status-fd 5 --block-fd 6 --sync-fd 7 --new-session --as-pid-1 y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv := strings.Split(s, " ")
		o, err := Parse(argv, []string{"A=b"}, func(int) ([]byte, error) { return []byte("--dir\x00/z\x00"), nil })
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Text == "" {
				t.Fatalf("%q: error %v is not a bwrap error", s, err)
			}
			return
		}
		h := &Host{UID: 1000, GID: 1000, Stat: func(string) error { return nil }, ReadFD: func(int) ([]byte, error) { return make([]byte, 8), nil }}
		if _, err := Compile(o, h); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%q: compile error %v is not a bwrap error", s, err)
			}
		}
	})
}

// --userns2: its fd and the binary are held before the root change (the
// fd before the status pipe, which the caller adds last), and the
// namespace is entered right after it, as bubblewrap does; fd 0 is no
// --userns2 to bubblewrap.
func TestCompileUserns2(t *testing.T) {
	h := &Host{UID: 1000, GID: 1000, Umask: 0o022, Cwd: "/", Stat: func(string) error { return nil }}
	o, err := Parse(strings.Fields("--userns 3 --userns2 4 --unshare-pid --ro-bind / / true"), nil, noFD)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Compile(o, h)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, s := range sb.Plan.Steps {
		switch {
		case s.Op == plan.OpHoldFD:
			fd := -1
			if s.FD >= 0 && s.FD < len(sb.FDs) {
				fd = sb.FDs[s.FD]
			}
			got = append(got, fmt.Sprintf("hold %s %d", s.Value, fd))
		case s.Op == plan.OpPivotRoot:
			got = append(got, "pivot")
			if next := sb.Plan.Steps[i+1].Op; next != plan.OpEnterUserNS {
				t.Errorf("after the pivot: %s, want %s", next, plan.OpEnterUserNS)
			}
		case s.Op == plan.OpEnterUserNS:
			got = append(got, "enter")
		}
	}
	// The status fd is the caller's pipe, appended after sb.FDs.
	want := "hold userns 4 | hold exe -1 | hold status -1 | pivot | enter"
	if strings.Join(got, " | ") != want || sb.StatusFD != len(sb.FDs) {
		t.Errorf("steps %q (status fd #%d of %d), want %q", strings.Join(got, " | "), sb.StatusFD, len(sb.FDs), want)
	}
	o, _ = Parse(strings.Fields("--userns2 0 --ro-bind / / true"), nil, noFD)
	sb, err = Compile(o, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sb.Plan.Steps {
		if s.Op == plan.OpEnterUserNS || s.Value == "exe" {
			t.Errorf("--userns2 0: step %s %s", s.Op, s.Value)
		}
	}
}
