package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/hako-runtime/hako/internal/container"
)

func init() {
	register("list", "list containers", func(g *globals, args []string) error {
		fs := newFlags("list")
		format := fs.String("format", "table", "table or json")
		fs.StringVar(format, "f", "table", "table or json")
		quiet := fs.Bool("quiet", false, "print only ids")
		fs.BoolVar(quiet, "q", false, "print only ids")
		if _, err := parse(fs, args, 0, 0, ""); err != nil {
			return err
		}
		rt := g.runtime()
		ids, err := rt.Store.List()
		if err != nil {
			return err
		}
		states := []container.OCIState{}
		for _, id := range ids {
			c, err := rt.Load(id)
			if err != nil {
				continue // deleted meanwhile, or being created
			}
			states = append(states, c.ListState())
		}
		if *quiet {
			for _, s := range states {
				fmt.Println(s.ID)
			}
			return nil
		}
		switch *format {
		case "json":
			return json.NewEncoder(os.Stdout).Encode(states)
		case "table":
			w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
			fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
			for _, s := range states {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
			}
			return w.Flush()
		}
		return fmt.Errorf("--format %q: must be table or json", *format)
	})
}
