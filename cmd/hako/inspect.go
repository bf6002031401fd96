package main

import "github.com/hako-runtime/hako/internal/inspect"

func init() {
	register("inspect", "show a process's or container's namespaces, identity and mounts", func(g *globals, args []string) error {
		return inspect.Command(g.root, args)
	})
}
