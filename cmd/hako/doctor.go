package main

import "github.com/hako-runtime/hako/internal/doctor"

func init() {
	register("doctor", "check what this host and user can do for containers", func(g *globals, args []string) error {
		return doctor.Command(g.root, args)
	})
}
