// Package bwrap is hako's third front end: bubblewrap's command line
// (bwrap(1), bubblewrap 0.11's options) parsed into an ordered list of
// setup operations, as bubblewrap.c's parse_args_recurse builds its
// SetupOp list, and compiled into a plan (internal/plan) that the engine
// applies like any other. Nothing here mounts or unshares anything.
//
// Error texts are bubblewrap's own ("bwrap: --bind takes two arguments",
// "bwrap: Can't find source path /x: No such file or directory"): callers
// such as Flatpak show them, and scripts match them.
package bwrap

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Kind is a setup operation, named as its option.
type Kind string

// The operations a command line may hold, in bubblewrap's SetupOpType.
const (
	Bind       Kind = "bind"
	ROBind     Kind = "ro-bind"
	DevBind    Kind = "dev-bind"
	RemountRO  Kind = "remount-ro"
	Proc       Kind = "proc"
	Dev        Kind = "dev"
	Mqueue     Kind = "mqueue"
	Tmpfs      Kind = "tmpfs"
	Dir        Kind = "dir"
	File       Kind = "file"
	BindData   Kind = "bind-data"
	ROBindData Kind = "ro-bind-data"
	Symlink    Kind = "symlink"
	Chmod      Kind = "chmod"
	// The overlays: Sources are the lower layers, top first; an Overlay
	// has its upper and work directories in Source and Work.
	Overlay    Kind = "overlay"
	TmpOverlay Kind = "tmp-overlay"
	ROOverlay  Kind = "ro-overlay"
)

// Op is one setup operation. Perms is -1 where the option has none.
type Op struct {
	Kind   Kind
	Source string // bind source, symlink target
	Dest   string
	FD     int // --file, --bind-data: the caller's fd; else -1
	Perms  int
	Size   int64
	Try    bool // the -try variants: a missing source is skipped
	// BindFD: a --bind-fd/--ro-bind-fd, whose Source is /proc/self/fd/FD.
	BindFD bool
	// Overlays: the --overlay-src layers, top first, and the work dir.
	Sources []string
	Work    string
}

// Options is a parsed command line.
type Options struct {
	Ops []Op

	UnshareUser, UnshareUserTry, UnshareIPC, UnsharePID, UnshareNet bool
	UnshareUTS, UnshareCgroup, UnshareCgroupTry                     bool

	UID, GID     int // -1: the caller's
	Hostname     string
	Chdir        string
	Env          []string // the environment after --setenv, --unsetenv, --clearenv
	InfoFD       int
	JSONStatusFD int
	BlockFD      int
	SyncFD       int
	// UsernsFD, PidnsFD: namespaces to join (--userns, --pidns), -1 for
	// none. UsernsBlockFD: the caller writes the new user namespace's
	// maps and then this fd (--userns-block-fd).
	UsernsFD, PidnsFD, UsernsBlockFD int
	// Userns2FD: the user namespace the sandbox moves into once set up
	// (--userns2), -1 for none.
	Userns2FD     int
	SeccompFDs    []int // --seccomp's one, or every --add-seccomp-fd
	NewSession    bool
	DieWithParent bool
	// DisableUserns: the sandbox cannot make user namespaces (a nested
	// one under a limit of 1); AssertUsernsDisabled checks that it cannot.
	DisableUserns, AssertUsernsDisabled bool
	AsPid1                              bool
	LevelPrefix                         bool
	// CapOps are --cap-add and --cap-drop, applied in order to the
	// starting set (root: its bounding set; others: none).
	CapOps []CapOp
	Args   []string
	// Argv0 replaces the command's argv[0] (--argv0); "" keeps it.
	Argv0 string
	// LockFiles are taken (a read lock) by the sandbox's init while the
	// sandbox runs (--lock-file), paths inside the sandbox.
	LockFiles []string
	// TmpOverlays counts the --tmp-overlay mounts, each with its own
	// upper and work directory on the setup tmpfs.
	TmpOverlays int

	// Help and Version: print and exit 0.
	Help, Version bool
}

