package container

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/console"
	"github.com/hako-runtime/hako/internal/linux/cgroups"
	"github.com/hako-runtime/hako/internal/spec"
	"github.com/hako-runtime/hako/internal/timing"
)

// ExecFlags are runc's exec flags, as the CLI parsed them. They live here,
// not in cmd/hako, so that the CLI only parses flags and the rules for
// laying them over the container's process sit beside Exec.
type ExecFlags struct {
	Process, ConsoleSocket, PidfdSocket, Cwd, User, PidFile, Apparmor, Label string
	Env, Caps, Gids, Cgroups                                                 []string
	Tty, Detach, NoNewPrivs, IgnorePaused                                    bool
	// NoNewPrivsSet: --no-new-privs was given as true, so it overrides the
	// container's own setting.
	NoNewPrivsSet bool
	PreserveFds   int
}

// ExecFromFlags is `hako exec`: it builds the process from the flags, runs
// it in container id with the caller's stdio, relays a pty when one is
// wanted and nobody else takes it, and waits. It returns the process's exit
// status (0 when detached).
func (r *Runtime) ExecFromFlags(id string, f *ExecFlags, args []string) (int, error) {
	var tl *timing.Timeline
	if r.Debug != nil {
		tl = timing.New()
	}
	c, err := r.Load(id)
	if err != nil {
		return 0, err
	}
	tl.Mark("state")
	cfg, err := c.ExecConfig()
	if err != nil {
		return 0, err
	}
	tl.Mark("config")
	p, err := buildProcess(f, cfg, args)
	if err != nil {
		return 0, err
	}
	sub, err := cgroups.ParseSub(f.Cgroups)
	if err != nil {
		return 0, err
	}
	o := &ExecOpts{Process: p, ConsoleSocket: f.ConsoleSocket, PidfdSocket: f.PidfdSocket, PidFile: f.PidFile,
		PreserveFds: f.PreserveFds, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		IgnorePaused: f.IgnorePaused, SubCgroups: sub, config: cfg, timeline: tl}
	var relaySock *os.File
	if p.Terminal && f.ConsoleSocket == "" && !f.Detach {
		theirs, ours, err := console.Socketpair()
		if err != nil {
			return 0, err
		}
		defer ours.Close()
		o.ConsoleFile, relaySock = theirs, ours
	}
	var sigs <-chan chan os.Signal
	if !f.Detach {
		// Subscribed from the start (see forwardAhead): an exec's own
		// work before the process exists is short and mostly waiting on
		// its constructor, and its plan too short to hide the 0.4 ms
		// behind (hyperfine: exec 4.9-5.0 -> 4.4-4.7 ms).
		sigs = forwardAhead()
	}
	pid, err := c.Exec(o)
	if o.ConsoleFile != nil {
		o.ConsoleFile.Close()
	}
	if err != nil {
		return 0, err
	}
	if f.Detach {
		return 0, nil
	}
	var relay *console.Relay
	if relaySock != nil {
		if relay, err = console.StartRelay(relaySock); err != nil {
			return 0, err
		}
	}
	code, err := waitForward(pid, <-sigs)
	if relay != nil {
		relay.Close()
	}
	if err != nil {
		return 0, err
	}
	tl.Mark("process ran")
	r.debug("exec %s: took %s", id, tl)
	return code, nil
}

// buildProcess makes exec's process as runc does: from --process, or from
// the container's own process with the flags laid over it.
func buildProcess(f *ExecFlags, cfg *specs.Spec, args []string) (*specs.Process, error) {
	var p specs.Process
	if f.Process != "" {
		data, err := os.ReadFile(f.Process)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("--process %s: %w", f.Process, err)
		}
		// runc 1.5 gives every exec'd process the container's umask. A
		// process.json's own umask still wins here: runc drops it, and a
		// field accepted and ignored is worse than a difference.
		if p.User.Umask == nil && cfg.Process != nil && cfg.Process.User.Umask != nil {
			m := *cfg.Process.User.Umask
			p.User.Umask = &m
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
		p.Terminal = f.Tty
		p.Env = append(p.Env, f.Env...)
		if f.Cwd != "" {
			p.Cwd = f.Cwd
		}
		if f.User != "" {
			u, g, err := parseUser(f.User)
			if err != nil {
				return nil, err
			}
			p.User.UID, p.User.GID = u, g
		}
		for _, s := range f.Gids {
			gid, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--additional-gids %q: not a number", s)
			}
			p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
		}
		if len(f.Caps) > 0 {
			p.Capabilities = addCaps(p.Capabilities, f.Caps)
		}
		if f.NoNewPrivsSet {
			p.NoNewPrivileges = f.NoNewPrivs
		}
		if f.Apparmor != "" {
			p.ApparmorProfile = f.Apparmor
		}
		if f.Label != "" {
			p.SelinuxLabel = f.Label
		}
	}
	if f.Process != "" && f.Tty {
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
