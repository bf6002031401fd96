package cgroups

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The freezer, as runc's fs.FreezerGroup (v1) and fs2 freezer.go (v2) do
// it, including their waits: a freeze is only reported done once the
// kernel says every task stopped.

// sleep is time.Sleep, replaceable so the unit tests do not wait.
var sleep = time.Sleep

// freezeV1 freezes a v1 freezer cgroup. The kernel may stay in FREEZING
// while new tasks keep arriving (fork, or a parallel exec joining), so like
// runc it retries, with an occasional thaw and pause that lets such a race
// settle; a cgroup left FREEZING or FROZEN after a failure is thawed again,
// as a half-frozen container is worse than a running one.
func freezeV1(f cgfs, dir string) (err error) {
	defer func() {
		if err != nil {
			_ = f.write(dir, "freezer.state", "THAWED")
		}
	}()
	for i := range 1000 {
		if i%50 == 49 {
			_ = f.write(dir, "freezer.state", "THAWED")
			sleep(10 * time.Millisecond)
		}
		if err := f.write(dir, "freezer.state", "FROZEN"); err != nil {
			return err
		}
		if i%25 == 24 {
			// A slow machine may need a moment before the state
			// changes.
			sleep(10 * time.Microsecond)
		}
		state, err := f.read(dir, "freezer.state")
		if err != nil {
			return err
		}
		switch state = strings.TrimSpace(state); state {
		case "FREEZING":
			continue
		case "FROZEN":
			return nil
		default:
			return fmt.Errorf("unexpected freezer.state %q while freezing", state)
		}
	}
	return errors.New("unable to freeze: freezer.state stayed FREEZING")
}

// thawV1 thaws a v1 freezer cgroup. There is nothing to wait for: THAWED
// takes effect at once (tasks of a frozen ancestor stay frozen, which is
// not ours to change).
func thawV1(f cgfs, dir string) error {
	return f.write(dir, "freezer.state", "THAWED")
}

// pausedV1 reports whether the cgroup itself is frozen (not only an
// ancestor of it). A kernel without the freezer files counts as not
// frozen. FREEZING is a passing state, waited out (up to a second).
func pausedV1(f cgfs, dir string) (bool, error) {
	for range 1000 {
		state, err := f.read(dir, "freezer.state")
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
				return false, nil
			}
			return false, err
		}
		switch state = strings.TrimSpace(state); state {
		case "THAWED":
			return false, nil
		case "FROZEN":
			self, err := f.read(dir, "freezer.self_freezing")
			if err != nil {
				// An old kernel without the file: frozen is frozen.
				if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
					return true, nil
				}
				return false, err
			}
			switch self {
			case "0\n":
				return false, nil
			case "1\n":
				return true, nil
			}
			return false, fmt.Errorf("unknown freezer.self_freezing state %q", self)
		case "FREEZING":
			sleep(time.Millisecond)
		default:
			return false, fmt.Errorf("unknown freezer.state %q", state)
		}
	}
	return false, errors.New("freezer.state stayed FREEZING")
}

// setFrozenV2 writes cgroup.freeze and confirms the result. Freezing is
// asynchronous on cgroup2: cgroup.freeze shows the request at once, while
// cgroup.events says "frozen 1" only when every task has stopped, which is
// what a caller of Freeze expects to be true on return.
func setFrozenV2(f cgfs, dir string, freeze bool) error {
	val := "0"
	if freeze {
		val = "1"
	}
	if err := f.write(dir, "cgroup.freeze", val); err != nil {
		// Without a freezer (kernel < 5.2) nothing is frozen, so a thaw
		// has nothing to do.
		if !freeze && errors.Is(err, unix.ENOENT) {
			return nil
		}
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("freezer not supported: %w", err)
		}
		return err
	}
	frozen, err := pausedV2(f, dir)
	if err != nil {
		return err
	}
	if frozen != freeze {
		return fmt.Errorf("cgroup.freeze in %s did not change to %s", dir, val)
	}
	return nil
}

// pausedV2 reports whether the cgroup is frozen, waiting for a requested
// freeze to complete. A cgroup or kernel without cgroup.freeze is not
// frozen.
func pausedV2(f cgfs, dir string) (bool, error) {
	state, err := f.read(dir, "cgroup.freeze")
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
			return false, nil
		}
		return false, err
	}
	switch state {
	case "0\n":
		return false, nil
	case "1\n":
		return true, waitFrozenV2(f, dir)
	}
	return false, fmt.Errorf("unknown cgroup.freeze state %q", state)
}

// waitFrozenV2 polls cgroup.events for "frozen 1", for up to ten seconds
// as runc does.
func waitFrozenV2(f cgfs, dir string) error {
	const (
		wait    = 10 * time.Millisecond
		maxIter = 1000
	)
	for i := 0; ; i++ {
		events, err := f.read(dir, "cgroup.events")
		if err != nil {
			return err
		}
		var frozen, found bool
		for line := range strings.Lines(events) {
			if v, ok := strings.CutPrefix(line, "frozen "); ok {
				found, frozen = true, strings.HasPrefix(v, "1")
			}
		}
		if !found {
			return fmt.Errorf("no frozen entry in %s/cgroup.events", dir)
		}
		if frozen {
			return nil
		}
		if i == maxIter {
			return fmt.Errorf("timeout of %s reached waiting for the cgroup to freeze", wait*maxIter)
		}
		sleep(wait)
	}
}