// CapOp is one --cap-add (Add) or --cap-drop.
type CapOp struct {
	Add  bool
	Name string // upper case, "ALL" or CAP_*
}

// Error is a bubblewrap-style failure: printed as "bwrap: <text>", exit 1.
type Error struct{ Text string }

func (e *Error) Error() string { return e.Text }

func die(format string, args ...any) error { return &Error{Text: fmt.Sprintf(format, args...)} }

// ErrUnsupported wraps the options hako bwrap parses but does not
// implement: they fail, naming the option, rather than be ignored.
var ErrUnsupported = errors.New("not supported by hako bwrap")

// maxArgs is bubblewrap's bound on arguments, --args data included.
const maxArgs = 9000

// maxTmpfsBytes is bubblewrap's MAX_TMPFS_BYTES (SIZE_MAX >> 1 on 64 bits).
const maxTmpfsBytes = uint64(1<<63 - 1)

// ReadFD reads an fd's whole contents (--args, --file, --seccomp); tests
// replace it.
type ReadFD func(fd int) ([]byte, error)

// Parse parses argv (without the program name) with env as the starting
// environment. readFD reads --args data. On error the options parsed so
// far come back too.
func Parse(argv []string, env []string, readFD ReadFD) (*Options, error) {
	o := &Options{UID: -1, GID: -1, InfoFD: -1, JSONStatusFD: -1, BlockFD: -1, SyncFD: -1, UsernsFD: -1, PidnsFD: -1, UsernsBlockFD: -1, Userns2FD: -1}
	o.Env = append([]string(nil), env...)
	p := &parser{o: o, readFD: readFD, nextPerms: -1, total: len(argv)}
	rest, err := p.parse(argv, false)
	if err != nil {
		// What was parsed before the error goes with it: a
		// --level-prefix already seen prefixes the message.
		return o, err
	}
	if o.Help || o.Version {
		return o, nil
	}
	if len(p.overlaySrc) > 0 {
		return nil, die(overlaySrcUnfollowed)
	}
	o.Args = rest
	return o, nil
}

type parser struct {
	o          *Options
	readFD     ReadFD
	nextPerms  int
	nextSize   int64
	overlaySrc []string // --overlay-src given since the last overlay, bottom first
	seccomp    bool     // --seccomp given (as opposed to --add-seccomp-fd)
	total      int
}

func parseFD(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if s == "" || err != nil || n < 0 {
		return 0, die("Invalid fd: %s", s)
	}
	return int(n), nil
}

func isModifier(arg string) bool { return arg == "--perms" || arg == "--size" }

// unsupported names an option hako bwrap knows but does not implement.
func unsupported(arg string) error {
	return &Error{Text: fmt.Sprintf("%s: %v", arg, ErrUnsupported)}
}

