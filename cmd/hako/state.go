package main

import (
	"encoding/json"
	"fmt"
)

func init() {
	register("state", "print a container's state as JSON", func(g *globals, args []string) error {
		rest, err := parse(newFlags("state"), args, 1, 1, "<container-id>")
		if err != nil {
			return err
		}
		c, err := g.runtime().Load(rest[0])
		if err != nil {
			return err
		}
		data, err := json.MarshalIndent(c.OCIState(), "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(data))
		return nil
	})
}
