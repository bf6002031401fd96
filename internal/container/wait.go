package container

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/signals"
)

// forwardAhead subscribes to the forwarded signals on a goroutine of its
// own, while the caller makes the process it will wait for; the channel
// gives the subscription. signal.Notify costs a round trip to the Go
// runtime's signal-mask thread per signal (~30 µs each here, 0.4 ms for
// the list), which otherwise sat between the process's start and the wait,
// on run's and exec's path. run starts it once the init has its plan
// (spawnOpts.afterSend), while hako only waits: started with create, it
// competed with create's own work for the two CPUs and cost more than it
// saved. exec starts it at once. Either way the subscription is made
// before the process runs anything of its own, as runc subscribes before
// the container runs: a signal hako gets meanwhile is queued for it.
func forwardAhead() <-chan chan os.Signal {
	ch := make(chan chan os.Signal, 1)
	go func() { ch <- notifyForwarded() }()
	return ch
}

// notifyForwarded subscribes to the signals that are passed on. A caller
// whose process may run before it waits (a sandbox execs its COMMAND
// without waiting for `start`) subscribes before starting it, so that a
// signal sent meanwhile is queued for the process instead of killing hako.
func notifyForwarded() chan os.Signal {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, signals.Forwarded...)
	return sigs
}

func waitForward(pid int, sigs chan os.Signal) (int, error) {
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ws, err := wait4(pid)
		if err != nil {
			done <- result{255, err}
			return
		}
		done <- result{signals.ExitCode(ws), nil}
	}()
	for {
		select {
		case r := <-done:
			// No signal.Stop: it costs as much as Notify, and the
			// caller is about to exit.
			return r.code, r.err
		case s := <-sigs:
			_ = unix.Kill(pid, s.(unix.Signal))
		}
	}
}
