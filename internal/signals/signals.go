// Package signals parses signal names and numbers as `kill` takes them:
// "KILL", "SIGKILL", "kill" and "9" all name SIGKILL, as in runc.
package signals

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Parse returns the signal s names.
func Parse(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		// 0 sends nothing and only checks that the init is alive,
		// which probes use (`kill ID 0`), as with kill(1) and runc.
		if n < 0 || n > 64 {
			return 0, fmt.Errorf("signal %d: out of range 0-64", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	// Real-time signals: SIGRTMIN+N, SIGRTMAX-N.
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN"); ok {
		return rt(34, rest, s)
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMAX"); ok {
		return rt(64, rest, s)
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func rt(base int, rest, orig string) (unix.Signal, error) {
	n := base
	if rest != "" {
		off, err := strconv.Atoi(rest)
		if err != nil {
			return 0, fmt.Errorf("unknown signal %q", orig)
		}
		n += off
	}
	if n < 34 || n > 64 {
		return 0, fmt.Errorf("signal %q: out of range", orig)
	}
	return unix.Signal(n), nil
}

// Forwarded are the signals passed on to the process hako waits for (run,
// exec, sandbox, and the sandbox's init to its COMMAND): the ones a shell,
// a supervisor or a terminal sends. A list, not every signal: enabling all
// 65 with signal.Notify costs milliseconds, more than a short exec. Not
// SIGCHLD (the waiter's own business) nor SIGURG (the Go runtime's).
var Forwarded = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGALRM, unix.SIGPWR, unix.SIGWINCH,
}

// ExitCode is a wait status as a shell reports it, which run, exec, the
// sandbox and bwrap all exit with: the process's code, or 128+N for death
// by signal N (255 for a status that is neither, which a wait without
// WUNTRACED does not return).
func ExitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}
