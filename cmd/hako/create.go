package main

import (
	"flag"
	"os"
	"strconv"

	"github.com/hako-runtime/hako/internal/container"
)

func init() {
	register("create", "create a container, leaving it waiting for start", func(g *globals, args []string) error {
		fs := newFlags("create")
		o := createFlags(fs)
		rest, err := parse(fs, args, 1, 1, "<container-id>")
		if err != nil {
			return err
		}
		o.ID = rest[0]
		_, err = g.runtime().Create(o)
		return err
	})
}

// createFlags declares the flags create and run share.
func createFlags(fs *flag.FlagSet) *container.CreateOpts {
	o := &container.CreateOpts{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	fs.StringVar(&o.Bundle, "bundle", ".", "path to the bundle directory")
	fs.StringVar(&o.Bundle, "b", ".", "path to the bundle directory")
	fs.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket to send the pty master to")
	fs.StringVar(&o.PidfdSocket, "pidfd-socket", "", "unix socket to send a pidfd of the init to")
	fs.StringVar(&o.PidFile, "pid-file", "", "file to write the init's pid to")
	fs.BoolVar(&o.NoPivot, "no-pivot", false, "use MS_MOVE and chroot instead of pivot_root")
	fs.BoolVar(&o.NoNewKeyring, "no-new-keyring", false, "keep the caller's session keyring")
	fs.IntVar(&o.PreserveFds, "preserve-fds", 0, "pass this many extra fds (3, 4, ...) to the container")
	// systemd socket activation, as runc: the listening sockets come first
	// and the container is told about them with LISTEN_FDS/LISTEN_PID.
	if n, err := strconv.Atoi(os.Getenv("LISTEN_FDS")); err == nil && n > 0 && os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		o.ListenFds = n
	}
	return o
}
