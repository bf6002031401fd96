package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/container"
	"github.com/hako-runtime/hako/internal/linux/cgroups"
	"github.com/hako-runtime/hako/internal/sandbox"
)

const sandboxUsage = "run COMMAND in a new sandbox, with systemd's isolation properties"

func init() {
	register("sandbox", sandboxUsage, sandboxCmd)
}

func sandboxCmd(g *globals, args []string) error {
	fs := newFlags("sandbox")
	var props, files stringList
	fs.Var(&props, "p", "set a property NAME=VALUE (repeatable), as systemd-run -p")
	fs.Var(&props, "property", "set a property NAME=VALUE (repeatable)")
	fs.Var(&files, "properties", "read properties from FILE (a unit's [Service] lines, or NAME=VALUE lines)")
	mapRoot := fs.Bool("map-root", false, "be root (uid 0) inside the user namespace of an unprivileged caller")
	receiptTo := fs.String("receipt", "", "write the receipt (what was verified inside, how) as JSON to FILE, or to fd N")
	printSpec := fs.Bool("print-spec", false, "print the OCI config.json the sandbox would run, and exit")
	var overlays stringList
	fs.Var(&overlays, "overlay", "PATH or PATH:UPPER:WORK: PATH writable through overlayfs, changes thrown away at exit or kept in UPPER (WORK: empty, on UPPER's file system); repeatable")
	help := fs.Bool("help", false, "show help")
	fs.BoolVar(help, "h", false, "show help")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w (hako sandbox --help lists the options)", err)
	}
	if *help {
		printSandboxHelp(os.Stdout, fs)
		return nil
	}
	if *printSpec && len(overlays) > 0 {
		return errors.New("--print-spec with --overlay: a config.json cannot say it (the overlay's layers reach the kernel as file descriptors at run time)")
	}
	in, err := sandboxInput(fs.Args(), props, files, *mapRoot)
	if err != nil {
		return err
	}
	in.Overlays = overlays
	sb, err := sandbox.Compile(in)
	if err != nil {
		return err
	}
	// A pty of its own only when both ends are the terminal: output
	// into a pipe must reach it byte for byte, not through a pty's
	// line discipline (\n becoming \r\n), as with bwrap or ssh -T.
	tty := false
	if isTerminal(0) && isTerminal(1) {
		tty = true
		sb.WithTerminal()
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	sb.Prune(exists)
	if err := sb.CheckHost(exists); err != nil {
		return err
	}
	if *printSpec {
		out, err := json.MarshalIndent(sb.Spec, "", "\t")
		if err != nil {
			return err
		}
		fmt.Println(string(out))
		return nil
	}
	var rw io.Writer
	if *receiptTo != "" {
		f, err := openReceipt(*receiptTo)
		if err != nil {
			return err
		}
		defer f.Close()
		rw = f
	}
	code, err := g.runtime().RunSandbox(&container.SandboxOpts{Sandbox: sb, Terminal: tty, Receipt: rw})
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}

func openReceipt(to string) (*os.File, error) {
	if n, err := strconv.Atoi(to); err == nil {
		if _, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("--receipt fd %d: %w (cause: not open: open it for writing, e.g. 3>receipt.json)", n, err)
		}
		return os.NewFile(uintptr(n), "receipt"), nil
	}
	f, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--receipt: %w", err)
	}
	return f, nil
}

// sandboxInput gathers the caller's facts: what the compiler may not look
// up itself.
func sandboxInput(args []string, props, files []string, mapRoot bool) (*sandbox.Input, error) {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return nil, errors.New("usage: hako sandbox [OPTIONS] [--] COMMAND [ARG...]")
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("getcwd: %w", err)
	}
	home, _ := os.UserHomeDir()
	in := &sandbox.Input{
		Args: args, Env: os.Environ(), Cwd: cwd, Home: home,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), MapRoot: mapRoot,
		HostNS: map[string]uint64{}, CgroupV2: cgroups.IsUnified(),
		LookupUser: func(name string) (uint32, uint32, error) {
			u, err := user.LookupId(name)
			if _, nerr := strconv.Atoi(name); nerr != nil || err != nil {
				u, err = user.Lookup(name)
			}
			if err != nil {
				return 0, 0, fmt.Errorf("user %q: %w", name, err)
			}
			uid, _ := strconv.ParseUint(u.Uid, 10, 32)
			gid, _ := strconv.ParseUint(u.Gid, 10, 32)
			return uint32(uid), uint32(gid), nil
		},
		LookupGroup: func(name string) (uint32, error) {
			if n, err := strconv.ParseUint(name, 10, 32); err == nil {
				return uint32(n), nil
			}
			gr, err := user.LookupGroup(name)
			if err != nil {
				return 0, fmt.Errorf("group %q: %w", name, err)
			}
			gid, _ := strconv.ParseUint(gr.Gid, 10, 32)
			return uint32(gid), nil
		},
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		in.MemTotal = si.Totalram * uint64(si.Unit)
	}
	if mapRoot && in.UID == 0 {
		return nil, errors.New("--map-root: you are root already (it maps an unprivileged caller to root inside)")
	}
	for _, kind := range []string{"mnt", "pid", "net", "ipc", "uts", "user", "cgroup"} {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/ns/"+kind, &st); err == nil {
			in.HostNS[kind] = st.Ino
		}
	}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("--properties: %w", err)
		}
		ps, err := sandbox.ReadUnit(r, f)
		r.Close()
		if err != nil {
			return nil, err
		}
		in.Props = append(in.Props, ps...)
	}
	for _, p := range props {
		pr, err := sandbox.ParseAssignment(p, "-p")
		if err != nil {
			return nil, err
		}
		in.Props = append(in.Props, pr)
	}
	return in, nil
}

func printSandboxHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "NAME:\n   hako sandbox - %s\n\nUSAGE:\n   hako sandbox [OPTIONS] [--] COMMAND [ARG...]\n\n", sandboxUsage)
	fmt.Fprintf(w, "Always: a new mount namespace (private before anything is mounted), a new PID\nnamespace with a fresh /proc, and for an unprivileged caller a user namespace.\nEvery requested property is verified from inside before COMMAND runs.\n\nOPTIONS:\n")
	printFlags(w, fs)
	fmt.Fprintf(w, "\nPROPERTIES (systemd.exec(5) names and values):\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, r := range sandbox.Table() {
		fmt.Fprintf(tw, "   %s\t%s\n", r.Name, strings.TrimSpace(r.Help))
	}
	tw.Flush()
}
