package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/hako-runtime/hako/internal/nsenter"
)

func init() {
	register("ps", "list a container's processes", func(g *globals, args []string) error {
		fs := newFlags("ps")
		format := fs.String("format", "table", "table or json")
		fs.StringVar(format, "f", "table", "table or json")
		rest, err := parseInOrder(fs, args, 1, -1, "<container-id> [ps options]")
		if err != nil {
			return err
		}
		c, err := g.runtime().Load(rest[0])
		if err != nil {
			return err
		}
		pids, err := c.Pids()
		if err != nil {
			return err
		}
		switch *format {
		case "json":
			if pids == nil {
				pids = []int{}
			}
			return json.NewEncoder(os.Stdout).Encode(pids)
		case "table":
		default:
			return fmt.Errorf("--format %q: must be table or json", *format)
		}
		psArgs := rest[1:]
		if len(psArgs) == 0 {
			psArgs = []string{"-ef"}
		}
		var out []byte
		err = nsenter.WithCallerSlack(func() (err error) {
			out, err = exec.Command("ps", psArgs...).Output()
			return err
		})
		if err != nil {
			return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		col := -1
		for i, h := range strings.Fields(lines[0]) {
			if h == "PID" {
				col = i
			}
		}
		if col < 0 {
			return fmt.Errorf("ps %s: output has no PID column", strings.Join(psArgs, " "))
		}
		in := map[int]bool{}
		for _, p := range pids {
			in[p] = true
		}
		fmt.Println(lines[0])
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) > col {
				if p, err := strconv.Atoi(f[col]); err == nil && in[p] {
					fmt.Println(l)
				}
			}
		}
		return nil
	})
}
