package main

func init() {
	register("start", "start a created container", func(g *globals, args []string) error {
		rest, err := parse(newFlags("start"), args, 1, 1, "<container-id>")
		if err != nil {
			return err
		}
		return g.runtime().Start(rest[0])
	})
}
