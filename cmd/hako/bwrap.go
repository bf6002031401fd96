package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/bwrap"
	"github.com/hako-runtime/hako/internal/container"
)

// bwrapVersion is the bubblewrap release whose command line hako bwrap
// follows; callers such as Flatpak probe it.
const bwrapVersion = "0.11.0"

const bwrapUsage = `usage: %s [OPTIONS...] [--] COMMAND [ARGS...]

    --help                       Print this help
    --version                    Print version
    --args FD                    Parse NUL-separated args from FD
    --argv0 VALUE                Set argv[0] to the value VALUE before running the program
    --level-prefix               Prepend e.g. <3> to diagnostic messages
    --unshare-all                Unshare every namespace we support by default
    --share-net                  Retain the network namespace (can only combine with --unshare-all)
    --unshare-user               Create new user namespace (may be automatically implied if not setuid)
    --unshare-user-try           Create new user namespace if possible else continue by skipping it
    --unshare-ipc                Create new ipc namespace
    --unshare-pid                Create new pid namespace
    --unshare-net                Create new network namespace
    --unshare-uts                Create new uts namespace
    --unshare-cgroup             Create new cgroup namespace
    --unshare-cgroup-try         Create new cgroup namespace if possible else continue by skipping it
    --userns FD                  Use this user namespace (cannot combine with --unshare-user)
    --userns2 FD                 After setup switch to this user namespace, only useful with --userns
    --disable-userns             Disable further use of user namespaces inside sandbox
    --assert-userns-disabled     Fail unless further use of user namespace inside sandbox is disabled
    --pidns FD                   Use this pid namespace (as parent namespace if using --unshare-pid)
    --uid UID                    Custom uid in the sandbox (requires --unshare-user or --userns)
    --gid GID                    Custom gid in the sandbox (requires --unshare-user or --userns)
    --hostname NAME              Custom hostname in the sandbox (requires --unshare-uts)
    --chdir DIR                  Change directory to DIR
    --clearenv                   Unset all environment variables
    --setenv VAR VALUE           Set an environment variable
    --unsetenv VAR               Unset an environment variable
    --lock-file DEST             Take a lock on DEST while sandbox is running
    --sync-fd FD                 Keep this fd open while sandbox is running
    --bind SRC DEST              Bind mount the host path SRC on DEST
    --bind-try SRC DEST          Equal to --bind but ignores non-existent SRC
    --dev-bind SRC DEST          Bind mount the host path SRC on DEST, allowing device access
    --dev-bind-try SRC DEST      Equal to --dev-bind but ignores non-existent SRC
    --ro-bind SRC DEST           Bind mount the host path SRC readonly on DEST
    --ro-bind-try SRC DEST       Equal to --ro-bind but ignores non-existent SRC
    --bind-fd FD DEST            Bind open directory or path fd on DEST
    --ro-bind-fd FD DEST         Bind open directory or path fd read-only on DEST
    --remount-ro DEST            Remount DEST as readonly; does not recursively remount
    --overlay-src SRC            Read files from SRC in the following overlay
    --overlay RWSRC WORKDIR DEST Mount overlayfs on DEST, with RWSRC as the host path for writes and
                                 WORKDIR an empty directory on the same filesystem as RWSRC
    --tmp-overlay DEST           Mount overlayfs on DEST, with writes going to an invisible tmpfs
    --ro-overlay DEST            Mount overlayfs read-only on DEST
    --exec-label LABEL           Exec label for the sandbox
    --file-label LABEL           File label for temporary sandbox content
    --proc DEST                  Mount new procfs on DEST
    --dev DEST                   Mount new dev on DEST
    --tmpfs DEST                 Mount new tmpfs on DEST
    --mqueue DEST                Mount new mqueue on DEST
    --dir DEST                   Create dir at DEST
    --file FD DEST               Copy from FD to destination DEST
    --bind-data FD DEST          Copy from FD to file which is bind-mounted on DEST
    --ro-bind-data FD DEST       Copy from FD to file which is readonly bind-mounted on DEST
    --symlink SRC DEST           Create symlink at DEST with target SRC
    --seccomp FD                 Load and use seccomp rules from FD (not repeatable)
    --add-seccomp-fd FD          Load and use seccomp rules from FD (repeatable)
    --block-fd FD                Block on FD until some data to read is available
    --userns-block-fd FD         Block on FD until the user namespace is ready
    --info-fd FD                 Write information about the running container to FD
    --json-status-fd FD          Write container status to FD as multiple JSON documents
    --new-session                Create a new terminal session
    --die-with-parent            Kills with SIGKILL child process (COMMAND) when bwrap or bwrap's parent dies.
    --as-pid-1                   Do not install a reaper process with PID=1
    --cap-add CAP                Add cap CAP when running as privileged user
    --cap-drop CAP               Drop cap CAP when running as privileged user
    --perms OCTAL                Set permissions of next argument (--bind-data, --file, etc.)
    --size BYTES                 Set size of next argument (only for --tmpfs)
    --chmod OCTAL PATH           Change permissions of PATH (must already exist)
`

