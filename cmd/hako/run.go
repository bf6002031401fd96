package main

import (
	"github.com/hako-runtime/hako/internal/console"
	"github.com/hako-runtime/hako/internal/container"
	"golang.org/x/sys/unix"
)

func init() {
	register("run", "create and start a container, wait for it, delete it", func(g *globals, args []string) error {
		fs := newFlags("run")
		o := createFlags(fs)
		detach := fs.Bool("detach", false, "do not wait for the container")
		fs.BoolVar(detach, "d", false, "do not wait for the container")
		keep := fs.Bool("keep", false, "keep the container's state after it exits")
		noSubreaper := fs.Bool("no-subreaper", false, "disable the use of the subreaper used to reap reparented processes")
		rest, err := parse(fs, args, 1, 1, "<container-id>")
		if err != nil {
			return err
		}
		o.ID = rest[0]
		return runContainer(g, o, *detach, *keep, *noSubreaper)
	})
}

func runContainer(g *globals, o *container.CreateOpts, detach, keep, noSubreaper bool) error {
	rt := g.runtime()
	o.RelayTTY = !detach
	if !detach && !noSubreaper {
		// Orphans of the container (when it has no PID namespace of its
		// own) are reaped here rather than by the host's init.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	c, err := rt.Create(o)
	if err != nil {
		return err
	}
	var relay *console.Relay
	if o.RelaySocket != nil {
		defer o.RelaySocket.Close()
		if relay, err = console.StartRelay(o.RelaySocket); err != nil {
			rt.Delete(o.ID, true)
			return err
		}
	}
	if err := rt.Start(o.ID); err != nil {
		rt.Delete(o.ID, true)
		return err
	}
	if detach {
		return nil
	}
	code, werr := container.WaitForward(c.State.InitPid)
	if relay != nil {
		relay.Close()
	}
	if !keep {
		if err := rt.Delete(o.ID, true); err != nil && werr == nil {
			werr = err
		}
	}
	if werr != nil {
		return werr
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}
