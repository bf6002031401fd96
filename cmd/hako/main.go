// Command hako is a Linux container runtime with runc's command line.
//
// This file holds the global flags, the dispatch to one file per
// subcommand, and how errors reach the user and the log: engines
// (containerd's shim, podman, Docker) read the last line of --log in
// --log-format json to learn why a command failed, as they do with runc.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hako-runtime/hako/internal/container"
	"github.com/hako-runtime/hako/internal/initproc"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	_ "github.com/hako-runtime/hako/internal/nsenter" // the C constructor for container processes
	"github.com/hako-runtime/hako/internal/state"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

type globals struct {
	root      string
	log       string
	logFormat string
	debug     bool
	systemd   bool
	rootless  string
	logW      io.Writer
}

type command struct {
	usage string
	run   func(g *globals, args []string) error
}

var commands = map[string]command{}

func register(name, usage string, run func(g *globals, args []string) error) {
	commands[name] = command{usage: usage, run: run}
}

// exitError carries a process's exit code out of run and exec.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// codedError is a failure with runc's exit status for it: exec exits 255
// when it fails before the process's own status exists, and callers
// (Kubernetes probes through the CRI) tell the two apart by it.
type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

func main() {
	if initproc.IsChild() {
		initproc.Main()
		return
	}
	// Installed as "bwrap", hako is bubblewrap (FLATPAK_BWRAP, PATH).
	if filepath.Base(os.Args[0]) == "bwrap" {
		os.Exit(bwrapMain(os.Args[0], os.Args[1:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "bwrap" {
		os.Exit(bwrapMain("bwrap", os.Args[2:]))
	}
	os.Exit(realMain(os.Args[1:]))
}

func realMain(args []string) int {
	g := &globals{}
	fs := flag.NewFlagSet("hako", flag.ContinueOnError)
	fs.StringVar(&g.root, "root", defaultRoot(), "root directory for container state")
	fs.StringVar(&g.log, "log", "", "log file (default: stderr)")
	fs.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&g.debug, "debug", false, "debug logging")
	fs.BoolVar(&g.systemd, "systemd-cgroup", false, `enable systemd cgroup support, expects cgroupsPath to be of form "slice:prefix:name" for e.g. "system.slice:hako:434234" (the container gets the transient unit prefix-name.scope, Delegate=yes, its limits as unit properties; rootless: the user's systemd; empty cgroupsPath: ":hako:<id>")`)
	fs.StringVar(&g.rootless, "rootless", "auto", "rootless mode: true, false or auto")
	showVersion := fs.Bool("version", false, "print the version")
	fs.BoolVar(showVersion, "v", false, "print the version")
	fs.Usage = func() { printGlobalHelp(os.Stdout, fs) }
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	if *showVersion {
		fmt.Print(versionText())
		return 0
	}
	if g.logFormat != "text" && g.logFormat != "json" {
		fmt.Fprintf(os.Stderr, "hako: --log-format %q: must be text or json\n", g.logFormat)
		return 1
	}
	g.logW = os.Stderr
	if g.log != "" {
		f, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hako: open --log %s: %v\n", g.log, err)
			return 1
		}
		defer f.Close()
		g.logW = f
	}
	if fs.NArg() == 0 {
		printGlobalHelp(os.Stdout, fs)
		return 0
	}
	name := fs.Arg(0)
	if name == "help" || name == "h" {
		return g.exit("", helpCmd(fs, fs.Args()[1:]))
	}
	cmd, ok := commands[name]
	if !ok {
		return g.exit("", errNoHelpTopic(name))
	}
	if g.systemd {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			g.logError(errors.New("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the cgroupfs driver (omit the flag)"))
			return 1
		}
	}
	return g.exit(name, cmd.run(g, fs.Args()[1:]))
}

// exit logs err (prefixed with the command's name) and returns the exit
// status: a process's own, runc's status for the failure, or 1.
func (g *globals) exit(name string, err error) int {
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err == nil {
		return 0
	}
	if name != "" {
		err = fmt.Errorf("%s: %w", name, err)
	}
	g.logError(err)
	var ce codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 1
}

// helpCmd is `hako help [command]`.
func helpCmd(global *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		printGlobalHelp(os.Stdout, global)
		return nil
	}
	if _, ok := commands[args[0]]; !ok {
		return errNoHelpTopic(args[0])
	}
	// Every command prints its own help for --help and exits.
	return commands[args[0]].run(&globals{}, []string{"--help"})
}

