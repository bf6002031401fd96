package doctor

import (
	"errors"
	"flag"
	"io"
	"os"
)

// ErrFailed is returned when a check failed, for the exit status.
var ErrFailed = errors.New("some checks failed")

// Command is `hako doctor [--rootless] [--json] [--path PATH]`.
func Command(root string, args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rootless := fs.Bool("rootless", false, "check what an unprivileged user can do")
	asJSON := fs.Bool("json", false, "print JSON")
	path := fs.String("path", "", "also probe idmapped mounts on this path's filesystem")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := Run(Options{Rootless: *rootless, Root: root, Path: *path})
	if *asJSON {
		r.JSON(os.Stdout)
	} else {
		r.Text(os.Stdout)
	}
	if r.Failed > 0 {
		return ErrFailed
	}
	return nil
}
