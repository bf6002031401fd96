package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hako-runtime/hako/internal/spec"
)

func init() {
	register("spec", "write a default config.json", func(g *globals, args []string) error {
		fs := newFlags("spec")
		bundle := fs.String("bundle", "", "directory to write config.json to")
		fs.StringVar(bundle, "b", "", "directory to write config.json to")
		rootless := fs.Bool("rootless", false, "a config for an unprivileged user")
		if _, err := parse(fs, args, 0, 0, ""); err != nil {
			return err
		}
		path := filepath.Join(*bundle, "config.json")
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s already exists; remove it first", path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		data, err := json.MarshalIndent(spec.Default(*rootless), "", "\t")
		if err != nil {
			return err
		}
		return os.WriteFile(path, append(data, '\n'), 0o666)
	})
}