func defaultRoot() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && honorXDG() {
		return d + "/hako"
	}
	return "/run/hako"
}

// honorXDG is runc's rule for where an unprivileged caller keeps state: a
// non-root user, or "root" of a user namespace (rootless podman runs the
// runtime so) that is not the real root user.
func honorXDG() bool {
	if os.Geteuid() != 0 {
		return true
	}
	if !idmap.RunningInUserNS() {
		return false
	}
	u, ok := os.LookupEnv("USER")
	return !ok || u != "root"
}

// logError writes err to stderr and, with --log, to the log in its format.
func (g *globals) logError(err error) {
	msg := err.Error()
	if g.logW != os.Stderr {
		g.logLine("error", msg)
	} else if g.logFormat == "json" {
		g.logLine("error", msg)
		return
	}
	fmt.Fprintln(os.Stderr, "hako:", msg)
}

func (g *globals) logLine(level, msg string) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if g.logFormat == "json" {
		line, _ := json.Marshal(map[string]string{"level": level, "msg": msg, "time": now})
		fmt.Fprintf(g.logW, "%s\n", line)
		return
	}
	fmt.Fprintf(g.logW, "time=%q level=%s msg=%q\n", now, level, msg)
}

func (g *globals) warn(msg string) { g.logLine("warning", msg) }

func (g *globals) isRootless() bool {
	switch g.rootless {
	case "true":
		return true
	case "false":
		return false
	}
	// As runc: root of a user namespace is as unprivileged as any user
	// over cgroups it was not delegated.
	return os.Geteuid() != 0 || idmap.RunningInUserNS()
}

func (g *globals) runtime() *container.Runtime {
	rt := &container.Runtime{Store: &state.Store{Root: g.root}, Rootless: g.isRootless(), Warn: g.warn, SystemdCgroup: g.systemd}
	if g.debug {
		rt.Debug = func(msg string) { g.logLine("debug", msg) }
	}
	return rt
}

// newFlags makes a subcommand's flag set; errors are returned, not printed
// twice.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses a subcommand's flags and checks the number of arguments.
// Flags may follow the container id, as runc's CLI library (urfave/cli v1)
// allows: `hako update ID --memory 1M`.
func parse(fs *flag.FlagSet, args []string, min, max int, argsUsage string) ([]string, error) {
	return parseArgs(fs, reorder(fs, args), min, max, argsUsage)
}

// parseInOrder is parse for commands whose arguments after the container id
// belong to another program (exec's command, ps's options), where runc sets
// SkipArgReorder: flags end at the first argument.
func parseInOrder(fs *flag.FlagSet, args []string, min, max int, argsUsage string) ([]string, error) {
	return parseArgs(fs, args, min, max, argsUsage)
}

// reorder moves every flag (with its value, for flags that take one) before
// the positional arguments, up to a "--", which is kept with what follows it.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f == nil || isBoolFlag(f) {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(flags, rest...)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func parseArgs(fs *flag.FlagSet, args []string, min, max int, argsUsage string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(os.Stdout, fs, argsUsage)
			return nil, exitError{0}
		}
		return nil, err
	}
	rest := fs.Args()
	if len(rest) < min || (max >= 0 && len(rest) > max) {
		return nil, fmt.Errorf("usage: hako %s [options] %s", fs.Name(), argsUsage)
	}
	return rest, nil
}

// stringList is a repeatable string flag (--env, --cap, ...).
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