// bwrapMain is `hako bwrap` and hako run through a link named bwrap. It
// returns bubblewrap's exit status: 1 for a setup error, else the
// command's.
func bwrapMain(argv0 string, args []string) int {
	prefix := ""
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "%s%s: %s\n", prefix, "bwrap", fmt.Sprintf(format, a...))
		return 1
	}
	o, err := bwrap.Parse(args, os.Environ(), readFD)
	if o != nil && o.LevelPrefix {
		prefix = "<3>"
	}
	if err != nil {
		return fail("%v", err)
	}
	switch {
	case o.Help:
		fmt.Printf(bwrapUsage, argv0)
		return 0
	case o.Version:
		fmt.Printf("bubblewrap %s\n", bwrapVersion)
		return 0
	case len(o.Args) == 0:
		fmt.Fprintf(os.Stderr, bwrapUsage, argv0)
		return 1
	}
	h := bwrapHost()
	h.Inherited = bwrap.Inherited(o)
	sb, err := bwrap.Compile(o, h)
	if err != nil {
		return fail("%v", err)
	}
	var files []*os.File
	for _, fd := range sb.FDs {
		// The step owns its own copy: the same fd may serve twice.
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fail("Can't use fd %d: %s", fd, strerrorOf(err))
		}
		files = append(files, os.NewFile(uintptr(dup), "bwrap-fd"))
	}
	for _, fd := range sb.FDs {
		// Used up, as bubblewrap closes them once read; --userns2's
		// reaches the command as under bubblewrap.
		if !slices.Contains(h.Inherited, fd) {
			unix.Close(fd)
		}
	}
	var status *os.File
	if sb.StatusFD >= 0 {
		r, w, err := os.Pipe()
		if err != nil {
			return fail("pipe: %s", strerrorOf(err))
		}
		status, files = r, append(files, w)
	}
	if o.DieWithParent {
		// hako bwrap itself goes with its caller, and the sandbox
		// with hako bwrap (its own PR_SET_PDEATHSIG, in the plan).
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	}
	pid, err := container.StartOneShot(&container.OneShot{
		Plan: sb.Plan, Unshare: sb.Unshare, Join: sb.Join, NsOptions: sb.NsOptions, UIDMaps: sb.UIDMaps, GIDMaps: sb.GIDMaps, Files: files, Inherit: h.Inherited,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		SealDir: filepath.Join(defaultRoot(), "@exeseal-empty"),
		OnSetup: func(pid int) error {
			writeInfo(o, sb, pid)
			if o.UsernsBlockFD >= 0 {
				// The caller has the pid now and writes the maps.
				var b [1]byte
				_, _ = unix.Read(o.UsernsBlockFD, b[:])
				unix.Close(o.UsernsBlockFD)
			}
			return nil
		},
	})
	if err != nil {
		if text, ok := bwrap.JoinError(o, err); ok {
			return fail("%s", text)
		}
		msg := strings.TrimPrefix(err.Error(), "container process: ")
		return fail("%s", strings.TrimPrefix(msg, "container process setup: "))
	}
	code, ok := readStatus(status)
	if !ok {
		if code, err = container.WaitStatus(pid); err != nil {
			return fail("%v", err)
		}
	}
	if o.JSONStatusFD >= 0 {
		fmt.Fprintf(fdWriter(o.JSONStatusFD), "{ \"exit-code\": %d }\n", code)
	}
	return code
}

// writeInfo writes bubblewrap's --info-fd and --json-status-fd documents:
// the child's pid and the inode of each namespace it has of its own.
func writeInfo(o *bwrap.Options, sb *bwrap.Sandbox, pid int) {
	ids := bwrap.NamespaceIDs(pid, sb.Namespaces)
	if o.InfoFD >= 0 {
		io.WriteString(fdWriter(o.InfoFD), bwrap.InfoJSON(pid, ids))
		unix.Close(o.InfoFD)
	}
	if o.JSONStatusFD >= 0 {
		io.WriteString(fdWriter(o.JSONStatusFD), bwrap.StatusJSON(pid, ids))
	}
}

// readStatus reads the status the sandbox's init reports when the command
// ends; ok is false if it died first (or there is no init).
func readStatus(f *os.File) (code int, ok bool) {
	if f == nil {
		return 0, false
	}
	defer f.Close()
	var b [4]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, false
	}
	return int(binary.LittleEndian.Uint32(b[:])), true
}

type fdWriter int

func (f fdWriter) Write(b []byte) (int, error) { return unix.Write(int(f), b) }

func readFD(fd int) ([]byte, error) {
	f := os.NewFile(uintptr(fd), "fd")
	if f == nil {
		return nil, unix.EBADF
	}
	defer f.Close()
	return io.ReadAll(f)
}

func strerrorOf(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

func bwrapHost() *bwrap.Host {
	um := unix.Umask(0)
	unix.Umask(um)
	cwd, _ := os.Getwd()
	tty := ""
	if t, err := os.Readlink("/proc/self/fd/1"); err == nil && isTerminal(1) {
		tty = t
	}
	return &bwrap.Host{
		UID: os.Getuid(), GID: os.Getgid(), Umask: um, Cwd: cwd, TTY: tty,
		Stat:   func(p string) error { _, err := os.Stat(p); return err },
		ReadFD: readFD, Bounding: bwrap.ReadBounding(), Realpath: filepath.EvalSymlinks,
	}
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
