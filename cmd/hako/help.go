package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/linux/security"
)

// Help and version text in runc's shape (urfave/cli v1's templates): tools
// parse `runc --version` line by line and scripts grep `--help` for a
// command or flag name.

const about = `hako is a Linux container runtime with runc's command line: engines that
drive runc (containerd, podman, Docker) can drive hako unchanged.

To start a new instance of a container:

    # hako run [ -b bundle ] <container-id>`

// versionText is `hako --version`: runc's lines, in runc's order.
func versionText() string {
	commit := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	return fmt.Sprintf("hako version %s\ncommit: %s\nspec: %s\ngo: %s\nlibseccomp: %s\n",
		version, commit, specs.Version, runtime.Version(), security.LibseccompVersion())
}

func printGlobalHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "NAME:\n   hako - Linux container runtime and sandbox\n\n%s\n\n", about)
	fmt.Fprintf(w, "USAGE:\n   hako [global options] command [command options] [arguments...]\n\n")
	fmt.Fprintf(w, "VERSION:\n   %s\n", strings.TrimPrefix(versionText(), "hako version "))
	fmt.Fprintf(w, "COMMANDS:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "   %s\t%s\n", n, commands[n].usage)
	}
	fmt.Fprintf(tw, "   help, h\tShows a list of commands or help for one command\n")
	tw.Flush()
	fmt.Fprintf(w, "\nGLOBAL OPTIONS:\n")
	printFlags(w, fs)
}

// printCommandHelp is `hako help CMD` and `hako CMD --help`.
func printCommandHelp(w io.Writer, fs *flag.FlagSet, argsUsage string) {
	name := fs.Name()
	fmt.Fprintf(w, "NAME:\n   hako %s - %s\n\nUSAGE:\n   hako %s [command options] %s\n\nOPTIONS:\n", name, commands[name].usage, name, argsUsage)
	printFlags(w, fs)
}

// printFlags lists flags as urfave/cli does, aliases together, the long
// name first: "--tty, -t  allocate a pseudo-TTY".
func printFlags(w io.Writer, fs *flag.FlagSet) {
	type entry struct {
		names []string
		usage string
		value bool
	}
	var order []string
	groups := map[string]*entry{}
	fs.VisitAll(func(f *flag.Flag) {
		// Aliases are registered on the same variable.
		key := fmt.Sprintf("%p", f.Value)
		e, ok := groups[key]
		if !ok {
			e = &entry{usage: f.Usage, value: !isBoolFlag(f)}
			groups[key] = e
			order = append(order, key)
		}
		e.names = append(e.names, f.Name)
		if len(f.Usage) > len(e.usage) {
			e.usage = f.Usage
		}
	})
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, k := range order {
		e := groups[k]
		sort.Slice(e.names, func(i, j int) bool { return len(e.names[i]) > len(e.names[j]) })
		var parts []string
		for _, n := range e.names {
			if len(n) == 1 {
				parts = append(parts, "-"+n)
			} else {
				parts = append(parts, "--"+n)
			}
		}
		arg := ""
		if e.value {
			arg = " value"
		}
		fmt.Fprintf(tw, "   %s%s\t%s\n", strings.Join(parts, ", "), arg, e.usage)
	}
	fmt.Fprintf(tw, "   --help, -h\tshow help\n")
	tw.Flush()
}

// errNoHelpTopic is runc's answer to an unknown command, with its status 3.
func errNoHelpTopic(name string) error {
	return codedError{3, fmt.Errorf("No help topic for '%s'", name)}
}
