package main

func init() {
	register("pause", "freeze every process of a container", func(g *globals, args []string) error {
		rest, err := parse(newFlags("pause"), args, 1, 1, "<container-id>")
		if err != nil {
			return err
		}
		return g.runtime().Pause(rest[0])
	})
	register("resume", "thaw a paused container", func(g *globals, args []string) error {
		rest, err := parse(newFlags("resume"), args, 1, 1, "<container-id>")
		if err != nil {
			return err
		}
		return g.runtime().Resume(rest[0])
	})
}
