package inspect

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Command is `hako inspect PID|CONTAINER-ID [--json] [--diff [PID]]
// [--properties]`, with the CLI's flag parsing kept here so that
// cmd/hako only forwards.
func Command(stateRoot string, args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	props := fs.Bool("properties", false, "state the isolation in force as hako sandbox's (systemd's) properties, read from the kernel")
	diffFlag := fs.Bool("diff", false, "show only the mounts that differ from the host's (or the PID after --diff)")
	var pos []string
	var diffPID int
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "--json", "-json", "--properties", "-properties":
			fs.Parse([]string{a})
		case "--diff", "-diff":
			*diffFlag = true
			if i+1 < len(args) && len(pos) == 1 {
				if n, err := strconv.Atoi(args[i+1]); err == nil {
					diffPID = n
					i++
				}
			} else if i+2 < len(args) {
				// --diff before the target: `--diff OTHER TARGET`.
				if n, err := strconv.Atoi(args[i+1]); err == nil {
					diffPID = n
					i++
				}
			}
		case "-h", "--help":
			fmt.Fprintln(os.Stderr, "usage: hako inspect PID|CONTAINER-ID [--json] [--diff [PID]] [--properties]")
			return nil
		default:
			if len(a) > 1 && a[0] == '-' {
				return fmt.Errorf("unknown flag %s", a)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) != 1 {
		return errors.New("usage: hako inspect PID|CONTAINER-ID [--json] [--diff [PID]] [--properties]")
	}
	r, err := Inspect(pos[0], Options{StateRoot: stateRoot, Properties: *props, Diff: *diffFlag, DiffPID: diffPID})
	if err != nil {
		return err
	}
	if *asJSON {
		return r.JSON(os.Stdout)
	}
	r.Text(os.Stdout)
	return nil
}
