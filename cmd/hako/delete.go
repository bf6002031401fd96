package main

func init() {
	register("delete", "delete a container and everything it owns", func(g *globals, args []string) error {
		fs := newFlags("delete")
		force := fs.Bool("force", false, "kill the container first if it is running")
		fs.BoolVar(force, "f", false, "kill the container first if it is running")
		rest, err := parse(fs, args, 1, -1, "<container-id>...")
		if err != nil {
			return err
		}
		rt := g.runtime()
		var firstErr error
		for _, id := range rest {
			if err := rt.Delete(id, *force); err != nil {
				if len(rest) == 1 {
					return err
				}
				g.logError(err)
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		if firstErr != nil {
			return exitError{1}
		}
		return nil
	})
}
