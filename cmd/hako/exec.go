package main

import (
	"errors"
	"fmt"

	"github.com/hako-runtime/hako/internal/container"
)

func init() {
	register("exec", "run a process in a running container", execCmd)
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
	f := &container.ExecFlags{}
	fs.StringVar(&f.Process, "process", "", "path to a process.json")
	fs.StringVar(&f.Process, "p", "", "path to a process.json")
	fs.StringVar(&f.ConsoleSocket, "console-socket", "", "unix socket to send the pty master to")
	fs.StringVar(&f.PidfdSocket, "pidfd-socket", "", "unix socket to send a pidfd of the process to")
	fs.StringVar(&f.Cwd, "cwd", "", "working directory in the container")
	fs.StringVar(&f.User, "user", "", "uid[:gid]")
	fs.StringVar(&f.User, "u", "", "uid[:gid]")
	fs.StringVar(&f.PidFile, "pid-file", "", "file to write the process's pid to")
	fs.StringVar(&f.Apparmor, "apparmor", "", "AppArmor profile")
	fs.StringVar(&f.Label, "process-label", "", "SELinux label")
	fs.Var((*stringList)(&f.Env), "env", "KEY=VALUE to add to the environment (repeatable)")
	fs.Var((*stringList)(&f.Env), "e", "KEY=VALUE (repeatable)")
	fs.Var((*stringList)(&f.Caps), "cap", "capability to add (repeatable)")
	fs.Var((*stringList)(&f.Caps), "c", "capability to add (repeatable)")
	fs.Var((*stringList)(&f.Gids), "additional-gids", "additional gid (repeatable)")
	fs.Var((*stringList)(&f.Gids), "g", "additional gid (repeatable)")
	fs.BoolVar(&f.Tty, "tty", false, "allocate a pseudo-TTY")
	fs.BoolVar(&f.Tty, "t", false, "allocate a pseudo-TTY")
	fs.BoolVar(&f.Detach, "detach", false, "do not wait for the process")
	fs.BoolVar(&f.Detach, "d", false, "do not wait for the process")
	fs.BoolVar(&f.NoNewPrivs, "no-new-privs", false, "set no_new_privs")
	fs.IntVar(&f.PreserveFds, "preserve-fds", 0, "pass this many extra fds to the process")
	fs.BoolVar(&f.IgnorePaused, "ignore-paused", false, "exec into a paused container (the process runs once it is resumed)")
	fs.Var((*stringList)(&f.Cgroups), "cgroup", "join a sub-cgroup: [<controller>[,<controller>...]:]<path> (repeatable)")
	rest, err := parseInOrder(fs, args, 1, -1, "<container-id> [command [args...]]")
	if err != nil {
		return err
	}
	f.NoNewPrivsSet = fs.Lookup("no-new-privs").Value.String() == "true"
	code, err := g.runtime().ExecFromFlags(rest[0], f, rest[1:])
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}
