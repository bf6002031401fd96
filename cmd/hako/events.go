package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/hako-runtime/hako/internal/container"
)

func init() {
	register("events", "stream a container's stats and OOM events as JSON", eventsCmd)
}

// event is runc's event JSON, which docker and podman parse.
type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

func eventsCmd(g *globals, args []string) error {
	fs := newFlags("events")
	stats := fs.Bool("stats", false, "print the container's stats once and exit")
	interval := fs.Duration("interval", 5*time.Second, "how often to print stats")
	rest, err := parse(fs, args, 1, 1, "<container-id>")
	if err != nil {
		return err
	}
	if *interval <= 0 {
		return fmt.Errorf("--interval %s: must be positive", *interval)
	}
	c, err := g.runtime().Load(rest[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	emitStats := func() error {
		s, err := c.Stats()
		if err != nil {
			return err
		}
		return enc.Encode(event{Type: "stats", ID: c.State.ID, Data: s})
	}
	if *stats {
		if c.Status() == container.Stopped {
			return fmt.Errorf("%w: %s", container.ErrNotRunning, c.State.ID)
		}
		return emitStats()
	}
	// OOM kills are polled more often than stats are printed, so that
	// each shows up promptly and once.
	oomTick := time.NewTicker(min(*interval, 200*time.Millisecond))
	defer oomTick.Stop()
	statsTick := time.NewTicker(*interval)
	defer statsTick.Stop()
	ooms := c.OOMKills()
	for {
		select {
		case <-oomTick.C:
			if n := c.OOMKills(); n > ooms {
				ooms = n
				if err := enc.Encode(event{Type: "oom", ID: c.State.ID}); err != nil {
					return err
				}
			}
			if c.Status() == container.Stopped {
				return nil
			}
		case <-statsTick.C:
			if err := emitStats(); err != nil {
				return err
			}
		}
	}
}
