package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/console"
	"github.com/hako-runtime/hako/internal/container"
	"github.com/hako-runtime/hako/internal/linux/cgroups"
	"github.com/hako-runtime/hako/internal/spec"
)

func init() {
	register("exec", "run a process in a running container", execCmd)
}

type execFlags struct {
	process, consoleSocket, pidfdSocket, cwd, user, pidFile, apparmor, label string
	env, caps, gids, cgroups                                                 stringList
	tty, detach, noNewPrivs, ignorePaused                                    bool
	preserveFds                                                              int
}

// execCmd fails as runc's exec does: "exec failed: ..." and status 255;
// the process's own status passes through unchanged.
func execCmd(g *globals, args []string) error {
	err := execMain(g, args)
	var ee exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return codedError{255, fmt.Errorf("exec failed: %w", err)}
}

func execMain(g *globals, args []string) error {
	fs := newFlags("exec")
	f := &execFlags{}
	fs.StringVar(&f.process, "process", "", "path to a process.json")
	fs.StringVar(&f.process, "p", "", "path to a process.json")
	fs.StringVar(&f.consoleSocket, "console-socket", "", "unix socket to send the pty master to")
	fs.StringVar(&f.pidfdSocket, "pidfd-socket", "", "unix socket to send a pidfd of the process to")
	fs.StringVar(&f.cwd, "cwd", "", "working directory in the container")
	fs.StringVar(&f.user, "user", "", "uid[:gid]")
	fs.StringVar(&f.user, "u", "", "uid[:gid]")
	fs.StringVar(&f.pidFile, "pid-file", "", "file to write the process's pid to")
	fs.StringVar(&f.apparmor, "apparmor", "", "AppArmor profile")
	fs.StringVar(&f.label, "process-label", "", "SELinux label")
	fs.Var(&f.env, "env", "KEY=VALUE to add to the environment (repeatable)")
	fs.Var(&f.env, "e", "KEY=VALUE (repeatable)")
	fs.Var(&f.caps, "cap", "capability to add (repeatable)")
	fs.Var(&f.caps, "c", "capability to add (repeatable)")
	fs.Var(&f.gids, "additional-gids", "additional gid (repeatable)")
	fs.Var(&f.gids, "g", "additional gid (repeatable)")
	fs.BoolVar(&f.tty, "tty", false, "allocate a pseudo-TTY")
	fs.BoolVar(&f.tty, "t", false, "allocate a pseudo-TTY")
	fs.BoolVar(&f.detach, "detach", false, "do not wait for the process")
	fs.BoolVar(&f.detach, "d", false, "do not wait for the process")
	fs.BoolVar(&f.noNewPrivs, "no-new-privs", false, "set no_new_privs")
	fs.IntVar(&f.preserveFds, "preserve-fds", 0, "pass this many extra fds to the process")
	fs.BoolVar(&f.ignorePaused, "ignore-paused", false, "exec into a paused container (the process runs once it is resumed)")
	fs.Var(&f.cgroups, "cgroup", "join a sub-cgroup: [<controller>[,<controller>...]:]<path> (repeatable)")
	rest, err := parseInOrder(fs, args, 1, -1, "<container-id> [command [args...]]")
	if err != nil {
		return err
	}
	rt := g.runtime()
	c, err := rt.Load(rest[0])
	if err != nil {
		return err
	}
	cfg, err := c.Config()
	if err != nil {
		return err
	}
	p, err := buildProcess(f, fs.Lookup("no-new-privs").Value.String() == "true", cfg, rest[1:])
	if err != nil {
		return err
	}
	sub, err := cgroups.ParseSub(f.cgroups)
	if err != nil {
		return err
	}
	o := &container.ExecOpts{Process: p, ConsoleSocket: f.consoleSocket, PidfdSocket: f.pidfdSocket, PidFile: f.pidFile,
		PreserveFds: f.preserveFds, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		IgnorePaused: f.ignorePaused, SubCgroups: sub}
	var relaySock *os.File
	if p.Terminal && f.consoleSocket == "" && !f.detach {
		theirs, ours, err := console.Socketpair()
		if err != nil {
			return err
		}
		defer ours.Close()
		o.ConsoleFile, relaySock = theirs, ours
	}
	pid, err := c.Exec(o)
	if o.ConsoleFile != nil {
		o.ConsoleFile.Close()
	}
	if err != nil {
		return err
	}
	if f.detach {
		return nil
	}
	var relay *console.Relay
	if relaySock != nil {
		if relay, err = console.StartRelay(relaySock); err != nil {
			return err
		}
	}
	code, err := container.WaitForward(pid)
	if relay != nil {
		relay.Close()
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}

// buildProcess makes exec's process as runc does: from --process, or from
// the container's own process with the flags laid over it.
func buildProcess(f *execFlags, nnpSet bool, cfg *specs.Spec, args []string) (*specs.Process, error) {
	var p specs.Process
	if f.process != "" {
		data, err := os.ReadFile(f.process)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("--process %s: %w", f.process, err)
		}
	} else {
		if cfg.Process != nil {
			p = *cfg.Process
			p.Env = append([]string{}, cfg.Process.Env...)
		}
		if len(args) == 0 {
			return nil, fmt.Errorf("no command given (usage: hako exec <container-id> command [args...])")
		}
		p.Args = args
		p.Terminal = f.tty
		p.Env = append(p.Env, f.env...)
		if f.cwd != "" {
			p.Cwd = f.cwd
		}
		if f.user != "" {
			u, g, err := parseUser(f.user)
			if err != nil {
				return nil, err
			}
			p.User.UID, p.User.GID = u, g
		}
		for _, s := range f.gids {
			gid, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--additional-gids %q: not a number", s)
			}
			p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
		}
		if len(f.caps) > 0 {
			p.Capabilities = addCaps(p.Capabilities, f.caps)
		}
		if nnpSet {
			p.NoNewPrivileges = f.noNewPrivs
		}
		if f.apparmor != "" {
			p.ApparmorProfile = f.apparmor
		}
		if f.label != "" {
			p.SelinuxLabel = f.label
		}
	}
	if f.process != "" && f.tty {
		p.Terminal = true
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if err := spec.ValidateProcess(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// parseUser parses --user "uid[:gid]" (numbers only, as in runc).
func parseUser(s string) (uint32, uint32, error) {
	us, gs, hasGid := strings.Cut(s, ":")
	u, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("--user %q: uid must be a number", s)
	}
	var g uint64
	if hasGid {
		if g, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("--user %q: gid must be a number", s)
		}
	}
	return uint32(u), uint32(g), nil
}

// addCaps adds --cap to the bounding, effective and permitted sets only:
// adding to inheritable was runc's CVE-2022-29162.
func addCaps(c *specs.LinuxCapabilities, add []string) *specs.LinuxCapabilities {
	var n specs.LinuxCapabilities
	if c != nil {
		n = *c
	}
	n.Bounding = appendNew(n.Bounding, add)
	n.Effective = appendNew(n.Effective, add)
	n.Permitted = appendNew(n.Permitted, add)
	return &n
}

func appendNew(set, add []string) []string {
	out := append([]string{}, set...)
	for _, a := range add {
		a = strings.ToUpper(a)
		if !strings.HasPrefix(a, "CAP_") {
			a = "CAP_" + a
		}
		found := false
		for _, s := range out {
			if s == a {
				found = true
			}
		}
		if !found {
			out = append(out, a)
		}
	}
	return out
}