func (p *parser) parse(argv []string, inFile bool) ([]string, error) {
	o := p.o
	if p.total > maxArgs {
		return nil, die("Exceeded maximum number of arguments %d", maxArgs)
	}
	need := func(arg string, n int, what string) error {
		if len(argv) < n+1 {
			return die("%s takes %s", arg, what)
		}
		return nil
	}
	for len(argv) > 0 {
		arg := argv[0]
		consumed := 0
		var err error
		one := func(what string) bool {
			if err = need(arg, 1, what); err != nil {
				return false
			}
			consumed = 1
			return true
		}
		two := func() bool {
			if err = need(arg, 2, "two arguments"); err != nil {
				return false
			}
			consumed = 2
			return true
		}
		fdArg := func(dst *int) {
			if !one("an argument") {
				return
			}
			*dst, err = parseFD(argv[1])
		}
		perms := func(def int) int {
			if p.nextPerms >= 0 {
				v := p.nextPerms
				p.nextPerms = -1
				return v
			}
			return def
		}
		switch arg {
		case "--help":
			o.Help = true
			return nil, nil
		case "--version":
			o.Version = true
			return nil, nil
		case "--args":
			if inFile {
				return nil, die("--args not supported in arguments file")
			}
			var fd int
			if fdArg(&fd); err != nil {
				return nil, err
			}
			data, rerr := p.readFD(fd)
			if rerr != nil {
				return nil, die("Can't read --args data: %s", errText(rerr))
			}
			var sub []string
			for len(data) > 0 {
				i := strings.IndexByte(string(data), 0)
				if i < 0 {
					i = len(data)
				}
				sub = append(sub, string(data[:i]))
				p.total++
				if p.total > maxArgs {
					return nil, die("Exceeded maximum number of arguments %d", maxArgs)
				}
				if i == len(data) {
					break
				}
				data = data[i+1:]
			}
			rest, perr := p.parse(sub, true)
			if perr != nil {
				return nil, perr
			}
			if o.Help || o.Version {
				return nil, nil
			}
			// bubblewrap ignores what is left after the options in an
			// --args file (its recursion's argc is dropped); hako says so.
			if len(rest) > 0 {
				return nil, die("--args data: unexpected non-option %q (the command goes on the command line)", rest[0])
			}
		case "--argv0":
			if !one("one argument") {
				break
			}
			if o.Argv0 != "" {
				return nil, die("--argv0 used multiple times")
			}
			o.Argv0 = argv[1]
		case "--lock-file":
			if one("an argument") {
				o.LockFiles = append(o.LockFiles, argv[1])
			}
		case "--exec-label", "--file-label":
			if !one("an argument") {
				break
			}
			// bubblewrap checks the label with libselinux as it parses:
			// without SELinux every label is refused.
			if !SELinuxEnabled() {
				return nil, die("labeling not supported on this system")
			}
			return nil, unsupported(arg)
		case "--userns":
			fdArg(&o.UsernsFD)
		case "--pidns":
			fdArg(&o.PidnsFD)
		case "--userns-block-fd":
			fdArg(&o.UsernsBlockFD)
		case "--userns2":
			fdArg(&o.Userns2FD)
		case "--bind-fd", "--ro-bind-fd":
			if len(argv) < 3 {
				// bubblewrap names --bind-fd for both.
				return nil, die("--bind-fd takes two arguments")
			}
			consumed = 2
			var fd int
			if fd, err = parseFD(argv[1]); err != nil {
				break
			}
			k := Bind
			if arg == "--ro-bind-fd" {
				k = ROBind
			}
			o.Ops = append(o.Ops, Op{Kind: k, Source: "/proc/self/fd/" + strconv.Itoa(fd), Dest: argv[2], FD: fd, Perms: -1, BindFD: true})
		case "--overlay-src":
			// bubblewrap takes the next argument unchecked: a last
			// --overlay-src fails as unfollowed.
			if len(argv) > 1 {
				p.overlaySrc = append(p.overlaySrc, argv[1])
				consumed = 1
			} else {
				p.overlaySrc = append(p.overlaySrc, "")
			}
		case "--overlay":
			if len(argv) < 4 {
				return nil, die("--overlay takes three arguments")
			}
			if len(p.overlaySrc) < 1 {
				return nil, die("--overlay requires at least one --overlay-src")
			}
			consumed = 3
			o.Ops = append(o.Ops, Op{Kind: Overlay, Source: argv[1], Work: argv[2], Dest: argv[3], Sources: p.takeOverlaySrc(), FD: -1, Perms: -1})
		case "--tmp-overlay", "--ro-overlay":
			if !one("an argument") {
				break
			}
			k, min := TmpOverlay, 1
			if arg == "--ro-overlay" {
				k, min = ROOverlay, 2
			}
			if len(p.overlaySrc) < min {
				what := "one --overlay-src"
				if min == 2 {
					what = "two --overlay-src"
				}
				return nil, die("%s requires at least %s", arg, what)
			}
			o.Ops = append(o.Ops, Op{Kind: k, Dest: argv[1], Sources: p.takeOverlaySrc(), FD: -1, Perms: -1})
			if k == TmpOverlay {
				o.TmpOverlays++
			}
		case "--disable-userns":
			o.DisableUserns = true
		case "--assert-userns-disabled":
			o.AssertUsernsDisabled = true
		case "--level-prefix":
			o.LevelPrefix = true
		case "--unshare-all":
			o.UnshareUserTry, o.UnshareIPC, o.UnsharePID, o.UnshareUTS, o.UnshareCgroupTry, o.UnshareNet = true, true, true, true, true, true
		case "--unshare-user":
			o.UnshareUser = true
		case "--unshare-user-try":
			o.UnshareUserTry = true
		case "--unshare-ipc":
			o.UnshareIPC = true
		case "--unshare-pid":
			o.UnsharePID = true
		case "--unshare-net":
			o.UnshareNet = true
		case "--unshare-uts":
			o.UnshareUTS = true
		case "--unshare-cgroup":
			o.UnshareCgroup = true
		case "--unshare-cgroup-try":
			o.UnshareCgroupTry = true
		case "--share-net":
			o.UnshareNet = false
		case "--chdir":
			if one("one argument") {
				o.Chdir = argv[1]
			}
		case "--remount-ro":
			if one("one argument") {
				o.Ops = append(o.Ops, Op{Kind: RemountRO, Dest: argv[1], FD: -1, Perms: -1})
			}
		case "--bind", "--bind-try", "--ro-bind", "--ro-bind-try", "--dev-bind", "--dev-bind-try":
			if two() {
				k := Kind(strings.TrimSuffix(strings.TrimPrefix(arg, "--"), "-try"))
				o.Ops = append(o.Ops, Op{Kind: k, Source: argv[1], Dest: argv[2], FD: -1, Perms: -1, Try: strings.HasSuffix(arg, "-try")})
			}
		case "--proc", "--dev", "--mqueue":
			if one("an argument") {
				o.Ops = append(o.Ops, Op{Kind: Kind(arg[2:]), Dest: argv[1], FD: -1, Perms: -1})
			}
		case "--tmpfs":
			if one("an argument") {
				o.Ops = append(o.Ops, Op{Kind: Tmpfs, Dest: argv[1], FD: -1, Perms: perms(0o755), Size: p.nextSize})
				p.nextSize = 0
			}
		case "--dir":
			if one("an argument") {
				o.Ops = append(o.Ops, Op{Kind: Dir, Dest: argv[1], FD: -1, Perms: perms(0o755)})
			}
		case "--file", "--bind-data", "--ro-bind-data":
			if !two() {
				break
			}
			var fd int
			if fd, err = parseFD(argv[1]); err != nil {
				break
			}
			def := 0o600
			if arg == "--file" {
				def = 0o666
			}
			o.Ops = append(o.Ops, Op{Kind: Kind(arg[2:]), Dest: argv[2], FD: fd, Perms: perms(def)})
		case "--symlink":
			if two() {
				o.Ops = append(o.Ops, Op{Kind: Symlink, Source: argv[1], Dest: argv[2], FD: -1, Perms: -1})
			}
		case "--chmod":
			if !two() {
				break
			}
			v, perr := strconv.ParseUint(argv[1], 8, 32)
			if argv[1] == "" || perr != nil || v > 0o7777 {
				err = die("--chmod takes an octal argument <= 07777")
				break
			}
			o.Ops = append(o.Ops, Op{Kind: Chmod, Dest: argv[2], FD: -1, Perms: int(v)})
		case "--sync-fd":
			fdArg(&o.SyncFD)
		case "--block-fd":
			fdArg(&o.BlockFD)
		case "--info-fd":
			fdArg(&o.InfoFD)
		case "--json-status-fd":
			fdArg(&o.JSONStatusFD)
		case "--seccomp":
			if !one("an argument") {
				break
			}
			if len(o.SeccompFDs) > 0 && !p.seccomp {
				return nil, die("--seccomp cannot be combined with --add-seccomp-fd")
			}
			var fd int
			if fd, err = parseFD(argv[1]); err == nil {
				o.SeccompFDs, p.seccomp = []int{fd}, true
			}
		case "--add-seccomp-fd":
			if !one("an argument") {
				break
			}
			if p.seccomp {
				return nil, die("--add-seccomp-fd cannot be combined with --seccomp")
			}
			var fd int
			if fd, err = parseFD(argv[1]); err == nil {
				o.SeccompFDs = append(o.SeccompFDs, fd)
			}
		case "--clearenv":
			o.Env = nil
		case "--setenv":
			if two() {
				o.Env = setenv(o.Env, argv[1], argv[2])
			}
		case "--unsetenv":
			if one("an argument") {
				o.Env = unsetenv(o.Env, argv[1])
			}
		case "--uid", "--gid":
			if !one("an argument") {
				break
			}
			n, perr := strconv.ParseInt(argv[1], 10, 32)
			if argv[1] == "" || perr != nil || n < 0 {
				err = die("Invalid %s: %s", arg[2:], argv[1])
				break
			}
			if arg == "--uid" {
				o.UID = int(n)
			} else {
				o.GID = int(n)
			}
		case "--hostname":
			if one("an argument") {
				o.Hostname = argv[1]
			}
		case "--new-session":
			o.NewSession = true
		case "--die-with-parent":
			o.DieWithParent = true
		case "--as-pid-1":
			o.AsPid1 = true
		case "--cap-add", "--cap-drop":
			if !one("an argument") {
				break
			}
			name, ok := capName(argv[1])
			if !ok {
				err = die("unknown cap: %s", argv[1])
				break
			}
			o.CapOps = append(o.CapOps, CapOp{Add: arg == "--cap-add", Name: name})
		case "--perms":
			if !one("an argument") {
				break
			}
			if p.nextPerms != -1 {
				return nil, die("--perms given twice for the same action")
			}
			v, perr := strconv.ParseUint(argv[1], 8, 32)
			if argv[1] == "" || perr != nil || v > 0o7777 {
				err = die("--perms takes an octal argument <= 07777")
				break
			}
			p.nextPerms = int(v)
		case "--size":
			if !one("an argument") {
				break
			}
			if p.nextSize != 0 {
				return nil, die("--size given twice for the same action")
			}
			v, perr := strconv.ParseUint(argv[1], 0, 64)
			if perr != nil && !errors.Is(perr, strconv.ErrRange) || argv[1] == "" || argv[1][0] < '0' || argv[1][0] > '9' || v == 0 || errors.Is(perr, strconv.ErrRange) {
				err = die("--size takes a non-zero number of bytes")
				break
			}
			if v > maxTmpfsBytes {
				err = die("--size (for tmpfs) is limited to %d", maxTmpfsBytes)
				break
			}
			p.nextSize = int64(v)
		case "--":
			return argv[1:], nil
		default:
			if strings.HasPrefix(arg, "-") {
				return nil, die("Unknown option %s", arg)
			}
			return argv, nil
		}
		if err != nil {
			return nil, err
		}
		// An option that consumed no --perms or --size that preceded it
		// could not take them: bubblewrap refuses rather than drop them.
		if !isModifier(arg) && p.nextPerms >= 0 {
			return nil, die("--perms must be followed by an option that creates a file")
		}
		if !isModifier(arg) && p.nextSize != 0 {
			return nil, die("--size must be followed by --tmpfs")
		}
		if arg != "--overlay-src" && len(p.overlaySrc) > 0 {
			return nil, die(overlaySrcUnfollowed)
		}
		argv = argv[1+consumed:]
	}
	return nil, nil
}

const overlaySrcUnfollowed = "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay"

// takeOverlaySrc hands the pending --overlay-src layers to an overlay, top
// first as overlayfs's lowerdir lists them.
func (p *parser) takeOverlaySrc() []string {
	out := make([]string, 0, len(p.overlaySrc))
	for i := len(p.overlaySrc) - 1; i >= 0; i-- {
		out = append(out, p.overlaySrc[i])
	}
	p.overlaySrc = nil
	return out
}

// SELinuxEnabled is libselinux's is_selinux_enabled as far as bubblewrap's
// labels need it: selinuxfs is there.
var SELinuxEnabled = func() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return strerror(err)
}

func setenv(env []string, k, v string) []string {
	return append(unsetenv(env, k), k+"="+v)
}

func unsetenv(env []string, k string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, k+"=") {
			out = append(out, e)
		}
	}
	return out
}
