package container

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/console"
	"github.com/hako-runtime/hako/internal/timing"
)

// RunOpts are what `hako run` adds to create's options.
type RunOpts struct {
	Detach      bool // do not wait for the container
	Keep        bool // keep the container's state after it exits
	NoSubreaper bool // leave orphans to the host's init
}

// Run is `hako run`: create, relay the pty, start, wait, delete, the order
// runc keeps, so the CLI only parses flags. It returns the init's exit
// status (0 when detached). A failure after create deletes the container.
func (r *Runtime) Run(o *CreateOpts, ro RunOpts) (int, error) {
	o.RelayTTY = !ro.Detach
	if r.Debug != nil {
		o.timeline = timing.New()
	}
	tl := o.timeline
	if !ro.Detach && !ro.NoSubreaper {
		// Orphans of the container (when it has no PID namespace of its
		// own) are reaped here rather than by the host's init.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	var sigs <-chan chan os.Signal
	if !ro.Detach {
		// Subscribed while the init applies its plan: see forwardAhead.
		o.afterPlan = func() { sigs = forwardAhead() }
	}
	c, err := r.Create(o)
	if err != nil {
		return 0, err
	}
	var relay *console.Relay
	if o.RelaySocket != nil {
		defer o.RelaySocket.Close()
		if relay, err = console.StartRelay(o.RelaySocket); err != nil {
			r.Delete(o.ID, true)
			return 0, err
		}
	}
	tl.Mark("relay")
	if err := r.Start(o.ID); err != nil {
		r.Delete(o.ID, true)
		return 0, err
	}
	tl.Mark("start")
	if ro.Detach {
		r.debug("run %s: took %s", o.ID, tl)
		return 0, nil
	}
	code, werr := waitForward(c.State.InitPid, <-sigs)
	tl.Mark("container ran")
	if relay != nil {
		relay.Close()
	}
	if !ro.Keep {
		if err := r.Delete(o.ID, true); err != nil && werr == nil {
			werr = err
		}
		tl.Mark("delete")
	}
	r.debug("run %s: took %s", o.ID, tl)
	if werr != nil {
		return 0, werr
	}
	return code, nil
}
