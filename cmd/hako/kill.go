package main

import (
	"github.com/hako-runtime/hako/internal/signals"
)

func init() {
	register("kill", "send a signal (default SIGTERM) to a container's init", func(g *globals, args []string) error {
		fs := newFlags("kill")
		all := fs.Bool("all", false, "signal every process of the container")
		fs.BoolVar(all, "a", false, "signal every process of the container")
		rest, err := parse(fs, args, 1, 2, "<container-id> [signal]")
		if err != nil {
			return err
		}
		name := "SIGTERM"
		if len(rest) == 2 {
			name = rest[1]
		}
		sig, err := signals.Parse(name)
		if err != nil {
			return err
		}
		return g.runtime().Kill(rest[0], sig, *all)
	})
}
