package main

import "github.com/hako-runtime/hako/internal/container"

func init() {
	register("run", "create and start a container, wait for it, delete it", func(g *globals, args []string) error {
		fs := newFlags("run")
		o := createFlags(fs)
		var ro container.RunOpts
		fs.BoolVar(&ro.Detach, "detach", false, "do not wait for the container")
		fs.BoolVar(&ro.Detach, "d", false, "do not wait for the container")
		fs.BoolVar(&ro.Keep, "keep", false, "keep the container's state after it exits")
		fs.BoolVar(&ro.NoSubreaper, "no-subreaper", false, "disable the use of the subreaper used to reap reparented processes")
		rest, err := parse(fs, args, 1, 1, "<container-id>")
		if err != nil {
			return err
		}
		o.ID = rest[0]
		code, err := g.runtime().Run(o, ro)
		if err != nil {
			return err
		}
		if code != 0 {
			return exitError{code}
		}
		return nil
	})
}
